"""The frames of the AnonChat wire format and the errors of reading them.

Each frame type is a frozen dataclass whose fields are checked on construction, so a frame
built by our code and a frame decoded from a peer obey the same rules. relay.wire encodes and
decodes them; import everything from there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Final, TypeAlias

MAILBOX_ID_SIZE = 32
CHALLENGE_SIZE = 32
MAILBOX_KEY_SIZE = 32
SIGNATURE_SIZE = 64
MAX_REQUEST_ID: Final = 2**63 - 1


class ErrorCode:
    """Stable error codes: they travel in error frames and close reasons and never change."""

    # The peer's frame could not be read (raised by decode()).
    MALFORMED: Final = "malformed"
    TRUNCATED: Final = "truncated"
    TOO_LARGE: Final = "too_large"
    UNSUPPORTED_VERSION: Final = "unsupported_version"
    UNKNOWN_TYPE: Final = "unknown_type"
    # The frame was read but the relay refuses it.
    UNEXPECTED_FRAME: Final = "unexpected_frame"
    KEY_MISMATCH: Final = "key_mismatch"
    BAD_SIGNATURE: Final = "bad_signature"
    RATE_LIMITED: Final = "rate_limited"
    TOO_MANY_SUBSCRIPTIONS: Final = "too_many_subscriptions"
    TOO_MANY_WATCHES: Final = "too_many_watches"
    TOO_MANY_WATCHERS: Final = "too_many_watchers"
    TOO_MANY_ADDRESS_WATCHES: Final = "too_many_address_watches"
    # Close reasons and goodbye reasons.
    TOO_MANY_CONNECTIONS: Final = "too_many_connections"
    FLOOD: Final = "flood"
    SLOW_CONSUMER: Final = "slow_consumer"
    GOING_AWAY: Final = "going_away"
    NORMAL: Final = "normal"

    DECODE: ClassVar[frozenset[str]] = frozenset(
        {MALFORMED, TRUNCATED, TOO_LARGE, UNSUPPORTED_VERSION, UNKNOWN_TYPE}
    )


class ProtocolError(Exception):
    """Base of every wire-format error; ``code`` is one of :class:`ErrorCode`."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code
        self.detail = detail


class LocalProtocolError(ProtocolError, ValueError):
    """Our bug: code tried to build or encode a frame whose fields break the format."""


class RemoteProtocolError(ProtocolError):
    """The peer's fault: what it sent breaks the protocol. Never a crash, always this."""


class WireError(RemoteProtocolError):
    """Bytes from the peer that are not a valid frame: malformed, truncated, oversize, unknown."""


# ---------------------------------------------------------------------------------------------
# Field checks. Each returns the value unchanged or raises LocalProtocolError; decode() turns
# that into a WireError so the same rules guard what we build and what we read.


def bad_field(name: str, why: str) -> LocalProtocolError:
    """The error for a field that breaks the format (relay.wire's decoder raises it too)."""
    return LocalProtocolError(ErrorCode.MALFORMED, f"{name} {why}")


def _uint(name: str, value: Any, top: int = MAX_REQUEST_ID) -> int:
    if type(value) is not int or not 0 <= value <= top:
        raise bad_field(name, f"must be an integer in 0..{top}")
    return value


def _bytes(name: str, value: Any, size: int | None = None) -> bytes:
    if type(value) is not bytes:
        raise bad_field(name, "must be bytes")
    if size is not None and len(value) != size:
        raise bad_field(name, f"must be {size} bytes")
    return value


def _text(name: str, value: Any) -> str:
    if type(value) is not str or not 0 < len(value) <= 64:
        raise bad_field(name, "must be a string of 1..64 characters")
    return value


def _bool(name: str, value: Any) -> bool:
    if type(value) is not bool:
        raise bad_field(name, "must be a boolean")
    return value


def _number(name: str, value: Any) -> float:
    if type(value) not in (int, float) or not math.isfinite(value) or value <= 0:
        raise bad_field(name, "must be a positive finite number")
    return float(value)


def _mailboxes(name: str, value: Any) -> tuple[bytes, ...]:
    if type(value) not in (list, tuple):
        raise bad_field(name, "must be an array of mailbox ids")
    for item in value:
        _bytes(name, item, MAILBOX_ID_SIZE)
    return tuple(value)


def _versions(name: str, value: Any) -> tuple[int, ...]:
    if type(value) not in (list, tuple) or not value:
        raise bad_field(name, "must be a non-empty array of versions")
    return tuple(_uint(name, v, 255) for v in value)


# ---------------------------------------------------------------------------------------------
# Frames. ``TYPE`` is the envelope's ``t``; field names are the envelope's keys, except
# ``request_id`` which travels as ``rid``.


@dataclass(frozen=True, slots=True)
class Limits:
    """The relay's limits, announced in hello so a client can stay inside them."""

    max_frame_size: int
    send_rate: float
    send_burst: int
    max_subscriptions: int
    max_watches: int
    idle_timeout: float

    def __post_init__(self) -> None:
        _uint("max_frame_size", self.max_frame_size)
        _number("send_rate", self.send_rate)
        _uint("send_burst", self.send_burst)
        _uint("max_subscriptions", self.max_subscriptions)
        _uint("max_watches", self.max_watches)
        _number("idle_timeout", self.idle_timeout)


@dataclass(frozen=True, slots=True)
class Hello:
    """Relay to client, first frame: versions spoken, limits, and this connection's challenge."""

    TYPE: ClassVar[str] = "hello"
    versions: tuple[int, ...]
    challenge: bytes
    limits: Limits

    def __post_init__(self) -> None:
        _versions("versions", self.versions)
        _bytes("challenge", self.challenge, CHALLENGE_SIZE)
        if not isinstance(self.limits, Limits):
            raise bad_field("limits", "must be a Limits")


@dataclass(frozen=True, slots=True)
class Subscribe:
    """Client to relay: receive a mailbox's frames, proving the key by signing the challenge."""

    TYPE: ClassVar[str] = "subscribe"
    request_id: int
    mailbox: bytes
    key: bytes
    sig: bytes

    def __post_init__(self) -> None:
        _uint("rid", self.request_id)
        _bytes("mailbox", self.mailbox, MAILBOX_ID_SIZE)
        _bytes("key", self.key, MAILBOX_KEY_SIZE)
        _bytes("sig", self.sig, SIGNATURE_SIZE)


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    """Client to relay: stop receiving a mailbox on this connection (idempotent)."""

    TYPE: ClassVar[str] = "unsubscribe"
    request_id: int
    mailbox: bytes

    def __post_init__(self) -> None:
        _uint("rid", self.request_id)
        _bytes("mailbox", self.mailbox, MAILBOX_ID_SIZE)


SendFields = tuple[int, bytes, bytes]  # a send's request id, mailbox and payload


def send_fields_ok(request_id: Any, mailbox: Any, payload: Any) -> bool:
    """Whether these make a valid `Send` (the relay's hot path reads a send's fields with
    this, unbuilt; `Send` checks the same and says which field is wrong)."""
    return (
        type(request_id) is int
        and 0 <= request_id <= MAX_REQUEST_ID
        and type(mailbox) is bytes
        and len(mailbox) == MAILBOX_ID_SIZE
        and type(payload) is bytes
    )


@dataclass(frozen=True, slots=True)
class Send:
    """Client to relay: forward an opaque payload to every subscriber of a mailbox."""

    TYPE: ClassVar[str] = "send"
    request_id: int
    mailbox: bytes
    payload: bytes

    def __post_init__(self) -> None:
        if not send_fields_ok(self.request_id, self.mailbox, self.payload):
            _uint("rid", self.request_id)
            _bytes("mailbox", self.mailbox, MAILBOX_ID_SIZE)
            _bytes("payload", self.payload)


@dataclass(frozen=True, slots=True)
class Sent:
    """Relay to client, reply to send: how many connections received it; 0 means offline."""

    TYPE: ClassVar[str] = "sent"
    request_id: int
    delivered: int

    def __post_init__(self) -> None:
        _uint("rid", self.request_id)
        _uint("delivered", self.delivered)

    @property
    def offline(self) -> bool:
        return self.delivered == 0


@dataclass(frozen=True, slots=True)
class Deliver:
    """Relay to subscriber: a payload sent to one of its mailboxes."""

    TYPE: ClassVar[str] = "deliver"
    mailbox: bytes
    payload: bytes

    def __post_init__(self) -> None:
        _bytes("mailbox", self.mailbox, MAILBOX_ID_SIZE)
        _bytes("payload", self.payload)


@dataclass(frozen=True, slots=True)
class Watch:
    """Client to relay: be told when these mailboxes come online or go offline."""

    TYPE: ClassVar[str] = "watch"
    request_id: int
    mailboxes: tuple[bytes, ...]

    def __post_init__(self) -> None:
        _uint("rid", self.request_id)
        _mailboxes("mailboxes", self.mailboxes)


@dataclass(frozen=True, slots=True)
class Watching:
    """Relay to client, reply to watch: which of the watched mailboxes are online now."""

    TYPE: ClassVar[str] = "watching"
    request_id: int
    online: tuple[bytes, ...]

    def __post_init__(self) -> None:
        _uint("rid", self.request_id)
        _mailboxes("online", self.online)


@dataclass(frozen=True, slots=True)
class Unwatch:
    """Client to relay: stop presence notices for these mailboxes (idempotent)."""

    TYPE: ClassVar[str] = "unwatch"
    request_id: int
    mailboxes: tuple[bytes, ...]

    def __post_init__(self) -> None:
        _uint("rid", self.request_id)
        _mailboxes("mailboxes", self.mailboxes)


@dataclass(frozen=True, slots=True)
class Presence:
    """Relay to watcher: a mailbox gained its first subscriber (online) or lost its last."""

    TYPE: ClassVar[str] = "presence"
    mailbox: bytes
    online: bool

    def __post_init__(self) -> None:
        _bytes("mailbox", self.mailbox, MAILBOX_ID_SIZE)
        _bool("online", self.online)


@dataclass(frozen=True, slots=True)
class Ok:
    """Relay to client: the request with this id succeeded."""

    TYPE: ClassVar[str] = "ok"
    request_id: int

    def __post_init__(self) -> None:
        _uint("rid", self.request_id)


@dataclass(frozen=True, slots=True)
class Error:
    """Relay to client: a request (or an unreadable frame, ``request_id`` None) was refused."""

    TYPE: ClassVar[str] = "error"
    request_id: int | None
    code: str

    def __post_init__(self) -> None:
        if self.request_id is not None:
            _uint("rid", self.request_id)
        _text("code", self.code)


@dataclass(frozen=True, slots=True)
class Ping:
    """Client to relay: an application-level round trip (websocket pings keep the link)."""

    TYPE: ClassVar[str] = "ping"
    request_id: int

    def __post_init__(self) -> None:
        _uint("rid", self.request_id)


@dataclass(frozen=True, slots=True)
class Pong:
    """Relay to client, reply to ping."""

    TYPE: ClassVar[str] = "pong"
    request_id: int

    def __post_init__(self) -> None:
        _uint("rid", self.request_id)


@dataclass(frozen=True, slots=True)
class Goodbye:
    """Either side, last frame before closing: why the connection ends."""

    TYPE: ClassVar[str] = "goodbye"
    reason: str

    def __post_init__(self) -> None:
        _text("reason", self.reason)


Frame: TypeAlias = (
    Hello
    | Subscribe
    | Unsubscribe
    | Send
    | Sent
    | Deliver
    | Watch
    | Watching
    | Unwatch
    | Presence
    | Ok
    | Error
    | Ping
    | Pong
    | Goodbye
)

FRAME_TYPES: Final[tuple[type[Frame], ...]] = (
    Hello,
    Subscribe,
    Unsubscribe,
    Send,
    Sent,
    Deliver,
    Watch,
    Watching,
    Unwatch,
    Presence,
    Ok,
    Error,
    Ping,
    Pong,
    Goodbye,
)
CLIENT_FRAMES: Final[tuple[type[Frame], ...]] = (
    Subscribe,
    Unsubscribe,
    Send,
    Watch,
    Unwatch,
    Ping,
    Goodbye,
)
RELAY_FRAMES: Final[tuple[type[Frame], ...]] = (
    Hello,
    Sent,
    Deliver,
    Watching,
    Presence,
    Ok,
    Error,
    Pong,
    Goodbye,
)
