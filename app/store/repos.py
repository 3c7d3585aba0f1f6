"""All repositories over one connection, handed to a unit of work."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from app.domain.messages import SearchHit

from . import search as _search
from .channels import HandshakeRepo, MailboxRepo
from .conversation import ConversationRepo
from .files import FileRepo
from .groups import GroupRepo
from .messages import MessageRepo, OutboxRepo
from .people import ContactRepo, ProfileRepo, SessionRepo, SettingsRepo, merge_contact
from .rejoin import RejoinRepo


@dataclass(frozen=True)
class Repos:
    conn: Any
    profile: ProfileRepo = field(init=False)
    settings: SettingsRepo = field(init=False)
    contacts: ContactRepo = field(init=False)
    sessions: SessionRepo = field(init=False)
    mailboxes: MailboxRepo = field(init=False)
    handshakes: HandshakeRepo = field(init=False)
    messages: MessageRepo = field(init=False)
    outbox: OutboxRepo = field(init=False)
    conversation: ConversationRepo = field(init=False)
    files: FileRepo = field(init=False)
    groups: GroupRepo = field(init=False)
    rejoin: RejoinRepo = field(init=False)

    def __post_init__(self) -> None:
        for name, cls in (
            ("profile", ProfileRepo),
            ("settings", SettingsRepo),
            ("contacts", ContactRepo),
            ("sessions", SessionRepo),
            ("mailboxes", MailboxRepo),
            ("handshakes", HandshakeRepo),
            ("messages", MessageRepo),
            ("outbox", OutboxRepo),
            ("conversation", ConversationRepo),
            ("files", FileRepo),
            ("groups", GroupRepo),
            ("rejoin", RejoinRepo),
        ):
            object.__setattr__(self, name, cls(self.conn))

    def merge_contact(self, source: int, target: int) -> None:
        """Move a request's session, mailboxes, messages and outbox into `target`."""
        merge_contact(self.conn, source, target)

    def search(
        self, text: str, limit: int = 50, contact_id: int | None = None, before: int | None = None
    ) -> list[SearchHit]:
        return _search.search(self.conn, text, limit, contact_id, before)
