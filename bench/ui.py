"""Benchmarks of the desktop app, offscreen: 1,000 vs 1,000,000 stored messages, and 5 vs 500
contacts.

For each size, a child process launches the app the way a person does (unlock screen,
passphrase, main window) and reports the time from process start to the unlocked main
window, to the first page of the largest conversation on screen, and its resident memory
then. The 1,000 profile is the baseline measured in the same run; the figures to reach are
1,000,000 within 1.2x of it on time and on memory. Profiles are built once per run in a
temporary directory (bulk inserts through the store's repositories, 50,000 per transaction)
and removed afterwards. Argon2id uses cheap parameters: its cost is the same at both sizes
and is benchmarked in bench/store.py.

The contact list: in a child process per size, the main window (real widgets) of a profile
with 5 or with 500 contacts takes incoming messages, each for the contact at the bottom of the
list, which the message moves to the top. The cost of one is the process's CPU time (the GUI
thread and the store's thread) from handing the engine's MessageAdded event to the window's
bridge until the contact's row shows the message at the top and the list has repainted; the
short wait that coalesces a burst of events costs no CPU and is not counted. The window is
made as tall as shows five rows, so both sizes draw as many rows and the figure compares what
the number of contacts costs. The figure to reach is 500 contacts within 1.2x of 5 (the
median of BENCH_RUNS launches of BENCH_EVENTS messages each). The contacts are rows put
straight into the store, each with one message.

The last stdout line is one JSON object. BENCH_SCALE (default 1.0) shrinks the big profile
for a smoke run; BENCH_RUNS (default 3) sets the launches per size (the median is kept);
BENCH_EVENTS (default 200) the incoming messages per contact-list launch.
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
EVENTS = int(os.environ.get("BENCH_EVENTS", "200"))
SMALL = 1_000
BIG = int(1_000_000 * SCALE)
CHUNK = 50_000
FEW_CONTACTS = 5
MANY_CONTACTS = 500
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


async def build_contacts(directory: Path, count: int) -> None:
    """A profile with `count` contacts, each with one message (the newest at the top)."""
    from app.core.engine import Engine
    from app.core.profile import create_profile, profile_paths
    from app.crypto.passphrase import INSECURE_FAST_PARAMS
    from app.store.records import Direction, NewMessage, Status
    from app.store.repos import Repos

    paths = profile_paths(str(directory))
    opened = await create_profile(
        paths, PASSPHRASE, "Bench", "ws://127.0.0.1:9", INSECURE_FAST_PARAMS
    )
    engine = await Engine.open(opened)
    base = 1_700_000_000_000

    def fill(r: Repos) -> None:
        for i in range(count):
            contact = r.contacts.add(f"Contact {i}", os.urandom(64), base + i)
            message = NewMessage(
                contact.id,
                Direction.INCOMING,
                i.to_bytes(16, "big"),
                1,
                f"hello from contact {i}",
                base + i * 1000,
                base + i * 1000,
                Status.READ,
                True,
            )
            r.messages.insert(message)

    await engine.store.run(fill)
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


def contacts_child(profile: str) -> int:
    """Open the main window on a profile and feed it incoming messages; print one JSON line
    with the median CPU cost of one, in seconds."""
    import gc

    import qasync
    from PySide6.QtCore import QEvent, QObject
    from PySide6.QtWidgets import QApplication

    from app.core.engine import Engine
    from app.core.events import MessageAdded
    from app.core.profile import open_profile, profile_paths
    from app.domain.messages import Message
    from app.store.records import Direction, NewMessage, Status
    from app.store.repos import Repos
    from app.ui.theme import setup_application
    from app.ui.window import MainWindow

    app = QApplication([])
    setup_application(app)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    result: dict[str, Any] = {}

    class Paints(QObject):
        """Counts the list's paint events (a paint runs right after its event is seen)."""

        count = 0

        def eventFilter(self, watched: QObject, event: QEvent) -> bool:
            if event.type() == QEvent.Type.Paint:
                self.count += 1
            return False

    async def measure() -> None:
        engine = await Engine.open(await open_profile(profile_paths(profile), PASSPHRASE))
        window = MainWindow(engine)
        await window.load()
        window.show()
        view, model = window.contact_list, window.contacts
        # The list shows FEW_CONTACTS rows at both sizes, so both draw as many rows.
        await asyncio.sleep(0.2)
        wanted = FEW_CONTACTS * view.sizeHintForRow(0)
        window.resize(window.width(), window.height() - (view.viewport().height() - wanted))
        await asyncio.sleep(0.3)
        result["rows_shown"] = round(view.viewport().height() / view.sizeHintForRow(0), 2)
        paints = Paints()
        view.viewport().installEventFilter(paints)
        gc.freeze()  # as the launcher does once the window shows
        costs: list[float] = []
        forced = 0
        for i in range(EVENTS):
            bottom = model.summary(model.rowCount() - 1).contact.id

            def receive(r: Repos, contact_id: int = bottom, i: int = i) -> Message:
                now = int(time.time() * 1000)
                stored = r.messages.insert(
                    NewMessage(
                        contact_id,
                        Direction.INCOMING,
                        os.urandom(16),
                        2 + i,
                        f"incoming {i}",
                        now,
                        now,
                        Status.DELIVERED,
                        False,
                    )
                )
                assert stored.message_row is not None
                return r.messages.get(stored.message_row)

            message = await engine.store.run(receive)
            shown: asyncio.Future[int] = loop.create_future()

            def check(
                *_: object, message: Message = message, shown: asyncio.Future[int] = shown
            ) -> None:
                top = model.summary(0)
                if top.last is not None and top.last.id == message.id and not shown.done():
                    shown.set_result(paints.count)

            model.dataChanged.connect(check)  # a row updated in place
            model.rowsInserted.connect(check)  # or put back in its new place
            await asyncio.sleep(0.02)  # the store's commit settles before the clock starts
            cpu = time.process_time()
            window.bridge.on_event(MessageAdded(message))
            painted = await shown
            app.processEvents()  # the layout and paint the change asked for, if still due
            if paints.count == painted:  # not painted since the change: paint it now
                view.viewport().repaint()
                forced += 1
            costs.append(time.process_time() - cpu)
            model.dataChanged.disconnect(check)
            model.rowsInserted.disconnect(check)
        result["contacts"] = model.rowCount()
        result["event_s"] = statistics.median(costs)
        result["forced_paints"] = forced
        window.close()
        await engine.close()

    with loop:
        loop.run_until_complete(measure())
    print(json.dumps(result), flush=True)
    return 0


def launch(profile: Path, mode: str = "--child") -> dict[str, Any]:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    started = time.time()
    done = subprocess.run(
        [sys.executable, __file__, mode, str(profile), repr(started)],
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
        asyncio.run(build_contacts(work / "few", FEW_CONTACTS))
        asyncio.run(build_contacts(work / "many", MANY_CONTACTS))
        print(
            f"built profiles of {SMALL:,} and {BIG:,} messages, {FEW_CONTACTS} and "
            f"{MANY_CONTACTS} contacts in {time.perf_counter() - t:.0f} s"
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
        event_costs: dict[str, list[float]] = {"few": [], "many": []}
        for _ in range(RUNS):  # alternated, so both sizes see the same machine
            for name, count in (("few", FEW_CONTACTS), ("many", MANY_CONTACTS)):
                r = launch(work / name, "--contacts-child")
                if r["contacts"] != count:
                    raise SystemExit(f"{name}: {r['contacts']} contacts listed, not {count}")
                event_costs[name].append(r["event_s"])
        few = statistics.median(event_costs["few"])
        many = statistics.median(event_costs["many"])
        for key, label, unit in (
            ("window_s", "launch to unlocked window", "s"),
            ("first_page_s", "launch to first page of the largest conversation", "s"),
            ("rss_mib", "resident memory with that page shown", "MiB"),
        ):
            print(
                f"{label}: {big[key]:.3f} {unit} at {BIG:,} messages "
                f"(baseline {small[key]:.3f} {unit} at {SMALL:,}; x{big[key] / small[key]:.2f})"
            )
        print(
            f"one incoming message on the contact list: {many * 1000:.2f} ms CPU with "
            f"{MANY_CONTACTS} contacts (baseline {few * 1000:.2f} ms with {FEW_CONTACTS}; "
            f"x{many / few:.2f})"
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
            "contacts_few": FEW_CONTACTS,
            "contacts_many": MANY_CONTACTS,
            "contacts_event_s_few": round(few, 6),
            "contacts_event_s_many": round(many, 6),
            "contacts_event_growth": round(many / few, 3),
            "target_growth": 1.2,
        }
        print(json.dumps(out))
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        sys.exit(child(sys.argv[2], float(sys.argv[3])))
    if len(sys.argv) == 4 and sys.argv[1] == "--contacts-child":
        sys.exit(contacts_child(sys.argv[2]))
    sys.exit(main())
