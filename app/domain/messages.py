"""Messages: which way they went, how far they got, and the ids that name them."""

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


@dataclass(frozen=True, slots=True)
class SearchHit:
    message: Message
    snippet: str
