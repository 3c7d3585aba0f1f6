"""What both sides of the group protocol do in the store (app/core/group_state.py): which
members we can seal to and with which session, the roster rebuilt from its rows, an applied
event recorded, a group and its members as the front ends read them, and what a removal
drops. Real SQLCipher, no network."""

from __future__ import annotations

import os

import sqlcipher3

from app.core import statements as st
from app.core.group_state import (
    after_change,
    card_of,
    channels_to,
    member_view,
    name_of,
    read_group,
    record,
    roster_of,
)
from app.crypto.handshake import Invitation, initiate
from app.crypto.identity import Identity
from app.domain.contacts import ContactKind, ContactState
from app.domain.groups import GroupState, MemberState
from app.domain.messages import Direction, Status
from app.store import migrations
from app.store.records import NewMessage, NewOutbox, OutboxKind, TheirMailbox
from app.store.repos import Repos

ME = Identity.from_seeds(b"m" * 32, b"M" * 32)
PEOPLE = {
    name: Identity.from_seeds(name.encode() * 32, name.lower().encode() * 32) for name in "ABCDE"
}
KEYS = {name: who.public.to_bytes() for name, who in PEOPLE.items()}
GID = b"g" * 16


def fresh() -> tuple[Repos, int]:
    conn = sqlcipher3.connect(":memory:", isolation_level=None)
    migrations.configure(conn)
    migrations.migrate(conn)
    r = Repos(conn)
    row = r.contacts.add("Friends", GID, 1, kind=ContactKind.GROUP).id
    r.groups.add(row, GID, GroupState.JOINED, None)
    return r, row


def session_bytes(peer: str) -> bytes:
    card = Invitation.generate().card(PEOPLE[peer], "ws://127.0.0.1:1", peer)
    return initiate(ME, card, name="Me", reply_mailbox=os.urandom(32)).to_bytes()


def talked_to(
    r: Repos,
    name: str,
    *,
    kind: ContactKind = ContactKind.PERSON,
    mailbox: bool = True,
    session: bool = True,
    waiting: bool = False,
    verified: bool = False,
) -> int:
    cid = r.contacts.add(
        name, KEYS[name], 1, verified=verified, kind=kind, awaiting_welcome=waiting
    ).id
    if mailbox:
        r.mailboxes.add_theirs(TheirMailbox(os.urandom(32), "ws://127.0.0.1:1", cid, 1))
    if session:
        r.sessions.save(cid, session_bytes(name), 1)
    return cid


def test_only_members_with_a_complete_channel_are_sealed_to() -> None:
    r, _ = fresh()
    a = talked_to(r, "A")
    talked_to(r, "B", mailbox=False)  # no mailbox of theirs yet
    talked_to(r, "C", session=False)  # no session
    talked_to(r, "D", waiting=True)  # our handshake is not complete
    e = talked_to(r, "E", kind=ContactKind.MEMBER)
    peers = channels_to(r, [KEYS[n] for n in "ABCDE"] + [b"z" * 64])
    assert [(p.contact_id, p.keys) for p in peers] == [(a, KEYS["A"]), (e, KEYS["E"])]
    # A session newer than the store's (the frame being taken) is the one sealed under.
    newer = initiate(
        ME,
        Invitation.generate().card(PEOPLE["A"], "ws://h:1", "A"),
        name="Me",
        reply_mailbox=os.urandom(32),
    )
    (peer,) = channels_to(r, [KEYS["A"]], {a: newer})
    assert peer.session is newer
    (peer,) = channels_to(r, [KEYS["A"]], {e: newer})
    assert peer.session.to_bytes() == r.sessions.load(a)
    r.contacts.set_state(a, ContactState.ENDED)
    assert channels_to(r, [KEYS["A"]]) == []


def add_event(who: str, seq: int, op: st.Op, member: str = "", name: str = "N") -> st.Event:
    identity = ME if who == "me" else PEOPLE[who]
    if op is st.Op.LEAVE:
        member = who
    target = ME.public.to_bytes() if member == "me" else KEYS.get(member, b"")
    return st.make_event(identity, GID, seq, 0, op, target, name, by="Me")


def test_events_recorded_and_the_roster_rebuilt_from_the_rows() -> None:
    r, row = fresh()
    me = ME.public.to_bytes()
    events = [
        add_event("me", 1, st.Op.CREATE, name="Friends"),
        add_event("me", 2, st.Op.ADD, "A", "Ann"),
        add_event("me", 3, st.Op.ADD, "B", "Ben"),
        add_event("me", 4, st.Op.PROMOTE, "A"),
        add_event("A", 1, st.Op.REMOVE, "B"),
        add_event("A", 2, st.Op.RENAME, name="Old friends"),
    ]
    for event in events:
        assert roster_of(r, row).apply(event)[0].value == "applied"
        record(r, row, event)
    roster = roster_of(r, row)
    assert roster.name == "Old friends"
    assert list(roster.members) == [me, KEYS["A"]]
    assert [s.admin for s in roster.members.values()] == [True, True]
    assert [s.name for s in roster.members.values()] == ["Me", "Ann"]
    # Ben is gone, and his numbers with him; ours and Ann's are kept (so an old one is stale).
    assert roster.seqs == {me: 4, KEYS["A"]: 2}
    ben = r.groups.member(row, KEYS["B"])
    assert ben is not None
    assert (ben.state, ben.admin) == (MemberState.REMOVED, False)
    ann = r.groups.member(row, KEYS["A"])
    assert ann is not None
    assert ann.admin
    assert [s.statement for s in r.groups.log(row)] == [e.statement for e in events]
    assert r.groups.member(row, me).code == ""  # type: ignore[union-attr]  # the creator joined
    # An admin removed, then back as a plain member: not an admin any more.
    record(r, row, add_event("me", 5, st.Op.REMOVE, "A"))
    record(r, row, add_event("me", 6, st.Op.ADD, "A", "Ann"))
    assert roster_of(r, row).members[KEYS["A"]].admin is False
    record(r, row, add_event("me", 7, st.Op.ADD, "C", "Cy"))
    record(r, row, add_event("C", 1, st.Op.LEAVE))
    cy = r.groups.member(row, KEYS["C"])
    assert cy is not None
    assert (cy.state, cy.admin) == (MemberState.LEFT, False)
    assert roster_of(r, row).seqs[KEYS["C"]] == 1


def test_a_group_and_its_members_as_the_front_ends_see_them() -> None:
    r, row = fresh()
    me = ME.public.to_bytes()
    for event in (
        add_event("me", 1, st.Op.CREATE, name="Friends"),
        add_event("me", 2, st.Op.ADD, "A", "Ann as the admin named her"),
        add_event("me", 3, st.Op.ADD, "B", "Ben"),
        add_event("me", 4, st.Op.ADD, "C", "Cy"),
        add_event("me", 5, st.Op.ADD, "D", "Di"),
    ):
        record(r, row, event)
    a = talked_to(r, "A", verified=True)  # our contact, verified: our name for her
    b = talked_to(r, "B", kind=ContactKind.MEMBER)  # met through the group
    c = talked_to(r, "C", verified=True)
    r.contacts.set_state(c, ContactState.ENDED)  # a contact we ended: no channel
    r.groups.set_member(row, KEYS["B"], code="their code")
    group = read_group(r, row, me)
    assert group.name == "Friends"
    assert group.invited_by == ""
    seen = [
        (m.name, m.is_me, m.contact_id, m.is_contact, m.verified, m.joined, m.admin)
        for m in group.members
    ]
    assert seen == [
        ("Me", True, None, False, False, True, True),
        ("A", False, a, True, True, False, False),
        ("Ben", False, b, False, False, True, False),
        ("Cy", False, None, False, False, False, False),
        ("Di", False, None, False, False, False, False),
    ]
    r.groups.set_state(row, GroupState.INVITED)
    r.conn.execute("UPDATE groups SET invited_by = ? WHERE contact_id = ?", (KEYS["B"], row))
    assert read_group(r, row, me).invited_by == "Ben"
    assert name_of(r, row, KEYS["A"]) == "A"  # our contact: our name
    assert name_of(r, row, KEYS["D"]) == "Di"
    assert name_of(r, row, b"z" * 64) == "Someone"
    ben = r.groups.member(row, KEYS["B"])
    assert ben is not None
    assert member_view(r, ben, KEYS["B"]).is_me


def test_a_removal_drops_the_copies_still_waiting_for_that_member_only() -> None:
    r, row = fresh()
    for event in (
        add_event("me", 1, st.Op.CREATE, name="Friends"),
        add_event("me", 2, st.Op.ADD, "A", "Ann"),
        add_event("me", 3, st.Op.ADD, "B", "Ben"),
    ):
        record(r, row, event)
    a, b = talked_to(r, "A"), talked_to(r, "B")
    mine = r.messages.insert(
        NewMessage(row, Direction.OUTGOING, b"p" * 16, 1, "hi", 0, None, Status.SENT, True)
    ).message_row
    assert mine is not None
    for cid, name in ((a, "A"), (b, "B")):
        frame_id = name.encode() * 16
        r.outbox.add(
            NewOutbox(cid, OutboxKind.CONTROL, b"x" * 32, "ws://h:1", b"f", 0, 0, frame_id)
        )
        r.groups.add_copy(frame_id, mine, KEYS[name])
    removal = add_event("me", 4, st.Op.REMOVE, "A")
    record(r, row, removal)
    after_change(r, row, removal, ME.public.to_bytes())
    assert r.outbox.for_contact(a) == []
    assert len(r.outbox.for_contact(b)) == 1
    assert r.groups.get(row).state is GroupState.JOINED
    # Someone we never met removed: nothing to drop. Us removed: we are out.
    record(r, row, add_event("me", 5, st.Op.ADD, "E", "Eve"))
    gone = add_event("me", 6, st.Op.REMOVE, "E")
    after_change(r, row, gone, ME.public.to_bytes())
    assert len(r.outbox.for_contact(b)) == 1
    after_change(r, row, add_event("B", 1, st.Op.REMOVE, "me"), ME.public.to_bytes())
    assert r.groups.get(row).state is GroupState.REMOVED
    after_change(r, row, add_event("me", 7, st.Op.LEAVE), ME.public.to_bytes())
    assert r.groups.get(row).state is GroupState.LEFT


def test_a_code_is_taken_only_as_its_holders() -> None:
    code = Invitation.generate().card(PEOPLE["A"], "ws://127.0.0.1:1", "A").encode()
    assert card_of(code, KEYS["A"]) is not None
    assert card_of(code, KEYS["B"]) is None
    assert card_of("anonchat:not a card", KEYS["A"]) is None
    assert card_of("", KEYS["A"]) is None
