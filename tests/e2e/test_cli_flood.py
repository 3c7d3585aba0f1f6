"""A hostile relay floods a listening client: its memory stays bounded and a real message still
arrives. Real relay, real `anonchat-cli listen` processes, the injecting relay in between."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import threading
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from app.crypto.card import Card
from relay import wire
from tests.e2e.conftest import Listener, Profile, Relay, pair
from tests.e2e.injector import Injector, skip_frame

pytestmark = pytest.mark.timeout(180)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


class PeakRss:
    """Samples a process's RSS on a thread until stopped; `peak` in MB."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = rss_mb(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, rss_mb(self.pid))

    def stop(self) -> float:
        self._stop.set()
        self._thread.join(5)
        return self.peak


@pytest.fixture
def scene(
    relay: Relay, make_profile: Callable[..., Profile]
) -> Iterator[tuple[Injector, Profile, Listener, bytes]]:
    """Alice on the real relay; Bob behind the injecting relay, listening; the mailbox that
    carries Alice's messages to Bob."""
    injector = Injector(relay.url)
    try:
        alice, bob = pair(make_profile, relay.url, injector.url)
        listener = bob.listen()
        listener.wait_listening()
        alice.run("send", "Bob", "hello", "--wait", "30")
        listener.wait_for(lambda ev: any(e.get("body") == "hello" for e in ev))
        mailbox = injector.delivered[-1][0]
        yield injector, alice, listener, mailbox
    finally:
        injector.close()


def _arrives(alice: Profile, listener: Listener, text: str) -> None:
    alice.run("send", "Bob", text, "--wait", "60", timeout=120)
    listener.wait_for(lambda ev: any(e.get("body") == text for e in ev), timeout=60)


def test_junk_frames_from_a_hostile_relay_cannot_grow_the_client(
    scene: tuple[Injector, Profile, Listener, bytes],
) -> None:
    injector, alice, listener, mailbox = scene
    before = rss_mb(listener.proc.pid)
    sampler = PeakRss(listener.proc.pid)
    sent = injector.flood(mailbox, lambda: os.urandom(60_000), 4.0)
    peak = sampler.stop()
    assert sent > 100  # it did flood (as fast as the client read)
    # Bounded by the intake (8 MB waiting) and websockets' own buffer, not by the flood.
    assert peak - before < 64, (before, peak)
    _arrives(alice, listener, "after the junk")
    assert listener.proc.poll() is None


def test_a_real_message_arrives_through_a_flood_of_skip_counter_frames(
    scene: tuple[Injector, Profile, Listener, bytes],
) -> None:
    injector, alice, listener, mailbox = scene
    sent = injector.flood(mailbox, skip_frame, 1.0)
    assert sent > 1000
    _arrives(alice, listener, "through the flood")
    rejected = listener.of("rejected")
    # Most were dropped unread; the front end heard of a few only.
    assert 0 < len(rejected) < 100


def test_mute_and_the_storage_quota_from_the_command_line(
    relay: Relay, make_profile: Callable[..., Profile]
) -> None:
    _, bob = pair(make_profile, relay.url)
    assert bob.run("mute", "Alice").data["muted"] is True
    (row,) = bob.contacts()
    assert row["muted"] is True
    assert "[muted]" in bob.run("contacts", json_out=False).out
    bob.run("mute", "Alice", "--off")
    assert bob.contacts()[0]["muted"] is False
    assert bob.run("config").data["quota_mb"] == 64
    assert bob.run("config", "quota", "5").data["quota_mb"] == 5
    refused = bob.run("config", "quota", "0", expect=None)
    assert refused.rc != 0
    assert "quota" in refused.err
    assert bob.run("config").data["quota_mb"] == 5


async def _strangers(url: str, mailbox: bytes, connections: int, seconds: float) -> int:
    """`connections` clients with nothing but a card: each sends 60 KB of junk to its mailbox
    at just under the relay's send rate (within its limits) for `seconds`."""
    frame = lambda rid: wire.encode(wire.Send(rid, mailbox, os.urandom(60_000)))  # noqa: E731

    async def one() -> int:
        sent = 0
        async with connect(url, max_size=None, compression=None) as ws:
            await ws.recv()  # hello
            reader = asyncio.create_task(_drain(ws))
            loop = asyncio.get_running_loop()
            deadline = loop.time() + seconds
            while loop.time() < deadline:
                sent += 1
                await ws.send(frame(sent))
                await asyncio.sleep(1 / 90)
            reader.cancel()
        return sent

    return sum(await asyncio.gather(*(one() for _ in range(connections))))


async def _drain(ws: ClientConnection) -> None:
    with contextlib.suppress(ConnectionClosed):
        async for _ in ws:
            pass


def _slow_consumers(relay: Relay) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{relay.port}/metrics", timeout=5) as r:
        text = r.read().decode()
    found = re.search(r'rejects_total\{reason="slow_consumer"\} (\d+)', text)
    return int(found.group(1)) if found else 0


def test_strangers_with_the_card_cannot_exhaust_the_client_through_the_stock_relay(
    relay: Relay, make_profile: Callable[..., Profile]
) -> None:
    bob = make_profile("Bob", relay.url)
    card = bob.card()
    listener = bob.listen()
    listener.wait_listening()
    before = rss_mb(listener.proc.pid)
    sampler = PeakRss(listener.proc.pid)
    sent = asyncio.run(_strangers(relay.url, Card.parse(card).mailbox, 10, 3.0))
    peak = sampler.stop()
    assert sent > 2000
    assert peak - before < 64, (before, peak)
    assert _slow_consumers(relay) == 0  # Bob kept up: dropped unread, not left unread
    # The card still works for a friend.
    alice = make_profile("Alice", relay.url)
    alice.run("add", card, "--wait", "30")
    listener.wait_for(lambda ev: any(e.get("event") == "request" for e in ev), timeout=60)
