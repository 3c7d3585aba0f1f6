"""One relay URL on websockets: connect, say nothing until hello, reconnect with backoff.

The thin driver around :class:`ClientProtocol`: it owns the socket, the reconnect loop, the
futures of callers awaiting replies, and the pacing of writes; every protocol decision is
ClientProtocol's. Logs carry states and error codes only, never mailbox ids, keys or payloads.

It never waits on the relay forever: a hello that does not come within `hello_timeout`, or a
reply (to anything, also a request its caller gave up on) not within `reply_timeout`, drops the
connection and a new one is made with backoff. And it reads no faster than the engine takes
frames in: after each delivered frame it awaits `intake()`, so a full intake leaves the rest in
the socket (and a relay that keeps pushing then finds us a slow consumer).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.uri import parse_uri

from app.net.backoff import Backoff
from app.net.errors import RelayRefused, RelayUnavailable, RequestTimeout
from app.net.events import (
    ConnectionChanged,
    ConnectionState,
    Delivered,
    NetEvent,
    RelayRejected,
)
from app.net.pacing import Pacer
from app.net.protocol import ClientProtocol, NotReady, Reply, ReplyValue, Request, Signer

log = logging.getLogger("anonchat.net")

EventSink = Callable[[NetEvent], None]
Sleep = Callable[[float], Awaitable[None]]
Intake = Callable[[], Awaitable[None]]

CLOSE_PROTOCOL_ERROR = 1002


class RelayLink:
    """The single connection to one relay URL, kept up until :meth:`close`."""

    def __init__(
        self,
        url: str,
        on_event: EventSink,
        *,
        backoff: Backoff,
        open_timeout: float = 10.0,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
        max_frame_size: int = 1 << 20,
        proxy: str | None = None,
        first_delay: float = 0.0,
        hello_timeout: float = 10.0,
        reply_timeout: float = 10.0,
        intake: Intake | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        try:
            parse_uri(url)
        except InvalidURI:
            raise ValueError("not a ws:// or wss:// relay URL") from None
        self.url = url
        self.protocol = ClientProtocol(url, max_frame_size=max_frame_size, clock=clock)
        self.state = ConnectionState.CONNECTING
        self._on_event = on_event
        self._backoff = backoff
        self._open_timeout = open_timeout
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout
        self._max_frame_size = max_frame_size
        self._proxy = proxy
        self._first_delay = first_delay
        self._hello_timeout = hello_timeout
        self._reply_timeout = reply_timeout
        self._intake = intake
        self._clock = clock
        self._sleep = sleep
        self._ws: ClientConnection | None = None
        self._pacer: Pacer | None = None
        self._write_lock = asyncio.Lock()
        self._waiters: dict[int, asyncio.Future[ReplyValue]] = {}
        self._changed = asyncio.Event()
        self._stop = asyncio.Event()
        self._healthy = False  # the current connection got online and stayed honest
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Begin connecting in the background (idempotent)."""
        if self._task is None and not self._stop.is_set():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def close(self) -> None:
        """Close the connection, stop reconnecting, fail whoever still waits; ends in CLOSED."""
        self._stop.set()
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 2.0)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._fail_waiters(self.protocol.connection_lost())
        if self.state is not ConnectionState.CLOSED:
            self._set_state(ConnectionState.CLOSED)

    # -- requests -----------------------------------------------------------------------------

    async def wait_online(self, within: float) -> bool:
        """Wait while a connection attempt is under way; True once online in time."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while self.state is ConnectionState.CONNECTING:
            self._changed.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)
        return self.state is ConnectionState.ONLINE

    async def subscribe(self, mailbox: bytes, signer: Signer, within: float) -> bool:
        """Remember and apply a subscription; True once the relay confirmed it, False when it
        will be applied on the next connection. Raises RelayRefused if the relay says no."""
        await self.wait_online(within)
        request = self.protocol.subscribe(mailbox, signer)
        return await self._optional(request, within) is not _UNANSWERED

    async def unsubscribe(self, mailbox: bytes, within: float) -> None:
        await self._optional(self.protocol.unsubscribe(mailbox), within)

    async def watch(self, mailboxes: Iterable[bytes], within: float) -> frozenset[bytes]:
        """Remember watches; the ones online now (empty when not connected: a MailboxPresence
        for each follows once the watches are restored)."""
        await self.wait_online(within)
        value = await self._optional(self.protocol.watch(mailboxes), within)
        return value if isinstance(value, frozenset) else frozenset()

    async def unwatch(self, mailboxes: Iterable[bytes], within: float) -> None:
        await self._optional(self.protocol.unwatch(mailboxes), within)

    async def send(self, mailbox: bytes, payload: bytes, within: float) -> int:
        """Forward a payload; the number of subscribers reached, 0 when the mailbox is offline."""
        if not await self.wait_online(within):
            raise RelayUnavailable(f"relay not connected ({self.state.value})")
        try:
            request = self.protocol.send(mailbox, payload)
        except NotReady:
            raise RelayUnavailable("relay not connected") from None
        value = await self._request(request, within)
        assert isinstance(value, int)
        return value

    async def _optional(self, request: Request | None, within: float) -> ReplyValue | object:
        """A bookkeeping request: being offline or timing out is fine, it is replayed later."""
        if request is None:
            return _UNANSWERED
        try:
            return await self._request(request, within)
        except RelayUnavailable:
            return _UNANSWERED

    async def _request(self, request: Request, within: float) -> ReplyValue:
        future: asyncio.Future[ReplyValue] = asyncio.get_running_loop().create_future()
        self._waiters[request.request_id] = future
        try:
            async with asyncio.timeout(within):
                await self._write(request.data, request.request_id)
                return await future
        except TimeoutError:
            raise RequestTimeout(f"no answer within {within:g} s") from None
        finally:
            # Timed out or cancelled by the caller: a late answer is then expected, not bogus.
            self.protocol.abandon(request.request_id)
            self._waiters.pop(request.request_id, None)
            if future.done() and not future.cancelled():
                future.exception()  # the failure was already raised by _write; mark it seen

    async def _write(self, data: bytes, request_id: int | None = None) -> None:
        async with self._write_lock:
            ws = self._ws
            if ws is None:
                raise RelayUnavailable("connection lost")
            if self._pacer is not None:
                wait = self._pacer.take(self._clock())
                if wait > 0:
                    await self._sleep(wait)
            if ws is not self._ws:
                raise RelayUnavailable("connection lost")
            if request_id is not None:
                self.protocol.written(request_id)
            try:
                await ws.send(data)
            except ConnectionClosed:
                raise RelayUnavailable("connection lost") from None

    # -- the connection loop ------------------------------------------------------------------

    async def _run(self) -> None:
        if self._first_delay > 0:  # many links of one client do not open in lockstep
            await self._sleep(self._first_delay)
        attempt = 0
        while not self._stop.is_set():
            self._set_state(ConnectionState.CONNECTING)
            self._healthy = False
            try:
                async with connect(
                    self.url,
                    open_timeout=self._open_timeout,
                    ping_interval=self._ping_interval,
                    ping_timeout=self._ping_timeout,
                    close_timeout=2.0,
                    max_size=self._max_frame_size,
                    compression=None,
                    proxy=self._proxy,
                    logger=logging.getLogger("anonchat.net.websockets"),
                ) as ws:
                    await self._serve(ws)
            except (OSError, TimeoutError, InvalidHandshake, ConnectionClosed, RelayUnavailable):
                log.info("relay connection ended")
            except Exception:  # our bug: report it, but keep the link alive and retrying
                self._healthy = False
                log.exception("relay connection failed unexpectedly")
            finally:
                self._ws = None
                self._pacer = None
                self._fail_waiters(self.protocol.connection_lost())
            if self._stop.is_set():
                break
            attempt = 0 if self._healthy else attempt + 1
            delay = self._backoff.delay(attempt)
            self._set_state(ConnectionState.BACKING_OFF, delay)
            await self._sleep(delay)

    async def _serve(self, ws: ClientConnection) -> None:
        """Read frames until the connection ends, the relay breaks the protocol or stays
        silent past a timeout."""
        self.protocol.connection_made()
        watchdog = asyncio.get_running_loop().create_task(self._watchdog(ws))
        try:
            await self._read(ws)
        finally:
            watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watchdog

    async def _watchdog(self, ws: ClientConnection) -> None:
        """Drop the connection when the relay owes a hello or a reply for too long."""
        while True:
            verdict = self.protocol.overdue(self._hello_timeout, self._reply_timeout)
            if isinstance(verdict, str):
                log.info("dropping relay connection: %s in time", verdict)
                self._healthy = False
                self._ws = None
                ws.transport.abort()  # it is not answering: a close handshake would wait too
                return
            await asyncio.sleep(verdict)

    async def _read(self, ws: ClientConnection) -> None:
        async for message in ws:
            if isinstance(message, str):
                await self._reject(ws, "malformed", "a text message")
                return
            step = self.protocol.receive(message)
            if step.ready:
                self._ws = ws
                assert self.protocol.limits is not None
                self._pacer = Pacer.for_limits(self.protocol.limits, self._clock())
                ws.protocol.max_message_size = self.protocol.max_frame_size
                for data in step.outgoing:  # restore before anyone else may write
                    await self._write(data)
                self._healthy = True
                self._set_state(ConnectionState.ONLINE)
            self._settle(step.replies)
            for event in step.events:
                self._emit(event)
            if self._intake is not None and any(type(e) is Delivered for e in step.events):
                await self._intake()  # read on only when the engine has room
            if step.violation is not None:
                await self._reject(ws, step.violation.code, step.violation.detail)
                return
            if step.goodbye is not None:
                log.info("relay said goodbye: %s", step.goodbye)

    def _settle(self, replies: tuple[Reply, ...]) -> None:
        for reply in replies:
            future = self._waiters.get(reply.request_id)
            if future is None or future.done():
                continue
            if reply.error is not None:
                future.set_exception(RelayRefused(reply.error))
            else:
                future.set_result(reply.value)

    def _fail_waiters(self, request_ids: Iterable[int]) -> None:
        for rid in request_ids:
            future = self._waiters.get(rid)
            if future is not None and not future.done():
                future.set_exception(RelayUnavailable("connection lost"))

    async def _reject(self, ws: ClientConnection, code: str, detail: str) -> None:
        """Report a relay that broke the protocol and close with a protocol error (1002)."""
        log.warning("dropping relay connection: protocol error %s", code)
        self._healthy = False  # back off further: reconnecting at once would only repeat it
        self._ws = None
        self._emit(RelayRejected(self.url, code, detail))
        await ws.close(CLOSE_PROTOCOL_ERROR, code)

    def _set_state(self, state: ConnectionState, retry_in: float | None = None) -> None:
        self.state = state
        self._changed.set()
        log.info("relay connection %s", state.value)
        self._emit(ConnectionChanged(self.url, state, retry_in))

    def _emit(self, event: NetEvent) -> None:
        try:
            self._on_event(event)
        except Exception:  # the engine's handler failing must not take the connection down
            log.exception("event handler failed on %s", type(event).__name__)


_UNANSWERED = object()
