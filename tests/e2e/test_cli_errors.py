"""Refusals: each a one-line error with its exit code, and the profile left as it was."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from app.core.qr import make_png
from tests.e2e.conftest import Profile, Relay, Result, pair, snapshot

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
    one_line(alice.run("accept-key", "Bob", expect=None), 1, "no key change")
    one_line(alice.run("init", "--name", "Again", expect=None), 1, "already exists")
    assert snapshot(alice.dir) == before
    usage = alice.run("frobnicate", expect=2)
    assert "usage" in usage.err
    # a busy profile: the second process is refused while the first runs
    alice_l = alice.listen()
    alice_l.wait_listening()
    one_line(alice.run("contacts", expect=None), 1, "open in another")
    assert alice_l.stop() == 0


def test_key_change_is_held_until_accepted(
    relay: Relay, make_profile: Callable[..., Profile], tmp_path: Path
) -> None:
    alice, _bob = pair(make_profile, relay.url)
    # "Bob" again, under a new identity key: a new profile with the same display name
    impostor = Profile(tmp_path / "bob2", "Bob")
    impostor.init(relay.url)
    card = impostor.card()

    before = snapshot(alice.dir)
    held = alice.run("add", card, expect=None)
    one_line(held, 1, "identity key changed")
    assert "accept-key" in held.err
    flagged = alice.contacts()
    assert [(c["name"], c["key_change_pending"]) for c in flagged] == [("Bob", True)]
    one_line(alice.run("send", "Bob", "blocked?", expect=None), 1, "safety number changed")
    assert alice.run("messages", "Bob").data == []
    assert snapshot(alice.dir) != before  # the flag itself is stored

    # accepting runs the held handshake with the new key; the new Bob answers
    imp_l = impostor.listen()
    try:
        imp_l.wait_listening()
        accepted = alice.run("accept-key", "Bob").data
        assert accepted["key_change_pending"] is False
        assert accepted["verified"] is False
        # accept-key connects and waits until the new session is established
        assert alice.run("send", "Bob", "new key", "--wait", "20").data["status"] == "delivered"
        imp_l.wait_for(lambda ev: any(e["event"] == "contact_added" for e in ev))
        imp_l.wait_for(lambda ev: any(e.get("body") == "new key" for e in ev))
    finally:
        assert imp_l.stop() == 0
    number = alice.run("fingerprint", "Bob").data["safety_number"]
    assert number == impostor.run("fingerprint", "Alice").data["safety_number"]
