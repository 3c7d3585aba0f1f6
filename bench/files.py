"""Files benchmark: a 100 MB file between two engines through our relay, against the floor.

Ours: Alice and Bob are real engines, each in a process of its own with a real (SQLCipher)
profile in a temporary folder, contacts of each other through a relay process on 127.0.0.1.
Alice sends a 100 MB file; the time runs from her `send_file` (which seals the file into her
profile) until Bob's copy is COMPLETE (every piece held, flushed, recorded, and the whole file
checked against the offer's SHA-256). Once through a relay with its default limits, which
pace each connection at 100 frames/s (about 6 MB/s of pieces), and once through a relay whose
send budgets are lifted, so the engines' own cost shows.

The floor: the same number of frames of the same size (a sealed piece with its frame header,
filecrypt.CHUNK_HEAD_SIZE + SEALED_CHUNK = 61,478 bytes) from one bare websockets client to
another through a bare websockets forwarder (a child process, as the relay is), measured in
the same run: what any Python relay on websockets costs at the least, with no envelope, no
encryption, no disk.

Memory: the largest growth of either client's resident memory (VmRSS, sampled every 20 ms)
over what it held just before the send, during the transfer through the default relay.

The last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

SCRIPT = Path(__file__).resolve()
ROOT = SCRIPT.parent.parent
sys.path.insert(0, str(ROOT))

from app.crypto.filecrypt import CHUNK_HEAD_SIZE, SEALED_CHUNK, chunk_count  # noqa: E402

SIZE = 100 * 1_000_000
FRAME = CHUNK_HEAD_SIZE + SEALED_CHUNK  # 61,478 bytes
PASSPHRASE = "bench"
TIMEOUT_S = 600.0
SAMPLE_S = 0.02
UNLIMITED = [
    *("--send-rate", "1e9", "--send-burst", "1000000000"),
    *("--address-send-rate", "1e9", "--address-send-burst", "1000000000"),
]


# -- one engine (a child process), driven line by line over stdin/stdout --------------------


async def client(name: str, directory: str, relay_url: str) -> None:
    from app.core.engine import Engine
    from app.core.events import ContactChanged, Event, FileChanged, RequestAdded
    from app.core.profile import create_profile
    from app.crypto.passphrase import INSECURE_FAST_PARAMS
    from app.domain.files import FileState
    from app.domain.messages import Direction
    from app.store.paths import ProfilePaths

    def say(**data: Any) -> None:
        print(json.dumps(data), flush=True)

    opened = await create_profile(
        ProfilePaths(Path(directory)), PASSPHRASE, name, relay_url, INSECURE_FAST_PARAMS
    )
    engine = await Engine.open(opened)
    await engine.set_quota(10 * SIZE // 1_000_000)
    await engine.set_auto_download(2 * SIZE // 1_000_000)
    loop = asyncio.get_running_loop()
    welcomed = asyncio.Event()
    finished: dict[int, asyncio.Future[Any]] = {}

    accepting: set[asyncio.Task[Any]] = set()

    def heard(event: Event) -> None:
        if isinstance(event, RequestAdded):
            task = loop.create_task(engine.accept_request(event.request.id))
            accepting.add(task)
            task.add_done_callback(accepting.discard)
        elif isinstance(event, ContactChanged) and not event.contact.awaiting_welcome:
            welcomed.set()
        elif isinstance(event, FileChanged) and event.file.state.finished:
            info = event.file
            if info.direction is Direction.INCOMING:
                if info.state is FileState.COMPLETE:
                    say(complete=info.size, sha256=info.sha256.hex())
                else:
                    say(failed=info.error or info.state.value)
            waiter = finished.get(info.id)
            if waiter is not None and not waiter.done():
                waiter.set_result(info)

    engine.subscribe(heard)
    await engine.start()
    say(ready=True, pid=os.getpid(), card=await engine.card())
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    contact = 0
    try:
        while line := await reader.readline():
            command = json.loads(line)
            if "add" in command:
                contact = (await engine.add_contact(command["add"])).id
                await asyncio.wait_for(welcomed.wait(), 60)
                say(added=contact)
            elif "send" in command:
                message = await engine.send_file(contact, Path(command["send"]))
                assert message.file is not None
                row = message.file.id
                finished[row] = loop.create_future()
                current = await engine.file(row)
                info = current if current.state.finished else await finished[row]
                say(sent=info.state.value, sent_bytes=info.sent_bytes)
            elif "quit" in command:
                break
    finally:
        await engine.close()


# -- the parent: processes, clocks, memory --------------------------------------------------


class Child:
    """A child process that prints JSON lines (the relay: log lines until it listens)."""

    def __init__(self, cmd: list[str], wait_for: str = "") -> None:
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
        self.url = ""
        if wait_for:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                found = re.search(wait_for, line)
                if found:
                    self.url = found.group(1).rstrip("/")
                    threading.Thread(target=self._drain, daemon=True).start()
                    return
            raise RuntimeError(f"{cmd} did not start")

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for _ in self.proc.stdout:
            pass

    def tell(self, **command: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()

    def hear(self, key: str) -> dict[str, Any]:
        """The next line carrying `key` (a failure line raises)."""
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                data: dict[str, Any] = json.loads(line)
            except ValueError:
                continue
            if "failed" in data:
                raise RuntimeError(f"the transfer failed: {data['failed']}")
            if key in data:
                return data
        raise RuntimeError(f"the child ended before saying {key!r} (rc {self.proc.wait()})")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


class Sampler:
    """The largest resident memory of each process, sampled on a thread until stopped."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.start = {pid: rss_bytes(pid) for pid in pids}
        self.peak = dict(self.start)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            for pid in self.pids:
                self.peak[pid] = max(self.peak[pid], rss_bytes(pid))

    def growth(self) -> int:
        """The largest growth of any one process over its memory at the start."""
        self._stop.set()
        self._thread.join()
        return max(self.peak[pid] - self.start[pid] for pid in self.pids)


def transfer(tmp: Path, source: Path, digest: str, relay_args: list[str]) -> dict[str, float]:
    """One 100 MB file, Alice to Bob, through a fresh relay: seconds and memory growth."""
    relay = Child(
        [sys.executable, "-m", "relay", "--host", "127.0.0.1", "--port", "0", *relay_args],
        wait_for=r"listening on (ws://127\.0\.0\.1:\d+/?)",
    )
    run = tmp / f"run-{time.monotonic_ns()}"
    people: list[Child] = []
    try:
        for name in ("Alice", "Bob"):
            cmd = [sys.executable, str(SCRIPT), "--client", name, str(run / name), relay.url]
            people.append(Child(cmd))
        alice, bob = people
        alice_ready, bob_ready = alice.hear("ready"), bob.hear("ready")
        alice.tell(add=bob_ready["card"])
        alice.hear("added")
        time.sleep(1.0)  # let both settle (receipts, presence) before the clock starts
        sampler = Sampler([alice_ready["pid"], bob_ready["pid"]])
        start = time.perf_counter()
        alice.tell(send=str(source))
        done = bob.hear("complete")
        elapsed = time.perf_counter() - start
        growth = sampler.growth()
        sent = alice.hear("sent")
        if done["sha256"] != digest or done["complete"] != SIZE or sent["sent"] != "complete":
            raise RuntimeError(f"the file did not arrive whole: {done} {sent}")
        for person in people:
            person.tell(quit=True)
        return {"seconds": elapsed, "rss_growth": growth, "sent_bytes": sent["sent_bytes"]}
    finally:
        for person in people:
            person.stop()
        relay.stop()


async def forwarder() -> None:
    """The floor's relay (a child process): each message from /s is passed on to /r."""
    receivers: dict[str, ServerConnection] = {}

    async def handler(ws: ServerConnection) -> None:
        path = ws.request.path if ws.request else "/"
        if path == "/r":
            receivers["r"] = ws
            await ws.wait_closed()
            return
        async for message in ws:
            await receivers["r"].send(message)

    async with serve(handler, "127.0.0.1", 0, compression=None, max_size=65536) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(f"listening on ws://127.0.0.1:{port}/", flush=True)
        await asyncio.Future()


async def floor_seconds(url: str) -> float:
    """The same bytes in the same frames, one bare client to another through the forwarder."""
    count = chunk_count(SIZE)
    frame = os.urandom(FRAME)
    async with connect(f"{url}/r", compression=None, max_size=65536) as rx:
        await asyncio.sleep(0.2)  # the forwarder has taken the receiver
        async with connect(f"{url}/s", compression=None, max_size=65536) as tx:

            async def receive() -> int:
                got = 0
                for _ in range(count):
                    got += len(await rx.recv())
                return got

            start = time.perf_counter()
            receiver = asyncio.create_task(receive())
            for _ in range(count):
                await tx.send(frame)
            got = await receiver
            elapsed = time.perf_counter() - start
    assert got == count * FRAME
    return elapsed


def floor() -> float:
    """The median of three floor runs, each on a fresh forwarder."""
    times = []
    for _ in range(3):
        server = Child([sys.executable, str(SCRIPT), "--forwarder"], r"listening on (ws://\S+)")
        try:
            times.append(asyncio.run(floor_seconds(server.url)))
        finally:
            server.stop()
    return sorted(times)[1]


def main() -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="anonchat-bench-files-") as tmp_name:
        tmp = Path(tmp_name)
        source = tmp / "file.bin"
        data = os.urandom(SIZE)
        source.write_bytes(data)
        digest = hashlib.sha256(data).hexdigest()
        del data
        print("floor", file=sys.stderr, flush=True)
        floor_s = floor()
        print("ours, default relay limits", file=sys.stderr, flush=True)
        paced = transfer(tmp, source, digest, [])
        print("ours, send budgets lifted", file=sys.stderr, flush=True)
        unlimited = transfer(tmp, source, digest, UNLIMITED)
    mb = SIZE / 1e6
    floor_rate, ours, ours_unlimited = (
        mb / floor_s,
        mb / paced["seconds"],
        mb / unlimited["seconds"],
    )
    return {
        "file_mb": mb,
        "frame_bytes": FRAME,
        "floor_mb_per_s": round(floor_rate, 1),
        "file_mb_per_s": round(ours, 1),
        "file_vs_floor": round(ours / floor_rate, 3),
        "file_mb_per_s_unlimited": round(ours_unlimited, 1),
        "file_vs_floor_unlimited": round(ours_unlimited / floor_rate, 3),
        "file_rss_growth_mb": round(paced["rss_growth"] / 1e6, 1),
        "file_rss_growth_mb_unlimited": round(unlimited["rss_growth"] / 1e6, 1),
        "file_sent_vs_size": round(paced["sent_bytes"] / SIZE, 3),
    }


if __name__ == "__main__":
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--client", nargs=3, metavar=("NAME", "DIR", "RELAY_URL"))
    args.add_argument("--forwarder", action="store_true")
    args.add_argument("--mb", type=int, default=SIZE // 1_000_000, help="the file's size")
    parsed = args.parse_args()
    SIZE = parsed.mb * 1_000_000
    if parsed.client:
        asyncio.run(client(*parsed.client))
    elif parsed.forwarder:
        asyncio.run(forwarder())
    else:
        result = main()
        for key, value in result.items():
            print(f"{key:>28}: {value}")
        print(json.dumps(result))
