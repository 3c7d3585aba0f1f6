"""relay.server as a real process on 127.0.0.1: abuse (floods, oversize frames, bad limits) costs
the abuser its connection and nobody else anything."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest
from websockets.asyncio.client import connect

from relay import wire
from relay.state import RelayLimits
from tests.relay.helpers import ROOT, RelayProcess

pytestmark = pytest.mark.timeout(60)

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
