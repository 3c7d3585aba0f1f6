"""Backup and restore of a profile with 1,000,000 messages, against SQLCipher's own
`sqlcipher_export` of the same database (a copy of every page, re-encrypted, no Argon2id).

Rounds alternate export, backup and restore, so the machine's moods hit all three alike; the
figures are medians. The backup runs in a process of its own that opens the profile, resets
its peak resident size (/proc/self/clear_refs) and reports how far the backup raised it.
Backups use the default Argon2id cost, as a user's do: its 256 MiB are part of that peak,
whatever the profile's size, so the same is measured for a profile with no messages too.
BENCH_SCALE (default 1.0) shrinks the profile for a smoke run. The last stdout line is one
JSON object.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.core.backup import restore_profile  # noqa: E402
from app.core.engine import Engine  # noqa: E402
from app.core.profile import create_profile, open_profile, profile_paths  # noqa: E402
from app.crypto.passphrase import DEFAULT_PARAMS, INSECURE_FAST_PARAMS  # noqa: E402
from app.store import vault  # noqa: E402
from app.store.repos import Repos  # noqa: E402
from bench.store import CONTACTS, bulk, seed_contacts  # noqa: E402

SCALE = float(os.environ.get("BENCH_SCALE", "1.0"))
MESSAGES = int(1_000_000 * SCALE)
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
PASS = "bench profile passphrase"
BACKUP_PASS = "bench backup passphrase"

CHILD = r"""
import asyncio, json, sys, time
sys.path.insert(0, sys.argv[1])
from app.core.engine import Engine
from app.core.profile import open_profile, profile_paths

def kib(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(field)

async def main():
    engine = await Engine.open(await open_profile(profile_paths(sys.argv[2]), sys.argv[3]))
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # the peak resident size starts again from here
        before = kib("VmRSS")
        t = time.perf_counter()
        await engine.backup(sys.argv[4], sys.argv[5])
        took = time.perf_counter() - t
        print(json.dumps({"s": took, "growth_kib": kib("VmHWM") - before, "rss_kib": before}))
    finally:
        await engine.close()

asyncio.run(main())
"""


async def build(root: Path, messages: int, name: str = "profile") -> Path:
    """A profile with `messages` messages over CONTACTS contacts, checkpointed and closed."""
    paths = profile_paths(str(root / name))
    opened = await create_profile(paths, PASS, "Bench", "ws://127.0.0.1:9", INSECURE_FAST_PARAMS)
    engine = await Engine.open(opened)
    await engine.close()
    unlocked = vault.unlock(paths, PASS)
    try:
        seed_contacts(Repos(unlocked.conn))
        if messages:
            bulk(unlocked.conn, 0, messages)
        unlocked.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    finally:
        unlocked.conn.close()
    return paths.directory


def export(profile: Path, target: Path) -> float:
    """sqlcipher_export of the profile's database into a new database under a fresh key."""
    unlocked = vault.unlock(profile_paths(str(profile)), PASS)
    try:
        t = time.perf_counter()
        key = os.urandom(32).hex()
        unlocked.conn.execute(f"ATTACH DATABASE '{target}' AS copy KEY \"x'{key}'\"")
        unlocked.conn.execute("SELECT sqlcipher_export('copy')").fetchall()
        unlocked.conn.execute("DETACH DATABASE copy")
        return time.perf_counter() - t
    finally:
        unlocked.conn.close()


def backup(profile: Path, target: Path) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(ROOT), str(profile), PASS, str(target), BACKUP_PASS],
        capture_output=True,
        check=True,
        timeout=3600,
    )
    figures: dict[str, float] = json.loads(done.stdout.decode().strip().splitlines()[-1])
    return figures


async def restore(source: Path, target: Path) -> float:
    t = time.perf_counter()
    restored = await restore_profile(
        profile_paths(str(target)), source, BACKUP_PASS, PASS, params=DEFAULT_PARAMS
    )
    took = time.perf_counter() - t
    assert restored.messages == MESSAGES, restored
    engine = await Engine.open(await open_profile(profile_paths(str(target)), PASS))
    try:
        count = await engine.store.read(
            lambda r: r.conn.execute("SELECT count(*) FROM messages").fetchone()[0]
        )
        assert count == MESSAGES, count
    finally:
        await engine.close()
    return took


def main() -> None:
    root = Path(tempfile.mkdtemp(prefix="backup-bench-"))
    try:
        t = time.perf_counter()
        profile = asyncio.run(build(root, MESSAGES))
        empty = asyncio.run(build(root, 0, "empty"))
        db_mib = (profile / "store.db").stat().st_size / 2**20
        print(
            f"built {MESSAGES} messages over {CONTACTS} contacts in "
            f"{time.perf_counter() - t:.0f} s ({db_mib:.0f} MiB)",
            flush=True,
        )
        exports, backups, restores, growth, sizes, base = [], [], [], [], [], []
        for n in range(ROUNDS):
            exported = root / f"export-{n}.db"
            exports.append(export(profile, exported))
            exported.unlink()
            file = root / f"backup-{n}.backup"
            base.append(backup(empty, file)["growth_kib"] / 1024)
            file.unlink()
            figures = backup(profile, file)
            backups.append(figures["s"])
            growth.append(figures["growth_kib"] / 1024)
            sizes.append(file.stat().st_size / 2**20)
            restores.append(asyncio.run(restore(file, root / f"restored-{n}")))
            shutil.rmtree(root / f"restored-{n}")
            file.unlink()
            print(
                f"round {n + 1}: export {exports[-1]:.2f} s, backup {backups[-1]:.2f} s "
                f"(+{growth[-1]:.1f} MiB resident, +{base[-1]:.1f} MiB for an empty profile, "
                f"file {sizes[-1]:.0f} MiB), "
                f"restore {restores[-1]:.2f} s",
                flush=True,
            )
        export_s = statistics.median(exports)
        backup_s = statistics.median(backups)
        restore_s = statistics.median(restores)
        print(
            json.dumps(
                {
                    "backup_vs_export": round(backup_s / export_s, 3),
                    "restore_vs_export": round(restore_s / export_s, 3),
                    "backup_rss_growth_mb": round(max(growth), 1),
                    "backup_rss_growth_empty_profile_mb": round(max(base), 1),
                    "backup_rss_growth_over_empty_mb": round(max(growth) - max(base), 1),
                    "backup_s": round(backup_s, 2),
                    "restore_s": round(restore_s, 2),
                    "export_s": round(export_s, 2),
                    "backup_file_mib": round(statistics.median(sizes), 1),
                    "database_mib": round(db_mib, 1),
                    "messages": MESSAGES,
                    "rounds": ROUNDS,
                }
            )
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
