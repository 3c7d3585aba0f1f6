"""anonchat-cli clients on three relay processes that share one Redis backplane (127.0.0.1).

Each profile names all three relays in its card, its own first: its mailboxes listen on every
one of them, so each message reaches its receiver through the relay it was sent on and,
through the backplane, through the two others too (shown once all the same). Mid-exchange
Bob's first relay is killed with SIGKILL: the clients move on to the next relay of his card,
and nothing is lost or shown twice.
"""

from __future__ import annotations

import re
import shutil
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import (
    Listener,
    Profile,
    Relay,
    api,
    assert_exactly_once,
    cheap_unlock,
    incoming_bodies,
)
from tests.e2e.test_relay_backplane import RedisServer

pytestmark = [
    pytest.mark.timeout(240),
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed"),
]

BEFORE, AFTER = 4, 4


@pytest.fixture
def relays(tmp_path: Path) -> Iterator[list[Relay]]:
    secret = tmp_path / "secret"
    secret.write_bytes(b"cluster secret\n")
    redis = RedisServer(tmp_path / "redis")
    args = ("--redis", redis.url, "--redis-secret-file", str(secret))
    made: list[Relay] = []
    try:
        for _ in range(3):
            made.append(Relay(tmp_path, None, *args))
        yield made
    finally:
        for relay in made:
            relay.kill()
        redis.stop()


def on_relays(make: Callable[..., Profile], name: str, urls: list[str]) -> Profile:
    """A profile whose card names ``urls``: the first its relay, the others its fallbacks."""
    profile = make(name)
    fallbacks = [arg for url in urls[1:] for arg in ("--fallback", url)]
    profile.run("init", "--name", name, "--relay", urls[0], *fallbacks)
    cheap_unlock(profile.dir, profile.passphrase)
    return profile


def backplane_received(relay: Relay) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{relay.port}/metrics", timeout=5) as r:
        text = r.read().decode()
    found = re.search(r"^anonchat_relay_backplane_received_total (\d+)$", text, re.M)
    assert found is not None
    return int(found.group(1))


def received(listener: Listener, bodies: list[str]) -> Callable[[list[dict[str, object]]], bool]:
    def check(events: list[dict[str, object]]) -> bool:
        got = {e.get("body") for e in events if e.get("event") == "message"}
        return set(bodies) <= got

    return check


def test_a_conversation_across_relays_survives_one_killed(
    relays: list[Relay], make_profile: Callable[..., Profile]
) -> None:
    urls = [r.url for r in relays]
    alice = on_relays(make_profile, "Alice", urls)
    bob = on_relays(make_profile, "Bob", [urls[1], urls[2], urls[0]])
    card = bob.card()
    bob_l = bob.listen()
    bob_l.wait_listening()
    alice.run("add", card, "--wait", "20")
    bob_l.wait_for(lambda ev: any(e.get("event") == "request" for e in ev))
    assert bob_l.stop() == 0
    bob.run("accept", "Alice")

    alice_l, bob_l = alice.listen(), bob.listen()
    alice_l.wait_listening()
    bob_l.wait_listening()
    to_bob = [f"to bob {i}" for i in range(BEFORE + AFTER)]
    to_alice = [f"to alice {i}" for i in range(BEFORE + AFTER)]
    for i in range(BEFORE):
        api(alice, "send", contact="Bob", text=to_bob[i], wait=0)
        api(bob, "send", contact="Alice", text=to_alice[i], wait=0)
    bob_l.wait_for(received(bob_l, to_bob[:BEFORE]), 60)
    alice_l.wait_for(received(alice_l, to_alice[:BEFORE]), 60)

    # Mid-exchange: Bob's first relay dies without a word; what is written meanwhile goes
    # through the next relay of his card, and Bob still listens on it.
    relays[1].kill()
    for i in range(BEFORE, BEFORE + AFTER):
        api(alice, "send", contact="Bob", text=to_bob[i], wait=0)
        api(bob, "send", contact="Alice", text=to_alice[i], wait=0)
    bob_l.wait_for(received(bob_l, to_bob), 90)
    alice_l.wait_for(received(alice_l, to_alice), 90)
    assert alice_l.stop() == 0
    assert bob_l.stop() == 0
    alice_l.assert_clean()
    bob_l.assert_clean()

    # Alice wrote to Bob through the next relay of his card once his first was gone.
    routes = [e["relay"].rstrip("/") for e in alice_l.of("route")]
    assert routes[-1:] == [urls[2].rstrip("/")], routes
    # The surviving relays passed messages to each other through Redis.
    assert all(backplane_received(r) > 0 for r in (relays[0], relays[2]))
    # Each message reached its receiver on more than one relay; each is shown once.
    assert_exactly_once([e["body"] for e in bob_l.incoming()], to_bob)
    assert_exactly_once([e["body"] for e in alice_l.incoming()], to_alice)
    assert_exactly_once(incoming_bodies(bob, "Alice"), to_bob)
    assert_exactly_once(incoming_bodies(alice, "Bob"), to_alice)
