"""RelayPool against real relay processes on 127.0.0.1: deliver, offline, presence, refusal."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from app.net import (
    Backoff,
    ConnectionChanged,
    ConnectionState,
    Delivered,
    MailboxPresence,
    RelayPool,
    RelayRefused,
    RelayUnavailable,
)
from relay.wire import ErrorCode
from tests.net.helpers import Recorder, RelayProcess, free_port
from tests.relay.helpers import MailboxKey

FAST = Backoff(base=0.05, factor=2, cap=0.4)


@pytest.fixture(scope="module")
def relay() -> Iterator[RelayProcess]:
    process = RelayProcess()
    yield process
    process.stop()


def pool_for(recorder: Recorder) -> RelayPool:
    return RelayPool(recorder, backoff=FAST, request_timeout=5.0)


def test_a_payload_sent_by_one_pool_is_delivered_to_the_subscribed_other(
    relay: RelayProcess,
) -> None:
    async def main() -> None:
        alice_events, bob_events = Recorder(), Recorder()
        alice, bob = pool_for(alice_events), pool_for(bob_events)
        key = MailboxKey.generate()
        try:
            assert await alice.subscribe(relay.url, key.mailbox, key.signer) is True
            assert alice.state(relay.url) is ConnectionState.ONLINE
            assert await bob.send(relay.url, key.mailbox, b"ciphertext 1") == 1
            event = await alice_events.wait_for(lambda e: isinstance(e, Delivered))
            assert event == Delivered(relay.url, key.mailbox, b"ciphertext 1")
            await alice.unsubscribe(relay.url, key.mailbox)
            assert await bob.send(relay.url, key.mailbox, b"ciphertext 2") == 0
        finally:
            await asyncio.gather(alice.close(), bob.close())
        assert alice_events.of(Delivered) == [event]
        states = [e.state for e in bob_events.of(ConnectionChanged)]
        assert states[0] is ConnectionState.CONNECTING
        assert ConnectionState.ONLINE in states
        assert states[-1] is ConnectionState.CLOSED

    asyncio.run(main())


def test_sending_to_a_mailbox_nobody_holds_reports_offline(relay: RelayProcess) -> None:
    async def main() -> None:
        pool = pool_for(Recorder())
        try:
            assert await pool.send(relay.url, MailboxKey.generate().mailbox, b"x") == 0
        finally:
            await pool.close()

    asyncio.run(main())


def test_watchers_hear_a_mailbox_come_online_and_go_offline(relay: RelayProcess) -> None:
    async def main() -> None:
        watcher_events = Recorder()
        watcher, owner = pool_for(watcher_events), pool_for(Recorder())
        key, early = MailboxKey.generate(), MailboxKey.generate()
        try:
            await owner.subscribe(relay.url, early.mailbox, early.signer)
            online = await watcher.watch(relay.url, [key.mailbox, early.mailbox])
            assert online == frozenset({early.mailbox})
            await owner.subscribe(relay.url, key.mailbox, key.signer)
            up = MailboxPresence(relay.url, key.mailbox, True)
            await watcher_events.wait_for(lambda e: e == up)
            await owner.unsubscribe(relay.url, key.mailbox)
            down = MailboxPresence(relay.url, key.mailbox, False)
            await watcher_events.wait_for(lambda e: e == down)
            await watcher.unwatch(relay.url, [early.mailbox])
            mark = watcher_events.mark()
            await owner.unsubscribe(relay.url, early.mailbox)
            await owner.subscribe(relay.url, key.mailbox, key.signer)
            await watcher_events.wait_for(lambda e: e == up, since=mark)
            assert all(
                e.mailbox != early.mailbox
                for e in watcher_events.events[mark:]
                if isinstance(e, MailboxPresence)
            )
        finally:
            await asyncio.gather(watcher.close(), owner.close())

    asyncio.run(main())


def test_a_subscription_the_relay_refuses_raises_and_is_not_replayed(relay: RelayProcess) -> None:
    async def main() -> None:
        pool = pool_for(Recorder())
        key, impostor = MailboxKey.generate(), MailboxKey.generate()

        def wrong_key(challenge: bytes) -> tuple[bytes, bytes]:
            _, sig = impostor.signer(challenge)
            return key.public, sig

        try:
            with pytest.raises(RelayRefused) as caught:
                await pool.subscribe(relay.url, key.mailbox, wrong_key)
            assert caught.value.code == ErrorCode.BAD_SIGNATURE
            assert await pool.send(relay.url, key.mailbox, b"x") == 0
        finally:
            await pool.close()

    asyncio.run(main())


def test_with_no_relay_calls_fail_fast_or_wait_to_be_replayed() -> None:
    async def main() -> None:
        events = Recorder()
        pool = pool_for(events)
        url = f"ws://127.0.0.1:{free_port()}/"
        key = MailboxKey.generate()
        try:
            assert await pool.subscribe(url, key.mailbox, key.signer) is False
            assert await pool.watch(url, [key.mailbox]) == frozenset()
            with pytest.raises(RelayUnavailable):
                await pool.send(url, key.mailbox, b"x")
            backing = await events.wait_for(
                lambda e: (
                    isinstance(e, ConnectionChanged) and e.state is ConnectionState.BACKING_OFF
                )
            )
            assert isinstance(backing, ConnectionChanged)
            assert backing.retry_in is not None
            assert 0 < backing.retry_in <= FAST.cap
        finally:
            await pool.close()
        assert pool.state(url) is ConnectionState.CLOSED
        with pytest.raises(RelayUnavailable):
            await pool.send(url, key.mailbox, b"x")

    asyncio.run(main())


def test_a_bad_url_is_refused_at_once() -> None:
    async def main() -> None:
        pool = pool_for(Recorder())
        with pytest.raises(ValueError):
            pool.connect("http://127.0.0.1:1/")
        await pool.close()

    asyncio.run(main())


def test_contacts_on_two_relays_are_reached_over_one_connection_each() -> None:
    first, second = RelayProcess(), RelayProcess()

    async def main() -> None:
        events = Recorder()
        receiver, sender = pool_for(events), pool_for(Recorder())
        one, two = MailboxKey.generate(), MailboxKey.generate()
        try:
            await receiver.subscribe(first.url, one.mailbox, one.signer)
            await receiver.subscribe(second.url, two.mailbox, two.signer)
            assert receiver.urls == {first.url, second.url}
            assert await sender.send(second.url, two.mailbox, b"via second") == 1
            assert await sender.send(first.url, one.mailbox, b"via first") == 1
            # A mailbox lives on its own relay only.
            assert await sender.send(second.url, one.mailbox, b"wrong relay") == 0
            for url, key, payload in (
                (first.url, one, b"via first"),
                (second.url, two, b"via second"),
            ):
                wanted = Delivered(url, key.mailbox, payload)
                await events.wait_for(lambda e, wanted=wanted: e == wanted)
        finally:
            await asyncio.gather(receiver.close(), sender.close())
        assert len(events.of(Delivered)) == 2

    try:
        asyncio.run(main())
    finally:
        first.stop()
        second.stop()


def test_a_burst_beyond_the_relays_rate_is_paced_not_refused() -> None:
    relay = RelayProcess(None, "--send-rate", "50", "--send-burst", "20")

    async def main() -> None:
        events = Recorder()
        receiver, sender = pool_for(events), pool_for(Recorder())
        key = MailboxKey.generate()
        try:
            await receiver.subscribe(relay.url, key.mailbox, key.signer)
            payloads = [f"message {i}".encode() for i in range(80)]
            results = await asyncio.gather(
                *(sender.send(relay.url, key.mailbox, p) for p in payloads)
            )
            assert results == [1] * len(payloads)
            await events.wait_for(lambda e: isinstance(e, Delivered) and e.payload == payloads[-1])
        finally:
            await asyncio.gather(receiver.close(), sender.close())
        received = [e.payload for e in events.of(Delivered) if isinstance(e, Delivered)]
        assert received == payloads  # in order, each once

    try:
        asyncio.run(main())
    finally:
        relay.stop()


def test_a_relays_later_lanes_open_after_a_random_wait_of_at_most_the_stagger(
    relay: RelayProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What docs/threat-model.md says of per-contact connections: the first lane of a relay
    opens at once, every later one after random.uniform(0, stagger) seconds."""
    import app.net.pool as pool_module

    asked: list[tuple[float, float]] = []

    def uniform(low: float, high: float) -> float:
        asked.append((low, high))
        return 0.6

    monkeypatch.setattr(pool_module.random, "uniform", uniform)

    async def body() -> None:
        events: list[tuple[float, str]] = []
        loop = asyncio.get_running_loop()
        began = loop.time()

        def seen(event: object) -> None:
            if isinstance(event, ConnectionChanged) and event.state is ConnectionState.ONLINE:
                events.append((loop.time() - began, "online"))

        pool = RelayPool(seen, backoff=FAST, request_timeout=5.0, stagger=2.0)
        pool.connect(relay.url, "first")
        pool.connect(relay.url, "later")
        for _ in range(100):
            if len(events) == 2:
                break
            await asyncio.sleep(0.05)
        await pool.close()
        assert asked == [(0, 2.0)]  # only the later lane waits, drawn over the whole stagger
        assert len(events) == 2
        assert events[0][0] < 0.5 <= events[1][0]

    asyncio.run(body())
