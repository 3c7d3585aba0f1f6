"""Relays that misbehave: silent, garbage-spewing, lying. Reported, dropped, retried; no crash."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable

import msgpack
import pytest
from websockets.asyncio.server import Server, ServerConnection, serve

from app.net import (
    Backoff,
    ConnectionChanged,
    ConnectionState,
    RelayPool,
    RelayRejected,
    RequestTimeout,
)
from relay import wire
from tests.net.helpers import Recorder

LIMITS = wire.Limits(
    max_frame_size=65536,
    send_rate=100.0,
    send_burst=200,
    max_subscriptions=64,
    max_watches=1024,
    idle_timeout=60.0,
)
HELLO = wire.encode(wire.Hello((1,), os.urandom(32), LIMITS))
Behaviour = Callable[[ServerConnection], Awaitable[None]]


async def fake_relay(behaviour: Behaviour, connections: list[int]) -> tuple[str, Server]:
    async def handler(ws: ServerConnection) -> None:
        connections.append(1)
        await behaviour(ws)

    server = await serve(handler, "127.0.0.1", 0, compression=None)
    port = next(iter(server.sockets)).getsockname()[1]
    return f"ws://127.0.0.1:{port}/", server


def test_a_relay_that_never_answers_times_the_request_out_and_is_dropped_and_redialled() -> None:
    async def silent(ws: ServerConnection) -> None:
        await ws.send(HELLO)
        async for _ in ws:  # reads everything, answers nothing
            pass

    async def main() -> None:
        events = Recorder()
        connections: list[int] = []
        url, server = await fake_relay(silent, connections)
        pool = RelayPool(events, request_timeout=0.3, backoff=Backoff(base=0.05, cap=0.2))
        try:
            loop = asyncio.get_running_loop()
            started = loop.time()
            with pytest.raises(RequestTimeout):
                await pool.send(url, os.urandom(32), b"x")
            assert loop.time() - started < 2.0
            # A relay that owes a reply past the timeout is dropped and dialled again, by
            # itself: no caller has to notice, and it is not reported as a protocol breach.
            await events.wait_for(
                lambda e: (
                    isinstance(e, ConnectionChanged) and e.state is ConnectionState.BACKING_OFF
                ),
                within=3,
            )
            await events.wait_for(
                lambda e: isinstance(e, ConnectionChanged) and e.state is ConnectionState.ONLINE,
                within=3,
                since=events.mark(),
            )
            assert len(connections) >= 2
            assert events.of(RelayRejected) == []
        finally:
            await pool.close()
            server.close()

    asyncio.run(main())


def test_a_relay_that_never_says_hello_is_dropped_and_redialled() -> None:
    dialled = asyncio.Event()
    connections: list[int] = []

    async def mute(ws: ServerConnection) -> None:
        if len(connections) >= 3:
            dialled.set()
        async for _ in ws:
            pass

    async def main() -> None:
        events = Recorder()
        url, server = await fake_relay(mute, connections)
        pool = RelayPool(events, hello_timeout=0.3, backoff=Backoff(base=0.05, cap=0.1, jitter=0))
        try:
            pool.connect(url)
            async with asyncio.timeout(5):
                await dialled.wait()
            assert pool.state(url) is not ConnectionState.ONLINE
            assert events.of(RelayRejected) == []
        finally:
            await pool.close()
            server.close()

    asyncio.run(main())


GARBAGE: dict[str, list[bytes | str]] = {
    "not msgpack": [HELLO, b"\xc1\xff\x00garbage"],
    "text message": [HELLO, "hello?"],
    "frame before hello": [wire.encode(wire.Deliver(bytes(32), b"x"))],
    "unknown frame type": [HELLO, msgpack.packb({"v": 1, "t": "teleport"})],
    "reply to nothing": [HELLO, wire.encode(wire.Sent(424242, 1))],
    "client frame": [HELLO, wire.encode(wire.Send(1, bytes(32), b"x"))],
    "second hello": [HELLO, HELLO],
    "future version": [msgpack.packb({"v": 99, "t": "hello"})],
}


@pytest.mark.parametrize("name", sorted(GARBAGE))
def test_garbage_from_a_relay_is_reported_and_the_connection_retried(name: str) -> None:
    frames = GARBAGE[name]

    async def hostile(ws: ServerConnection) -> None:
        for frame in frames:
            await ws.send(frame)
        async for _ in ws:
            pass

    async def main() -> None:
        events = Recorder()
        connections: list[int] = []
        url, server = await fake_relay(hostile, connections)
        pool = RelayPool(events, request_timeout=1.0, backoff=Backoff(base=0.05, cap=0.2))
        try:
            pool.connect(url)
            rejected = await events.wait_for(lambda e: isinstance(e, RelayRejected), within=5)
            assert isinstance(rejected, RelayRejected)
            assert rejected.url == url
            assert rejected.code
            await events.wait_for(
                lambda e: (
                    isinstance(e, ConnectionChanged) and e.state is ConnectionState.BACKING_OFF
                ),
                within=5,
            )
            # It tries again by itself, and is rejected again.
            again = events.events.index(rejected) + 1
            await events.wait_for(lambda e: isinstance(e, RelayRejected), within=5, since=again)
            assert len(connections) >= 2
        finally:
            await pool.close()
            server.close()
        assert pool.state(url) is ConnectionState.CLOSED

    asyncio.run(main())


def test_a_lying_watch_reply_drops_the_connection_and_fails_the_caller_softly() -> None:
    async def liar(ws: ServerConnection) -> None:
        await ws.send(HELLO)
        async for data in ws:
            frame = wire.decode(data if isinstance(data, bytes) else b"")
            if isinstance(frame, wire.Watch):
                # Claims a mailbox is online that nobody asked about.
                await ws.send(wire.encode(wire.Watching(frame.request_id, (os.urandom(32),))))

    async def main() -> None:
        events = Recorder()
        url, server = await fake_relay(liar, [])
        pool = RelayPool(events, request_timeout=2.0, backoff=Backoff(base=0.05, cap=0.2))
        try:
            assert await pool.watch(url, [os.urandom(32)]) == frozenset()
            rejected = await events.wait_for(lambda e: isinstance(e, RelayRejected))
            assert isinstance(rejected, RelayRejected)
            assert rejected.code == wire.ErrorCode.UNEXPECTED_FRAME
        finally:
            await pool.close()
            server.close()

    asyncio.run(main())


def test_an_event_handler_that_raises_does_not_take_the_connection_down() -> None:
    seen: list[object] = []

    def fragile(event: object) -> None:
        seen.append(event)
        raise RuntimeError("handler bug")

    async def polite(ws: ServerConnection) -> None:
        await ws.send(HELLO)
        async for data in ws:
            frame = wire.decode(data if isinstance(data, bytes) else b"")
            if isinstance(frame, wire.Send):
                await ws.send(wire.encode(wire.Sent(frame.request_id, 3)))

    async def main() -> None:
        url, server = await fake_relay(polite, [])
        pool = RelayPool(fragile, request_timeout=2.0)
        try:
            assert await pool.send(url, os.urandom(32), b"x") == 3
            assert pool.state(url) is ConnectionState.ONLINE
        finally:
            await pool.close()
            server.close()
        assert any(isinstance(e, ConnectionChanged) for e in seen)

    asyncio.run(main())
