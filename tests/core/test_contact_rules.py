"""The rules of who may start, change and end a contact, one at a time and at their edges:
the 100 pending requests, what forgetting a contact's channels forgets, a contact deleted
with its history coming back, and which contact a same-name warning points at."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from app.core import payload as pl
from app.core.engine import Engine
from app.core.errors import SendingBlocked, UnknownContact, UserError
from app.core.events import (
    ContactAdded,
    ContactChanged,
    ContactRemoved,
    Event,
    FrameRejected,
    Rejection,
    RequestAdded,
    RequestRemoved,
)
from app.crypto.card import Card
from app.crypto.handshake import initiate
from app.domain.contacts import ContactState
from app.domain.messages import Status
from app.store.records import MailboxPurpose, OutboxKind
from tests.core.engines import befriend, carry, deliver, make, rows


def run(tmp_path: Path, count: int, body: Callable[..., Awaitable[None]]) -> None:
    names = ["Alice", "Bob", "Carol", "Dave"][:count]

    async def main() -> None:
        engines = [await make(tmp_path / n.lower(), n) for n in names]
        try:
            await body(*engines)
        finally:
            for engine in engines:
                await engine.close()

    asyncio.run(main())


def test_a_hundred_requests_wait_and_the_101st_pushes_out_the_oldest(tmp_path: Path) -> None:
    async def body(alice: Engine, bob: Engine) -> None:
        def fill(r):  # type: ignore[no-untyped-def]
            for i in range(100):
                r.contacts.add(f"s{i}", i.to_bytes(64, "big"), i, state=ContactState.REQUEST)

        await alice.store.run(fill)
        events: list[Event] = []
        alice.subscribe(events.append)
        await bob.add_contact(await alice.card())
        await carry(bob, alice)
        waiting = [s.request.display_name for s in await alice.requests()]
        assert len(waiting) == 100
        assert waiting[0] == "s1"  # s0, the oldest, went
        assert waiting[-1] == "Bob"
        removed = [e.request_id for e in events if isinstance(e, RequestRemoved)]
        added = [e.request.display_name for e in events if isinstance(e, RequestAdded)]
        assert (len(removed), added) == (1, ["Bob"])
        assert (await alice.status()).requests == 100

    run(tmp_path, 2, body)


def test_ninety_nine_requests_leave_room_for_one_more(tmp_path: Path) -> None:
    async def body(alice: Engine, bob: Engine) -> None:
        def fill(r):  # type: ignore[no-untyped-def]
            for i in range(99):
                r.contacts.add(f"s{i}", i.to_bytes(64, "big"), i, state=ContactState.REQUEST)

        await alice.store.run(fill)
        await bob.add_contact(await alice.card())
        await carry(bob, alice)
        waiting = [s.request.display_name for s in await alice.requests()]
        assert (len(waiting), waiting[0], waiting[-1]) == (100, "s0", "Bob")

    run(tmp_path, 2, body)


def test_ending_a_contact_forgets_every_channel_and_fails_what_waited(tmp_path: Path) -> None:
    async def body(alice: Engine, bob: Engine) -> None:
        to_bob, _ = await befriend(alice, bob)
        queued = await alice.send(to_bob.id, "never delivered")
        await alice.delete_contact(to_bob.id, keep_history=True)

        def load(r):  # type: ignore[no-untyped-def]
            return (
                r.sessions.load(to_bob.id),
                r.mailboxes.list_ours(contact_id=to_bob.id),
                r.mailboxes.list_theirs(to_bob.id),
                r.outbox.for_contact(to_bob.id),
                r.messages.get(queued.id).status,
            )

        assert await alice.store.read(load) == (None, [], [], [], Status.FAILED)
        assert (await alice.contact(to_bob.id)).state is ContactState.ENDED
        with pytest.raises(SendingBlocked, match="deleted"):
            await alice.send(to_bob.id, "again")
        with pytest.raises(SendingBlocked, match="deleted"):
            await alice.retry(queued.id)
        # What Bob still sends goes nowhere: Alice no longer has the mailbox.
        await bob.send((await rows(bob))[0].id, "hello?")
        await carry(bob, alice)
        assert [m.body for m in await alice.messages(to_bob.id)] == ["never delivered"]

    run(tmp_path, 2, body)


def test_a_contact_deleted_with_history_comes_back_as_a_request_then_continues(
    tmp_path: Path,
) -> None:
    async def body(alice: Engine, bob: Engine) -> None:
        to_bob, to_alice = await befriend(alice, bob)
        await bob.send(to_alice.id, "before")
        await carry(bob, alice)
        await alice.delete_contact(to_bob.id, keep_history=True)
        await bob.delete_contact(to_alice.id)
        await bob.add_contact(await alice.card())
        (to_alice,) = await rows(bob)
        await bob.send(to_alice.id, "after")
        await carry(bob, alice)
        (request,) = await alice.requests()
        assert request.request.id != to_bob.id  # apart, while it waits
        assert request.same_name_as is None  # same key: not a namesake
        back = await alice.accept_request(request.request.id)
        assert back.id == to_bob.id  # into the contact with the history
        assert back.state is ContactState.CONTACT
        bodies = [m.body for m in reversed(await alice.messages(to_bob.id))]
        assert bodies == ["before", "after"]
        await alice.send(to_bob.id, "welcome back")
        await carry(alice, bob)
        assert "welcome back" in [m.body for m in await bob.messages(to_alice.id)]

    run(tmp_path, 2, body)


def test_re_adding_an_ended_contacts_code_reconnects_the_same_contact(tmp_path: Path) -> None:
    async def body(alice: Engine, bob: Engine) -> None:
        to_bob, _ = await befriend(alice, bob)
        await alice.block(to_bob.id)
        again = await alice.add_contact(await bob.card())
        assert again.id == to_bob.id
        assert (again.state, again.blocked, again.awaiting_welcome) == (
            ContactState.CONTACT,
            False,
            True,
        )
        with pytest.raises(UserError, match="already a contact"):
            await alice.add_contact(await bob.card())

    run(tmp_path, 2, body)


def test_adding_your_own_code_or_a_waiting_request_is_refused(tmp_path: Path) -> None:
    async def body(alice: Engine, bob: Engine) -> None:
        with pytest.raises(UserError, match="your own code"):
            await alice.add_contact(await alice.card())
        await bob.add_contact(await alice.card())
        await carry(bob, alice)
        with pytest.raises(UserError, match="already asked"):
            await alice.add_contact(await bob.card())
        assert len(await alice.requests()) == 1
        assert await alice.summaries() == []

    run(tmp_path, 2, body)


def test_a_handshake_under_our_own_identity_is_refused(tmp_path: Path) -> None:
    async def body(alice: Engine) -> None:
        card = Card.parse(await alice.card())
        events: list[Event] = []
        alice.subscribe(events.append)
        session = initiate(alice.identity, card, name="Alice", reply_mailbox=b"\x44" * 32)
        _, frame = session.encrypt(pl.encode(pl.Intro("ws://127.0.0.1:9")))
        await deliver(alice, card.mailbox, frame)
        assert await rows(alice) == []
        assert [(e.kind, e.reason) for e in events if isinstance(e, FrameRejected)] == [
            (Rejection.HANDSHAKE, "a handshake from our own identity")
        ]

    run(tmp_path, 1, body)


def test_the_welcome_retires_the_cards_mailbox_and_readdresses_what_waited(
    tmp_path: Path,
) -> None:
    async def body(alice: Engine, bob: Engine) -> None:
        card = Card.parse(await bob.card())
        to_bob = await alice.add_contact(await bob.card())
        early = await alice.send(to_bob.id, "before the welcome")
        await carry(alice, bob)
        (request,) = await bob.requests()
        await bob.accept_request(request.request.id)
        await carry(bob, alice, (OutboxKind.MESSAGE,))  # only the welcome
        (theirs,) = await alice.store.read(lambda r: r.mailboxes.list_theirs(to_bob.id))
        assert theirs.id != card.mailbox
        waiting = await alice.store.read(lambda r: r.outbox.for_contact(to_bob.id))
        assert {i.mailbox_id for i in waiting} == {theirs.id}
        assert early.id in {i.message_row for i in waiting}
        assert not (await alice.contact(to_bob.id)).awaiting_welcome

    run(tmp_path, 2, body)


def test_the_same_name_warning_points_at_a_contact_of_another_key_only(
    tmp_path: Path,
) -> None:
    async def body(alice: Engine, bob: Engine, carol: Engine) -> None:
        to_bob, _ = await befriend(alice, bob)
        await alice.rename(to_bob.id, "CAROL")  # Alice's own name for Bob
        await carol.add_contact(await alice.card())
        await carry(carol, alice)
        (request,) = await alice.requests()
        assert request.same_name_as is not None
        assert request.same_name_as.id == to_bob.id
        await alice.rename(to_bob.id, "Bob")
        (request,) = await alice.requests()
        assert request.same_name_as is None
        assert request.first_message is None
        assert request.messages == 0

    run(tmp_path, 3, body)


def test_each_choice_is_for_its_own_kind_of_row(tmp_path: Path) -> None:
    async def body(alice: Engine, bob: Engine, carol: Engine) -> None:
        to_bob, _ = await befriend(alice, bob)
        await carol.add_contact(await alice.card())
        await carry(carol, alice)
        (request,) = [s.request for s in await alice.requests()]
        with pytest.raises(UnknownContact, match="no such request"):
            await alice.accept_request(to_bob.id)
        with pytest.raises(UnknownContact, match="no such request"):
            await alice.delete_request(to_bob.id)
        with pytest.raises(UnknownContact, match="no such contact"):
            await alice.delete_contact(request.id)
        with pytest.raises(UnknownContact, match="no such contact"):
            await alice.accept_request(request.id, as_new_key_of=request.id)
        with pytest.raises(UnknownContact):
            await alice.rename(999, "Nobody")
        with pytest.raises(UnknownContact):
            await alice.block(999)
        renamed = await alice.rename(request.id, "Carol from the market")
        assert renamed.state is ContactState.REQUEST
        events: list[Event] = []
        alice.subscribe(events.append)
        await alice.delete_request(request.id)
        await alice.delete_contact(to_bob.id)
        assert [type(e) for e in events] == [RequestRemoved, ContactRemoved]
        assert await rows(alice) == []
        status = await alice.status()
        assert (status.contacts, status.requests, status.outbox) == (0, 0, 0)

    run(tmp_path, 3, body)


def test_blocking_a_request_forgets_it_and_blocking_a_contact_keeps_its_history(
    tmp_path: Path,
) -> None:
    async def body(alice: Engine, bob: Engine, carol: Engine) -> None:
        to_bob, _ = await befriend(alice, bob)
        await carol.add_contact(await alice.card())
        await carry(carol, alice)
        (request,) = [s.request for s in await alice.requests()]
        events: list[Event] = []
        alice.subscribe(events.append)
        gone = await alice.block(request.id)
        assert gone.id == request.id
        kept = await alice.block(to_bob.id)
        assert (kept.state, kept.blocked) == (ContactState.ENDED, True)
        assert [type(e) for e in events] == [RequestRemoved, ContactChanged]
        assert [c.id for c in await rows(alice)] == [to_bob.id]
        left = await alice.store.read(lambda r: r.mailboxes.list_ours())
        assert {b.purpose for b in left} == {MailboxPurpose.INVITATION}  # cards' mailboxes only

    run(tmp_path, 3, body)


def test_every_choice_tells_the_front_ends_what_changed(tmp_path: Path) -> None:
    async def body(alice: Engine, bob: Engine, carol: Engine, dave: Engine) -> None:
        to_bob, _ = await befriend(alice, bob)
        for stranger in (carol, dave):
            await stranger.add_contact(await alice.card())
            await carry(stranger, alice)
        carol_request, _dave_request = [s.request for s in await alice.requests()]
        events: list[Event] = []
        alice.subscribe(events.append)
        accepted = await alice.accept_request(carol_request.id)
        renamed = await alice.rename(to_bob.id, "Bobby")
        await alice.delete_contact(to_bob.id, keep_history=True)
        ended = await alice.contact(to_bob.id)
        quiet = (ContactChanged, ContactRemoved, RequestAdded, RequestRemoved, ContactAdded)
        said = [e for e in events if isinstance(e, quiet)]
        assert said == [
            RequestRemoved(carol_request.id),
            ContactAdded(accepted),
            ContactChanged(renamed),
            ContactChanged(ended),
        ]
        status = await alice.status()
        assert (status.contacts, status.requests) == (2, 1)  # Carol and the ended Bob; Dave

    run(tmp_path, 4, body)


def test_a_handshake_under_a_known_key_renews_that_row_and_says_which_kind_it_is(
    tmp_path: Path,
) -> None:
    async def body(alice: Engine, bob: Engine, carol: Engine) -> None:
        to_bob, to_alice = await befriend(alice, bob)
        await carol.add_contact(await alice.card())
        await carry(carol, alice)
        events: list[Event] = []
        alice.subscribe(events.append)
        # Bob lost his session and starts over under the same key; so does Carol.
        await bob.delete_contact(to_alice.id, keep_history=False)
        await bob.add_contact(await alice.card())
        await carry(bob, alice)
        (carol_row,) = await rows(carol)
        await carol.delete_contact(carol_row.id, keep_history=False)
        await carol.add_contact(await alice.card())
        await carry(carol, alice)
        kinds = [type(e) for e in events if isinstance(e, (ContactChanged, RequestAdded))]
        assert kinds == [ContactChanged, RequestAdded]
        assert [c.id for c in await rows(alice, ContactState.CONTACT)] == [to_bob.id]
        assert len(await alice.requests()) == 1

    run(tmp_path, 3, body)


def test_garbage_is_not_a_code(tmp_path: Path) -> None:
    async def body(alice: Engine) -> None:
        for text in ("hello", "anonchat:AAAA", ""):
            with pytest.raises(UserError, match="not a valid AnonChat code"):
                await alice.add_contact(text)
        assert await rows(alice) == []

    run(tmp_path, 1, body)


def test_summaries_and_status_are_frozen_values(tmp_path: Path) -> None:
    async def body(alice: Engine, bob: Engine) -> None:
        await bob.add_contact(await alice.card())
        await carry(bob, alice)
        (summary,) = await alice.requests()
        status = await alice.status()
        for value, name in ((summary, "messages"), (status, "requests")):
            with pytest.raises(dataclasses.FrozenInstanceError):
                setattr(value, name, 0)

    run(tmp_path, 2, body)
