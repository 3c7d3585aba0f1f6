"""relay.backplane's routing against a recorded link: the commands it pipelines to Redis, and
what it does with Redis's replies and pushed messages, in the order they arrive. No socket."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from relay import wire
from relay.backplane import Backplane
from relay.cluster import (
    Ack,
    Hello,
    Holding,
    Payload,
    cluster_key,
    control_channel,
    encode_message,
    mailbox_channel,
    node_channel,
    presence_channel,
)
from relay.resp import LOST
from relay.state import Lookup, Relay
from tests.relay.helpers import MailboxKey
from tests.relay.test_state import Client

KEY = cluster_key("redis://127.0.0.1", b"secret")
ME = bytes(16)
PEER, OTHER_PEER = bytes([1]) * 16, bytes([2]) * 16


class Link:
    """Stands in for relay.resp.RedisLink: each command, and the callback its reply goes to."""

    def __init__(self) -> None:
        self.log: list[tuple[list[bytes], Callable[[Any], None] | None]] = []
        self.seen = 0
        self.answered = 0

    def command(self, args: list[bytes], callback: Callable[[Any], None] | None = None) -> None:
        self.log.append((list(args), callback))

    def subscription(
        self, verb: bytes, channels: list[bytes], callback: Callable[[Any], None] | None = None
    ) -> None:
        self.log.append(([verb, *channels], callback))

    def oldest(self) -> float | None:
        return None

    def take(self) -> list[list[bytes]]:
        """The commands sent since the last take."""
        taken = [args for args, _ in self.log[self.seen :]]
        self.seen = len(self.log)
        return taken

    def answer(self, *replies: Any) -> None:
        """Redis's replies to the next commands still unanswered, in order (None for those
        whose reply nobody reads)."""
        for reply in replies:
            _, callback = self.log[self.answered]
            self.answered += 1
            if callback is not None:
                callback(reply)


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    asyncio.run(test())


def linked() -> tuple[Relay, Backplane, Link]:
    relay = Relay()
    backplane = Backplane(relay, "redis://127.0.0.1", KEY, node=ME)
    relay.attach(backplane)
    link = Link()
    backplane.link_up(link)  # type: ignore[arg-type]
    assert link.take() == [
        [b"SUBSCRIBE", control_channel(KEY), node_channel(KEY, ME)],
        [b"PUBLISH", control_channel(KEY), encode_message(Hello(ME))],
    ]
    link.answer(None, None)
    return relay, backplane, link


def test_a_hold_is_ok_once_every_other_holder_acknowledged() -> None:
    async def test() -> None:
        relay, backplane, link = linked()
        key = MailboxKey.generate()
        m = key.mailbox
        client = Client(relay)
        hold = client.send(key.subscribe(1, client.hello.challenge))
        note = encode_message(Holding(ME, True, 1))
        assert link.take() == [
            [b"SUBSCRIBE", mailbox_channel(KEY, m)],
            [b"PUBLISH", mailbox_channel(KEY, m), note],
            [b"PUBLISH", presence_channel(KEY, m), note],
        ]
        routed = asyncio.ensure_future(backplane.routed(m))
        link.answer(None, 3)  # three relays hold it: us and two others
        await asyncio.sleep(0)
        assert not routed.done()
        assert backplane.shared(m)
        for peer in (PEER, OTHER_PEER):
            backplane.on_message(node_channel(KEY, ME), encode_message(Ack(peer, 1)))
        await asyncio.wait_for(routed, 1)
        assert hold is not None
        assert backplane.peers == 0  # acknowledgements alone make no acquaintance

    run(test)


def test_alone_until_another_relay_announces_and_is_acknowledged_at_once() -> None:
    async def test() -> None:
        relay, backplane, link = linked()
        key = MailboxKey.generate()
        m = key.mailbox
        client, sender = Client(relay), Client(relay)
        client.send(key.subscribe(1, client.hello.challenge))
        link.answer(1, 1)  # only us
        await backplane.routed(m)
        assert not backplane.shared(m)
        link.take()
        # A send here is ours alone: answered at once, nothing published.
        assert sender.send(wire.Send(5, m, b"x")) is None
        assert sender.take() == [wire.Sent(5, 1)]
        assert link.take() == []
        # Another relay announces it holds the mailbox too: acknowledged, and sends go out.
        backplane.on_message(mailbox_channel(KEY, m), encode_message(Holding(PEER, True, 9)))
        assert link.take() == [[b"PUBLISH", node_channel(KEY, PEER), encode_message(Ack(ME, 9))]]
        assert backplane.shared(m)
        assert backplane.peers == 1
        publish = sender.send(wire.Send(6, m, b"y"))
        assert publish is not None
        # It leaves: recounted, and we are alone again once Redis says so.
        backplane.on_message(mailbox_channel(KEY, m), encode_message(Holding(PEER, False, 10)))
        assert link.take() == [[b"PUBSUB", b"NUMSUB", mailbox_channel(KEY, m)]]
        link.answer(None, None, [mailbox_channel(KEY, m), 1])
        assert not backplane.shared(m)

    run(test)


def test_a_publish_counts_other_relays_only_and_zero_when_the_link_ends() -> None:
    async def test() -> None:
        relay, backplane, link = linked()
        key = MailboxKey.generate()
        m = key.mailbox
        client = Client(relay)
        client.send(key.subscribe(1, client.hello.challenge))
        link.answer(None, 2, None)
        link.take()
        got: list[int] = []
        backplane.publish(m, b"x", got.append)  # we hold it: Redis counts us too
        backplane.publish(bytes(32), b"y", got.append)  # we do not
        first, second = link.take()
        assert first == [b"PUBLISH", mailbox_channel(KEY, m), encode_message(Payload(ME, b"x"))]
        assert second[:2] == [b"PUBLISH", mailbox_channel(KEY, bytes(32))]
        link.answer(3, 1)
        assert got == [2, 1]
        backplane.publish(m, b"z", got.append)
        link.answer(LOST)
        assert got == [2, 1, 0]
        assert backplane.counters.errors == 1

    run(test)


def test_an_echo_and_junk_are_not_delivered() -> None:
    async def test() -> None:
        relay, backplane, link = linked()
        key = MailboxKey.generate()
        m = key.mailbox
        client = Client(relay)
        client.send(key.subscribe(1, client.hello.challenge))
        link.answer(None, 2, None)
        client.take()
        channel = mailbox_channel(KEY, m)
        backplane.on_message(channel, encode_message(Payload(ME, b"mine")))
        backplane.on_message(channel, b"\xc1junk")
        backplane.on_message(b"anonchat:v1:m:unknown", encode_message(Payload(PEER, b"x")))
        backplane.on_message(channel, encode_message(Payload(PEER, b"theirs")))
        assert client.take() == [wire.Deliver(m, b"theirs")]
        assert backplane.counters.dropped == 1

    run(test)


def test_a_dead_relay_is_found_by_its_node_channel_and_its_mailboxes_recounted() -> None:
    async def test() -> None:
        relay, backplane, link = linked()
        m = MailboxKey.generate().mailbox
        watcher = Client(relay)
        lookup = watcher.send(wire.Watch(1, (m,)))
        assert isinstance(lookup, Lookup)
        waiting = asyncio.ensure_future(backplane.lookup(lookup))
        await asyncio.sleep(0)
        assert link.take() == [
            [b"SUBSCRIBE", presence_channel(KEY, m)],
            [b"PUBSUB", b"NUMSUB", mailbox_channel(KEY, m)],
        ]
        link.answer(None, [mailbox_channel(KEY, m), 1])  # one other relay holds it
        await waiting
        relay.watched(lookup)
        assert watcher.take() == [wire.Watching(1, (m,))]
        # A relay says hello on the control channel: we answer on its node channel.
        backplane.on_message(control_channel(KEY), encode_message(Hello(PEER)))
        assert link.take() == [[b"PUBLISH", node_channel(KEY, PEER), encode_message(Hello(ME))]]
        link.answer(None)
        backplane.tick()
        assert link.take() == [[b"PUBSUB", b"NUMSUB", node_channel(KEY, PEER)]]
        link.answer([node_channel(KEY, PEER), 1])  # alive
        assert backplane.peers == 1
        backplane.tick()
        assert link.take() == [[b"PUBSUB", b"NUMSUB", node_channel(KEY, PEER)]]
        link.answer([node_channel(KEY, PEER), 0])  # gone: what we watch is recounted
        assert link.take() == [[b"PUBSUB", b"NUMSUB", mailbox_channel(KEY, m)]]
        assert backplane.peers == 0
        assert backplane.counters.relays_lost == 1
        link.answer([mailbox_channel(KEY, m), 0])
        relay.tick(asyncio.get_running_loop().time() + 1)  # past the presence interval
        assert watcher.take() == [wire.Presence(m, False)]

    run(test)
