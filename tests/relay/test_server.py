"""relay.server as a real process on 127.0.0.1: abuse (floods, oversize frames, bad limits) costs
the abuser its connection and nobody else anything."""

from __future__ import annotations

import asyncio
import dataclasses
import re
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from relay import wire
from relay.server import FLOOD_RECEIVE_BUFFER, RelayConfig, parse_args, serve_relay
from relay.state import RelayLimits
from relay.wire import ErrorCode
from tests.relay.helpers import ROOT, MailboxKey, RelayProcess

pytestmark = pytest.mark.timeout(60)

RATE, BURST, WINDOW = 20.0, 10, 1.0
# How late past the window the flooder may be closed on a loaded machine.
MARGIN = 1.5
FLOOD_PER_SECOND = 2000


def metrics(proc: RelayProcess) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{proc.port}/metrics", timeout=5) as r:
        body: str = r.read().decode()
    return {
        name: float(value)
        for name, value in re.findall(r"^(anonchat_relay_\S+) (\S+)$", body, re.MULTILINE)
    }


async def open_client(url: str) -> tuple[ClientConnection, wire.Hello]:
    ws = await connect(url, compression=None, max_size=None)
    hello = wire.decode(await ws.recv())  # type: ignore[arg-type]
    assert isinstance(hello, wire.Hello)
    return ws, hello


@dataclass
class Flood:
    """What a flooder saw: the frames, the close, how much it sent and for how long."""

    frames: list[wire.Frame] = field(default_factory=list)
    close: tuple[int, str] | None = None
    sent: int = 0
    lasted: float = 0.0


async def flood(ws: ClientConnection) -> Flood:
    """Pings at FLOOD_PER_SECOND until the relay closes the connection (10 s at most)."""
    seen = Flood()
    started = time.monotonic()

    async def write() -> None:
        for _ in range(1000):  # 10 s of batches, one every 10 ms
            for _ in range(FLOOD_PER_SECOND // 100):
                await ws.send(wire.encode(wire.Ping(seen.sent)))
                seen.sent += 1
            await asyncio.sleep(0.01)

    writer = asyncio.create_task(write())
    try:
        async with asyncio.timeout(10):
            async for data in ws:
                assert isinstance(data, bytes)
                seen.frames.append(wire.decode(data))
    except ConnectionClosed as closed:
        if closed.rcvd is not None:
            seen.close = (closed.rcvd.code, closed.rcvd.reason)
    except TimeoutError:
        pass  # never closed: seen.close stays None
    seen.lasted = time.monotonic() - started
    writer.cancel()
    await asyncio.gather(writer, return_exceptions=True)
    return seen


async def calm_traffic(url: str, stop: asyncio.Event) -> list[tuple[float, float]]:
    """A sender and a subscriber trading a send every 50 ms until ``stop``: each round trip's
    start (monotonic) and duration, checked frame by frame."""
    key = MailboxKey.generate()
    receiver, hello = await open_client(url)
    await receiver.send(wire.encode(key.subscribe(1, hello.challenge)))
    assert wire.decode(await receiver.recv()) == wire.Ok(1)  # type: ignore[arg-type]
    sender, _ = await open_client(url)
    trips: list[tuple[float, float]] = []
    for rid in range(1, 400):  # 20 s at most
        if stop.is_set():
            break
        sent_at = time.monotonic()
        payload = rid.to_bytes(4, "big")
        await sender.send(wire.encode(wire.Send(rid, key.mailbox, payload)))
        async with asyncio.timeout(5):
            assert wire.decode(await sender.recv()) == wire.Sent(rid, 1)  # type: ignore[arg-type]
            delivered = wire.decode(await receiver.recv())  # type: ignore[arg-type]
        assert delivered == wire.Deliver(key.mailbox, payload)
        trips.append((sent_at, time.monotonic() - sent_at))
        await asyncio.sleep(0.05)
    await sender.close()
    await receiver.close()
    return trips


def test_a_flooder_is_closed_for_flood_after_the_window_while_others_carry_on() -> None:
    proc = RelayProcess(
        *("--send-rate", str(RATE), "--send-burst", str(BURST), "--flood-window", str(WINDOW))
    )

    async def run() -> tuple[Flood, list[tuple[float, float]], float, float]:
        stop = asyncio.Event()
        calm = asyncio.create_task(calm_traffic(proc.url, stop))
        await asyncio.sleep(0.3)
        flooder, _ = await open_client(proc.url)
        flood_started = time.monotonic()
        seen = await flood(flooder)
        flood_ended = time.monotonic()
        await asyncio.sleep(0.5)  # and some calm traffic after the flooder is gone
        stop.set()
        trips = await calm
        return seen, trips, flood_started, flood_ended

    try:
        seen, trips, flood_started, flood_ended = asyncio.run(run())
        counts = metrics(proc)
    finally:
        code, log = proc.stop()
    assert code == 0, log

    assert seen.close == (1008, ErrorCode.FLOOD)
    assert WINDOW < seen.lasted <= WINDOW + MARGIN
    replies = seen.frames
    told = sum(
        isinstance(frame, wire.Error) and frame.code == ErrorCode.RATE_LIMITED for frame in replies
    )
    pongs = sum(isinstance(frame, wire.Pong) for frame in replies)
    assert told + pongs == len(replies)
    # At most one rate_limited per refill interval, and the budget holds: the burst, then RATE/s.
    assert 1 <= told <= seen.lasted * RATE + 1
    assert BURST <= pongs <= BURST + seen.lasted * RATE + 1
    # Of the thousands sent, the relay read about two frames per refill interval (the calm
    # pair sent one subscribe and one frame per trip).
    flooder_frames_in = counts["anonchat_relay_frames_in_total"] - len(trips) - 1
    assert flooder_frames_in <= BURST + 3 * RATE * seen.lasted
    assert seen.sent >= 10 * flooder_frames_in
    assert counts['anonchat_relay_rejects_total{reason="flood"}'] == 1

    # The calm pair's sends went through before, during and after the flood, promptly.
    during = [t for t, _ in trips if flood_started <= t <= flood_ended]
    after = [t for t, _ in trips if t > flood_ended]
    assert len(during) >= 5
    assert len(after) >= 3
    assert max(trip for _, trip in trips) < 1.0


def test_a_flooder_is_read_through_a_small_receive_window_until_it_stops() -> None:
    """While a connection floods, the relay shrinks its socket's receive buffer, so that no
    read brings a backlog whose parsing would stall the others; a second without a dropped
    frame gives the buffer back."""

    async def run() -> tuple[int, int, int]:
        limits = RelayLimits(send_rate=RATE, send_burst=BURST, flood_window=30.0)
        handle = await serve_relay(RelayConfig(host="127.0.0.1", port=0, limits=limits))
        try:
            ws, _ = await open_client(handle.url)
            (server_side,) = handle.server.connections
            sock = server_side.transport.get_extra_info("socket")

            def receive_buffer() -> int:
                size: int = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
                return size

            before = receive_buffer()
            for rid in range(BURST + 5):
                await ws.send(wire.encode(wire.Ping(rid)))
            async with asyncio.timeout(5):
                while (await ws.recv()) != wire.encode(wire.Error(BURST, "rate_limited")):
                    pass
            await asyncio.sleep(0.5)  # the relay waits out its pause, then drops again
            flooding = receive_buffer()
            await asyncio.sleep(1.2)  # quiet for longer than a flood lasts without a drop
            await ws.send(wire.encode(wire.Ping(99)))
            async with asyncio.timeout(5):
                while (await ws.recv()) != wire.encode(wire.Pong(99)):
                    pass
            after = receive_buffer()
            await ws.close()
            return before, flooding, after
        finally:
            await handle.close()

    before, flooding, after = asyncio.run(run())
    assert flooding <= 2 * FLOOD_RECEIVE_BUFFER < before
    assert after == before


def test_an_oversize_frame_is_answered_too_large_then_closed_1009_and_counted() -> None:
    proc = RelayProcess("--max-frame-size", "4096")

    async def run() -> tuple[list[wire.Frame], tuple[int, str] | None]:
        big, _ = await open_client(proc.url)
        other, _ = await open_client(proc.url)
        await big.send(wire.encode(wire.Send(1, bytes(32), b"x" * 5000)))
        frames: list[wire.Frame] = []
        close = None
        try:
            async with asyncio.timeout(5):
                async for data in big:
                    frames.append(wire.decode(data))  # type: ignore[arg-type]
        except ConnectionClosed as closed:
            close = (closed.rcvd.code, closed.rcvd.reason) if closed.rcvd else None
        await other.send(wire.encode(wire.Ping(2)))
        assert wire.decode(await other.recv()) == wire.Pong(2)  # type: ignore[arg-type]
        await other.close()
        return frames, close

    try:
        frames, close = asyncio.run(run())
        counts = metrics(proc)
    finally:
        code, log = proc.stop()
    assert code == 0, log
    assert frames == [wire.Error(None, ErrorCode.TOO_LARGE)]
    assert close is not None
    assert close[0] == 1009
    assert "4096" in close[1]
    assert counts['anonchat_relay_rejects_total{reason="too_large"}'] == 1


LEAST_FRAME = wire.min_frame_size(RelayLimits().announced())[0]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "relay", "--port", "0", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.mark.parametrize("size", [64, LEAST_FRAME - 1])
def test_the_cli_refuses_a_frame_limit_below_the_largest_fixed_frame(size: int) -> None:
    done = run_cli("--max-frame-size", str(size))
    assert done.returncode == 2
    assert f"--max-frame-size must be at least {LEAST_FRAME} bytes" in done.stderr
    assert "hello" in done.stderr
    assert "listening" not in done.stdout + done.stderr


def test_the_cli_accepts_the_least_frame_limit_and_its_hello_fits() -> None:
    proc = RelayProcess("--max-frame-size", str(LEAST_FRAME))

    async def hello_size() -> int:
        async with connect(proc.url, compression=None) as ws:
            data = await ws.recv()
            assert isinstance(data, bytes)
            return len(data)

    try:
        size = asyncio.run(hello_size())
    finally:
        code, log = proc.stop()
    assert code == 0, log
    assert size == LEAST_FRAME


@pytest.mark.parametrize("window", ["0", "-1", "nan", "inf"])
def test_the_cli_refuses_a_flood_window_that_is_not_a_positive_time(window: str) -> None:
    done = run_cli("--flood-window", window)
    assert done.returncode == 2
    assert "--flood-window must be a positive number of seconds" in done.stderr


def test_every_limit_flag_is_in_protocol_md_with_its_default() -> None:
    """§7 names each limit's flag with the default in brackets right after it."""
    text = (ROOT / "docs" / "protocol.md").read_text()
    section = text[text.index("## 7. Limits") : text.index("## 8. ")]
    _, args = parse_args([])
    limits = [f.name for f in dataclasses.fields(RelayLimits)]
    driver = ["max_backlog", "handshake_timeout", "max_header_bytes"]
    units = {"": 1, "/s": 1, " s": 1, " MiB": 1 << 20}
    for name in limits + driver:
        flag = "--" + name.replace("_", "-")
        found = re.search(rf"`{flag}` \(([\d.]+)(/s| s| MiB)?", section)
        assert found is not None, flag
        assert float(found.group(1)) * units[found.group(2) or ""] == getattr(args, name), flag


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--max-watches-per-address", "0"),
        ("--address-send-rate", "0"),
        ("--max-handshakes-per-address", "0"),
        ("--max-watchers", "0"),
        ("--presence-interval", "-1"),
    ],
)
def test_the_cli_names_the_flag_of_a_bad_limit(flag: str, value: str) -> None:
    done = run_cli(flag, value)
    assert done.returncode == 2
    assert f"error: {flag} must be" in done.stderr
