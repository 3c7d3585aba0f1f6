"""Create, unlock and re-key a profile: the key header and the database kept consistent.

Passphrase change ordering (each step durable before the next):
  1. header := [current slot, new slot]      (atomic replace)
  2. PRAGMA rekey to the new key             (one SQLite transaction)
  3. header := [new slot]                    (atomic replace)
A crash before 2 commits leaves the old key valid and the old slot in the header; after it,
the new key valid and the new slot in the header. Unlock tries every slot and, on success
with two slots, finishes step 3 itself.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from app.crypto.passphrase import (
    DEFAULT_PARAMS,
    HeaderError,
    KdfParams,
    KeyHeader,
    KeySlot,
    decode_header,
    derive_key,
    encode_header,
    new_slot,
)

from . import connection, paths
from .connection import Connection
from .errors import CorruptDatabase, CorruptHeader, ProfileExists, ProfileNotFound, WrongPassphrase
from .paths import ProfilePaths

Step = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Unlocked:
    """An unlocked, migrated connection and the raw key that opened it."""

    conn: Connection
    key: bytes = field(repr=False)  # never in a repr, a log line or a traceback's locals


def _no_step(_: str) -> None:
    return None


def read_header(p: ProfilePaths) -> KeyHeader:
    """The header of an existing profile; typed errors for every way it can be missing or bad."""
    header_exists = p.header.exists()
    db_exists = p.database.exists()
    if not header_exists and not db_exists:
        raise ProfileNotFound("no profile at that location")
    if not header_exists:
        raise CorruptHeader("the key header file is missing")
    try:
        header = decode_header(p.header.read_bytes())
    except HeaderError as exc:
        raise CorruptHeader(f"the key header file is damaged ({exc})") from None
    if not db_exists:
        raise CorruptDatabase("the database file is missing")
    if p.database.stat().st_size == 0:
        raise CorruptDatabase("the database file is empty")
    return header


def create(
    p: ProfilePaths,
    passphrase: str,
    params: KdfParams = DEFAULT_PARAMS,
    randbytes: Callable[[int], bytes] = os.urandom,
) -> Unlocked:
    """A new profile: private directory, header, keyed database at the latest schema."""
    if p.header.exists() or p.database.exists():
        raise ProfileExists("a profile already exists at that location")
    slot = new_slot(params, randbytes)
    header = KeyHeader((slot,))
    key = derive_key(passphrase, slot)
    paths.ensure_private_dir(p.directory)
    paths.create_private_file(p.database)
    conn = connection.open_keyed(p.database, key, header.page_hmac)
    try:
        connection.prepare(conn)
    except BaseException:
        conn.close()
        raise
    paths.atomic_write(p.header, encode_header(header))
    paths.tighten(p)
    return Unlocked(conn, key)


def _finish(p: ProfilePaths, conn: Connection, header: KeyHeader, slot: KeySlot | None) -> None:
    """Migrate, and complete an interrupted passphrase change by dropping the stale slot."""
    try:
        connection.prepare(conn)
    except BaseException:
        conn.close()
        raise
    if slot is not None and len(header.slots) > 1:
        paths.atomic_write(p.header, encode_header(replace(header, slots=(slot,))))
    paths.tighten(p)


def unlock(p: ProfilePaths, passphrase: str) -> Unlocked:
    """Derive the key from each header slot in turn and open the database with it."""
    header = read_header(p)
    for slot in header.slots:
        key = derive_key(passphrase, slot)
        try:
            conn = connection.open_keyed(p.database, key, header.page_hmac)
        except WrongPassphrase:
            continue
        _finish(p, conn, header, slot)
        return Unlocked(conn, key)
    raise WrongPassphrase()


def unlock_with_key(p: ProfilePaths, key: bytes) -> Unlocked:
    """Open with a remembered raw key (no Argon2id)."""
    header = read_header(p)
    conn = connection.open_keyed(p.database, key, header.page_hmac)
    _finish(p, conn, header, None)
    return Unlocked(conn, key)


def _matching_slot(header: KeyHeader, passphrase: str, key: bytes) -> KeySlot | None:
    for slot in header.slots:
        if hmac.compare_digest(derive_key(passphrase, slot), key):
            return slot
    return None


def change_passphrase(
    p: ProfilePaths,
    conn: Connection,
    current_key: bytes,
    old_passphrase: str,
    new_passphrase: str,
    params: KdfParams = DEFAULT_PARAMS,
    randbytes: Callable[[int], bytes] = os.urandom,
    on_step: Step = _no_step,
) -> bytes:
    """Re-key the open database to a key from new_passphrase; returns the new raw key.

    The old passphrase must derive the key the database is open with (WrongPassphrase if not);
    its slot is the one kept beside the new slot while the change is in flight.
    """
    header = read_header(p)
    current = _matching_slot(header, old_passphrase, current_key)
    if current is None:
        raise WrongPassphrase()
    fresh = new_slot(params, randbytes)
    new_key = derive_key(new_passphrase, fresh)
    on_step("derived")
    paths.atomic_write(p.header, encode_header(replace(header, slots=(current, fresh))))
    on_step("header-both")
    connection.checkpoint(conn)
    connection.rekey(conn, new_key)
    on_step("rekeyed")
    connection.checkpoint(conn)
    on_step("checkpointed")
    paths.atomic_write(p.header, encode_header(replace(header, slots=(fresh,))))
    on_step("header-new")
    return new_key
