"""What app.net tells the engine: connection state changes and the relay's pushes.

Every event names the relay URL it came from, since one pool talks to several relays.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TypeAlias


class ConnectionState(enum.Enum):
    """Where one relay connection stands; BACKING_OFF carries the wait in its event."""

    CONNECTING = "connecting"
    ONLINE = "online"
    BACKING_OFF = "backing_off"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class ConnectionChanged:
    """The connection to ``url`` changed state; ``retry_in`` is set while backing off."""

    url: str
    state: ConnectionState
    retry_in: float | None = None


@dataclass(frozen=True, slots=True)
class Delivered:
    """A payload arrived on one of our subscribed mailboxes. Opaque here; the engine decrypts."""

    url: str
    mailbox: bytes
    payload: bytes


@dataclass(frozen=True, slots=True)
class MailboxPresence:
    """A watched mailbox came online or went offline (also sent for each watch restored)."""

    url: str
    mailbox: bytes
    online: bool


@dataclass(frozen=True, slots=True)
class RelayRejected:
    """The relay broke the protocol (bad frame, unknown reply); the connection was dropped."""

    url: str
    code: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class RequestRefused:
    """The relay refused a request nobody was waiting on: a restored subscription or watch,
    or a frame of ours it could not read (``mailbox`` is None then)."""

    url: str
    code: str
    mailbox: bytes | None = None


NetEvent: TypeAlias = (
    ConnectionChanged | Delivered | MailboxPresence | RelayRejected | RequestRefused
)
