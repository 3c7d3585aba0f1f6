"""A hostile relay in front of a real one: it forwards everything, and on command pushes frames
of its own making into whichever client connection subscribed a mailbox, as fast as that
connection's socket takes them. Runs on its own thread and loop, so it floods while the test
(or benchmark) watches the client process from outside.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Callable

from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from app.crypto.header import encode_header
from relay import wire


def skip_frame(dh: bytes | None = None, pn: int = 1000, n: int = 1000) -> bytes:
    """A frame shaped like a ratchet message with its skip counters at the limit, under a fresh
    ratchet key unless one is given: its check used to walk 2,000 chain steps before failing."""
    dh = dh or os.urandom(32)
    return encode_header(dh, pn, n, b"", b"", b"") + os.urandom(96)


class Injector:
    """A proxy to `upstream` on 127.0.0.1 (`url`), on a thread of its own."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.url = ""
        self.subscribers: dict[bytes, ServerConnection] = {}
        self.delivered: list[tuple[bytes, bytes]] = []  # real deliveries to the clients
        self.sends: list[tuple[int, bytes, bytes]] = []  # (connection, mailbox, payload) sent
        self._connections = 0
        self._ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Future[None] | None = None
        self._thread = threading.Thread(target=self._loop.run_until_complete, args=(self._main(),))
        self._thread.start()
        assert self._ready.wait(10)

    async def _main(self) -> None:
        self._stop = self._loop.create_future()
        async with serve(self._handle, "127.0.0.1", 0, max_size=None, compression=None) as server:
            port = next(iter(server.sockets)).getsockname()[1]
            self.url = f"ws://127.0.0.1:{port}"
            self._ready.set()
            await self._stop

    def close(self) -> None:
        def stop() -> None:
            assert self._stop is not None
            if not self._stop.done():
                self._stop.set_result(None)

        self._loop.call_soon_threadsafe(stop)
        self._thread.join(timeout=10)

    async def _handle(self, client: ServerConnection) -> None:
        self._connections += 1
        number = self._connections
        async with connect(self.upstream, max_size=None, compression=None) as up:

            async def to_relay() -> None:
                async for frame in client:
                    with contextlib.suppress(wire.WireError):
                        decoded = wire.decode(frame)
                        if isinstance(decoded, wire.Subscribe):
                            self.subscribers[decoded.mailbox] = client
                        if isinstance(decoded, wire.Send):
                            self.sends.append((number, decoded.mailbox, decoded.payload))
                    await up.send(frame)

            async def to_client() -> None:
                held: list[bytes] = []
                async for frame in up:
                    assert isinstance(frame, bytes)
                    with contextlib.suppress(wire.WireError):
                        decoded = wire.decode(frame)
                        if isinstance(decoded, wire.Deliver):
                            self.delivered.append((decoded.mailbox, decoded.payload))
                    for item in self.mangle(frame, held):
                        await client.send(item)

            tasks = [asyncio.ensure_future(to_relay()), asyncio.ensure_future(to_client())]
            with contextlib.suppress(ConnectionClosed):
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                    await task

    def mangle(self, frame: bytes, held: list[bytes]) -> list[bytes]:
        """What the client gets instead of a frame from the relay (`held`: frames kept back
        for later, per connection). Forwarded as it is here."""
        return [frame]

    def flood(self, mailbox: bytes, make: Callable[[], bytes], seconds: float) -> int:
        """Push `deliver` frames of `make()` payloads to `mailbox`'s subscriber for `seconds`
        (payloads are made ahead, 256 kinds in turn); how many went out."""
        payloads = [wire.encode(wire.Deliver(mailbox, make())) for _ in range(256)]

        async def push() -> int:
            client = self.subscribers[mailbox]
            sent = 0
            deadline = time.monotonic() + seconds
            with contextlib.suppress(ConnectionClosed):
                while time.monotonic() < deadline:
                    for frame in payloads[:32]:
                        await client.send(frame)
                    sent += 32
                    payloads.append(payloads.pop(0))
            return sent

        return asyncio.run_coroutine_threadsafe(push(), self._loop).result(seconds + 60)
