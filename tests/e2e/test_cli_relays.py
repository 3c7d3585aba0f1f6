"""Changing relays from the CLI with real relay processes: an unreachable relay is refused
with a clear message and changes nothing; a reachable one is taken, the contact follows the
move, and messages keep flowing both ways with none lost; a card carries fallback relays."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from app.crypto.card import Card
from tests.e2e.conftest import Profile, Relay, free_port, pair


def test_switching_relays_refuses_the_unreachable_and_the_contact_follows(
    relay: Relay, make_profile: Callable[..., Profile], tmp_path: Path
) -> None:
    alice, bob = pair(make_profile, relay.url)
    alice.run("sync", "--wait", "5")  # Bob's welcome and acceptance reach Alice
    before = alice.run("config").data

    # A relay nobody runs: refused, exit 1, one clear line, nothing changed.
    dead = f"ws://127.0.0.1:{free_port()}"
    refused = alice.run("config", "relay", dead, expect=1)
    assert f"could not reach {dead}" in refused.err
    assert refused.err.count("\n") == 1
    assert alice.run("config").data == before

    # A second relay that runs: taken, and Alice's new code names it.
    other = Relay(tmp_path)
    try:
        moved = alice.run("config", "relay", other.url).data
        assert (moved["relay"], moved["fallbacks"]) == (other.url, [])
        assert Card.parse(alice.card()).relay_url == other.url

        # Queued on both sides (Bob's still for Alice's old mailbox), then both online: the
        # move reaches Bob, who answers there; messages flow both ways.
        alice.run("send", "Bob", "from the new relay", "--wait", "0")
        bob.run("send", "Alice", "to the new relay", "--wait", "0")
        alice_l = alice.listen()
        bob_l = bob.listen()
        alice_l.wait_listening()
        bob_l.wait_listening()
        bob_l.wait_for(lambda ev: any(e.get("body") == "from the new relay" for e in ev), 60)
        alice_l.wait_for(lambda ev: any(e.get("body") == "to the new relay" for e in ev), 60)
        assert alice_l.stop() == 0
        assert bob_l.stop() == 0
        alice_l.assert_clean()
        bob_l.assert_clean()

        # Alice's old relay is gone now: Bob still reaches her, on the relay she moved to.
        relay.kill()
        bob.run("send", "Alice", "after the old relay died", "--wait", "0")
        alice_l = alice.listen()
        alice_l.wait_listening()
        bob_l = bob.listen()  # Bob's own mailboxes were on the dead relay: he only sends
        alice_l.wait_for(
            lambda ev: any(e.get("body") == "after the old relay died" for e in ev), 60
        )
        assert alice_l.stop() == 0
        assert bob_l.stop() == 0
        bodies = [m["body"] for m in alice.messages("Bob") if m["direction"] == "in"]
        assert bodies == ["to the new relay", "after the old relay died"]
    finally:
        other.kill()


def test_a_profile_with_fallbacks_gives_a_card_that_names_them(
    make_profile: Callable[..., Profile], tmp_path: Path
) -> None:
    urls = ["ws://192.168.1.20:8765", "ws://10.0.0.7:8765", "ws://172.16.5.9:8765"]
    carol = make_profile("Carol")
    carol.run(
        "init", "--name", "Carol", "--relay", urls[0], "--fallback", urls[1], "--fallback", urls[2]
    )
    assert Card.parse(carol.card()).relays == tuple(urls)
    shown = carol.run("config").data
    assert (shown["relay"], shown["fallbacks"]) == (urls[0], urls[1:])
    refused = carol.run("config", "relay", urls[0], urls[0], expect=1)
    assert "named twice" in refused.err
