"""`anonchat-cli backup` and `restore` as real processes (the real Argon2id cost): a backup
with a flipped byte, a cut one and a wrong passphrase are refused with exit 1 and leave no
profile; a backup through the process holding the profile takes its passphrase only from a
file. A backup restored on a second profile, its conversation and its contacts talking to it
again: test_cli_restore_talk.py."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.conftest import PASS, ROOT, Profile, Relay, Result, child_env

pytestmark = pytest.mark.timeout(240)

BPASS = "a backup passphrase of some length"
NEW = "the new computer's passphrase"


def cli(profile: Path, *args: str, passphrase: str = PASS, backup: str | None = BPASS) -> Result:
    env = child_env(passphrase)
    env.pop("ANONCHAT_BACKUP_PASSPHRASE", None)
    if backup is not None:
        env["ANONCHAT_BACKUP_PASSPHRASE"] = backup
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "--profile", str(profile), "--json", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=120,
    )
    return Result(done.returncode, done.stdout.decode(), done.stderr.decode())


def test_a_bad_backup_is_refused_and_creates_nothing(
    relay: Relay, make_profile: Callable[..., Profile], tmp_path: Path
) -> None:
    alice = make_profile("Alice", relay.url)
    good = tmp_path / "alice.backup"
    assert cli(alice.dir, "backup", str(good)).rc == 0
    for damage, words in (
        ("flipped byte", "damaged or was altered"),
        ("truncated", "truncated"),
        ("wrong passphrase", "wrong backup passphrase"),
    ):
        data = bytearray(good.read_bytes())
        if damage == "flipped byte":
            data[len(data) * 2 // 3] ^= 0x01
        elif damage == "truncated":
            del data[len(data) - 17 :]
        file = tmp_path / f"{damage}.backup"
        file.write_bytes(bytes(data))
        before = sorted(os.listdir(tmp_path))
        target = tmp_path / "restored"
        word = "not the backup passphrase" if damage == "wrong passphrase" else BPASS
        got = cli(target, "restore", str(file), passphrase=NEW, backup=word)
        assert got.rc == 1, damage
        assert got.out == ""
        assert words in got.err, damage
        assert "Traceback" not in got.err
        assert sorted(os.listdir(tmp_path)) == before
        assert not target.exists()


def test_a_backup_through_the_holder_reads_its_passphrase_from_a_file(
    relay: Relay, make_profile: Callable[..., Profile], tmp_path: Path
) -> None:
    alice = make_profile("Alice", relay.url)
    holder = alice.listen()
    holder.wait_listening()
    file = tmp_path / "through.backup"
    refused = cli(alice.dir, "backup", str(file))
    assert refused.rc == 1
    assert "--backup-passphrase-file" in refused.err
    secret = tmp_path / "backup-passphrase"
    secret.write_text(BPASS + "\n")
    made = cli(
        alice.dir,
        "backup",
        str(file),
        "--no-files",
        "--backup-passphrase-file",
        str(secret),
        backup=None,
    )
    assert made.rc == 0, made
    assert made.data["files_included"] is False
    assert holder.stop() == 0
    holder.assert_clean()
    got = cli(
        tmp_path / "restored",
        "restore",
        str(file),
        "--backup-passphrase-file",
        str(secret),
        passphrase=NEW,
        backup=None,
    )
    assert got.rc == 0, got
