"""A profile restored from a backup on another computer talks with an existing contact as the
same contact (no request, verified mark kept), and the old computer's next message is
refused: real CLI processes on a real relay on 127.0.0.1."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from app.core.profile import profile_paths
from app.store import vault
from tests.e2e.conftest import (
    ROOT,
    Profile,
    Relay,
    Result,
    cheap_unlock,
    child_env,
    incoming_bodies,
    pair,
)

pytestmark = pytest.mark.timeout(240)

BACKUP_PASS = "a backup passphrase of its own"


def run_with(profile: Profile, *args: str, expect: int = 0, **env: str) -> Result:
    """The CLI against `profile` with more environment (the backup passphrase)."""
    done = subprocess.run(
        profile.argv(*args),
        cwd=ROOT,
        env=child_env(profile.passphrase) | env,
        capture_output=True,
        timeout=120,
    )
    result = Result(done.returncode, done.stdout.decode(), done.stderr.decode())
    assert result.rc == expect, (args, result)
    return result


def prekeys_held(profile: Profile) -> int:
    """How many contacts of this (closed) profile hold a rejoin prekey from the other side."""
    opened = vault.unlock(profile_paths(str(profile.dir)), profile.passphrase)
    try:
        row = opened.conn.execute(
            "SELECT count(*) FROM contacts WHERE rejoin_theirs IS NOT NULL"
        ).fetchone()
        return int(row[0])
    finally:
        opened.conn.close()


def exchange_prekeys(alice: Profile, bob: Profile) -> None:
    """Both listen until each holds the other's prekey (given once their channel is live)."""
    listeners = [alice.listen(), bob.listen()]
    try:
        for listener in listeners:
            listener.wait_listening()
        deadline = time.monotonic() + 60
        while prekeys_held(alice) < 1 or prekeys_held(bob) < 1:
            assert time.monotonic() < deadline, "the prekeys were never exchanged"
            time.sleep(0.2)
    finally:
        for listener in listeners:
            assert listener.stop() == 0


def test_a_restored_profile_talks_as_the_same_contact_and_the_old_one_is_refused(
    relay: Relay, make_profile: Callable[..., Profile], tmp_path: Path
) -> None:
    alice, bob = pair(make_profile, relay.url)
    listener = bob.listen()
    listener.wait_listening()
    alice.run("send", "Bob", "before the backup", "--wait", "20")
    assert listener.stop() == 0
    exchange_prekeys(alice, bob)
    number = alice.run("fingerprint", "Bob").data["safety_number"]
    alice.run("verify", "Bob", number)

    bob.messages("Alice")  # marks the conversation read
    conversation = bob.messages("Alice")
    contacts = bob.contacts()

    backup = tmp_path / "bob.anonchat-backup"
    made = run_with(bob, "backup", str(backup), ANONCHAT_BACKUP_PASSPHRASE=BACKUP_PASS).data
    assert made["path"] == str(backup)
    assert made["bytes"] == backup.stat().st_size
    assert made["messages"] == len(conversation) == 1
    for known in (b"before the backup", b"Alice"):
        assert known not in backup.read_bytes()
    new_laptop = Profile(tmp_path / "bob-restored", "Bob")
    got = run_with(new_laptop, "restore", str(backup), ANONCHAT_BACKUP_PASSPHRASE=BACKUP_PASS)
    assert (got.data["contacts"], got.data["messages"]) == (1, 1)
    assert got.data["profile"] == str(new_laptop.dir)
    again = run_with(
        new_laptop, "restore", str(backup), expect=1, ANONCHAT_BACKUP_PASSPHRASE=BACKUP_PASS
    )
    assert "already exists" in again.err
    cheap_unlock(new_laptop.dir, new_laptop.passphrase)  # as every test profile here
    assert new_laptop.messages("Alice") == conversation
    assert [c["verified"] for c in new_laptop.contacts()] == [c["verified"] for c in contacts]
    assert [c["name"] for c in new_laptop.contacts()] == ["Alice"]

    # The restored profile reconnects by itself; Alice sees the same, verified contact.
    alice_l = alice.listen()
    alice_l.wait_listening()
    sent = new_laptop.run("send", "Alice", "from the new laptop", "--wait", "30").data
    assert sent["status"] in ("delivered", "read")
    alice_l.wait_for(lambda ev: "from the new laptop" in [e.get("body") for e in ev])
    assert not alice_l.of("request")
    assert alice_l.stop() == 0
    (contact,) = alice.contacts()
    assert contact["name"] == "Bob"
    assert contact["verified"] is True
    assert contact["state"] == "contact"
    assert alice.run("requests").data == []

    # Alice answers, and the restored profile has it.
    new_l = new_laptop.listen()
    new_l.wait_listening()
    alice.run("send", "Bob", "welcome back", "--wait", "30")
    new_l.wait_for(lambda ev: "welcome back" in [e.get("body") for e in ev])
    assert new_l.stop() == 0

    # The old computer's session is over: what it sends never reaches Alice.
    alice_l = alice.listen()
    alice_l.wait_listening()
    old = bob.run("send", "Alice", "from the old laptop", "--wait", "2", expect=3)
    assert "not reached" in old.err
    new_laptop.run("send", "Alice", "after the old one", "--wait", "30")
    alice_l.wait_for(lambda ev: "after the old one" in [e.get("body") for e in ev])
    assert alice_l.stop() == 0
    bodies = incoming_bodies(alice, "Bob")
    assert "from the old laptop" not in bodies
    assert bodies[-2:] == ["from the new laptop", "after the old one"]
