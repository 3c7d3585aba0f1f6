"""A new profile from a backup file (docs/backup.md, "Restoring"); backup.py makes one.

The profile (key header and database) is built at the backup's schema version, its rows and
files go in inside one transaction that commits only once the file ended exactly after its
last chunk, then it is migrated and settled. The caller builds it in a folder of its own and
moves it into place, or deletes it. Blocking throughout: run it on the store's thread.
"""

# Table and column names come from the allowlist and the database's own schema; every value
# is bound as a parameter.
# ruff: noqa: S608

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import msgpack

from app.crypto.backupstream import READ_SIZE, BackupReader
from app.crypto.filecrypt import MAX_FILE_SIZE, sealed_size
from app.crypto.passphrase import KdfParams

from . import connection, migrations, paths, vault
from .backup import KIND, PROGRESS_EVERY_S, TABLES, Progress, table_columns, table_names
from .blobs import Blobs
from .connection import Connection
from .errors import SchemaTooNew, StoreError
from .paths import ProfilePaths

_BATCH = 2048  # rows per INSERT call
_VALUE_TYPES = frozenset({type(None), bool, int, float, str, bytes})  # what msgpack gives
_LOAD_CACHE_KIB = 64 * 1024  # SQLite's page cache while the rows go in
_MAX_VALUE = 1024 * 1024  # a str or bin value in a record
_NOTHING = object()
LEFT_OUT_ERROR = "left out of the backup this profile was restored from"
MISSING_ERROR = "its file was not in the backup this profile was restored from"


class BadBackup(StoreError):
    """The backup opened, but what it holds is not a profile this version can load."""


@dataclass(frozen=True, slots=True)
class Restored:
    """What came back from a backup."""

    contacts: int  # people (requests are dropped)
    messages: int
    files: int  # files at rest that came back
    groups: int
    requests_dropped: int  # message requests: there is no channel to answer them on
    not_reconnected: int  # contacts with no rejoin prekey: to be added again by hand
    files_left_out: int  # file rows kept as failed, their bytes not in the backup
    made_at: int  # when the backup was made (ms)
    schema: int  # the schema version it was made at


def _records(handle: BinaryIO, reader: BackupReader, progress: Progress | None) -> Iterator[Any]:
    """The records of a backup as its file is read and opened; the end of the file is
    checked (cut short, or more after its end) before the iteration stops."""
    unpacker = msgpack.Unpacker(
        raw=False,
        strict_map_key=True,
        max_buffer_size=4 * _MAX_VALUE,
        max_str_len=_MAX_VALUE,
        max_bin_len=_MAX_VALUE,
        max_array_len=256,
        max_map_len=16,
        max_ext_len=0,
    )
    total = os.fstat(handle.fileno()).st_size
    done = fed = whole = 0
    told = 0.0
    while data := handle.read(READ_SIZE):
        done += len(data)
        plain = reader.feed(data)
        if progress is not None and time.monotonic() - told >= PROGRESS_EVERY_S:
            told = time.monotonic()
            progress(done, max(total, done))
        if not plain:
            continue
        unpacker.feed(plain)
        fed += len(plain)
        found = []
        try:
            for obj in unpacker:
                found.append(obj)
                whole = unpacker.tell()  # a partial record after it moves tell()
        except Exception:  # msgpack raises several types for bad records
            raise BadBackup("the backup's contents are malformed") from None
        yield from found
    reader.finish()
    if whole != fed:
        raise BadBackup("the backup's contents end in the middle of a record")
    if progress is not None:
        progress(done, done)


def _expect(record: Any, key: str) -> dict[str, Any]:
    if not isinstance(record, dict) or key not in record:
        raise BadBackup("the backup's contents are malformed")
    return record


def _new_database(
    profile: ProfilePaths, passphrase: str, params: KdfParams, schema: int
) -> vault.Unlocked:
    """A new profile (key header and empty database) whose database is at `schema`."""
    unlocked = vault.create(profile, passphrase, params)
    if schema == migrations.LATEST:
        return unlocked
    page_hmac = vault.read_header(profile).page_hmac
    unlocked.conn.close()
    for side in ("", "-wal", "-shm"):
        Path(str(profile.database) + side).unlink(missing_ok=True)
    paths.create_private_file(profile.database)
    conn = connection.open_keyed(profile.database, unlocked.key, page_hmac)
    try:
        connection.prepare(conn, schema)
    except BaseException:
        conn.close()
        raise
    return vault.Unlocked(conn, unlocked.key)


def _load_table(
    conn: Connection, head: dict[str, Any], records: Iterator[Any], present: set[str]
) -> str:
    table, columns, count = head["table"], head.get("columns"), head.get("rows")
    if table not in TABLES or table not in present:
        raise BadBackup("the backup holds a table this profile does not keep")
    allowed = set(table_columns(conn, table))
    if (
        not isinstance(columns, list)
        or not columns
        or len(set(columns)) != len(columns)
        or not all(isinstance(c, str) and c in allowed for c in columns)
        or type(count) is not int
        or count < 0
    ):
        raise BadBackup(f"the backup's table {table} does not fit this schema")
    names = ", ".join(f'"{c}"' for c in columns)
    marks = ", ".join("?" for _ in columns)
    sql = f'INSERT INTO "{table}" ({names}) VALUES ({marks})'
    batch: list[list[Any]] = []
    width = len(columns)
    for _ in range(count):
        row = next(records, None)
        if type(row) is not list or len(row) != width:
            raise BadBackup(f"the backup's table {table} is cut short or malformed")
        if not _VALUE_TYPES.issuperset(map(type, row)):
            raise BadBackup(f"the backup's table {table} holds a value of no column type")
        batch.append(row)
        if len(batch) >= _BATCH:
            conn.executemany(sql, batch)
            batch.clear()
    if batch:
        conn.executemany(sql, batch)
    return str(table)


def _load_blob(blobs: Blobs, name: Any, known: set[str], records: Iterator[Any]) -> str:
    if not isinstance(name, str) or name not in known:
        raise BadBackup("the backup holds a file no message names")
    known.discard(name)  # each file once
    try:
        where = blobs.path(name)
    except ValueError:
        raise BadBackup("the backup names a file outside the profile's files") from None
    blobs.ensure()
    limit = sealed_size(MAX_FILE_SIZE)
    size = 0
    fd = os.open(where, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        while True:
            piece = next(records, None)
            if piece is None:
                break
            if not isinstance(piece, bytes):
                raise BadBackup("the backup's file records are malformed")
            size += len(piece)
            if size > limit:
                raise BadBackup("the backup holds a file larger than any file can be")
            view = memoryview(piece)
            while view:
                view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    return name


def _load(
    conn: Connection, profile: ProfilePaths, records: Iterator[Any]
) -> tuple[set[str], dict[str, Any]]:
    """Every record up to the end one, inserted (inside the caller's transaction) or
    written; returns the files that came back and the end record."""
    present = table_names(conn)
    loaded: set[str] = set()
    blobs = Blobs(profile.directory)
    known: set[str] | None = None
    came: set[str] = set()
    for record in records:
        if isinstance(record, dict) and "table" in record:
            if known is not None or record["table"] in loaded:
                raise BadBackup("the backup's tables are out of order")
            loaded.add(_load_table(conn, record, records, present))
        elif isinstance(record, dict) and "blob" in record:
            if known is None:
                known = _disk_names(conn, present)
            came.add(_load_blob(blobs, record["blob"], known, records))
        elif isinstance(record, dict) and record.get("end") is True:
            if record.get("blobs") != len(came) or "profile" not in loaded:
                raise BadBackup("the backup's contents are incomplete")
            # Nothing may follow; the file's end is checked as the records run out.
            if next(records, _NOTHING) is not _NOTHING:
                raise BadBackup("the backup's contents go on after their end")
            return came, record
        else:
            raise BadBackup("the backup's contents are malformed")
    raise BadBackup("the backup's contents are incomplete")


def _disk_names(conn: Connection, present: set[str]) -> set[str]:
    if "files" not in present:
        return set()
    return {str(r[0]) for r in conn.execute("SELECT disk_name FROM files")}


def _settle(
    conn: Connection, came: set[str], with_files: bool, made_at: int, schema: int
) -> Restored:
    """What a restored profile cannot keep as it was: requests go (no channel to answer
    them on), messages still queued failed, no group code (its mailbox was not backed up),
    files whose bytes did not come back failed, and a fresh handshake owed to every contact
    that gave us a rejoin prekey and a mailbox."""
    requests = conn.execute("SELECT count(*) FROM contacts WHERE state = 'request'").fetchone()[0]
    conn.execute("DELETE FROM contacts WHERE state = 'request'")
    conn.execute("UPDATE messages SET status = 'failed' WHERE direction = 1 AND status = 'queued'")
    conn.execute("UPDATE groups SET code_mailbox = NULL")
    error = MISSING_ERROR if with_files else LEFT_OUT_ERROR
    left_out = 0
    for row_id, disk_name in conn.execute("SELECT id, disk_name FROM files").fetchall():
        if disk_name not in came:
            conn.execute(
                "UPDATE files SET error = ?, state = CASE WHEN state = 'cancelled' "
                "THEN state ELSE 'failed' END WHERE id = ?",
                (error, row_id),
            )
            left_out += 1
    conn.execute(
        "UPDATE contacts SET rejoin_due = 1 WHERE kind IN ('person', 'member') "
        "AND state = 'contact' AND rejoin_theirs IS NOT NULL "
        "AND EXISTS (SELECT 1 FROM their_mailboxes t WHERE t.contact_id = contacts.id)"
    )

    def count(sql: str) -> int:
        return int(conn.execute(sql).fetchone()[0])

    return Restored(
        contacts=count("SELECT count(*) FROM contacts WHERE kind = 'person'"),
        messages=count("SELECT count(*) FROM messages"),
        files=count("SELECT count(*) FROM files") - left_out,
        groups=count("SELECT count(*) FROM groups"),
        requests_dropped=int(requests),
        not_reconnected=count(
            "SELECT count(*) FROM contacts WHERE kind = 'person' AND state = 'contact' "
            "AND rejoin_due = 0"
        ),
        files_left_out=left_out,
        made_at=made_at,
        schema=schema,
    )


def _drop_indexes(conn: Connection) -> list[str]:
    """Rows go in faster into tables without their indexes: each is dropped first and made
    again from its own SQL once every row is in (one sorted build instead of a b-tree
    insert per row), within the caller's transaction. Triggers stay: they keep what the
    rows imply (unread counts). Returns the SQL that makes them again."""
    allowed = ", ".join("?" for _ in TABLES)
    indexes = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
        f"AND tbl_name IN ({allowed})",
        tuple(TABLES),
    ).fetchall()
    for name, _ in indexes:
        conn.execute(f'DROP INDEX "{name}"')
    return [str(sql) for _, sql in indexes]


@contextlib.contextmanager
def _bulk_writes(conn: Connection) -> Iterator[None]:
    """Nothing synced until the commit, and a larger page cache, while the rows go in (a
    restore cut short is deleted whole, so nothing needs to survive one); as before after."""
    cache = int(conn.execute("PRAGMA cache_size").fetchone()[0])
    synchronous = int(conn.execute("PRAGMA synchronous").fetchone()[0])
    conn.execute("PRAGMA synchronous = OFF").fetchall()
    conn.execute(f"PRAGMA cache_size = -{_LOAD_CACHE_KIB}").fetchall()
    try:
        yield
    finally:
        conn.execute(f"PRAGMA cache_size = {cache}").fetchall()
        conn.execute(f"PRAGMA synchronous = {synchronous}").fetchall()


def restore(
    profile: ProfilePaths,
    source: Path,
    backup_passphrase: str,
    passphrase: str,
    params: KdfParams,
    progress: Progress | None = None,
) -> tuple[vault.Unlocked, Restored]:
    """A new profile at `profile` (a directory that must not exist yet) from the backup at
    `source`, open and at the latest schema. The caller removes the directory when this
    raises, and moves it into place when it does not. Blocking: run it off the loop."""
    try:
        handle = open(source, "rb")  # noqa: SIM115
    except OSError as exc:
        raise StoreError(f"cannot read the backup: {exc.strerror}") from None
    with handle:
        records = _records(handle, BackupReader(backup_passphrase), progress)
        meta = _expect(next(records, None), "kind")
        schema, made_at = meta.get("schema"), meta.get("made_at")
        if meta["kind"] != KIND or type(schema) is not int or type(made_at) is not int:
            raise BadBackup("the backup's contents are malformed")
        if schema > migrations.LATEST:
            raise SchemaTooNew(
                f"this backup was made at schema version {schema}; this version of AnonChat "
                f"knows up to {migrations.LATEST}: restore it with a newer AnonChat"
            )
        if schema < 1:
            raise BadBackup("the backup's contents are malformed")
        unlocked = _new_database(profile, passphrase, params, schema)
        conn = unlocked.conn
        try:
            with _bulk_writes(conn):
                conn.execute("BEGIN IMMEDIATE")
                try:
                    indexes = _drop_indexes(conn)
                    came, _ = _load(conn, profile, records)
                    for sql in indexes:
                        conn.execute(sql)
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            migrations.migrate(conn)
            conn.execute("BEGIN IMMEDIATE")
            restored = _settle(conn, came, meta.get("files") is True, made_at, schema)
            conn.execute("COMMIT")
        except (connection.DatabaseError, OverflowError):  # a value no column can hold
            conn.close()
            raise BadBackup("the backup's contents do not fit this profile's tables") from None
        except BaseException:
            conn.close()
            raise
    return unlocked, restored
