"""A mailbox id belongs to one contact and one direction for its whole life.

The attack: a stranger's introduction (or a peer's welcome) naming a mailbox that already
belongs to another contact used to move that contact's traffic onto the stranger's relay.
Each try must be dropped, reported and counted, and change nothing.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from app.core import payload as pl
from app.core.engine import Engine
from app.core.errors import UserError
from app.core.events import Event, FrameRejected, Rejection
from app.crypto.card import Card
from app.crypto.handshake import initiate
from app.crypto.identity import Identity
from app.domain.contacts import ContactState
from tests.core.engines import befriend, carry, deliver, make, rows


async def _everything(engine: Engine) -> tuple[object, ...]:
    def load(r):  # type: ignore[no-untyped-def]
        contacts = r.contacts.all()
        return (
            contacts,
            [r.mailboxes.list_theirs(c.id) for c in contacts],
            r.mailboxes.list_ours(),
            [r.sessions.load(c.id) for c in contacts],
        )

    return tuple(await engine.store.read(load))


def test_a_strangers_introduction_cannot_take_a_contacts_mailbox(tmp_path: Path) -> None:
    async def body() -> None:
        alice, carol = await make(tmp_path / "a", "Alice"), await make(tmp_path / "c", "Carol")
        events: list[Event] = []
        try:
            to_carol, _ = await befriend(alice, carol)
            (carol_box,) = await alice.store.read(lambda r: r.mailboxes.list_theirs(to_carol.id))
            ours = await alice.store.read(lambda r: r.mailboxes.list_ours())
            card = Card.parse(await alice.card())
            before = await _everything(alice)
            alice.subscribe(events.append)
            mallory = Identity.generate()
            for named in (carol_box.id, *(b.id for b in ours)):
                session = initiate(mallory, card, name="Mallory", reply_mailbox=named)
                _, frame = session.encrypt(pl.encode(pl.Intro("ws://relay.evil:1")))
                await deliver(alice, card.mailbox, frame)
            assert await _everything(alice) == before
            assert await alice.requests() == []
            kinds = [e.kind for e in events if isinstance(e, FrameRejected)]
            assert kinds == [Rejection.MAILBOX] * (1 + len(ours))
            assert (await alice.status()).rejected == {"mailbox": 1 + len(ours)}
        finally:
            await alice.close()
            await carol.close()

    asyncio.run(body())


def test_a_welcome_naming_someone_elses_mailbox_is_dropped_and_the_real_one_still_works(
    tmp_path: Path,
) -> None:
    async def body() -> None:
        alice, bob, carol = (
            await make(tmp_path / "a", "Alice"),
            await make(tmp_path / "b", "Bob"),
            await make(tmp_path / "c", "Carol"),
        )
        events: list[Event] = []
        try:
            to_carol, _ = await befriend(alice, carol)
            (carol_box,) = await alice.store.read(lambda r: r.mailboxes.list_theirs(to_carol.id))
            to_bob = await alice.add_contact(await bob.card())
            await carry(alice, bob)  # Bob (a request on his side) queues the real welcome
            (request,) = await bob.requests()
            real = await bob.store.read(lambda r: r.outbox.due(2**62))
            # Bob's client, modified, also sends a welcome naming Carol's mailbox.
            from tests.core.test_requests import bob_sends

            await bob_sends(bob, request.request.id, pl.Welcome(carol_box.id, "ws://e:1", "Bob"))
            (forged,) = [
                i for i in await bob.store.read(lambda r: r.outbox.due(2**62)) if i not in real
            ]
            alice.subscribe(events.append)
            await deliver(alice, forged.mailbox_id, forged.ciphertext)
            assert await alice.store.read(lambda r: r.mailboxes.list_theirs(to_carol.id)) == [
                carol_box
            ]
            waiting = await alice.contact(to_bob.id)
            assert waiting.awaiting_welcome
            assert [e.kind for e in events if isinstance(e, FrameRejected)] == [Rejection.MAILBOX]
            for item in real:  # the real welcome (and receipts) arrive late and still work
                await deliver(alice, item.mailbox_id, item.ciphertext)
            done = await alice.contact(to_bob.id)
            assert not done.awaiting_welcome
            (dest,) = await alice.store.read(lambda r: r.mailboxes.list_theirs(to_bob.id))
            assert dest.id not in (carol_box.id, Card.parse(await bob.card()).mailbox)
        finally:
            for engine in (alice, bob, carol):
                await engine.close()

    asyncio.run(body())


def test_adding_a_card_whose_mailbox_is_taken_is_refused(tmp_path: Path) -> None:
    async def body() -> None:
        alice, bob = await make(tmp_path / "a", "Alice"), await make(tmp_path / "b", "Bob")
        try:
            await alice.add_contact(await bob.card())
            real = Card.parse(await bob.card())
            copycat = Card(Identity.generate().public, real.prekey, real.relay_url, real.mailbox)
            before = await _everything(alice)
            with pytest.raises(UserError, match="belongs to another contact"):
                await alice.add_contact(copycat.encode())
            assert await _everything(alice) == before
            assert [c.state for c in await rows(alice)] == [ContactState.CONTACT]
        finally:
            await alice.close()
            await bob.close()

    asyncio.run(body())


def test_a_move_naming_someone_elses_mailbox_is_dropped_and_a_real_one_is_followed(
    tmp_path: Path,
) -> None:
    """A contact's client (modified) sends moves naming Carol's mailbox and one of Alice's
    own: each is dropped and reported, nothing changes; a move to a fresh mailbox is followed
    (what waited for the old mailbox goes to the new one) and answered there."""
    from tests.core.test_requests import bob_sends

    async def body() -> None:
        alice, bob, carol = (
            await make(tmp_path / "a", "Alice"),
            await make(tmp_path / "b", "Bob"),
            await make(tmp_path / "c", "Carol"),
        )
        events: list[Event] = []
        try:
            to_carol, _ = await befriend(alice, carol)
            to_bob, to_alice = await befriend(alice, bob)
            (carol_box,) = await alice.store.read(lambda r: r.mailboxes.list_theirs(to_carol.id))
            ours = await alice.store.read(lambda r: r.mailboxes.list_ours())
            await alice.send(to_bob.id, "waits for Bob")
            before = await _everything(alice)
            alice.subscribe(events.append)
            for named in (carol_box.id, ours[0].id):
                await bob_sends(bob, to_alice.id, pl.Move(named, "ws://relay.evil:1"))
                await carry(bob, alice)
            assert await _everything(alice) != before  # the ratchet steps were kept ...
            after = await _everything(alice)
            assert after[:3] == before[:3]  # ... and nothing else changed
            kinds = [e.kind for e in events if isinstance(e, FrameRejected)]
            assert kinds == [Rejection.MAILBOX, Rejection.MAILBOX]
            fresh = bytes(range(32))
            await bob_sends(bob, to_alice.id, pl.Move(fresh, "ws://new:1", ("ws://spare:2",)))
            await carry(bob, alice)
            (theirs,) = await alice.store.read(lambda r: r.mailboxes.list_theirs(to_bob.id))
            assert (theirs.id, theirs.relays) == (fresh, ("ws://new:1", "ws://spare:2"))
            waiting = await alice.store.read(lambda r: r.outbox.due(2**62))
            assert {i.mailbox_id for i in waiting if i.contact_id == to_bob.id} == {fresh}
        finally:
            for engine in (alice, bob, carol):
                await engine.close()

    asyncio.run(body())
