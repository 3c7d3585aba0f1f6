"""A profile into a backup file (docs/backup.md); backup_restore.py reads one back.

Inside the encrypted stream (app/crypto/backupstream.py) a backup is a sequence of msgpack
records: a map saying what it is (and at which schema version), then each table of the
allowlist as a map naming its columns and row count followed by its rows as arrays, then
each file at rest as a map naming it followed by its sealed bytes in `bin` pieces and a nil,
then a map that ends it. The tables are read in one read transaction on a connection of the
backup's own, so the store goes on writing meanwhile and the backup is one moment's profile.
Blocking throughout: a backup runs on a thread of its own.
"""

# Table and column names come from the allowlist and the database's own schema; every value
# is bound as a parameter.
# ruff: noqa: S608

from __future__ import annotations

import contextlib
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import msgpack

from app.crypto.backupstream import BackupWriter
from app.crypto.passphrase import KdfParams

from . import connection, migrations, paths, vault
from .blobs import Blobs
from .connection import Connection
from .errors import StoreError
from .paths import ProfilePaths

KIND = "anonchat-profile"
# What a backup holds, in the order it is written and loaded (each table after those its
# rows refer to). Left out: sessions, our_mailboxes, handshake_links, outbox and group_copies
# (ratchet and transport state: a restored profile opens fresh channels), unread_counts
# (rebuilt by its triggers as messages go in), search_progress and messages_fts* (the
# restored profile indexes its messages before its first search).
TABLES = (
    "profile",
    "settings",
    "contacts",
    "contact_key_history",
    "their_mailboxes",
    "messages",
    "reactions",
    "received_updates",
    "files",
    "blocked_keys",
    "groups",
    "group_members",
    "group_events",
    "group_posts",
)
# Our private rejoin prekey stays on this computer; a handshake owed is this computer's.
LEFT_OUT_COLUMNS = {"contacts": frozenset({"rejoin_ours", "rejoin_due"})}
PIECE = 64 * 1024  # a file's bytes per record
PROGRESS_EVERY_S = 0.1

Progress = Callable[[int, int], None]
"""(bytes done, bytes expected in all): the expected total is an estimate until the end."""


class BackupCancelled(StoreError):
    """The backup was stopped (the profile is closing); nothing was written."""


@dataclass(frozen=True, slots=True)
class Written:
    """A backup file made."""

    path: Path
    size: int  # bytes of the file
    messages: int
    files: int  # files at rest in it
    made_at: int  # ms


# -- making one ---------------------------------------------------------------------------


def _skip_settings(left_out: tuple[str, ...]) -> tuple[str, list[object]]:
    """A WHERE clause leaving out these setting keys (a key ending in "." or ":" is a
    prefix) and its parameters."""
    clauses: list[str] = []
    args: list[object] = []
    for key in left_out:
        if key.endswith((".", ":")):
            clauses.append("substr(key, 1, ?) != ?")
            args += [len(key), key]
        else:
            clauses.append("key != ?")
            args.append(key)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), args


def table_columns(conn: Connection, table: str) -> list[str]:
    names = [str(r[1]) for r in conn.execute(f'PRAGMA table_info("{table}")').fetchall()]
    skip = LEFT_OUT_COLUMNS.get(table, frozenset())
    return [n for n in names if n not in skip]


def table_names(conn: Connection) -> set[str]:
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {str(r[0]) for r in rows}


class _Sink:
    """Packs records into the backup stream and the stream into the file, reporting
    progress now and then and stopping when told to."""

    def __init__(
        self,
        out: BinaryIO,
        writer: BackupWriter,
        progress: Progress | None,
        cancel: threading.Event | None,
    ) -> None:
        self._out = out
        self._writer = writer
        self._packer = msgpack.Packer(use_bin_type=True)
        self._buffer = bytearray()
        self._progress = progress
        self._cancel = cancel
        self._told = 0.0
        self.done = 0
        self.total = 0
        out.write(writer.head())

    def put(self, obj: Any) -> None:
        self._buffer += self._packer.pack(obj)
        if len(self._buffer) >= PIECE:
            self._flush()

    def _flush(self) -> None:
        if self._cancel is not None and self._cancel.is_set():
            raise BackupCancelled("the backup was stopped")
        data, self._buffer = bytes(self._buffer), bytearray()
        self._out.write(self._writer.write(data))
        self.done += len(data)
        now = time.monotonic()
        if self._progress is not None and now - self._told >= PROGRESS_EVERY_S:
            self._told = now
            self._progress(self.done, max(self.total, self.done))

    def finish(self) -> None:
        self._flush()
        self._out.write(self._writer.finish())
        if self._progress is not None:
            self._progress(self.done, self.done)


def _dumptables(conn: Connection, sink: _Sink, settings_left_out: tuple[str, ...]) -> int:
    """Every allowlisted table this schema has, row by row; returns the messages' count."""
    present = table_names(conn)
    messages = 0
    for table in TABLES:
        if table not in present:
            continue
        cols = table_columns(conn, table)
        where, args = _skip_settings(settings_left_out) if table == "settings" else ("", [])
        count = int(conn.execute(f'SELECT count(*) FROM "{table}"{where}', args).fetchone()[0])
        sink.put({"table": table, "columns": cols, "rows": count})
        names = ", ".join(f'"{c}"' for c in cols)
        seen = 0
        for row in conn.execute(f'SELECT {names} FROM "{table}"{where}', args):
            sink.put(list(row))
            seen += 1
        if seen != count:  # one read transaction: cannot happen unless the file is damaged
            raise StoreError("the database changed under the backup's snapshot")
        if table == "messages":
            messages = count
    return messages


def _dump_blobs(directory: Path, names: list[str], sink: _Sink) -> int:
    """Each file at rest as it lies (already sealed); one gone meanwhile is left out."""
    blobs = Blobs(directory)
    written = 0
    for name in names:
        try:
            handle = open(blobs.path(name), "rb")  # noqa: SIM115
        except (FileNotFoundError, ValueError):
            continue
        with handle:
            sink.put({"blob": name})
            while piece := handle.read(PIECE):
                sink.put(piece)
            sink.put(None)
        written += 1
    return written


def _blob_sizes(directory: Path, names: list[str]) -> int:
    blobs, total = Blobs(directory), 0
    for name in names:
        with contextlib.suppress(OSError, ValueError):
            total += blobs.path(name).stat().st_size
    return total


def write_backup(
    profile: ProfilePaths,
    key: bytes,
    target: Path,
    passphrase: str,
    params: KdfParams,
    *,
    include_files: bool,
    settings_left_out: tuple[str, ...],
    made_at: int,
    progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> Written:
    """Write a backup of the profile to `target`, atomically: a temporary file beside it,
    flushed, renamed over it, the folder flushed; a backup cut off at any point leaves
    `target` as it was. Blocking (Argon2id, then the whole profile): run it on a thread."""
    writer = BackupWriter(passphrase, params)
    page_hmac = vault.read_header(profile).page_hmac
    folder = target.parent
    tmp = folder / f".{target.name}.tmp-{secrets.token_hex(4)}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise StoreError(f"cannot write the backup in {folder}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb", buffering=1024 * 1024) as out:
            sink = _Sink(out, writer, progress, cancel)
            conn = connection.open_reader(profile.database, key, page_hmac)
            try:
                conn.execute("BEGIN")
                schema = migrations.schema_version(conn)  # the snapshot starts here
                pages = int(conn.execute("PRAGMA page_count").fetchone()[0])
                page_bytes = pages * int(conn.execute("PRAGMA page_size").fetchone()[0])
                names: list[str] = []
                if include_files and "files" in table_names(conn):
                    names = [str(r[0]) for r in conn.execute("SELECT disk_name FROM files")]
                sink.total = int(page_bytes) + _blob_sizes(profile.directory, names)
                sink.put(
                    {"kind": KIND, "schema": schema, "made_at": made_at, "files": include_files}
                )
                messages = _dumptables(conn, sink, settings_left_out)
                conn.execute("COMMIT")
            finally:
                conn.close()
            files = _dump_blobs(profile.directory, names, sink)
            sink.put({"end": True, "blobs": files})
            sink.finish()
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
        paths.fsync_dir(folder)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise StoreError(f"cannot write the backup to {target}: {exc.strerror}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return Written(target, target.stat().st_size, messages, files, made_at)


# -- scheduled backups' folder ------------------------------------------------------------


def prune(folder: Path, is_ours: Callable[[str], bool], keep: int) -> list[str]:
    """Delete the oldest of the backups `is_ours` recognises beyond the newest `keep` (their
    names sort by time); returns the names deleted."""
    try:
        names = sorted(e.name for e in os.scandir(folder) if e.is_file() and is_ours(e.name))
    except OSError:
        return []
    gone = names[: max(0, len(names) - keep)]
    for name in gone:
        with contextlib.suppress(FileNotFoundError):
            (folder / name).unlink()
    if gone:
        paths.fsync_dir(folder)
    return gone


def sweep_partial(folder: Path, is_ours: Callable[[str], bool]) -> int:
    """Delete what a backup killed midway left of one of ours (`.NAME.tmp-XXXXXXXX`)."""
    gone = 0
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            name = entry.name
            base, sep, tail = name.rpartition(".tmp-")
            if sep and name.startswith(".") and len(tail) == 8 and is_ours(base[1:]):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    gone += 1
    return gone
