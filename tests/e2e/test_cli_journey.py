"""The whole journey through anonchat-cli: two (and three) profiles on one relay process."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.conftest import Profile, Relay

pytestmark = pytest.mark.timeout(180)


def statuses(rows: list[dict[str, object]]) -> dict[object, object]:
    return {r["body"]: r["status"] for r in rows if r["direction"] == "out"}


def test_whole_journey(relay: Relay, make_profile: Callable[..., Profile], tmp_path: Path) -> None:
    alice = make_profile("Alice", relay.url)
    bob = make_profile("Bob", relay.url)
    carol = make_profile("Carol", relay.url)

    # Alice adds Bob from the card text while Bob listens: she arrives as a request.
    card = bob.card()
    bob_l = bob.listen()
    bob_l.wait_listening()
    added = alice.run("add", card, "--wait", "20").data
    assert added["name"] == "Bob"
    bob_l.wait_for(lambda ev: any(e["event"] == "request" for e in ev))
    assert bob_l.of("request")[0]["name"] == "Alice"

    # Alice -> Bob, delivered (not read) while Bob listens, before he accepts.
    sent = alice.run("send", "Bob", "hello Bob", "--wait", "20").data
    assert sent["status"] == "delivered"
    bob_l.wait_for(lambda ev: any(e.get("body") == "hello Bob" for e in ev))
    assert bob_l.stop() == 0
    assert bob.contacts() == []
    (request,) = bob.run("requests").data
    assert (request["name"], request["first_message"], request["same_name_as"]) == (
        "Alice",
        "hello Bob",
        None,
    )
    one = bob.run("requests", json_out=False).out
    assert "Alice" in one
    assert "hello Bob" in one
    assert bob.run("accept", "Alice").data["state"] == "contact"
    assert bob.run("requests").data == []

    # Bob -> Alice, delivered while Alice listens.
    alice_l = alice.listen()
    alice_l.wait_listening()
    assert bob.run("send", "Alice", "hello Alice", "--wait", "20").data["status"] == "delivered"
    alice_l.wait_for(lambda ev: any(e.get("body") == "hello Alice" for e in ev))

    # Bob reads: his read receipt reaches Alice, who sees "read".
    bob_rows = bob.messages("Alice")
    assert [(r["direction"], r["body"]) for r in bob_rows] == [
        ("in", "hello Bob"),
        ("out", "hello Alice"),
    ]
    assert bob.run("sync", "--wait", "3").data["outbox"] == 0
    alice_l.wait_for(lambda ev: any(e.get("status") == "read" for e in ev))
    assert alice_l.stop() == 0

    # Alice reads, then Bob syncs and sees "read" on his message too.
    alice_rows = alice.messages("Bob")
    assert statuses(alice_rows) == {"hello Bob": "read"}
    assert [r["body"] for r in alice_rows if r["direction"] == "in"] == ["hello Alice"]
    bob_l = bob.listen()
    bob_l.wait_listening()
    alice.run("sync", "--wait", "2")
    bob_l.wait_for(lambda ev: any(e.get("status") == "read" for e in ev))
    assert bob_l.stop() == 0
    assert statuses(bob.messages("Alice")) == {"hello Alice": "read"}

    # Equal safety numbers; each verifies with the number, and with the other's QR code.
    fa = alice.run("fingerprint", "Bob", "--qr", str(tmp_path / "fa.png")).data
    fb = bob.run("fingerprint", "Alice", "--qr", str(tmp_path / "fb.png")).data
    assert fa["safety_number"] == fb["safety_number"]
    assert alice.run("verify", "Bob", fa["safety_number"]).data["verified"] is True
    assert bob.run("verify", "Alice", "--qr-image", str(tmp_path / "fa.png")).data["verified"]
    wrong = alice.run("verify", "Bob", "1" * 60, expect=1)
    assert wrong.err.count("\n") == 1
    assert "does not match" in wrong.err
    assert [c["verified"] for c in alice.contacts()] == [True]

    # Alice adds Carol from her QR image; both directions work.
    qr = tmp_path / "carol.png"
    carol.run("card", "--qr", str(qr))
    carol_l = carol.listen()
    carol_l.wait_listening()
    assert alice.run("add", "--qr-image", str(qr), "--wait", "20").data["name"] == "Carol"
    carol_l.wait_for(lambda ev: any(e["event"] == "request" for e in ev))
    assert alice.run("send", "Carol", "hi Carol", "--wait", "20").data["status"] == "delivered"
    carol_l.wait_for(lambda ev: any(e.get("body") == "hi Carol" for e in ev))
    assert carol_l.stop() == 0
    carol.run("accept", "Alice")
    alice_l = alice.listen()
    alice_l.wait_listening()
    assert carol.run("send", "Alice", "hi Alice", "--wait", "20").data["status"] == "delivered"
    alice_l.wait_for(lambda ev: any(e.get("body") == "hi Alice" for e in ev))
    assert alice_l.stop() == 0
    names = sorted(c["name"] for c in alice.contacts())
    assert names == ["Bob", "Carol"]
    assert all(c["established"] for c in alice.contacts())
    # nothing shown twice anywhere
    for who, peer in ((alice, "Bob"), (alice, "Carol"), (bob, "Alice"), (carol, "Alice")):
        rows = who.messages(peer)
        assert len({r["msg_id"] for r in rows}) == len(rows)
