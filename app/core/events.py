"""What the engine tells its front ends (CLI, desktop bridge): one frozen dataclass per change.

Events carry ids and small values, never key material; a front end asks the engine for more.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.net.events import ConnectionChanged, ConnectionState
from app.store.records import Contact, Message, Status

__all__ = [
    "ConnectionChanged",
    "ConnectionState",
    "ContactAdded",
    "ContactChanged",
    "Event",
    "FrameRejected",
    "KeyChanged",
    "MessageAdded",
    "MessageStatusChanged",
    "PresenceChanged",
]


@dataclass(frozen=True, slots=True)
class ContactAdded:
    contact: Contact


@dataclass(frozen=True, slots=True)
class ContactChanged:
    """Name, verification, key-change flag or handshake completion changed."""

    contact: Contact


@dataclass(frozen=True, slots=True)
class PresenceChanged:
    contact_id: int
    online: bool


@dataclass(frozen=True, slots=True)
class KeyChanged:
    """A known contact shows up under a new identity key; sending is blocked until accepted."""

    contact: Contact


@dataclass(frozen=True, slots=True)
class MessageAdded:
    message: Message


@dataclass(frozen=True, slots=True)
class MessageStatusChanged:
    contact_id: int
    message_row: int
    status: Status


@dataclass(frozen=True, slots=True)
class FrameRejected:
    """Something arrived that failed a check (tampered, replayed, malformed) and was dropped."""

    reason: str


Event = (
    ConnectionChanged
    | ContactAdded
    | ContactChanged
    | PresenceChanged
    | KeyChanged
    | MessageAdded
    | MessageStatusChanged
    | FrameRejected
)
