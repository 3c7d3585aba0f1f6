"""Crashes mid-exchange: the relay killed and restarted, the receiver SIGKILLed over and over.

The default runs are shorter versions of the soak ones (`-m soak`): 200 messages and 5 kills
instead of 1,000 messages and 500 messages with 20 kills.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import pytest

from tests.e2e.conftest import (
    Profile,
    Relay,
    assert_exactly_once,
    delivered_rows,
    incoming_bodies,
    pair,
)

pytestmark = pytest.mark.timeout(600)


def relay_restart(relay: Relay, make: Callable[..., Profile], total: int) -> None:
    alice, bob = pair(make, relay.url)
    half = total // 2
    alice.queue("Bob", "a", 0, half)
    bob.queue("Alice", "b", 0, half)
    alice_l, bob_l = alice.listen(), bob.listen()

    def arrived(ev: list[dict[str, object]]) -> int:
        return sum(1 for e in ev if e.get("direction") == "in")

    bob_l.wait_for(lambda ev: arrived(ev) >= half // 5, timeout=60)
    relay.kill()
    time.sleep(1.0)
    relay.start()
    bob_l.wait_for(lambda ev: arrived(ev) >= half, timeout=120)
    alice_l.wait_for(lambda ev: arrived(ev) >= half, timeout=120)
    alice_l.wait_for(lambda ev: len(delivered_rows(alice_l)) >= half, timeout=60)
    bob_l.wait_for(lambda ev: len(delivered_rows(bob_l)) >= half, timeout=60)
    assert alice_l.stop() == 0
    assert bob_l.stop() == 0
    alice_l.assert_clean()
    bob_l.assert_clean()
    assert_exactly_once(incoming_bodies(bob, "Alice"), [f"a{i}" for i in range(half)])
    assert_exactly_once(incoming_bodies(alice, "Bob"), [f"b{i}" for i in range(half)])

    # the sessions go on
    bob_l = bob.listen()
    bob_l.wait_listening()
    assert alice.run("send", "Bob", "after", "--wait", "20").data["status"] == "delivered"
    assert bob_l.stop() == 0
    assert incoming_bodies(bob, "Alice")[-1] == "after"


def test_relay_restart_mid_exchange(relay: Relay, make_profile: Callable[..., Profile]) -> None:
    relay_restart(relay, make_profile, 200)


@pytest.mark.soak
def test_relay_restart_mid_exchange_soak(
    relay: Relay, make_profile: Callable[..., Profile]
) -> None:
    relay_restart(relay, make_profile, 1000)


def receiver_kills(relay: Relay, make: Callable[..., Profile], total: int, kills: int) -> None:
    """Each round Alice queues a chunk and both start; Bob dies after a random number of
    arrivals (and a random pause), Alice stops; the last round lets everything through."""
    rng = random.Random(5)
    alice, bob = pair(make, relay.url)
    chunk = total // kills
    for k in range(kills):
        alice.queue("Bob", "m", k * chunk, chunk)
        alice_l, bob_l = alice.listen(), bob.listen()
        alice_l.wait_listening()  # a SIGTERM while the profile unlocks is not a clean stop
        cut = rng.randrange(chunk)
        bob_l.wait_for(lambda ev, cut=cut: sum(e.get("direction") == "in" for e in ev) >= cut)
        time.sleep(rng.uniform(0, 0.05))
        bob_l.kill()
        assert alice_l.stop() == 0
        alice_l.assert_clean()
    waiting = {
        r["id"]
        for r in alice.messages("Bob")
        if r["direction"] == "out" and r["status"] not in ("delivered", "read")
    }
    alice_l, bob_l = alice.listen(), bob.listen()
    bob_l.wait_listening()
    alice_l.wait_for(lambda ev: waiting <= delivered_rows(alice_l), timeout=120)
    assert bob_l.stop() == 0
    assert alice_l.stop() == 0
    for listener in (alice_l, bob_l):
        listener.assert_clean()
    assert_exactly_once(incoming_bodies(bob, "Alice"), [f"m{i}" for i in range(total)])
    assert alice.run("sync", "--wait", "0.5").data["outbox"] == 0

    # the conversation goes on, both ways
    alice_l = alice.listen()
    alice_l.wait_listening()
    assert bob.run("send", "Alice", "still here", "--wait", "20").data["status"] == "delivered"
    assert alice_l.stop() == 0
    assert incoming_bodies(alice, "Bob") == ["still here"]


def test_receiver_killed_during_burst(relay: Relay, make_profile: Callable[..., Profile]) -> None:
    receiver_kills(relay, make_profile, 200, 5)


@pytest.mark.soak
def test_receiver_killed_during_burst_soak(
    relay: Relay, make_profile: Callable[..., Profile]
) -> None:
    receiver_kills(relay, make_profile, 500, 20)


def test_stopped_listen_reports_all_it_stored(
    relay: Relay, make_profile: Callable[..., Profile]
) -> None:
    """SIGTERM during a burst: every message Bob's `listen` stored, it also printed (a stop
    lets the frame in hand finish instead of cutting it off between the store and the event)."""
    alice, bob = pair(make_profile, relay.url)
    alice.queue("Bob", "m", 0, 300)
    seen: set[str] = set()
    for cut in (40, 120, 200):
        bob_l, alice_l = bob.listen(), alice.listen()
        need = cut - len(seen)
        bob_l.wait_for(lambda ev, n=need: sum(e.get("direction") == "in" for e in ev) >= n, 60)
        assert bob_l.stop() == 0
        assert alice_l.stop() == 0
        bob_l.assert_clean()
        seen |= {e["body"] for e in bob_l.incoming()}
        assert set(incoming_bodies(bob, "Alice")) == seen
