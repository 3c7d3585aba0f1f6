"""Create, unlock and re-key a profile: the key header and the database kept consistent.

Passphrase change ordering (each step durable before the next):
  1. header := [current slot, new slot]      (atomic replace)
  2. PRAGMA rekey to the new key             (one SQLite transaction)
  3. header := [new slot]                    (atomic replace)
A crash before 2 commits leaves the old key valid and the old slot in the header; after it,
the new key valid and the new slot in the header. Unlock tries every slot and, on success
with two slots, finishes step 3 itself.

The duress passphrase: every unlock attempt derives the key of each slot and the key of the
duress field (app/crypto/duress.py), set or not, right passphrase or wrong, so an attempt
costs the same Argon2id work whatever the outcome. A key that opens the database wins;
otherwise a key that matches the duress verifier is handed back (`DuressUnlock`) for the
caller to wipe the profile and start a new one under that key. Every header written here
carries a duress field (a random one unless a duress passphrase is set), and a passphrase
change keeps it as it is.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from app.crypto import duress
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
from .errors import (
    CorruptDatabase,
    CorruptHeader,
    ProfileExists,
    ProfileNotFound,
    StoreError,
    WrongPassphrase,
)
from .paths import ProfilePaths

Step = Callable[[str], None]


class DuressRefused(StoreError):
    """A duress passphrase that would be the profile's own passphrase (or the reverse)."""


@dataclass(frozen=True, slots=True)
class Unlocked:
    """An unlocked, migrated connection and the raw key that opened it."""

    conn: Connection
    key: bytes = field(repr=False)  # never in a repr, a log line or a traceback's locals


@dataclass(frozen=True, slots=True)
class DuressUnlock:
    """The duress passphrase was entered: the slot and key the new profile is made under
    (no more Argon2id), and the settings it starts from. Nothing is changed yet."""

    slot: KeySlot
    key: bytes = field(repr=False)
    settings: dict[str, str] = field(repr=False)


def _no_step(_: str) -> None:
    return None


def _with_duress(header: KeyHeader) -> KeyHeader:
    """The header with a (random) duress field if it has none yet (one read from an older
    version)."""
    if header.duress is not None:
        return header
    return replace(header, duress=duress.random_field(header.slots[0].params))


def _write_header(p: ProfilePaths, header: KeyHeader) -> None:
    paths.atomic_write(p.header, encode_header(_with_duress(header)))


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
    return create_with_key(p, slot, derive_key(passphrase, slot), randbytes)


def create_with_key(
    p: ProfilePaths,
    slot: KeySlot,
    key: bytes,
    randbytes: Callable[[int], bytes] = os.urandom,
) -> Unlocked:
    """A new profile whose one slot is `slot`, under the key already derived for it (the
    duress passphrase's), with a random duress field."""
    if p.header.exists() or p.database.exists():
        raise ProfileExists("a profile already exists at that location")
    header = KeyHeader((slot,), duress=duress.random_field(slot.params, randbytes))
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
    """Migrate, complete an interrupted passphrase change by dropping the stale slot, and
    give a header from before version 3 its duress field."""
    try:
        connection.prepare(conn)
    except BaseException:
        conn.close()
        raise
    if slot is not None and len(header.slots) > 1:
        _write_header(p, replace(header, slots=(slot,)))
    elif header.duress is None:
        _write_header(p, header)
    paths.tighten(p)


def attempt(p: ProfilePaths, passphrase: str) -> Unlocked | DuressUnlock:
    """The profile opened with this passphrase, or what the duress passphrase starts over
    from; WrongPassphrase otherwise. Every key is derived before any is tried."""
    header = read_header(p)
    keys = [derive_key(passphrase, slot) for slot in header.slots]
    field = header.duress
    duress_key = None if field is None else derive_key(passphrase, field.slot)
    for slot, key in zip(header.slots, keys, strict=True):
        try:
            conn = connection.open_keyed(p.database, key, header.page_hmac)
        except WrongPassphrase:
            continue
        _finish(p, conn, header, slot)
        return Unlocked(conn, key)
    if field is not None and duress_key is not None and duress.matches(field, duress_key):
        try:
            settings = duress.open_field(field, duress_key)
        except duress.DuressError:
            raise CorruptHeader("the key header's duress field is damaged") from None
        return DuressUnlock(field.slot, duress_key, settings)
    raise WrongPassphrase()


def unlock(p: ProfilePaths, passphrase: str) -> Unlocked:
    """Open the database with the passphrase; the duress passphrase is a wrong one here
    (only `attempt`'s caller starts over)."""
    opened = attempt(p, passphrase)
    if isinstance(opened, DuressUnlock):
        raise WrongPassphrase()
    return opened


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
    its slot is the one kept beside the new slot while the change is in flight. The duress
    field is kept as it is; with new Argon2id parameters it cannot be (the duress passphrase
    would have to be derived again), so it becomes a random one with the new parameters: the
    duress passphrase, if one was set, is then cleared.
    """
    header = read_header(p)
    current = _matching_slot(header, old_passphrase, current_key)
    if current is None:
        raise WrongPassphrase()
    field = header.duress
    if field is None or field.params != params:
        header = replace(header, duress=duress.random_field(params, randbytes))
    elif duress.matches(field, derive_key(new_passphrase, field.slot)):
        raise DuressRefused("the new passphrase is the duress passphrase; choose another")
    fresh = new_slot(params, randbytes)
    new_key = derive_key(new_passphrase, fresh)
    on_step("derived")
    _write_header(p, replace(header, slots=(current, fresh)))
    on_step("header-both")
    connection.checkpoint(conn)
    connection.rekey(conn, new_key)
    on_step("rekeyed")
    connection.checkpoint(conn)
    on_step("checkpointed")
    _write_header(p, replace(header, slots=(fresh,)))
    on_step("header-new")
    return new_key


def set_duress(
    p: ProfilePaths,
    current_key: bytes,
    duress_passphrase: str,
    settings: dict[str, str],
    randbytes: Callable[[int], bytes] = os.urandom,
) -> None:
    """Make `duress_passphrase` the one that wipes this profile and starts a new one from
    `settings` (replacing any set before). Refused (DuressRefused) when it is the profile's
    own passphrase: the key it derives under a slot is the key the database is open with."""
    header = read_header(p)
    for slot in header.slots:
        if hmac.compare_digest(derive_key(duress_passphrase, slot), current_key):
            raise DuressRefused("the duress passphrase must differ from the passphrase")
    slot = duress.new_duress_slot(header.slots[0].params, randbytes)
    try:
        field = duress.sealed_field(derive_key(duress_passphrase, slot), slot, settings)
    except duress.DuressError as exc:
        raise DuressRefused(str(exc)) from None
    _write_header(p, replace(header, duress=field))


def clear_duress(p: ProfilePaths, randbytes: Callable[[int], bytes] = os.urandom) -> None:
    """No duress passphrase any more: the field becomes random bytes again."""
    header = read_header(p)
    field = duress.random_field(header.slots[0].params, randbytes)
    _write_header(p, replace(header, duress=field))
