"""What the engine tells its front ends (CLI, desktop bridge): one frozen dataclass per change.

Events carry ids and small values, never key material; a front end asks the engine for more.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from app.domain.contacts import Contact
from app.domain.files import FileInfo
from app.domain.groups import Group
from app.domain.messages import Message, Status
from app.net.events import ConnectionChanged, ConnectionState

__all__ = [
    "BackupFinished",
    "ConnectionChanged",
    "ConnectionState",
    "ContactAdded",
    "ContactChanged",
    "ContactRemoved",
    "Event",
    "FileChanged",
    "FrameRejected",
    "MessageAdded",
    "MessageChanged",
    "MessageStatusChanged",
    "MessagesRemoved",
    "PresenceChanged",
    "Rejection",
    "RequestAdded",
    "RequestRemoved",
]


@dataclass(frozen=True, slots=True)
class ContactAdded:
    contact: Contact


@dataclass(frozen=True, slots=True)
class ContactChanged:
    """Name, verification, state (accepted, blocked, ended) or handshake completion changed."""

    contact: Contact


@dataclass(frozen=True, slots=True)
class PresenceChanged:
    contact_id: int
    online: bool


@dataclass(frozen=True, slots=True)
class RouteChanged:
    """What we write to this contact now goes through this relay: a fallback of theirs
    while their first relay is away, or their first relay again."""

    contact_id: int
    relay_url: str


@dataclass(frozen=True, slots=True)
class ContactRemoved:
    """A contact was deleted with its history."""

    contact_id: int


@dataclass(frozen=True, slots=True)
class RequestAdded:
    """Someone we do not know started a handshake: a message request, kept apart."""

    request: Contact


@dataclass(frozen=True, slots=True)
class RequestRemoved:
    """A request was accepted (it is a contact now), blocked, deleted or pushed out."""

    request_id: int


@dataclass(frozen=True, slots=True)
class MessageAdded:
    message: Message


@dataclass(frozen=True, slots=True)
class MessageChanged:
    """A message was edited, deleted for everyone, or its reactions changed: here it is now."""

    message: Message


@dataclass(frozen=True, slots=True)
class MessagesRemoved:
    """Messages were deleted outright: by us ("delete for me") or because their time ran
    out."""

    contact_id: int
    message_rows: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class FileChanged:
    """A file's transfer moved on (a few times a second at most) or changed state."""

    file: FileInfo
    bytes_per_s: float = 0.0  # how fast it moves now (0 when it does not)


@dataclass(frozen=True, slots=True)
class GroupChanged:
    """A group (or an invitation to one) is new or changed: its name, members, admins, or
    where we stand in it."""

    group: Group


@dataclass(frozen=True, slots=True)
class BackupFinished:
    """A scheduled backup was written (`path`) or failed (`error` says why, `path` is "")."""

    at: int  # when it started (ms): the window's "last backup"
    path: str
    error: str = ""


@dataclass(frozen=True, slots=True)
class MessageStatusChanged:
    contact_id: int
    message_row: int
    status: Status


class Rejection(StrEnum):
    """Which check dropped something that arrived; counted per kind (see `Engine.status`)."""

    FORGED = "forged"  # failed authentication: tampered, forged, or for another session
    MALFORMED = "malformed"  # not a frame of ours at all
    PAYLOAD = "payload"  # authentic, but its content is not a valid payload
    HANDSHAKE = "handshake"  # a first frame that failed its checks
    MAILBOX = "mailbox"  # named a mailbox that belongs to someone else
    WELCOME = "welcome"  # a welcome nobody was waiting for
    RELAY = "relay"  # the relay sent something bad or refused a request
    FLOOD = "flood"  # dropped unread: its mailbox sent more failing frames than its budget
    THROTTLED = "throttled"  # left out: the contact sent faster than it is taken in
    QUOTA = "quota"  # left out: the contact's messages fill its storage quota
    GROUP = "group"  # a group statement unsigned, forged, stale, or from a non-member


class Limit(StrEnum):
    """Why a contact's messages are being left out for now (their outbox sends them again)."""

    THROTTLED = "throttled"  # past intake.MESSAGE_BURST, then MESSAGE_RATE: taken in slowly
    QUOTA = "quota"  # their messages take more than the storage quota allows


@dataclass(frozen=True, slots=True)
class ContactLimited:
    """A contact's messages started being left out; said once as each episode starts."""

    contact_id: int
    limit: Limit
    quota_bytes: int = 0  # the quota, for Limit.QUOTA


@dataclass(frozen=True, slots=True)
class FrameRejected:
    """Something arrived that failed a check (tampered, replayed, malformed) and was dropped."""

    reason: str
    kind: Rejection = Rejection.MALFORMED


Event = (
    ConnectionChanged
    | ContactAdded
    | ContactChanged
    | ContactRemoved
    | PresenceChanged
    | RouteChanged
    | RequestAdded
    | RequestRemoved
    | MessageAdded
    | MessageChanged
    | MessagesRemoved
    | MessageStatusChanged
    | FileChanged
    | FrameRejected
    | ContactLimited
    | GroupChanged
    | BackupFinished
)
