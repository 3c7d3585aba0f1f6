"""Groups on a live relay on 127.0.0.1 (docs/groups.md): created, joined, members who are not
contacts connecting through group codes, messages in all directions with their authors,
receipts per member, removal, leaving, renaming, and messages passed on by a member when
their author went away."""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgpack
import pytest

from app.core import group_intake, groups
from app.core import payload as pl
from app.core import statements as st
from app.core.engine import Engine
from app.core.errors import SendingBlocked, UserError
from app.core.events import (
    ContactAdded,
    ContactChanged,
    ContactLimited,
    FrameRejected,
    GroupChanged,
    Limit,
    MessageAdded,
    MessageStatusChanged,
    Rejection,
)
from app.crypto import groupsig
from app.crypto.groupsig import statement_is_signed
from app.crypto.ratchet import Session
from app.domain.contacts import ContactKind, ContactState
from app.domain.groups import MAX_GROUP_MEMBERS, GroupState
from app.domain.messages import Direction, Message, Status
from app.net.events import Delivered
from app.store.records import NewMessage
from app.store.repos import Repos
from relay.server import RelayConfig, serve_relay
from tests.core.test_live_relay import Person, introduce, people
from tests.e2e.injector import Injector


def keys(person: Person) -> bytes:
    return person.engine.identity.public.to_bytes()


async def joined(person: Person, name: str) -> int:
    """The person takes the invitation to `name` once it arrives; the group's row."""
    invite = await person.until(
        GroupChanged,
        lambda e: e.group.name == name and e.group.state is GroupState.INVITED,  # type: ignore[attr-defined]
    )
    group = await person.engine.join_group(invite.group.id)  # type: ignore[attr-defined]
    assert group.state is GroupState.JOINED
    return group.id


async def got(person: Person, text: str, seconds: float = 30.0) -> MessageAdded:
    event = await person.until(
        MessageAdded,
        lambda e: e.message.body == text and e.message.direction is Direction.INCOMING,  # type: ignore[attr-defined]
        seconds,
    )
    assert isinstance(event, MessageAdded)
    return event


async def connected(engine: Engine, row: int, count: int) -> None:
    """Until every other member of the group has a channel with `engine`."""
    for _ in range(600):
        group = await engine.group(row)
        if sum(1 for m in group.members if not m.is_me and m.contact_id is not None) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"members never connected: {await engine.group(row)}")


async def three(alice: Person, bob: Person, carol: Person) -> tuple[int, int, int]:
    """Alice knows Bob and Carol, who do not know each other; Alice makes "Friends" with
    both, both join, and Bob and Carol connect through the group. The three rows."""
    to_bob, _ = await introduce(bob, alice)
    to_carol, _ = await introduce(carol, alice)
    to_bob = (await alice.engine.find_contact("Bob")).id
    to_carol = (await alice.engine.find_contact("Carol")).id
    group = await alice.engine.create_group("Friends", [to_bob, to_carol])
    b_row = await joined(bob, "Friends")
    c_row = await joined(carol, "Friends")
    await connected(bob.engine, b_row, 2)
    await connected(carol.engine, c_row, 2)
    return group.id, b_row, c_row


def test_a_group_talks_in_all_directions_and_members_meet_without_becoming_contacts(
    tmp_path: Path,
) -> None:
    async def body() -> None:
        async with people(tmp_path, "Alice", "Bob", "Carol") as (alice, bob, carol):
            a_row, b_row, c_row = await three(alice, bob, carol)
            group = await bob.engine.group(b_row)
            assert [m.name for m in group.members] == ["Alice", "Bob", "Carol"]
            assert [m.admin for m in group.members] == [True, False, False]
            # Bob and Carol have a channel, yet neither is in the other's contact list.
            bob_list = [s.contact for s in await bob.engine.summaries()]
            assert {c.display_name for c in bob_list} == {"Alice", "Friends"}
            member = await bob.engine.store.read(lambda r: r.contacts.find_by_identity(keys(carol)))
            assert member is not None
            assert member.kind is ContactKind.MEMBER
            assert member.state is ContactState.CONTACT
            assert await bob.engine.requests() == []

            mine = await alice.engine.send(a_row, "hello friends")
            for person in (bob, carol):
                event = await got(person, "hello friends")
                assert event.message.author == "Alice"
                assert event.message.author_keys == keys(alice)
                assert event.message.contact_id in (b_row, c_row)
            await bob.engine.send(b_row, "hi from bob")
            await got(alice, "hi from bob")
            seen = await got(carol, "hi from bob")
            assert seen.message.author == "Bob"
            await carol.engine.send(c_row, "and carol")
            await got(alice, "and carol")
            await got(bob, "and carol")

            # Receipts: delivered to both, counted per member.
            await alice.until(
                MessageStatusChanged,
                lambda e: e.message_row == mine.id and e.status is Status.DELIVERED,  # type: ignore[attr-defined]
            )
            deliveries = await alice.engine.deliveries(mine.id)
            assert sorted((d.member.name, d.delivered) for d in deliveries) == [
                ("Bob", True),
                ("Carol", True),
            ]

    asyncio.run(body())


async def row_of(person: Person, other: Person) -> int:
    """The row through which `person` talks to `other` (a contact or a member-only one)."""
    found = await person.engine.store.read(lambda r: r.contacts.find_by_identity(keys(other)))
    assert found is not None
    return found.id


async def smuggle(sender: Person, receiver: Person, content: pl.Payload) -> None:
    """Seal `content` under the sender's session with the receiver and hand the frame to the
    receiver as its relay would: what a member's client could send, whatever its engine
    allows."""
    to_receiver = await row_of(sender, receiver)

    def channel(r: Repos) -> tuple[bytes, bytes]:
        blob = r.sessions.load(to_receiver)
        assert blob is not None
        return blob, r.mailboxes.list_theirs(to_receiver)[0].id

    blob, mailbox = await sender.engine.store.read(channel)
    session, frame = Session.from_bytes(blob).encrypt(pl.encode(content))
    await sender.engine.store.run(lambda r: r.sessions.save(to_receiver, session.to_bytes(), 0))
    await receiver.engine.receive(Delivered(receiver.engine.relay_url, mailbox, frame))


def rejected(person: Person) -> list[str]:
    return [
        e.reason
        for e in person.events
        if isinstance(e, FrameRejected) and e.kind is Rejection.GROUP
    ]


def bodies(messages: list[Message]) -> list[str]:
    return [m.body for m in messages]


def test_forged_and_stale_statements_are_dropped_and_reported(tmp_path: Path) -> None:
    async def body() -> None:
        async with people(tmp_path, "Alice", "Bob", "Carol") as (alice, bob, carol):
            a_row, b_row, c_row = await three(alice, bob, carol)
            gid = (await alice.engine.group(a_row)).group_id
            before = await carol.engine.group(c_row)
            # Bob is no admin: his removal of Carol is refused by Carol and by Alice.
            forged = st.make_event(bob.engine.identity, gid, 1, 0, st.Op.REMOVE, keys(carol))
            not_an_admins = pl.GroupSigned(False, forged.statement, forged.signature)
            for target in (carol, alice):
                await smuggle(bob, target, not_an_admins)
            # A post that names Alice as its author, signed by Bob.
            post = st.make_post(bob.engine.identity, gid, 1, 0, "in Alice's name")
            fields = msgpack.unpackb(post.statement)
            fields["a"] = keys(alice)
            lie = msgpack.packb(fields, use_bin_type=True)
            await smuggle(bob, carol, pl.GroupSigned(True, lie, post.signature))
            # A change under Alice's own key with a number she used already (stale), and one
            # whose signature is not hers at all.
            stale = st.make_event(alice.engine.identity, gid, 2, 0, st.Op.REMOVE, keys(bob))
            await smuggle(alice, carol, pl.GroupSigned(False, stale.statement, stale.signature))
            fresh = st.make_event(alice.engine.identity, gid, 9, 0, st.Op.RENAME, name="Pwned")
            await smuggle(alice, carol, pl.GroupSigned(False, fresh.statement, b"\0" * 64))
            assert len(rejected(carol)) == 4
            assert len(rejected(alice)) == 1
            after = await carol.engine.group(c_row)
            assert after.members == before.members
            assert after.name == "Friends"
            assert "in Alice's name" not in bodies(await carol.engine.messages(c_row))
            totals = await carol.engine.rejections()
            assert totals["group"] == 4
            # The group still works for everyone.
            await alice.engine.send(a_row, "still here")
            await got(bob, "still here")
            await got(carol, "still here")
            assert b_row

    asyncio.run(body())


def test_a_removed_member_gets_nothing_more_and_their_later_messages_are_dropped(
    tmp_path: Path,
) -> None:
    async def body() -> None:
        async with people(tmp_path, "Alice", "Bob", "Carol") as (alice, bob, carol):
            a_row, b_row, c_row = await three(alice, bob, carol)
            gid = (await alice.engine.group(a_row)).group_id
            group = await alice.engine.remove_member(a_row, keys(carol))
            assert [m.name for m in group.members] == ["Alice", "Bob"]
            await bob.until(
                GroupChanged,
                lambda e: e.group.id == b_row and len(e.group.members) == 2,  # type: ignore[attr-defined]
            )
            await carol.until(
                GroupChanged,
                lambda e: e.group.state is GroupState.REMOVED,  # type: ignore[attr-defined]
            )
            with pytest.raises(SendingBlocked):
                await carol.engine.send(c_row, "can I still write?")
            without = await alice.engine.send(a_row, "without carol")
            await got(bob, "without carol")
            # Carol's client, as if it had not heard, signs her next post and sends it to
            # both: dropped and reported, never shown.
            post = st.make_post(carol.engine.identity, gid, 1, 0, "after my removal")
            for target in (bob, alice):
                await smuggle(carol, target, pl.GroupSigned(True, post.statement, post.signature))
            assert rejected(bob)
            assert rejected(alice)
            await bob.engine.send(b_row, "later")
            await got(alice, "later")
            for person, row in ((alice, a_row), (bob, b_row)):
                assert "after my removal" not in bodies(await person.engine.messages(row))
            assert "without carol" not in bodies(await carol.engine.messages(c_row))
            # No copy of it was ever made for Carol.
            copies = await alice.engine.store.read(lambda r: r.groups.copies(without.id))
            assert copies == [(keys(bob), True)]

    asyncio.run(body())


def test_a_message_reaches_a_member_through_another_when_its_author_is_gone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(group_intake, "MAX_FORWARD", 2)  # five behind: three exchanges

    async def body() -> None:
        relay = await serve_relay(RelayConfig(host="127.0.0.1", port=0))
        url = relay.url.rstrip("/")
        try:
            await away(url)
        finally:
            await relay.close()

    async def away(url: str) -> None:
        async with people(tmp_path, "Alice", "Bob", "Carol", relay_url=url) as trio:
            alice, bob, carol = trio
            a_row, _, c_row = await three(alice, bob, carol)
        # Alice writes while Carol is away; Bob gets it; then Alice goes too.
        async with people(tmp_path, "Alice", "Bob", relay_url=url, reopen=True) as (alice, bob):
            for i in range(4):
                await alice.engine.send(a_row, f"earlier {i}")
            await alice.engine.send(a_row, "for carol, through bob")
            await got(bob, "for carol, through bob")
        async with (
            people(tmp_path, "Bob", relay_url=url, reopen=True),
            people(tmp_path, "Carol", relay_url=url, reopen=True) as (carol,),
        ):
            event = await got(carol, "for carol, through bob", 40.0)
            assert event.message.author == "Alice"
            assert event.message.author_keys == keys(alice)
            stored = await carol.engine.messages(c_row)
            assert sorted(bodies(stored)) == sorted(
                [f"earlier {i}" for i in range(4)] + ["for carol, through bob"]
            )
            signed = await carol.engine.store.read(lambda r: r.groups.post_of(event.message.id))
            assert signed is not None
            assert statement_is_signed(keys(alice), signed.statement, signed.signature)

    asyncio.run(body())


def test_the_relay_sees_no_group(tmp_path: Path) -> None:
    async def body() -> None:
        relay = await serve_relay(RelayConfig(host="127.0.0.1", port=0))
        spy = Injector(relay.url.rstrip("/"))
        try:
            async with people(tmp_path, "Alice", "Bob", "Carol", relay_url=spy.url) as trio:
                alice, bob, carol = trio
                a_row, b_row, _ = await three(alice, bob, carol)
                gid = (await alice.engine.group(a_row)).group_id
                for i in range(3):
                    await alice.engine.send(a_row, f"same text {i}")
                    await bob.engine.send(b_row, f"same text {i}")
                await got(carol, "same text 2")
                await alice.engine.remove_member(a_row, keys(carol))
                await bob.until(
                    GroupChanged,
                    lambda e: len(e.group.members) == 2,  # type: ignore[attr-defined]
                )
        finally:
            spy.close()
            await relay.close()
        payloads = [payload for _, _, payload in spy.sends]
        assert len(payloads) > 30
        assert not any(gid in p for p in payloads)
        assert not any(b"Friends" in p for p in payloads)
        by_payload: dict[bytes, set[bytes]] = {}
        for _, mailbox, payload in spy.sends:
            by_payload.setdefault(payload, set()).add(mailbox)
        assert all(len(boxes) == 1 for boxes in by_payload.values())

    asyncio.run(body())


def test_rename_promote_leave_and_decline(tmp_path: Path) -> None:
    async def body() -> None:
        async with people(tmp_path, "Alice", "Bob", "Carol") as (alice, bob, carol):
            a_row, b_row, _ = await three(alice, bob, carol)
            with pytest.raises(UserError, match="admin"):
                await bob.engine.rename_group(b_row, "Bob's now")
            await alice.engine.rename_group(a_row, "Old friends")
            await bob.until(
                GroupChanged,
                lambda e: e.group.name == "Old friends",  # type: ignore[attr-defined]
            )
            assert (await bob.engine.contact(b_row)).display_name == "Old friends"
            await alice.engine.promote_member(a_row, keys(bob))
            await carol.until(
                GroupChanged,
                lambda e: [m.admin for m in e.group.members] == [True, True, False],  # type: ignore[attr-defined]
            )
            # The last admin to leave would leave nobody in charge: Alice names Bob first
            # (already one), leaves, and Bob and Carol go on without her.
            left = await alice.engine.leave_group(a_row)
            assert left.state is GroupState.LEFT
            with pytest.raises(SendingBlocked):
                await alice.engine.send(a_row, "still there?")
            await carol.until(
                GroupChanged,
                lambda e: [m.name for m in e.group.members] == ["Bob", "Carol"],  # type: ignore[attr-defined]
            )
            await bob.engine.send(b_row, "just us")
            await got(carol, "just us")
            assert "just us" not in bodies(await alice.engine.messages(a_row))
            # Someone known only through a group is no contact to invite elsewhere.
            to_carol = (await bob.engine.group(b_row)).member(keys(carol))
            assert to_carol is not None
            assert to_carol.contact_id is not None
            with pytest.raises(UserError, match="not a contact you can invite"):
                await bob.engine.create_group("Second", [to_carol.contact_id])
            with pytest.raises(UserError, match="no contact"):
                await bob.engine.create_group("Third", [await row_of(bob, alice) + 10_000])
            # Bob invites Alice, who declines: the invitation goes, nothing is sent back.
            await bob.engine.create_group("Second", [await row_of(bob, alice)])
            invite = await alice.until(
                GroupChanged,
                lambda e: e.group.name == "Second",  # type: ignore[attr-defined]
            )
            assert [g.name for g in await alice.engine.group_invites()] == ["Second"]
            await alice.engine.decline_group(invite.group.id)  # type: ignore[attr-defined]
            assert await alice.engine.group_invites() == []
            assert "Second" not in [g.name for g in await alice.engine.groups()]

    asyncio.run(body())


def test_a_group_holds_at_most_100_and_says_so(tmp_path: Path) -> None:
    async def body() -> None:
        async with people(tmp_path, "Alice") as (alice,):
            with pytest.raises(UserError, match="100 members"):
                await alice.engine.create_group("Crowd", range(1, 101))
            with pytest.raises(UserError, match="name"):
                await alice.engine.create_group("  ", [])
            alone = await alice.engine.create_group("Just me", [])
            assert [m.is_me for m in alone.members] == [True]
            assert alone.am_admin
            # Nobody to send to: queued, no copies; one that failed is written anew.
            note = await alice.engine.send(alone.id, "a note to myself")
            assert note.status is Status.QUEUED
            assert await alice.engine.deliveries(note.id) == []
            await alice.engine.store.run(
                lambda r: r.conn.execute(
                    "UPDATE messages SET status = 'failed' WHERE id = ?", (note.id,)
                )
            )
            with pytest.raises(UserError, match="write it anew"):
                await alice.engine.retry(note.id)

    asyncio.run(body())


def test_deleting_a_group_leaves_it_first_and_the_last_admin_names_an_heir(
    tmp_path: Path,
) -> None:
    async def body() -> None:
        async with people(tmp_path, "Alice", "Bob", "Carol") as (alice, bob, carol):
            a_row, b_row, c_row = await three(alice, bob, carol)
            # Alice, the only admin, leaves (history kept): Bob, there longest, is made admin.
            await alice.engine.delete_contact(a_row, keep_history=True)
            assert (await alice.engine.group(a_row)).state is GroupState.LEFT
            for person in (bob, carol):
                await person.until(
                    GroupChanged,
                    lambda e: (
                        [(m.name, m.admin) for m in e.group.members]  # type: ignore[attr-defined]
                        == [("Bob", True), ("Carol", False)]
                    ),
                )
            code = await alice.engine.store.read(lambda r: r.groups.get(a_row).code_mailbox)
            assert code is None
            # Carol deletes it outright: gone from her list, and she left it for Bob.
            await carol.engine.delete_contact(c_row)
            assert not carol.engine.is_group(c_row)
            assert c_row not in [s.contact.id for s in await carol.engine.summaries()]
            await bob.until(
                GroupChanged,
                lambda e: [m.name for m in e.group.members] == ["Bob"],  # type: ignore[attr-defined]
            )
            assert (await bob.engine.group(b_row)).state is GroupState.JOINED

    asyncio.run(body())


def test_a_group_past_its_storage_quota_leaves_posts_with_their_senders(tmp_path: Path) -> None:
    async def body() -> None:
        async with people(tmp_path, "Alice", "Bob", "Carol") as (alice, bob, carol):
            a_row, _, c_row = await three(alice, bob, carol)
            filler = [
                NewMessage(
                    c_row,
                    Direction.INCOMING,
                    i.to_bytes(16, "big"),
                    i,
                    "x" * 16_000,
                    0,
                    0,
                    Status.DELIVERED,
                    author_keys=keys(alice),
                )
                for i in range(1, 70)
            ]  # 1.1 MB of the group's text already here
            await carol.engine.store.run(lambda r: r.messages.insert_many(filler))
            await carol.engine.set_quota(1)
            mine = await alice.engine.send(a_row, "one too many")
            await got(bob, "one too many")
            await carol.until(
                ContactLimited,
                lambda e: e.contact_id == c_row and e.limit is Limit.QUOTA,  # type: ignore[attr-defined]
            )
            assert "one too many" not in bodies(await carol.engine.messages(c_row, 100))
            for _ in range(200):  # Bob's receipt comes within a moment; Carol's does not
                copies = dict(await alice.engine.store.read(lambda r: r.groups.copies(mine.id)))
                if copies[keys(bob)]:
                    break
                await asyncio.sleep(0.05)
            assert copies == {keys(bob): True, keys(carol): False}  # Alice sends it again

    asyncio.run(body())


def test_deliveries_count_the_copies_made_and_a_late_joiner_gets_what_was_written(
    tmp_path: Path,
) -> None:
    async def body() -> None:
        async with people(tmp_path, "Alice", "Bob", "Carol") as (alice, bob, carol):
            to_bob, _ = await introduce(bob, alice)
            to_carol, _ = await introduce(carol, alice)
            to_bob = (await alice.engine.find_contact("Bob")).id
            to_carol = (await alice.engine.find_contact("Carol")).id
            group = await alice.engine.create_group("Friends", [to_bob, to_carol])
            b_row = await joined(bob, "Friends")
            await alice.until(
                GroupChanged,
                lambda e: [m.joined for m in e.group.members] == [True, True, False],  # type: ignore[attr-defined]
            )
            # Carol has not joined: no copy is made for her, and the count says one of one.
            early = await alice.engine.send(group.id, "before carol joined")
            await got(bob, "before carol joined")
            await alice.until(
                MessageStatusChanged,
                lambda e: e.message_row == early.id and e.status is Status.DELIVERED,  # type: ignore[attr-defined]
            )
            assert [
                (d.member.name, d.delivered) for d in await alice.engine.deliveries(early.id)
            ] == [("Bob", True)]
            # Carol joins: what was written before comes to her, and counts for her.
            c_row = await joined(carol, "Friends")
            await got(carol, "before carol joined")
            for _ in range(200):
                counted = await alice.engine.deliveries(early.id)
                if len(counted) == 2 and all(d.delivered for d in counted):
                    break
                await asyncio.sleep(0.05)
            assert [(d.member.name, d.delivered) for d in counted] == [
                ("Bob", True),
                ("Carol", True),
            ]
            # Carol knows Bob joined before her; and no list event ever named a member-only row.
            await connected(carol.engine, c_row, 2)
            assert all(m.joined for m in (await carol.engine.group(c_row)).members)
            member_rows = {await row_of(carol, bob), await row_of(bob, carol)}
            for person in (bob, carol):
                named = [
                    e.contact.id
                    for e in person.events
                    if isinstance(e, ContactAdded | ContactChanged)
                ]
                assert not member_rows & set(named)
            assert b_row

    asyncio.run(body())


def test_the_numbers_docs_groups_md_gives() -> None:
    assert MAX_GROUP_MEMBERS == 100
    assert (group_intake.MAX_FORWARD, group_intake.MAX_WAITING) == (200, 64)
    assert (pl.MAX_GROUP_LOG, pl.MAX_SYNC_AUTHORS) == (256, 256)
    assert groups.SYNC_EVERY_S == 20.0
    assert groupsig.LABEL == b"anonchat/group/v1\x00"
