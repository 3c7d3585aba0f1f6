"""A peer's text never reaches the terminal as control sequences, through any output."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from tests.e2e.conftest import Profile, Relay, pair

pytestmark = pytest.mark.timeout(180)

HOSTILE = "hi\x1b[2J\x1b]0;owned\x07 \u202eevil\u2066 \x9b31m\r\nfake line\u2028 \U0001f600 ok"
RAW_DANGER = ["\x1b", "\x07", "\x9b", "\u202e", "\u2066", "\u2028", "\r"]


def test_message_bodies_are_escaped_in_text_and_json(
    relay: Relay, make_profile: Callable[..., Profile]
) -> None:
    alice, bob = pair(make_profile, relay.url)
    bob_l = bob.listen()
    try:
        bob_l.wait_listening()
        sent = alice.run("send", "Bob", HOSTILE, "--wait", "20")
        assert sent.data["status"] == "delivered"
        bob_l.wait_for(lambda ev: any(e.get("body") == HOSTILE for e in ev))
    finally:
        assert bob_l.stop() == 0

    text = bob.run("messages", "Alice", json_out=False).out
    for char in RAW_DANGER:
        assert char not in text, repr(char)
    assert "\\u001b[2J" in text
    assert "\\u202eevil" in text
    assert "\\r\\nfake line" in text
    assert "\U0001f600 ok" in text  # ordinary text stays as it is
    assert len(text.splitlines()) == 1  # one message, one line: no forged line below it

    raw = bob.run("messages", "Alice").out
    for char in RAW_DANGER:
        assert char not in raw, repr(char)
    assert [m["body"] for m in json.loads(raw)] == [HOSTILE]  # the exact text, escaped
