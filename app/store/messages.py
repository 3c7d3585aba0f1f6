"""Messages and the outbox, and the atomic units that tie them to ratchet sessions.

Each unit is one transaction: a crash leaves either all of it or none of it. Paging and
unread counts go through indexes and the trigger-maintained `unread_counts` table, so their
cost does not grow with history. The search index takes new messages in batches of
SEARCH_BATCH (see migration 6), and catches up before every search.
"""

# Column lists below are module constants; every value is bound as a parameter.
# ruff: noqa: S608

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from app.domain.messages import Direction, Message, MessageRow, Status

from .errors import NotFound
from .message_rows import MESSAGE_COLS, message_from_row, with_extras
from .records import NewMessage, NewOutbox, OutboxItem, OutboxKind, Stored
from .tx import atomic

SEARCH_BATCH = 128
_OUTBOX_COLS = (
    "id, contact_id, message_id, kind, mailbox_id, relay_url, ciphertext, attempts, next_try, "
    "created_at"
)


def index_for_search(conn: Any, newest: int | None = None) -> int:
    """Index the messages beyond the search mark: all of them when `newest` is None, else
    only once SEARCH_BATCH of them wait (`newest` being the id just stored). Returns how many
    were indexed. Runs inside the caller's transaction, or in one of its own."""
    upto = conn.execute("SELECT indexed_upto FROM search_progress").fetchone()[0]
    if newest is not None and newest - upto < SEARCH_BATCH:
        return 0
    top = conn.execute("SELECT coalesce(max(id), 0) FROM messages").fetchone()[0]
    if top <= upto:
        return 0
    with atomic(conn):
        cur = conn.execute(
            "INSERT INTO messages_fts (rowid, body) SELECT id, body FROM messages "
            "WHERE id > ? AND id <= ? ORDER BY id",
            (upto, top),
        )
        conn.execute("UPDATE search_progress SET indexed_upto = ?", (top,))
    return int(cur.rowcount)


def _outbox(row: Any) -> OutboxItem:
    return OutboxItem(
        row[0],
        row[1],
        row[2],
        OutboxKind(row[3]),
        bytes(row[4]),
        row[5],
        bytes(row[6]),
        row[7],
        row[8],
        row[9],
    )


class MessageRepo:
    """Conversation history: insert with duplicate detection, paging, read state, receipts."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def insert(self, message: NewMessage) -> Stored:
        """Store one message; a (contact, direction, msg_id) already stored is a duplicate."""
        with atomic(self._conn):
            row = self._insert(message)
            if row:
                index_for_search(self._conn, row)
        return Stored(False, row) if row else Stored(True)

    def insert_many(self, messages: Iterable[NewMessage]) -> int:
        """Store a batch (an imported or generated history) in one transaction; duplicates are
        skipped. Returns how many were new."""
        with atomic(self._conn):
            rows = [row for m in messages if (row := self._insert(m))]
            if rows:
                index_for_search(self._conn, max(rows))
            return len(rows)

    def _insert(self, m: NewMessage) -> int:
        cur = self._conn.execute(
            "INSERT INTO messages (contact_id, direction, msg_id, sender_seq, body, sent_at, "
            "received_at, status, is_read, kind, reply_to, timer_s, expires_at, author_keys) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (contact_id, direction, msg_id) DO NOTHING",
            (
                m.contact_id,
                int(m.direction),
                m.msg_id,
                m.sender_seq,
                m.body,
                m.sent_at,
                m.received_at,
                m.status.value,
                int(m.is_read),
                m.kind.value,
                m.reply_to,
                m.timer_s,
                m.expires_at,
                m.author_keys,
            ),
        )
        return int(cur.lastrowid) if cur.rowcount == 1 else 0

    def store_incoming(
        self, message: NewMessage, session_state: bytes, receipt: NewOutbox | None, now: int
    ) -> Stored:
        """Advance the session, store the received message, queue its receipt: one unit."""
        return self._store(message, session_state, receipt, now)

    def store_outgoing(
        self, message: NewMessage, session_state: bytes, outbox: NewOutbox, now: int
    ) -> Stored:
        """Advance the session, store our message, queue its ciphertext: one unit."""
        return self._store(message, session_state, outbox, now)

    def _store(
        self, message: NewMessage, state: bytes, outgoing: NewOutbox | None, now: int
    ) -> Stored:
        with atomic(self._conn):
            row = self._insert(message)
            if not row:
                return Stored(True)
            index_for_search(self._conn, row)
            self._conn.execute(
                "INSERT INTO sessions (contact_id, state, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (contact_id) DO UPDATE SET state = excluded.state, "
                "updated_at = excluded.updated_at",
                (message.contact_id, state, now),
            )
            box = None
            if outgoing is not None:
                linked = MessageRow(row) if message.direction is Direction.OUTGOING else None
                box = OutboxRepo(self._conn).add(outgoing, linked)
            return Stored(False, row, box)

    def requeue(
        self, row: int, msg_id: bytes, session_state: bytes, outbox: NewOutbox, now: int
    ) -> None:
        """A failed message goes out again as a new ciphertext: new id, queued, in the outbox."""
        with atomic(self._conn):
            cur = self._conn.execute(
                "UPDATE messages SET msg_id = ?, status = 'queued' WHERE id = ? "
                "AND direction = 1 AND status = 'failed'",
                (msg_id, row),
            )
            if cur.rowcount != 1:
                raise NotFound("no failed message with that id")
            self._conn.execute(
                "INSERT INTO sessions (contact_id, state, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (contact_id) DO UPDATE SET state = excluded.state, "
                "updated_at = excluded.updated_at",
                (outbox.contact_id, session_state, now),
            )
            OutboxRepo(self._conn).add(outbox, MessageRow(row))

    def get(self, row: int) -> Message:
        found = self._conn.execute(
            f"SELECT {MESSAGE_COLS} FROM messages WHERE id = ?", (row,)
        ).fetchone()
        if found is None:
            raise NotFound("no such message")
        return with_extras(self._conn, [message_from_row(found)])[0]

    def raise_status(self, row: int, status: Status, now: int) -> bool:
        """Move our message's status forward (never back); True if it moved."""
        lower = [s.value for s in Status if s is not status and s.may_become(status)]
        lower = [s for s in lower if s != Status.FAILED.value or status is Status.FAILED]
        cur = self._conn.execute(
            f"UPDATE messages SET status = ?, delivered_at = CASE WHEN ? THEN "
            f"coalesce(delivered_at, ?) ELSE delivered_at END WHERE id = ? AND direction = 1 "
            f"AND status IN ({','.join('?' * len(lower))})",
            (status.value, int(status is Status.DELIVERED), now, row, *lower),
        )
        return bool(cur.rowcount == 1)

    def incoming_bytes(self, contact_id: int) -> int:
        """How much the contact's messages to us take, in UTF-8 bytes of their text."""
        row = self._conn.execute(
            "SELECT COALESCE(SUM(length(CAST(body AS BLOB))), 0) FROM messages "
            "WHERE contact_id = ? AND direction = ?",
            (contact_id, int(Direction.INCOMING)),
        ).fetchone()
        return int(row[0])

    def find(self, contact_id: int, direction: Direction, msg_id: bytes) -> Message | None:
        found = self._conn.execute(
            f"SELECT {MESSAGE_COLS} FROM messages "
            "WHERE contact_id = ? AND direction = ? AND msg_id = ?",
            (contact_id, int(direction), msg_id),
        ).fetchone()
        return None if found is None else message_from_row(found)

    def page(self, contact_id: int, limit: int, before: int | None = None) -> list[Message]:
        """The newest `limit` messages with row id below `before`, newest first.

        The next page's cursor is the last returned message's `id`; an empty list means the
        start of the conversation was reached.
        """
        if limit <= 0:
            return []
        bound = before if before is not None else 2**63 - 1
        rows = self._conn.execute(
            f"SELECT {MESSAGE_COLS} FROM messages WHERE contact_id = ? AND id < ? "
            "ORDER BY id DESC LIMIT ?",
            (contact_id, bound, limit),
        ).fetchall()
        return with_extras(self._conn, [message_from_row(r) for r in rows])

    def first(self, contact_id: int) -> Message | None:
        """The oldest message of a conversation (a request's first message)."""
        found = self._conn.execute(
            f"SELECT {MESSAGE_COLS} FROM messages WHERE contact_id = ? ORDER BY id LIMIT 1",
            (contact_id,),
        ).fetchone()
        return None if found is None else message_from_row(found)

    def count(self, contact_id: int) -> int:
        row = self._conn.execute(
            "SELECT count(*) FROM messages WHERE contact_id = ?", (contact_id,)
        ).fetchone()
        return int(row[0])

    def unread_counts(self) -> dict[int, int]:
        """Unread incoming messages per contact, only contacts with any."""
        rows = self._conn.execute(
            "SELECT contact_id, unread FROM unread_counts WHERE unread > 0"
        ).fetchall()
        return {int(c): int(n) for c, n in rows}

    def unread_count(self, contact_id: int) -> int:
        """Unread incoming messages of one contact."""
        row = self._conn.execute(
            "SELECT unread FROM unread_counts WHERE contact_id = ?", (contact_id,)
        ).fetchone()
        return 0 if row is None else int(row[0])

    def mark_read(self, contact_id: int, up_to: int, now: int) -> list[bytes]:
        """Mark incoming messages up to row `up_to` read, and start the clock of those that
        disappear; returns their msg_ids (for receipts)."""
        with atomic(self._conn):
            rows = self._conn.execute(
                "SELECT id, msg_id FROM messages WHERE contact_id = ? AND is_read = 0 "
                "AND direction = 0 AND id <= ? ORDER BY id",
                (contact_id, up_to),
            ).fetchall()
            self._conn.executemany(
                "UPDATE messages SET is_read = 1, status = 'read', expires_at = CASE "
                "WHEN timer_s > 0 THEN ? + timer_s * 1000 END WHERE id = ?",
                [(now, r[0]) for r in rows],
            )
        return [bytes(r[1]) for r in rows]

    def acknowledge(
        self, contact_id: int, msg_ids: Iterable[bytes], status: Status, now: int = 0
    ) -> int:
        """A receipt arrived (at `now`): raise our messages' status, note when, and drop them
        from the outbox.

        Status never moves backwards (a late "delivered" after "read" is ignored). Returns how
        many of the named messages exist.
        """
        if status not in (Status.DELIVERED, Status.READ):
            raise ValueError("a receipt says delivered or read")
        lower = [s.value for s in Status if s is not status and s.may_become(status)]
        marks = ",".join("?" * len(lower))
        found = 0
        with atomic(self._conn):
            for msg_id in msg_ids:
                row = self._conn.execute(
                    "SELECT id FROM messages WHERE contact_id = ? AND direction = 1 AND msg_id = ?",
                    (contact_id, msg_id),
                ).fetchone()
                if row is None:
                    continue
                found += 1
                self._conn.execute(
                    f"UPDATE messages SET status = ? WHERE id = ? AND status IN ({marks})",
                    (status.value, row[0], *lower),
                )
                self._conn.execute(
                    "UPDATE messages SET delivered_at = coalesce(delivered_at, ?), read_at = "
                    "CASE WHEN ? THEN coalesce(read_at, ?) ELSE read_at END WHERE id = ?",
                    (now, int(status is Status.READ), now, row[0]),
                )
                self._conn.execute("DELETE FROM outbox WHERE message_id = ?", (row[0],))
            for msg_id in msg_ids:  # an update of ours, done
                self._conn.execute(
                    "DELETE FROM outbox WHERE contact_id = ? AND frame_id = ?", (contact_id, msg_id)
                )
        return found


class OutboxRepo:
    """Ciphertexts waiting to go out; resent as-is until acknowledged."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def add(self, item: NewOutbox, message_row: MessageRow | None = None) -> int:
        with atomic(self._conn):
            cur = self._conn.execute(
                "INSERT INTO outbox (contact_id, message_id, kind, mailbox_id, relay_url, "
                "ciphertext, next_try, created_at, frame_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    item.contact_id,
                    message_row,
                    item.kind.value,
                    item.mailbox_id,
                    item.relay_url,
                    item.ciphertext,
                    item.next_try,
                    item.created_at,
                    item.frame_id,
                ),
            )
        return int(cur.lastrowid)

    def due(self, now: int, limit: int = 100) -> list[OutboxItem]:
        """Items whose next try has come, oldest schedule first."""
        rows = self._conn.execute(
            f"SELECT {_OUTBOX_COLS} FROM outbox WHERE next_try <= ? ORDER BY next_try, id LIMIT ?",
            (now, limit),
        ).fetchall()
        return [_outbox(r) for r in rows]

    def next_due(self) -> int | None:
        """When the earliest item is due, for the sender's sleep; None when empty."""
        row = self._conn.execute("SELECT min(next_try) FROM outbox").fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def drop_frames(self, contact_id: int, frame_ids: Iterable[bytes]) -> None:
        """What waits for a contact under these frame ids is no longer sent."""
        with atomic(self._conn):
            for frame_id in frame_ids:
                self._conn.execute(
                    "DELETE FROM outbox WHERE contact_id = ? AND frame_id = ?",
                    (contact_id, frame_id),
                )

    def for_contact(self, contact_id: int) -> list[OutboxItem]:
        rows = self._conn.execute(
            f"SELECT {_OUTBOX_COLS} FROM outbox WHERE contact_id = ? ORDER BY id", (contact_id,)
        ).fetchall()
        return [_outbox(r) for r in rows]

    def retry_later(self, outbox_id: int, next_try: int) -> None:
        with atomic(self._conn):
            cur = self._conn.execute(
                "UPDATE outbox SET attempts = attempts + 1, next_try = ? WHERE id = ?",
                (next_try, outbox_id),
            )
            if cur.rowcount != 1:
                raise NotFound("no such outbox item")

    def sent(self, outbox_id: int, next_try: int) -> None:
        """The relay took it. Messages wait for their receipt and moves for the contact's
        answer (resent at next_try if none comes); receipts are done."""
        with atomic(self._conn):
            row = self._conn.execute(
                "SELECT kind, message_id FROM outbox WHERE id = ?", (outbox_id,)
            ).fetchone()
            if row is None:
                raise NotFound("no such outbox item")
            if row[0] == OutboxKind.RECEIPT.value:
                self._conn.execute("DELETE FROM outbox WHERE id = ?", (outbox_id,))
                return
            self._conn.execute(
                "UPDATE outbox SET attempts = attempts + 1, next_try = ? WHERE id = ?",
                (next_try, outbox_id),
            )
            if row[1] is not None:
                self._conn.execute(
                    "UPDATE messages SET status = 'sent' WHERE id = ? AND status = 'queued'",
                    (row[1],),
                )

    def fail(self, outbox_id: int) -> None:
        """Give up on an item: drop it and mark its message failed."""
        with atomic(self._conn):
            row = self._conn.execute(
                "SELECT message_id FROM outbox WHERE id = ?", (outbox_id,)
            ).fetchone()
            if row is None:
                raise NotFound("no such outbox item")
            self._conn.execute("DELETE FROM outbox WHERE id = ?", (outbox_id,))
            if row[0] is not None:
                self._conn.execute(
                    "UPDATE messages SET status = 'failed' WHERE id = ? "
                    "AND status IN ('queued', 'sent')",
                    (row[0],),
                )

    def reschedule(self, relay_url: str, mailbox_id: bytes | None, next_try: int) -> int:
        """Bring forward what waits for a relay (or one mailbox on it) that just came back."""
        with atomic(self._conn):
            if mailbox_id is None:
                cur = self._conn.execute(
                    "UPDATE outbox SET next_try = ? WHERE relay_url = ? AND next_try > ?",
                    (next_try, relay_url, next_try),
                )
            else:
                cur = self._conn.execute(
                    "UPDATE outbox SET next_try = ? WHERE relay_url = ? AND mailbox_id = ? "
                    "AND next_try > ?",
                    (next_try, relay_url, mailbox_id, next_try),
                )
        return int(cur.rowcount)

    def reschedule_mailbox(self, mailbox_id: bytes, next_try: int) -> int:
        """Bring forward what waits for one mailbox, whatever relay it is written through."""
        with atomic(self._conn):
            cur = self._conn.execute(
                "UPDATE outbox SET next_try = ? WHERE mailbox_id = ? AND next_try > ?",
                (next_try, mailbox_id, next_try),
            )
        return int(cur.rowcount)

    def readdress(self, contact_id: int, old: bytes, new: bytes, relay_url: str) -> int:
        """What still waits for a mailbox the peer replaced goes to the new one instead (the
        same ciphertext: the peer's session opens it wherever it arrives)."""
        with atomic(self._conn):
            cur = self._conn.execute(
                "UPDATE outbox SET mailbox_id = ?, relay_url = ? "
                "WHERE contact_id = ? AND mailbox_id = ?",
                (new, relay_url, contact_id, old),
            )
        return int(cur.rowcount)

    def drop_handshake_controls(self, contact_id: int) -> int:
        """The peer answered: our introduction or welcome (resent until now) is done."""
        with atomic(self._conn):
            cur = self._conn.execute(
                "DELETE FROM outbox WHERE contact_id = ? AND kind = 'message' "
                "AND message_id IS NULL",
                (contact_id,),
            )
        return int(cur.rowcount)

    def drop_moves(self, contact_id: int) -> int:
        """The contact answered on the mailbox our move named: the move is done."""
        with atomic(self._conn):
            cur = self._conn.execute(
                "DELETE FROM outbox WHERE contact_id = ? AND kind = 'control' AND frame_id IS NULL",
                (contact_id,),
            )
        return int(cur.rowcount)

    def has_moves(self, contact_id: int) -> bool:
        row = self._conn.execute(
            "SELECT 1 FROM outbox WHERE contact_id = ? AND kind = 'control' "
            "AND frame_id IS NULL LIMIT 1",
            (contact_id,),
        ).fetchone()
        return row is not None

    def has_handshake_controls(self, contact_id: int) -> bool:
        row = self._conn.execute(
            "SELECT 1 FROM outbox WHERE contact_id = ? AND kind = 'message' "
            "AND message_id IS NULL LIMIT 1",
            (contact_id,),
        ).fetchone()
        return row is not None

    def count(self) -> int:
        row = self._conn.execute("SELECT count(*) FROM outbox").fetchone()
        return int(row[0])
