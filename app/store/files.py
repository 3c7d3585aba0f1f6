"""Files: the row of each file sent or received, with the bitmap of the pieces held."""

# Column lists below are module constants; every value is bound as a parameter.
# ruff: noqa: S608

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from app.domain.files import FileInfo, FileRow, FileState
from app.domain.messages import Direction, MessageRow

from .errors import NotFound
from .tx import atomic

FILE_COLS = (
    "id, message_id, contact_id, direction, name, size, mime, sha256, state, received_bytes, "
    "sent_bytes, error, thumbnail"
)


def file_from_row(row: Any) -> FileInfo:
    return FileInfo(
        FileRow(row[0]),
        MessageRow(row[1]),
        row[2],
        Direction(row[3]),
        row[4],
        row[5],
        row[6],
        bytes(row[7]),
        FileState(row[8]),
        row[9],
        row[10],
        row[11],
        bytes(row[12]),
    )


@dataclass(frozen=True, slots=True)
class NewFile:
    """A file to record with its message: what the offer said, and where it rests."""

    contact_id: int
    direction: Direction
    file_id: bytes
    name: str
    size: int
    mime: str
    sha256: bytes
    file_key: bytes
    thumbnail: bytes
    disk_name: str
    state: FileState


@dataclass(frozen=True, slots=True)
class Transfer:
    """What moving a file needs besides what a person sees of it."""

    info: FileInfo
    file_id: bytes
    file_key: bytes
    disk_name: str
    held: bytes


class FileRepo:
    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def add(self, message_row: int, f: NewFile) -> FileRow:
        cur = self._conn.execute(
            "INSERT INTO files (message_id, contact_id, direction, file_id, name, size, mime, "
            "sha256, file_key, thumbnail, disk_name, state) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                message_row,
                f.contact_id,
                int(f.direction),
                f.file_id,
                f.name,
                f.size,
                f.mime,
                f.sha256,
                f.file_key,
                f.thumbnail,
                f.disk_name,
                f.state.value,
            ),
        )
        return FileRow(int(cur.lastrowid))

    def get(self, row: int) -> FileInfo:
        found = self._conn.execute(f"SELECT {FILE_COLS} FROM files WHERE id = ?", (row,)).fetchone()
        if found is None:
            raise NotFound("no such file")
        return file_from_row(found)

    def for_messages(self, rows: Iterable[int]) -> dict[int, FileInfo]:
        wanted = list(rows)  # SQLite takes an empty IN ()
        marks = ",".join("?" * len(wanted))
        return {
            r[1]: file_from_row(r)
            for r in self._conn.execute(
                f"SELECT {FILE_COLS} FROM files WHERE message_id IN ({marks})", wanted
            )
        }

    def all(self, contact_id: int | None = None) -> list[FileInfo]:
        """Every file (of one contact), oldest first."""
        if contact_id is None:
            rows = self._conn.execute(f"SELECT {FILE_COLS} FROM files ORDER BY id")
        else:
            rows = self._conn.execute(
                f"SELECT {FILE_COLS} FROM files WHERE contact_id = ? ORDER BY id", (contact_id,)
            )
        return [file_from_row(r) for r in rows]

    def transfer(self, row: int) -> Transfer:
        found = self._conn.execute(
            f"SELECT {FILE_COLS}, file_id, file_key, disk_name, held FROM files WHERE id = ?",
            (row,),
        ).fetchone()
        if found is None:
            raise NotFound("no such file")
        return Transfer(
            file_from_row(found), bytes(found[13]), bytes(found[14]), found[15], bytes(found[16])
        )

    def unfinished(self) -> list[Transfer]:
        """Transfers to take up again: downloads wanted, and files of ours the receiver does
        not have whole yet (a cancelled one too: its receiver is told so when it asks)."""
        ids = self._conn.execute(
            "SELECT id FROM files WHERE (direction = 0 AND state IN ('queued', 'transferring')) "
            "OR (direction = 1 AND state != 'complete')"
        ).fetchall()
        return [self.transfer(r[0]) for r in ids]

    def disk_names(self) -> set[str]:
        return {r[0] for r in self._conn.execute("SELECT disk_name FROM files")}

    def set_state(
        self, row: int, state: FileState, error: str = "", *, reset: bool = False
    ) -> bool:
        """Move to `state` (with `error` for FAILED); `reset` also forgets the pieces held.
        False when the file is gone."""
        with atomic(self._conn):
            cur = self._conn.execute(
                "UPDATE files SET state = ?, error = ? WHERE id = ?", (state.value, error, row)
            )
            if reset:
                self._conn.execute(
                    "UPDATE files SET held = x'', received_bytes = 0 WHERE id = ?", (row,)
                )
        return bool(cur.rowcount)

    def hold(self, row: int, held: bytes, received_bytes: int, state: FileState) -> bool:
        """Record the pieces now on disk (flushed before this is called). False when gone."""
        cur = self._conn.execute(
            "UPDATE files SET held = ?, received_bytes = ?, state = ? WHERE id = ?",
            (held, received_bytes, state.value, row),
        )
        return bool(cur.rowcount)

    def progress(self, row: int, sent_bytes: int, received_bytes: int) -> None:
        """An outgoing file's counters: bytes sent, bytes the receiver said it holds."""
        self._conn.execute(
            "UPDATE files SET sent_bytes = ?, received_bytes = max(received_bytes, ?) WHERE id = ?",
            (sent_bytes, received_bytes, row),
        )

    def held_bytes(self, contact_id: int) -> int:
        """How much of the contact's files we hold or have chosen to fetch."""
        row = self._conn.execute(
            "SELECT coalesce(sum(size), 0) FROM files WHERE contact_id = ? AND direction = 0 "
            "AND state IN ('queued', 'transferring', 'complete')",
            (contact_id,),
        ).fetchone()
        return int(row[0])
