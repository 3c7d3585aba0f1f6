"""relay.server as a real process on 127.0.0.1: abuse (floods, oversize frames, bad limits) costs
the abuser its connection and nobody else anything."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import urllib.request

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from relay import wire
from relay.state import RelayLimits
from relay.wire import ErrorCode
from tests.relay.helpers import ROOT, RelayProcess

pytestmark = pytest.mark.timeout(60)


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
