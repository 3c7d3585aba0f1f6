"""Changing relays on live relays on 127.0.0.1: a relay is tested before it is taken, every
contact follows a move with nothing lost, the old relay is left once all have answered, and
fallback relays carry the conversation while the first relay is down."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from app.core.errors import UserError
from app.core.events import MessageAdded, RequestAdded, RouteChanged
from app.crypto.card import Card
from app.net.events import ConnectionState
from relay.server import RelayConfig, serve_relay
from tests.core.test_live_relay import Person, introduce, people


async def bodies(person: Person, contact_id: int) -> list[str]:
    return [m.body for m in await person.engine.messages(contact_id)]


async def until_true(check, seconds: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    for _ in range(int(seconds / 0.05)):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("timed out")


def test_an_unreachable_relay_is_refused_and_nothing_changes(tmp_path: Path) -> None:
    async def body() -> None:
        async with people(tmp_path, "Alice") as (alice,):
            engine = alice.engine
            before = (engine.relays, await engine.card(address=True))
            with pytest.raises(UserError, match=r"could not reach ws://127\.0\.0\.1:9"):
                await engine.set_relays(["ws://127.0.0.1:9"])
            with pytest.raises(UserError, match="could not reach"):
                await engine.set_relays([engine.relay_url, "ws://127.0.0.1:9"])
            assert (engine.relays, await engine.card(address=True)) == before

    asyncio.run(body())


def test_contacts_follow_a_move_and_the_old_relay_is_left(tmp_path: Path) -> None:
    async def body() -> None:
        new = await serve_relay(RelayConfig(host="127.0.0.1", port=0))
        new_url = new.url.rstrip("/")
        try:
            async with people(tmp_path, "Alice", "Bob", "Carol") as (alice, bob, carol):
                old_url = alice.engine.relay_url
                to_bob, _ = await introduce(alice, bob)
                to_carol, carol_to_alice = await introduce(carol, alice)
                to_carol, carol_to_alice = carol_to_alice, to_carol
                address = Card.parse(await alice.engine.card(address=True))
                # Bob is offline when Alice moves: his copy of the move waits for him.
                await bob.engine.close()
                await alice.engine.send(to_bob, "before the move")
                assert await alice.engine.set_relays([new_url]) == (new_url,)
                await alice.engine.send(to_carol, "after the move")
                await alice.engine.send(to_bob, "after the move")
                await carol.engine.send(carol_to_alice, "to wherever Alice is")
                await alice.until(MessageAdded, lambda e: e.message.body == "to wherever Alice is")  # type: ignore[attr-defined]
                # The address kept its mailbox and moved with her; one-time codes are new.
                moved = Card.parse(await alice.engine.card(address=True))
                assert (moved.mailbox, moved.relay_url) == (address.mailbox, new_url)
                assert Card.parse(await alice.engine.card()).relay_url == new_url

                # Carol answered on the new mailbox: Alice no longer listens at the old relay
                # for her, but still does for Bob, who has not heard of the move.
                def alice_boxes():  # type: ignore[no-untyped-def]
                    return alice.engine.store.read(lambda r: r.mailboxes.list_ours())

                await until_true(
                    lambda: _relays_of(alice_boxes(), to_carol, {new_url}),
                )
                assert {b.relay_url for b in await alice_boxes() if b.contact_id == to_bob} == {
                    old_url,
                    new_url,
                }
                assert old_url in alice.engine.connection_states()
        finally:
            await new.close()

    asyncio.run(body())


async def _relays_of(boxes, contact_id: int, expected: set[str]) -> bool:  # type: ignore[no-untyped-def]
    return {b.relay_url for b in await boxes if b.contact_id == contact_id} == expected


def test_a_contact_back_online_follows_and_nothing_is_lost(tmp_path: Path) -> None:
    async def body() -> None:
        new = await serve_relay(RelayConfig(host="127.0.0.1", port=0))
        new_url = new.url.rstrip("/")
        try:
            async with people(tmp_path, "Alice", "Bob") as (alice, bob):
                old_url = alice.engine.relay_url
                to_bob, to_alice = await introduce(alice, bob)
                await bob.engine.send(to_alice, "one")
                await alice.until(MessageAdded, lambda e: e.message.body == "one")  # type: ignore[attr-defined]
                await alice.engine.set_relays([new_url])
                for text in ("two", "three"):
                    await bob.engine.send(to_alice, text)
                    await alice.engine.send(to_bob, text.upper())
                await until_true(lambda: _has(alice, to_bob, ["one", "two", "three"]))
                await until_true(lambda: _has(bob, to_alice, ["TWO", "THREE"]))
                # Bob answered on the new mailbox: Bob writes to the new relay only; Alice still
                # writes to Bob at the old one, where Bob listens, so she keeps it.
                (theirs,) = await bob.engine.store.read(lambda r: r.mailboxes.list_theirs(to_alice))
                assert theirs.relay_url == new_url
                assert not await _left(alice, old_url)
                # Bob moves too: then nothing of either is left at the old relay, and their
                # connections there are closed (it is not tried again).
                await bob.engine.set_relays([new_url])
                await bob.engine.send(to_alice, "four")
                await until_true(lambda: _has(alice, to_bob, ["four"]))
                await until_true(lambda: _left(alice, old_url))
                await until_true(lambda: _left(bob, old_url))
                await alice.engine.send(to_bob, "FOUR")
                await until_true(lambda: _has(bob, to_alice, ["FOUR"]))
        finally:
            await new.close()

    asyncio.run(body())


async def _has(person: Person, contact_id: int, texts: list[str]) -> bool:
    got = await bodies(person, contact_id)
    return all(t in got for t in texts)


async def _left(person: Person, url: str) -> bool:
    boxes = await person.engine.store.read(lambda r: r.mailboxes.list_ours())
    return all(url not in b.relays for b in boxes) and url not in person.engine.connection_states()


def test_fallback_relays_carry_the_conversation_while_the_first_is_down(tmp_path: Path) -> None:
    async def body() -> None:
        first = await serve_relay(RelayConfig(host="127.0.0.1", port=0))
        spare = await serve_relay(RelayConfig(host="127.0.0.1", port=0))
        first_url, spare_url = first.url.rstrip("/"), spare.url.rstrip("/")
        try:
            async with people(tmp_path, "Alice", "Bob", relay_url=first_url) as (alice, bob):
                await alice.engine.set_relays([first_url, spare_url])
                await bob.engine.set_relays([first_url, spare_url])
                card = Card.parse(await alice.engine.card())
                assert card.relays == (first_url, spare_url)
                to_alice, to_bob = await introduce(bob, alice, card.encode())
                await bob.engine.send(to_alice, "through the first")
                await alice.until(MessageAdded, lambda e: e.message.body == "through the first")  # type: ignore[attr-defined]
                await first.close()  # the first relay goes away
                await until_true(lambda: _state(alice, first_url, ConnectionState.BACKING_OFF), 15)
                await bob.engine.send(to_alice, "through the spare")
                await alice.engine.send(to_bob, "back through the spare")
                await alice.until(MessageAdded, lambda e: e.message.body == "through the spare", 40)  # type: ignore[attr-defined]
                await bob.until(
                    MessageAdded, lambda e: e.message.body == "back through the spare", 40
                )  # type: ignore[attr-defined]
                # Each says once which relay it writes through now.
                for person, contact_id in ((bob, to_alice), (alice, to_bob)):
                    routes = [e for e in person.events if isinstance(e, RouteChanged)]
                    assert routes == [RouteChanged(contact_id, spare_url)]
        finally:
            await spare.close()
            await first.close()

    asyncio.run(body())


async def _state(person: Person, url: str, state: ConnectionState) -> bool:
    return person.engine.connection_states().get(url) is state


def test_a_profile_with_no_contacts_moves_its_code_and_listens_there_at_once(
    tmp_path: Path,
) -> None:
    async def body() -> None:
        new = await serve_relay(RelayConfig(host="127.0.0.1", port=0))
        new_url = new.url.rstrip("/")
        try:
            async with people(tmp_path, "Alice", "Bob") as (alice, bob):
                old_url = alice.engine.relay_url
                await alice.engine.card()  # a one-time code on the old relay, unused
                await alice.engine.set_relays([new_url])
                boxes = await alice.engine.store.read(lambda r: r.mailboxes.list_ours())
                assert [b.relay_url for b in boxes] == [new_url]  # replaced, not only dropped
                await until_true(lambda: _state(alice, new_url, ConnectionState.ONLINE))
                await until_true(lambda: _left(alice, old_url))
                # Bob, on the old relay, scans her new code and reaches her on the new one.
                await bob.engine.add_contact(await alice.engine.card())
                await alice.until(RequestAdded)
        finally:
            await new.close()

    asyncio.run(body())
