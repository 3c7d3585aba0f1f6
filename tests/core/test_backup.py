"""Backups in the engine (app/core/backup.py) on real SQLCipher profiles: a restored profile
opens with its own passphrase, has a card and comes back as the backup had it, settled; a
refused restore leaves nothing; a backup runs beside the engine's own work; the schedule
makes its backups when due, keeps the newest N of its own, says when one fails, and a
scheduled backup killed midway (SIGKILL) leaves the previous one readable."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from app.core.backup import (
    DEFAULT_KEEP,
    RETRY_AFTER_MS,
    BackupEvery,
    Backups,
    restore_profile,
    scheduled_name,
)
from app.core.context import Context
from app.core.engine import Engine
from app.core.errors import UserError, WrongPassphrase
from app.core.events import BackupFinished, Event
from app.core.profile import create_profile, open_profile, profile_paths
from app.crypto.card import Card
from app.crypto.passphrase import INSECURE_FAST_PARAMS
from app.crypto.primitives import x25519_from_rng, x25519_public
from app.domain.contacts import ContactState
from app.domain.messages import Status
from tests.core.engines import PASS, RELAY, befriend, carry, make

FAST = INSECURE_FAST_PARAMS
BPASS = "backup passphrase"
NEW = "the new computer's passphrase"
ROOT = Path(__file__).resolve().parents[2]
DAY = 24 * 3600 * 1000


async def backed_up_alice(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """Alice with Bob (who gave her a rejoin prekey), Carol (who did not), a request from
    Mallory, a message still queued and one delivered: backed up, then closed."""
    alice = await make(tmp_path / "alice", "Alice")
    bob = await make(tmp_path / "bob", "Bob")
    carol = await make(tmp_path / "carol", "Carol")
    mallory = await make(tmp_path / "mallory", "Mallory")
    try:
        to_bob, _ = await befriend(alice, bob)
        to_carol, _ = await befriend(alice, carol)
        await mallory.add_contact(await alice.card())
        await carry(mallory, alice)
        (request,) = await alice.requests()
        sent = await alice.send(to_bob.id, "written before the backup")
        await alice.store.run(
            lambda r: r.conn.execute(
                "UPDATE contacts SET rejoin_theirs = ?, rejoin_ours = ? WHERE id = ?",
                (x25519_public(x25519_from_rng(os.urandom)), bytes([1]) * 32, to_bob.id),
            )
        )
        seen: list[tuple[int, int, bool]] = []
        main = threading.current_thread()
        file = tmp_path / "alice.backup"
        written = await alice.backup(
            file,
            BPASS,
            progress=lambda d, t: seen.append((d, t, threading.current_thread() is main)),
        )
        assert written.messages == 1 + request.messages
        assert seen
        assert seen[-1][0] == seen[-1][1] == max(d for d, _, _ in seen)
        assert all(on_loop for _, _, on_loop in seen)
        facts = {
            "bob": to_bob.id,
            "carol": to_carol.id,
            "request": request.request.id,
            "sent": sent.id,
            "identity": alice.identity.public.to_bytes(),
            "card": Card.parse(await alice.card()),
        }
    finally:
        for engine in (alice, bob, carol, mallory):
            await engine.close()
    return file, facts


def test_a_restored_profile_opens_with_its_own_passphrase_and_has_a_card(
    tmp_path: Path,
) -> None:
    async def body() -> None:
        file, facts = await backed_up_alice(tmp_path)
        target = profile_paths(str(tmp_path / "restored"))
        cut_short = tmp_path / ".restored.restoring-0badf00d"  # a restore killed before
        (cut_short / "files").mkdir(parents=True)
        (cut_short / "store.db").write_bytes(os.urandom(4096))
        got = await restore_profile(target, file, BPASS, NEW, params=FAST)
        assert (got.contacts, got.messages, got.groups) == (2, 1, 0)
        assert (got.requests_dropped, got.not_reconnected) == (1, 1)
        assert not [n for n in os.listdir(tmp_path) if ".restoring-" in n]
        with pytest.raises(WrongPassphrase):
            await open_profile(target, PASS)
        opened = await open_profile(target, NEW)
        due = await opened.store.read(
            lambda r: r.conn.execute(
                "SELECT id, rejoin_due, rejoin_ours FROM contacts ORDER BY id"
            ).fetchall()
        )
        assert due == [(facts["bob"], 1, None), (facts["carol"], 0, None)]
        engine = await Engine.open(opened)
        try:
            assert engine.identity.public.to_bytes() == facts["identity"]
            card = Card.parse(await engine.card())
            assert card.identity == facts["card"].identity
            assert card.mailbox != facts["card"].mailbox  # a fresh one-time code
            people = {s.contact.display_name: s.contact for s in await engine.summaries()}
            assert sorted(people) == ["Bob", "Carol"]
            assert await engine.requests() == []
            (message,) = await engine.messages(facts["bob"], 10)
            assert (message.body, message.status) == ("written before the backup", Status.FAILED)
            assert people["Bob"].state is ContactState.CONTACT
        finally:
            await engine.close()

    asyncio.run(body())


@pytest.mark.parametrize("damage", ["flip", "cut", "passphrase", "not a backup", "exists"])
def test_a_refused_restore_leaves_nothing(tmp_path: Path, damage: str) -> None:
    async def body() -> None:
        alice = await make(tmp_path / "alice", "Alice")
        bob = await make(tmp_path / "bob", "Bob")
        file = tmp_path / "alice.backup"
        try:
            to_bob = await alice.add_contact(await bob.card())
            await alice.send_file(to_bob.id, os.urandom(200_000), name="x.bin")
            await alice.backup(file, BPASS)
        finally:
            await alice.close()
            await bob.close()
        data = bytearray(file.read_bytes())
        if damage == "flip":
            data[len(data) // 2] ^= 0x40
        elif damage == "cut":
            del data[len(data) - 1000 :]
        elif damage == "not a backup":
            data = bytearray(b"just some text\n")
        file.write_bytes(bytes(data))
        target = tmp_path / "restored"
        if damage == "exists":
            target.mkdir()
        before = sorted(os.listdir(tmp_path))
        with pytest.raises(UserError) as caught:
            await restore_profile(
                profile_paths(str(target)),
                file,
                "not the passphrase" if damage == "passphrase" else BPASS,
                NEW,
                params=FAST,
            )
        words = {
            "flip": "damaged or was altered",
            "cut": "truncated",
            "passphrase": "wrong backup passphrase",
            "not a backup": "not an AnonChat backup",
            "exists": "already exists",
        }[damage]
        assert words in str(caught.value)
        assert sorted(os.listdir(tmp_path)) == before

    asyncio.run(body())


def test_a_backup_runs_beside_the_engine_s_own_work(tmp_path: Path) -> None:
    async def body() -> None:
        alice = await make(tmp_path / "alice", "Alice")
        bob = await make(tmp_path / "bob", "Bob")
        try:
            to_bob, _ = await befriend(alice, bob)
            await alice.send_file(to_bob.id, os.urandom(24 * 1024 * 1024), name="big.bin")
            running = asyncio.ensure_future(alice.backup(tmp_path / "a.backup", BPASS))
            sent = 0
            while not running.done():
                await alice.send(to_bob.id, f"meanwhile {sent}")
                sent += 1
            written = await running
            assert sent >= 1
            assert written.files == 1
            assert written.size > 24 * 1024 * 1024
            with pytest.raises(UserError, match="at least 8"):
                await alice.backup(tmp_path / "b.backup", "short")
            with pytest.raises(UserError, match="is a folder"):
                await alice.backup(tmp_path, BPASS)
        finally:
            await alice.close()
            await bob.close()

    asyncio.run(body())


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000_000

    def __call__(self) -> int:
        return self.now


async def schedule_of(tmp_path: Path, clock: Clock, events: list[Event]) -> tuple[Backups, Any]:
    opened = await create_profile(
        profile_paths(str(tmp_path / "alice")), PASS, "Alice", RELAY, FAST
    )
    ctx = Context(opened.store, opened.identity, clock, events.append, lambda: None)
    return Backups(ctx, FAST), opened


def test_the_schedule_keeps_the_newest_n_of_its_own(tmp_path: Path) -> None:
    async def body() -> None:
        clock, events = Clock(), []
        backups, opened = await schedule_of(tmp_path, clock, events)
        folder = tmp_path / "stick"
        folder.mkdir()
        (folder / "notes.txt").write_text("mine")
        (folder / "anonchat-bob-20200101-000000.backup").write_text("another profile's")
        try:
            assert (await backups.schedule()).every is BackupEvery.OFF
            assert (await backups.schedule()).keep == DEFAULT_KEEP
            for bad, words in (
                ({"every": "daily"}, "need a folder"),
                ({"every": "daily", "folder": folder}, "need a backup passphrase"),
                ({"passphrase": "short"}, "at least 8"),
                ({"keep": 0}, "keep 1 to"),
                ({"folder": tmp_path / "nowhere"}, "no folder"),
                ({"every": "hourly"}, "off, daily or weekly"),
            ):
                with pytest.raises(UserError, match=words):
                    await backups.set_schedule(**bad)
            assert await backups.run_due() is None  # off
            sched = await backups.set_schedule(
                folder=folder, every="daily", keep=3, passphrase=BPASS
            )
            assert (sched.every, sched.keep, sched.has_passphrase) == (BackupEvery.DAILY, 3, True)
            assert sched.last_backup_at is None
            made = []
            for day in range(5):
                first = await backups.run_due()
                assert first is not None
                made.append(first.path.name)
                clock.now += 3600 * 1000
                assert await backups.run_due() is None  # not due again within the day
                clock.now += DAY
                del day
            assert made[0] == scheduled_name(opened.store.paths, 1_700_000_000_000)
            left = sorted(p.name for p in folder.iterdir())
            assert left == sorted([*made[-3:], "notes.txt", "anonchat-bob-20200101-000000.backup"])
            assert [e.path for e in events if isinstance(e, BackupFinished)] == [
                str(folder / n) for n in made
            ]
            sched = await backups.schedule()
            assert sched.last_backup_at == clock.now - DAY - 3600 * 1000
            assert sched.last_error == ""
            # The folder goes (a stick pulled out): said once, tried again later.
            for name in os.listdir(folder):
                (folder / name).unlink()
            folder.rmdir()
            events.clear()
            assert await backups.run_due() is None
            (failed,) = events
            assert isinstance(failed, BackupFinished)
            assert failed.path == ""
            assert "cannot write the backup" in failed.error
            assert (await backups.schedule()).last_error == failed.error
            folder.mkdir()
            clock.now += RETRY_AFTER_MS - 1
            assert await backups.run_due() is None
            assert len(events) == 1
            clock.now += 1
            assert await backups.run_due() is not None
            assert (await backups.schedule()).last_error == ""
            newest = sorted(folder.iterdir())[-1]
        finally:
            await opened.store.close()
            opened.lock.release()
        got = await restore_profile(
            profile_paths(str(tmp_path / "restored")), newest, BPASS, NEW, params=FAST
        )
        assert got.contacts == 0
        again = await open_profile(profile_paths(str(tmp_path / "restored")), NEW)
        try:
            kept = await again.store.read(lambda r: r.settings.all())
            assert not [k for k in kept if k.startswith("backup.")]  # the schedule stays behind
        finally:
            await again.store.close()
            again.lock.release()

    asyncio.run(body())


def test_the_engine_makes_a_due_backup_when_it_starts(tmp_path: Path) -> None:
    async def body() -> None:
        paths = profile_paths(str(tmp_path / "alice"))
        opened = await create_profile(paths, PASS, "Alice", RELAY, FAST)
        engine = await Engine.open(opened, backup_params=FAST)
        events: list[Event] = []
        engine.subscribe(events.append)
        folder = tmp_path / "stick"
        folder.mkdir()
        try:
            await engine.set_backup_schedule(folder=folder, every="weekly", passphrase=BPASS)
            await engine.start()
            deadline = time.monotonic() + 20
            while not any(isinstance(e, BackupFinished) for e in events):
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)
            (done,) = [e for e in events if isinstance(e, BackupFinished)]
            assert done.error == ""
            assert Path(done.path).parent == folder
            assert (await engine.backup_schedule()).last_backup_at == done.at
        finally:
            await engine.close()

    asyncio.run(body())


KILLED = """
import asyncio, sys
from app.core.engine import Engine
from app.core.profile import open_profile, profile_paths
from app.crypto.passphrase import INSECURE_FAST_PARAMS

async def main():
    opened = await open_profile(profile_paths(sys.argv[1]), sys.argv[2])
    engine = await Engine.open(opened, backup_params=INSECURE_FAST_PARAMS)
    await engine.start()
    print("started", flush=True)
    await asyncio.sleep(120)

asyncio.run(main())
"""


def test_a_scheduled_backup_killed_midway_leaves_the_previous_one_readable(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "stick"
    folder.mkdir()
    alice_dir = tmp_path / "alice"

    async def prepare() -> Path:
        alice = await make(alice_dir, "Alice")
        bob = await make(tmp_path / "bob", "Bob")
        try:
            to_bob, _ = await befriend(alice, bob)
            await alice.send(to_bob.id, "kept in every backup")
            await alice.send_file(to_bob.id, os.urandom(96 * 1024 * 1024), name="big.bin")
            await alice.set_backup_schedule(folder=folder, every="daily", keep=2, passphrase=BPASS)
            first = await alice.backup(folder / scheduled_name(alice.store.paths, 0), BPASS)
        finally:
            await alice.close()
            await bob.close()
        return first.path

    previous = asyncio.run(prepare())
    before = previous.read_bytes()
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED, str(alice_dir), PASS],
        cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        partial: list[Path] = []
        while not partial:
            assert child.poll() is None, child.stderr.read() if child.stderr else ""
            assert time.monotonic() < deadline, "the scheduled backup never started"
            partial = [
                p
                for p in folder.iterdir()
                if ".tmp-" in p.name and p.stat().st_size > 16 * 1024 * 1024
            ]
            time.sleep(0.001)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=10)
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted([previous.name, partial[0].name]), "killed before the rename"
    assert partial[0].stat().st_size < len(before)
    assert previous.read_bytes() == before

    async def afterwards() -> None:
        got = await restore_profile(
            profile_paths(str(tmp_path / "restored")), previous, BPASS, NEW, params=FAST
        )
        assert (got.messages, got.files) == (2, 1)
        with pytest.raises(UserError, match="truncated"):
            await restore_profile(
                profile_paths(str(tmp_path / "from-partial")), partial[0], BPASS, NEW, params=FAST
            )
        # The next scheduled backup clears what the killed one left.
        engine = await Engine.open(
            await open_profile(profile_paths(str(alice_dir)), PASS), backup_params=FAST
        )
        events: list[Event] = []
        engine.subscribe(events.append)
        try:
            await engine.start()
            deadline = time.monotonic() + 60
            while not any(isinstance(e, BackupFinished) for e in events):
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
        finally:
            await engine.close()
        left = sorted(p.name for p in folder.iterdir())
        assert len(left) == 2
        assert previous.name in left
        assert not [n for n in left if ".tmp-" in n]

    asyncio.run(afterwards())
