"""`anonchat-cli init --proxy` and `anonchat-cli config`: the network settings a person picks,
kept in the profile, with a clear refusal (and nothing changed) for a wrong value."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

from app.cli import EXIT_UNREACHABLE, EXIT_USER
from tests.e2e.conftest import Profile, Relay, snapshot

RELAY = "ws://127.0.0.1:9"  # nothing listens: these commands never need the relay


def test_a_proxy_makes_each_contact_a_connection_of_its_own(
    make_profile: Callable[..., Profile],
) -> None:
    me = make_profile("Me")
    made = me.run("init", "--name", "Me", "--relay", RELAY, "--proxy", "socks5://127.0.0.1:9050")
    assert made.data["proxy"] == "socks5h://127.0.0.1:9050"  # names resolved by the proxy
    assert made.data["isolation"] == "per-contact"
    assert me.run("config").data == {
        "relay": RELAY,
        "fallbacks": [],
        "proxy": "socks5h://127.0.0.1:9050",
        "isolation": "per-contact",
        "quota_mb": 64,
        "auto_download_mb": 25,
    }

    assert me.run("config", "isolation", "shared").data["isolation"] == "shared"
    assert me.run("config", "proxy", "none").data == {
        "relay": RELAY,
        "fallbacks": [],
        "proxy": None,
        "isolation": "shared",
        "quota_mb": 64,
        "auto_download_mb": 25,
    }
    assert me.run("config", "isolation", "default").data["isolation"] == "card-apart"
    text = me.run("config", json_out=False).out
    assert "proxy: none (direct connections)" in text
    assert "isolation: card-apart" in text


def test_a_wrong_proxy_is_refused_and_changes_nothing(
    make_profile: Callable[..., Profile], tmp_path: Path
) -> None:
    me = make_profile("Me", RELAY)
    before = snapshot(me.dir)
    for wrong in (
        "http://127.0.0.1:8080",
        "socks5h://127.0.0.1",
        "socks5h://user:secret@127.0.0.1:9050",
        "127.0.0.1:9050",
    ):
        result = me.run("config", "proxy", wrong, expect=EXIT_USER)
        assert "not a proxy URL" in result.err or "without credentials" in result.err
        assert "secret" not in result.err
    assert snapshot(me.dir) == before
    assert me.run("config").data == {
        "relay": RELAY,
        "fallbacks": [],
        "proxy": None,
        "isolation": "card-apart",
        "quota_mb": 64,
        "auto_download_mb": 25,
    }


def test_a_proxy_that_is_down_is_named_when_the_relay_is_not_reached(
    make_profile: Callable[..., Profile], relay: Relay
) -> None:
    me = make_profile("Me", relay.url)
    with socket.socket() as s:  # a port where no proxy listens
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    me.run("config", "proxy", f"socks5h://127.0.0.1:{port}")
    result = me.run("sync", "--wait", "2", expect=EXIT_UNREACHABLE)
    assert f"through the proxy socks5h://127.0.0.1:{port} (is it running?)" in result.err
    me.run("config", "proxy", "none")
    me.run("sync", "--wait", "2")  # the relay itself was there all along
