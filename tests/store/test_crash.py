"""Crash safety and secrecy on disk, with real child processes killed by SIGKILL."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from app.crypto.passphrase import decode_header
from app.store import connection, vault
from app.store.errors import WrongPassphrase
from app.store.paths import ProfilePaths
from app.store.repos import Repos

from .conftest import FAST, PASS

ROOT = Path(__file__).resolve().parents[2]
CHILD = "tests.store.crash_child"


def spawn(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", CHILD, *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def run_and_kill(args: list[str], delay: float) -> list[str]:
    """Start the child, SIGKILL it after delay seconds, return every line it printed."""
    child = spawn(*args)
    lines: list[str] = []
    reader = threading.Thread(
        target=lambda: lines.extend(line.strip() for line in child.stdout), daemon=True
    )  # type: ignore[union-attr]
    reader.start()
    time.sleep(delay)
    child.send_signal(signal.SIGKILL)
    child.wait()
    reader.join(5)
    return lines


def check_writer_kills(profile: ProfilePaths, kills: int, seed: int) -> None:
    rng = random.Random(seed)
    opened = vault.create(profile, PASS, FAST)
    Repos(opened.conn).contacts.add("peer", b"K", 1)
    opened.conn.close()
    committed: set[int] = set()
    start = 0
    for _ in range(kills):
        lines = run_and_kill(
            ["write", str(profile.directory), PASS, str(start)], rng.uniform(0.3, 0.9)
        )
        committed |= {int(x.split()[1]) for x in lines if x.startswith("C ")}
        opened = vault.unlock(profile, PASS)
        conn = opened.conn
        assert connection.integrity_problems(conn) == []
        seqs = {r[0] for r in conn.execute("SELECT sender_seq FROM messages")}
        receipts = {int(bytes(r[0])[1:]) for r in conn.execute("SELECT ciphertext FROM outbox")}
        assert committed <= seqs, "a reported commit is missing"
        assert seqs == receipts, "a unit was half written"
        session = conn.execute("SELECT state FROM sessions WHERE contact_id = 1").fetchone()
        if seqs:
            assert bytes(session[0]) == b"s%d" % max(seqs)
        unread = conn.execute("SELECT unread FROM unread_counts WHERE contact_id = 1").fetchone()
        assert (unread[0] if unread else 0) == len(seqs)
        conn.close()
        start = max(seqs, default=-1) + 1
    assert len(committed) > kills  # the children really did write


def test_sigkill_writer_10(profile: ProfilePaths) -> None:
    check_writer_kills(profile, 10, seed=10)


@pytest.mark.soak
def test_sigkill_writer_50(profile: ProfilePaths) -> None:
    check_writer_kills(profile, 50, seed=50)


def make_big(profile: ProfilePaths) -> None:
    opened = vault.create(profile, PASS, FAST)
    r = Repos(opened.conn)
    r.contacts.add("peer", b"K", 1)
    r.conn.execute("BEGIN")
    for n in range(4000):
        r.conn.execute(
            "INSERT INTO messages (contact_id, direction, msg_id, sender_seq, body, sent_at, "
            "status) "
            "VALUES (1, 0, ?, ?, ?, 1, 'delivered')",
            (b"%d" % n, n, f"history {n} " + "y" * 600),
        )
    r.conn.execute("COMMIT")
    opened.conn.close()


def open_either(profile: ProfilePaths, old: str, new: str) -> str:
    """Which passphrase opens the profile; the data must be intact either way."""
    for which in (old, new):
        try:
            opened = vault.unlock(profile, which)
        except WrongPassphrase:
            continue
        conn = opened.conn
        assert connection.integrity_problems(conn) == []
        assert conn.execute("SELECT count(*) FROM messages").fetchone()[0] == 4000
        conn.close()
        assert len(decode_header(profile.header.read_bytes()).slots) == 1
        return which
    raise AssertionError("neither passphrase opens the profile")


@pytest.mark.parametrize(
    "step", ["derived", "header-both", "rekeyed", "checkpointed", "header-new"]
)
def test_rekey_killed_at_each_step(profile: ProfilePaths, step: str) -> None:
    make_big(profile)
    child = spawn("rekey", str(profile.directory), PASS, "new pass", step)
    out, _ = child.communicate(timeout=60)
    assert child.returncode == -signal.SIGKILL
    assert out.split()[-1] == step
    expected = PASS if step in ("derived", "header-both") else "new pass"
    assert open_either(profile, PASS, "new pass") == expected


def test_rekey_killed_at_random_moments(profile: ProfilePaths) -> None:
    make_big(profile)
    rng = random.Random(4)
    passes = [PASS]
    for i in range(6):
        new = f"pass {i}"
        run_and_kill(["rekey", str(profile.directory), passes[-1], new], rng.uniform(0.25, 0.8))
        current = open_either(profile, passes[-1], new)
        if current == new:
            passes.append(new)


def test_no_plaintext_anywhere_on_disk(tmp_path: Path) -> None:
    """Known secrets stored, the process killed with the WAL and SHM still live: none of the
    bytes appear in any file it created (profile dir, HOME, TMPDIR)."""
    home, tmp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    tmp.mkdir()
    env = dict(os.environ, HOME=str(home), TMPDIR=str(tmp), SQLITE_TMPDIR=str(tmp))
    profile_dir = tmp_path / "profile"
    child = spawn("hold", str(profile_dir), PASS, env=env)
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "READY"
    child.send_signal(signal.SIGKILL)
    child.wait()
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"store.db", "store.db-wal", "store.db-shm", "store.hdr"} <= names
    secrets = [
        b"BODYSECRET",
        b"the quick brown",
        b"IDENTITYSECRET",
        b"NAMESECRET",
        b"CONTACTSECRET",
        b"PUBKEYSECRET",
        b"MBXIDSECRET",
        b"MBXPRIVSECRET",
        b"SESSIONSECRET",
        b"CIPHERSECRET",
        b"SETTINGSECRET",
        b"VALUESECRET",
        b"MSGID",
        PASS.encode(),
        b"SQLite format",
    ]
    for path in files:
        data = path.read_bytes()
        for secret in secrets:
            assert secret not in data, (path.name, secret)
            assert secret.decode().encode("utf-16-le") not in data
