"""What a member's engine does with each group payload (app/core/group_intake.py), engine to
engine with the frames handed over by the test (no relay): every check that refuses, and what
each accepted payload changes. The attacker here is a member or a contact: it can seal
anything under its own session with us, and sign anything under its own identity key."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from app.core import group_intake
from app.core import payload as pl
from app.core import statements as st
from app.core.engine import Engine
from app.core.events import ContactRemoved, Event, FrameRejected, Rejection
from app.crypto.handshake import Invitation
from app.crypto.identity import Identity
from app.crypto.ratchet import Session
from app.domain.contacts import ContactState
from app.domain.groups import GroupState
from app.store.records import OutboxKind
from app.store.repos import Repos
from tests.core.engines import befriend, carry, deliver, make

Body = Callable[[Engine, Engine, int, int, list[Event]], Awaitable[None]]


def keys(engine: Engine) -> bytes:
    return engine.identity.public.to_bytes()


async def seal(sender: Engine, receiver: Engine, content: pl.Payload) -> None:
    """`content` under the sender's session with the receiver, handed to the receiver."""
    to_receiver = await sender.store.read(lambda r: r.contacts.find_by_identity(keys(receiver)))
    assert to_receiver is not None
    cid = to_receiver.id

    def channel(r: Repos) -> tuple[bytes, bytes]:
        blob = r.sessions.load(cid)
        assert blob is not None
        return blob, r.mailboxes.list_theirs(cid)[0].id

    blob, mailbox = await sender.store.read(channel)
    session, frame = Session.from_bytes(blob).encrypt(pl.encode(content))
    await sender.store.run(lambda r: r.sessions.save(cid, session.to_bytes(), 0))
    await deliver(receiver, mailbox, frame)


def run(tmp_path: Path, body: Body) -> None:
    """Alice (admin) and Bob, contacts, in a group "G" Bob joined: body(alice, bob, Alice's
    row of the group, Bob's, Bob's events)."""

    async def main() -> None:
        alice, bob = await make(tmp_path / "a", "Alice"), await make(tmp_path / "b", "Bob")
        try:
            a_bob, _ = await befriend(alice, bob)
            group = await alice.create_group("G", [a_bob.id])
            await carry(alice, bob, (OutboxKind.CONTROL,))
            (invite,) = await bob.group_invites()
            await bob.join_group(invite.id)
            await carry(bob, alice, (OutboxKind.CONTROL,))
            events: list[Event] = []
            bob.subscribe(events.append)
            assert all(m.joined for m in (await alice.group(group.id)).members)
            await body(alice, bob, group.id, invite.id, events)
        finally:
            await alice.close()
            await bob.close()

    asyncio.run(main())


def refused(events: list[Event]) -> list[str]:
    return [e.reason for e in events if isinstance(e, FrameRejected) and e.kind is Rejection.GROUP]


def test_events_wait_for_their_turn_and_stale_ones_are_told_apart(tmp_path: Path) -> None:
    async def body(alice: Engine, bob: Engine, a_row: int, b_row: int, ev: list[Event]) -> None:
        gid = (await alice.group(a_row)).group_id
        seq = await alice.store.read(lambda r: r.groups.get(a_row).event_seq)
        rename = st.make_event(alice.identity, gid, seq + 1, 0, st.Op.RENAME, name="First")
        again = st.make_event(alice.identity, gid, seq + 2, 0, st.Op.RENAME, name="Second")
        await seal(alice, bob, pl.GroupSigned(False, again.statement, again.signature))
        assert (await bob.group(b_row)).name == "G"  # early: it waits
        assert await bob.store.read(lambda r: r.groups.waiting_count(b_row)) == 1
        await seal(alice, bob, pl.GroupSigned(False, rename.statement, rename.signature))
        assert (await bob.group(b_row)).name == "Second"  # both, in order
        assert await bob.store.read(lambda r: r.groups.waiting_count(b_row)) == 0
        assert refused(ev) == []
        # The same event again is a copy (no word); another under a used number is stale.
        await seal(alice, bob, pl.GroupSigned(False, rename.statement, rename.signature))
        assert refused(ev) == []
        other = st.make_event(alice.identity, gid, seq + 1, 0, st.Op.RENAME, name="Other")
        await seal(alice, bob, pl.GroupSigned(False, other.statement, other.signature))
        assert len(refused(ev)) == 1
        assert "stale" in refused(ev)[0]
        assert (await bob.group(b_row)).name == "Second"
        # A post sent as an event, an event as a post: refused, nothing stored.
        post = st.make_post(alice.identity, gid, 1, 0, "as an event")
        await seal(alice, bob, pl.GroupSigned(False, post.statement, post.signature))
        await seal(alice, bob, pl.GroupSigned(True, other.statement, other.signature))
        assert len(refused(ev)) == 3
        assert await bob.messages(b_row) == []

    run(tmp_path, body)


def test_posts_are_taken_once_from_members_of_groups_we_are_in(tmp_path: Path) -> None:
    async def body(alice: Engine, bob: Engine, a_row: int, b_row: int, ev: list[Event]) -> None:
        gid = (await alice.group(a_row)).group_id
        post = st.make_post(alice.identity, gid, 7, 0, "once only")
        for _ in range(2):
            await seal(alice, bob, pl.GroupSigned(True, post.statement, post.signature))
        stored = await bob.messages(b_row)
        assert [(m.body, m.author, m.sender_seq) for m in stored] == [("once only", "Alice", 7)]
        # Bob's own post coming back is his already; a post of an unknown group is refused.
        mine = st.make_post(bob.identity, gid, 1, 0, "mine")
        await seal(alice, bob, pl.GroupSigned(True, mine.statement, mine.signature))
        elsewhere = st.make_post(alice.identity, os.urandom(16), 1, 0, "elsewhere")
        await seal(alice, bob, pl.GroupSigned(True, elsewhere.statement, elsewhere.signature))
        assert len(refused(ev)) == 1
        assert len(await bob.messages(b_row)) == 1
        # An author who is not a member.
        stranger = st.make_post(Identity.generate(), gid, 1, 0, "who?")
        await seal(alice, bob, pl.GroupSigned(True, stranger.statement, stranger.signature))
        assert "not a member" in refused(ev)[-1]
        assert len(await bob.messages(b_row)) == 1

    run(tmp_path, body)


def test_joins_introductions_and_exchanges_are_checked(tmp_path: Path) -> None:
    async def body(alice: Engine, bob: Engine, a_row: int, b_row: int, ev: list[Event]) -> None:
        gid = (await alice.group(a_row)).group_id
        someone = Identity.generate()
        their_code = Invitation.generate().card(someone, "ws://127.0.0.1:9", "X").encode()
        bob_code = Invitation.generate().card(bob.identity, "ws://127.0.0.1:9", "B").encode()
        # An introduction by Bob (no admin) to Alice, and one by Alice of a non-member, and
        # of a member with someone else's code: each refused.
        await seal(bob, alice, pl.GroupIntro(gid, keys(alice), bob_code))
        alice_events: list[Event] = []
        alice.subscribe(alice_events.append)
        await seal(bob, alice, pl.GroupIntro(gid, keys(bob), bob_code))
        assert "not from an admin" in refused(alice_events)[-1]
        await seal(alice, bob, pl.GroupIntro(gid, someone.public.to_bytes(), their_code))
        assert "not a member" in refused(ev)[-1]
        await seal(alice, bob, pl.GroupIntro(gid, keys(alice), their_code))
        assert "not the member's" in refused(ev)[-1]
        # A join whose code is not the joiner's, or for a group we are not in.
        await seal(bob, alice, pl.GroupJoin(gid, their_code))
        assert "not the joiner's" in refused(alice_events)[-1]
        await seal(bob, alice, pl.GroupJoin(os.urandom(16), bob_code))
        assert "not in" in refused(alice_events)[-1]
        # An exchange: Alice holds two posts of hers Bob lacks; his holdings bring both, and
        # hers go back only when he holds something she lacks and did not say this in reply.
        for text in ("one", "two"):
            await alice.send(a_row, text)

        async def sealed_after(sync: pl.GroupSync) -> int:
            def controls(r: Repos) -> int:
                return sum(1 for i in r.outbox.due(2**62) if i.kind is OutboxKind.CONTROL)

            before = await alice.store.read(controls)
            await seal(bob, alice, sync)
            return await alice.store.read(controls) - before

        assert await sealed_after(pl.GroupSync(gid, (), False)) == 2
        assert await sealed_after(pl.GroupSync(gid, ((keys(alice), 2),), False)) == 0
        assert await sealed_after(pl.GroupSync(gid, ((keys(alice), 1),), True)) == 1
        assert await sealed_after(pl.GroupSync(gid, ((keys(bob), 1),), False)) == 3
        assert await sealed_after(pl.GroupSync(gid, ((keys(bob), 1),), True)) == 2
        told = len(refused(alice_events))
        await seal(bob, alice, pl.GroupSync(os.urandom(16), (), False))
        assert len(refused(alice_events)) == told + 1
        assert "not in" in refused(alice_events)[-1]

    run(tmp_path, body)


def test_invitations_are_checked_and_a_copy_of_one_taken_changes_nothing(
    tmp_path: Path,
) -> None:
    async def body(alice: Engine, bob: Engine, a_row: int, b_row: int, ev: list[Event]) -> None:
        gid = (await alice.group(a_row)).group_id
        log = await alice.store.read(lambda r: r.groups.log(a_row))
        pairs = tuple((s.statement, s.signature) for s in log)
        await seal(alice, bob, pl.GroupInvite(gid, "G", pairs))  # joined: a copy
        assert (await bob.group(b_row)).state is GroupState.JOINED
        assert refused(ev) == []
        # A log that does not add us, one from someone who is no admin, one with a post in it,
        # one of another group.
        other = os.urandom(16)
        create = st.make_event(bob.identity, other, 1, 0, st.Op.CREATE, name="Mine", by="Bob")
        alice_events: list[Event] = []
        alice.subscribe(alice_events.append)
        await seal(
            bob, alice, pl.GroupInvite(other, "Mine", ((create.statement, create.signature),))
        )
        assert "does not add us" in refused(alice_events)[-1]
        created = st.make_event(alice.identity, other, 1, 0, st.Op.CREATE, name="X", by="A")
        add = st.make_event(alice.identity, other, 2, 0, st.Op.ADD, keys(bob), "Bob")
        twice = ((created.statement, created.signature), (add.statement, add.signature))
        await seal(bob, alice, pl.GroupInvite(other, "X", twice))  # Alice's own group, from Bob
        assert "does not add us" in refused(alice_events)[-1]
        post = st.make_post(alice.identity, other, 1, 0, "p")
        await seal(
            alice, bob, pl.GroupInvite(other, "X", (*twice, (post.statement, post.signature)))
        )
        assert "something else" in refused(ev)[-1]
        await seal(alice, bob, pl.GroupInvite(os.urandom(16), "X", twice))
        assert "something else" in refused(ev)[-1]
        assert await bob.group_invites() == []
        # A good one arrives, then a newer one replaces it.
        await seal(alice, bob, pl.GroupInvite(other, "X", twice))
        (first,) = await bob.group_invites()
        renamed = st.make_event(alice.identity, other, 3, 0, st.Op.RENAME, name="Y")
        await seal(
            alice, bob, pl.GroupInvite(other, "Y", (*twice, (renamed.statement, renamed.signature)))
        )
        (second,) = await bob.group_invites()
        assert second.name == "Y"
        assert bob.is_group(second.id)
        assert first.name == "X"

    run(tmp_path, body)


def test_what_a_removal_a_resend_and_a_queue_of_early_changes_do(tmp_path: Path) -> None:
    async def body(alice: Engine, bob: Engine, a_row: int, b_row: int, ev: list[Event]) -> None:
        gid = (await alice.group(a_row)).group_id
        seq = await alice.store.read(lambda r: r.groups.get(a_row).event_seq)
        # Three changes that come last first: each waits until the one before it is in.
        names = ("One", "Two", "Three")
        made = [
            st.make_event(alice.identity, gid, seq + i, 0, st.Op.RENAME, name=n)
            for i, n in enumerate(names, start=1)
        ]
        for event in reversed(made):
            await seal(alice, bob, pl.GroupSigned(False, event.statement, event.signature))
        assert (await bob.group(b_row)).name == "Three"
        # No more than 64 wait per group.
        far = [
            st.make_event(alice.identity, gid, seq + 10 + i, 0, st.Op.RENAME, name="Far")
            for i in range(66)
        ]
        for event in far:
            await seal(alice, bob, pl.GroupSigned(False, event.statement, event.signature))
        assert await bob.store.read(lambda r: r.groups.waiting_count(b_row)) == 64
        # A post from a member whose joining we had not heard of says they joined.
        await alice.store.run(
            lambda r: r.conn.execute(
                "UPDATE group_members SET code = NULL WHERE identity_keys = ?", (keys(bob),)
            )
        )
        assert not (await alice.group(a_row)).member(keys(bob)).joined  # type: ignore[union-attr]
        post = st.make_post(bob.identity, gid, 1, 0, "hello")
        await seal(bob, alice, pl.GroupSigned(True, post.statement, post.signature))
        assert (await alice.group(a_row)).member(keys(bob)).joined  # type: ignore[union-attr]
        # A frame of the group resent (its receipt lost) is acknowledged again.
        to_bob = await alice.store.read(lambda r: r.contacts.find_by_identity(keys(bob)))
        assert to_bob is not None

        def receipts(r: Repos) -> int:
            return sum(1 for i in r.outbox.due(2**62) if i.kind is OutboxKind.RECEIPT)

        await carry(alice, bob, (OutboxKind.CONTROL,))
        before = await alice.store.read(receipts)
        acked = await bob.store.read(receipts)
        await carry(alice, bob, (OutboxKind.CONTROL,))  # the same frames again
        assert await bob.store.read(receipts) > acked
        assert await alice.store.read(receipts) == before

        # Alice removes Bob: he is out, his group code stops, and a join of his is refused.
        # (Her engine did not make the three renames above: it learns her numbers here.)
        def numbered(r: Repos) -> None:
            r.conn.execute("UPDATE groups SET event_seq = ?", (seq + 3,))
            r.groups.set_member(a_row, keys(alice), event_seq=seq + 3)

        await alice.store.run(numbered)
        await alice.remove_member(a_row, keys(bob))
        await carry(alice, bob, (OutboxKind.CONTROL,))
        assert (await bob.group(b_row)).state is GroupState.REMOVED
        assert await bob.store.read(lambda r: r.groups.get(b_row).code_mailbox) is None
        alice_events: list[Event] = []
        alice.subscribe(alice_events.append)
        code = Invitation.generate().card(bob.identity, "ws://127.0.0.1:9", "B").encode()
        await seal(bob, alice, pl.GroupJoin(gid, code))
        assert "not a member" in refused(alice_events)[-1]
        # A change for a group Bob is no longer in, for one he never was: refused.
        told = len(refused(ev))
        rename = st.make_event(alice.identity, gid, 999, 0, st.Op.RENAME, name="Z")
        await seal(alice, bob, pl.GroupSigned(False, rename.statement, rename.signature))
        assert len(refused(ev)) == told + 1
        assert "not in" in refused(ev)[-1]

    run(tmp_path, body)


def test_an_invitation_from_a_request_or_with_a_refused_change_is_dropped(
    tmp_path: Path,
) -> None:
    async def body(alice: Engine, bob: Engine, a_row: int, b_row: int, ev: list[Event]) -> None:
        other = os.urandom(16)
        created = st.make_event(alice.identity, other, 1, 0, st.Op.CREATE, name="X", by="A")
        add = st.make_event(alice.identity, other, 2, 0, st.Op.ADD, keys(bob), "Bob")
        by_bob = st.make_event(bob.identity, other, 1, 0, st.Op.RENAME, name="Mine")
        log = ((created.statement, created.signature), (add.statement, add.signature))
        bad = (*log, (by_bob.statement, by_bob.signature))  # Bob is no admin there
        await seal(alice, bob, pl.GroupInvite(other, "X", bad))
        assert "admin" in refused(ev)[-1]
        assert await bob.group_invites() == []
        # The same invitation from Alice once she is only a request of Bob's: refused.
        to_alice = await bob.store.read(lambda r: r.contacts.find_by_identity(keys(alice)))
        assert to_alice is not None
        await bob.store.run(lambda r: r.contacts.set_state(to_alice.id, ContactState.REQUEST))
        await seal(alice, bob, pl.GroupInvite(other, "X", log))
        assert "not a contact" in refused(ev)[-1]
        assert await bob.group_invites() == []
        await bob.store.run(lambda r: r.contacts.set_state(to_alice.id, ContactState.CONTACT))
        # A newer invitation replacing an older one tells the front ends the old one went.
        await seal(alice, bob, pl.GroupInvite(other, "X", log))
        (first,) = await bob.group_invites()
        renamed = st.make_event(alice.identity, other, 3, 0, st.Op.RENAME, name="Y")
        await seal(
            alice, bob, pl.GroupInvite(other, "Y", (*log, (renamed.statement, renamed.signature)))
        )
        assert any(isinstance(e, ContactRemoved) and e.contact_id == first.id for e in ev)

    run(tmp_path, body)


def test_a_member_cannot_make_us_seal_again_and_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(group_intake, "FORWARD_BURST", 5)
    monkeypatch.setattr(group_intake, "FORWARD_RATE", 0.001)

    async def body(alice: Engine, bob: Engine, a_row: int, b_row: int, ev: list[Event]) -> None:
        gid = (await alice.group(a_row)).group_id
        for text in ("one", "two"):
            await alice.send(a_row, text)

        def controls(r: Repos) -> int:
            return sum(1 for i in r.outbox.due(2**62) if i.kind is OutboxKind.CONTROL)

        before = await alice.store.read(controls)
        for _ in range(20):  # a member asking for everything, over and over
            await seal(bob, alice, pl.GroupSync(gid, (), False))
        assert await alice.store.read(controls) - before == 5  # the budget, then nothing

    run(tmp_path, body)


def test_invitations_are_kept_up_to_a_hundred(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(group_intake, "MAX_INVITES", 3)

    async def body(alice: Engine, bob: Engine, a_row: int, b_row: int, ev: list[Event]) -> None:
        assert group_intake.MAX_INVITES == 3
        made = []
        for name in ("W", "X", "Y", "Z"):
            gid = os.urandom(16)
            created = st.make_event(alice.identity, gid, 1, 0, st.Op.CREATE, name=name, by="A")
            add = st.make_event(alice.identity, gid, 2, 0, st.Op.ADD, keys(bob), "Bob")
            log = ((created.statement, created.signature), (add.statement, add.signature))
            await seal(alice, bob, pl.GroupInvite(gid, name, log))
            made.append(gid)
        assert [g.name for g in await bob.group_invites()] == ["X", "Y", "Z"]  # W went
        assert (await bob.group(b_row)).state is GroupState.JOINED  # a joined group stays

    run(tmp_path, body)


def test_the_limits_are_the_ones_docs_groups_md_gives() -> None:
    assert (group_intake.FORWARD_BURST, group_intake.FORWARD_RATE) == (1000, 50.0)
    assert group_intake.MAX_INVITES == 100
