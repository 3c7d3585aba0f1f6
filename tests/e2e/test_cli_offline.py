"""Messages wait for an absent peer and go out by themselves; contacts on two relays."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.conftest import (
    Profile,
    Relay,
    assert_exactly_once,
    delivered_rows,
    incoming_bodies,
    pair,
)

pytestmark = pytest.mark.timeout(180)


def test_offline_peer_gets_everything_once(
    relay: Relay, make_profile: Callable[..., Profile]
) -> None:
    alice, bob = pair(make_profile, relay.url)
    # Bob is not running: sends only queue (exit 3 when waiting, 0 with --wait 0).
    late = alice.run("send", "Bob", "waiting 0", "--wait", "2", expect=3)
    assert "not reached" in late.err
    assert alice.run("send", "Bob", "waiting 1", "--wait", "0").data["status"] == "queued"
    alice.queue("Bob", "waiting ", 2, 28)
    expected = [f"waiting {i}" for i in range(30)]

    alice_l = alice.listen()
    alice_l.wait_listening()
    alice_l.wait_for(lambda ev: any(e["event"] == "presence" for e in ev))
    assert not delivered_rows(alice_l)

    bob_l = bob.listen()  # nobody touches Alice from here on
    bob_l.wait_for(lambda ev: len([e for e in ev if e.get("direction") == "in"]) >= 30)
    alice_l.wait_for(lambda ev: len(delivered_rows(alice_l)) >= 30)
    assert_exactly_once([e["body"] for e in bob_l.incoming()], expected)
    assert bob_l.stop() == 0
    assert alice_l.stop() == 0
    assert_exactly_once(incoming_bodies(bob, "Alice"), expected)
    assert alice.run("sync", "--wait", "1").data["outbox"] == 0


def test_contacts_on_two_relays(
    relay: Relay, make_profile: Callable[..., Profile], tmp_path: Path
) -> None:
    other = Relay(tmp_path)
    try:
        alice, bob = pair(make_profile, relay.url, other.url)
        bob_l = bob.listen()
        bob_l.wait_listening()
        assert alice.run("send", "Bob", "via two relays", "--wait", "20").data["status"] == (
            "delivered"
        )
        assert bob_l.stop() == 0
        alice_l = alice.listen()
        alice_l.wait_listening()
        assert bob.run("send", "Alice", "and back", "--wait", "20").data["status"] == "delivered"
        alice_l.wait_for(lambda ev: any(e.get("body") == "and back" for e in ev))
        assert alice_l.stop() == 0
        assert incoming_bodies(bob, "Alice") == ["via two relays"]
        assert incoming_bodies(alice, "Bob") == ["and back"]
    finally:
        other.kill()
