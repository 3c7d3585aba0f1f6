"""Abuse benchmark: what cheap attacks cost everyone else, each against the same measurement
without it, in the same run.

Each attack is a function in ATTACKS returning a dict of figures; main() runs them all (or
the one named by ``--only``), merges their figures, and prints them as one JSON object on the
last stdout line.

The relay attacks run one relay child process with its default limits; well-behaved pairs
(PAIRS of them, each a sender and a subscriber on 127.0.0.1 trading one send every 20 ms, each
round trip timed until both the `sent` and the `deliver` are in: enough samples for a steady
p99) are measured throughout, while an attacker child process comes and goes from other
loopback addresses: eight segments, calm and attack in turn, each counted for SEGMENT_S after
SETTLE_S (the attacker's set-up is not counted). A ratio is the median, over the four attack
segments, of the pairs' p99 round trip in the segment over their p99 in the calm segment just
before it; the p99s printed are over all attack and all calm segments.

- `presence_churn_p99_ratio`: 250 watchers (on ten addresses) of the same 1,024 mailboxes
  while 20 connections subscribe and unsubscribe those mailboxes at 90 frames/s each.
- `sigflood_p99_ratio`: 200 connections of one address each send subscribes with bad
  signatures at 99 frames/s.

The client attacks (bench/abuse_client.py) put an injecting relay between a listening client
and a real relay: `client_flood_rss_growth_mb` (junk frames of 60 KB for 15 s, against the
growth over as long without) and `skip_flood_delay_s` (a message's delay after 1 s of frames
with their skip counters at the limit, against its delay with none).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import resource
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

SCRIPT = Path(__file__).resolve()
ROOT = SCRIPT.parent.parent
sys.path.insert(0, str(ROOT))

from relay import wire  # noqa: E402

SEGMENTS = 8
SEGMENT_S = 2.5
SETTLE_S = 1.0
PAIRS = 10
PAIR_INTERVAL_S = 0.02
WATCHERS = 250
WATCHER_ADDRESSES = 10
WATCHED = 1024
CHURNERS = 20
CHURN_FRAMES_PER_S = 90
SIGFLOODERS = 200
SIGFLOOD_FRAMES_PER_S = 99


# -- processes ---------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time process ``pid`` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class RelayChild:
    """``python -m relay`` on 127.0.0.1 with its default limits."""

    def __init__(self) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "relay", "--port", "0"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            found = re.search(r"listening on (ws://127\.0\.0\.1:(\d+)/)", line)
            if found:
                self.url = found.group(1)
                return
        raise RuntimeError("relay did not start")

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


async def start_attacker(kind: str, url: str) -> asyncio.subprocess.Process:
    """This script as an attacker child process, once it says it is attacking."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, str(SCRIPT), "--attacker", kind, url),
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    try:
        said = await asyncio.wait_for(proc.stdout.readline(), 60)
    except TimeoutError:
        said = b""
    if said.strip() != b"attacking":
        proc.kill()
        await proc.wait()
        raise RuntimeError(f"the {kind} attacker did not start")
    return proc


async def stop_attacker(proc: asyncio.subprocess.Process) -> dict[str, int]:
    """SIGTERM the attacker; what it counted, from its last stdout line."""
    assert proc.stdout is not None
    proc.terminate()
    try:
        out = await asyncio.wait_for(proc.stdout.read(), 30)
    except TimeoutError:
        proc.kill()
        out = b""
    await proc.wait()
    lines = out.decode().strip().splitlines()
    return json.loads(lines[-1]) if lines else {}


# -- the well-behaved pair ---------------------------------------------------------------------


class Pair:
    """A sender and a subscriber trading one send every PAIR_INTERVAL_S; round trips timed."""

    async def open(self, url: str) -> None:
        private = Ed25519PrivateKey.generate()
        public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.mailbox = wire.mailbox_id(public)
        self.rx = await connect(url, compression=None)
        hello = wire.decode(await self.rx.recv())  # type: ignore[arg-type]
        assert isinstance(hello, wire.Hello)
        sig = private.sign(wire.subscribe_signed_bytes(hello.challenge, self.mailbox))
        await self.rx.send(wire.encode(wire.Subscribe(1, self.mailbox, public, sig)))
        assert wire.decode(await self.rx.recv()) == wire.Ok(1)  # type: ignore[arg-type]
        self.tx = await connect(url, compression=None)
        await self.tx.recv()
        self.trips: list[tuple[float, float]] = []  # (sent at, round trip ms)

    async def run(self, stop: asyncio.Event, offset: float) -> None:
        """Until ``stop``, starting ``offset`` seconds in (the pairs take turns)."""
        await asyncio.sleep(offset)
        rid = 0
        next_at = time.monotonic()
        while not stop.is_set():
            rid += 1
            sent_at = time.monotonic()
            await self.tx.send(wire.encode(wire.Send(rid, self.mailbox, rid.to_bytes(8, "big"))))
            async with asyncio.timeout(10):  # a relay that stopped answering fails the run
                await self.tx.recv()
                await self.rx.recv()
            self.trips.append((sent_at, (time.monotonic() - sent_at) * 1000))
            next_at += PAIR_INTERVAL_S
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    async def close(self) -> None:
        await self.tx.close()
        await self.rx.close()


def p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100)[98]


async def against_calm(kind: str) -> dict[str, Any]:
    """The pairs through one relay while the ``kind`` attacker comes and goes."""
    relay = RelayChild()
    try:
        pairs = [Pair() for _ in range(PAIRS)]
        for pair in pairs:
            await pair.open(relay.url)
        stop = asyncio.Event()
        running = asyncio.gather(
            *(pair.run(stop, PAIR_INTERVAL_S * n / PAIRS) for n, pair in enumerate(pairs))
        )
        windows: list[tuple[float, float]] = []  # calm, attack, calm, attack...
        cpu = [0.0, 0.0]
        attacker_cpu = 0.0
        counted: dict[str, int] = {}
        for segment in range(SEGMENTS):
            attacking = segment % 2
            print(f"{kind}: {'attack' if attacking else 'calm'}", file=sys.stderr, flush=True)
            attacker = await start_attacker(kind, relay.url) if attacking else None
            await asyncio.sleep(SETTLE_S)
            begin, cpu_from = time.monotonic(), relay.cpu_seconds()
            attacker_from = cpu_seconds(attacker.pid) if attacker else 0.0
            await asyncio.sleep(SEGMENT_S)
            windows.append((begin, time.monotonic()))
            cpu[attacking] += relay.cpu_seconds() - cpu_from
            if attacker is not None:
                attacker_cpu += cpu_seconds(attacker.pid) - attacker_from
                for name, value in (await stop_attacker(attacker)).items():
                    counted[name] = counted.get(name, 0) + value
        stop.set()
        await running
        for pair in pairs:
            await pair.close()
    finally:
        relay.stop()

    trips = [trip for pair in pairs for trip in pair.trips]
    per_segment = [[ms for at, ms in trips if begin <= at < end] for begin, end in windows]
    calm = [ms for segment in per_segment[0::2] for ms in segment]
    attacked = [ms for segment in per_segment[1::2] for ms in segment]
    # Each attack segment against the calm one just before it: a burst of noise from outside
    # (this machine runs other things too) spoils one ratio, not the figure.
    ratios = [p99(a) / p99(c) for c, a in zip(per_segment[0::2], per_segment[1::2], strict=True)]
    seconds = SEGMENT_S * SEGMENTS / 2
    return {
        f"{kind}_p99_ratio": round(statistics.median(ratios), 2),
        f"{kind}_p99_ms": round(p99(attacked), 2),
        f"{kind}_calm_p99_ms": round(p99(calm), 2),
        f"{kind}_p99_ratio_segments": [round(r, 2) for r in ratios],
        f"{kind}_relay_cpu": round(cpu[1] / seconds, 3),
        f"{kind}_calm_relay_cpu": round(cpu[0] / seconds, 3),
        f"{kind}_attacker_cpu": round(attacker_cpu / seconds, 3),
        f"{kind}_samples": len(attacked),
        **{f"{kind}_{name}": value for name, value in counted.items()},
    }


# -- attackers (child processes) ---------------------------------------------------------------


def client_frame(payload: bytes) -> bytes:
    """A binary WebSocket frame as a client sends it, masked with an all-zero key."""
    size = len(payload)
    head = bytes([0x82, 0x80 | size]) if size < 126 else bytes([0x82, 0xFE]) + size.to_bytes(2)
    return head + bytes(4) + payload


async def open_from(url: str, host: str) -> tuple[ClientConnection, wire.Hello]:
    ws = await connect(
        url, compression=None, max_size=None, ping_interval=None, local_addr=(host, 0)
    )
    hello = wire.decode(await ws.recv())  # type: ignore[arg-type]
    assert isinstance(hello, wire.Hello)
    return ws, hello


async def count_frames(ws: ClientConnection, kind: str, counts: dict[str, int]) -> None:
    with contextlib.suppress(ConnectionClosed):
        async for data in ws:
            assert isinstance(data, bytes)
            counts[kind] += 1


async def pace(ws: ClientConnection, frames: list[bytes], per_s: int, stop: asyncio.Event) -> int:
    """Write ``frames`` round and round at ``per_s`` (10 batches a second); how many went."""
    sent = 0
    batch = per_s // 10
    while not stop.is_set() and not ws.transport.is_closing():
        if ws.transport.get_write_buffer_size() < 64 * 1024:
            chunk = [frames[(sent + i) % len(frames)] for i in range(batch)]
            ws.transport.writelines(chunk)
            sent += batch
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.1)
    return sent


async def presence_attacker(url: str, stop: asyncio.Event) -> dict[str, int]:
    keys = [Ed25519PrivateKey.generate() for _ in range(WATCHED)]
    publics = [k.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw) for k in keys]
    mailboxes = [wire.mailbox_id(p) for p in publics]
    counts = {"presence_frames": 0, "churn_frames": 0, "watch_replies": 0}
    readers = []
    for n in range(WATCHERS):
        ws, _ = await open_from(url, f"127.0.0.{2 + n % WATCHER_ADDRESSES}")
        await ws.send(wire.encode(wire.Watch(1, tuple(mailboxes))))
        await ws.recv()  # watching, or an error over a cap
        counts["watch_replies"] += 1
        readers.append(asyncio.create_task(count_frames(ws, "presence_frames", counts)))
    churners = []
    for n in range(CHURNERS):
        ws, hello = await open_from(url, f"127.0.0.{2 + WATCHER_ADDRESSES}")
        frames = []
        for i in range(n, WATCHED, CHURNERS):
            signed = wire.subscribe_signed_bytes(hello.challenge, mailboxes[i])
            sub = wire.Subscribe(1, mailboxes[i], publics[i], keys[i].sign(signed))
            frames += [
                client_frame(wire.encode(sub)),
                client_frame(wire.encode(wire.Unsubscribe(2, mailboxes[i]))),
            ]
        churners.append((ws, frames))
        readers.append(asyncio.create_task(count_frames(ws, "replies", {"replies": 0})))
    print("attacking", flush=True)
    sent = await asyncio.gather(*(pace(ws, f, CHURN_FRAMES_PER_S, stop) for ws, f in churners))
    counts["churn_frames"] = sum(sent)
    for task in readers:
        task.cancel()
    return counts


async def sigflood_attacker(url: str, stop: asyncio.Event) -> dict[str, int]:
    private = Ed25519PrivateKey.generate()
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    forged = msgpack.packb(
        {
            "v": 1,
            "t": "subscribe",
            "rid": 1,
            "mailbox": wire.mailbox_id(public),
            "key": public,
            "sig": bytes(64),
        }
    )
    counts = {"replies": 0}
    flooders = [(await open_from(url, "127.0.0.2"))[0] for _ in range(SIGFLOODERS)]
    readers = [asyncio.create_task(count_frames(ws, "replies", counts)) for ws in flooders]
    print("attacking", flush=True)
    frame = [client_frame(forged)]
    sent = await asyncio.gather(*(pace(ws, frame, SIGFLOOD_FRAMES_PER_S, stop) for ws in flooders))
    for task in readers:
        task.cancel()
    return {"flood_frames": sum(sent), "flood_replies": counts["replies"]}


ATTACKERS = {"presence_churn": presence_attacker, "sigflood": sigflood_attacker}


async def attacker(kind: str, url: str) -> None:
    """Attack until SIGTERM (or a minute), then print what was counted as JSON."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.call_later(60, stop.set)
    counts = await ATTACKERS[kind](url, stop)
    print(json.dumps(counts), flush=True)


# -- the attacks -------------------------------------------------------------------------------


def presence_churn() -> dict[str, Any]:
    figures = asyncio.run(against_calm("presence_churn"))
    frames = figures.get("presence_churn_churn_frames", 0)
    if frames:
        notices = figures["presence_churn_presence_frames"]
        figures["presence_churn_amplification"] = round(notices / frames, 2)
    return figures


def sigflood() -> dict[str, Any]:
    return asyncio.run(against_calm("sigflood"))


def client() -> dict[str, Any]:
    from bench.abuse_client import client_attacks  # its processes, not the attacker child's

    return client_attacks()


ATTACKS: dict[str, Callable[[], dict[str, Any]]] = {
    "presence_churn": presence_churn,
    "sigflood": sigflood,
    "client": client,
}


def raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 8192 if hard == resource.RLIM_INFINITY else min(hard, 8192)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=sorted(ATTACKS), help="run this attack alone")
    parser.add_argument("--attacker", nargs=2, metavar=("KIND", "URL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    raise_nofile()
    if args.attacker:
        asyncio.run(attacker(*args.attacker))
        return
    figures: dict[str, Any] = {}
    for name, attack in ATTACKS.items():
        if args.only in (None, name):
            figures.update(attack())
    for name in ATTACKS:
        if f"{name}_p99_ratio" in figures:
            print(
                f"{name:16s} pairs' p99 {figures[f'{name}_p99_ms']:.2f} ms under attack, "
                f"{figures[f'{name}_calm_p99_ms']:.2f} ms without: "
                f"ratio {figures[f'{name}_p99_ratio']:.2f}"
            )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
