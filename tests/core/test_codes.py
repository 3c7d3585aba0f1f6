"""One-time codes and the long-lived address, on a real relay: a used code stops reaching its
owner (its mailbox is gone from the relay), an address takes anyone until it is changed or
deleted, and then the old one stops working too."""

from __future__ import annotations

import asyncio
from pathlib import Path

from app.core.events import FrameRejected, RequestAdded
from app.crypto.card import Card
from relay.server import RelayHandle
from tests.core.engines import carry, make, own_loop
from tests.core.test_live_relay import Person, introduce, people


def subscribed(relay: RelayHandle) -> set[bytes]:
    return {m for c in list(relay.relay.connections) for m in c.subscriptions}


async def requests_from(owner: Person, asker: Person, wait: float = 1.0) -> bool:
    """Whether `owner` got a request from `asker` within `wait` seconds."""
    keys = asker.engine.identity.public.to_bytes()
    for _ in range(int(wait / 0.05)):
        if any(
            isinstance(e, RequestAdded) and e.request.identity_keys == keys for e in owner.events
        ):
            return True
        await asyncio.sleep(0.05)
    return False


async def until_gone(relay: RelayHandle, mailbox: bytes) -> None:
    for _ in range(100):
        if mailbox not in subscribed(relay):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the mailbox is still subscribed")


def test_a_used_one_time_code_no_longer_reaches_its_owner(tmp_path: Path) -> None:
    async def body() -> None:
        async with people(tmp_path, "Alice", "Bob", "Carol") as (alice, bob, carol):
            relay = alice.relay
            assert relay is not None
            code = await alice.engine.card()
            assert Card.parse(code).address is False
            assert await alice.engine.card() == code  # the same code until it is used
            box = Card.parse(code).mailbox
            assert box in subscribed(relay)
            await introduce(bob, alice, card=code)
            await until_gone(relay, box)  # retired once Bob's first frame came back
            fresh = await alice.engine.card()
            assert fresh != code
            assert Card.parse(fresh).mailbox in subscribed(relay)
            await carol.engine.add_contact(code)
            assert not await requests_from(alice, carol)

    asyncio.run(body())


def test_a_one_time_code_takes_no_second_handshake_even_before_it_is_retired(
    tmp_path: Path,
) -> None:
    with own_loop() as (loop, opened):

        async def body() -> None:
            alice, bob, carol = [await make(tmp_path / n, n) for n in ("alice", "bob", "carol")]
            opened.extend((alice, bob, carol))
            code = await alice.card()
            await bob.add_contact(code)
            await carry(bob, alice)
            await carol.add_contact(code)  # the same code, photographed
            events: list[object] = []
            alice.subscribe(events.append)
            await carry(carol, alice)
            assert [s.request.display_name for s in await alice.requests()] == ["bob"]
            assert [e.reason for e in events if isinstance(e, FrameRejected)] == [
                "a one-time code that was already used"
            ]
            # Alice's next code is a new one, and Carol can use that.
            fresh = await alice.card()
            assert fresh != code
            await carol.delete_contact((await carol.find_contact("alice")).id)
            await carol.add_contact(fresh)
            await carry(carol, alice)
            assert [s.request.display_name for s in await alice.requests()] == ["bob", "carol"]

        loop.run_until_complete(body())


def test_an_address_takes_anyone_until_it_is_changed_or_deleted(tmp_path: Path) -> None:
    async def body() -> None:
        async with people(tmp_path, "Alice", "Bob", "Carol", "Dave", "Erin") as everyone:
            alice, bob, carol, dave, erin = everyone
            relay = alice.relay
            assert relay is not None
            assert not await alice.engine.has_address()
            address = await alice.engine.card(address=True)
            assert Card.parse(address).address is True
            assert await alice.engine.has_address()
            assert await alice.engine.card(address=True) == address
            await introduce(bob, alice, card=address)
            await introduce(carol, alice, card=address)  # an address takes more than one
            assert Card.parse(address).mailbox in subscribed(relay)  # and stays

            rotated = await alice.engine.rotate_address()
            assert rotated != address
            await until_gone(relay, Card.parse(address).mailbox)
            await dave.engine.add_contact(address)
            assert not await requests_from(alice, dave)
            await introduce(erin, alice, card=rotated)

            await alice.engine.delete_address()
            assert not await alice.engine.has_address()
            await until_gone(relay, Card.parse(rotated).mailbox)
            assert len(await alice.engine.summaries()) == 3  # contacts are untouched

    asyncio.run(body())
