"""Cheap abuse against a real relay process: presence churn, a bad-signature subscribe flood,
readers that stop reading, and TCP connections that never finish their handshake. In each the
relay keeps to its limits and a well-behaved pair on another address is answered promptly.

The abusers connect from other loopback addresses (127.0.0.2 and up) than the pair
(127.0.0.1), as they would from the Internet; each test stops by itself within seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import statistics
import sys
import time
from collections.abc import Awaitable, Callable

import msgpack
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from relay import wire
from relay.state import RelayLimits
from relay.wire import ErrorCode
from tests.relay.helpers import ROOT, MailboxKey, RelayProcess
from tests.relay.test_server import calm_traffic, metrics

pytestmark = pytest.mark.timeout(60)

Trips = list[tuple[float, float]]


async def open_from(url: str, host: str) -> tuple[ClientConnection, wire.Hello]:
    ws = await connect(url, compression=None, max_size=None, local_addr=(host, 0))
    hello = wire.decode(await ws.recv())  # type: ignore[arg-type]
    assert isinstance(hello, wire.Hello)
    return ws, hello


def client_frame(payload: bytes) -> bytes:
    """One binary WebSocket frame as a client sends it, masked with an all-zero key (a server
    takes any key), so it can be built once and written as is."""
    size = len(payload)
    if size < 126:
        head = bytes([0x82, 0x80 | size])
    else:
        head = bytes([0x82, 0x80 | 126]) + size.to_bytes(2, "big")
    return head + bytes(4) + payload


async def drain(ws: ClientConnection, seen: list[tuple[float, wire.Frame]] | None = None) -> None:
    """Read until closed, keeping each frame with the time it came if asked to."""
    with contextlib.suppress(ConnectionClosed):
        async for data in ws:
            if seen is not None:
                seen.append((time.monotonic(), wire.decode(data)))  # type: ignore[arg-type]


async def during(url: str, attack: Callable[[], Awaitable[None]]) -> Trips:
    """The pair's round trips while the attack runs (the pair trading a send every 50 ms)."""
    stop = asyncio.Event()
    pair = asyncio.create_task(calm_traffic(url, stop))
    await asyncio.sleep(0.3)
    started = time.monotonic()
    await attack()
    ended = time.monotonic()
    stop.set()
    trips = await pair
    return [t for t in trips if started <= t[0] <= ended]


def p99(trips: Trips) -> float:
    durations = [d for _, d in trips]
    return statistics.quantiles(durations, n=100)[98] if len(durations) > 1 else durations[0]


def assert_prompt(trips: Trips, least: int = 10) -> None:
    """The pair got through all along, none of its round trips slow."""
    assert len(trips) >= least
    assert p99(trips) < 0.25
    assert max(d for _, d in trips) < 1.0


def test_presence_churn_is_coalesced_and_watchers_per_mailbox_capped() -> None:
    """40 connections watch the same 256 mailboxes while 8 others subscribe and unsubscribe
    them at their full send rate for 3 s: only 16 watchers per mailbox are let in, each hears
    of a mailbox at most once a second, the churners' address pays for each watcher told
    beyond two (which bounds the notices by its frame budget), and the pair does not notice."""
    boxes = [MailboxKey.generate() for _ in range(256)]
    mailboxes = tuple(k.mailbox for k in boxes)
    proc = RelayProcess()
    seconds = 3.0
    watched: list[list[tuple[float, wire.Frame]]] = [[] for _ in range(40)]
    lasted = 0.0

    async def attack() -> None:
        nonlocal lasted
        readers = []
        for seen in watched:
            ws, _ = await open_from(proc.url, "127.0.0.2")
            await ws.send(wire.encode(wire.Watch(1, mailboxes)))
            readers.append((ws, asyncio.create_task(drain(ws, seen))))
        churners = [await open_from(proc.url, "127.0.0.3") for _ in range(8)]

        async def churn(n: int, ws: ClientConnection, hello: wire.Hello) -> None:
            mine = boxes[n::8]
            frames = [
                frame
                for key in mine
                for frame in (
                    wire.encode(key.subscribe(1, hello.challenge)),
                    wire.encode(wire.Unsubscribe(2, key.mailbox)),
                )
            ]
            reader = asyncio.create_task(drain(ws))
            deadline = time.monotonic() + seconds
            index = 0
            while time.monotonic() < deadline:
                for _ in range(9):  # 90 frames/s, inside the 100/s a connection may send
                    await ws.send(frames[index % len(frames)])
                    index += 1
                await asyncio.sleep(0.1)
            ws.transport.abort()  # an attacker does not wait for the relay to read the rest
            await reader

        started = time.monotonic()
        await asyncio.gather(*(churn(n, *c) for n, c in enumerate(churners)))
        await asyncio.sleep(1.2)  # the last notices, a second after the ones before
        for ws, reader in readers:
            await ws.close()
            await reader
        lasted = time.monotonic() - started
        for _ in range(50):  # the churners' connections, noticed gone once read again
            if metrics(proc)["anonchat_relay_connections"] <= 2:
                break
            await asyncio.sleep(0.1)

    try:
        trips = asyncio.run(during(proc.url, attack))
        counts = metrics(proc)
    finally:
        code, log = proc.stop()
    assert code == 0, log
    assert_prompt(trips)
    firsts = [seen[0][1] for seen in watched]
    assert firsts.count(wire.Watching(1, ())) == 16
    assert firsts.count(wire.Error(1, ErrorCode.TOO_MANY_WATCHERS)) == 24
    admitted = [seen[1:] for seen in watched if seen[0][1] == wire.Watching(1, ())]
    notices = 0
    for seen in admitted:
        times: dict[bytes, list[float]] = {}
        for at, frame in seen:
            assert isinstance(frame, wire.Presence)
            times.setdefault(frame.mailbox, []).append(at)
        for each in times.values():  # a second apart when sent; the reading may bunch them
            assert len(each) <= seconds + 2  # one a second, then the last state
        notices += len(seen)
    assert all(len(seen) == 1 for seen in watched if seen[0][1] != wire.Watching(1, ()))
    # A notice to 16 watchers costs the churners' address 1 + 14 frame tokens: what it may
    # spend (its burst, the refill, a burst more of debt) bounds what they caused.
    limits = RelayLimits()
    spendable = 2 * limits.address_send_burst + limits.address_send_rate * lasted
    assert 0 < notices <= spendable * 16 / 15
    assert counts['anonchat_relay_rejects_total{reason="too_many_watchers"}'] == 24
    assert counts["anonchat_relay_watched_mailboxes"] == 0


def test_a_bad_signature_flood_from_200_connections_costs_one_addresss_check_budget() -> None:
    """200 connections from one address each send bad-signature subscribes at 100/s for 3 s:
    the relay checks no more signatures than the address's budget allows (600 at once, then
    300/s), none of those connections is dropped for it, and the pair does not notice."""
    proc = RelayProcess()
    seconds = 3.0
    closed = 0

    async def attack() -> None:
        nonlocal closed
        key = MailboxKey.generate()
        forged = msgpack.packb(
            {
                "v": 1,
                "t": "subscribe",
                "rid": 1,
                "mailbox": key.mailbox,
                "key": key.public,
                "sig": bytes(64),
            }
        )
        batch = client_frame(forged) * 10

        async def flood(ws: ClientConnection) -> None:
            nonlocal closed
            reader = asyncio.create_task(drain(ws))
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline and not reader.done():
                if ws.transport.get_write_buffer_size() < 64 * 1024:
                    ws.transport.write(batch)  # 10 frames every 0.1 s
                await asyncio.sleep(0.1)
            closed += reader.done()
            ws.transport.abort()
            await reader

        flooders = [(await open_from(proc.url, "127.0.0.2"))[0] for _ in range(200)]
        await asyncio.gather(*(flood(ws) for ws in flooders))

    try:
        trips = asyncio.run(during(proc.url, attack))
        counts = metrics(proc)
    finally:
        code, log = proc.stop()
    assert code == 0, log
    assert_prompt(trips)
    checks = counts['anonchat_relay_rejects_total{reason="bad_signature"}']
    assert 600 <= checks <= 600 + 300 * (seconds + 1.5)
    assert closed == 0
    assert counts.get('anonchat_relay_rejects_total{reason="flood"}', 0) == 0


def test_readers_that_stop_reading_are_cut_after_the_idle_timeout() -> None:
    """Three subscribers stop reading while 6 MB each are sent to them, less than the backlog
    limit (raised to 64 MiB here) once the kernel's buffers are full: within the idle timeout
    (2 s here) of their output no longer draining, the relay aborts them, counts them as slow
    consumers and gives their memory back."""
    proc = RelayProcess("--idle-timeout", "2", "--max-backlog", str(64 << 20))
    readers = 3
    cut_after: list[float] = []

    async def attack() -> None:
        keys = [MailboxKey.generate() for _ in range(readers)]
        stalled = []
        for key in keys:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.bind(("127.0.0.2", 0))
            sock.connect(("127.0.0.1", proc.port))
            ws = await connect(proc.url, sock=sock, compression=None, max_size=None)
            hello = wire.decode(await ws.recv())  # type: ignore[arg-type]
            assert isinstance(hello, wire.Hello)
            await ws.send(wire.encode(key.subscribe(1, hello.challenge)))
            assert wire.decode(await ws.recv()) == wire.Ok(1)  # type: ignore[arg-type]
            ws.transport.pause_reading()  # and never reads again
            stalled.append(ws)
        payload = bytes(60_000)

        async def send_to(key: MailboxKey) -> None:
            sender, _ = await open_from(proc.url, "127.0.0.3")
            reader = asyncio.create_task(drain(sender))
            frame = wire.encode(wire.Send(1, key.mailbox, payload))
            for _ in range(10):  # 100 frames of 60 kB at 90 frames/s
                for _ in range(10):
                    await sender.send(frame)
                await asyncio.sleep(0.11)
            await sender.close()
            await reader

        await asyncio.gather(*(send_to(key) for key in keys))
        sent_all = time.monotonic()
        for _ in range(50):
            if metrics(proc)["anonchat_relay_connections"] <= 2:  # the pair
                break
            await asyncio.sleep(0.1)
        cut_after.append(time.monotonic() - sent_all)
        for ws in stalled:
            ws.transport.abort()

    try:
        base = proc.rss_kib()
        trips = asyncio.run(during(proc.url, attack))
        counts = metrics(proc)
        grown_mb = (proc.rss_kib() - base) / 1024
    finally:
        code, log = proc.stop()
    assert code == 0, log
    assert_prompt(trips)
    assert cut_after[0] < 2.0 + 1.0
    assert counts['anonchat_relay_rejects_total{reason="slow_consumer"}'] == readers
    assert grown_mb < 20


def test_sockets_that_never_finish_the_handshake_are_capped_per_address() -> None:
    """2,500 TCP connections from one address that send nothing: at most 256 are kept (for
    the 1 s handshake timeout here), the rest are cut at once; the pair, a new connection and
    /metrics from another address are served all along."""
    proc = RelayProcess("--handshake-timeout", "1")
    held: list[socket.socket] = []
    served: list[float] = []

    async def attack() -> None:
        for _ in range(2500):
            sock = socket.socket()
            sock.bind(("127.0.0.2", 0))
            sock.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                sock.connect(("127.0.0.1", proc.port))
            held.append(sock)
        await asyncio.sleep(0.3)
        started = time.monotonic()
        newcomer, _ = await open_from(proc.url, "127.0.0.1")
        await newcomer.close()
        counts = await asyncio.to_thread(metrics, proc)
        served.append(time.monotonic() - started)
        assert counts["anonchat_relay_connections"] == 2  # the pair
        assert counts["anonchat_relay_handshakes"] <= 256
        await asyncio.sleep(1.0)
        for sock in held:
            sock.close()
        for _ in range(30):  # the last ones are cut at their handshake timeout
            counts = await asyncio.to_thread(metrics, proc)
            if counts["anonchat_relay_handshakes"] == 0:
                break
            await asyncio.sleep(0.1)
        assert counts["anonchat_relay_handshakes"] == 0

    try:
        trips = asyncio.run(during(proc.url, attack))
        counts = metrics(proc)
    finally:
        code, log = proc.stop()
        for sock in held:
            sock.close()
    assert code == 0, log
    assert_prompt(trips)
    assert served[0] < 1.0
    refused = counts['anonchat_relay_rejects_total{reason="too_many_connections"}']
    # Most are cut at the accept; those the kernel's listen queue had no room for retry their
    # SYN a second later (then the relay cuts them too), or were closed by us before that.
    assert 1000 <= refused <= 2500


async def header_flood(port: str, seconds: str) -> None:
    """600 connections from five addresses, each starting a 1 MB handshake request, again and
    again until ``seconds`` are over (run in a child process: see below)."""
    line = b"X-Padding: " + b"a" * 8000 + b"\r\n"
    request = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n" + line * 128  # about 1 MB, unfinished
    deadline = time.monotonic() + float(seconds)

    async def one(host: str) -> None:
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, asyncio.TimeoutError):
                reader, writer = await asyncio.open_connection(
                    "127.0.0.1", int(port), local_addr=(host, 0)
                )
                writer.write(request)
                await asyncio.wait_for(reader.read(), 3)  # until the relay cuts it
                writer.transport.abort()

    await asyncio.gather(*(one(f"127.0.0.{2 + n % 5}") for n in range(600)))


def test_unfinished_megabyte_headers_are_cut_at_the_header_limit() -> None:
    """600 connections from five addresses start 1 MB handshake requests over and over for
    2 s: the relay reads 16 KiB of each and drops it, its memory stays bounded, and the pair
    does not notice. The attackers run in a child process, so that the pair's round trips
    measure the relay, not the attackers' load on this process."""
    proc = RelayProcess()
    peak = [0]

    async def attack() -> None:
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "import asyncio, sys; from tests.e2e.test_relay_abuse import header_flood; "
            "asyncio.run(header_flood(*sys.argv[1:]))",
            *(str(proc.port), "2"),
            cwd=ROOT,
            env=dict(os.environ, PYTHONPATH=str(ROOT)),
        )
        while child.returncode is None:
            peak[0] = max(peak[0], proc.rss_kib())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(child.wait(), 0.1)
        assert child.returncode == 0

    try:
        base = proc.rss_kib()
        trips = asyncio.run(during(proc.url, attack))
        counts = metrics(proc)
    finally:
        code, log = proc.stop()
    assert code == 0, log
    assert_prompt(trips)
    assert counts['anonchat_relay_rejects_total{reason="too_large"}'] >= 600
    assert (peak[0] - base) / 1024 < 40
