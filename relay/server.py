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
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from functools import partial
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode
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
        server: Server,
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
        self.server.close(code=CLOSE_GOING_AWAY, reason=ErrorCode.GOING_AWAY)
        await self.server.wait_closed()
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


def _close_now(ws: ServerConnection, close: Close) -> None:
    """Send the close frame and end the TCP connection without waiting for the echo.

    A client being thrown out usually has frames queued that we will not read; websockets
    stops reading past its queue limit, so waiting for the close echo would stall until the
    close timeout. The server may close first (RFC 6455 section 7.1.1).
    """
    with contextlib.suppress(Exception):
        ws.protocol.send_close(close.code, close.reason)
        ws.send_data()
    ws.transport.close()


def _connection_class(relay: Relay, config: RelayConfig) -> type[ServerConnection]:
    """websockets connections that the relay counts from the TCP accept, whose handshake
    request is bounded in bytes, that are aborted when their output stops draining, and that
    say ``too_large`` before closing 1009 on an oversize frame."""
    stall_timeout = config.limits.idle_timeout
    max_header_bytes = config.max_header_bytes

    class RelayConnection(ServerConnection):
        def __init__(self, protocol: ServerProtocol, *args: Any, **kwargs: Any) -> None:
            super().__init__(protocol, *args, **kwargs)
            protocol.fail = self._refuse_then_fail  # type: ignore[method-assign]
            self.address = "?"
            self.counted = False  # by relay.accept, until relay.socket_closed
            self.opening = False  # its handshake request is not read yet
            self.header_bytes = 0
            self.stall: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            """Count the socket against its address at once, or abort it over a limit."""
            peer = transport.get_extra_info("peername")
            self.address = str(peer[0]) if peer else "?"
            if not relay.accept(self.address, self.loop.time()):
                # The base connection's part only: no handshake task for a refused socket.
                super(ServerConnection, self).connection_made(transport)
                self.transport.abort()
                return
            self.counted = self.opening = True
            super().connection_made(transport)

        def data_received(self, data: bytes) -> None:
            if self.opening:
                self.header_bytes += len(data)
                if self.header_bytes > max_header_bytes:
                    relay.rejects[ErrorCode.TOO_LARGE] += 1
                    self.transport.abort()
                    return
            super().data_received(data)

        def process_event(self, event: Any) -> None:
            if self.opening:  # the first event is the handshake request
                self.opening = False
                relay.handshake_read(self.address)
            super().process_event(event)

        def connection_lost(self, exc: Exception | None) -> None:
            if self.stall is not None:
                self.stall.cancel()
            if self.counted:
                self.counted = False
                relay.socket_closed(self.address, opening=self.opening)
            super().connection_lost(exc)

        def pause_writing(self) -> None:
            """The write buffer is over its high mark: if it does not drain within the idle
            timeout, the peer has stopped reading; neither a ping nor a close frame would
            reach it (both wait behind the buffer), so the connection is aborted."""
            super().pause_writing()
            self.stall = self.loop.call_later(stall_timeout, self._stalled)

        def resume_writing(self) -> None:
            super().resume_writing()
            if self.stall is not None:
                self.stall.cancel()
                self.stall = None

        def _stalled(self) -> None:
            self.stall = None
            relay.rejects[ErrorCode.SLOW_CONSUMER] += 1
            self.transport.abort()

        def _refuse_then_fail(self, code: CloseCode | int, reason: str = "") -> None:
            """websockets refuses a frame over ``max_size`` from its header, unread, and fails
            the connection with 1009 at once, before the handler could answer; this puts the
            relay's ``error`` frame ahead of that close frame, and counts the refusal."""
            protocol = self.protocol
            if code == CloseCode.MESSAGE_TOO_BIG and protocol.state is State.OPEN:
                protocol.send_binary(relay.refuse_oversize())
            ServerProtocol.fail(protocol, code, reason)

    return RelayConnection


async def _sleep_until(ws: ServerConnection, until: float) -> None:
    """Until ``until`` on the loop's clock, in sleeps of at most a second, while ``ws`` is open."""
    loop = asyncio.get_running_loop()
    delay = until - loop.time()
    while delay > 0 and ws.protocol.state is State.OPEN:
        await asyncio.sleep(min(delay, 1.0))
        delay = until - loop.time()


class _Throttle:
    """What the server does to a connection over its send budget (see relay.state.Pause) or
    its address's (see relay.state.Wait)."""

    __slots__ = ("_saved", "_socket", "_ws")

    def __init__(self, ws: ServerConnection) -> None:
        self._ws = ws
        self._socket = ws.transport.get_extra_info("socket")
        self._saved: int | None = None  # the socket's own receive buffer, while shrunk

    async def pause(self, until: float) -> None:
        """Read nothing until the next token is due (of the connection's budget, or of its
        address's): a flood waits in the kernel's buffers and then the client's, so a flooder
        costs about two frames per refill interval."""
        self.window(small=True)
        await _sleep_until(self._ws, until)

    def window(self, *, small: bool) -> None:
        """While a client floods or waits for its address's budget, keep its TCP receive
        window small. What it sends then waits on its side, and each read brings a few frames
        to parse, not the quarter megabyte a full window holds, whose parsing would stall
        every other client."""
        sock = self._socket
        if sock is None or small == (self._saved is not None):
            return
        with contextlib.suppress(OSError):
            if small:
                self._saved = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, FLOOD_RECEIVE_BUFFER)
            elif self._saved is not None:
                # getsockopt reports the doubled size that setsockopt makes of a value.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self._saved // 2)
                self._saved = None


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

    def process_request(connection: ServerConnection, request: Request) -> Response | None:
        path = request.path.split("?", 1)[0]
        if path == "/healthz":
            return connection.respond(HTTPStatus.OK, health_text(backplane))
        if path == "/metrics":
            response = connection.respond(HTTPStatus.OK, metrics_text(relay, backplane))
            del response.headers["Content-Type"]
            response.headers["Content-Type"] = "text/plain; version=0.0.4; charset=utf-8"
            return response
        return None

    async def handler(ws: ServerConnection) -> None:
        address = str(ws.remote_address[0]) if ws.remote_address else "?"
        transport = ws.transport
        backlog = config.max_backlog
        flush_due = False

        def flush() -> None:
            """Everything framed for this client since the last flush, in one write."""
            nonlocal flush_due
            flush_due = False
            chunks = ws.protocol.data_to_send()
            if all(chunks):
                transport.writelines(chunks)
                return
            for chunk in chunks:  # an empty chunk asks for a half-close: keep the order
                if chunk:
                    transport.write(chunk)
                elif transport.can_write_eof():
                    transport.write_eof()

        def send(data: bytes) -> None:
            nonlocal flush_due
            if transport.is_closing():
                return
            if transport.get_write_buffer_size() > backlog:
                # A reader this far behind would hold memory for others: drop it, not them.
                # It would not read a close frame either, queued behind the backlog.
                relay.rejects[ErrorCode.SLOW_CONSUMER] += 1
                transport.abort()
                return
            if ws.protocol.state is not State.OPEN:
                return  # closing: nothing more goes out, as websockets' broadcast() does
            # Frame now, write once per loop turn: the replies and deliveries produced by a
            # burst of frames share one system call instead of one each.
            ws.protocol.send_binary(data)
            if not flush_due:
                flush_due = True
                loop.call_soon(flush)

        try:
            conn: Connection = relay.connect(send, address, loop.time())
        except Refused as refused:
            await ws.close(refused.close.code, refused.close.reason)
            return
        if config.debug_identifiers:
            log.debug("connection from %s", address)
        close: Close | None = None
        throttle: _Throttle | None = None  # made at the first dropped or delayed frame
        drained: asyncio.Event | None = None  # set once the backplane caught up

        def sent(publish: Publish, remote: int) -> None:
            relay.sent(publish, remote)
            if drained is not None and relay.waiting(conn) < PIPELINE // 2:
                drained.set()

        try:
            async for message in ws:
                now = loop.time()
                if isinstance(message, bytes):
                    result = relay.receive(conn, message, now)
                else:
                    result = relay.receive_text(conn, now)
                waited = isinstance(result, Wait)
                while isinstance(result, Wait):  # the address's budget: handled when due
                    throttle = throttle or _Throttle(ws)
                    await throttle.pause(result.until)
                    if ws.protocol.state is not State.OPEN:
                        break
                    result = relay.resume(conn, result, loop.time())
                if isinstance(result, Wait):
                    break  # closed while it waited: what it sent is not worth handling
                if throttle is not None and not waited and not relay.flooding(conn, now):
                    throttle.window(small=False)
                if isinstance(result, Pause):
                    throttle = throttle or _Throttle(ws)
                    await throttle.pause(result.until)
                elif isinstance(result, Publish):
                    # Pipelined: the relay's state keeps replies in request order. Past
                    # PIPELINE unanswered, reading waits for the backplane to catch up.
                    assert backplane is not None
                    backplane.publish(result.mailbox, result.payload, partial(sent, result))
                    if relay.waiting(conn) >= PIPELINE:
                        drained = asyncio.Event()
                        await drained.wait()
                        drained = None
                elif isinstance(result, Lookup):
                    assert backplane is not None
                    await backplane.lookup(result)
                    relay.watched(result)
                elif isinstance(result, Hold):
                    assert backplane is not None
                    await backplane.routed(result.mailbox)
                    relay.held(result)
                elif result is not None:
                    close = result
                    break
        except ConnectionClosed:
            pass
        finally:
            relay.disconnect(conn, loop.time())
        if close is not None:
            _close_now(ws, close)

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

    idle = config.limits.idle_timeout
    server = await serve(
        handler,
        config.host,
        config.port,
        process_request=process_request,
        compression=None,
        max_size=config.limits.max_frame_size,
        ping_interval=idle / 2,
        ping_timeout=idle / 2,
        close_timeout=5,
        open_timeout=config.handshake_timeout,
        backlog=LISTEN_BACKLOG,
        ssl=_tls_context(config),
        logger=logging.getLogger("relay.websockets"),
        create_connection=_connection_class(relay, config),
    )
    port = next(iter(server.sockets)).getsockname()[1]
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
