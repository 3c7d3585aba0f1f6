"""Storage-only rows: what repositories take and return besides the domain values
(app/domain). Times are integer ms."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from app.domain.messages import Direction, MessageKind, MessageRow, Status


class MailboxPurpose(StrEnum):
    INVITATION = "invitation"
    CONTACT = "contact"


class OutboxKind(StrEnum):
    MESSAGE = "message"
    RECEIPT = "receipt"
    # A move to other relays (resent until the contact answers on it), or an update of a
    # message (an edit, a deletion, a reaction: resent until its receipt, by `frame_id`).
    CONTROL = "control"


@dataclass(frozen=True, slots=True)
class Profile:
    identity: bytes
    display_name: str
    created_at: int


@dataclass(frozen=True, slots=True)
class KeyHistoryEntry:
    identity_keys: bytes
    replaced_at: int


@dataclass(frozen=True, slots=True)
class OurMailbox:
    id: bytes
    private_key: bytes
    relay_url: str
    purpose: MailboxPurpose
    contact_id: int | None
    created_at: int
    fallbacks: tuple[str, ...] = ()  # also listened on there

    @property
    def relays(self) -> tuple[str, ...]:
        return (self.relay_url, *self.fallbacks)


@dataclass(frozen=True, slots=True)
class TheirMailbox:
    id: bytes
    relay_url: str
    contact_id: int
    created_at: int
    fallbacks: tuple[str, ...] = ()  # written to through these, in order, when relay_url is away

    @property
    def relays(self) -> tuple[str, ...]:
        return (self.relay_url, *self.fallbacks)


@dataclass(frozen=True, slots=True)
class HandshakeLink:
    """A handshake we accepted on our card's mailbox: `id` is its replay id, which names the
    contact that later frames of the same handshake belong to."""

    id: bytes
    contact_id: int | None
    mailbox_id: bytes | None
    created_at: int


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A message to store; msg_id is the wire id, unique per conversation and direction."""

    contact_id: int
    direction: Direction
    msg_id: bytes
    sender_seq: int
    body: str
    sent_at: int
    received_at: int | None
    status: Status
    is_read: bool = False
    kind: MessageKind = MessageKind.TEXT
    reply_to: bytes | None = None
    timer_s: int = 0
    expires_at: int | None = None
    author_keys: bytes | None = None  # a group message's author


@dataclass(frozen=True, slots=True)
class NewOutbox:
    """A ciphertext to send (and resend until acknowledged) to one mailbox on one relay."""

    contact_id: int
    kind: OutboxKind
    mailbox_id: bytes
    relay_url: str
    ciphertext: bytes
    next_try: int
    created_at: int
    frame_id: bytes | None = None  # an update's wire id, which its receipt names


@dataclass(frozen=True, slots=True)
class OutboxItem:
    """A queued ciphertext; `message_row` is the stored message it carries (None for a
    receipt or a handshake frame)."""

    id: int
    contact_id: int
    message_row: MessageRow | None
    kind: OutboxKind
    mailbox_id: bytes
    relay_url: str
    ciphertext: bytes
    attempts: int
    next_try: int
    created_at: int


@dataclass(frozen=True, slots=True)
class Stored:
    """Outcome of storing a message: duplicate means nothing at all was written."""

    duplicate: bool
    message_row: int | None = None
    outbox_row: int | None = None
