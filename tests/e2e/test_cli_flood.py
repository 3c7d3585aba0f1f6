"""A hostile relay floods a listening client: its memory stays bounded and a real message still
arrives. Real relay, real `anonchat-cli listen` processes, the injecting relay in between."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

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
