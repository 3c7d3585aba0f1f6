"""Refusals: each a one-line error with its exit code, and the profile left as it was."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from app.core.qr import make_png
from tests.e2e.conftest import Profile, Relay, Result, pair, request_from, snapshot

pytestmark = pytest.mark.timeout(180)


def one_line(result: Result, code: int, words: str) -> None:
    assert result.rc == code, result
    assert result.out == ""
    lines = result.err.splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("anonchat-cli: "), lines
    assert words in lines[0], lines


def test_refusals_change_nothing(
    relay: Relay, make_profile: Callable[..., Profile], tmp_path: Path
) -> None:
    alice, bob = pair(make_profile, relay.url)
    bob_card = bob.card()
    own = alice.card()
    blank = tmp_path / "blank.png"
    (tmp_path / "other.png").write_bytes(make_png("https://example.org"))
    from PIL import Image

    Image.new("L", (200, 200), 255).save(blank)
    (tmp_path / "text.png").write_bytes(b"not an image at all")

    before = snapshot(alice.dir)
    one_line(alice.run("add", own, expect=None), 1, "your own code")
    one_line(alice.run("add", bob_card, expect=None), 1, "already a contact")
    one_line(
        alice.run("add", bob_card[:-6] + "AAAAAA", expect=None), 1, "not a valid AnonChat code"
    )
    one_line(alice.run("add", "hello", expect=None), 1, "not a valid AnonChat code")
    one_line(alice.run("add", "--qr-image", str(blank), expect=None), 1, "no QR code found")
    one_line(
        alice.run("add", "--qr-image", str(tmp_path / "other.png"), expect=None),
        1,
        "not an AnonChat code",
    )
    one_line(
        alice.run("add", "--qr-image", str(tmp_path / "text.png"), expect=None),
        1,
        "not a readable image",
    )
    one_line(
        alice.run("add", "--qr-image", str(tmp_path / "none.png"), expect=None), 1, "no such file"
    )
    one_line(alice.run("contacts", passphrase="wrong passphrase", expect=None), 1, "passphrase")
    one_line(alice.run("send", "Nobody", "hi", expect=None), 1, "no contact matches")
    one_line(alice.run("send", "Bob", "   ", expect=None), 1, "empty message")
    one_line(alice.run("accept", "Bob", expect=None), 1, "no request matches")
    one_line(alice.run("rename", "Bob", "B\u202eob", expect=None), 1, "direction")
    one_line(alice.run("init", "--name", "Again", expect=None), 1, "already exists")
    assert snapshot(alice.dir) == before
    usage = alice.run("frobnicate", expect=2)
    assert "usage" in usage.err
    # a busy profile: a second holder is refused while the first runs (other commands run
    # through it: tests/e2e/test_cli_api.py)
    alice_l = alice.listen()
    alice_l.wait_listening()
    one_line(alice.run("daemon", expect=None), 1, "open in another")
    assert alice.run("contacts").data[0]["name"] == "Bob"
    assert alice_l.stop() == 0


def test_a_stranger_named_bob_is_a_request_and_bob_stays_reachable(
    relay: Relay, make_profile: Callable[..., Profile], tmp_path: Path
) -> None:
    alice, bob = pair(make_profile, relay.url)
    bob_id = alice.contacts()[0]["id"]
    number = alice.run("fingerprint", "Bob").data["safety_number"]
    alice.run("verify", "Bob", number)
    # "Bob" again, under a new identity key: a new profile with the same display name.
    impostor = Profile(tmp_path / "bob2", "Bob")
    impostor.init(relay.url)
    request_from(impostor, alice, "new laptop")
    assert [(c["name"], c["verified"], c["state"]) for c in alice.contacts()] == [
        ("Bob", True, "contact")
    ]
    (request,) = alice.run("requests").data
    assert (request["name"], request["same_name_as"], request["first_message"]) == (
        "Bob",
        bob_id,
        "new laptop",
    )
    text = alice.run("requests", json_out=False).out
    assert "a different key with the same name" in text
    # Bob is still reachable: nobody but Alice decides that.
    bob_l = bob.listen()
    try:
        bob_l.wait_listening()
        assert alice.run("send", "Bob", "still you?", "--wait", "20").data["status"] == (
            "delivered"
        )
    finally:
        assert bob_l.stop() == 0

    # Alice decides the request is Bob's new key: it moves into Bob, verification cleared.
    moved = alice.run("accept", str(request["id"]), "--as-new-key-of", "Bob", json_out=False)
    assert "verified mark was cleared" in moved.out
    assert [(c["id"], c["verified"]) for c in alice.contacts()] == [(bob_id, False)]
    one_line(alice.run("accept", "Bob", expect=None), 1, "no request matches")
    alice.run("rename", "Bob", "Bob (new laptop)")
    assert [c["name"] for c in alice.contacts()] == ["Bob (new laptop)"]
    assert (
        alice.run("fingerprint", "Bob").data["safety_number"]
        == impostor.run("fingerprint", "Alice").data["safety_number"]
    )
    assert "new laptop" in [m["body"] for m in alice.messages("Bob")]


def test_block_and_delete_from_the_command_line(
    relay: Relay, make_profile: Callable[..., Profile], tmp_path: Path
) -> None:
    alice, _bob = pair(make_profile, relay.url)
    stranger = Profile(tmp_path / "mallory", "Mallory")
    stranger.init(relay.url)
    request_from(stranger, alice)
    card = alice.card()
    assert alice.run("block", "Mallory").data["blocked"] is True
    assert alice.run("requests").data == []
    assert alice.run("status").data["requests"] == 0
    # Blocked: her new handshake is dropped silently, Alice's list stays as it was.
    mallory_id = stranger.contacts()[0]["id"]
    stranger.run("delete-contact", str(mallory_id))
    alice_l = alice.listen()
    try:
        alice_l.wait_listening()
        stranger.run("add", card, "--wait", "0")
        stranger.run("sync", "--wait", "3")
    finally:
        assert alice_l.stop() == 0
    assert alice_l.of("request") == []
    assert alice_l.of("rejected") == []
    assert alice.run("requests").data == []

    kept = alice.run("delete-contact", "Bob", "--keep-history").data
    assert kept == {"id": 1, "deleted": True, "history_kept": True}
    assert [(c["name"], c["state"]) for c in alice.contacts()] == [("Bob", "ended")]
    one_line(alice.run("send", "Bob", "hi", expect=None), 1, "deleted Bob")
    alice.run("delete-contact", "Bob")
    assert alice.contacts() == []
