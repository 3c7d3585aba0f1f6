"""The client side of the wire protocol with no I/O: bytes in, frames and events out.

One :class:`ClientProtocol` lives as long as its relay URL does and outlives connections. It
remembers what the engine asked for (subscriptions with their signers, watches) and, each time
a new connection says hello, returns the frames that put all of it back, signed against that
connection's challenge. It allocates request ids, matches replies to requests, and judges
every frame from the relay: anything the protocol does not allow comes back as a
``violation`` for the driver to report and drop the connection, never as an exception.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TypeAlias

from app.net.errors import PayloadTooLarge
from app.net.events import Delivered, MailboxPresence, NetEvent, RequestRefused
from relay import wire
from relay.wire import ErrorCode, RemoteProtocolError

Signer = Callable[[bytes], tuple[bytes, bytes]]
"""``signer(challenge) -> (mailbox public key, signature over subscribe_signed_bytes)``."""

ReplyValue: TypeAlias = int | frozenset[bytes] | None

# A Watch frame carries at most this many mailboxes, far inside the default frame size.
WATCH_CHUNK = 512
# Request ids given up on (timed out) whose late replies are dropped quietly.
MAX_ABANDONED = 4096


class Phase(enum.Enum):
    """The current connection, as far as the protocol is concerned."""

    DISCONNECTED = "disconnected"
    AWAITING_HELLO = "awaiting_hello"
    READY = "ready"
    CLOSING = "closing"


class NotReady(Exception):
    """A request was made while no connection has said hello; the driver's bug to avoid."""


class _Kind(enum.Enum):
    SUBSCRIBE = "subscribe"
    UNSUBSCRIBE = "unsubscribe"
    WATCH = "watch"
    UNWATCH = "unwatch"
    SEND = "send"


@dataclass(frozen=True, slots=True)
class _Pending:
    kind: _Kind
    mailboxes: tuple[bytes, ...]
    restore: bool  # sent by the protocol itself after hello: nobody awaits the reply


@dataclass(frozen=True, slots=True)
class Request:
    """A frame to write and the request id its reply will carry."""

    request_id: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Reply:
    """The answer to a request someone awaits: a value, or the relay's error code."""

    request_id: int
    value: ReplyValue = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Step:
    """Everything one frame from the relay caused."""

    outgoing: tuple[bytes, ...] = ()
    replies: tuple[Reply, ...] = ()
    events: tuple[NetEvent, ...] = ()
    ready: bool = False
    goodbye: str | None = None
    violation: RemoteProtocolError | None = None


@dataclass(slots=True)
class _Builder:
    outgoing: list[bytes] = field(default_factory=list)
    replies: list[Reply] = field(default_factory=list)
    events: list[NetEvent] = field(default_factory=list)
    ready: bool = False
    goodbye: str | None = None

    def done(self, violation: RemoteProtocolError | None = None) -> Step:
        return Step(
            tuple(self.outgoing),
            tuple(self.replies),
            tuple(self.events),
            self.ready,
            self.goodbye,
            violation,
        )


def _violation(detail: str) -> RemoteProtocolError:
    return RemoteProtocolError(ErrorCode.UNEXPECTED_FRAME, detail)


class ClientProtocol:
    """Protocol state for one relay URL across any number of connections."""

    def __init__(
        self,
        url: str,
        *,
        max_frame_size: int = 1 << 20,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`max_frame_size` holds until a hello announces the relay's own (never larger)."""
        self.url = url
        self.max_frame_size = self._ceiling = max_frame_size
        self.phase = Phase.DISCONNECTED
        self.limits: wire.Limits | None = None
        self._clock = clock
        self._challenge: bytes | None = None
        self._next_id = 1
        self._pending: dict[int, _Pending] = {}
        # Request ids given up on by their caller, still owed a reply: id -> when sent.
        self._abandoned: dict[int, float] = {}
        self._sent_at: dict[int, float] = {}  # pending request id -> when it was written
        self._opened_at = 0.0
        self._subscriptions: dict[bytes, Signer] = {}
        self._watches: dict[bytes, None] = {}

    # -- what the engine asked for ------------------------------------------------------------

    @property
    def subscriptions(self) -> frozenset[bytes]:
        return frozenset(self._subscriptions)

    @property
    def watches(self) -> frozenset[bytes]:
        return frozenset(self._watches)

    @property
    def pending(self) -> frozenset[int]:
        """Request ids sent on this connection and not answered yet."""
        return frozenset(self._pending)

    def subscribe(self, mailbox: bytes, signer: Signer) -> Request | None:
        """Remember a subscription; the frame to send now, or None until the next hello.

        The signer runs here when connected, so its errors reach the caller before anything
        is remembered.
        """
        if len(mailbox) != wire.MAILBOX_ID_SIZE:
            raise ValueError("a mailbox id is 32 bytes")
        request = None
        if self.phase is Phase.READY:
            frame = self._subscribe_frame(self._allocate(), mailbox, signer)
            request = self._track(frame.request_id, _Kind.SUBSCRIBE, (mailbox,), wire.encode(frame))
        self._subscriptions[mailbox] = signer
        return request

    def unsubscribe(self, mailbox: bytes) -> Request | None:
        """Forget a subscription; the frame that ends it on the relay when connected."""
        self._subscriptions.pop(mailbox, None)
        if self.phase is not Phase.READY:
            return None
        rid = self._allocate()
        return self._track(
            rid, _Kind.UNSUBSCRIBE, (mailbox,), wire.encode(wire.Unsubscribe(rid, mailbox))
        )

    def watch(self, mailboxes: Iterable[bytes]) -> Request | None:
        """Remember watches; the frame asking who is online now, or None until the next hello."""
        wanted = tuple(dict.fromkeys(mailboxes))
        frame = wire.Watch(0, wanted)  # checks the ids before anything is remembered
        request = None
        if self.phase is Phase.READY:
            rid = self._allocate()
            frame = wire.Watch(rid, wanted)
            request = self._track(rid, _Kind.WATCH, wanted, wire.encode(frame))
        self._watches.update(dict.fromkeys(wanted))
        return request

    def unwatch(self, mailboxes: Iterable[bytes]) -> Request | None:
        """Forget watches; the frame that ends them on the relay when connected."""
        gone = tuple(dict.fromkeys(mailboxes))
        frame = wire.Unwatch(0, gone)
        for mailbox in gone:
            self._watches.pop(mailbox, None)
        if self.phase is not Phase.READY:
            return None
        rid = self._allocate()
        frame = wire.Unwatch(rid, gone)
        return self._track(rid, _Kind.UNWATCH, gone, wire.encode(frame))

    def send(self, mailbox: bytes, payload: bytes) -> Request:
        """The frame that forwards ``payload``; its reply is the number of subscribers reached."""
        if self.phase is not Phase.READY:
            raise NotReady("no connection has said hello")
        rid = self._allocate()
        data = wire.encode(wire.Send(rid, mailbox, payload))
        limit = self.limits.max_frame_size if self.limits else wire.DEFAULT_MAX_FRAME_SIZE
        if len(data) > limit:
            raise PayloadTooLarge(len(data), limit)
        return self._track(rid, _Kind.SEND, (mailbox,), data)

    def abandon(self, request_id: int) -> None:
        """The caller stopped waiting (timeout): a late reply is then dropped, not a violation."""
        if self._pending.pop(request_id, None) is None:
            return
        sent = self._sent_at.pop(request_id, None)
        if sent is not None:  # written: the relay still owes its reply
            self._abandoned[request_id] = sent
            while len(self._abandoned) > MAX_ABANDONED:
                del self._abandoned[next(iter(self._abandoned))]

    # -- connection lifecycle -----------------------------------------------------------------

    def connection_made(self) -> None:
        """A new connection is open; nothing may be sent until its hello arrives."""
        self.phase = Phase.AWAITING_HELLO
        self.max_frame_size = self._ceiling
        self._challenge = None
        self._opened_at = self._clock()
        self._forget_requests()

    def overdue(self, hello_within: float, reply_within: float) -> float | str:
        """Whether the relay owes an answer for too long: the reason when the hello took
        more than `hello_within` seconds or a request (also one its caller gave up on) more
        than `reply_within`; otherwise the number of seconds until that could next be true.
        A relay that swallows a frame then costs a reconnect, never a stall."""
        now = self._clock()
        if self.phase is Phase.AWAITING_HELLO:
            due = self._opened_at + hello_within
            return "no hello" if now >= due else due - now
        oldest = min(self._sent_at.values(), default=None)
        late = min(self._abandoned.values(), default=None)
        if late is not None and (oldest is None or late < oldest):
            oldest = late
        if oldest is None:
            return reply_within
        due = oldest + reply_within
        return "no reply" if now >= due else due - now

    def connection_lost(self) -> tuple[int, ...]:
        """The connection is gone; returns the request ids that will never be answered."""
        lost = tuple(rid for rid, p in self._pending.items() if not p.restore)
        self.phase = Phase.DISCONNECTED
        self._challenge = None
        self._forget_requests()
        return lost

    def _forget_requests(self) -> None:
        self._pending.clear()
        self._abandoned.clear()
        self._sent_at.clear()

    # -- frames in ----------------------------------------------------------------------------

    def receive(self, data: bytes) -> Step:
        """Judge and apply one binary message from the relay. Never raises for bad input."""
        out = _Builder()
        if self.phase in (Phase.DISCONNECTED, Phase.CLOSING):
            return out.done()
        try:
            frame = wire.decode(data, self.max_frame_size)
        except RemoteProtocolError as exc:
            return out.done(exc)
        try:
            self._apply(frame, out)
        except RemoteProtocolError as exc:
            return out.done(exc)
        return out.done()

    def _apply(self, frame: wire.Frame, out: _Builder) -> None:
        if self.phase is Phase.AWAITING_HELLO:
            if type(frame) is wire.Goodbye:
                self.phase = Phase.CLOSING
                out.goodbye = frame.reason
                return
            if type(frame) is not wire.Hello:
                raise _violation(f"{frame.TYPE} before hello")
            self._on_hello(frame, out)
            return
        if type(frame) is wire.Deliver:
            if frame.mailbox in self._subscriptions:
                out.events.append(Delivered(self.url, frame.mailbox, frame.payload))
        elif type(frame) is wire.Presence:
            if frame.mailbox in self._watches:
                out.events.append(MailboxPresence(self.url, frame.mailbox, frame.online))
        elif type(frame) is wire.Goodbye:
            self.phase = Phase.CLOSING
            out.goodbye = frame.reason
        elif isinstance(frame, (wire.Sent, wire.Watching, wire.Ok, wire.Error, wire.Pong)):
            self._on_reply(frame, out)
        else:
            raise _violation(f"{frame.TYPE} from the relay")

    def _on_hello(self, hello: wire.Hello, out: _Builder) -> None:
        if wire.PROTOCOL_VERSION not in hello.versions:
            raise RemoteProtocolError(ErrorCode.UNSUPPORTED_VERSION, "no common version")
        self.phase = Phase.READY
        self.limits = hello.limits
        # Frames from the relay are held to what it announced (never above our own ceiling).
        self.max_frame_size = min(self._ceiling, hello.limits.max_frame_size)
        self._challenge = hello.challenge
        out.ready = True
        for mailbox, signer in list(self._subscriptions.items()):
            rid = self._allocate()
            try:
                frame = self._subscribe_frame(rid, mailbox, signer)
            except Exception:  # the engine's signer failed: report it, restore the rest
                out.events.append(RequestRefused(self.url, "signer_failed", mailbox))
                continue
            self._remember(rid, _Pending(_Kind.SUBSCRIBE, (mailbox,), restore=True))
            out.outgoing.append(wire.encode(frame))
        watched = list(self._watches)
        for start in range(0, len(watched), WATCH_CHUNK):
            chunk = tuple(watched[start : start + WATCH_CHUNK])
            rid = self._allocate()
            self._remember(rid, _Pending(_Kind.WATCH, chunk, restore=True))
            out.outgoing.append(wire.encode(wire.Watch(rid, chunk)))

    def _on_reply(
        self, frame: wire.Sent | wire.Watching | wire.Ok | wire.Error | wire.Pong, out: _Builder
    ) -> None:
        rid = frame.request_id
        if rid is None:  # only an Error: about a frame of ours the relay could not read
            assert type(frame) is wire.Error
            out.events.append(RequestRefused(self.url, frame.code))
            return
        pending = self._pending.pop(rid, None)
        self._sent_at.pop(rid, None)
        if pending is None:
            if rid in self._abandoned:
                del self._abandoned[rid]
                return
            raise _violation(f"{frame.TYPE} answers no request")
        if type(frame) is wire.Error:
            self._on_error(pending, rid, frame.code, out)
            return
        value: ReplyValue = None
        if pending.kind is _Kind.SEND:
            if type(frame) is not wire.Sent:
                raise _violation(f"{frame.TYPE} answers a send")
            value = frame.delivered
        elif pending.kind is _Kind.WATCH:
            if type(frame) is not wire.Watching:
                raise _violation(f"{frame.TYPE} answers a watch")
            online = frozenset(frame.online)
            if not online <= frozenset(pending.mailboxes):
                raise _violation("watching names a mailbox not asked about")
            value = online
        elif type(frame) is not wire.Ok:
            raise _violation(f"{frame.TYPE} answers a {pending.kind.value}")
        if not pending.restore:
            out.replies.append(Reply(rid, value))
        elif pending.kind is _Kind.WATCH:
            assert isinstance(value, frozenset)
            for mailbox in pending.mailboxes:
                if mailbox in self._watches:
                    out.events.append(MailboxPresence(self.url, mailbox, mailbox in value))

    def _on_error(self, pending: _Pending, rid: int, code: str, out: _Builder) -> None:
        if not pending.restore:
            if pending.kind is _Kind.SUBSCRIBE and code != ErrorCode.RATE_LIMITED:
                # Refused for good (bad key, over the limit): do not replay it next time.
                self._subscriptions.pop(pending.mailboxes[0], None)
            out.replies.append(Reply(rid, error=code))
            return
        mailbox = pending.mailboxes[0] if pending.kind is _Kind.SUBSCRIBE else None
        out.events.append(RequestRefused(self.url, code, mailbox))

    # -- helpers ------------------------------------------------------------------------------

    def _allocate(self) -> int:
        rid = self._next_id
        self._next_id = 1 if rid >= wire.MAX_REQUEST_ID else rid + 1
        return rid

    def written(self, request_id: int) -> None:
        """The driver wrote this request to the connection: its reply is owed from now."""
        if request_id in self._pending:
            self._sent_at[request_id] = self._clock()

    def _track(self, rid: int, kind: _Kind, mailboxes: tuple[bytes, ...], data: bytes) -> Request:
        self._pending[rid] = _Pending(kind, mailboxes, restore=False)
        return Request(rid, data)

    def _remember(self, rid: int, pending: _Pending) -> None:
        """A request the protocol writes itself, at once (restoring after hello)."""
        self._pending[rid] = pending
        self._sent_at[rid] = self._clock()

    def _subscribe_frame(self, rid: int, mailbox: bytes, signer: Signer) -> wire.Subscribe:
        assert self._challenge is not None
        key, sig = signer(self._challenge)
        return wire.Subscribe(rid, mailbox, key, sig)
