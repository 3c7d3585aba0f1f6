"""What a conversation does to stored messages besides adding them: edits, deletion (for us or
for everyone), reactions, disappearing messages running out, and the updates already applied.

A deleted message leaves the search index with it: the triggers of migration 6 take out what
was indexed, and migration 11 made FTS5 remove a deleted row's words from its pages (with
`secure_delete` zeroing what SQLite frees).
"""

# Column lists below are module constants; every value is bound as a parameter.
# ruff: noqa: S608

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from app.domain.messages import Direction, Message, MessageRow

from .message_rows import MESSAGE_COLS, message_from_row
from .tx import atomic


class ConversationRepo:
    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def find_text(
        self, contact_id: int, msg_id: bytes, direction: Direction | None = None
    ) -> Message | None:
        """A text message of the conversation by its wire id (either side's unless
        `direction` says which), not deleted; None otherwise."""
        directions = (0, 1) if direction is None else (int(direction), int(direction))
        found = self._conn.execute(
            f"SELECT {MESSAGE_COLS} FROM messages WHERE contact_id = ? AND direction IN (?, ?) "
            "AND msg_id = ? AND kind = 'text' AND deleted = 0 LIMIT 1",
            (contact_id, *directions, msg_id),
        ).fetchone()
        return None if found is None else message_from_row(found)

    def edit(self, row: int, body: str, at: int) -> bool:
        """The message now reads `body`, unless an edit made later (by `at`, the sender's
        clock) is already in place; returns whether it changed."""
        with atomic(self._conn):
            cur = self._conn.execute(
                "UPDATE messages SET body = ?, edited_at = ? WHERE id = ? AND kind = 'text' "
                "AND deleted = 0 AND (edited_at IS NULL OR edited_at < ?)",
                (body, at, row, at),
            )
        return bool(cur.rowcount)

    def delete_for_everyone(self, row: int) -> bool:
        """The message's text, reactions, quote and file go; its row stays to say it was
        deleted."""
        with atomic(self._conn):
            cur = self._conn.execute(
                "UPDATE messages SET body = '', deleted = 1, reply_to = NULL, edited_at = NULL "
                "WHERE id = ? AND kind = 'text' AND deleted = 0",
                (row,),
            )
            self._conn.execute("DELETE FROM reactions WHERE message_id = ?", (row,))
            self._conn.execute("DELETE FROM files WHERE message_id = ?", (row,))
        return bool(cur.rowcount)

    def delete(self, rows: Iterable[int]) -> int:
        """Delete these messages outright (with their reactions and what waits to send them)."""
        with atomic(self._conn):
            cur = self._conn.executemany("DELETE FROM messages WHERE id = ?", [(r,) for r in rows])
        return int(cur.rowcount)

    def react(self, row: int, from_me: bool, emoji: str, at: int) -> bool:
        """Set (or, with "", take back) one side's reaction, unless that side changed it later
        (by `at`, its clock); returns whether what shows changed. A reaction taken back stays
        as an empty row, so an older one arriving late cannot bring it back."""
        with atomic(self._conn):
            current = self._conn.execute(
                "SELECT at, emoji FROM reactions WHERE message_id = ? AND from_me = ?",
                (row, int(from_me)),
            ).fetchone()
            if current is not None and current[0] > at:
                return False
            self._conn.execute(
                "INSERT INTO reactions (message_id, from_me, emoji, at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (message_id, from_me) DO UPDATE SET emoji = excluded.emoji, "
                "at = excluded.at",
                (row, int(from_me), emoji, at),
            )
        return (current[1] if current is not None else "") != emoji

    def expire(self, now: int) -> list[tuple[int, MessageRow]]:
        """Delete every message whose time ran out; returns (contact, row) of each."""
        with atomic(self._conn):
            rows = self._conn.execute(
                "SELECT contact_id, id FROM messages WHERE expires_at <= ?", (now,)
            ).fetchall()
            self._conn.executemany("DELETE FROM messages WHERE id = ?", [(r[1],) for r in rows])
        return [(int(c), MessageRow(r)) for c, r in rows]

    def next_expiry(self) -> int | None:
        """When the next disappearing message runs out (ms), or None."""
        row = self._conn.execute("SELECT min(expires_at) FROM messages").fetchone()
        return None if row[0] is None else int(row[0])

    def applied(self, contact_id: int, frame_id: bytes) -> bool:
        """Whether this update of the contact's was applied already."""
        row = self._conn.execute(
            "SELECT 1 FROM received_updates WHERE contact_id = ? AND frame_id = ?",
            (contact_id, frame_id),
        ).fetchone()
        return row is not None

    def remember(self, contact_id: int, frame_id: bytes, now: int) -> bool:
        """Note an update as applied; False when it was already (a resend)."""
        cur = self._conn.execute(
            "INSERT INTO received_updates (contact_id, frame_id, at) VALUES (?, ?, ?) "
            "ON CONFLICT DO NOTHING",
            (contact_id, frame_id, now),
        )
        return bool(cur.rowcount)

    def forget_applied(self, before: int) -> int:
        """Forget updates applied before `before` (their senders stopped resending)."""
        with atomic(self._conn):
            cur = self._conn.execute("DELETE FROM received_updates WHERE at < ?", (before,))
        return int(cur.rowcount)
