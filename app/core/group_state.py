"""A group as both sides of the protocol see it in the store (docs/groups.md): the members
we can seal to, one payload sealed for one member, the roster rebuilt from its rows, an
applied event recorded, and a group read for the front ends. Called inside units of work."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from app.core import payload as pl
from app.core import statements as st
from app.core.outbox import outbox_row
from app.core.roster import Roster, Seat
from app.crypto.card import Card
from app.crypto.errors import CardError
from app.crypto.ratchet import Session
from app.domain.contacts import Contact, ContactKind, ContactState
from app.domain.groups import Group, GroupMember, GroupState, MemberState
from app.store.groups import JOINED_NO_CODE, MemberRow, Signed
from app.store.records import NewOutbox, OutboxKind, TheirMailbox
from app.store.repos import Repos


@dataclass(slots=True)
class Peer:
    """A member we can seal to: the row we talk to them through, their mailbox, the session
    as it stands in this unit."""

    contact_id: int
    keys: bytes
    dest: TheirMailbox
    session: Session


def channels_to(
    r: Repos, keys: Iterable[bytes], current: dict[int, Session] | None = None
) -> list[Peer]:
    """The members among `keys` we have a channel with (`current`: sessions newer than the
    store's, of the frame being taken)."""
    found = []
    for k in keys:
        contact = r.contacts.find_by_identity(k)
        if not talks(contact):
            continue
        assert contact is not None
        theirs = r.mailboxes.list_theirs(contact.id)
        if not theirs:
            continue
        session = (current or {}).get(contact.id)
        if session is None:
            blob = r.sessions.load(contact.id)
            if blob is None:
                continue
            session = Session.from_bytes(blob)
        found.append(Peer(contact.id, k, theirs[0], session))
    return found


def talks(contact: Contact | None) -> bool:
    """Whether we have a channel of our own with this row: a contact whose handshake is
    complete. Nothing of a group goes to the card or code a handshake started on (the relay
    would see the same bytes reach two mailboxes when the welcome readdresses it); what a
    member missed meanwhile comes in the exchange once the welcome is in."""
    return (
        contact is not None
        and contact.state is ContactState.CONTACT
        and not contact.awaiting_welcome
        and contact.kind is not ContactKind.GROUP
    )


def seal(peer: Peer, content: pl.Payload, now: int) -> tuple[NewOutbox, bytes]:
    """One payload to one member, resent until their receipt names it."""
    peer.session, frame = peer.session.encrypt(pl.encode(content))
    frame_id = pl.message_id(frame)
    row = outbox_row(peer.contact_id, OutboxKind.CONTROL, peer.dest, frame, now)
    return replace(row, frame_id=frame_id), frame_id


def keep(r: Repos, peers: Iterable[Peer], now: int) -> None:
    for peer in peers:
        r.sessions.save(peer.contact_id, peer.session.to_bytes(), now)


def roster_of(r: Repos, row: int) -> Roster:
    roster = Roster(name=r.contacts.get(row).display_name)
    for m in r.groups.members(row, everyone=True):  # current ones in the order added
        if m.state is MemberState.MEMBER:
            roster.members[m.keys] = Seat(m.name, m.admin)
        if m.event_seq:
            roster.seqs[m.keys] = m.event_seq
    return roster


def record(r: Repos, row: int, event: st.Event) -> None:
    """An event the roster applied, in the store: the log and the members."""
    signed = Signed(event.statement, event.signature)
    r.groups.add_event(row, event.author, event.seq, signed, applied=True)
    match event.op:
        case st.Op.CREATE:
            r.groups.put_member(row, event.author, event.by, True)
            r.groups.set_member(row, event.author, code=JOINED_NO_CODE)
        case st.Op.ADD:
            r.groups.put_member(row, event.member, event.name, False)
        case st.Op.REMOVE:
            r.groups.set_member(row, event.member, state=MemberState.REMOVED, admin=False)
        case st.Op.LEAVE:
            r.groups.set_member(row, event.member, state=MemberState.LEFT, admin=False)
        case st.Op.PROMOTE:
            r.groups.set_member(row, event.member, admin=True)
        case st.Op.RENAME:
            r.contacts.rename(row, event.name)
    r.groups.set_member(row, event.author, event_seq=event.seq)


def read_group(r: Repos, row: int, me: bytes) -> Group:
    g = r.groups.get(row)
    contact = r.contacts.get(row)
    members = []
    for m in r.groups.members(row):
        members.append(member_view(r, m, me))
    inviter = "" if g.invited_by is None else name_of(r, row, g.invited_by)
    return Group(
        row, g.group_id, contact.display_name, g.state, tuple(members), inviter, contact.created_at
    )


def member_view(r: Repos, m: MemberRow, me: bytes) -> GroupMember:
    contact = r.contacts.find_by_identity(m.keys)
    live = talks(contact)
    person = live and contact is not None and contact.kind is ContactKind.PERSON
    name = contact.display_name if person and contact is not None else m.name
    return GroupMember(
        m.keys,
        name,
        m.admin,
        m.keys == me,
        contact.id if live and contact is not None else None,
        person,
        person and contact is not None and contact.verified,
        m.code is not None,
    )


def name_of(r: Repos, row: int, keys: bytes) -> str:
    m = r.groups.member(row, keys)
    contact = r.contacts.find_by_identity(keys)
    if contact is not None and contact.kind is ContactKind.PERSON:
        return contact.display_name
    return m.name if m is not None else "Someone"


def after_change(r: Repos, row: int, event: st.Event, me: bytes) -> None:
    """What an applied event changes beyond the roster: nothing more goes to a member
    who is gone; we are out if it was us."""
    if event.op not in (st.Op.REMOVE, st.Op.LEAVE):
        return
    if event.member == me:
        r.groups.set_state(row, GroupState.LEFT if event.op is st.Op.LEAVE else GroupState.REMOVED)
        return
    contact = r.contacts.find_by_identity(event.member)
    if contact is not None:
        r.outbox.drop_frames(contact.id, r.groups.undelivered_to(row, event.member))


def card_of(code: str, keys: bytes) -> Card | None:
    """The card in `code` if it is one of the holder of `keys`; None otherwise."""
    try:
        card = Card.parse(code)
    except CardError:
        return None
    return card if card.identity.to_bytes() == keys else None
