"""A relay process dies and a new one takes its port: the pools restore everything by themselves."""

from __future__ import annotations

import asyncio

from app.net import (
    Backoff,
    ConnectionChanged,
    ConnectionState,
    Delivered,
    MailboxPresence,
    NetEvent,
    RelayPool,
)
from tests.net.helpers import Recorder, RelayProcess, free_port
from tests.relay.helpers import MailboxKey


def state_is(url: str, state: ConnectionState):  # type: ignore[no-untyped-def]
    return lambda e: isinstance(e, ConnectionChanged) and e.url == url and e.state is state


def test_after_a_relay_restart_subscriptions_and_watches_come_back_by_themselves() -> None:
    port = free_port()
    relay = RelayProcess(port)
    url = relay.url

    async def main() -> None:
        nonlocal relay
        backoff = Backoff(base=0.1, factor=2, cap=0.5)
        alice_events, bob_events = Recorder(), Recorder()
        alice = RelayPool(alice_events, backoff=backoff, request_timeout=5.0)
        bob = RelayPool(bob_events, backoff=backoff, request_timeout=5.0)
        alice_box, bob_box = MailboxKey.generate(), MailboxKey.generate()
        try:
            await alice.subscribe(url, alice_box.mailbox, alice_box.signer)
            await bob.subscribe(url, bob_box.mailbox, bob_box.signer)
            assert await alice.watch(url, [bob_box.mailbox]) == {bob_box.mailbox}
            assert await bob.watch(url, [alice_box.mailbox]) == {alice_box.mailbox}
            assert await bob.send(url, alice_box.mailbox, b"before") == 1
            await alice_events.wait_for(lambda e: isinstance(e, Delivered))

            alice_mark, bob_mark = alice_events.mark(), bob_events.mark()
            relay.kill()
            backing = await alice_events.wait_for(
                state_is(url, ConnectionState.BACKING_OFF), since=alice_mark
            )
            assert isinstance(backing, ConnectionChanged)
            assert backing.retry_in is not None
            assert backing.retry_in > 0
            assert alice.state(url) is not ConnectionState.ONLINE
            await asyncio.sleep(1.0)  # stay away for a few retries
            relay = await asyncio.to_thread(RelayProcess, port)

            await alice_events.wait_for(state_is(url, ConnectionState.ONLINE), since=alice_mark)
            await bob_events.wait_for(state_is(url, ConnectionState.ONLINE), since=bob_mark)
            # Bob's restored watch tells him when Alice's restored subscription is back.
            back = MailboxPresence(url, alice_box.mailbox, True)
            await bob_events.wait_for(lambda e: e == back, since=bob_mark)
            assert await bob.send(url, alice_box.mailbox, b"after") == 1
            got = await alice_events.wait_for(
                lambda e: isinstance(e, Delivered) and e.payload == b"after", since=alice_mark
            )
            assert got == Delivered(url, alice_box.mailbox, b"after")
            # ...and the other direction.
            await alice_events.wait_for(
                lambda e: e == MailboxPresence(url, bob_box.mailbox, True), since=alice_mark
            )
            assert await alice.send(url, bob_box.mailbox, b"reply") == 1
            await bob_events.wait_for(
                lambda e: isinstance(e, Delivered) and e.payload == b"reply", since=bob_mark
            )
        finally:
            await asyncio.gather(alice.close(), bob.close())
        states = [
            e.state for e in alice_events.events[alice_mark:] if isinstance(e, ConnectionChanged)
        ]
        assert states[0] is ConnectionState.BACKING_OFF
        assert states.count(ConnectionState.ONLINE) == 1
        assert states[-1] is ConnectionState.CLOSED
        delivered: list[NetEvent] = alice_events.of(Delivered)
        assert [e.payload for e in delivered if isinstance(e, Delivered)] == [b"before", b"after"]

    try:
        asyncio.run(main())
    finally:
        relay.stop()
