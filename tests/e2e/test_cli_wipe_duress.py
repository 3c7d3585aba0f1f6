"""`anonchat-cli wipe --yes` and `anonchat-cli duress set|clear` as real processes: a wipe asks
no passphrase, refuses without --yes, leaves no file of the profile and no keyring entry (a
keyring the child process really uses), and stops a daemon holding the profile; the duress
passphrase opens a fresh profile in place of the old one, is a wrong passphrase once
cleared, and may not be the passphrase itself."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

from app.core.profile import profile_paths
from app.store import keystore, vault
from tests.e2e.conftest import PASS, ROOT, Profile, Relay, Result, child_env, pair, snapshot
from tests.e2e.filering import BACKEND
from tests.e2e.test_cli_api import daemon

DURESS = "a duress passphrase"


def cli(profile: Profile, *args: str, passphrase: str = PASS, **env: str) -> Result:
    done = subprocess.run(
        profile.argv(*args),
        cwd=ROOT,
        env={**child_env(passphrase), **env},
        capture_output=True,
        timeout=90,
    )
    return Result(done.returncode, done.stdout.decode(), done.stderr.decode())


def everything_under(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


def test_wipe_asks_for_yes_then_leaves_nothing_not_even_the_keyring_entry(
    tmp_path: Path,
) -> None:
    profiles = tmp_path / "profiles"
    alice = Profile(profiles / "alice", "Alice")
    alice.init("ws://127.0.0.1:9")
    ring = tmp_path / "keyring.json"
    paths = profile_paths(str(alice.dir))
    opened = vault.unlock(paths, PASS)
    opened.conn.close()
    key_entry = f"{keystore.SERVICE}/{keystore.account(paths)}"
    ring.write_text(json.dumps({key_entry: opened.key.hex(), "other/entry": "kept"}))
    files = alice.dir / "files"
    files.mkdir(mode=0o700)
    (files / ("ab" * 16)).write_bytes(b"\x00" * 4096)
    keyring_env = {"PYTHON_KEYRING_BACKEND": BACKEND, "ANONCHAT_TEST_KEYRING": str(ring)}

    before = snapshot(alice.dir)
    refused = cli(alice, "wipe", **keyring_env)
    assert refused.rc == 2, refused
    assert "--yes" in refused.err
    assert snapshot(alice.dir) == before
    assert key_entry in json.loads(ring.read_text())

    done = cli(alice, "wipe", "--yes", passphrase="not the passphrase", **keyring_env)
    assert done.rc == 0, done
    assert done.data == {"profile": str(alice.dir), "wiped": True, "holder": False}
    assert everything_under(profiles) == []
    assert json.loads(ring.read_text()) == {"other/entry": "kept"}

    again = cli(alice, "wipe", "--yes", **keyring_env)  # nothing there: not an error
    assert again.rc == 0, again
    gone = cli(alice, "contacts")
    assert gone.rc == 1
    assert "no profile" in gone.err


def test_wipe_stops_the_daemon_holding_the_profile(tmp_path: Path) -> None:
    profiles = tmp_path / "profiles"
    alice = Profile(profiles / "alice", "Alice")
    alice.init("ws://127.0.0.1:9")
    with daemon(alice) as proc:
        done = cli(alice, "wipe", "--yes", passphrase="")
        assert done.rc == 0, done
        assert done.data["holder"] is True
        proc.wait(timeout=20)  # the daemon wiped, stopped and went by itself
    assert everything_under(profiles) == []


def test_the_duress_passphrase_opens_a_fresh_profile_in_place_of_the_old(
    relay: Relay, make_profile: Callable[..., Profile]
) -> None:
    alice, _bob = pair(make_profile, relay.url)
    assert [c["name"] for c in alice.contacts()] == ["Bob"]

    duress = {"ANONCHAT_DURESS_PASSPHRASE": DURESS}
    assert cli(alice, "duress", "set", **duress).data == {"duress": "set"}
    assert cli(alice, "duress", "clear").data == {"duress": "cleared"}
    cleared = cli(alice, "contacts", passphrase=DURESS)
    assert cleared.rc == 1
    assert "wrong passphrase" in cleared.err
    assert [c["name"] for c in alice.contacts()] == ["Bob"]  # nothing happened

    assert cli(alice, "duress", "set", **duress).rc == 0
    fresh = cli(alice, "contacts", passphrase=DURESS)
    assert fresh.rc == 0, fresh
    assert fresh.data == []
    status = cli(alice, "status", passphrase=DURESS).data
    assert (status["name"], status["relay"], status["contacts"]) == ("Alice", relay.url, 0)
    assert cli(alice, "card", passphrase=DURESS).data["card"].startswith("anonchat:")
    old = cli(alice, "contacts")  # the old passphrase, and Bob with it, are gone
    assert old.rc == 1
    assert "wrong passphrase" in old.err


def test_a_duress_passphrase_equal_to_the_passphrase_is_refused(tmp_path: Path) -> None:
    alice = Profile(tmp_path / "alice", "Alice")
    alice.init("ws://127.0.0.1:9")
    header = (alice.dir / "store.hdr").read_bytes()
    same = cli(alice, "duress", "set", ANONCHAT_DURESS_PASSPHRASE=PASS)
    assert same.rc == 1
    assert "must differ from the passphrase" in same.err
    short = cli(alice, "duress", "set", ANONCHAT_DURESS_PASSPHRASE="short")
    assert short.rc == 1
    assert (alice.dir / "store.hdr").read_bytes() == header
    assert alice.run("contacts").data == []
