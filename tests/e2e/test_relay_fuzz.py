"""Random frame sequences against a live relay while a well-behaved pair keeps talking.

The relay must never crash, its memory must settle, and the well-behaved pair must see every
one of its messages. A short run is in the default suite; the long one is behind ``soak``.
"""

from __future__ import annotations

import asyncio
import threading
import time
import urllib.request
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from relay import wire
from tests.relay.helpers import MailboxKey, RelayProcess
from tests.relay.test_wire import frames as valid_frames

T = TypeVar("T")
KEYS = [MailboxKey.generate() for _ in range(3)]


class Harness:
    """A relay process, an event loop thread, and a well-behaved sender/subscriber pair."""

    def __init__(self) -> None:
        self.proc = RelayProcess("--send-rate", "100000", "--send-burst", "100000")
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.sent = 0
        self.received: list[bytes] = []
        self.run(self._open_pair())

    def run(self, coro: Coroutine[Any, Any, T], wait: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(wait)

    async def _open_pair(self) -> None:
        self.sub = await connect(self.proc.url, compression=None)
        hello = wire.decode(await self.sub.recv())  # type: ignore[arg-type]
        assert isinstance(hello, wire.Hello)
        await self.sub.send(wire.encode(KEYS[0].subscribe(1, hello.challenge)))
        assert wire.decode(await self.sub.recv()) == wire.Ok(1)  # type: ignore[arg-type]
        self.sender = await connect(self.proc.url, compression=None)
        await self.sender.recv()

    async def well_behaved_round(self) -> None:
        """One message through the relay; every earlier one must have arrived in order."""
        self.sent += 1
        payload = self.sent.to_bytes(4, "big")
        await self.sender.send(wire.encode(wire.Send(self.sent, KEYS[0].mailbox, payload)))
        reply = wire.decode(await asyncio.wait_for(self.sender.recv(), 10))  # type: ignore[arg-type]
        assert reply == wire.Sent(self.sent, 1)
        got = wire.decode(await asyncio.wait_for(self.sub.recv(), 10))  # type: ignore[arg-type]
        assert got == wire.Deliver(KEYS[0].mailbox, payload)
        self.received.append(payload)

    async def fuzz(self, messages: list[bytes | str]) -> None:
        """Send junk on a fresh connection, read whatever comes back, then close it."""
        ws: ClientConnection = await connect(self.proc.url, compression=None, max_size=None)
        try:
            await ws.recv()
            for message in messages:
                await ws.send(message)
            await ws.send(wire.encode(wire.Ping(424242)))
            async with asyncio.timeout(10):
                while True:
                    data = await ws.recv()
                    assert isinstance(data, bytes)
                    if wire.decode(data) == wire.Pong(424242):
                        break
        except ConnectionClosed:
            pass
        finally:
            await ws.close()

    def close(self) -> tuple[int, str]:
        async def shut() -> None:
            await self.sub.close()
            await self.sender.close()

        self.run(shut())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
        return self.proc.stop()


@pytest.fixture(scope="module")
def harness() -> Iterator[Harness]:
    h = Harness()
    yield h
    code, log = h.close()
    assert code == 0, log
    assert h.received == [n.to_bytes(4, "big") for n in range(1, h.sent + 1)]


def subscribe_attempts() -> st.SearchStrategy[bytes]:
    """Subscribes signed over the wrong challenge, for the wrong mailbox or well-formed junk."""
    return st.builds(
        lambda k, rid, mailbox: wire.encode(
            KEYS[k].subscribe(rid, bytes(32))
            if mailbox is None
            else wire.Subscribe(rid, mailbox, KEYS[k].public, bytes(64))
        ),
        st.integers(0, 2),
        st.integers(0, 2**63 - 1),
        st.none() | st.sampled_from([k.mailbox for k in KEYS]),
    )


def mutated(frame: wire.Frame, flips: list[tuple[int, int]]) -> bytes:
    raw = bytearray(wire.encode(frame))
    for at, value in flips:
        raw[at % len(raw)] = value
    return bytes(raw)


junk = st.one_of(
    st.binary(max_size=300),
    st.text(max_size=50),
    valid_frames.map(wire.encode),
    subscribe_attempts(),
    st.builds(
        mutated, valid_frames, st.lists(st.tuples(st.integers(0, 10**4), st.integers(0, 255)))
    ),
    st.builds(
        lambda mailboxes, rid: wire.encode(wire.Watch(rid, tuple(mailboxes))),
        st.lists(st.sampled_from([k.mailbox for k in KEYS]) | st.binary(min_size=32, max_size=32)),
        st.integers(0, 10),
    ),
    st.builds(
        lambda k, p: wire.encode(wire.Send(1, KEYS[k].mailbox, p)),
        st.integers(1, 2),
        st.binary(max_size=2000),
    ),
)
sequences = st.lists(junk, min_size=1, max_size=30)


def fuzz_run(harness: Harness, messages: list[bytes | str]) -> None:
    harness.run(harness.fuzz(messages))
    harness.run(harness.well_behaved_round())
    assert harness.proc.proc.poll() is None


def gauges(harness: Harness) -> dict[str, float]:
    url = f"http://127.0.0.1:{harness.proc.port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        body = response.read().decode()
    return {
        line.split()[0]: float(line.split()[1])
        for line in body.splitlines()
        if line and not line.startswith("#")
    }


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(sequences)
def test_random_frame_sequences_short(harness: Harness, messages: list[bytes | str]) -> None:
    fuzz_run(harness, messages)


def test_after_the_fuzz_only_the_well_behaved_pair_is_left(harness: Harness) -> None:
    """Nothing leaks in the routing maps: every fuzz connection's state is gone."""
    assert harness.sent >= 100
    deadline = time.monotonic() + 5
    while gauges(harness)["anonchat_relay_connections"] != 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    g = gauges(harness)
    assert g["anonchat_relay_connections"] == 2
    assert g["anonchat_relay_mailboxes"] == 1
    assert g["anonchat_relay_watched_mailboxes"] == 0


@pytest.mark.soak
@pytest.mark.timeout(1800)
def test_random_frame_sequences_soak_memory_settles(harness: Harness) -> None:
    @settings(
        max_examples=3000,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(sequences)
    def run(messages: list[bytes | str]) -> None:
        fuzz_run(harness, messages)

    run()
    warm = harness.proc.rss_kib()
    run()
    grown = harness.proc.rss_kib() - warm
    assert grown < 8 * 1024, f"relay RSS grew {grown} KiB over the second half"
