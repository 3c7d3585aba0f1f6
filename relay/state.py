"""The relay's routing, with no I/O: frames in, frames out through send callbacks, clock passed in.

Everything the relay knows lives here and only in memory: which connection is subscribed to
which mailbox, who watches which mailbox, each connection's send budget and each client
address's budgets. A payload is handed to the subscribers' send callbacks and forgotten.
relay/server.py drives this from websockets; the tests drive it with plain lists.

Nothing a client does cheaply may cost the relay much: every frame is paid for twice, from its
connection's token bucket (over it, dropped) and from its address's (over it, handled late: the
driver reads nothing more from that connection meanwhile), and every signature check from the
address's check budget the same way. Presence notices go out at most once per
``presence_interval`` per mailbox, the latest state winning (:meth:`Relay.tick`), and one told
to more watchers than a pairwise mailbox has is paid for by the address that caused it.

Several relay processes can share routing through a backplane (relay/backplane.py). The state
stays sans-I/O: it tells the backplane through a :class:`Remote` which mailboxes it holds and
watches, and where a reply depends on other relays (a send's delivered count, a watch's
online list, a first subscribe's ok) it hands the driver a :class:`Publish`, :class:`Lookup`
or :class:`Hold` to complete.
"""

from __future__ import annotations

import math
import os
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from relay import wire
from relay.wire import ErrorCode

SendFn = Callable[[bytes], None]
VerifyFn = Callable[[bytes, bytes, bytes], bool]

CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_TRY_AGAIN_LATER = 1013

# A flood ends when the connection goes this many seconds without a dropped frame, or two
# refill intervals if that is longer: see Relay._over_budget.
FLOOD_PAUSE = 1.0
# Float slack when a driver wakes exactly when the next token is due.
_TOKEN_SLACK = 1e-9
_NEVER = -math.inf
# How often addresses with nothing open are checked for full budgets, and forgotten.
SWEEP_INTERVAL = 1.0
# A presence notice to more watchers than a pairwise mailbox has (its contact's devices) costs
# the address whose subscribe or unsubscribe caused it a frame token per further watcher.
FREE_WATCHERS = 2


def verify_ed25519(key: bytes, signature: bytes, message: bytes) -> bool:
    """True when ``signature`` is the Ed25519 signature of ``message`` under raw ``key``."""
    try:
        Ed25519PublicKey.from_public_bytes(key).verify(signature, message)
    except (InvalidSignature, ValueError):
        return False
    return True


@dataclass(frozen=True, slots=True)
class RelayLimits:
    """Every limit the relay enforces; defaults suit one relay serving many desktop clients."""

    max_frame_size: int = wire.DEFAULT_MAX_FRAME_SIZE
    send_rate: float = 100.0
    send_burst: int = 200
    max_subscriptions: int = 64
    max_watches: int = 1024
    max_connections: int = 10_000
    # A client that isolates its contacts (app/core/routing.py) opens one connection each,
    # and through Tor many clients share an exit's address: room for 500 contacts and more.
    max_connections_per_address: int = 1024
    idle_timeout: float = 60.0
    flood_window: float = 5.0
    # A mailbox is pairwise: watched by its contact's devices, a handful at most.
    max_watchers: int = 16
    # Room for a client watching 1,000 contacts' mailboxes and for several behind one Tor exit.
    max_watches_per_address: int = 8192
    # All connections of one address together. A burst costs the others its handling time
    # once (some 50 ms for 2,000 frames); a client bringing 500 connections up over 2 s sends
    # about 2,500 frames and waits for none of them.
    address_send_rate: float = 1000.0
    address_send_burst: int = 2000
    # Signature checks (subscribes) of one address: some 3% of a core at the rate, 60 ms of
    # checks in a burst; that client's 1,500 subscribes are all answered a second after its
    # last connection opened.
    address_subscribe_rate: float = 300.0
    address_subscribe_burst: int = 600
    # WebSocket handshakes under way, counted from the TCP accept: a legitimate one takes a
    # round trip or two (TLS), so 256 at once leaves room for a client opening 250 a second
    # over a slow link.
    max_handshakes: int = 1024
    max_handshakes_per_address: int = 256
    presence_interval: float = 1.0

    def __post_init__(self) -> None:
        for name in (
            "max_frame_size",
            "send_burst",
            "max_subscriptions",
            "max_watches",
            "max_connections",
            "max_connections_per_address",
            "max_watchers",
            "max_watches_per_address",
            "address_send_burst",
            "address_subscribe_burst",
            "max_handshakes",
            "max_handshakes_per_address",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        for name in ("send_rate", "idle_timeout", "address_send_rate", "address_subscribe_rate"):
            if not 0 < getattr(self, name) < math.inf:
                raise ValueError(f"{name} must be positive")
        if not 0 <= self.presence_interval < math.inf:
            raise ValueError("presence_interval must be a number of seconds")
        if not 0 < self.flood_window < math.inf:
            raise ValueError("flood_window must be a positive number of seconds")
        least, kind = wire.min_frame_size(self.announced())
        if self.max_frame_size < least:
            raise ValueError(
                f"max_frame_size must be at least {least} bytes, the size of the protocol's "
                f"largest fixed frame ({kind}) with these limits"
            )

    def announced(self) -> wire.Limits:
        """The part of the limits a client needs, as carried in hello."""
        return wire.Limits(
            max_frame_size=self.max_frame_size,
            send_rate=float(self.send_rate),
            send_burst=self.send_burst,
            max_subscriptions=self.max_subscriptions,
            max_watches=self.max_watches,
            idle_timeout=float(self.idle_timeout),
        )


@dataclass(frozen=True, slots=True)
class Close:
    """The driver must close this connection with this WebSocket close code and reason."""

    code: int
    reason: str


@dataclass(frozen=True, slots=True)
class Pause:
    """The frame was dropped over budget: the driver reads nothing more from this connection
    until ``until`` (the relay's clock), when its next token is due. A client that keeps
    sending then waits in its own buffers instead of costing the relay work per frame."""

    until: float


@dataclass(frozen=True, slots=True)
class Wait:
    """The frame is taken but its address's budget is spent: the driver reads nothing more from
    this connection until ``until``, then hands it back through :meth:`Relay.resume`.

    ``frame`` is what is left to do: the bytes of a frame not read yet (None for a text
    message), or a subscribe whose signature is still to check. A connection waits for one
    frame at a time, so an address's debt is at most a token per connection."""

    until: float
    frame: bytes | wire.Subscribe | None


class Refused(Exception):
    """A new connection is over a connection limit; close it with ``close``."""

    def __init__(self, close: Close) -> None:
        super().__init__(close.reason)
        self.close = close


class Remote(Protocol):
    """What the state tells the other relays about, through the backplane. Never blocks."""

    def hold(self, mailbox: bytes) -> None:
        """``mailbox`` gained its first subscriber on this relay."""

    def release(self, mailbox: bytes) -> None:
        """``mailbox`` lost its last subscriber on this relay."""

    def unwatch(self, mailbox: bytes) -> None:
        """``mailbox`` lost its last watcher on this relay."""

    def shared(self, mailbox: bytes) -> bool:
        """Whether other relays may hold ``mailbox`` (which has a subscriber here), so that a
        send to it must go to them too; False once the backplane knows none does."""


class Bucket:
    """A token bucket that may go into debt: a frame takes its token at once, and the caller
    learns when that token is due (now, unless the bucket is in debt)."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.stamp = now

    def take(self, now: float) -> float:
        """Reserve one token; the time it is due, ``now`` when the bucket had one."""
        self._refill(now)
        self.tokens -= 1.0
        if self.tokens >= -_TOKEN_SLACK:
            return now
        return self.stamp - self.tokens / self.rate

    def owe(self, count: int, now: float) -> None:
        """Take ``count`` more tokens after the fact, at most a burst deep into debt: later
        frames wait for them, but never longer than two bursts' refill (and a token per
        connection) all told."""
        self._refill(now)
        self.tokens = min(self.tokens, max(self.tokens - count, -self.burst))

    def full(self, now: float) -> bool:
        return self.tokens + max(0.0, now - self.stamp) * self.rate >= self.burst - _TOKEN_SLACK

    def _refill(self, now: float) -> None:
        if now > self.stamp:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now


class Address:
    """What the relay keeps per client address: counts and budgets shared by its connections.

    Kept while the address has a socket or a connection, and after that until its budgets are
    full again, so that closing every connection does not refill them."""

    __slots__ = ("checks", "connections", "frames", "opening", "sockets", "watches")

    def __init__(self, limits: RelayLimits, now: float) -> None:
        self.sockets = 0  # TCP connections, from accept until closed
        self.opening = 0  # of those, still in their WebSocket handshake
        self.connections = 0  # admitted connections (connect until disconnect)
        self.watches = 0  # over all of its connections
        self.frames = Bucket(limits.address_send_rate, limits.address_send_burst, now)
        self.checks = Bucket(limits.address_subscribe_rate, limits.address_subscribe_burst, now)

    def idle(self) -> bool:
        return not (self.sockets or self.connections)


class Connection:
    """One client connection's routing state. Identity is the object itself, never logged."""

    __slots__ = (
        "address",
        "awaiting",
        "challenge",
        "closed",
        "flooding_since",
        "last_drop",
        "origin",
        "replies",
        "send",
        "stamp",
        "subscriptions",
        "tokens",
        "told",
        "watches",
    )

    def __init__(
        self,
        send: SendFn,
        address: str,
        challenge: bytes,
        burst: int,
        now: float,
        origin: Address,
    ):
        self.send = send
        self.address = address
        self.origin = origin
        self.challenge = challenge
        self.subscriptions: set[bytes] = set()
        self.watches: set[bytes] = set()
        # Watched mailboxes whose `watching` reply waits for the backplane: no presence yet.
        self.awaiting: set[bytes] = set()
        self.tokens = float(burst)
        self.stamp = now
        # When its last frame was dropped, and when the flood that drop belongs to began.
        self.last_drop = _NEVER
        self.flooding_since = now
        # When this connection was last told rate_limited.
        self.told = _NEVER
        self.closed = False
        # While a reply waits for the backplane: it and every reply after it, in request
        # order, each [what completes it or None, its bytes once known].
        self.replies: deque[list[Any]] | None = None


@dataclass(slots=True)
class Counters:
    """Running totals for /metrics: counts only, never who or what."""

    frames_in: int = 0
    frames_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    connections_total: int = 0
    remote_in: int = 0


@dataclass(frozen=True, slots=True)
class Publish:
    """The driver must publish this send to the other relays, then call :meth:`Relay.sent`:
    a send to a mailbox that has no subscriber here, or that other relays may hold too.

    ``local`` connections on this relay already have it; the payload lives only until then.
    """

    conn: Connection
    request_id: int
    mailbox: bytes
    payload: bytes
    local: int


@dataclass(frozen=True, slots=True)
class Hold:
    """The first subscriber of a mailbox here: the driver waits until the other relays route
    it to us, then calls :meth:`Relay.held`, so that from the ``ok`` on every send reaches it."""

    conn: Connection
    request_id: int
    mailbox: bytes


@dataclass(frozen=True, slots=True)
class Lookup:
    """The driver must ask which of ``fresh`` are online elsewhere, then call
    :meth:`Relay.watched`. ``fresh`` are the mailboxes this relay had no watcher for."""

    conn: Connection
    request_id: int
    wanted: tuple[bytes, ...]
    fresh: tuple[bytes, ...]


class Relay:
    """The whole routing state of one relay process."""

    def __init__(
        self,
        limits: RelayLimits | None = None,
        *,
        random: Callable[[int], bytes] = os.urandom,
        verify: VerifyFn = verify_ed25519,
    ) -> None:
        self.limits = limits or RelayLimits()
        self._random = random
        self._verify = verify
        self._hello_limits = self.limits.announced()
        self._refill = 1.0 / self.limits.send_rate
        self._flood_pause = max(FLOOD_PAUSE, 2.0 * self._refill)
        self._too_large = wire.encode(wire.Error(None, ErrorCode.TOO_LARGE))
        self.connections: set[Connection] = set()
        self.addresses: dict[str, Address] = {}
        self.opening = 0  # handshakes under way, all addresses together
        self.subscribers: dict[bytes, set[Connection]] = {}
        self.watchers: dict[bytes, set[Connection]] = {}
        self.counters = Counters()
        self.rejects: Counter[str] = Counter()
        self.remote: Remote | None = None
        # Watched mailboxes that have a subscriber on another relay, as the backplane last said.
        self.remote_online: set[bytes] = set()
        # Mailboxes whose watchers were told something less than presence_interval ago: until
        # when the next notice must wait, what they were told, and the address that changed
        # the mailbox since (it pays for the next notice). Oldest first.
        self.quiet: dict[bytes, tuple[float, bool, Address | None]] = {}
        # Addresses with no socket and no connection, kept until their budgets are full.
        self._resting: set[str] = set()
        self._swept = _NEVER

    def attach(self, remote: Remote) -> None:
        """Share routing with other relays: from now on sends and watches go through ``remote``."""
        self.remote = remote

    @property
    def per_address(self) -> dict[str, int]:
        """Admitted connections per client address."""
        return {a: r.connections for a, r in self.addresses.items() if r.connections}

    # -- sockets, before the WebSocket handshake ----------------------------------------------

    def accept(self, address: str, now: float) -> bool:
        """A TCP connection from ``address`` was accepted. False when it is over a limit (too
        many connections or unfinished handshakes from that address, or too many handshakes in
        all): the driver aborts it at once. Otherwise it counts against ``address`` until
        :meth:`socket_closed`, as opening until :meth:`handshake_read`."""
        limits = self.limits
        known = self.addresses.get(address)
        if self.opening >= limits.max_handshakes or (
            known is not None
            and (
                known.sockets >= limits.max_connections_per_address
                or known.opening >= limits.max_handshakes_per_address
            )
        ):
            self.rejects[ErrorCode.TOO_MANY_CONNECTIONS] += 1
            return False
        origin = self._origin(address, now)
        origin.sockets += 1
        origin.opening += 1
        self.opening += 1
        return True

    def handshake_read(self, address: str) -> None:
        """The accepted connection's handshake request has been read: no longer opening."""
        origin = self.addresses[address]
        origin.opening -= 1
        self.opening -= 1

    def socket_closed(self, address: str, *, opening: bool) -> None:
        """An accepted TCP connection closed (``opening``: before its request was read)."""
        if opening:
            self.handshake_read(address)
        origin = self.addresses[address]
        origin.sockets -= 1
        self._rest(address, origin)

    # -- connection lifecycle -----------------------------------------------------------------

    def connect(self, send: SendFn, address: str, now: float) -> Connection:
        """Admit a connection and greet it with hello, or raise :class:`Refused`."""
        if len(self.connections) >= self.limits.max_connections:
            self.rejects[ErrorCode.TOO_MANY_CONNECTIONS] += 1
            raise Refused(Close(CLOSE_TRY_AGAIN_LATER, ErrorCode.TOO_MANY_CONNECTIONS))
        origin = self._origin(address, now)
        challenge = self._random(wire.CHALLENGE_SIZE)
        conn = Connection(send, address, challenge, self.limits.send_burst, now, origin)
        self.connections.add(conn)
        origin.connections += 1
        self.counters.connections_total += 1
        hello = wire.Hello(wire.SUPPORTED_VERSIONS, challenge, self._hello_limits)
        self._emit(conn, wire.encode(hello))
        return conn

    def disconnect(self, conn: Connection, now: float) -> None:
        """Forget a connection: its subscriptions (telling watchers) and its watches."""
        if conn.closed:
            return
        conn.closed = True
        self.connections.discard(conn)
        origin = conn.origin
        origin.connections -= 1
        origin.watches -= len(conn.watches)
        self._rest(conn.address, origin)
        for mailbox in conn.watches:
            self._unwatch_one(conn, mailbox)
        conn.watches.clear()
        conn.awaiting.clear()
        conn.replies = None
        for mailbox in conn.subscriptions:
            self._release_one(conn, mailbox, now)
        conn.subscriptions.clear()

    def shutdown(self, reason: str = ErrorCode.GOING_AWAY) -> None:
        """Say goodbye to every connection; the driver then closes them with going-away."""
        data = wire.encode(wire.Goodbye(reason))
        for conn in list(self.connections):
            self._emit(conn, data)

    def _origin(self, address: str, now: float) -> Address:
        origin = self.addresses.get(address)
        if origin is None:
            origin = self.addresses[address] = Address(self.limits, now)
        self._resting.discard(address)
        return origin

    def _rest(self, address: str, origin: Address) -> None:
        if origin.idle():
            self._resting.add(address)

    # -- time ---------------------------------------------------------------------------------

    def tick(self, now: float) -> float:
        """Send the presence notices that are due and forget addresses whose budgets are full
        again; returns when to call again (no later than a second from now)."""
        quiet = self.quiet
        while quiet:
            mailbox, (until, told, payer) = next(iter(quiet.items()))
            if until > now:
                break
            del quiet[mailbox]
            online = self.online(mailbox)
            if online != told and mailbox in self.watchers:
                self._notify(mailbox, online, now, payer)
        if now - self._swept >= SWEEP_INTERVAL:
            self._swept = now
            for address in [a for a in self._resting if self._spent(a, now)]:
                self._resting.discard(address)
                del self.addresses[address]
        due = now + SWEEP_INTERVAL
        if quiet:
            due = min(due, next(iter(quiet.values()))[0])
        return due

    def _spent(self, address: str, now: float) -> bool:
        origin = self.addresses[address]
        return origin.idle() and origin.frames.full(now) and origin.checks.full(now)

    # -- frames in ----------------------------------------------------------------------------

    def receive(
        self, conn: Connection, data: bytes, now: float
    ) -> Close | Pause | Wait | Publish | Lookup | Hold | None:
        """Handle one binary message from ``conn``; a Close says the driver must end it.

        A frame over the connection's budget is dropped and returns :class:`Pause`; over its
        address's, it returns :class:`Wait`. With a backplane attached, a send that other
        relays may have to take returns :class:`Publish`, a watch of a mailbox no one here
        watched yet :class:`Lookup`, a mailbox's first subscribe here :class:`Hold`: the driver
        has the backplane complete them (:meth:`sent`, :meth:`watched`, :meth:`held`). Replies
        keep the order of requests all the same: later ones wait behind (:meth:`waiting`).
        """
        if conn.closed:
            return None
        if len(data) > self.limits.max_frame_size:
            conn.send(self.refuse_oversize())
            return Close(CLOSE_TOO_BIG, ErrorCode.TOO_LARGE)
        self.counters.frames_in += 1
        self.counters.bytes_in += len(data)
        if not self._spend(conn, now):
            return self._over_budget(conn, data, now)
        due = conn.origin.frames.take(now)
        if due > now:
            return Wait(due, data)
        return self._handle(conn, data, now)

    def receive_text(self, conn: Connection, now: float) -> Close | Pause | Wait | None:
        """A text message is never a frame: answered as malformed, counted against the budgets."""
        if conn.closed:
            return None
        self.counters.frames_in += 1
        if not self._spend(conn, now):
            return self._over_budget(conn, None, now)
        due = conn.origin.frames.take(now)
        if due > now:
            return Wait(due, None)
        self._error(conn, None, ErrorCode.MALFORMED)
        return None

    def resume(
        self, conn: Connection, wait: Wait, now: float
    ) -> Close | Wait | Publish | Lookup | Hold | None:
        """Handle the frame of a :class:`Wait` once ``wait.until`` has come."""
        if conn.closed:
            return None
        if wait.frame is None:
            self._error(conn, None, ErrorCode.MALFORMED)
            return None
        if isinstance(wait.frame, wire.Subscribe):
            return self._subscribe(conn, wait.frame, now)
        return self._handle(conn, wait.frame, now)

    def _handle(
        self, conn: Connection, data: bytes, now: float
    ) -> Close | Wait | Publish | Lookup | Hold | None:
        try:
            frame = wire.decode_fast(data, self.limits.max_frame_size)
        except wire.WireError as exc:
            self._error(conn, wire.request_id_of(data), exc.code)
            return None
        if type(frame) is tuple:  # a send, its fields checked (the hot path builds no frame)
            return self._on_send(conn, *frame)
        if type(frame) is wire.Send:
            return self._on_send(conn, frame.request_id, frame.mailbox, frame.payload)
        elif type(frame) is wire.Subscribe:
            return self._on_subscribe(conn, frame, now)
        elif type(frame) is wire.Unsubscribe:
            self._on_unsubscribe(conn, frame, now)
        elif type(frame) is wire.Watch:
            return self._on_watch(conn, frame)
        elif type(frame) is wire.Unwatch:
            self._on_unwatch(conn, frame)
        elif type(frame) is wire.Ping:
            self._reply(conn, wire.encode(wire.Pong(frame.request_id)))
        elif type(frame) is wire.Goodbye:
            return Close(CLOSE_NORMAL, ErrorCode.NORMAL)
        else:
            self._error(conn, getattr(frame, "request_id", None), ErrorCode.UNEXPECTED_FRAME)
        return None

    def refuse_oversize(self) -> bytes:
        """A frame over ``max_frame_size``, refused unread (a driver's WebSocket layer stops at
        its header): the ``error`` to send before closing 1009, counted like every refusal."""
        self.rejects[ErrorCode.TOO_LARGE] += 1
        self.counters.frames_out += 1
        self.counters.bytes_out += len(self._too_large)
        return self._too_large

    def _over_budget(self, conn: Connection, data: bytes | None, now: float) -> Close | Pause:
        """A frame beyond the rate budget is dropped, unread.

        The connection is flooding from its first dropped frame until it goes ``_flood_pause``
        without one; flooding for longer than ``flood_window`` closes it. A frame that gets
        through in between (a token refilled) does not end the flood. The peer is told
        rate_limited at most once per refill interval, so dropping costs no reply either.
        """
        if not self.flooding(conn, now):
            conn.flooding_since = now
        conn.last_drop = now
        if now - conn.flooding_since > self.limits.flood_window:
            self.rejects[ErrorCode.FLOOD] += 1
            return Close(CLOSE_POLICY, ErrorCode.FLOOD)
        self.rejects[ErrorCode.RATE_LIMITED] += 1
        if now - conn.told >= self._refill:
            conn.told = now
            rid = None if data is None else wire.request_id_of(data)
            self._reply(conn, wire.encode(wire.Error(rid, ErrorCode.RATE_LIMITED)))
        return Pause(conn.stamp + (1.0 - conn.tokens) * self._refill)

    def flooding(self, conn: Connection, now: float) -> bool:
        """Whether ``conn`` is flooding: a frame of it was dropped less than the pause that
        ends a flood (FLOOD_PAUSE, or two refill intervals if longer) before ``now``."""
        return now - conn.last_drop < self._flood_pause

    def _on_send(
        self, conn: Connection, request_id: int, mailbox: bytes, payload: bytes
    ) -> Publish | None:
        delivered = self._deliver(mailbox, payload)
        remote = self.remote
        # A mailbox held here and nowhere else costs what it costs on a single relay.
        if remote is not None and (not delivered or remote.shared(mailbox)):
            publish = Publish(conn, request_id, mailbox, payload, delivered)
            self._await(conn, publish)
            return publish
        self._reply(conn, wire.encode_sent(request_id, delivered))
        return None

    def _deliver(self, mailbox: bytes, payload: bytes) -> int:
        targets = self.subscribers.get(mailbox)
        if not targets:
            return 0
        data = wire.encode_deliver(mailbox, payload)
        for target in tuple(targets):
            self._emit(target, data)
        return len(targets)

    def _on_subscribe(
        self, conn: Connection, frame: wire.Subscribe, now: float
    ) -> Wait | Hold | None:
        if wire.mailbox_id(frame.key) != frame.mailbox:
            self._error(conn, frame.request_id, ErrorCode.KEY_MISMATCH)
            return None
        due = conn.origin.checks.take(now)
        if due > now:
            return Wait(due, frame)
        return self._subscribe(conn, frame, now)

    def _subscribe(self, conn: Connection, frame: wire.Subscribe, now: float) -> Hold | None:
        """The signature check, its token paid, and the subscription."""
        rid = frame.request_id
        signed = wire.subscribe_signed_bytes(conn.challenge, frame.mailbox)
        if not self._verify(frame.key, frame.sig, signed):
            self._error(conn, rid, ErrorCode.BAD_SIGNATURE)
            return None
        if frame.mailbox not in conn.subscriptions:
            if len(conn.subscriptions) >= self.limits.max_subscriptions:
                self._error(conn, rid, ErrorCode.TOO_MANY_SUBSCRIPTIONS)
                return None
            conn.subscriptions.add(frame.mailbox)
            targets = self.subscribers.setdefault(frame.mailbox, set())
            targets.add(conn)
            if len(targets) == 1:
                if frame.mailbox not in self.remote_online:
                    self._changed(frame.mailbox, now, conn.origin)
                if self.remote is not None:
                    self.remote.hold(frame.mailbox)
                    hold = Hold(conn, rid, frame.mailbox)
                    self._await(conn, hold)
                    return hold
        self._reply(conn, wire.encode(wire.Ok(rid)))
        return None

    def _on_unsubscribe(self, conn: Connection, frame: wire.Unsubscribe, now: float) -> None:
        if frame.mailbox in conn.subscriptions:
            conn.subscriptions.discard(frame.mailbox)
            self._release_one(conn, frame.mailbox, now)
        self._reply(conn, wire.encode(wire.Ok(frame.request_id)))

    def _release_one(self, conn: Connection, mailbox: bytes, now: float) -> None:
        if self._drop(self.subscribers, mailbox, conn):
            if self.remote is not None:
                self.remote.release(mailbox)
            if mailbox not in self.remote_online:
                self._changed(mailbox, now, conn.origin)

    def _on_watch(self, conn: Connection, frame: wire.Watch) -> Lookup | None:
        limits = self.limits
        wanted = tuple(dict.fromkeys(frame.mailboxes))
        new = [m for m in wanted if m not in conn.watches]
        code = None
        if len(conn.watches) + len(new) > limits.max_watches:
            code = ErrorCode.TOO_MANY_WATCHES
        elif conn.origin.watches + len(new) > limits.max_watches_per_address:
            code = ErrorCode.TOO_MANY_ADDRESS_WATCHES
        elif any(len(self.watchers.get(m, ())) >= limits.max_watchers for m in new):
            code = ErrorCode.TOO_MANY_WATCHERS
        if code is not None:
            self._error(conn, frame.request_id, code)
            return None
        fresh = tuple(m for m in new if m not in self.watchers)
        conn.origin.watches += len(new)
        for mailbox in new:
            conn.watches.add(mailbox)
            self.watchers.setdefault(mailbox, set()).add(conn)
        if self.remote is not None and fresh:
            conn.awaiting.update(fresh)
            lookup = Lookup(conn, frame.request_id, wanted, fresh)
            self._await(conn, lookup)
            return lookup
        self._reply(conn, self._watching(frame.request_id, wanted))
        return None

    def _watching(self, rid: int, wanted: tuple[bytes, ...]) -> bytes:
        online = tuple(m for m in wanted if self.shown(m))
        return wire.encode(wire.Watching(rid, online))

    def _on_unwatch(self, conn: Connection, frame: wire.Unwatch) -> None:
        for mailbox in frame.mailboxes:
            if mailbox in conn.watches:
                conn.watches.discard(mailbox)
                conn.awaiting.discard(mailbox)
                conn.origin.watches -= 1
                self._unwatch_one(conn, mailbox)
        self._reply(conn, wire.encode(wire.Ok(frame.request_id)))

    def _unwatch_one(self, conn: Connection, mailbox: bytes) -> None:
        if self._drop(self.watchers, mailbox, conn):
            self.remote_online.discard(mailbox)
            if self.remote is not None:
                self.remote.unwatch(mailbox)

    # -- presence -----------------------------------------------------------------------------

    def online(self, mailbox: bytes) -> bool:
        """Whether ``mailbox`` has a subscriber here or, as far as we know, on another relay."""
        return mailbox in self.subscribers or mailbox in self.remote_online

    def shown(self, mailbox: bytes) -> bool:
        """What watchers of ``mailbox`` are told it is: its state, except while a change waits
        out the quiet interval after the last notice, when it is what that notice said."""
        quiet = self.quiet.get(mailbox)
        return self.online(mailbox) if quiet is None else quiet[1]

    def _changed(self, mailbox: bytes, now: float, payer: Address | None) -> None:
        """``mailbox`` went online or offline, by a frame from ``payer`` (None: another
        relay's doing). Its watchers hear of it now, unless they heard about it less than
        ``presence_interval`` ago; then :meth:`tick` tells them the state it is in by the end
        of that interval, if that differs from what they were told."""
        quiet = self.quiet.get(mailbox)
        if quiet is not None:
            until, told, _ = quiet
            if until > now:
                self.quiet[mailbox] = (until, told, payer)
                return
            del self.quiet[mailbox]  # over, and tick() has not come round to it yet
            if self.online(mailbox) == told:
                return
        if mailbox in self.watchers:
            self._notify(mailbox, self.online(mailbox), now, payer)

    def _notify(self, mailbox: bytes, online: bool, now: float, payer: Address | None) -> None:
        self.quiet[mailbox] = (now + self.limits.presence_interval, online, None)
        data = wire.encode(wire.Presence(mailbox, online))
        told = 0
        for watcher in tuple(self.watchers[mailbox]):
            if mailbox not in watcher.awaiting:
                self._reply(watcher, data)  # after the replies it waits for, as they were
                told += 1
        if payer is not None and told > FREE_WATCHERS:
            payer.frames.owe(told - FREE_WATCHERS, now)

    # -- from the backplane -------------------------------------------------------------------

    def sent(self, publish: Publish, remote: int) -> None:
        """Finish a :class:`Publish`: ``remote`` other relays took the payload."""
        delivered = publish.local + max(0, remote)
        self._complete(publish, wire.encode(wire.Sent(publish.request_id, delivered)))

    def held(self, hold: Hold) -> None:
        """Finish a :class:`Hold` once the backplane routes the mailbox here."""
        self._complete(hold, wire.encode(wire.Ok(hold.request_id)))

    def watched(self, lookup: Lookup) -> None:
        """Finish a :class:`Lookup` once the backplane has reported on ``lookup.fresh``."""
        lookup.conn.awaiting.difference_update(lookup.fresh)
        self._complete(lookup, self._watching(lookup.request_id, lookup.wanted))

    def waiting(self, conn: Connection) -> int:
        """Replies of ``conn`` not sent yet: those the backplane still has to complete, and
        those queued behind them."""
        return len(conn.replies) if conn.replies else 0

    # -- replies in request order -------------------------------------------------------------

    def _reply(self, conn: Connection, data: bytes) -> None:
        """A reply goes out now, unless an earlier one waits for the backplane: then after it."""
        if conn.replies:
            conn.replies.append([None, data])
        else:
            self._emit(conn, data)

    @staticmethod
    def _await(conn: Connection, pending: Publish | Hold | Lookup) -> None:
        """``pending``'s reply comes when the backplane completes it; later replies wait."""
        if conn.replies is None:
            conn.replies = deque()
        conn.replies.append([pending, None])

    def _complete(self, pending: Publish | Hold | Lookup, data: bytes) -> None:
        """``pending``'s reply is ``data``: send it and the replies behind it, in order, up to
        the next one still waiting."""
        conn = pending.conn
        replies = conn.replies
        if conn.closed or not replies:
            return
        for entry in replies:
            if entry[0] is pending:
                entry[1] = data
                break
        while replies and replies[0][1] is not None:
            self._emit(conn, replies.popleft()[1])

    def remote_presence(self, mailbox: bytes, online: bool, now: float) -> None:
        """Another relay's view of ``mailbox`` changed; watchers hear of it if the union did."""
        if mailbox not in self.watchers or online == (mailbox in self.remote_online):
            return
        if online:
            self.remote_online.add(mailbox)
        else:
            self.remote_online.discard(mailbox)
        if mailbox not in self.subscribers:
            self._changed(mailbox, now, None)

    def remote_lost(self, now: float) -> None:
        """The backplane is down: no other relay is reachable, so none counts as online."""
        for mailbox in list(self.remote_online):
            self.remote_presence(mailbox, False, now)

    def deliver_remote(self, mailbox: bytes, payload: bytes) -> int:
        """A payload another relay published for ``mailbox``: hand it to our subscribers."""
        self.counters.remote_in += 1
        targets = self.subscribers.get(mailbox)
        if not targets:
            return 0
        data = wire.encode_deliver(mailbox, payload)
        if len(data) > self.limits.max_frame_size:
            # Published by a relay with a larger frame limit: our clients could not take it.
            self.rejects[ErrorCode.TOO_LARGE] += 1
            return 0
        for target in tuple(targets):
            self._emit(target, data)
        return len(targets)

    # -- helpers ------------------------------------------------------------------------------

    def _spend(self, conn: Connection, now: float) -> bool:
        """Token bucket: every frame costs one token; tokens refill at ``send_rate`` per second."""
        limits = self.limits
        elapsed = now - conn.stamp
        if elapsed > 0:
            conn.tokens = min(float(limits.send_burst), conn.tokens + elapsed * limits.send_rate)
            conn.stamp = now
        if conn.tokens >= 1.0 - _TOKEN_SLACK:
            conn.tokens = max(0.0, conn.tokens - 1.0)
            return True
        return False

    @staticmethod
    def _drop(table: dict[bytes, set[Connection]], mailbox: bytes, conn: Connection) -> bool:
        """Remove ``conn`` from ``table[mailbox]``; True when that emptied the mailbox."""
        members = table.get(mailbox)
        if members is None or conn not in members:
            return False
        members.discard(conn)
        if not members:
            del table[mailbox]
            return True
        return False

    def _error(self, conn: Connection, rid: int | None, code: str) -> None:
        self.rejects[code] += 1
        self._reply(conn, wire.encode(wire.Error(rid, code)))

    def _emit(self, conn: Connection, data: bytes) -> None:
        self.counters.frames_out += 1
        self.counters.bytes_out += len(data)
        conn.send(data)
