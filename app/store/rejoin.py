"""The prekeys with which a profile restored from a backup reconnects its contacts.

Per contact: our private prekey for them (`rejoin_ours`, never backed up), their public one
for us (`rejoin_theirs`), and whether a restore left a fresh handshake owed (`rejoin_due`).
All three belong to the channel: when it is forgotten, so are they.
"""

from __future__ import annotations

from typing import Any

from .tx import atomic


class RejoinRepo:
    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def ours(self, contact_id: int) -> bytes | None:
        row = self._conn.execute(
            "SELECT rejoin_ours FROM contacts WHERE id = ?", (contact_id,)
        ).fetchone()
        return None if row is None or row[0] is None else bytes(row[0])

    def theirs(self, contact_id: int) -> bytes | None:
        row = self._conn.execute(
            "SELECT rejoin_theirs FROM contacts WHERE id = ?", (contact_id,)
        ).fetchone()
        return None if row is None or row[0] is None else bytes(row[0])

    def set_ours(self, contact_id: int, private: bytes) -> None:
        with atomic(self._conn):
            self._conn.execute(
                "UPDATE contacts SET rejoin_ours = ? WHERE id = ?", (private, contact_id)
            )

    def set_theirs(self, contact_id: int, public: bytes) -> None:
        with atomic(self._conn):
            self._conn.execute(
                "UPDATE contacts SET rejoin_theirs = ? WHERE id = ?", (public, contact_id)
            )

    def forget(self, contact_id: int) -> None:
        """The channel is gone: its prekeys and any handshake owed go with it."""
        with atomic(self._conn):
            self._conn.execute(
                "UPDATE contacts SET rejoin_ours = NULL, rejoin_theirs = NULL, rejoin_due = 0 "
                "WHERE id = ?",
                (contact_id,),
            )

    def due(self) -> list[int]:
        """Contacts a restore left a fresh handshake owed to, oldest first."""
        rows = self._conn.execute("SELECT id FROM contacts WHERE rejoin_due = 1 ORDER BY id")
        return [int(r[0]) for r in rows.fetchall()]

    def to_offer(self) -> list[int]:
        """Live channels for which the contact holds no prekey of ours yet: a contact or a
        member with a session, a mailbox to write to, and no welcome awaited."""
        rows = self._conn.execute(
            "SELECT c.id FROM contacts c JOIN sessions s ON s.contact_id = c.id "
            "WHERE c.rejoin_ours IS NULL AND c.state = 'contact' AND c.kind != 'group' "
            "AND c.awaiting_welcome = 0 "
            "AND EXISTS (SELECT 1 FROM their_mailboxes t WHERE t.contact_id = c.id) "
            "ORDER BY c.id"
        )
        return [int(r[0]) for r in rows.fetchall()]
