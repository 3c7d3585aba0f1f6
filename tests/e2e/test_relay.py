"""A real relay process on 127.0.0.1 driven by real websockets clients."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
import time
import urllib.request
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from relay import wire
from relay.wire import ErrorCode
from tests.relay.helpers import MailboxKey, RelayProcess

pytestmark = pytest.mark.timeout(120)


class Peer:
    """A websockets client that has read its hello."""

    def __init__(self, ws: ClientConnection, hello: wire.Hello) -> None:
        self.ws = ws
        self.hello = hello
        self.rid = 0

    async def request(self, frame: wire.Frame) -> None:
        await self.ws.send(wire.encode(frame))

    async def recv(self, wait: float = 5) -> wire.Frame:
        data = await asyncio.wait_for(self.ws.recv(), wait)
        assert isinstance(data, bytes)
        return wire.decode(data)

    async def quiet(self, wait: float = 0.2) -> bool:
        try:
            await asyncio.wait_for(self.ws.recv(), wait)
        except TimeoutError:
            return True
        return False

    async def subscribe(self, key: MailboxKey) -> wire.Frame:
        self.rid += 1
        await self.request(key.subscribe(self.rid, self.hello.challenge))
        return await self.recv()

    async def drain(self) -> tuple[list[wire.Frame], tuple[int, str] | None]:
        """Every frame until the relay closes, and the close code and reason it sent."""
        frames: list[wire.Frame] = []
        try:
            async with asyncio.timeout(10):
                while True:
                    frames.append(await self.recv())
        except ConnectionClosed as closed:
            rcvd = closed.rcvd
            return frames, (rcvd.code, rcvd.reason) if rcvd else None
        raise AssertionError("unreachable")

    async def close_code(self) -> tuple[int, str] | None:
        return (await self.drain())[1]


OPENED: list[Peer] = []


async def open_peer(url: str) -> Peer:
    ws = await connect(url, max_size=None, compression=None)
    hello = wire.decode(await ws.recv())  # type: ignore[arg-type]
    assert isinstance(hello, wire.Hello)
    OPENED.append(Peer(ws, hello))
    return OPENED[-1]


async def open_peers(url: str, n: int = 4) -> list[Peer]:
    return [await open_peer(url) for _ in range(n)]


def aio(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test on a fresh loop and close every peer it opened."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        async def body() -> None:
            try:
                await test(*args, **kwargs)
            finally:
                while OPENED:
                    await OPENED.pop().ws.close()

        asyncio.run(body())

    return run


@pytest.fixture(scope="module")
def relay_proc() -> Iterator[RelayProcess]:
    proc = RelayProcess("--max-subscriptions", "3", "--max-frame-size", "4096")
    yield proc
    code, log = proc.stop()
    assert code == 0, log


@aio
async def test_forwarding_to_one_and_to_several_subscribers(relay_proc: RelayProcess) -> None:
    peers = await open_peers(relay_proc.url)
    sender, one, two, bystander = peers
    solo, shared = MailboxKey.generate(), MailboxKey.generate()
    assert await one.subscribe(solo) == wire.Ok(1)
    assert await one.subscribe(shared) == wire.Ok(2)
    assert await two.subscribe(shared) == wire.Ok(1)
    await sender.request(wire.Send(10, solo.mailbox, b"to one"))
    assert await sender.recv() == wire.Sent(10, 1)
    assert await one.recv() == wire.Deliver(solo.mailbox, b"to one")
    await sender.request(wire.Send(11, shared.mailbox, bytes(range(256))))
    assert await sender.recv() == wire.Sent(11, 2)
    for p in (one, two):
        assert await p.recv() == wire.Deliver(shared.mailbox, bytes(range(256)))
    assert await bystander.quiet()
    assert await two.quiet(0.05)


@aio
async def test_offline_reply(relay_proc: RelayProcess) -> None:
    peers = await open_peers(relay_proc.url)
    await peers[0].request(wire.Send(3, MailboxKey.generate().mailbox, b"nobody"))
    assert await peers[0].recv() == wire.Sent(3, 0)


@aio
async def test_presence_notices(relay_proc: RelayProcess) -> None:
    peers = await open_peers(relay_proc.url)
    watcher, sub, other, _ = peers
    key, early = MailboxKey.generate(), MailboxKey.generate()
    assert await other.subscribe(early) == wire.Ok(1)
    await watcher.request(wire.Watch(1, (key.mailbox, early.mailbox)))
    assert await watcher.recv() == wire.Watching(1, (early.mailbox,))
    await sub.subscribe(key)
    assert await watcher.recv() == wire.Presence(key.mailbox, True)
    await sub.ws.close()
    assert await watcher.recv() == wire.Presence(key.mailbox, False)
    await watcher.request(wire.Unwatch(2, (early.mailbox,)))
    assert await watcher.recv() == wire.Ok(2)
    await other.ws.close()
    assert await watcher.quiet()


@aio
async def test_auth_failures(relay_proc: RelayProcess) -> None:
    peers = await open_peers(relay_proc.url)
    alice, mallory, sender, _ = peers
    key, mine = MailboxKey.generate(), MailboxKey.generate()
    forged = key.subscribe(1, alice.hello.challenge)
    await mallory.request(forged)
    assert await mallory.recv() == wire.Error(1, ErrorCode.BAD_SIGNATURE)
    own = mine.subscribe(2, mallory.hello.challenge)
    await mallory.request(wire.Subscribe(2, key.mailbox, own.key, own.sig))
    assert await mallory.recv() == wire.Error(2, ErrorCode.KEY_MISMATCH)
    wrong = bytes(64)
    await mallory.request(wire.Subscribe(3, key.mailbox, key.public, wrong))
    assert await mallory.recv() == wire.Error(3, ErrorCode.BAD_SIGNATURE)
    await sender.request(wire.Send(4, key.mailbox, b"secret"))
    assert await sender.recv() == wire.Sent(4, 0)
    assert await alice.subscribe(key) == wire.Ok(1)


@aio
async def test_too_many_subscriptions(relay_proc: RelayProcess) -> None:
    peers = await open_peers(relay_proc.url)
    p = peers[0]
    for _ in range(3):
        assert isinstance(await p.subscribe(MailboxKey.generate()), wire.Ok)
    assert await p.subscribe(MailboxKey.generate()) == wire.Error(4, "too_many_subscriptions")
    await p.request(wire.Ping(9))
    assert await p.recv() == wire.Pong(9)


@aio
async def test_oversize_frame_closes_only_that_connection(relay_proc: RelayProcess) -> None:
    peers = await open_peers(relay_proc.url)
    big, other = peers[0], peers[1]
    await big.request(wire.Send(1, MailboxKey.generate().mailbox, b"x" * 5000))
    closed = await big.close_code()
    assert closed is not None
    assert closed[0] == 1009
    assert "4096" in closed[1]
    await other.request(wire.Ping(2))
    assert await other.recv() == wire.Pong(2)


@aio
async def test_malformed_and_text_frames_get_errors(relay_proc: RelayProcess) -> None:
    peers = await open_peers(relay_proc.url)
    p = peers[0]
    await p.ws.send(b"\xc1")
    assert await p.recv() == wire.Error(None, ErrorCode.MALFORMED)
    await p.ws.send("text")
    assert await p.recv() == wire.Error(None, ErrorCode.MALFORMED)
    await p.ws.send(wire.encode(wire.Ok(5)))
    assert await p.recv() == wire.Error(5, ErrorCode.UNEXPECTED_FRAME)


@aio
async def test_goodbye_closes_normally(relay_proc: RelayProcess) -> None:
    peers = await open_peers(relay_proc.url)
    await peers[0].request(wire.Goodbye("normal"))
    assert await peers[0].close_code() == (1000, "normal")


def test_health_and_metrics(relay_proc: RelayProcess) -> None:
    base = f"http://127.0.0.1:{relay_proc.port}"
    with urllib.request.urlopen(base + "/healthz", timeout=5) as r:
        assert (r.status, r.read()) == (200, b"ok\n")
    with urllib.request.urlopen(base + "/metrics", timeout=5) as r:
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        body = r.read().decode()
    for name in ("connections", "mailboxes", "frames_in_total", "bytes_out_total"):
        assert f"\nanonchat_relay_{name} " in "\n" + body
    assert 'anonchat_relay_rejects_total{reason="bad_signature"}' in body


@aio
async def test_flood_is_rate_limited_then_closed_and_others_carry_on() -> None:
    """A connection that stays over its rate for longer than the flood window (1 s here) is
    closed with `flood`; it hears `rate_limited` at most once per refill interval meanwhile,
    and a calm client on the same relay is answered throughout."""
    proc = RelayProcess("--send-rate", "20", "--send-burst", "10", "--flood-window", "1")
    try:
        flooder, calm = await open_peer(proc.url), await open_peer(proc.url)
        began = asyncio.get_running_loop().time()

        async def flood() -> None:
            with contextlib.suppress(ConnectionClosed):
                for rid in range(2000):  # about 4 s at most: bounded either way
                    await flooder.request(wire.Ping(rid))
                    await asyncio.sleep(0.002)

        sending = asyncio.create_task(flood())
        replies, closed = await flooder.drain()
        took = asyncio.get_running_loop().time() - began
        await sending
        assert closed == (1008, "flood")
        assert 1 <= took < 4
        assert replies[:10] == [wire.Pong(rid) for rid in range(10)]
        limited = [r for r in replies if isinstance(r, wire.Error)]
        assert limited
        assert all(r.code == ErrorCode.RATE_LIMITED for r in limited)
        assert len(limited) <= took * 20 + 1  # at most one per refill interval (1/20 s)
        await calm.request(wire.Ping(1))
        assert await calm.recv() == wire.Pong(1)
        await calm.ws.close()
    finally:
        code, log = proc.stop()
    assert code == 0, log


@aio
async def test_too_many_connections_in_all_are_closed_1013_after_the_handshake() -> None:
    proc = RelayProcess("--max-connections", "2")
    try:
        a, b = await open_peer(proc.url), await open_peer(proc.url)
        ws = await connect(proc.url)
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None
        assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1013, "too_many_connections")
        await a.ws.close()
        await asyncio.sleep(0.2)
        c = await open_peer(proc.url)
        for p in (b, c):
            await p.request(wire.Ping(1))
            assert await p.recv() == wire.Pong(1)
            await p.ws.close()  # not left for the relay's 5 s close timeout while we stop it
    finally:
        code, log = proc.stop()
    assert code == 0, log


@aio
async def test_too_many_connections_from_one_address_are_cut_at_the_accept() -> None:
    """Counted from the TCP accept: the third is aborted before its handshake is read; another
    address is not affected (the per-address split is covered in test_state)."""
    proc = RelayProcess("--max-connections-per-address", "2")
    try:
        a, b = await open_peer(proc.url), await open_peer(proc.url)
        with pytest.raises((InvalidHandshake, OSError)):
            await connect(proc.url, open_timeout=5)
        elsewhere = await connect(proc.url, local_addr=("127.0.0.2", 0))
        assert isinstance(wire.decode(await elsewhere.recv()), wire.Hello)  # type: ignore[arg-type]
        await elsewhere.close()
        await a.ws.close()
        await asyncio.sleep(0.2)
        c = await open_peer(proc.url)
        for p in (b, c):
            await p.request(wire.Ping(1))
            assert await p.recv() == wire.Pong(1)
            await p.ws.close()  # not left for the relay's 5 s close timeout while we stop it
    finally:
        code, log = proc.stop()
    assert code == 0, log


def test_idle_connection_that_never_answers_pings_is_dropped() -> None:
    proc = RelayProcess("--idle-timeout", "1")
    try:
        sock = socket.create_connection(("127.0.0.1", proc.port), timeout=10)
        sock.sendall(
            b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        started = time.monotonic()
        received = b""
        pinged_at = None
        while chunk := sock.recv(65536):
            received += chunk
            if pinged_at is None and b"\x89\x00" in received:  # an empty ping, unanswered
                pinged_at = time.monotonic() - started
        elapsed = time.monotonic() - started
        assert received.startswith(b"HTTP/1.1 101")
        # docs/protocol.md §2: the ping after half the idle timeout of silence (checked every
        # quarter), then the close with 1011 after another half without a word.
        assert pinged_at is not None
        assert 0.45 < pinged_at < 1.5, pinged_at
        close = received.index(b"\x88", received.index(b"\x89\x00"))
        assert received[close + 2 : close + 4] == (1011).to_bytes(2, "big")
        assert 0.9 < elapsed < 5
        sock.close()
    finally:
        code, log = proc.stop()
    assert code == 0, log


@aio
async def test_sigterm_sends_goodbye_closes_with_going_away_and_exits_zero() -> None:
    proc = RelayProcess()
    peer = await open_peer(proc.url)
    key = MailboxKey.generate()
    await peer.subscribe(key)
    proc.terminate()
    assert await peer.recv() == wire.Goodbye("going_away")
    assert await peer.close_code() == (1001, "going_away")
    code, log = proc.stop()
    assert code == 0, log
    assert "1 connections closed" in log
    assert key.mailbox.hex() not in log
    assert "127.0.0.1:" not in log.replace(proc.url, "")
