"""Benchmark of the desktop app at 1,000 vs 1,000,000 stored messages, offscreen.

For each size, a child process launches the app the way a person does (unlock screen,
passphrase, main window) and reports the time from process start to the unlocked main
window, to the first page of the largest conversation on screen, and its resident memory
then. The 1,000 profile is the baseline measured in the same run; the figures to reach are
1,000,000 within 1.2x of it on time and on memory. Profiles are built once per run in a
temporary directory (bulk inserts through the store's repositories, 50,000 per transaction)
and removed afterwards. Argon2id uses cheap parameters: its cost is the same at both sizes
and is benchmarked in bench/store.py.

The last stdout line is one JSON object. BENCH_SCALE (default 1.0) shrinks the big profile
for a smoke run; BENCH_RUNS (default 3) sets the launches per size (the median is kept).
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
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SCALE = float(os.environ.get("BENCH_SCALE", "1.0"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
SMALL = 1_000
BIG = int(1_000_000 * SCALE)
CHUNK = 50_000
PASSPHRASE = "bench passphrase, not a secret"


async def build(directory: Path, count: int, card: str) -> None:
    from app.core.engine import Engine
    from app.core.profile import create_profile, profile_paths
    from app.crypto.passphrase import INSECURE_FAST_PARAMS
    from app.store.records import Direction, NewMessage, Status

    paths = profile_paths(str(directory))
    opened = await create_profile(
        paths, PASSPHRASE, "Bench", "ws://127.0.0.1:9", INSECURE_FAST_PARAMS
    )
    engine = await Engine.open(opened)
    contact = await engine.add_contact(card)
    base = 1_700_000_000_000
    for start in range(0, count, CHUNK):
        rows = [
            NewMessage(
                contact.id,
                Direction.INCOMING if i % 2 else Direction.OUTGOING,
                i.to_bytes(16, "big"),
                i,
                f"message {i} about the weather, lunch and the plans for {i % 97} people",
                base + i * 1000,
                base + i * 1000,
                Status.READ if i % 2 == 0 else Status.DELIVERED,
                True,
            )
            for i in range(start, min(count, start + CHUNK))
        ]

        await engine.store.run(lambda r, rows=rows: r.messages.insert_many(rows))
    await engine.close()


async def peer_card(directory: Path) -> str:
    from app.core.engine import Engine
    from app.core.profile import create_profile, profile_paths
    from app.crypto.passphrase import INSECURE_FAST_PARAMS

    paths = profile_paths(str(directory))
    engine = await Engine.open(
        await create_profile(paths, PASSPHRASE, "Peer", "ws://127.0.0.1:9", INSECURE_FAST_PARAMS)
    )
    card = await engine.card()
    await engine.close()
    return card


def rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def child(profile: str, started: float) -> int:
    """Launch as the app does, unlock, open the largest conversation; print one JSON line."""
    import qasync
    from PySide6.QtWidgets import QApplication

    from app.core.profile import profile_paths
    from app.ui.launcher import Launcher
    from app.ui.onboarding import UnlockPage
    from app.ui.theme import setup_application

    app = QApplication([])
    setup_application(app)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    result: dict[str, Any] = {}

    async def measure() -> None:
        launcher = Launcher(profile_paths(profile))
        runner = asyncio.ensure_future(launcher.run())
        while not isinstance(launcher.gate, UnlockPage):  # noqa: ASYNC110  polling is the probe
            await asyncio.sleep(0.001)
        page = launcher.gate
        page.passphrase.setText(PASSPHRASE)
        page.unlock.click()
        await launcher.ready.wait()
        window = launcher.window
        assert window is not None
        app.processEvents()
        result["window_s"] = time.time() - started
        largest = max(
            (window.contacts.summary(i) for i in range(window.contacts.rowCount())),
            key=lambda s: s.last.id if s.last else 0,
        )
        window.open_contact(largest.contact)
        while window.panel.model is None or not window.panel.model.rowCount():  # noqa: ASYNC110
            await asyncio.sleep(0.001)
        window.panel.view.viewport().repaint()
        result["first_page_s"] = time.time() - started
        model = window.panel.model
        result["rows"] = model.rowCount()
        result["newest"] = model.message(model.rowCount() - 1).body.split()[1]
        await asyncio.sleep(0.5)  # settle: background work after the first page counts too
        result["rss_mib"] = rss_mib()
        await launcher.shutdown()
        window.close()
        await runner

    with loop:
        loop.run_until_complete(measure())
    print(json.dumps(result), flush=True)
    return 0


def launch(profile: Path) -> dict[str, Any]:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    started = time.time()
    done = subprocess.run(
        [sys.executable, __file__, "--child", str(profile), repr(started)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if done.returncode != 0:
        raise SystemExit(f"the app failed at {profile.name}: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    work = Path(tempfile.mkdtemp(prefix="anonchat-bench-ui-"))
    try:
        t = time.perf_counter()
        card = asyncio.run(peer_card(work / "peer"))
        asyncio.run(build(work / "small", SMALL, card))
        asyncio.run(build(work / "big", BIG, card))
        print(
            f"built profiles of {SMALL:,} and {BIG:,} messages in {time.perf_counter() - t:.0f} s"
        )
        figures: dict[str, dict[str, float]] = {}
        for name, directory in (("small", work / "small"), ("big", work / "big")):
            launch(directory)  # warm the page cache and the interpreter's files once
            runs = [launch(directory) for _ in range(RUNS)]
            expected = str((SMALL if name == "small" else BIG) - 1)
            if any(r["newest"] != expected for r in runs):  # the history really is there
                raise SystemExit(f"{name}: the newest message is not number {expected}")
            figures[name] = {
                key: statistics.median(r[key] for r in runs)
                for key in ("window_s", "first_page_s", "rss_mib")
            }
        small, big = figures["small"], figures["big"]
        for key, label, unit in (
            ("window_s", "launch to unlocked window", "s"),
            ("first_page_s", "launch to first page of the largest conversation", "s"),
            ("rss_mib", "resident memory with that page shown", "MiB"),
        ):
            print(
                f"{label}: {big[key]:.3f} {unit} at {BIG:,} messages "
                f"(baseline {small[key]:.3f} {unit} at {SMALL:,}; x{big[key] / small[key]:.2f})"
            )
        out = {
            "messages_small": SMALL,
            "messages_big": BIG,
            "window_s_small": round(small["window_s"], 4),
            "window_s_big": round(big["window_s"], 4),
            "first_page_s_small": round(small["first_page_s"], 4),
            "first_page_s_big": round(big["first_page_s"], 4),
            "rss_mib_small": round(small["rss_mib"], 1),
            "rss_mib_big": round(big["rss_mib"], 1),
            "startup_growth": round(big["first_page_s"] / small["first_page_s"], 3),
            "window_growth": round(big["window_s"] / small["window_s"], 3),
            "memory_growth": round(big["rss_mib"] / small["rss_mib"], 3),
            "target_growth": 1.2,
        }
        print(json.dumps(out))
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        sys.exit(child(sys.argv[2], float(sys.argv[3])))
    sys.exit(main())
