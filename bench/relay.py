"""Relay benchmark: our relay against a bare websockets forwarder, same load, same run.

The floor is the least any Python relay on websockets can do: pair connections by URL path and
copy each binary message from one to the other, no envelope, no routing, no replies. Both
servers run in child processes with the same websockets settings (no compression, same size
limit and keepalive); the load generator is this process. When ``node`` and npm's ``ws`` are
installed (``make bench`` installs ``ws`` into bench/node), the same forwarder on Node's ``ws``
(bench/node/forwarder.js) is a second baseline for throughput and CPU per message.

Figures: throughput (msgs/s, 256-byte payloads, 50 pairs, windowed so nothing piles up),
latency p50/p99 at 25% of the floor's saturation rate (the median over the rounds), and RSS
per idle connection at 5,000 connections (ours subscribed to one mailbox each).

Flood: the p99 latency of 50 pairs, each sender at half the default send budget, while 10
other connections each try to send 2,000 frames/s, against the same pairs with no flood. One
relay with the default limits (its flood window stretched past the measurement) carries the
pairs throughout, while the flooders come and go: six segments, flood and calm in turn, each
counted for 2 s after 0.5 s for the flooders to connect and spend their burst, so both
conditions see the same machine. The flooders run in a child process and write pre-built
frames straight to their sockets, so what they cost is the relay's, not the load generator's.

Each figure is measured over at least five rounds, one figure after the other, each time on a
fresh server; ours and the floor (and flood and calm) take turns, the other one first every
other round. The figures printed are medians over the rounds; each ratio is the median of the
rounds' ratios, two measurements taken one after the other. The last stdout line is one JSON
object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import msgpack
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, broadcast, serve
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

SCRIPT = Path(__file__).resolve()
ROOT = SCRIPT.parent.parent
sys.path.insert(0, str(ROOT))

from relay import wire  # noqa: E402

PAIRS = 50
PAYLOAD = 256
WINDOW = 32
THROUGHPUT_SECONDS = 4.0
LATENCY_SECONDS = 4.0
IDLE_CONNECTIONS = 5000
ROUNDS = 5
FLOODERS = 10
FLOOD_FRAMES_PER_S = 2000
# Each calm sender at half the default budget of 100 frames/s, so only the flooders are over.
FLOOD_CALM_MSGS_PER_S = PAIRS * 50
FLOOD_SECONDS = 60.0
FLOOD_SEGMENTS = 6
FLOOD_SEGMENT_SECONDS = 2.0
FLOOD_SETTLE = 0.5


# -- the floor server (child process) ----------------------------------------------------------


async def floor_server() -> None:
    receivers: dict[str, ServerConnection] = {}

    async def handler(ws: ServerConnection) -> None:
        path = ws.request.path if ws.request else "/"
        if path.endswith("/r"):
            receivers[path[:-2]] = ws
            await ws.wait_closed()
            return
        async for message in ws:
            target = receivers.get(path)
            if target is not None:
                broadcast((target,), message)

    async with serve(handler, "127.0.0.1", 0, compression=None, max_size=65536) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(f"listening on ws://127.0.0.1:{port}/", flush=True)
        await asyncio.Future()


# -- child process management ----------------------------------------------------------------


class Child:
    def __init__(self, cmd: list[str]) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            found = re.search(r"listening on (ws://127\.0\.0\.1:\d+/)", line)
            if found:
                self.url = found.group(1)
                return
        raise RuntimeError("server did not start")

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def cpu_seconds(self) -> float:
        """User plus system CPU time the server has used so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


NODE_FORWARDER = SCRIPT.parent / "node" / "forwarder.js"
BARE = ("floor", "node")  # the forwarders without our protocol, paired by URL path


def node_available() -> bool:
    """Whether the Node baseline can run: ``node`` on the PATH and ``ws`` installed beside it."""
    modules = NODE_FORWARDER.parent / "node_modules" / "ws"
    return shutil.which("node") is not None and modules.is_dir()


def start(kind: str) -> Child:
    """A fresh server: the floor, the Node forwarder, ours with no send budget to speak of, or
    ours with the default budget for the flood figures."""
    if kind == "floor":
        return Child([sys.executable, str(SCRIPT), "--floor-server"])
    if kind == "node":
        return Child(["node", str(NODE_FORWARDER)])
    budget = ["--send-rate", "1e9", "--send-burst", "1000000000"]
    if kind == "flood":
        budget = ["--flood-window", str(FLOOD_SECONDS * 2)]
    # Every client here comes from 127.0.0.1: the per-address budgets and handshake caps,
    # meant for many clients behind one address, are lifted (bench/abuse.py measures them).
    one_address = [
        *("--address-send-rate", "1e9", "--address-send-burst", "1000000000"),
        *("--address-subscribe-rate", "1e9", "--address-subscribe-burst", "1000000000"),
        *("--max-handshakes", "20000", "--max-handshakes-per-address", "20000"),
    ]
    return Child(
        [
            *(sys.executable, "-m", "relay", "--port", "0", "--log-level", "INFO"),
            *budget,
            *one_address,
            *("--max-connections", "20000", "--max-connections-per-address", "20000"),
        ]
    )


# -- clients -----------------------------------------------------------------------------------


class Client(asyncio.Protocol):
    """One client connection on websockets' sans-I/O client protocol, driven by the transport's
    callbacks: no task or future per message. The load generator shares this 2-core machine
    with the server it loads, so each message must cost it less than it costs the server, or
    the figures would measure the client; websockets' asyncio client costs about as much as
    the floor server itself.

    While ``on_message`` is None, binary messages queue for :meth:`recv`; ``discard`` drops
    whatever comes in unread (a sender's ``sent`` replies, which the server must frame and
    write all the same)."""

    def __init__(self, url: str) -> None:
        self.ws = ClientProtocol(parse_uri(url), max_size=None)
        loop = asyncio.get_running_loop()
        self.opened: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.inbox: deque[bytes] = deque()
        self.waiter: asyncio.Future[None] | None = None
        self.on_message: Callable[[bytes], None] | None = None
        self.on_batch: Callable[[], None] | None = None
        self.discard = False
        self.transport: asyncio.Transport

    @classmethod
    async def connect(cls, url: str) -> Client:
        uri = parse_uri(url)
        loop = asyncio.get_running_loop()
        _, client = await loop.create_connection(lambda: cls(url), uri.host, uri.port)
        await client.opened
        return client

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.ws.send_request(self.ws.connect())
        self.flush()

    def data_received(self, data: bytes) -> None:
        if self.discard:
            return
        ws = self.ws
        ws.receive_data(data)
        for event in ws.events_received():
            if isinstance(event, Response):
                if ws.handshake_exc is not None:
                    self.opened.set_exception(ws.handshake_exc)
                else:
                    self.opened.set_result(None)
            elif isinstance(event, Frame) and event.opcode is Opcode.BINARY:
                message = cast(bytes, event.data)
                if self.on_message is not None:
                    self.on_message(message)
                else:
                    self.inbox.append(message)
                    if self.waiter is not None and not self.waiter.done():
                        self.waiter.set_result(None)
        if self.on_batch is not None:
            self.on_batch()
        self.flush()  # pongs, the close echo

    def connection_lost(self, exc: Exception | None) -> None:
        for future in (self.opened, self.closed, self.waiter):
            if future is not None and not future.done():
                future.set_exception(ConnectionError("closed"))
        self.closed.exception()  # retrieved: nobody need await it

    def flush(self) -> None:
        for chunk in self.ws.data_to_send():
            if chunk:
                self.transport.write(chunk)

    def send(self, message: bytes) -> None:
        self.ws.send_binary(message)
        self.flush()

    def write(self, frames: bytes) -> None:
        """Frames serialized in advance (see :func:`masked`), as they are."""
        self.transport.write(frames)

    async def recv(self) -> bytes:
        while not self.inbox:
            self.waiter = asyncio.get_running_loop().create_future()
            await self.waiter
        return self.inbox.popleft()

    def close(self) -> None:
        self.transport.abort()


def masked(message: bytes) -> bytes:
    """``message`` as one masked client frame, serialized by websockets once and then written
    as many times as wanted (a server unmasks with the key the frame carries)."""
    return Frame(Opcode.BINARY, message).serialize(mask=True, extensions=[])


class Pair:
    """A sender and a receiver connection on either server, with the same interface."""

    def __init__(self, kind: str, index: int) -> None:
        self.kind = "ours" if kind == "flood" else "floor" if kind in BARE else kind
        self.index = index
        self.received = 0
        self.stamped = False
        # (when it was sent, perf_counter ns; how long it took, ms)
        self.latencies: list[tuple[int, float]] = []

    async def open(self, url: str) -> None:
        if self.kind == "floor":
            self.tx = await Client.connect(f"{url}{self.index}")
            self.rx = await Client.connect(f"{url}{self.index}/r")
            await asyncio.sleep(0)
        else:
            private = Ed25519PrivateKey.generate()
            public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
            self.mailbox = wire.mailbox_id(public)
            self.rx = await Client.connect(url)
            hello = wire.decode(await self.rx.recv())
            assert isinstance(hello, wire.Hello)
            sig = private.sign(wire.subscribe_signed_bytes(hello.challenge, self.mailbox))
            self.rx.send(wire.encode(wire.Subscribe(1, self.mailbox, public, sig)))
            assert wire.decode(await self.rx.recv()) == wire.Ok(1)
            self.tx = await Client.connect(url)
            await self.tx.recv()  # its hello
            self.tx.discard = True
        self.rx.on_message = self.receive

    # The load generator's own cost per message is kept to the least for both kinds: envelopes
    # are packed and read with msgpack directly (the same bytes wire.encode makes, checked in
    # open_pairs), not through the dataclasses.

    def frame(self, payload: bytes, rid: int) -> bytes:
        if self.kind == "floor":
            return payload
        packed: bytes = msgpack.packb(
            {"v": 1, "t": "send", "rid": rid, "mailbox": self.mailbox, "payload": payload}
        )
        return packed

    def payload_of(self, data: bytes) -> bytes:
        if self.kind == "floor":
            return data
        payload: bytes = msgpack.unpackb(data)["payload"]
        return payload

    def receive(self, data: bytes) -> None:
        self.received += 1
        if self.stamped:  # a paced run: each payload starts with when it was sent
            stamp = int.from_bytes(self.payload_of(data)[:8], "big")
            self.latencies.append((stamp, (time.perf_counter_ns() - stamp) / 1e6))

    def close(self) -> None:
        self.tx.close()
        self.rx.close()


async def open_pairs(kind: str, url: str) -> list[Pair]:
    pairs = [Pair(kind, i) for i in range(PAIRS)]
    for pair in pairs:
        await pair.open(url)
    if kind not in BARE:
        probe = pairs[0]
        assert probe.frame(b"x", 7) == wire.encode(wire.Send(7, probe.mailbox, b"x"))
        deliver = wire.encode(wire.Deliver(probe.mailbox, b"y"))
        assert probe.payload_of(deliver) == b"y"
    return pairs


async def throughput(kind: str, url: str, cpu: Any) -> tuple[float, float]:
    """Delivered msgs/s, and the server's CPU seconds per delivered message meanwhile.

    Each sender keeps WINDOW messages in flight: whenever its receiver's read brought some,
    as many more go out in one write, the same frame serialized once."""
    pairs = await open_pairs(kind, url)
    running = True
    for pair in pairs:
        frame = masked(pair.frame(bytes(PAYLOAD), 1))
        sent = [WINDOW]

        def refill(pair: Pair = pair, frame: bytes = frame, sent: list[int] = sent) -> None:
            due = WINDOW - (sent[0] - pair.received)
            if running and due > 0:
                sent[0] += due
                pair.tx.write(frame * due)

        pair.rx.on_batch = refill
        pair.tx.write(frame * WINDOW)
    await asyncio.sleep(1.0)  # warm-up
    before = sum(p.received for p in pairs)
    cpu_before = cpu()
    started = time.monotonic()
    await asyncio.sleep(THROUGHPUT_SECONDS)
    delivered = sum(p.received for p in pairs) - before
    rate = delivered / (time.monotonic() - started)
    cpu_per_msg = (cpu() - cpu_before) / max(delivered, 1)
    running = False
    await asyncio.sleep(0.2)
    for pair in pairs:
        pair.close()
    return rate, cpu_per_msg


async def paced(pairs: list[Pair], offered: float, seconds: float) -> None:
    """The senders share ``offered`` msgs/s evenly, staggered, for ``seconds``."""
    interval = len(pairs) / offered
    deadline = time.monotonic() + seconds

    async def pace(pair: Pair) -> None:
        pair.stamped = True
        await asyncio.sleep(interval * pair.index / len(pairs))
        next_at = time.monotonic()
        rid = 0
        while next_at < deadline:
            rid += 1
            body = time.perf_counter_ns().to_bytes(8, "big") + bytes(PAYLOAD - 8)
            pair.tx.send(pair.frame(body, rid))
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))

    await asyncio.gather(*(pace(p) for p in pairs))


def p50_p99(samples: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(samples, n=100)
    return q[49], q[98]


async def latency(kind: str, url: str, offered: float) -> tuple[float, float]:
    pairs = await open_pairs(kind, url)
    await paced(pairs, offered, LATENCY_SECONDS)
    await asyncio.sleep(0.5)
    samples = [ms for p in pairs for _, ms in p.latencies]
    for pair in pairs:
        pair.close()
    return p50_p99(samples)


async def idle_memory(kind: str, child: Child) -> float:
    await asyncio.sleep(0.5)
    base = child.rss_kib()
    conns: list[ClientConnection] = []
    url = child.url
    for i in range(IDLE_CONNECTIONS):
        if kind == "floor":
            ws = await connect(f"{url}{i}/r", compression=None)
        else:
            ws = await connect(url, compression=None)
            hello = wire.decode(await ws.recv())  # type: ignore[arg-type]
            assert isinstance(hello, wire.Hello)
            private = Ed25519PrivateKey.generate()
            public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
            mailbox = wire.mailbox_id(public)
            sig = private.sign(wire.subscribe_signed_bytes(hello.challenge, mailbox))
            await ws.send(wire.encode(wire.Subscribe(1, mailbox, public, sig)))
            assert wire.decode(await ws.recv()) == wire.Ok(1)  # type: ignore[arg-type]
        conns.append(ws)
    await asyncio.sleep(1.0)
    used = child.rss_kib() - base
    for ws in conns:
        ws.transport.abort()
    return used / IDLE_CONNECTIONS


# -- the flooders (child process) -------------------------------------------------------------


def client_frame(payload: bytes) -> bytes:
    """One binary WebSocket frame as a client sends it, masked with an all-zero key (a server
    takes any key), so it can be built once and written as is."""
    size = len(payload)
    if size < 126:
        head = bytes([0x82, 0x80 | size])
    elif size < 1 << 16:
        head = bytes([0x82, 0x80 | 126]) + size.to_bytes(2, "big")
    else:
        head = bytes([0x82, 0x80 | 127]) + size.to_bytes(8, "big")
    return head + bytes(4) + payload


async def flooders(url: str) -> None:
    """FLOODERS connections, each writing FLOOD_FRAMES_PER_S sends (10 ms batches) for at most
    FLOOD_SECONDS, reading whatever comes back, reconnecting if closed; says "flooding" once
    all are connected."""
    send = msgpack.packb(
        {"v": 1, "t": "send", "rid": 1, "mailbox": bytes(32), "payload": bytes(PAYLOAD)}
    )
    batch = client_frame(send) * (FLOOD_FRAMES_PER_S // 100)
    deadline = time.monotonic() + FLOOD_SECONDS
    connected = 0

    async def drain(ws: ClientConnection) -> None:
        async for _ in ws:
            pass

    async def flood() -> None:
        nonlocal connected
        first = True
        while time.monotonic() < deadline:
            try:
                async with connect(url, compression=None, ping_interval=None, max_size=None) as ws:
                    await ws.recv()
                    if first:
                        first = False
                        connected += 1
                        if connected == FLOODERS:
                            print("flooding", flush=True)
                    reader = asyncio.create_task(drain(ws))
                    while time.monotonic() < deadline and not reader.done():
                        # Keep writing as long as the network takes it; hold no more than
                        # 256 KiB here once the relay stops reading.
                        if ws.state is not State.OPEN:
                            break
                        if ws.transport.get_write_buffer_size() < 256 * 1024:
                            ws.transport.write(batch)
                        await asyncio.sleep(0.01)
                    reader.cancel()
            except (OSError, RuntimeError, ConnectionClosed):  # the relay went away
                await asyncio.sleep(0.05)

    await asyncio.gather(*(flood() for _ in range(FLOODERS)))


async def start_flooders(url: str) -> asyncio.subprocess.Process:
    """The flooders' child process, once all its connections are up."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    proc = await asyncio.create_subprocess_exec(
        *(sys.executable, str(SCRIPT), "--flooders", url),
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    try:
        said = await asyncio.wait_for(proc.stdout.readline(), 30)
    except TimeoutError:
        said = b""
    if said.strip() != b"flooding":
        proc.terminate()
        await proc.wait()
        raise RuntimeError("the flooders did not connect")
    return proc


# -- the rounds ------------------------------------------------------------------------------------


async def measure_throughput(kind: str) -> dict[str, float]:
    child = start(kind)
    try:
        print(f"{kind}: throughput", file=sys.stderr, flush=True)
        rate, cpu_per_msg = await throughput(kind, child.url, child.cpu_seconds)
    finally:
        child.stop()
    return {"throughput": rate, "cpu_us_per_msg": cpu_per_msg * 1e6}


async def measure_latency(kind: str, offered: float) -> dict[str, float]:
    child = start(kind)
    try:
        print(f"{kind}: latency", file=sys.stderr, flush=True)
        p50, p99 = await latency(kind, child.url, offered)
    finally:
        child.stop()
    return {"p50_ms": p50, "p99_ms": p99}


async def measure_memory(kind: str) -> dict[str, float]:
    child = start(kind)
    try:
        print(f"{kind}: memory", file=sys.stderr, flush=True)
        return {"kib_per_conn": await idle_memory(kind, child)}
    finally:
        child.stop()


async def measure_flood(flood_first: bool) -> dict[str, float]:
    """Calm pairs paced through one relay while the flooders come and go: FLOOD_SEGMENTS
    segments, flood and calm in turn, so both conditions see the same machine. Only samples
    sent in the FLOOD_SEGMENT_SECONDS after a segment's FLOOD_SETTLE count: not the flooders
    starting, nor the burst of frames each may send at once, nor their leaving."""
    child = start("flood")
    try:
        pairs = await open_pairs("flood", child.url)
        # Paced until the segments are over (they take a little longer than they count).
        pacing = asyncio.create_task(
            paced(pairs, FLOOD_CALM_MSGS_PER_S, FLOOD_SEGMENTS * (FLOOD_SEGMENT_SECONDS + 5))
        )
        windows: dict[bool, list[tuple[int, int]]] = {True: [], False: []}
        cpu = {True: 0.0, False: 0.0}
        for segment in range(FLOOD_SEGMENTS):
            flooding = (segment % 2 == 0) == flood_first
            print(f"ours: flood {'on' if flooding else 'off'}", file=sys.stderr, flush=True)
            flooders_proc = await start_flooders(child.url) if flooding else None
            # Past the flooders' start and their first burst, which the budget allows.
            await asyncio.sleep(FLOOD_SETTLE)
            counted_from, cpu_from = time.perf_counter_ns(), child.cpu_seconds()
            await asyncio.sleep(FLOOD_SEGMENT_SECONDS)
            windows[flooding].append((counted_from, time.perf_counter_ns()))
            cpu[flooding] += child.cpu_seconds() - cpu_from
            if flooders_proc is not None:
                flooders_proc.terminate()
                await flooders_proc.wait()
        pacing.cancel()
        await asyncio.gather(pacing, return_exceptions=True)
        await asyncio.sleep(0.5)
        for pair in pairs:
            pair.close()
    finally:
        child.stop()
    result: dict[str, float] = {}
    counted = FLOOD_SEGMENT_SECONDS * FLOOD_SEGMENTS / 2
    for flooding, name in ((True, "flood"), (False, "calm")):
        samples = [
            ms
            for p in pairs
            for sent, ms in p.latencies
            if any(begin <= sent < end for begin, end in windows[flooding])
        ]
        result[f"{name}_p99_ms"] = p50_p99(samples)[1]
        result[f"{name}_relay_cpu"] = cpu[flooding] / counted
    return result


def order(index: int, kinds: tuple[str, ...] = ("floor", "ours")) -> tuple[str, ...]:
    """The kinds in turn: a different one first each round, the order reversed every other."""
    turn = index % len(kinds)
    ordered = kinds[turn:] + kinds[:turn]
    return ordered if index % 2 == 0 else ordered[::-1]


async def all_rounds(count: int, node: bool) -> list[dict[str, dict[str, float]]]:
    """Each figure over ``count`` rounds, one figure after the other: latency is offered at a
    quarter of the median of the floor's throughputs, which a single one would not steady."""
    rounds: list[dict[str, dict[str, float]]] = [
        {"floor": {}, "ours": {}, "flood": {}, "node": {}} for _ in range(count)
    ]
    kinds = ("floor", "ours", "node") if node else ("floor", "ours")
    for index, result in enumerate(rounds):
        print(f"throughput, round {index + 1} of {count}", file=sys.stderr, flush=True)
        for kind in order(index, kinds):
            result[kind].update(await measure_throughput(kind))
    offered = statistics.median(r["floor"]["throughput"] for r in rounds) * 0.25
    for index, result in enumerate(rounds):
        print(f"latency, round {index + 1} of {count}", file=sys.stderr, flush=True)
        for kind in order(index):
            result[kind].update(await measure_latency(kind, offered))
            result[kind]["offered"] = offered
    for index, result in enumerate(rounds):
        print(f"memory, round {index + 1} of {count}", file=sys.stderr, flush=True)
        for kind in order(index):
            result[kind].update(await measure_memory(kind))
    for index, result in enumerate(rounds):
        print(f"flood, round {index + 1} of {count}", file=sys.stderr, flush=True)
        result["flood"] = await measure_flood(flood_first=index % 2 == 1)
    return rounds


def raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = (
        min(hard, 4 * IDLE_CONNECTIONS) if hard != resource.RLIM_INFINITY else 4 * IDLE_CONNECTIONS
    )
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def median(values: list[float], digits: int = 3) -> float:
    return round(statistics.median(values), digits)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--floor-server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--flooders", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="at least 5 (%(default)s)")
    args = parser.parse_args()
    raise_nofile()
    if args.floor_server:
        asyncio.run(floor_server())
        return
    if args.flooders:
        asyncio.run(flooders(args.flooders))
        return
    if args.rounds < ROUNDS:
        parser.error(f"--rounds must be at least {ROUNDS}")
    node = node_available()
    if not node:
        print("no node with ws installed: no Node baseline", file=sys.stderr, flush=True)
    rounds = asyncio.run(all_rounds(args.rounds, node))
    offered = rounds[0]["floor"]["offered"]

    def each(kind: str, key: str) -> list[float]:
        return [r[kind][key] for r in rounds]

    def ratios(top: tuple[str, str], bottom: tuple[str, str]) -> list[float]:
        return [round(r[top[0]][top[1]] / r[bottom[0]][bottom[1]], 3) for r in rounds]

    throughput_ratios = ratios(("ours", "throughput"), ("floor", "throughput"))
    cpu_ratios = ratios(("ours", "cpu_us_per_msg"), ("floor", "cpu_us_per_msg"))
    mem_ratios = ratios(("ours", "kib_per_conn"), ("floor", "kib_per_conn"))
    flood_ratios = ratios(("flood", "flood_p99_ms"), ("flood", "calm_p99_ms"))
    for name, kind in (("floor (bare websockets forwarder)", "floor"), ("anonchat-relay", "ours")):
        print(
            f"{name:36s} {statistics.median(each(kind, 'throughput')):9.0f} msgs/s   "
            f"p50 {statistics.median(each(kind, 'p50_ms')):.2f} ms   "
            f"p99 {statistics.median(each(kind, 'p99_ms')):.2f} ms at {offered:.0f} msgs/s   "
            f"{statistics.median(each(kind, 'kib_per_conn')):.1f} KiB/conn"
        )
    if node:
        print(
            f"{'Node ws forwarder':36s} {statistics.median(each('node', 'throughput')):9.0f} "
            f"msgs/s   {statistics.median(each('node', 'cpu_us_per_msg')):.2f} us CPU/msg, "
            f"against {statistics.median(each('ours', 'cpu_us_per_msg')):.2f} for ours and "
            f"{statistics.median(each('floor', 'cpu_us_per_msg')):.2f} for the floor"
        )
    flooded = statistics.median(each("flood", "flood_p99_ms"))
    calm = statistics.median(each("flood", "calm_p99_ms"))
    print(
        f"{f'anonchat-relay, {FLOODERS} flooders':36s} p99 {flooded:.2f} ms against "
        f"{calm:.2f} ms without, at {FLOOD_CALM_MSGS_PER_S} msgs/s   "
        f"(medians of {len(rounds)} rounds)"
    )
    figures = {
        "throughput_ratio": median(throughput_ratios),
        "p99_ms": median(each("ours", "p99_ms")),
        "mem_per_conn_ratio": median(mem_ratios),
        # The load generator shares this 2-core machine and does more per message for ours
        # (a reply to read, an envelope to decode), so the delivered rate above is partly the
        # client's limit; the server's own CPU per forwarded message isolates the relay.
        # Ours over the floor's: below 1, ours spends less CPU per forwarded message.
        "cpu_per_msg_ratio": median(cpu_ratios),
        "ours_cpu_us_per_msg": median(each("ours", "cpu_us_per_msg"), 2),
        "floor_cpu_us_per_msg": median(each("floor", "cpu_us_per_msg"), 2),
        "ours_msgs_per_s": round(statistics.median(each("ours", "throughput"))),
        "floor_msgs_per_s": round(statistics.median(each("floor", "throughput"))),
        "offered_msgs_per_s": round(offered),
        "ours_p50_ms": median(each("ours", "p50_ms")),
        "floor_p50_ms": median(each("floor", "p50_ms")),
        "floor_p99_ms": median(each("floor", "p99_ms")),
        "ours_kib_per_conn": median(each("ours", "kib_per_conn"), 2),
        "floor_kib_per_conn": median(each("floor", "kib_per_conn"), 2),
        # Other clients' p99 while FLOODERS connections flood, against no flood, same relay.
        "flood_p99_ratio": median(flood_ratios),
        "flood_p99_ms": median(each("flood", "flood_p99_ms")),
        "calm_p99_ms": median(each("flood", "calm_p99_ms")),
        # The relay's CPU, as a share of one core, with and without the flood.
        "flood_relay_cpu": median(each("flood", "flood_relay_cpu")),
        "calm_relay_cpu": median(each("flood", "calm_relay_cpu")),
        "flood_calm_msgs_per_s": FLOOD_CALM_MSGS_PER_S,
        "flooders": FLOODERS,
        "flood_frames_per_s_each": FLOOD_FRAMES_PER_S,
        "rounds": len(rounds),
        "throughput_ratio_rounds": throughput_ratios,
        "cpu_per_msg_ratio_rounds": cpu_ratios,
        "mem_per_conn_ratio_rounds": mem_ratios,
        "flood_p99_ratio_rounds": flood_ratios,
        "pairs": PAIRS,
        "payload_bytes": PAYLOAD,
        "idle_connections": IDLE_CONNECTIONS,
    }
    if node:
        node_ratios = ratios(("ours", "cpu_us_per_msg"), ("node", "cpu_us_per_msg"))
        figures["vs_node_ws_cpu_ratio"] = median(node_ratios)
        figures["vs_node_ws_cpu_ratio_rounds"] = node_ratios
        figures["node_ws_cpu_us_per_msg"] = median(each("node", "cpu_us_per_msg"), 2)
        figures["node_ws_msgs_per_s"] = round(statistics.median(each("node", "throughput")))
        figures["vs_node_ws_throughput_ratio"] = median(
            ratios(("ours", "throughput"), ("node", "throughput"))
        )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
