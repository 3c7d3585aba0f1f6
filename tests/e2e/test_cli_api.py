"""One engine per profile, any number of front ends (docs/api.md), with real processes: while
`anonchat-cli daemon` or `listen` holds a profile, every other command runs through it with the
same output, JSON and exit codes as on its own, needing no passphrase; `listen` attached to a
holder prints the same events; garbage on the socket changes nothing; the echo bot answers."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from app.net.rpc import socket_path
from tests.e2e.conftest import ROOT, Listener, Profile, Relay, child_env, pair


@contextmanager
def daemon(profile: Profile) -> Iterator[subprocess.Popen[bytes]]:
    """`anonchat-cli daemon` on the profile, serving once its socket answers."""
    proc = subprocess.Popen(
        profile.argv("daemon"),
        cwd=ROOT,
        env=child_env(profile.passphrase),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        path = socket_path(profile.dir)
        deadline = time.monotonic() + 30
        while not path.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the daemon never served"
            time.sleep(0.05)
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=20)
        assert proc.returncode == 0
        assert not socket_path(profile.dir).exists()


def befriend(make: Callable[..., Profile], url: str, name: str = "Bob") -> tuple[Profile, Profile]:
    """`pair`, then the handshake seen complete on both sides."""
    alice, bob = pair(lambda n, u: make(name if n == "Bob" else n, u), url)
    bob_l = bob.listen()  # Bob online while Alice takes his welcome and answers it
    bob_l.wait_listening()
    alice.run("sync", "--wait", "3")
    deadline = time.monotonic() + 20
    while not bob.run("contacts").data[0]["established"]:  # asked through Bob's listen
        assert time.monotonic() < deadline, "the handshake never completed"
        time.sleep(0.2)
    assert bob_l.stop() == 0
    return alice, bob


def test_commands_run_through_a_daemon_as_they_run_alone(
    relay: Relay, make_profile: Callable[..., Profile]
) -> None:
    alice, bob = befriend(make_profile, relay.url)
    cases = [
        (("contacts",), True),
        (("contacts",), False),
        (("status",), False),
        (("send", "Nobody", "x"), True),
        (("messages", "Alice"), True),
        (("rename", "Nobody", "X"), False),
        (("config", "quota", "0"), True),
    ]
    alone = {case: bob.run(*case[0], json_out=case[1], expect=None) for case in cases}
    assert [r.rc for r in alone.values()] == [0, 0, 0, 1, 0, 1, 1]
    alice_l = alice.listen()
    alice_l.wait_listening()
    with daemon(bob):
        # Through the daemon, with no passphrase at all: the same output and exit codes.
        for (args, json_out), before in alone.items():
            now = bob.run(*args, json_out=json_out, passphrase="", expect=None)
            assert (now.rc, now.out, now.err) == (before.rc, before.out, before.err), args
        sent = bob.run("send", "Alice", "hi", passphrase="").data
        assert sent["status"] == "delivered"
        alice_l.wait_for(lambda ev: any(e.get("body") == "hi" for e in ev))
        # `listen` attached to the daemon prints the same event stream.
        bob_l = Listener(bob)
        bob_l.wait_listening()
        assert alice.run("send", "Bob", "hello back").data["status"] == "delivered"
        bob_l.wait_for(lambda ev: any(e.get("body") == "hello back" for e in ev))
        (event,) = [e for e in bob_l.of("message") if e["body"] == "hello back"]
        assert set(event) == {
            "event",
            "id",
            "contact",
            "direction",
            "msg_id",
            "seq",
            "body",
            "sent_at",
            "received_at",
            "status",
            "read",
            "kind",
            "reply_to",
            "edited",
            "deleted",
            "reactions",
            "timer",
            "expires_at",
            "file",
            "author",
            "author_key",
            "group",
        }
        assert bob_l.stop() == 0
        # Garbage, an oversize line and unknown methods on the socket change nothing.
        with socket.socket(socket.AF_UNIX) as raw:
            raw.connect(str(socket_path(bob.dir)))
            raw.sendall(b'not json\n{"jsonrpc": "2.0", "id": 1, "method": "init"}\n')
            lines = raw.makefile("rb")
            replies = [json.loads(lines.readline()) for _ in range(2)]
        assert sorted(r["error"]["code"] for r in replies) == [-32700, -32601]
        with socket.socket(socket.AF_UNIX) as raw:
            raw.connect(str(socket_path(bob.dir)))
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                raw.sendall(b"x" * (2 << 20) + b"\n")  # the holder hangs up on it
        assert bob.run("contacts", passphrase="").data[0]["name"] == "Alice"
    assert alice_l.stop() == 0
    # Stopped: commands open the profile themselves again (and need the passphrase).
    assert bob.run("contacts", passphrase="", expect=1).err.startswith("anonchat-cli: ")
    assert [m["body"] for m in bob.messages("Alice")] == ["hi", "hello back"]


def test_a_second_holder_and_a_command_while_listen_holds(
    relay: Relay, make_profile: Callable[..., Profile]
) -> None:
    bob = make_profile("Bob", relay.url)
    bob_l = bob.listen()
    bob_l.wait_listening()
    # The first complaint: `send` while `listen` runs no longer says "open elsewhere".
    assert bob.run("status", passphrase="").data["name"] == "Bob"
    refused = bob.run("daemon", expect=1)
    assert "open in another AnonChat process" in refused.err
    assert bob_l.stop() == 0


def test_the_echo_bot_answers_every_message(
    relay: Relay, make_profile: Callable[..., Profile]
) -> None:
    alice, bot = befriend(make_profile, relay.url, "Bot")
    with daemon(bot):
        echo = subprocess.Popen(
            [sys.executable, str(ROOT / "examples" / "echo_bot.py"), "--profile", str(bot.dir)],
            cwd=ROOT,
            env=child_env(""),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            alice_l = alice.listen()
            alice_l.wait_listening()
            time.sleep(1)  # the bot's listen call is under way
            for text in ("ping", "pong"):
                alice.run("send", "Bot", text, "--wait", "0")
            alice_l.wait_for(
                lambda ev: {e.get("body") for e in ev} >= {"echo: ping", "echo: pong"}, 60
            )
            assert alice_l.stop() == 0
        finally:
            echo.terminate()
            assert echo.wait(timeout=20) == 0, echo.communicate()
    assert Path(socket_path(bot.dir)).exists() is False
