"""Repositories for mailboxes (ours and theirs) and the handshakes we accepted."""

# Column lists below are module constants; every value is bound as a parameter.
# ruff: noqa: S608

from __future__ import annotations

from typing import Any

from .errors import MailboxInUse
from .records import HandshakeLink, MailboxPurpose, OurMailbox, TheirMailbox
from .tx import atomic

_OURS = "id, private_key, relay_url, purpose, contact_id, created_at, fallbacks"
_THEIRS = "id, relay_url, contact_id, created_at, fallbacks"


def _urls(text: str) -> tuple[str, ...]:
    return tuple(text.split())


def _ours(row: Any) -> OurMailbox:
    return OurMailbox(
        bytes(row[0]),
        bytes(row[1]),
        row[2],
        MailboxPurpose(row[3]),
        row[4],
        row[5],
        _urls(row[6]),
    )


def _theirs(row: Any) -> TheirMailbox:
    return TheirMailbox(bytes(row[0]), row[1], row[2], row[3], _urls(row[4]))


class MailboxRepo:
    """Mailboxes we listen on (with their private keys) and mailboxes we send to."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def add_ours(self, mailbox: OurMailbox) -> None:
        with atomic(self._conn):
            if self.in_use(mailbox.id):
                raise MailboxInUse("that mailbox already belongs to someone")
            self._conn.execute(
                f"INSERT INTO our_mailboxes ({_OURS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    mailbox.id,
                    mailbox.private_key,
                    mailbox.relay_url,
                    mailbox.purpose.value,
                    mailbox.contact_id,
                    mailbox.created_at,
                    " ".join(mailbox.fallbacks),
                ),
            )

    def rehome(self, mailbox_id: bytes, relays: tuple[str, ...]) -> None:
        """One of our mailboxes listens on other relays from now on (the address, after a
        move: the same mailbox, so a new card of it)."""
        with atomic(self._conn):
            self._conn.execute(
                "UPDATE our_mailboxes SET relay_url = ?, fallbacks = ? WHERE id = ?",
                (relays[0], " ".join(relays[1:]), mailbox_id),
            )

    def get_ours(self, mailbox_id: bytes) -> OurMailbox | None:
        row = self._conn.execute(
            f"SELECT {_OURS} FROM our_mailboxes WHERE id = ?", (mailbox_id,)
        ).fetchone()
        return None if row is None else _ours(row)

    def list_ours(
        self, contact_id: int | None = None, purpose: MailboxPurpose | None = None
    ) -> list[OurMailbox]:
        sql = f"SELECT {_OURS} FROM our_mailboxes WHERE 1 = 1"
        args: list[object] = []
        if contact_id is not None:
            sql += " AND contact_id = ?"
            args.append(contact_id)
        if purpose is not None:
            sql += " AND purpose = ?"
            args.append(purpose.value)
        rows = self._conn.execute(sql + " ORDER BY created_at, id", args).fetchall()
        return [_ours(r) for r in rows]

    def delete_ours(self, mailbox_id: bytes) -> bool:
        with atomic(self._conn):
            cur = self._conn.execute("DELETE FROM our_mailboxes WHERE id = ?", (mailbox_id,))
        return bool(cur.rowcount)

    def add_theirs(self, mailbox: TheirMailbox) -> None:
        """A peer's mailbox; an id already known (theirs or ours) is refused, never moved."""
        with atomic(self._conn):
            if self.in_use(mailbox.id):
                raise MailboxInUse("that mailbox already belongs to someone")
            self._conn.execute(
                f"INSERT INTO their_mailboxes ({_THEIRS}) VALUES (?, ?, ?, ?, ?)",
                (
                    mailbox.id,
                    mailbox.relay_url,
                    mailbox.contact_id,
                    mailbox.created_at,
                    " ".join(mailbox.fallbacks),
                ),
            )

    def in_use(self, mailbox_id: bytes) -> bool:
        """True when the id is one of ours or any contact's: a mailbox id belongs to one
        contact and one direction for its whole life."""
        row = self._conn.execute(
            "SELECT 1 FROM their_mailboxes WHERE id = ? UNION ALL "
            "SELECT 1 FROM our_mailboxes WHERE id = ? LIMIT 1",
            (mailbox_id, mailbox_id),
        ).fetchone()
        return row is not None

    def list_theirs(self, contact_id: int) -> list[TheirMailbox]:
        """Newest first: the mailbox to send to is the first one."""
        rows = self._conn.execute(
            f"SELECT {_THEIRS} FROM their_mailboxes "
            "WHERE contact_id = ? ORDER BY created_at DESC, id",
            (contact_id,),
        ).fetchall()
        return [_theirs(r) for r in rows]

    def get_theirs(self, mailbox_id: bytes) -> TheirMailbox | None:
        row = self._conn.execute(
            f"SELECT {_THEIRS} FROM their_mailboxes WHERE id = ?", (mailbox_id,)
        ).fetchone()
        return None if row is None else _theirs(row)

    def uses_relay(self, url: str) -> bool:
        """Whether any mailbox, ours or a contact's, or anything waiting in the outbox still
        needs this relay (as its relay or a fallback)."""
        padded = f" {url} "
        row = self._conn.execute(
            "SELECT 1 FROM our_mailboxes "
            "WHERE relay_url = ?1 OR instr(' ' || fallbacks || ' ', ?2) > 0 "
            "UNION ALL SELECT 1 FROM their_mailboxes "
            "WHERE relay_url = ?1 OR instr(' ' || fallbacks || ' ', ?2) > 0 "
            "UNION ALL SELECT 1 FROM outbox WHERE relay_url = ?1 LIMIT 1",
            (url, padded),
        ).fetchone()
        return row is not None

    def delete_theirs(self, mailbox_id: bytes) -> bool:
        with atomic(self._conn):
            cur = self._conn.execute("DELETE FROM their_mailboxes WHERE id = ?", (mailbox_id,))
        return bool(cur.rowcount)


class HandshakeRepo:
    """The handshakes we accepted, by replay id, and the contacts they made."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def put(self, link: HandshakeLink) -> None:
        with atomic(self._conn):
            self._conn.execute(
                "INSERT INTO handshake_links (id, contact_id, mailbox_id, created_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                "contact_id = excluded.contact_id, mailbox_id = excluded.mailbox_id",
                (link.id, link.contact_id, link.mailbox_id, link.created_at),
            )

    def get(self, replay_id: bytes) -> HandshakeLink | None:
        row = self._conn.execute(
            "SELECT id, contact_id, mailbox_id, created_at FROM handshake_links WHERE id = ?",
            (replay_id,),
        ).fetchone()
        return None if row is None else _link(row)

    def all(self) -> list[HandshakeLink]:
        rows = self._conn.execute(
            "SELECT id, contact_id, mailbox_id, created_at FROM handshake_links "
            "ORDER BY created_at, id"
        ).fetchall()
        return [_link(r) for r in rows]


def _link(row: Any) -> HandshakeLink:
    mailbox = None if row[2] is None else bytes(row[2])
    return HandshakeLink(bytes(row[0]), row[1], mailbox, row[3])
