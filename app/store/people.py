"""Repositories for the profile, settings, contacts (with key history) and ratchet sessions."""

# Column lists below are module constants; every value is bound as a parameter.
# ruff: noqa: S608

from __future__ import annotations

from typing import Any

from app.domain.contacts import Contact, ContactKind, ContactState

from .errors import NotFound, StoreError
from .records import KeyHistoryEntry, Profile
from .tx import atomic

_CONTACT_COLS = (
    "id, display_name, identity_keys, verified, created_at, state, awaiting_welcome, "
    "EXISTS (SELECT 1 FROM blocked_keys b WHERE b.identity_keys = contacts.identity_keys), "
    "timer_s, kind"
)


def _contact(row: Any) -> Contact:
    return Contact(
        row[0],
        row[1],
        bytes(row[2]),
        bool(row[3]),
        row[4],
        ContactState(row[5]),
        bool(row[6]),
        bool(row[7]),
        row[8],
        ContactKind(row[9]),
    )


class ProfileRepo:
    """The single profile row: identity private key blob and display name."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def get(self) -> Profile | None:
        row = self._conn.execute(
            "SELECT identity, display_name, created_at FROM profile WHERE id = 1"
        ).fetchone()
        return None if row is None else Profile(bytes(row[0]), row[1], row[2])

    def create(self, identity: bytes, display_name: str, now: int) -> Profile:
        with atomic(self._conn):
            if self.get() is not None:
                raise StoreError("this profile already has an identity")
            self._conn.execute(
                "INSERT INTO profile (id, identity, display_name, created_at) VALUES (1, ?, ?, ?)",
                (identity, display_name, now),
            )
        return Profile(identity, display_name, now)

    def set_identity(self, identity: bytes) -> None:
        self._update("identity", identity)

    def set_display_name(self, display_name: str) -> None:
        self._update("display_name", display_name)

    def _update(self, column: str, value: object) -> None:
        with atomic(self._conn):
            cur = self._conn.execute(f"UPDATE profile SET {column} = ? WHERE id = 1", (value,))
            if cur.rowcount != 1:
                raise NotFound("the profile has no identity yet")


class SettingsRepo:
    """Small string settings by key; callers choose the encoding (JSON, numbers...)."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def get(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set(self, key: str, value: str) -> None:
        with atomic(self._conn):
            self._conn.execute(
                "INSERT INTO settings (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def delete(self, key: str) -> None:
        with atomic(self._conn):
            self._conn.execute("DELETE FROM settings WHERE key = ?", (key,))

    def all(self) -> dict[str, str]:
        return dict(self._conn.execute("SELECT key, value FROM settings ORDER BY key").fetchall())


class ContactRepo:
    """Contacts and requests, their verification, their key history, and blocked keys."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def add(
        self,
        display_name: str,
        identity_keys: bytes,
        now: int,
        verified: bool = False,
        state: ContactState = ContactState.CONTACT,
        awaiting_welcome: bool = False,
        kind: ContactKind = ContactKind.PERSON,
    ) -> Contact:
        with atomic(self._conn):
            cur = self._conn.execute(
                "INSERT INTO contacts (display_name, identity_keys, verified, created_at, state, "
                "awaiting_welcome, kind) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    display_name,
                    identity_keys,
                    int(verified),
                    now,
                    state.value,
                    awaiting_welcome,
                    kind.value,
                ),
            )
            return self.get(int(cur.lastrowid))

    def get(self, contact_id: int) -> Contact:
        row = self._conn.execute(
            f"SELECT {_CONTACT_COLS} FROM contacts WHERE id = ?", (contact_id,)
        ).fetchone()
        if row is None:
            raise NotFound("no such contact")
        return _contact(row)

    def find_by_identity(self, identity_keys: bytes) -> Contact | None:
        """The row of these keys (a person's or a member's, never a group's); a live one
        (contact or request) before an ended one."""
        row = self._conn.execute(
            f"SELECT {_CONTACT_COLS} FROM contacts WHERE identity_keys = ? "
            "AND kind != 'group' ORDER BY state = 'ended', id LIMIT 1",
            (identity_keys,),
        ).fetchone()
        return None if row is None else _contact(row)

    def all(
        self, *states: ContactState, kinds: tuple[ContactKind, ...] = (ContactKind.PERSON,)
    ) -> list[Contact]:
        """Every row of these kinds (people by default), or only those in the given states,
        oldest first."""
        where = f"kind IN ({','.join('?' * len(kinds))})"
        args: list[str] = [k.value for k in kinds]
        if states:
            where += f" AND state IN ({','.join('?' * len(states))})"
            args += [s.value for s in states]
        rows = self._conn.execute(
            f"SELECT {_CONTACT_COLS} FROM contacts WHERE {where} ORDER BY id", args
        )
        return [_contact(r) for r in rows.fetchall()]

    def count(self, state: ContactState, kind: ContactKind = ContactKind.PERSON) -> int:
        row = self._conn.execute(
            "SELECT count(*) FROM contacts WHERE state = ? AND kind = ?", (state.value, kind.value)
        )
        return int(row.fetchone()[0])

    def set_kind(self, contact_id: int, kind: ContactKind) -> None:
        self._set(contact_id, "kind", kind.value)

    def rename(self, contact_id: int, display_name: str) -> None:
        self._set(contact_id, "display_name", display_name)

    def set_verified(self, contact_id: int, verified: bool) -> None:
        self._set(contact_id, "verified", int(verified))

    def set_state(self, contact_id: int, state: ContactState) -> None:
        self._set(contact_id, "state", state.value)

    def set_timer(self, contact_id: int, timer_s: int, at: int) -> bool:
        """Set the conversation's disappearing-messages timer, unless a setting made later
        (by `at`, the setting side's clock) is already in place; returns whether it was."""
        with atomic(self._conn):
            cur = self._conn.execute(
                "UPDATE contacts SET timer_s = ?, timer_at = ? WHERE id = ? AND timer_at <= ?",
                (timer_s, at, contact_id, at),
            )
        return bool(cur.rowcount)

    def set_awaiting_welcome(self, contact_id: int, waiting: bool) -> None:
        self._set(contact_id, "awaiting_welcome", int(waiting))

    def replace_keys(self, contact_id: int, identity_keys: bytes, now: int) -> Contact:
        """New identity keys for a contact: the old ones go to history, verification resets."""
        with atomic(self._conn):
            contact = self.get(contact_id)
            if contact.identity_keys == identity_keys:
                return contact
            self._conn.execute(
                "INSERT INTO contact_key_history (contact_id, identity_keys, replaced_at) "
                "VALUES (?, ?, ?)",
                (contact_id, contact.identity_keys, now),
            )
            self._conn.execute(
                "UPDATE contacts SET identity_keys = ?, verified = 0 WHERE id = ?",
                (identity_keys, contact_id),
            )
            return self.get(contact_id)

    def key_history(self, contact_id: int) -> list[KeyHistoryEntry]:
        rows = self._conn.execute(
            "SELECT identity_keys, replaced_at FROM contact_key_history "
            "WHERE contact_id = ? ORDER BY id",
            (contact_id,),
        ).fetchall()
        return [KeyHistoryEntry(bytes(r[0]), r[1]) for r in rows]

    def delete(self, contact_id: int) -> None:
        """Remove the contact and (by cascade) its session, mailboxes, messages and outbox."""
        with atomic(self._conn):
            if self._conn.execute("DELETE FROM contacts WHERE id = ?", (contact_id,)).rowcount != 1:
                raise NotFound("no such contact")

    def block(self, identity_keys: bytes, now: int) -> None:
        with atomic(self._conn):
            self._conn.execute(
                "INSERT INTO blocked_keys (identity_keys, blocked_at) VALUES (?, ?) "
                "ON CONFLICT (identity_keys) DO NOTHING",
                (identity_keys, now),
            )

    def unblock(self, identity_keys: bytes) -> bool:
        with atomic(self._conn):
            cur = self._conn.execute(
                "DELETE FROM blocked_keys WHERE identity_keys = ?", (identity_keys,)
            )
        return bool(cur.rowcount)

    def is_blocked(self, identity_keys: bytes) -> bool:
        row = self._conn.execute(
            "SELECT 1 FROM blocked_keys WHERE identity_keys = ?", (identity_keys,)
        ).fetchone()
        return row is not None

    def _set(self, contact_id: int, column: str, value: object) -> None:
        with atomic(self._conn):
            cur = self._conn.execute(
                f"UPDATE contacts SET {column} = ? WHERE id = ?", (value, contact_id)
            )
            if cur.rowcount != 1:
                raise NotFound("no such contact")


def merge_contact(conn: Any, source: int, target: int) -> None:
    """Move everything of `source` (a request) into `target`, then delete `source`.

    The session, both sides' mailboxes, the handshake links, the messages (with their unread
    count) and the outbox go to `target`; `target`'s own session and mailboxes must already be
    gone. One transaction.
    """
    with atomic(conn):
        conn.execute("DELETE FROM sessions WHERE contact_id = ?", (target,))
        for table in (
            "sessions",
            "our_mailboxes",
            "their_mailboxes",
            "handshake_links",
            "outbox",
            "received_updates",
        ):
            conn.execute(
                f"UPDATE {table} SET contact_id = ? WHERE contact_id = ?", (target, source)
            )
        conn.execute(
            "UPDATE OR IGNORE messages SET contact_id = ? WHERE contact_id = ?", (target, source)
        )
        conn.execute("DELETE FROM contacts WHERE id = ?", (source,))
        conn.execute(
            "INSERT INTO unread_counts (contact_id, unread) SELECT ?, count(*) FROM messages "
            "WHERE contact_id = ? AND direction = 0 AND is_read = 0 "
            "ON CONFLICT (contact_id) DO UPDATE SET unread = excluded.unread",
            (target, target),
        )


class SessionRepo:
    """Ratchet state per contact, as the crypto core's opaque versioned blob."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def load(self, contact_id: int) -> bytes | None:
        row = self._conn.execute(
            "SELECT state FROM sessions WHERE contact_id = ?", (contact_id,)
        ).fetchone()
        return None if row is None else bytes(row[0])

    def save(self, contact_id: int, state: bytes, now: int) -> None:
        with atomic(self._conn):
            self._conn.execute(
                "INSERT INTO sessions (contact_id, state, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (contact_id) DO UPDATE SET state = excluded.state, "
                "updated_at = excluded.updated_at",
                (contact_id, state, now),
            )

    def delete(self, contact_id: int) -> None:
        with atomic(self._conn):
            self._conn.execute("DELETE FROM sessions WHERE contact_id = ?", (contact_id,))
