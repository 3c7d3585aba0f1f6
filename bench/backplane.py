"""Backplane benchmark: relays sharing routing, against one relay alone, same load, same run.

Load: 20 sender/receiver pairs, 256-byte payloads, each sender keeping at most 32 messages
in flight (sent, not yet received), written from docs/protocol.md alone (msgpack envelopes
packed and read directly). Relays run with the send budgets lifted. Cases:

- ``single``: one relay, no backplane, both ends of every pair on it (the baseline);
- ``local``: two relays on Redis, both ends on relay 1 (what a backplane costs a relay's own
  traffic);
- ``cross``: two relays on Redis, senders on relay 1, receivers on relay 2;
- ``nats_local`` and ``nats_cross``: the same on NATS core (``nats-server``, nats-py), the
  engine compared: a relay process whose backplane is NATS_Backplane below, built for the
  send path only (hold, publish, deliver; no presence), the best nats-py makes of it: no
  echo, local sends published without waiting, cross sends as requests answered by the
  relay that delivered them, "no responders" meaning offline.

CPU per message is the relays' and the engine server's CPU over the delivered messages.
Each case runs at least five rounds on fresh relays (the engine servers stay up). A round
opens and closes with the baseline, whose figure for the round is the mean of the two, and
runs the other cases in between, in turn one way and the other; figures are medians, each
ratio the median of the rounds' ratios. Every ``sent`` is read: one that says
``delivered: 0`` while its receiver is subscribed is a false offline, counted over the whole
run.

Kill: a watcher on relay 1 watches a mailbox held only on relay 2; relay 2 is SIGKILLed at a
random moment (1 to 2 s after the watcher was told it is online); the figure is the time until
the watcher is told it is offline, and until a send on relay 1 says ``delivered: 0``.

The last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from websockets.asyncio.client import ClientConnection, connect

SCRIPT = Path(__file__).resolve()
ROOT = SCRIPT.parent.parent
sys.path.insert(0, str(ROOT))

from relay import wire  # noqa: E402

PAIRS = 20
PAYLOAD = 256
WINDOW = 32
WARMUP = 1.0
SECONDS = 3.0
ROUNDS = 5
KILLS = 5
CASES = ("single", "local", "cross", "nats_local", "nats_cross")
COUNTS = ("false_offline", "replies")  # added up over a case's measurements, not averaged
RELAY_ARGS = [
    *("--port", "0", "--log-level", "INFO"),
    *("--send-rate", "1e9", "--send-burst", "1000000000"),
    *("--address-send-rate", "1e9", "--address-send-burst", "1000000000"),
    *("--address-subscribe-rate", "1e9", "--address-subscribe-burst", "1000000000"),
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- processes -----------------------------------------------------------------------------------


class Engine:
    """redis-server or nats-server on 127.0.0.1, nothing persisted, for the whole run."""

    def __init__(self, kind: str, directory: Path) -> None:
        self.kind = kind
        port = free_port()
        if kind == "redis":
            cmd = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
            cmd += ["--appendonly", "no", "--dir", str(directory), "--logfile", ""]
            self.url = f"redis://127.0.0.1:{port}/0"
        else:  # NATS core: no JetStream, nothing stored
            cmd = ["nats-server", "-a", "127.0.0.1", "-p", str(port)]
            self.url = f"nats://127.0.0.1:{port}"
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"{kind} did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


class RelayChild:
    def __init__(self, engine: Engine | None, secret: Path | None) -> None:
        env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
        if engine is None:
            cmd = [sys.executable, "-m", "relay", *RELAY_ARGS]
        elif engine.kind == "redis":
            assert secret is not None
            cmd = [sys.executable, "-m", "relay", *RELAY_ARGS, "--redis", engine.url]
            cmd += ["--redis-secret-file", str(secret)]
        else:
            cmd = [sys.executable, str(SCRIPT), "--nats-relay", engine.url, *RELAY_ARGS]
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            found = re.search(r"listening on (ws://127\.0\.0\.1:\d+/)", line)
            if found:
                self.url = found.group(1)
                return
        raise RuntimeError("relay did not start")

    def cpu(self) -> float:
        return cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
        self.proc.wait(30)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)


# -- clients, from docs/protocol.md ------------------------------------------------------------


def new_mailbox() -> tuple[Ed25519PrivateKey, bytes, bytes]:
    private = Ed25519PrivateKey.generate()
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return private, public, wire.mailbox_id(public)


async def open_client(url: str) -> tuple[ClientConnection, bytes]:
    ws = await connect(url, compression=None, max_size=None)
    hello = msgpack.unpackb(await ws.recv())
    assert hello["t"] == "hello"
    return ws, hello["challenge"]


async def subscribed(url: str) -> tuple[ClientConnection, bytes]:
    """A connection subscribed to a fresh mailbox, once the relay said ok."""
    private, public, mailbox = new_mailbox()
    ws, challenge = await open_client(url)
    sig = private.sign(wire.subscribe_signed_bytes(challenge, mailbox))
    frame = {"v": 1, "t": "subscribe", "rid": 1, "mailbox": mailbox, "key": public, "sig": sig}
    await ws.send(msgpack.packb(frame))
    assert msgpack.unpackb(await ws.recv()) == {"v": 1, "t": "ok", "rid": 1}
    return ws, mailbox


def send_frame(rid: int, mailbox: bytes, payload: bytes) -> bytes:
    frame = {"v": 1, "t": "send", "rid": rid, "mailbox": mailbox, "payload": payload}
    packed: bytes = msgpack.packb(frame)
    return packed


class Pair:
    def __init__(self) -> None:
        self.received = 0
        self.offline = 0  # sent replies with delivered 0
        self.replies = 0
        self.moved = asyncio.Event()

    async def open(self, tx_url: str, rx_url: str) -> None:
        self.rx, self.mailbox = await subscribed(rx_url)
        self.tx, _ = await open_client(tx_url)

    async def read_rx(self) -> None:
        async for _ in self.rx:
            self.received += 1
            self.moved.set()

    async def read_tx(self) -> None:
        async for data in self.tx:
            reply = msgpack.unpackb(data)
            if reply.get("t") == "sent":
                self.replies += 1
                if reply["delivered"] == 0:
                    self.offline += 1

    async def close(self) -> None:
        await self.tx.close()
        await self.rx.close()


async def load(tx_url: str, rx_url: str, cpu: Any) -> dict[str, float]:
    """Delivered msgs/s, CPU µs per delivered message, and false offlines, for one case."""
    pairs = [Pair() for _ in range(PAIRS)]
    for pair in pairs:
        await pair.open(tx_url, rx_url)
    readers = [asyncio.create_task(p.read_rx()) for p in pairs]
    readers += [asyncio.create_task(p.read_tx()) for p in pairs]
    stop = time.monotonic() + WARMUP + SECONDS
    body = bytes(PAYLOAD)

    async def pump(pair: Pair) -> None:
        sent = 0
        while time.monotonic() < stop:
            while sent - pair.received >= WINDOW:
                pair.moved.clear()
                await pair.moved.wait()
            sent += 1
            await pair.tx.send(send_frame(sent, pair.mailbox, body))

    pumps = [asyncio.create_task(pump(p)) for p in pairs]
    await asyncio.sleep(WARMUP)
    before, cpu_before, started = sum(p.received for p in pairs), cpu(), time.monotonic()
    await asyncio.sleep(SECONDS)
    delivered = sum(p.received for p in pairs) - before
    elapsed = time.monotonic() - started
    cpu_used = cpu() - cpu_before
    await asyncio.gather(*pumps)
    await asyncio.sleep(0.5)  # the last replies
    for task in readers:
        task.cancel()
    for pair in pairs:
        await pair.close()
    return {
        "msgs_per_s": delivered / elapsed,
        "cpu_us_per_msg": cpu_used / max(delivered, 1) * 1e6,
        "false_offline": sum(p.offline for p in pairs),
        "replies": sum(p.replies for p in pairs),
    }


async def run_case(case: str, engines: dict[str, Engine], secret: Path) -> dict[str, float]:
    engine = None if case == "single" else engines["nats" if case.startswith("nats") else "redis"]
    count = 1 if engine is None else 2
    relays = [RelayChild(engine, secret) for _ in range(count)]
    try:
        await asyncio.sleep(0.3)
        pids = [r.proc.pid for r in relays] + ([engine.proc.pid] if engine else [])

        def cpu() -> float:
            return sum(cpu_seconds(pid) for pid in pids)

        rx = relays[1].url if case.endswith("cross") else relays[0].url
        return await load(relays[0].url, rx, cpu)
    finally:
        for relay in relays:
            relay.stop()


# -- a relay killed ----------------------------------------------------------------------------


async def kill_once(engine: Engine, secret: Path) -> tuple[float, float]:
    """Seconds from relay 2's SIGKILL until relay 1's watcher is told offline, and until a
    send on relay 1 says ``delivered: 0``."""
    one, two = RelayChild(engine, secret), RelayChild(engine, secret)
    try:
        holder, mailbox = await subscribed(two.url)
        watcher, _ = await open_client(one.url)
        await watcher.send(msgpack.packb({"v": 1, "t": "watch", "rid": 1, "mailboxes": [mailbox]}))
        watching = msgpack.unpackb(await watcher.recv())
        assert watching["online"] == [mailbox], watching
        sender, _ = await open_client(one.url)
        await asyncio.sleep(1.0 + random.random())  # past the presence interval, any phase
        killed = time.monotonic()
        two.kill()
        sends = asyncio.create_task(first_offline_send(sender, mailbox))
        async with asyncio.timeout(30):
            while True:
                frame = msgpack.unpackb(await watcher.recv())
                if frame["t"] == "presence" and not frame["online"]:
                    break
        notice = time.monotonic() - killed
        send_zero = await sends - killed
        holder.transport.abort()
        await watcher.close()
        await sender.close()
        return notice, send_zero
    finally:
        one.stop()
        two.stop()


async def first_offline_send(sender: ClientConnection, mailbox: bytes) -> float:
    """Send every 5 ms until a send is answered ``delivered: 0``; when it was."""
    rid = 0
    while True:
        rid += 1
        await sender.send(send_frame(rid, mailbox, b"x"))
        reply = msgpack.unpackb(await sender.recv())
        if reply["t"] == "sent" and reply["delivered"] == 0:
            return time.monotonic()
        await asyncio.sleep(0.005)


# -- the NATS relay (child process) ------------------------------------------------------------


def run_nats_relay(url: str, argv: list[str]) -> int:
    """``anonchat-relay`` with NATS_Backplane in the place of the Redis one: the relay's own
    code for all else, its ``--redis`` option only switching the backplane on."""
    import functools

    import nats
    from nats.errors import NoRespondersError

    from relay import server
    from relay.backplane import BackplaneCounters
    from relay.cluster import decode_message, payload_head, tag
    from relay.cluster import encode_payload as encode
    from relay.state import Lookup, Relay

    class NATS_Backplane:
        """Hold: SUBSCRIBE, then a flush (the server has it). Send: delivered here already,
        a PUB that nobody waits for (its count is not needed); otherwise a request that
        the relays holding the mailbox answer, "no responders" meaning offline."""

        def __init__(self, relay: Relay, _url: str, key: bytes) -> None:
            self.relay = relay
            self.key = key
            self.up = False
            self.peers = 0
            self.counters = BackplaneCounters()
            self.subs: dict[bytes, Any] = {}
            self.holding: dict[bytes, asyncio.Task[None]] = {}
            self.head = payload_head(os.urandom(16))
            self.outbox: list[tuple[str, bytes]] = []
            self.nc: Any = None
            self.draining: asyncio.Task[None] | None = None
            self.requests: set[asyncio.Task[int]] = set()

        def subject(self, mailbox: bytes) -> str:
            return "anonchat.m." + tag(self.key, b"mailbox", mailbox).decode()

        async def start(self) -> None:
            self.nc = await nats.connect(url, no_echo=True, pending_size=8 * 1024 * 1024)
            self.up = True

        async def close(self) -> None:
            await self.nc.close()

        def hold(self, mailbox: bytes) -> None:
            task = asyncio.get_running_loop().create_task(self._subscribe(mailbox))
            self.holding[mailbox] = task

        async def _subscribe(self, mailbox: bytes) -> None:
            cb = functools.partial(self._message, mailbox)
            self.subs[mailbox] = await self.nc.subscribe(self.subject(mailbox), cb=cb)
            await self.nc.flush()

        async def routed(self, mailbox: bytes) -> None:
            task = self.holding.pop(mailbox, None)
            if task is not None:
                await task

        def release(self, mailbox: bytes) -> None:
            sub = self.subs.pop(mailbox, None)
            if sub is not None:
                asyncio.get_running_loop().create_task(sub.unsubscribe())

        def unwatch(self, mailbox: bytes) -> None:
            pass

        def shared(self, mailbox: bytes) -> bool:
            return True  # NATS does not say who else holds a subject

        async def lookup(self, lookup: Lookup) -> None:
            pass

        def publish(self, mailbox: bytes, payload: bytes, done: Callable[[int], None]) -> None:
            loop = asyncio.get_running_loop()
            data = encode(self.head, payload)
            self.counters.published += 1
            if mailbox in self.relay.subscribers:
                if not self.outbox:
                    self.draining = loop.create_task(self._drain())
                self.outbox.append((self.subject(mailbox), data))
                done(0)
                return
            task = loop.create_task(self._request(mailbox, data))
            task.add_done_callback(lambda t: done(t.result()))
            self.requests.add(task)
            task.add_done_callback(self.requests.discard)

        async def _drain(self) -> None:
            await asyncio.sleep(0)
            outbox, self.outbox = self.outbox, []
            for subject, data in outbox:
                await self.nc.publish(subject, data)

        async def _request(self, mailbox: bytes, data: bytes) -> int:
            try:
                reply = await self.nc.request(self.subject(mailbox), data, timeout=5)
            except NoRespondersError:
                return 0
            return int(reply.data)

        async def _message(self, mailbox: bytes, msg: Any) -> None:
            self.counters.received += 1
            taken = self.relay.deliver_remote(mailbox, decode_message(msg.data).payload)
            if msg.reply:
                await self.nc.publish(msg.reply, b"1" if taken else b"0")

    server.Backplane = NATS_Backplane  # type: ignore[misc,assignment]
    config, _ = server.parse_args([*argv, "--redis", "redis://nats"])
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)s %(name)s %(message)s")
    import uvloop

    return uvloop.run(server.run(config))


# -- the run -------------------------------------------------------------------------------------


async def all_rounds(rounds: int, kills: int) -> dict[str, Any]:
    directory = Path(tempfile.mkdtemp(prefix="backplane-bench-"))
    secret = directory / "secret"
    secret.write_bytes(os.urandom(32).hex().encode())
    engines = {"redis": Engine("redis", directory), "nats": Engine("nats", directory)}
    results: dict[str, list[dict[str, float]]] = {case: [] for case in CASES}
    try:
        for index in range(rounds):
            # The baseline opens and closes each round and counts as the mean of the two, so
            # every case is compared with the machine as it was around it; the other cases
            # take turns in the middle, the other way round every other round.
            middle = list(CASES[1:]) if index % 2 == 0 else list(reversed(CASES[1:]))
            ends = []
            for case in ["single", *middle, "single"]:
                print(f"round {index + 1} of {rounds}: {case}", file=sys.stderr, flush=True)
                result = await run_case(case, engines, secret)
                if case == "single":
                    ends.append(result)
                else:
                    results[case].append(result)
            results["single"].append(
                {
                    key: (ends[0][key] + ends[1][key]) / (1 if key in COUNTS else 2)
                    for key in ends[0]
                }
            )
        notices: list[tuple[float, float]] = []
        for index in range(kills):
            print(f"kill {index + 1} of {kills}", file=sys.stderr, flush=True)
            notices.append(await kill_once(engines["redis"], secret))
    finally:
        for engine in engines.values():
            engine.stop()
        shutil.rmtree(directory, ignore_errors=True)
    return {"results": results, "notices": notices}


def median(values: list[float], digits: int = 3) -> float:
    return round(statistics.median(values), digits)


def report(run: dict[str, Any]) -> dict[str, Any]:
    results: dict[str, list[dict[str, float]]] = run["results"]
    notices: list[tuple[float, float]] = run["notices"]

    def each(case: str, key: str) -> list[float]:
        return [r[key] for r in results[case]]

    def ratios(case: str, key: str, base: str = "single") -> list[float]:
        return [
            round(c[key] / b[key], 3) for c, b in zip(results[case], results[base], strict=True)
        ]

    for case in CASES:
        print(
            f"{case:11s} {statistics.median(each(case, 'msgs_per_s')):9.0f} msgs/s   "
            f"{statistics.median(each(case, 'cpu_us_per_msg')):7.1f} µs CPU/msg   "
            f"false offline {int(sum(each(case, 'false_offline')))} of "
            f"{int(sum(each(case, 'replies')))} sends"
        )
    print(
        f"relay killed: watchers told offline after {median([n for n, _ in notices])} s, "
        f"sends said 0 after {median([s for _, s in notices])} s (medians of {len(notices)})"
    )
    redis_cases = ("local", "cross")
    return {
        "local_with_backplane_vs_single": median(ratios("local", "msgs_per_s")),
        "cross_vs_single": median(ratios("cross", "msgs_per_s")),
        "cross_cpu_ratio": median(ratios("cross", "cpu_us_per_msg")),
        "false_offline": int(sum(sum(each(case, "false_offline")) for case in redis_cases)),
        "offline_notice_s_relay_killed": median([n for n, _ in notices]),
        "offline_send_s_relay_killed": median([s for _, s in notices]),
        "local_cpu_ratio": median(ratios("local", "cpu_us_per_msg")),
        "nats_local_vs_single": median(ratios("nats_local", "msgs_per_s")),
        "nats_cross_vs_single": median(ratios("nats_cross", "msgs_per_s")),
        "nats_cross_cpu_ratio": median(ratios("nats_cross", "cpu_us_per_msg")),
        "nats_false_offline": int(
            sum(sum(each(case, "false_offline")) for case in ("nats_local", "nats_cross"))
        ),
        **{
            f"{case}_msgs_per_s": round(statistics.median(each(case, "msgs_per_s")))
            for case in CASES
        },
        **{f"{case}_cpu_us_per_msg": median(each(case, "cpu_us_per_msg"), 1) for case in CASES},
        "cross_vs_single_rounds": ratios("cross", "msgs_per_s"),
        "local_with_backplane_vs_single_rounds": ratios("local", "msgs_per_s"),
        "cross_cpu_ratio_rounds": ratios("cross", "cpu_us_per_msg"),
        "offline_notice_s_rounds": [round(n, 3) for n, _ in notices],
        "rounds": len(results["single"]),
        "kills": len(notices),
        "pairs": PAIRS,
        "payload_bytes": PAYLOAD,
        "window": WINDOW,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nats-relay", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="at least 5 (%(default)s)")
    parser.add_argument("--kills", type=int, default=KILLS, help="at least 5 (%(default)s)")
    args, rest = parser.parse_known_args()
    if args.nats_relay:
        sys.exit(run_nats_relay(args.nats_relay, rest))
    if args.rounds < ROUNDS or args.kills < KILLS:
        parser.error(f"--rounds and --kills must be at least {ROUNDS} and {KILLS}")
    for tool in ("redis-server", "nats-server"):
        if shutil.which(tool) is None:
            parser.error(f"{tool} is not installed (make bench installs it)")
    run = asyncio.run(all_rounds(args.rounds, args.kills))
    print(json.dumps(report(run)))


if __name__ == "__main__":
    main()
