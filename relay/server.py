"""The relay on websockets: parse nothing here, hand bytes to relay.state and write what it says.

Runs as ``anonchat-relay`` / ``python -m relay``, or in-process through :func:`serve_relay`
(the desktop app embeds it on 127.0.0.1 with a free port). ``GET /healthz`` and
``GET /metrics`` answer on the WebSocket port. With ``--redis`` several relays share routing
through relay.backplane.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import signal
import socket
import ssl
import sys
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from functools import partial
from http import HTTPStatus
from typing import Any, cast
from urllib.parse import urlsplit

from websockets.frames import CloseCode, Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.server import ServerProtocol

from relay.announce import Announcer, check_name, is_loopback_host
from relay.backplane import Backplane
from relay.cluster import cluster_key
from relay.state import (
    CLOSE_GOING_AWAY,
    Close,
    Connection,
    Hold,
    Lookup,
    Pause,
    Publish,
    Refused,
    Relay,
    Wait,
)
from relay.state import RelayLimits as RelayLimits
from relay.wire import ErrorCode

log = logging.getLogger("relay")

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
DEFAULT_MAX_BACKLOG = 4 * 1024 * 1024
DEFAULT_HANDSHAKE_TIMEOUT = 5.0
# A browser's or websockets' upgrade request is under 1 KiB; proxies add a few headers.
DEFAULT_MAX_HEADER_BYTES = 16 * 1024
# The receive buffer of a flooding connection (the kernel doubles it for its own use).
FLOOD_RECEIVE_BUFFER = 4096
# TCP connections the kernel may hold for the relay to accept: a burst of them waits there
# instead of having its SYNs dropped (and retried a second later).
LISTEN_BACKLOG = 1024
# Sends of one connection waiting for the backplane's answer before its next frame waits too.
PIPELINE = 64
# Seconds a closing connection has to end its TCP connection before it is aborted.
CLOSE_TIMEOUT = 5.0
SERVER_HEADER = "anonchat-relay"
# Marks a fragmented message as text while its fragments come in.
_TEXT = b"text"


@dataclass(frozen=True, slots=True)
class RelayConfig:
    """How to run one relay: where to listen, its limits, TLS, and whether logs may name peers."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    limits: RelayLimits = field(default_factory=RelayLimits)
    tls_cert: str | None = None
    tls_key: str | None = None
    max_backlog: int = DEFAULT_MAX_BACKLOG
    handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    debug_identifiers: bool = False
    redis_url: str | None = None
    redis_secret: bytes | None = field(default=None, repr=False)


class RelayHandle:
    """A running relay: where it listens, its routing state, and how to stop it."""

    def __init__(
        self,
        server: RelayServer,
        relay: Relay,
        config: RelayConfig,
        port: int,
        backplane: Backplane | None = None,
        ticker: asyncio.Task[None] | None = None,
    ) -> None:
        self.server = server
        self.relay = relay
        self.backplane = backplane
        self.ticker = ticker
        self.config = config
        self.port = port
        scheme = "wss" if config.tls_cert else "ws"
        host = f"[{config.host}]" if ":" in config.host else config.host
        self.url = f"{scheme}://{host}:{port}/"

    async def close(self) -> None:
        """Say goodbye to every client, close them with going-away (1001), wait until done."""
        self.relay.shutdown(ErrorCode.GOING_AWAY)
        await self.server.close(CLOSE_GOING_AWAY, ErrorCode.GOING_AWAY)
        if self.ticker is not None:
            self.ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.ticker
        if self.backplane is not None:
            await self.backplane.close()

    async def wait_closed(self) -> None:
        await self.server.wait_closed()


def health_text(backplane: Backplane | None) -> str:
    """``ok``, and with a backplane whether it is up: local traffic is served either way."""
    if backplane is None:
        return "ok\n"
    return "ok\nbackplane up\n" if backplane.up else "ok\nbackplane down\n"


def backplane_metrics(backplane: Backplane) -> list[str]:
    c = backplane.counters
    return [
        "# HELP anonchat_relay_backplane_up 1 while the Redis backplane is linked.",
        "# TYPE anonchat_relay_backplane_up gauge",
        f"anonchat_relay_backplane_up {int(backplane.up)}",
        "# HELP anonchat_relay_backplane_links_total Times the backplane link came up.",
        "# TYPE anonchat_relay_backplane_links_total counter",
        f"anonchat_relay_backplane_links_total {c.links}",
        "# HELP anonchat_relay_backplane_published_total Sends published to other relays.",
        "# TYPE anonchat_relay_backplane_published_total counter",
        f"anonchat_relay_backplane_published_total {c.published}",
        "# HELP anonchat_relay_backplane_received_total Messages from other relays.",
        "# TYPE anonchat_relay_backplane_received_total counter",
        f"anonchat_relay_backplane_received_total {c.received}",
        "# HELP anonchat_relay_backplane_dropped_total Unreadable backplane messages.",
        "# TYPE anonchat_relay_backplane_dropped_total counter",
        f"anonchat_relay_backplane_dropped_total {c.dropped}",
        "# HELP anonchat_relay_backplane_errors_total Publishes the link ended before answering.",
        "# TYPE anonchat_relay_backplane_errors_total counter",
        f"anonchat_relay_backplane_errors_total {c.errors}",
        "# HELP anonchat_relay_backplane_relays Other relays linked, as far as this one heard.",
        "# TYPE anonchat_relay_backplane_relays gauge",
        f"anonchat_relay_backplane_relays {backplane.peers}",
        "# HELP anonchat_relay_backplane_relays_lost_total Other relays found gone.",
        "# TYPE anonchat_relay_backplane_relays_lost_total counter",
        f"anonchat_relay_backplane_relays_lost_total {c.relays_lost}",
    ]


def metrics_text(relay: Relay, backplane: Backplane | None = None) -> str:
    """Prometheus text exposition of the relay's counts; no label ever names a peer."""
    c = relay.counters
    lines = [
        "# HELP anonchat_relay_connections Open client connections.",
        "# TYPE anonchat_relay_connections gauge",
        f"anonchat_relay_connections {len(relay.connections)}",
        "# HELP anonchat_relay_handshakes TCP connections in their WebSocket handshake.",
        "# TYPE anonchat_relay_handshakes gauge",
        f"anonchat_relay_handshakes {relay.opening}",
        "# HELP anonchat_relay_connections_total Connections admitted since start.",
        "# TYPE anonchat_relay_connections_total counter",
        f"anonchat_relay_connections_total {c.connections_total}",
        "# HELP anonchat_relay_mailboxes Mailboxes with at least one subscriber.",
        "# TYPE anonchat_relay_mailboxes gauge",
        f"anonchat_relay_mailboxes {len(relay.subscribers)}",
        "# HELP anonchat_relay_watched_mailboxes Mailboxes with at least one watcher.",
        "# TYPE anonchat_relay_watched_mailboxes gauge",
        f"anonchat_relay_watched_mailboxes {len(relay.watchers)}",
        "# HELP anonchat_relay_frames_in_total Frames received from clients.",
        "# TYPE anonchat_relay_frames_in_total counter",
        f"anonchat_relay_frames_in_total {c.frames_in}",
        "# HELP anonchat_relay_frames_out_total Frames sent to clients.",
        "# TYPE anonchat_relay_frames_out_total counter",
        f"anonchat_relay_frames_out_total {c.frames_out}",
        "# HELP anonchat_relay_bytes_in_total Frame bytes received from clients.",
        "# TYPE anonchat_relay_bytes_in_total counter",
        f"anonchat_relay_bytes_in_total {c.bytes_in}",
        "# HELP anonchat_relay_bytes_out_total Frame bytes sent to clients.",
        "# TYPE anonchat_relay_bytes_out_total counter",
        f"anonchat_relay_bytes_out_total {c.bytes_out}",
        "# HELP anonchat_relay_rejects_total Refused frames and connections by reason.",
        "# TYPE anonchat_relay_rejects_total counter",
    ]
    lines += [
        f'anonchat_relay_rejects_total{{reason="{r}"}} {n}'
        for r, n in sorted(relay.rejects.items())
    ]
    if backplane is not None:
        lines += backplane_metrics(backplane)
    return "\n".join(lines) + "\n"


def _tls_context(config: RelayConfig) -> ssl.SSLContext | None:
    if not config.tls_cert:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(config.tls_cert, config.tls_key)
    return context


class _RelayProtocol(ServerProtocol):
    """websockets' sans-I/O server protocol, which says ``too_large`` before failing 1009.

    websockets refuses a frame over ``max_size`` from its header, unread, and fails the
    connection with 1009 at once; this puts the relay's ``error`` frame ahead of that close
    frame, and counts the refusal."""

    def __init__(self, relay: Relay, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.refusal = relay.refuse_oversize

    def fail(self, code: CloseCode | int, reason: str = "") -> None:
        if code == CloseCode.MESSAGE_TOO_BIG and self.state is State.OPEN:
            self.send_binary(self.refusal())
        super().fail(code, reason)


class RelayServer:
    """The listening socket and every TCP connection it accepted (:class:`Link`), with what
    they share: the routing state, the writes due at the end of this loop turn, keepalive."""

    def __init__(
        self, relay: Relay, config: RelayConfig, backplane: Backplane | None, loop: Any
    ) -> None:
        self.relay = relay
        self.config = config
        self.backplane = backplane
        self.loop = loop
        self.connections: set[Link] = set()
        self.logger = logging.getLogger("relay.websockets")
        self.server: asyncio.Server | None = None
        self.closing = False
        self.emptied: asyncio.Event | None = None
        # Links with frames waiting in their protocol: written once, at the end of the turn.
        self._dirty: list[Link] = []
        self._keepalive: asyncio.TimerHandle | None = None

    def new_protocol(self) -> _RelayProtocol:
        return _RelayProtocol(
            self.relay,
            max_size=self.config.limits.max_frame_size,
            logger=self.logger,
        )

    def process_request(self, protocol: ServerProtocol, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path == "/healthz":
            return protocol.reject(HTTPStatus.OK, health_text(self.backplane))
        if path == "/metrics":
            response = protocol.reject(HTTPStatus.OK, metrics_text(self.relay, self.backplane))
            del response.headers["Content-Type"]
            response.headers["Content-Type"] = "text/plain; version=0.0.4; charset=utf-8"
            return response
        return None

    def dirty(self, link: Link) -> None:
        if not self._dirty:
            self.loop.call_soon(self.flush)
        self._dirty.append(link)

    def flush(self) -> None:
        """Everything framed since the last flush, one write per connection: the replies and
        deliveries a burst of frames produced share one system call instead of one each."""
        links, self._dirty = self._dirty, []
        for link in links:
            link.dirty = False
            link.flush()

    def forget(self, link: Link) -> None:
        self.connections.discard(link)
        if self.emptied is not None and not self.connections:
            self.emptied.set()

    async def start(self) -> int:
        config = self.config
        self.server = await self.loop.create_server(
            partial(Link, self),
            config.host,
            config.port,
            backlog=LISTEN_BACKLOG,
            ssl=_tls_context(config),
            ssl_handshake_timeout=config.handshake_timeout if config.tls_cert else None,
            reuse_address=True,
        )
        self._keepalive = self.loop.call_later(self.keepalive_period, self.keepalive)
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    @property
    def keepalive_period(self) -> float:
        return self.config.limits.idle_timeout / 4

    def keepalive(self) -> None:
        """Ping every connection quiet for half the idle timeout; close, with 1011, one whose
        ping went unanswered for as long. One sweep for all, not a timer per connection."""
        now = self.loop.time()
        half = self.config.limits.idle_timeout / 2
        for link in list(self.connections):
            link.keepalive(now, half)
        self._keepalive = self.loop.call_later(self.keepalive_period, self.keepalive)

    async def close(self, code: int, reason: str) -> None:
        """Stop listening, close every connection with ``code`` and wait (at most the close
        timeout) until each is gone."""
        self.closing = True
        if self._keepalive is not None:
            self._keepalive.cancel()
        if self.server is not None:
            self.server.close()
        self.emptied = asyncio.Event()
        for link in list(self.connections):
            link.close(code, reason)
        self.flush()
        if self.connections:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CLOSE_TIMEOUT + 1):
                    await self.emptied.wait()
        for link in list(self.connections):
            link.abort()
        if self.server is not None:
            await self.server.wait_closed()

    async def wait_closed(self) -> None:
        if self.server is not None:
            await self.server.wait_closed()


class Link(asyncio.Protocol):
    """One TCP connection: the transport's callbacks drive websockets' sans-I/O protocol (bytes
    in, frames out), and each message goes straight to relay.state. No task or future per
    connection or per message: waiting (a throttle, the backplane) pauses reading instead."""

    __slots__ = (
        "address",
        "conn",
        "counted",
        "dirty",
        "fragments",
        "header_bytes",
        "heard",
        "opening",
        "out",
        "pending",
        "ping_at",
        "protocol",
        "quiet_since",
        "saved_buffer",
        "server",
        "stall",
        "suspended",
        "task",
        "timer",
        "transport",
    )

    def __init__(self, server: RelayServer) -> None:
        self.server = server
        self.protocol = server.new_protocol()
        self.transport: Any = None
        self.address = "?"
        self.conn: Connection | None = None
        self.counted = False  # by relay.accept, until relay.socket_closed
        self.opening = True  # its handshake request is not read yet
        self.header_bytes = 0
        self.dirty = False
        self.out: list[bytes] | None = None  # frames of ours not written yet
        self.fragments: list[bytes] | None = None  # a fragmented message so far
        self.suspended = False  # reading paused until a throttle or the backplane says go on
        self.pending: deque[Any] | None = None  # frames read but not handled while suspended
        self.heard = False  # since the last keepalive sweep
        self.quiet_since = 0.0
        self.ping_at: float | None = None
        self.saved_buffer: int | None = None  # the socket's receive buffer while shrunk
        self.timer: asyncio.TimerHandle | None = None  # handshake, wake-up or close deadline
        self.stall: asyncio.TimerHandle | None = None
        self.task: asyncio.Task[None] | None = None  # a backplane call this link waits for

    # -- transport callbacks ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Count the socket against its address at once, or abort it over a limit."""
        server = self.server
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.address = str(peer[0]) if peer else "?"
        now = server.loop.time()
        if server.closing or not server.relay.accept(self.address, now):
            transport.abort()  # type: ignore[attr-defined]
            return
        self.counted = True
        self.quiet_since = now
        server.connections.add(self)
        self.timer = server.loop.call_later(server.config.handshake_timeout, self.abort)

    def data_received(self, data: bytes) -> None:
        if self.opening:
            self.header_bytes += len(data)
            if self.header_bytes > self.server.config.max_header_bytes:
                self.server.relay.rejects[ErrorCode.TOO_LARGE] += 1
                self.abort()
                return
        self.heard = True
        self.ping_at = None
        protocol = self.protocol
        protocol.receive_data(data)
        self.handle(protocol.events_received())
        self.flush()

    def eof_received(self) -> bool | None:
        self.protocol.receive_eof()
        self.handle(self.protocol.events_received())
        self.flush()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        server = self.server
        for handle in (self.timer, self.stall):
            if handle is not None:
                handle.cancel()
        self.timer = self.stall = None
        if self.task is not None:
            self.task.cancel()
            self.task = None
        self.pending = None
        self.disconnect()
        if self.counted:
            self.counted = False
            server.relay.socket_closed(self.address, opening=self.opening)
            server.forget(self)

    def pause_writing(self) -> None:
        """The write buffer is over its high mark: if it does not drain within the idle
        timeout, the peer has stopped reading; neither a ping nor a close frame would reach
        it (both wait behind the buffer), so the connection is aborted."""
        self.stall = self.server.loop.call_later(
            self.server.config.limits.idle_timeout, self._stalled
        )

    def resume_writing(self) -> None:
        if self.stall is not None:
            self.stall.cancel()
            self.stall = None

    def _stalled(self) -> None:
        self.stall = None
        self.server.relay.rejects[ErrorCode.SLOW_CONSUMER] += 1
        self.abort()

    # -- frames in ----------------------------------------------------------------------------

    def handle(self, events: list[Any]) -> None:
        for event in events:
            if self.suspended:
                assert self.pending is not None
                self.pending.append(event)
            elif type(event) is Frame:
                self.frame(event)
            else:
                self.handshake(event)

    def frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        data = cast(bytes, frame.data)  # websockets parses into bytes
        if opcode is Opcode.BINARY and frame.fin:  # the usual case: one frame, one message
            self.message(data)
        elif opcode is Opcode.BINARY or opcode is Opcode.TEXT:
            if not frame.fin:  # websockets bounds the whole message by max_size
                self.fragments = [_TEXT if opcode is Opcode.TEXT else b"", data]
            else:
                self.text(data)
        elif opcode is Opcode.CONT and self.fragments is not None:
            self.fragments.append(data)
            if frame.fin:
                parts, self.fragments = self.fragments, None
                data = b"".join(parts[1:])
                if parts[0] is _TEXT:
                    self.text(data)
                else:
                    self.message(data)
        elif opcode is Opcode.CLOSE:
            self.disconnect()  # websockets echoed it and ends the TCP connection

    def text(self, data: bytes) -> None:
        try:
            data.decode()
        except UnicodeDecodeError:
            self.protocol.fail(CloseCode.INVALID_DATA, "invalid UTF-8")
            self.disconnect()
            return
        self.message(None)

    def message(self, data: bytes | None) -> None:
        """One binary message (``None`` for a text one) to relay.state, and what it says."""
        conn = self.conn
        if conn is None:
            return
        server = self.server
        relay = server.relay
        now = server.loop.time()
        if data is not None:
            result = relay.receive(conn, data, now)
        else:
            result = relay.receive_text(conn, now)
        if result is None:
            if self.saved_buffer is not None and not relay.flooding(conn, now):
                self.window(small=False)
            return
        if isinstance(result, Wait):
            self.sleep(result.until, partial(self.waited, result))
            return
        if self.saved_buffer is not None and not relay.flooding(conn, now):
            self.window(small=False)
        self.outcome(result)

    def waited(self, wait: Wait) -> None:
        """The address's budget has a token for the frame that waited: handle it now."""
        self.timer = None
        conn = self.conn
        if conn is None or self.protocol.state is not State.OPEN:
            return  # closed while it waited: what it sent is not worth handling
        result = self.server.relay.resume(conn, wait, self.server.loop.time())
        if isinstance(result, Wait):
            self.sleep(result.until, partial(self.waited, result))
            return
        self.suspended = False
        if result is not None:
            self.outcome(result)
        self.go_on()

    def outcome(self, result: Close | Pause | Publish | Lookup | Hold) -> None:
        relay = self.server.relay
        backplane = self.server.backplane
        conn = self.conn
        assert conn is not None
        if isinstance(result, Pause):
            self.sleep(result.until, self.woken)
        elif isinstance(result, Publish):
            # Pipelined: the relay's state keeps replies in request order. Past PIPELINE
            # unanswered, reading waits for the backplane to catch up.
            assert backplane is not None
            backplane.publish(result.mailbox, result.payload, partial(self.sent, result))
            if relay.waiting(conn) >= PIPELINE:
                self.suspend()
        elif isinstance(result, Lookup):
            assert backplane is not None
            self.call(backplane.lookup(result), partial(relay.watched, result))
        elif isinstance(result, Hold):
            assert backplane is not None
            self.call(backplane.routed(result.mailbox), partial(relay.held, result))
        else:
            self.close_now(result)

    def sent(self, publish: Publish, remote: int) -> None:
        relay = self.server.relay
        relay.sent(publish, remote)
        conn = self.conn
        if (
            self.suspended
            and self.task is None
            and self.timer is None
            and conn is not None
            and relay.waiting(conn) < PIPELINE // 2
        ):
            self.suspended = False
            self.go_on()

    def call(self, work: Any, then: Any) -> None:
        """Wait for a backplane call before reading on; ``then`` once it returned."""
        self.suspend()
        self.task = task = self.server.loop.create_task(work)

        def done(task: asyncio.Task[None]) -> None:
            if self.task is not task:
                return  # the connection ended meanwhile
            self.task = None
            if task.cancelled() or task.exception() is not None:
                self.abort()
                return
            then()
            self.suspended = False
            self.go_on()

        task.add_done_callback(done)

    # -- throttling -------------------------------------------------------------------------

    def suspend(self) -> None:
        if not self.suspended:
            self.suspended = True
            if self.pending is None:
                self.pending = deque()
            with contextlib.suppress(Exception):
                self.transport.pause_reading()

    def sleep(self, until: float, wake: Any) -> None:
        """Read nothing until the next token is due (of the connection's budget, or of its
        address's): a flood waits in the kernel's buffers and then the client's, so a flooder
        costs about two frames per refill interval."""
        self.window(small=True)
        self.suspend()
        self.timer = self.server.loop.call_at(until, wake)

    def woken(self) -> None:
        self.timer = None
        self.suspended = False
        self.go_on()

    def go_on(self) -> None:
        """Handle the frames read before a pause, then read again unless paused anew."""
        pending = self.pending
        while pending and not self.suspended:
            event = pending.popleft()
            if type(event) is Frame:
                self.frame(event)
            else:
                self.handshake(event)
        if not self.suspended:
            self.pending = None
            if not self.transport.is_closing():
                with contextlib.suppress(Exception):
                    self.transport.resume_reading()
        self.flush()

    def window(self, *, small: bool) -> None:
        """While a client floods or waits for its address's budget, keep its TCP receive
        window small. What it sends then waits on its side, and each read brings a few frames
        to parse, not the quarter megabyte a full window holds, whose parsing would stall
        every other client."""
        sock = self.transport.get_extra_info("socket")
        if sock is None or small == (self.saved_buffer is not None):
            return
        with contextlib.suppress(OSError):
            if small:
                self.saved_buffer = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, FLOOD_RECEIVE_BUFFER)
            elif self.saved_buffer is not None:
                # getsockopt reports the doubled size that setsockopt makes of a value.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.saved_buffer // 2)
                self.saved_buffer = None

    # -- the opening handshake --------------------------------------------------------------

    def handshake(self, request: Request) -> None:
        server = self.server
        relay = server.relay
        protocol = self.protocol
        self.opening = False
        relay.handshake_read(self.address)
        response = server.process_request(protocol, request)
        if response is None:
            response = protocol.accept(request)
        response.headers["Server"] = SERVER_HEADER
        protocol.send_response(response)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if protocol.state is not State.OPEN:
            return
        self.out = protocol.data_to_send()  # the response, ahead of our frames
        try:
            self.conn = relay.connect(self.send, self.address, server.loop.time())
        except Refused as refused:
            protocol.send_close(refused.close.code, refused.close.reason)
            return
        if server.config.debug_identifiers:
            log.debug("connection from %s", self.address)

    # -- frames out ---------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        """What relay.state sends this client: framed now, written at the end of the turn."""
        transport = self.transport
        if transport.is_closing():
            return
        if transport.get_write_buffer_size() > self.server.config.max_backlog:
            # A reader this far behind would hold memory for others: drop it, not them.
            # It would not read a close frame either, queued behind the backlog.
            self.server.relay.rejects[ErrorCode.SLOW_CONSUMER] += 1
            self.abort()
            return
        protocol = self.protocol
        if protocol.state is not State.OPEN:
            return  # closing: nothing more goes out, as websockets' broadcast() does
        # What protocol.send_binary does for an open connection, without its per-frame checks
        # and logging: websockets frames the message. The frames wait here, ahead of any the
        # protocol makes afterwards (a close frame, a pong), until the flush.
        frame = Frame(Opcode.BINARY, data).serialize(mask=False, extensions=protocol.extensions)
        if self.out is None:
            self.out = [frame]
        else:
            self.out.append(frame)
        if not self.dirty:
            self.dirty = True
            self.server.dirty(self)

    def flush(self) -> None:
        chunks = self.protocol.data_to_send()
        if self.out is not None:
            chunks[:0], self.out = self.out, None
        if not chunks:
            return
        transport = self.transport
        if transport.is_closing():
            return
        if all(chunks):
            transport.writelines(chunks)
        else:
            for chunk in chunks:
                if chunk:
                    transport.write(chunk)
                else:
                    self.end()
                    break
        if self.protocol.close_expected() and self.timer is None:
            self.timer = self.server.loop.call_later(CLOSE_TIMEOUT, self.abort)

    def keepalive(self, now: float, half: float) -> None:
        if self.protocol.state is not State.OPEN or self.stall is not None:
            return  # a stalled output is the stall timer's: a ping would wait behind it
        if self.heard:
            self.heard = False
            self.quiet_since = now
        elif self.ping_at is not None:
            if now - self.ping_at >= half:
                self.disconnect()
                self.protocol.fail(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")
                self.flush()
        elif now - self.quiet_since >= half:
            self.ping_at = now
            self.protocol.send_ping(b"")
            self.flush()

    # -- the end ------------------------------------------------------------------------------

    def disconnect(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            self.server.relay.disconnect(conn, self.server.loop.time())

    def end(self) -> None:
        """websockets ends the TCP connection (the server closes first): send a FIN after the
        frames written, and read on, discarding, until the client's, so that what it still
        had in flight does not turn our FIN into a reset that loses the close frame."""
        transport = self.transport
        if not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()
        self.pending = None
        self.suspended = False
        with contextlib.suppress(Exception):
            transport.resume_reading()

    def close_now(self, close: Close) -> None:
        """Send the close frame and end the TCP connection without waiting for the echo.

        A client being thrown out usually has frames queued that we will not read (websockets
        discards them once it failed the connection); waiting for the close echo could stall
        until the close timeout. The server may close first (RFC 6455 section 7.1.1)."""
        self.disconnect()
        # The base class's: no too_large error ahead of it, whatever the code.
        ServerProtocol.fail(self.protocol, close.code, close.reason)
        self.flush()

    def close(self, code: int, reason: str) -> None:
        """Close with ``code`` (the relay stops): a connection still in its handshake ends."""
        if self.protocol.state is State.OPEN:
            self.disconnect()
            self.protocol.send_close(code, reason)
            self.flush()
        elif self.protocol.state is State.CONNECTING:
            self.abort()

    def abort(self) -> None:
        self.timer = None
        if self.transport is not None:
            self.transport.abort()


async def serve_relay(config: RelayConfig | None = None) -> RelayHandle:
    """Start a relay on the running loop; ``port=0`` picks a free port (see ``handle.port``)."""
    config = config or RelayConfig()
    relay = Relay(config.limits)
    loop = asyncio.get_running_loop()
    backplane: Backplane | None = None
    if config.redis_url:
        key = cluster_key(config.redis_url, config.redis_secret)
        backplane = Backplane(relay, config.redis_url, key)
        relay.attach(backplane)
        await backplane.start()

    async def ticking() -> None:
        """Presence notices that waited out their quiet interval, and address bookkeeping."""
        while True:
            now = loop.time()
            try:
                due = relay.tick(now)
            except Exception:  # our bug: say so, and keep presence going for the rest
                log.exception("relay tick failed")
                due = now + 1.0
            await asyncio.sleep(due - now)

    server = RelayServer(relay, config, backplane, loop)
    port = await server.start()
    ticker = loop.create_task(ticking())
    return RelayHandle(server, relay, config, port, backplane, ticker)


def parse_args(argv: Sequence[str] | None = None) -> tuple[RelayConfig, argparse.Namespace]:
    """The command line as a RelayConfig, plus the process-level options (loop, logging)."""
    d = RelayLimits()
    p = argparse.ArgumentParser(
        prog="anonchat-relay",
        description="Forward ciphertext between AnonChat clients. Keeps nothing, writes nothing.",
    )
    p.add_argument("--host", default=DEFAULT_HOST, help="address to listen on (%(default)s)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="port, 0 for any (%(default)s)")
    p.add_argument("--tls-cert", help="PEM certificate chain; serves wss:// when given")
    p.add_argument("--tls-key", help="PEM private key for --tls-cert")
    p.add_argument("--max-frame-size", type=int, default=d.max_frame_size, help="bytes per frame")
    p.add_argument("--send-rate", type=float, default=d.send_rate, help="frames/s per connection")
    p.add_argument("--send-burst", type=int, default=d.send_burst, help="token bucket depth")
    p.add_argument("--max-subscriptions", type=int, default=d.max_subscriptions)
    p.add_argument("--max-watches", type=int, default=d.max_watches, help="per connection")
    p.add_argument("--max-watchers", type=int, default=d.max_watchers, help="per mailbox")
    p.add_argument("--max-watches-per-address", type=int, default=d.max_watches_per_address)
    p.add_argument(
        "--presence-interval",
        type=float,
        default=d.presence_interval,
        help="seconds between two presence notices of one mailbox",
    )
    p.add_argument(
        "--address-send-rate",
        type=float,
        default=d.address_send_rate,
        help="frames/s of all connections of one client address together",
    )
    p.add_argument("--address-send-burst", type=int, default=d.address_send_burst)
    p.add_argument(
        "--address-subscribe-rate",
        type=float,
        default=d.address_subscribe_rate,
        help="subscribe signature checks/s of one client address",
    )
    p.add_argument("--address-subscribe-burst", type=int, default=d.address_subscribe_burst)
    p.add_argument("--max-connections", type=int, default=d.max_connections)
    p.add_argument("--max-connections-per-address", type=int, default=d.max_connections_per_address)
    p.add_argument(
        "--max-handshakes",
        type=int,
        default=d.max_handshakes,
        help="WebSocket handshakes under way at once",
    )
    p.add_argument("--max-handshakes-per-address", type=int, default=d.max_handshakes_per_address)
    p.add_argument(
        "--handshake-timeout",
        type=float,
        default=DEFAULT_HANDSHAKE_TIMEOUT,
        help="seconds from the TCP accept to the end of the WebSocket handshake",
    )
    p.add_argument(
        "--max-header-bytes",
        type=int,
        default=DEFAULT_MAX_HEADER_BYTES,
        help="bytes of a connection's handshake request",
    )
    p.add_argument("--idle-timeout", type=float, default=d.idle_timeout, help="seconds")
    p.add_argument(
        "--flood-window",
        type=float,
        default=d.flood_window,
        help="seconds a connection may stay over its send rate before it is closed",
    )
    p.add_argument("--max-backlog", type=int, default=DEFAULT_MAX_BACKLOG, help="bytes queued")
    p.add_argument(
        "--redis",
        metavar="URL",
        help="share routing with other relays through this Redis (pub/sub only, nothing stored)",
    )
    p.add_argument(
        "--redis-secret-file",
        metavar="FILE",
        help="secret shared by the relays of a cluster; hides mailbox ids from Redis",
    )
    p.add_argument(
        "--announce",
        action="store_true",
        help="announce the relay on the local network (mDNS) so clients there find it",
    )
    p.add_argument("--announce-name", metavar="NAME", help="its name there (implies --announce)")
    p.add_argument("--no-uvloop", action="store_true", help="use the default asyncio loop")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    p.add_argument(
        "--debug-identifiers",
        action="store_true",
        help="allow debug logs to name client addresses (never mailbox ids, keys or payloads)",
    )
    a = p.parse_args(argv)
    if bool(a.tls_cert) != bool(a.tls_key):
        p.error("--tls-cert and --tls-key go together")
    try:
        limits = RelayLimits(
            max_frame_size=a.max_frame_size,
            send_rate=a.send_rate,
            send_burst=a.send_burst,
            max_subscriptions=a.max_subscriptions,
            max_watches=a.max_watches,
            max_connections=a.max_connections,
            max_connections_per_address=a.max_connections_per_address,
            idle_timeout=a.idle_timeout,
            flood_window=a.flood_window,
            max_watchers=a.max_watchers,
            max_watches_per_address=a.max_watches_per_address,
            address_send_rate=a.address_send_rate,
            address_send_burst=a.address_send_burst,
            address_subscribe_rate=a.address_subscribe_rate,
            address_subscribe_burst=a.address_subscribe_burst,
            max_handshakes=a.max_handshakes,
            max_handshakes_per_address=a.max_handshakes_per_address,
            presence_interval=a.presence_interval,
        )
    except ValueError as exc:
        message = str(exc)
        # Say it in the flags' names, the longest first: max_watches is in max_watches_per_address.
        for name in sorted((f.name for f in fields(RelayLimits)), key=len, reverse=True):
            message = message.replace(name, "--" + name.replace("_", "-"))
        p.error(message)
    a.announce = a.announce or a.announce_name is not None
    if a.announce and is_loopback_host(a.host):
        p.error("nothing to announce: the relay listens on loopback only (give --host 0.0.0.0)")
    if a.announce_name is not None:
        try:
            check_name(a.announce_name)
        except ValueError as exc:
            p.error(f"--announce-name: {exc}")
    if not 0 < a.handshake_timeout < math.inf:
        p.error("--handshake-timeout must be a positive number of seconds")
    if a.max_header_bytes < 1024:
        p.error("--max-header-bytes must be at least 1024")
    if a.redis and urlsplit(a.redis).scheme not in ("redis", "rediss", "unix"):
        p.error("--redis takes a redis://, rediss:// or unix:// URL")
    secret: bytes | None = None
    if a.redis_secret_file:
        if not a.redis:
            p.error("--redis-secret-file goes with --redis")
        try:
            with open(a.redis_secret_file, "rb") as f:
                secret = f.read().strip()
        except OSError as exc:
            p.error(f"cannot read --redis-secret-file: {exc.strerror}")
        if not secret:
            p.error("--redis-secret-file is empty")
    config = RelayConfig(
        host=a.host,
        port=a.port,
        limits=limits,
        tls_cert=a.tls_cert,
        tls_key=a.tls_key,
        max_backlog=a.max_backlog,
        handshake_timeout=a.handshake_timeout,
        max_header_bytes=a.max_header_bytes,
        debug_identifiers=a.debug_identifiers,
        redis_url=a.redis,
        redis_secret=secret,
    )
    return config, a


async def run(config: RelayConfig, announce: bool = False, name: str | None = None) -> int:
    """Serve until SIGTERM or SIGINT, then close every connection with going-away; with
    `announce`, say so on the local network meanwhile (withdrawn first when stopping)."""
    handle = await serve_relay(config)
    if handle.backplane is not None:
        log.info("backplane %s", "up" if handle.backplane.up else "down, retrying")
        if not config.redis_secret:
            log.warning(
                "backplane channel names are keyed by the Redis URL's credentials only; "
                "give --redis-secret-file to hide mailbox ids from whoever runs Redis"
            )
    log.info("relay listening on %s", handle.url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    announcer = Announcer()
    if announce:
        try:
            addresses = await announcer.start(
                config.host, handle.port, name, tls=bool(config.tls_cert)
            )
        except (ValueError, OSError) as exc:
            log.error("cannot announce the relay: %s", exc)
            await handle.close()
            return 2
        log.info("announced as %r on %s", announcer.name, ", ".join(addresses))
    await stop.wait()
    await announcer.close()
    open_now = len(handle.relay.connections)
    await handle.close()
    c = handle.relay.counters
    log.info(
        "relay stopped: %d connections closed, %d admitted, %d frames in, %d frames out",
        open_now,
        c.connections_total,
        c.frames_in,
        c.frames_out,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``anonchat-relay``: serve until SIGTERM, exit 0 after closing every connection."""
    config, args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    if not config.debug_identifiers:
        # websockets' own messages may carry peer addresses; keep only its warnings.
        logging.getLogger("relay.websockets").setLevel(logging.WARNING)
    try:
        if args.no_uvloop:
            raise ImportError
        import uvloop
    except ImportError:
        return asyncio.run(run(config, args.announce, args.announce_name))
    return uvloop.run(run(config, args.announce, args.announce_name))


if __name__ == "__main__":
    sys.exit(main())
