"""Messages: which way they went, how far they got, the ids that name them, and what a
conversation adds to them (a quote, an edit, a deletion, reactions, a disappearing timer)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum
from typing import NewType

MessageRow = NewType("MessageRow", int)
"""A message's row in this profile's store: the id a front end pages, marks and retries by."""

WireId = NewType("WireId", bytes)
"""A message's id on the wire (from its ciphertext): what a receipt names."""

MAX_MESSAGE_CHARS = 16_000
"""The longest message anyone sends or takes, in characters (the composer, the engine and the
payload check all use this one limit)."""


MAX_TIMER_S = 365 * 24 * 3600
"""The longest disappearing-messages timer, in seconds (0 is off)."""

DELETE_FOR_EVERYONE_MS = 24 * 3600 * 1000
"""How long after sending a message its sender may still delete it for everyone."""

TIMER_CHOICES = (0, 300, 3600, 86_400, 604_800)
"""The disappearing-messages timers offered by name (off, 5 minutes, 1 hour, 1 day, 1 week);
any other value up to MAX_TIMER_S is a custom one."""


class Direction(IntEnum):
    INCOMING = 0
    OUTGOING = 1


class Status(StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    FAILED = "failed"

    def may_become(self, new: Status) -> bool:
        """An outgoing message's status only moves forward (a late "delivered" never undoes
        "read"); a failure can happen at any point, and a failed message can start over."""
        if new is Status.FAILED or self is Status.FAILED:
            return True
        return _RANK[new] >= _RANK[self]


_RANK = {Status.QUEUED: 0, Status.SENT: 1, Status.DELIVERED: 2, Status.READ: 3}


class MessageKind(StrEnum):
    """What a conversation row is: a text message, a notice that the disappearing-messages
    timer changed (to `Message.timer_s`), or a notice that something arrived which this
    version cannot show."""

    TEXT = "text"
    TIMER = "timer"
    UNSUPPORTED = "unsupported"


@dataclass(frozen=True, slots=True)
class Reaction:
    """One person's reaction to a message: ours or the contact's, one each at most."""

    from_me: bool
    emoji: str


@dataclass(frozen=True, slots=True)
class Quote:
    """The message a reply quotes, as we have it now (its latest text, or deleted)."""

    id: MessageRow
    direction: Direction
    body: str
    deleted: bool
    file_name: str = ""  # the file it carries, if any
    is_image: bool = False


FileRow = NewType("FileRow", int)
"""A file's row in this profile's store: the FILE_ID the CLI and the window name it by."""


class FileState(StrEnum):
    """Where a transfer stands.

    Incoming: OFFERED (larger than the automatic-download limit: waits for Download), QUEUED
    (wanted, the sender is not online), TRANSFERRING, COMPLETE (whole and its hash checked),
    FAILED (`FileInfo.error` says why; Retry), CANCELLED (Retry starts it again).
    Outgoing: QUEUED (stored, offered, not asked for yet), TRANSFERRING, COMPLETE (the
    receiver has it whole), CANCELLED (no longer sent; Retry offers it again)."""

    OFFERED = "offered"
    QUEUED = "queued"
    TRANSFERRING = "transferring"
    COMPLETE = "complete"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (FileState.COMPLETE, FileState.FAILED, FileState.CANCELLED)


@dataclass(frozen=True, slots=True)
class FileInfo:
    id: FileRow
    message_id: MessageRow
    contact_id: int
    direction: Direction
    name: str
    size: int
    mime: str
    sha256: bytes
    state: FileState
    received_bytes: int  # incoming: what we hold; outgoing: what the receiver said it holds
    sent_bytes: int  # outgoing: what went to the relay, every attempt counted
    error: str = ""  # why it failed
    thumbnail: bytes = b""  # a small image, for pictures

    @property
    def is_image(self) -> bool:
        return self.mime.startswith("image/")

    @property
    def available(self) -> bool:
        """Whether the whole file is here to open or save (ours always is)."""
        return self.direction is Direction.OUTGOING or self.state is FileState.COMPLETE


@dataclass(frozen=True, slots=True)
class Message:
    id: MessageRow
    contact_id: int
    direction: Direction
    msg_id: WireId
    sender_seq: int
    body: str
    sent_at: int
    received_at: int | None
    status: Status
    is_read: bool
    kind: MessageKind = MessageKind.TEXT
    reply_to: WireId | None = None  # the wire id of the message this one answers
    edited_at: int | None = None  # the sender's time of the edit whose text `body` is
    deleted: bool = False  # deleted for everyone: the text is gone, the row says so
    timer_s: int = 0  # disappears this long after sending (ours) or reading (theirs)
    expires_at: int | None = None  # when it is deleted (ms); None: never, or not read yet
    delivered_at: int | None = None  # ours: when the contact's receipt said it arrived
    read_at: int | None = None  # ours: when the contact's receipt said it was read
    reactions: tuple[Reaction, ...] = ()
    quote: Quote | None = None  # the message replied to, when we have it
    file: FileInfo | None = None  # a file or picture it carries (its text is the caption)
    author_keys: bytes | None = None  # a group message of another member's: its author
    author: str = ""  # that author's name, as the group (or our contact list) names them

    @property
    def is_text(self) -> bool:
        """A message someone wrote (not a notice), still there to edit, delete or react to."""
        return self.kind is MessageKind.TEXT and not self.deleted


def timer_words(seconds: int) -> str:
    """A timer as people say it: "off", "5 minutes", "1 hour", "2 days", "1 week"."""
    if seconds <= 0:
        return "off"
    for unit, size in (("week", 604_800), ("day", 86_400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            n = seconds // size
            return f"{n} {unit}" + ("s" if n != 1 else "")
    return f"{seconds} seconds" if seconds != 1 else "1 second"


def describe(m: Message, contact_name: str = "They") -> str:
    """A one-line account of a message for a list, a notification or a terminal: its text,
    or what the row stands for."""
    if m.kind is MessageKind.TIMER:
        who = "You" if m.direction is Direction.OUTGOING else contact_name
        if m.timer_s:
            return f"{who} set disappearing messages to {timer_words(m.timer_s)}"
        return f"{who} turned disappearing messages off"
    if m.kind is MessageKind.UNSUPPORTED:
        return "A message arrived that this version of AnonChat cannot show"
    if m.deleted:
        return (
            "You deleted this message"
            if m.direction is Direction.OUTGOING
            else ("This message was deleted")
        )
    if m.file is not None:
        what = "Picture" if m.file.is_image else "File"
        return f"{what}: {m.file.name}" + (f" — {m.body}" if m.body else "")
    return m.body


@dataclass(frozen=True, slots=True)
class SearchHit:
    message: Message
    snippet: str
