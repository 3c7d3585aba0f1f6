"""Two relay processes sharing routing through one real Redis on 127.0.0.1 (pub/sub only).

Redis runs without persistence in a temporary directory; at the end it must hold no key, have
executed no write command and have written no file.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from relay import wire
from tests.e2e.test_relay import Peer, aio, open_peer
from tests.e2e.test_relay_nowrite import exercise, file_changes, strace
from tests.relay.helpers import MailboxKey, RelayProcess

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed"),
]

# What a relay may ask of Redis (and what this test asks itself): nothing that writes.
ALLOWED = {
    "publish",
    "subscribe",
    "unsubscribe",
    "pubsub|numsub",
    "ping",
    "client|setinfo",
    "hello",
    "info",
    "dbsize",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """``redis-server`` on 127.0.0.1 with no persistence, its working directory a temp dir."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(exist_ok=True)
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        cmd = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        cmd += ["--save", "", "--appendonly", "no", "--dir", str(self.dir), "--logfile", ""]
        self.proc = subprocess.Popen(
            cmd, cwd=self.dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                if self.client().ping():
                    return
            except redis.ConnectionError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("redis-server did not start")

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=5)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)

    def assert_holds_nothing(self) -> None:
        """No key, no write since start, only pub/sub commands, no file on disk."""
        client = self.client()
        assert client.dbsize() == 0
        assert client.info("keyspace") == {}
        assert client.info("persistence")["rdb_changes_since_last_save"] == 0
        used = {name.removeprefix("cmdstat_") for name in client.info("commandstats")}
        assert used <= ALLOWED, used - ALLOWED
        client.close()
        assert list(self.dir.iterdir()) == []


def start_relay(server: RedisServer, secret: Path, *args: str) -> RelayProcess:
    return RelayProcess("--redis", server.url, "--redis-secret-file", str(secret), *args)


def health(proc: RelayProcess) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{proc.port}/healthz", timeout=5) as r:
        assert r.status == 200
        body: str = r.read().decode()
        return body


def wait_health(proc: RelayProcess, state: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while (body := health(proc)) != f"ok\nbackplane {state}\n":
        assert time.monotonic() < deadline, body
        time.sleep(0.1)


class Cluster:
    def __init__(self, tmp: Path) -> None:
        self.secret = tmp / "secret"
        self.secret.write_bytes(b"a cluster secret\n")
        self.redis = RedisServer(tmp / "redis")
        self.a = start_relay(self.redis, self.secret)
        self.b = start_relay(self.redis, self.secret)

    def stop(self) -> None:
        for proc in (self.a, self.b):
            code, log = proc.stop()
            assert code == 0, log
            assert "Traceback" not in log, log
        self.redis.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    made = Cluster(tmp_path_factory.mktemp("cluster"))
    try:
        yield made
    finally:
        made.stop()


async def sub(url: str, key: MailboxKey) -> Peer:
    peer = await open_peer(url)
    assert await peer.subscribe(key) == wire.Ok(1)
    return peer


async def send(peer: Peer, rid: int, key: MailboxKey, payload: bytes) -> wire.Frame:
    await peer.request(wire.Send(rid, key.mailbox, payload))
    return await peer.recv()


@aio
async def test_send_on_a_reaches_a_subscriber_on_b(cluster: Cluster) -> None:
    assert health(cluster.a) == health(cluster.b) == "ok\nbackplane up\n"
    key = MailboxKey.generate()
    receiver = await sub(cluster.b.url, key)
    sender = await open_peer(cluster.a.url)
    assert await send(sender, 1, key, b"across relays") == wire.Sent(1, 1)
    assert await receiver.recv() == wire.Deliver(key.mailbox, b"across relays")
    # A subscriber on each relay: one connection here plus one relay elsewhere.
    local = await sub(cluster.a.url, key)
    assert await send(sender, 2, key, bytes(range(256))) == wire.Sent(2, 2)
    assert await local.recv() == wire.Deliver(key.mailbox, bytes(range(256)))
    assert await receiver.recv() == wire.Deliver(key.mailbox, bytes(range(256)))
    # The relay that holds it locally hears its own publish once, not twice.
    assert await local.quiet()
    back = await open_peer(cluster.b.url)
    assert await send(back, 3, key, b"from b") == wire.Sent(3, 2)


@aio
async def test_offline_when_nobody_anywhere_subscribes(cluster: Cluster) -> None:
    key = MailboxKey.generate()
    on_a, on_b = await open_peer(cluster.a.url), await open_peer(cluster.b.url)
    assert await send(on_a, 1, key, b"x") == wire.Sent(1, 0)
    assert await send(on_b, 1, key, b"x") == wire.Sent(1, 0)
    gone = await sub(cluster.b.url, key)
    await gone.ws.close()
    await asyncio.sleep(0.3)
    assert await send(on_a, 2, key, b"x") == wire.Sent(2, 0)


@aio
async def test_presence_across_relays(cluster: Cluster) -> None:
    key = MailboxKey.generate()
    watcher = await open_peer(cluster.a.url)
    await watcher.request(wire.Watch(1, (key.mailbox,)))
    assert await watcher.recv() == wire.Watching(1, ())
    remote = await sub(cluster.b.url, key)
    assert await watcher.recv() == wire.Presence(key.mailbox, True)
    # A late watcher on A learns at once that B holds it.
    late = await open_peer(cluster.a.url)
    await late.request(wire.Watch(1, (key.mailbox,)))
    assert await late.recv() == wire.Watching(1, (key.mailbox,))
    # A second subscriber, on A: still one mailbox online, no new notice.
    local = await sub(cluster.a.url, key)
    assert await watcher.quiet(0.3)
    await remote.ws.close()
    assert await watcher.quiet(0.5)  # A's own subscriber keeps it online
    await local.request(wire.Unsubscribe(2, key.mailbox))
    assert await local.recv() == wire.Ok(2)
    assert await watcher.recv() == wire.Presence(key.mailbox, False)
    assert await late.recv() == wire.Presence(key.mailbox, False)
    # And back: a subscriber on B, then B's connection drops.
    again = await sub(cluster.b.url, key)
    assert await watcher.recv() == wire.Presence(key.mailbox, True)
    await again.ws.close()
    assert await watcher.recv() == wire.Presence(key.mailbox, False)


def test_metrics_count_backplane_traffic(cluster: Cluster) -> None:
    with urllib.request.urlopen(f"http://127.0.0.1:{cluster.a.port}/metrics", timeout=5) as r:
        text = r.read().decode()
    assert "anonchat_relay_backplane_up 1\n" in text
    published = re.search(r"^anonchat_relay_backplane_published_total (\d+)$", text, re.M)
    assert published is not None
    assert int(published.group(1)) >= 3


def test_redis_holds_nothing(cluster: Cluster) -> None:
    """Runs after the traffic above: Redis kept no key, no payload, and wrote nothing."""
    cluster.redis.assert_holds_nothing()
    channels = cluster.redis.client().pubsub_channels()
    # Once everyone left only the relays' standing subscriptions remain: the control channel
    # and each relay's own node channel.
    assert len([c for c in channels if c.startswith(b"anonchat:v1:c:")]) == 1
    assert len([c for c in channels if c.startswith(b"anonchat:v1:n:")]) == 2
    assert len(channels) == 3


@aio
async def test_redis_down_serves_local_traffic_and_recovers(tmp_path: Path) -> None:
    made = Cluster(tmp_path)
    try:
        key, local_key = MailboxKey.generate(), MailboxKey.generate()
        remote = await sub(made.b.url, key)
        watcher = await open_peer(made.a.url)
        await watcher.request(wire.Watch(1, (key.mailbox,)))
        assert await watcher.recv() == wire.Watching(1, (key.mailbox,))

        made.redis.stop()
        await asyncio.to_thread(wait_health, made.a, "down")
        await asyncio.to_thread(wait_health, made.b, "down")
        # A can no longer see B's subscriber, and says so.
        assert await watcher.recv() == wire.Presence(key.mailbox, False)
        sender = await open_peer(made.a.url)
        assert await send(sender, 1, key, b"unreachable") == wire.Sent(1, 0)
        here = await sub(made.a.url, local_key)
        assert await send(sender, 2, local_key, b"local") == wire.Sent(2, 1)
        assert await here.recv() == wire.Deliver(local_key.mailbox, b"local")

        made.redis.start()
        await asyncio.to_thread(wait_health, made.a, "up")
        await asyncio.to_thread(wait_health, made.b, "up")
        assert await watcher.recv(10) == wire.Presence(key.mailbox, True)
        assert await send(sender, 3, key, b"back") == wire.Sent(3, 1)
        assert await remote.recv() == wire.Deliver(key.mailbox, b"back")
        from_b = await open_peer(made.b.url)
        assert await send(from_b, 1, local_key, b"to a") == wire.Sent(1, 1)
        assert await here.recv() == wire.Deliver(local_key.mailbox, b"to a")
        for peer in (sender, here, from_b):
            await peer.ws.close()
        # B shuts down: it tells the cluster it no longer holds the mailbox, well before the
        # periodic recount would notice.
        made.b.terminate()
        assert await watcher.recv(3) == wire.Presence(key.mailbox, False)
        await watcher.ws.close()
        await asyncio.sleep(0.3)
        made.redis.assert_holds_nothing()
    finally:
        made.stop()


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace not installed")
def test_relay_with_backplane_writes_no_file(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis")
    secret = tmp_path / "secret"
    secret.write_bytes(b"s")
    trace = tmp_path / "trace"
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o555)
    args = ("--redis", server.url, "--redis-secret-file", str(secret))
    proc = RelayProcess(*args, prefix=strace(trace), cwd=home)
    try:
        asyncio.run(exercise(proc.url))
    finally:
        code, log = proc.stop()
        server.stop()
    assert code == 0, log
    assert file_changes(trace) == []
    assert list(home.iterdir()) == []
    assert list(server.dir.iterdir()) == []
