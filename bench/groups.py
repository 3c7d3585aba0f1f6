"""Groups benchmark: one text to a group of 50 real engines through a real relay, against 49
pairwise sends of the same text in the same run.

Every party is a real engine with a real (SQLCipher) profile in a temporary folder and a cheap
Argon2id, on one relay process on 127.0.0.1 whose send and subscribe budgets are lifted (its
defaults pace each connection and each address, and every client here shares 127.0.0.1), so
the engines' own cost shows. The sender is a process of its own; the 49 receivers run in a
few other processes (2 by default), many engines on one event loop each.

Setup, through the relay: the sender adds every receiver's card (each accepts the request),
makes a group of all of them, each joins, and the members connect with each other through
their group codes (docs/groups.md), as in the app. Then, once every outbox is empty, rounds
alternate (which goes first alternates too), after one warm-up of each that is not counted:

- group: `engine.send(group, text)`: one post signed, 49 copies sealed and pushed;
- pairwise: `engine.send(contact, text)` to each of the 49 contacts, one after the other.

The sender's CPU time (time.process_time: every thread of its process, the store's included)
runs from just before the first send until every copy is acknowledged and its outbox is empty,
so it covers the sealing, the storing, the outbox pushing the frames to the relay and the
receipts coming back, the same for both. `group_send_vs_pairwise` is the median of the first
over the median of the second (aim at most 1.2). `group_fanout_ms` is the median time from the
send until the last of the 49 receivers stored the message (its MessageAdded, stamped with the
machine's monotonic clock, which every process shares); `pairwise_fanout_ms` is the same for a
pairwise round. `--profile` prints where the sender spent its time in each kind of round
(cProfile, counting each thread's CPU time, on its event loop and on its store thread) to
stderr; it inflates the figures, so it is for finding costs, not for the ratio.
GROUPS_BENCH_LOG=INFO shows the engines' logs.

`--members 10 --rounds 4` is a quick check. The last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import json
import logging
import os
import pstats
import queue
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).resolve()
ROOT = SCRIPT.parent.parent
sys.path.insert(0, str(ROOT))

from app.core.engine import Engine  # noqa: E402
from app.core.events import (  # noqa: E402
    ContactChanged,
    Event,
    GroupChanged,
    MessageAdded,
    MessageStatusChanged,
    RequestAdded,
)
from app.core.profile import create_profile, profile_paths  # noqa: E402
from app.crypto.passphrase import INSECURE_FAST_PARAMS  # noqa: E402
from app.domain.groups import GroupState  # noqa: E402
from app.domain.messages import Direction, Status  # noqa: E402

MEMBERS = 50  # the sender included
ROUNDS = 12  # of each kind, after the warm-up
PROCS = 2  # receiver processes
PASSPHRASE = "bench"
TEXT_CHARS = 100
STEP_TIMEOUT_S = 60.0  # one round, one settle
SETUP_TIMEOUT_S = 90.0  # contacts, group, joins and connections of the members
LIFTED = [
    *("--send-rate", "1e9", "--send-burst", "1000000000"),
    *("--address-send-rate", "1e9", "--address-send-burst", "1000000000"),
    *("--address-subscribe-rate", "1e9", "--address-subscribe-burst", "1000000000"),
]


def text_for(tag: str) -> str:
    head = f"bench {tag} "
    return head + "x" * (TEXT_CHARS - len(head))


def say(**data: Any) -> None:
    print(json.dumps(data), flush=True)


async def commands() -> asyncio.StreamReader:
    """Our stdin as a stream of command lines."""
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def until(
    check: Callable[[], Awaitable[object]], seconds: float, what: str, every: float = 0.05
) -> None:
    """Until the coroutine `check()` returns something true, at most `seconds`."""
    deadline = time.monotonic() + seconds
    while not await check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {seconds:.0f} s")
        await asyncio.sleep(every)


async def open_engine(directory: Path, name: str, relay_url: str) -> Engine:
    opened = await create_profile(
        profile_paths(str(directory)), PASSPHRASE, name, relay_url, INSECURE_FAST_PARAMS
    )
    return await Engine.open(opened)


async def outbox_status(engine: Engine) -> dict[str, Any]:
    """What an engine still holds to send and how its contacts look (when a step fails)."""
    items = await engine.store.read(lambda r: r.outbox.due(2**62, 10_000))
    now = engine._ctx.clock()
    kinds: dict[str, int] = {}
    for item in items:
        key = f"{item.kind.name} attempts={item.attempts} in={(item.next_try - now) // 1000}s"
        kinds[key] = kinds.get(key, 0) + 1
    summaries = await engine.summaries()
    return {
        "outbox": kinds,
        "contacts": len(summaries),
        "online": sum(1 for s in summaries if s.online),
        "established": sum(1 for s in summaries if s.established),
        "offline_destinations": len(engine._routing._offline),
    }


def awaiting() -> list[str]:
    """Where each task of this process waits: its chain of awaits, innermost last."""
    chains = []
    for task in asyncio.all_tasks():
        links: list[str] = []
        step: Any = task.get_coro()
        while step is not None:
            frame = getattr(step, "cr_frame", None) or getattr(step, "gi_frame", None)
            if frame is None:
                links.append(type(step).__name__)
                break
            links.append(f"{frame.f_code.co_name}:{frame.f_lineno}")
            step = getattr(step, "cr_await", None) or getattr(step, "gi_yieldfrom", None)
        chains.append(f"{task.get_name()}: " + " > ".join(links))
    return sorted(chains)


# -- the sender (a child process) ------------------------------------------------------------


class Profiles:
    """cProfile (CPU time of each thread) on the event loop's thread and on the store's
    thread, per kind of round."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.loop: dict[str, cProfile.Profile] = {}
        self.store: dict[str, cProfile.Profile] = {}

    async def start(self, kind: str) -> None:
        store = self.store.setdefault(kind, cProfile.Profile(time.thread_time))
        await self.engine.store.read(lambda r: store.enable())
        self.loop.setdefault(kind, cProfile.Profile(time.thread_time)).enable()

    async def stop(self, kind: str) -> None:
        self.loop[kind].disable()
        await self.engine.store.read(lambda r: self.store[kind].disable())

    def report(self, rounds: int) -> None:
        for kind in sorted(self.loop):
            profs = (("event loop", self.loop[kind]), ("store thread", self.store[kind]))
            for where, prof in profs:
                out = io.StringIO()
                stats = pstats.Stats(prof, stream=out)
                total = stats.total_tt  # type: ignore[attr-defined]
                out.write(f"== {kind} rounds ({rounds}), sender's {where}: {total:.3f} s\n")
                stats.sort_stats("tottime").print_stats(18)
                stats.sort_stats("cumulative").print_stats(22)
                print(out.getvalue(), file=sys.stderr, flush=True)


async def sender(directory: str, relay_url: str, profile: bool) -> None:
    engine = await open_engine(Path(directory), "Sender", relay_url)
    welcomed: set[int] = set()
    delivered: set[int] = set()
    news = asyncio.Event()

    def heard(event: Event) -> None:
        if isinstance(event, ContactChanged) and not event.contact.awaiting_welcome:
            welcomed.add(event.contact.id)
            news.set()
        elif isinstance(event, MessageStatusChanged) and event.status is Status.DELIVERED:
            delivered.add(event.message_row)
            news.set()

    async def wait_for(rows: set[int], seen: set[int], seconds: float, what: str) -> None:
        deadline = time.monotonic() + seconds
        while not rows <= seen:
            news.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"{what}: {len(rows - seen)} of {len(rows)} missing")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(news.wait(), left)

    async def empty_outbox() -> bool:
        return await engine.pending_outbox() == 0

    engine.subscribe(heard)
    await engine.start()
    profiles = Profiles(engine) if profile else None
    say(ready=True, pid=os.getpid())
    reader = await commands()
    contacts: list[int] = []
    group = 0
    rounds = 0
    try:
        while line := await reader.readline():
            command = json.loads(line)
            if "add" in command:
                for card in command["add"]:
                    contacts.append((await engine.add_contact(card)).id)
                await wait_for(set(contacts), welcomed, SETUP_TIMEOUT_S, "welcomes")
                say(added=len(contacts))
            elif "group" in command:
                group = (await engine.create_group(command["group"], contacts)).id
                say(group=group)
            elif "settle" in command:
                began = time.monotonic()
                await until(empty_outbox, command["settle"], "the sender's outbox", 0.1)
                say(settled=round(time.monotonic() - began, 2))
            elif "round" in command:
                kind, text = command["round"], command["text"]
                counted = command.get("counted", True)
                if profiles is not None and counted:
                    await profiles.start(kind)
                    rounds += kind == "group"
                cpu0, t0 = time.process_time(), time.monotonic()
                rows: set[int] = set()
                for to in [group] if kind == "group" else contacts:
                    rows.add((await engine.send(to, text)).id)
                cpu1, t1 = time.process_time(), time.monotonic()
                await wait_for(rows, delivered, STEP_TIMEOUT_S, f"{kind} receipts")
                await until(empty_outbox, STEP_TIMEOUT_S, "the sender's outbox", 0.01)
                cpu2, t2 = time.process_time(), time.monotonic()
                if profiles is not None and counted:
                    await profiles.stop(kind)
                say(
                    done=kind,
                    t0=t0,
                    cpu_us=(cpu2 - cpu0) * 1e6,
                    call_cpu_us=(cpu1 - cpu0) * 1e6,
                    call_ms=(t1 - t0) * 1e3,
                    acked_ms=(t2 - t0) * 1e3,
                )
            elif "status" in command:
                status = await outbox_status(engine)
                status["connections"] = {k: v.name for k, v in engine.connection_states().items()}
                status["tasks"] = awaiting()
                say(status=status)
            elif "quit" in command:
                break
    finally:
        if profiles is not None:
            profiles.report(rounds)
        await engine.close()


# -- the receivers (a few child processes, many engines each) --------------------------------


async def receivers(directory: str, relay_url: str, names: list[str]) -> None:
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[Any]] = set()
    stored: dict[str, list[float]] = {}
    joined: dict[int, int] = {}  # engine index -> the group's row there

    def spawn(coro: Coroutine[Any, Any, object]) -> None:
        task = loop.create_task(coro)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    async def join(i: int, engine: Engine, row: int) -> None:
        joined[i] = (await engine.join_group(row)).id

    def listener(i: int, engine: Engine) -> Callable[[Event], None]:
        def heard(event: Event) -> None:
            now = time.monotonic()
            if isinstance(event, MessageAdded):
                message = event.message
                if message.direction is Direction.INCOMING and message.body.startswith("bench "):
                    tag = message.body.split()[1]
                    times = stored.setdefault(tag, [])
                    times.append(now)
                    if len(times) == len(names):
                        say(stored=tag, first=min(times), last=max(times))
            elif isinstance(event, RequestAdded):
                spawn(engine.accept_request(event.request.id))
            elif isinstance(event, GroupChanged):
                group = event.group
                if group.state is GroupState.INVITED and i not in joined:
                    joined[i] = 0
                    spawn(join(i, engine, group.id))

        return heard

    engines = []
    for i, name in enumerate(names):
        engine = await open_engine(Path(directory) / name, name, relay_url)
        engine.subscribe(listener(i, engine))
        await engine.start()
        engines.append(engine)
    say(ready=True, pid=os.getpid(), cards=[await e.card() for e in engines])
    reader = await commands()

    async def linked() -> list[int]:
        """Per engine: the members of its group it has a channel with (0 before joining)."""
        counts = []
        for i, engine in enumerate(engines):
            row = joined.get(i, 0)
            group = await engine.group(row) if row else None
            members = group.members if group is not None else ()
            counts.append(sum(1 for m in members if not m.is_me and m.contact_id is not None))
        return counts

    try:
        while line := await reader.readline():
            command = json.loads(line)
            if "connected" in command:
                want, began = command["connected"], time.monotonic()

                async def all_linked(want: int = want) -> bool:
                    return min(await linked()) >= want

                with contextlib.suppress(TimeoutError):
                    await until(all_linked, command["seconds"], "members connecting", 0.5)
                counts = await linked()
                say(
                    connected=min(counts),
                    seconds=round(time.monotonic() - began, 1),
                    invited=len(joined),
                    joined=sum(1 for row in joined.values() if row),
                    channels=counts,
                    status=[] if min(counts) >= want else [await outbox_status(e) for e in engines],
                )
            elif "settle" in command:
                began = time.monotonic()

                async def empty() -> bool:
                    return all([await e.pending_outbox() == 0 for e in engines])

                await until(empty, command["settle"], "the receivers' outboxes", 0.25)
                say(settled=round(time.monotonic() - began, 2))
            elif "quit" in command:
                break
    finally:
        await asyncio.gather(*(e.close() for e in engines), return_exceptions=True)


# -- the parent: processes, rounds, figures ---------------------------------------------------


class Child:
    """A child process speaking JSON lines (the relay: log lines until it listens), read on a
    thread so that every wait can be bounded."""

    def __init__(self, cmd: list[str], wait_for: str = "") -> None:
        self.name = " ".join(cmd[1:4])
        env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT if wait_for else None,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.url = ""
        self.engines = not wait_for  # told to quit, and given time to close their engines
        threading.Thread(target=self._read, daemon=True).start()
        if wait_for:
            deadline = time.monotonic() + 30
            while not self.url:
                line = self._next(deadline, "to listen")
                found = re.search(wait_for, line)
                if found:
                    self.url = found.group(1).rstrip("/")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def _next(self, deadline: float, what: str) -> str:
        try:
            line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise TimeoutError(f"{self.name}: nothing said {what} in time") from None
        if line is None:
            raise RuntimeError(f"a child ended before saying {what} (rc {self.proc.wait()})")
        return line

    def tell(self, **command: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()

    def hear(self, key: str, seconds: float) -> dict[str, Any]:
        """The next line carrying `key`, within `seconds`."""
        deadline = time.monotonic() + seconds
        while True:
            line = self._next(deadline, repr(key))
            try:
                data: dict[str, Any] = json.loads(line)
            except ValueError:
                continue
            if key in data:
                return data

    def stop(self) -> None:
        if self.proc.poll() is None and self.engines:
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                self.tell(quit=True)
                self.proc.wait(20)
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def log(*parts: Any) -> None:
    print(*parts, file=sys.stderr, flush=True)


def run(members: int, rounds: int, procs: int, profile: bool) -> dict[str, Any]:
    count = members - 1
    names = [f"R{i:02d}" for i in range(1, count + 1)]
    shares = [names[p::procs] for p in range(procs) if names[p::procs]]
    began = time.monotonic()
    children: list[Child] = []
    with tempfile.TemporaryDirectory(prefix="anonchat-bench-groups-") as tmp:
        try:
            relay = Child(
                [sys.executable, "-m", "relay", "--host", "127.0.0.1", "--port", "0", *LIFTED],
                wait_for=r"listening on (ws://127\.0\.0\.1:\d+/?)",
            )
            children.append(relay)
            cmd = [sys.executable, str(SCRIPT), "--sender", str(Path(tmp) / "sender"), relay.url]
            send = Child(cmd + (["--profile"] if profile else []))
            children.append(send)
            flocks = []
            for p, share in enumerate(shares):
                folder = str(Path(tmp) / f"receivers{p}")
                cmd = [sys.executable, str(SCRIPT), "--receivers", folder, relay.url, *share]
                flocks.append(Child(cmd))
            children += flocks
            send.hear("ready", 60)
            cards = [card for flock in flocks for card in flock.hear("ready", 120)["cards"]]
            log(f"{len(cards)} receivers in {len(flocks)} processes; adding them")
            send.tell(add=cards)
            send.hear("added", SETUP_TIMEOUT_S)
            log(f"contacts after {time.monotonic() - began:.1f} s; the group")
            send.tell(group="Bench")
            send.hear("group", 60)
            for flock in flocks:
                flock.tell(connected=count, seconds=SETUP_TIMEOUT_S)
            linked = [flock.hear("connected", SETUP_TIMEOUT_S + 10) for flock in flocks]
            if any(f["connected"] < count for f in linked):
                send.tell(status=True)
                status = send.hear("status", 30)["status"]
                log(f"the sender: {json.dumps(status)}")
                for f in linked:
                    log(f"receivers: {json.dumps(f)}")
                raise RuntimeError("the members did not all join and connect")
            log(f"members joined and connected after {time.monotonic() - began:.1f} s")
            for child in (send, *flocks):
                child.tell(settle=SETUP_TIMEOUT_S)
            for child in (send, *flocks):
                child.hear("settled", SETUP_TIMEOUT_S + 10)
            time.sleep(2.0)  # presence, receipts and group exchanges die down
            setup_s = time.monotonic() - began
            log(f"settled after {setup_s:.1f} s; {rounds} rounds of each after a warm-up")
            runs: dict[str, list[dict[str, float]]] = {"group": [], "pair": []}
            for i in range(-1, rounds):
                for kind in ("group", "pair") if i % 2 == 0 else ("pair", "group"):
                    tag = f"{kind}{i + 1}"
                    send.tell(round=kind, text=text_for(tag), counted=i >= 0)
                    done = send.hear("done", STEP_TIMEOUT_S + 10)
                    last = max(flock.hear("stored", STEP_TIMEOUT_S)["last"] for flock in flocks)
                    figures = {
                        "cpu_us": done["cpu_us"],
                        "call_cpu_us": done["call_cpu_us"],
                        "call_ms": done["call_ms"],
                        "acked_ms": done["acked_ms"],
                        "fanout_ms": (last - done["t0"]) * 1e3,
                    }
                    if i >= 0:
                        runs[kind].append(figures)
                    shown = {k: round(v, 1) for k, v in figures.items()}
                    log(f"{f'round {i + 1}' if i >= 0 else 'warm-up'} {kind}: {shown}")
            bench_s = time.monotonic() - began - setup_s
        finally:
            for child in reversed(children):
                child.stop()

    def med(kind: str, key: str) -> float:
        return statistics.median(r[key] for r in runs[kind])

    group_cpu, pair_cpu = med("group", "cpu_us"), med("pair", "cpu_us")
    return {
        "members": members,
        "receivers": count,
        "receiver_processes": len(shares),
        "rounds": rounds,
        "group_cpu_us": round(group_cpu),
        "pairwise_cpu_us": round(pair_cpu),
        "group_send_vs_pairwise": round(group_cpu / pair_cpu, 3),
        "group_call_cpu_us": round(med("group", "call_cpu_us")),
        "pairwise_call_cpu_us": round(med("pair", "call_cpu_us")),
        "group_call_ms": round(med("group", "call_ms"), 1),
        "pairwise_call_ms": round(med("pair", "call_ms"), 1),
        "group_fanout_ms": round(med("group", "fanout_ms"), 1),
        "pairwise_fanout_ms": round(med("pair", "fanout_ms"), 1),
        "group_acked_ms": round(med("group", "acked_ms"), 1),
        "pairwise_acked_ms": round(med("pair", "acked_ms"), 1),
        "setup_s": round(setup_s, 1),
        "rounds_s": round(bench_s, 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--members", type=int, default=MEMBERS, help="the sender included")
    p.add_argument("--rounds", type=int, default=ROUNDS, help="of each kind, after a warm-up")
    p.add_argument("--procs", type=int, default=PROCS, help="receiver processes")
    p.add_argument("--profile", action="store_true", help="the sender's cProfile, to stderr")
    p.add_argument("--sender", nargs=2, metavar=("DIR", "RELAY_URL"), help=argparse.SUPPRESS)
    p.add_argument("--receivers", nargs="+", metavar="ARG", help=argparse.SUPPRESS)
    args = p.parse_args()
    # The engines' own log, to stderr: warnings, or e.g. GROUPS_BENCH_LOG=INFO.
    logging.basicConfig(level=os.environ.get("GROUPS_BENCH_LOG", "WARNING"), stream=sys.stderr)
    if args.sender:
        directory, relay_url = args.sender
        asyncio.run(sender(directory, relay_url, args.profile))
        return
    if args.receivers:
        directory, relay_url, *names = args.receivers
        asyncio.run(receivers(directory, relay_url, names))
        return
    if not 2 <= args.members <= 100 or args.rounds < 1 or args.procs < 1:
        p.error("--members from 2 to 100, --rounds and --procs at least 1")
    result = run(args.members, args.rounds, args.procs, args.profile)
    for key, value in result.items():
        print(f"{key:>24}: {value}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
