"""First contact is a request, and nobody but the user changes, blocks or renames a contact.

The attack these pin down: anyone with your card, calling themselves "Bob", used to put your
verified Bob into "key changed" and block every send to him. Now their handshake is a request
of its own, and the real Bob never notices.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from app.core import handshakes
from app.core import payload as pl
from app.core.engine import Engine
from app.core.errors import SendingBlocked, UnknownContact, UserError
from app.core.events import Event, FrameRejected, RequestAdded, RequestRemoved
from app.domain.contacts import ContactState
from app.domain.messages import Direction, Status
from app.store.records import MailboxPurpose, OutboxKind
from tests.core.engines import befriend, carry, make, rows


def run(tmp_path: Path, names: list[str], body: Callable[..., Awaitable[None]]) -> None:
    async def main() -> None:
        engines = []
        for entry in names:  # "directory" or "directory=Display name"
            directory, _, shown = entry.partition("=")
            engines.append(await make(tmp_path / directory, shown or directory.capitalize()))
        try:
            await body(*engines)
        finally:
            for e in engines:
                await e.close()

    asyncio.run(main())


async def snapshot(engine: Engine, contact_id: int) -> tuple[object, ...]:
    """Everything that says who a contact is and where their messages go."""

    def load(r):  # type: ignore[no-untyped-def]
        return (
            r.contacts.get(contact_id),
            r.sessions.load(contact_id),
            r.mailboxes.list_theirs(contact_id),
            r.mailboxes.list_ours(contact_id=contact_id),
            r.contacts.key_history(contact_id),
        )

    return tuple(await engine.store.read(load))


def test_a_stranger_named_like_a_verified_contact_is_a_request_apart(tmp_path: Path) -> None:
    async def body(alice: Engine, bob: Engine, mallory: Engine) -> None:
        to_bob, _ = await befriend(alice, bob)
        to_bob = await alice.verify(to_bob.id, await alice.safety_number(to_bob.id))
        before = await snapshot(alice, to_bob.id)
        events: list[Event] = []
        alice.subscribe(events.append)

        await mallory.add_contact(await alice.card())  # Mallory calls herself "Bob"
        to_alice = (await rows(mallory))[0]
        await mallory.send(to_alice.id, "it's me, new laptop")
        await carry(mallory, alice)

        assert await snapshot(alice, to_bob.id) == before  # untouched, still verified
        assert [c.id for c in await rows(alice, ContactState.CONTACT)] == [to_bob.id]
        (request,) = await alice.requests()
        assert request.request.display_name == "Bob"
        assert request.request.identity_keys == mallory.identity.public.to_bytes()
        assert request.same_name_as is not None
        assert request.same_name_as.id == to_bob.id
        assert request.first_message is not None
        assert request.first_message.body == "it's me, new laptop"
        assert [type(e) for e in events if isinstance(e, RequestAdded)] == [RequestAdded]
        assert [s.contact.id for s in await alice.summaries()] == [to_bob.id]

        # Nobody else can block Alice from writing to Bob.
        sent = await alice.send(to_bob.id, "still you?")
        assert sent.status is Status.QUEUED

    run(tmp_path, ["alice", "bob", "mallory=Bob"], body)


def test_a_requests_messages_are_delivered_never_read_until_accepted(tmp_path: Path) -> None:
    async def body(alice: Engine, bob: Engine) -> None:
        to_alice = await bob.add_contact(await alice.card())
        await bob.send(to_alice.id, "hello?")
        await carry(bob, alice)
        (summary,) = await alice.requests()
        request = summary.request
        (message,) = await alice.messages(request.id)
        assert (message.body, message.status, message.is_read) == ("hello?", "delivered", False)
        with pytest.raises(SendingBlocked, match="accept"):
            await alice.send(request.id, "hi")
        assert await alice.mark_read(request.id) == 0
        receipts = await alice.store.read(lambda r: r.outbox.for_contact(request.id))
        await carry(alice, bob, (OutboxKind.MESSAGE, OutboxKind.RECEIPT))
        (mine,) = await bob.messages(to_alice.id)
        assert mine.status is Status.DELIVERED  # acknowledged, not read
        assert [i.kind for i in receipts].count(OutboxKind.RECEIPT) == 1

        accepted = await alice.accept_request(request.id)
        assert (accepted.id, accepted.state) == (request.id, ContactState.CONTACT)
        assert await alice.requests() == []
        assert await alice.mark_read(accepted.id) == 1
        await carry(alice, bob, (OutboxKind.RECEIPT,))
        assert (await bob.messages(to_alice.id))[0].status is Status.READ
        reply = await alice.send(accepted.id, "hi Bob")
        await carry(alice, bob)
        (incoming,) = [
            m for m in await bob.messages(to_alice.id) if m.direction is Direction.INCOMING
        ]
        assert incoming.body == reply.body

    run(tmp_path, ["alice", "bob"], body)


def test_accept_as_a_contacts_new_key_moves_the_request_in(tmp_path: Path) -> None:
    async def body(alice: Engine, bob: Engine, bob2: Engine) -> None:
        to_bob, _ = await befriend(alice, bob)
        await alice.verify(to_bob.id, await alice.safety_number(to_bob.id))
        await alice.send(to_bob.id, "queued for the old key")
        await bob2.add_contact(await alice.card())
        (to_alice,) = await rows(bob2)
        await bob2.send(to_alice.id, "new laptop")
        await carry(bob2, alice)
        (request,) = [s.request for s in await alice.requests()]

        merged = await alice.accept_request(request.id, as_new_key_of=to_bob.id)
        assert merged.id == to_bob.id
        assert merged.identity_keys == bob2.identity.public.to_bytes()
        assert not merged.verified
        history = await alice.store.read(lambda r: r.contacts.key_history(to_bob.id))
        assert [h.identity_keys for h in history] == [bob.identity.public.to_bytes()]
        assert await alice.requests() == []
        bodies = [m.body for m in await alice.messages(to_bob.id)]
        assert "new laptop" in bodies
        assert "queued for the old key" in bodies
        old = [m for m in await alice.messages(to_bob.id) if m.body == "queued for the old key"]
        assert old[0].status is Status.FAILED  # its ciphertext was for the old key
        with pytest.raises(UnknownContact):
            await alice.contact(request.id)
        # The conversation goes on with the new key.
        await alice.send(to_bob.id, "welcome back")
        await carry(alice, bob2)
        got = [m.body for m in await bob2.messages(to_alice.id)]
        assert "welcome back" in got

    run(tmp_path, ["alice", "bob", "bob2=Bob"], body)


def test_a_new_key_is_only_for_a_contact_of_the_same_name(tmp_path: Path) -> None:
    async def body(alice: Engine, bob: Engine, mallory: Engine) -> None:
        to_bob, _ = await befriend(alice, bob)
        await mallory.add_contact(await alice.card())
        await carry(mallory, alice)
        (request,) = [s.request for s in await alice.requests()]
        before = await snapshot(alice, to_bob.id)
        with pytest.raises(UserError, match="own name"):
            await alice.accept_request(request.id, as_new_key_of=to_bob.id)
        assert await snapshot(alice, to_bob.id) == before
        assert len(await alice.requests()) == 1

    run(tmp_path, ["alice", "bob", "mallory"], body)


def test_a_blocked_key_is_dropped_silently_and_re_adding_their_code_unblocks(
    tmp_path: Path,
) -> None:
    async def body(alice: Engine, mallory: Engine) -> None:
        await mallory.add_contact(await alice.card())
        await carry(mallory, alice)
        (request,) = [s.request for s in await alice.requests()]
        events: list[Event] = []
        alice.subscribe(events.append)
        await alice.block(request.id)
        assert await alice.requests() == []
        assert await rows(alice) == []
        assert any(isinstance(e, RequestRemoved) for e in events)

        # Mallory starts over: a fresh handshake under the same key.
        (old,) = await rows(mallory)
        await mallory.delete_contact(old.id)
        await mallory.add_contact(await alice.card())
        events.clear()
        await carry(mallory, alice)
        assert await alice.requests() == []
        assert await rows(alice) == []
        assert events == []  # silently: not even a "rejected"

        contact = await alice.add_contact(await mallory.card())
        assert contact.state is ContactState.CONTACT
        assert not contact.blocked

    run(tmp_path, ["alice", "mallory"], body)


def test_block_rename_and_delete_a_contact(tmp_path: Path) -> None:
    async def body(alice: Engine, bob: Engine, carol: Engine) -> None:
        to_bob, _ = await befriend(alice, bob)
        to_carol, _ = await befriend(alice, carol)
        await alice.send(to_bob.id, "one")
        renamed = await alice.rename(to_bob.id, "Bobby 🙂")
        assert renamed.display_name == "Bobby 🙂"
        with pytest.raises(UserError):
            await alice.rename(to_bob.id, "Bob\u202eevil")

        blocked = await alice.block(to_bob.id)
        assert (blocked.state, blocked.blocked) == (ContactState.ENDED, True)
        assert [m.body for m in await alice.messages(to_bob.id)] == ["one"]  # history kept
        gone = await alice.store.read(
            lambda r: (r.sessions.load(to_bob.id), r.mailboxes.list_ours(contact_id=to_bob.id))
        )
        assert gone == (None, [])
        with pytest.raises(SendingBlocked, match="blocked"):
            await alice.send(to_bob.id, "two")

        await alice.delete_contact(to_carol.id, keep_history=True)
        ended = await alice.contact(to_carol.id)
        assert (ended.state, ended.blocked) == (ContactState.ENDED, False)
        await alice.delete_contact(to_carol.id)
        with pytest.raises(UnknownContact):
            await alice.contact(to_carol.id)
        assert await alice.messages(to_carol.id) == []

    run(tmp_path, ["alice", "bob", "carol"], body)


def test_pending_requests_are_capped_oldest_dropped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(handshakes, "MAX_REQUESTS", 3)

    async def body(alice: Engine, *strangers: Engine) -> None:
        for stranger in strangers:
            await stranger.add_contact(await alice.card())
            await carry(stranger, alice)
        waiting = [s.request.identity_keys for s in await alice.requests()]
        assert waiting == [s.identity.public.to_bytes() for s in strangers[-3:]]
        ours = await alice.store.read(lambda r: r.mailboxes.list_ours())
        assert len([b for b in ours if b.purpose is MailboxPurpose.CONTACT]) == 3

    run(tmp_path, ["alice", "s1", "s2", "s3", "s4", "s5"], body)


def test_adding_each_other_at_once_ends_with_one_conversation(tmp_path: Path) -> None:
    async def body(alice: Engine, bob: Engine) -> None:
        a_card, b_card = await alice.card(), await bob.card()
        await alice.add_contact(b_card)
        await bob.add_contact(a_card)
        for _ in range(3):
            await carry(alice, bob)
            await carry(bob, alice)
        (to_bob,) = await rows(alice)
        (to_alice,) = await rows(bob)
        assert to_bob.state is ContactState.CONTACT
        assert to_alice.state is ContactState.CONTACT
        assert not to_bob.awaiting_welcome
        assert not to_alice.awaiting_welcome
        await alice.send(to_bob.id, "ping")
        await carry(alice, bob)
        await bob.send(to_alice.id, "pong")
        await carry(bob, alice)
        assert "ping" in [m.body for m in await bob.messages(to_alice.id)]
        assert "pong" in [m.body for m in await alice.messages(to_bob.id)]

    run(tmp_path, ["alice", "bob"], body)


def test_a_handshake_from_a_request_is_not_a_welcome(tmp_path: Path) -> None:
    """A welcome sent where none is awaited changes nothing but the ratchet step."""

    async def body(alice: Engine, bob: Engine, carol: Engine) -> None:
        to_bob, to_alice = await befriend(alice, bob)
        to_carol, _ = await befriend(alice, carol)
        carol_box = (await alice.store.read(lambda r: r.mailboxes.list_theirs(to_carol.id)))[0]
        before = await snapshot(alice, to_bob.id)
        events: list[Event] = []
        alice.subscribe(events.append)
        # Bob's client misbehaves: a second welcome inside the running session, naming first
        # a fresh mailbox, then Carol's.
        for mailbox in (b"\x42" * 32, carol_box.id):
            await bob_sends(bob, to_alice.id, pl.Welcome(mailbox, "ws://evil.example:1", "Bob"))
            await carry(bob, alice)
        after = await snapshot(alice, to_bob.id)
        assert after[2:] == before[2:]  # mailboxes and history as they were
        theirs = await alice.store.read(lambda r: r.mailboxes.list_theirs(to_carol.id))
        assert theirs == [carol_box]
        kinds = [e.kind.value for e in events if isinstance(e, FrameRejected)]
        assert kinds == ["welcome", "welcome"]
        assert (await alice.status()).rejected == {"welcome": 2}

    run(tmp_path, ["alice", "bob", "carol"], body)


async def bob_sends(engine: Engine, contact_id: int, payload: pl.Payload) -> None:
    """What a modified client could put in its own session: any payload, stored and queued."""
    from app.crypto.ratchet import Session
    from app.store.records import NewOutbox

    blob = await engine.store.read(lambda r: r.sessions.load(contact_id))
    assert blob is not None
    session, frame = Session.from_bytes(blob).encrypt(pl.encode(payload))
    dest = (await engine.store.read(lambda r: r.mailboxes.list_theirs(contact_id)))[0]
    row = NewOutbox(contact_id, OutboxKind.MESSAGE, dest.id, dest.relay_url, frame, 0, 0)

    def unit(r):  # type: ignore[no-untyped-def]
        r.sessions.save(contact_id, session.to_bytes(), 0)
        r.outbox.add(row)

    await engine.store.run(unit)
