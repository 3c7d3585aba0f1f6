"""Groups on a live relay on 127.0.0.1 (docs/groups.md): created, joined, members who are not
contacts connecting through group codes, messages in all directions with their authors,
receipts per member, removal, leaving, renaming, and messages passed on by a member when
their author went away."""

from __future__ import annotations

import asyncio
from pathlib import Path

from app.core.engine import Engine
from app.core.events import GroupChanged, MessageAdded, MessageStatusChanged
from app.domain.contacts import ContactKind, ContactState
from app.domain.groups import GroupState
from app.domain.messages import Direction, Status
from tests.core.test_live_relay import Person, introduce, people


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
