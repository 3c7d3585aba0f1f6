"""The handshake's own steps, each checked for what it must leave behind: the events, the
welcome's acknowledgement, the retired introduction, refusals of first frames that are not
introductions, crossing introductions. (Over a live relay: tests/core/test_live_relay.py.)"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from app.core import payload as pl
from app.core.engine import Engine
from app.core.events import (
    ConnectionChanged,
    ContactAdded,
    ContactChanged,
    Event,
    FrameRejected,
    PresenceChanged,
    Rejection,
)
from app.crypto.card import Card
from app.crypto.handshake import initiate
from app.crypto.identity import Identity
from app.domain.contacts import ContactState
from app.domain.messages import Direction
from app.store.records import OutboxKind
from tests.core.engines import carry, deliver, make, rows

BOTH = (OutboxKind.MESSAGE, OutboxKind.RECEIPT)


def run(tmp_path: Path, body: Callable[[Engine, Engine], Awaitable[None]]) -> None:
    async def main() -> None:
        alice, bob = await make(tmp_path / "alice", "Alice"), await make(tmp_path / "bob", "Bob")
        try:
            await body(alice, bob)
        finally:
            await alice.close()
            await bob.close()

    asyncio.run(main())


def test_adding_and_re_adding_tell_the_front_ends(tmp_path: Path) -> None:
    async def body(alice: Engine, bob: Engine) -> None:
        events: list[Event] = []
        alice.subscribe(events.append)
        to_bob = await alice.add_contact(await bob.card())
        quiet = (PresenceChanged, ConnectionChanged)  # this relay is unreachable
        assert [type(e) for e in events if not isinstance(e, quiet)] == [ContactAdded]
        await alice.delete_contact(to_bob.id, keep_history=True)
        events.clear()
        again = await alice.add_contact(await bob.card())
        changed = [e for e in events if isinstance(e, ContactChanged)]
        assert [e.contact for e in changed] == [again]
        assert not [e for e in events if isinstance(e, ContactAdded)]

    run(tmp_path, body)


def test_the_welcome_is_acknowledged_and_both_sides_are_done_with_the_handshake(
    tmp_path: Path,
) -> None:
    async def body(alice: Engine, bob: Engine) -> None:
        to_bob = await alice.add_contact(await bob.card())
        await carry(alice, bob)
        (request,) = await bob.requests()
        to_alice = await bob.accept_request(request.request.id)
        events: list[Event] = []
        alice.subscribe(events.append)
        await carry(bob, alice, (OutboxKind.MESSAGE,))  # the welcome alone
        welcomed = [e.contact for e in events if isinstance(e, ContactChanged)]
        assert [(c.id, c.awaiting_welcome) for c in welcomed] == [(to_bob.id, False)]
        (summary,) = await alice.summaries()
        assert summary.established  # the introduction is no longer resent
        acks = await alice.store.read(lambda r: r.outbox.for_contact(to_bob.id))
        assert [i.kind for i in acks] == [OutboxKind.RECEIPT]
        await carry(alice, bob, BOTH)  # the acknowledgement reaches Bob
        (bob_side,) = await bob.summaries()
        assert bob_side.established  # his welcome is no longer resent
        # The acknowledgement's ratchet step was kept: the next message opens after it.
        await alice.send(to_bob.id, "after the ack")
        await carry(alice, bob, BOTH)
        got = [m.body for m in await bob.messages(to_alice.id) if m.direction is Direction.INCOMING]
        assert got == ["after the ack"]

    run(tmp_path, body)


def test_a_first_frame_that_is_not_an_introduction_is_refused(tmp_path: Path) -> None:
    async def body(alice: Engine, bob: Engine) -> None:
        card = Card.parse(await alice.card())
        events: list[Event] = []
        alice.subscribe(events.append)
        stranger = Identity.generate()
        for payload in (pl.encode(pl.Chat(1, 0, "hi")), b"\xc1not msgpack"):
            session = initiate(
                stranger, card, name="Eve", reply_mailbox=Identity.generate().public.sign
            )
            _, frame = session.encrypt(payload)
            await deliver(alice, card.mailbox, frame)
        await deliver(alice, card.mailbox, b"\x01\x02" + bytes(60))
        assert await rows(alice) == []
        rejected = [
            (e.kind, e.reason.split(" (")[0]) for e in events if isinstance(e, FrameRejected)
        ]
        assert rejected == [
            (Rejection.HANDSHAKE, "a handshake carried no valid introduction"),
            (Rejection.HANDSHAKE, "a handshake carried no valid introduction"),
            (Rejection.HANDSHAKE, "a handshake failed its check"),
        ]

    run(tmp_path, body)


def test_introductions_that_cross_still_end_in_one_conversation(tmp_path: Path) -> None:
    """Both add each other and both introductions are in flight before either is answered:
    the handshake of the lower identity key goes ahead, the other is dropped."""

    async def body(alice: Engine, bob: Engine) -> None:
        await alice.add_contact(await bob.card())
        await bob.add_contact(await alice.card())
        from_alice = await alice.store.read(lambda r: r.outbox.due(2**62))
        from_bob = await bob.store.read(lambda r: r.outbox.due(2**62))
        for item in from_alice:
            await deliver(bob, item.mailbox_id, item.ciphertext)
        for item in from_bob:
            await deliver(alice, item.mailbox_id, item.ciphertext)
        for _ in range(2):
            await carry(alice, bob, BOTH)
            await carry(bob, alice, BOTH)
        (to_bob,), (to_alice,) = await rows(alice), await rows(bob)
        assert (to_bob.state, to_alice.state) == (ContactState.CONTACT, ContactState.CONTACT)
        assert not (to_bob.awaiting_welcome)
        assert not (to_alice.awaiting_welcome)
        await alice.send(to_bob.id, "ping")
        await carry(alice, bob)
        await bob.send(to_alice.id, "pong")
        await carry(bob, alice)
        assert "ping" in [m.body for m in await bob.messages(to_alice.id)]
        assert "pong" in [m.body for m in await alice.messages(to_bob.id)]

    run(tmp_path, body)
