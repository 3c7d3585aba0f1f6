"""Three relay processes on one Redis on 127.0.0.1: every send under concurrent load counts
the subscribers that exist, a new subscriber hears every send after its ``ok`` (also where a
relay kept a mailbox's sends to itself), and a relay killed is noticed within a second."""

from __future__ import annotations

import asyncio
import random
import shutil
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from relay import wire
from tests.e2e.test_relay import Peer, aio, open_peer
from tests.e2e.test_relay_backplane import RedisServer, health, start_relay
from tests.relay.helpers import MailboxKey, RelayProcess

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed"),
]

SENDERS = 50
SENDS = 40
# Every client here is 127.0.0.1: lift the per-address budgets meant for many clients behind
# one address (the per-connection ones stay).
ONE_ADDRESS = (
    *("--address-send-rate", "100000", "--address-send-burst", "100000"),
    *("--address-subscribe-rate", "100000", "--address-subscribe-burst", "100000"),
)


class Three:
    def __init__(self, tmp: Path) -> None:
        self.secret = tmp / "secret"
        self.secret.write_bytes(b"three relays\n")
        self.redis = RedisServer(tmp / "redis")
        self.relays = [start_relay(self.redis, self.secret, *ONE_ADDRESS) for _ in range(3)]

    def urls(self) -> list[str]:
        return [r.url for r in self.relays]

    def stop(self) -> None:
        for proc in self.relays:
            if proc.proc.poll() is None:
                code, log = proc.stop()
                assert code == 0, log
                assert "Traceback" not in log, log
        self.redis.stop()


@pytest.fixture(scope="module")
def three(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Three]:
    made = Three(tmp_path_factory.mktemp("three"))
    try:
        yield made
    finally:
        made.stop()


async def sub(url: str, key: MailboxKey) -> Peer:
    peer = await open_peer(url)
    assert await peer.subscribe(key) == wire.Ok(1)
    return peer


@aio
async def test_fifty_concurrent_senders_never_hear_a_false_offline(three: Three) -> None:
    """50 senders spread over the relays, each pipelining its sends to a receiver on another
    relay, on its own, or on two relays at once: every `sent` counts at least one, and every
    receiver gets every payload."""
    urls = three.urls()
    rng = random.Random(20)
    receivers: list[list[Peer]] = []
    keys: list[MailboxKey] = []
    senders: list[Peer] = []
    for i in range(SENDERS):
        key = MailboxKey.generate()
        home = i % 3
        # A third across relays, a third on the sender's own relay, a third on two relays.
        where = [(home + 1) % 3] if i % 3 == 0 else [home] if i % 3 == 1 else [home, (home + 2) % 3]
        receivers.append([await sub(urls[r], key) for r in where])
        keys.append(key)
        senders.append(await open_peer(urls[home]))

    async def pump(i: int) -> list[wire.Frame]:
        sender, key = senders[i], keys[i]
        await asyncio.sleep(rng.random() * 0.05)
        for rid in range(1, SENDS + 1):
            await sender.request(wire.Send(rid, key.mailbox, b"%d:%d" % (i, rid)))
        return [await sender.recv(20) for _ in range(SENDS)]

    replies = await asyncio.gather(*(pump(i) for i in range(SENDERS)))
    for i, got in enumerate(replies):
        counts = [frame.delivered for frame in got if isinstance(frame, wire.Sent)]
        assert [frame.request_id for frame in got] == list(range(1, SENDS + 1))  # in order
        assert counts == [len(receivers[i])] * SENDS, (i, counts)
    for i, peers in enumerate(receivers):
        for peer in peers:
            got = [await peer.recv(20) for _ in range(SENDS)]
            assert got == [
                wire.Deliver(keys[i].mailbox, b"%d:%d" % (i, rid)) for rid in range(1, SENDS + 1)
            ]
            assert await peer.quiet(0.05)
    for peer in senders + [p for peers in receivers for p in peers]:
        await peer.ws.close()


@aio
async def test_a_new_subscriber_hears_every_send_after_its_ok(three: Three) -> None:
    """A mailbox held on relay 1 alone costs Redis nothing; a subscriber that joins on relay
    2 or 3 gets the very next send made on relay 1 after its `ok`, and when it leaves, relay
    1 keeps the sends to itself again."""
    one, two, three_url = three.urls()
    key = MailboxKey.generate()
    first = await sub(one, key)
    sender = await open_peer(one)
    published = publishes(three)
    for rid in range(1, 21):
        await sender.request(wire.Send(rid, key.mailbox, b"alone"))
        assert await sender.recv() == wire.Sent(rid, 1)
        assert await first.recv() == wire.Deliver(key.mailbox, b"alone")
    assert publishes(three) == published  # relay 1 kept them to itself: Redis saw none
    rid = 20
    for round_ in range(12):
        rid += 1
        await sender.request(wire.Send(rid, key.mailbox, b"alone"))
        assert await sender.recv() == wire.Sent(rid, 1)
        assert await first.recv() == wire.Deliver(key.mailbox, b"alone")
        joiner = await sub(two if round_ % 2 else three_url, key)
        rid += 1
        await sender.request(wire.Send(rid, key.mailbox, b"joined"))
        assert await sender.recv() == wire.Sent(rid, 2)
        assert await joiner.recv() == wire.Deliver(key.mailbox, b"joined")
        assert await first.recv() == wire.Deliver(key.mailbox, b"joined")
        await joiner.request(wire.Unsubscribe(2, key.mailbox))
        assert await joiner.recv() == wire.Ok(2)
        await joiner.ws.close()
    for peer in (first, sender):
        await peer.ws.close()


@aio
async def test_a_killed_relay_is_noticed_within_a_second(tmp_path: Path) -> None:
    made = Three(tmp_path)
    try:
        one, _, doomed = made.relays
        assert health(one) == "ok\nbackplane up\n"
        key = MailboxKey.generate()
        held = await sub(doomed.url, key)
        watcher = await open_peer(one.url)
        await watcher.request(wire.Watch(1, (key.mailbox,)))
        assert await watcher.recv() == wire.Watching(1, (key.mailbox,))
        sender = await open_peer(one.url)
        await sender.request(wire.Send(1, key.mailbox, b"before"))
        assert await sender.recv() == wire.Sent(1, 1)
        await asyncio.sleep(1.1)  # past the presence interval of the watching reply
        killed = time.monotonic()
        doomed.proc.kill()
        assert await watcher.recv(1.5) == wire.Presence(key.mailbox, False)
        noticed = time.monotonic() - killed
        assert noticed < 1.0, noticed
        await sender.request(wire.Send(2, key.mailbox, b"after"))
        assert await sender.recv() == wire.Sent(2, 0)
        held.ws.transport.abort()
        for peer in (watcher, sender):
            await peer.ws.close()
        doomed.proc.wait(10)
        made.relays.remove(doomed)
    finally:
        made.stop()


def publishes(made: Three) -> int:
    calls: int = made.redis.client().info("commandstats")["cmdstat_publish"]["calls"]
    return calls


def test_relays_notice_each_other(three: Three) -> None:
    """Each relay knows the two others, as /metrics says."""
    for proc in three.relays:
        assert relays_known(proc) == 2


def relays_known(proc: RelayProcess) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{proc.port}/metrics", timeout=5) as r:
        text = r.read().decode()
    for line in text.splitlines():
        if line.startswith("anonchat_relay_backplane_relays "):
            return int(line.split()[1])
    raise AssertionError("no relays gauge")
