"""Groups (docs/groups.md): creating one, inviting, joining, adding, removing, leaving,
renaming, writing to it, and what members send each other.

Nothing here is seen by a relay as a group: every statement travels as a pairwise payload
sealed under the session with one member, one copy each, resent by the outbox until that
member's receipt. A post or a membership event is signed by its author, so a member may pass
on what another wrote and the receiver checks it all the same.

Every change of session state happens under the context's lock in the unit that stores what
it sealed; the `take` path runs under the lock already (inbound holds it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from app.core import payload as pl
from app.core import statements as st
from app.core.account import store_invitation
from app.core.context import Context
from app.core.errors import SendingBlocked, UnknownContact, UserError
from app.core.events import (
    ContactAdded,
    ContactChanged,
    ContactRemoved,
    Event,
    GroupChanged,
    MessageAdded,
    PresenceChanged,
    Rejection,
)
from app.core.handshakes import Handshakes
from app.core.messaging import Messaging, check_text, step_taken
from app.core.outbox import outbox_row
from app.core.profile import check_display_name
from app.core.roster import Roster, Seat, Verdict
from app.core.routing import Routing
from app.crypto.card import Card
from app.crypto.errors import CardError
from app.crypto.handshake import Invitation
from app.crypto.ratchet import Session
from app.domain.contacts import Contact, ContactKind, ContactState
from app.domain.groups import (
    GROUP_ID_SIZE,
    MAX_GROUP_MEMBERS,
    Delivery,
    Group,
    GroupMember,
    GroupState,
    MemberState,
)
from app.domain.messages import Direction, Message, MessageRow, Status, WireId
from app.store.errors import NotFound
from app.store.groups import GroupRow, MemberRow, Signed
from app.store.records import NewMessage, NewOutbox, OurMailbox, OutboxKind, TheirMailbox
from app.store.repos import Repos

log = logging.getLogger(__name__)

MAX_FORWARD = 200  # posts per author passed on in one exchange
SYNC_EVERY_S = 20.0  # a member coming online hears what we hold at most this often
JOINED_NO_CODE = ""  # a member's code when none is needed (the creator, ourselves)


@dataclass(slots=True)
class _Peer:
    """A member we can seal to: the row we talk to them through, their mailbox, the session
    as it stands in this unit."""

    contact_id: int
    keys: bytes
    dest: TheirMailbox
    session: Session


def _peers(
    r: Repos, keys: Iterable[bytes], current: dict[int, Session] | None = None
) -> list[_Peer]:
    """The members among `keys` we have a channel with (`current`: sessions newer than the
    store's, of the frame being taken)."""
    found = []
    for k in keys:
        contact = r.contacts.find_by_identity(k)
        if not _talks(contact):
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
        found.append(_Peer(contact.id, k, theirs[0], session))
    return found


def _talks(contact: Contact | None) -> bool:
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


def _seal(peer: _Peer, content: pl.Payload, now: int) -> tuple[NewOutbox, bytes]:
    """One payload to one member, resent until their receipt names it."""
    peer.session, frame = peer.session.encrypt(pl.encode(content))
    frame_id = pl.message_id(frame)
    row = outbox_row(peer.contact_id, OutboxKind.CONTROL, peer.dest, frame, now)
    return replace(row, frame_id=frame_id), frame_id


def _keep(r: Repos, peers: Iterable[_Peer], now: int) -> None:
    for peer in peers:
        r.sessions.save(peer.contact_id, peer.session.to_bytes(), now)


def _roster(r: Repos, row: int) -> Roster:
    roster = Roster(name=r.contacts.get(row).display_name)
    for m in r.groups.members(row, everyone=True):  # current ones in the order added
        if m.state is MemberState.MEMBER:
            roster.members[m.keys] = Seat(m.name, m.admin)
        if m.event_seq:
            roster.seqs[m.keys] = m.event_seq
    return roster


def _record(r: Repos, row: int, event: st.Event) -> None:
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
        members.append(_member(r, m, me))
    inviter = "" if g.invited_by is None else _name_of(r, row, g.invited_by)
    return Group(
        row, g.group_id, contact.display_name, g.state, tuple(members), inviter, contact.created_at
    )


def _member(r: Repos, m: MemberRow, me: bytes) -> GroupMember:
    contact = r.contacts.find_by_identity(m.keys)
    live = _talks(contact)
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


def _name_of(r: Repos, row: int, keys: bytes) -> str:
    m = r.groups.member(row, keys)
    contact = r.contacts.find_by_identity(keys)
    if contact is not None and contact.kind is ContactKind.PERSON:
        return contact.display_name
    return m.name if m is not None else "Someone"


class Groups:
    def __init__(
        self, ctx: Context, routing: Routing, messaging: Messaging, handshakes: Handshakes
    ) -> None:
        self._ctx = ctx
        self._routing = routing
        self._messaging = messaging
        self._handshakes = handshakes
        self._rows: set[int] = set()  # every group's conversation row
        self._synced: dict[int, float] = {}  # member row -> when we last told them our holdings
        self._tasks: set[asyncio.Task[int]] = set()
        self._me = ctx.identity.public.to_bytes()

    async def load(self) -> None:
        rows = await self._ctx.store.read(lambda r: r.groups.all())
        self._rows = {g.contact_id for g in rows}

    def is_group(self, contact_id: int) -> bool:
        return contact_id in self._rows

    # -- reading -------------------------------------------------------------------------

    async def groups(self) -> list[Group]:
        """The groups we are in or were in (not invitations), oldest first."""
        return await self._read_all(GroupState.JOINED, GroupState.LEFT, GroupState.REMOVED)

    async def invites(self) -> list[Group]:
        """Invitations waiting to be joined or declined, oldest first."""
        return await self._read_all(GroupState.INVITED)

    async def _read_all(self, *states: GroupState) -> list[Group]:
        me = self._me
        return await self._ctx.store.read(
            lambda r: [read_group(r, g.contact_id, me) for g in r.groups.all(*states)]
        )

    async def group(self, row: int) -> Group:
        me = self._me

        def load(r: Repos) -> Group:
            try:
                return read_group(r, row, me)
            except NotFound:
                raise UnknownContact(f"no group {row}") from None

        return await self._ctx.store.read(load)

    async def find(self, query: str, *, invites: bool = False) -> Group:
        """A group (or an invitation) by exact name (case-insensitive), id, or unique prefix."""
        rows = await (self.invites() if invites else self.groups())
        wanted = query.strip().casefold()
        exact = [g for g in rows if g.name.casefold() == wanted or str(g.id) == wanted]
        if len(exact) == 1:
            return exact[0]
        prefix = [g for g in rows if g.name.casefold().startswith(wanted)]
        if len(prefix) == 1 and wanted:
            return prefix[0]
        what = "invitation" if invites else "group"
        if not exact and not prefix:
            raise UnknownContact(f"no {what} matches {query!r}")
        raise UnknownContact(f"{query!r} matches several; use the id")

    async def deliveries(self, message_row: int) -> list[Delivery]:
        """Our group message's copies: each current member's, delivered or not."""
        me = self._me

        def load(r: Repos) -> list[Delivery]:
            message = r.messages.get(message_row)
            if message.direction is not Direction.OUTGOING or not self.is_group(message.contact_id):
                raise UserError("only your own group messages have deliveries")
            copies = dict(r.groups.copies(message_row))
            members = [_member(r, m, me) for m in r.groups.members(message.contact_id)]
            return [Delivery(m, copies.get(m.keys, False)) for m in members if not m.is_me]

        try:
            return await self._ctx.store.read(load)
        except NotFound:
            raise UserError(f"no message {message_row}") from None

    # -- what a person does --------------------------------------------------------------

    async def create(self, name: str, contact_ids: Iterable[int]) -> Group:
        """A new group with us as its admin and these contacts invited (each gets the
        invitation over their pairwise session)."""
        ctx = self._ctx
        name = check_display_name(name)
        wanted = list(dict.fromkeys(contact_ids))
        if len(wanted) + 1 > MAX_GROUP_MEMBERS:
            raise UserError(f"a group has at most {MAX_GROUP_MEMBERS} members, you included")
        async with ctx.lock:
            invited = await ctx.store.read(lambda r: [self._invitable(r, c) for c in wanted])
            group_id = os.urandom(GROUP_ID_SIZE)
            now = ctx.clock()
            events = [
                st.make_event(
                    ctx.identity,
                    group_id,
                    1,
                    now,
                    st.Op.CREATE,
                    name=name,
                    by=ctx.settings.name or "Me",
                )
            ]
            for i, contact in enumerate(invited, start=2):
                events.append(
                    st.make_event(
                        ctx.identity,
                        group_id,
                        i,
                        now,
                        st.Op.ADD,
                        contact.identity_keys,
                        contact.display_name,
                    )
                )

            def unit(r: Repos) -> int:
                row = r.contacts.add(name, group_id, now, kind=ContactKind.GROUP).id
                r.groups.add(row, group_id, GroupState.JOINED, None)
                roster = Roster()
                for event in events:
                    roster.apply(event)
                    _record(r, row, event)
                    r.groups.next_event(row)
                self._invite(r, row, group_id, name, [c.identity_keys for c in invited], now)
                return row

            row = await ctx.store.run(unit)
            self._rows.add(row)
        return await self._announce(row, new=True)

    def _invitable(self, r: Repos, contact_id: int) -> Contact:
        try:
            contact = r.contacts.get(contact_id)
        except NotFound:
            raise UnknownContact(f"no contact {contact_id}") from None
        if contact.kind is not ContactKind.PERSON or contact.state is not ContactState.CONTACT:
            raise UserError(f"{contact.display_name} is not a contact you can invite")
        if not r.mailboxes.list_theirs(contact.id) or r.sessions.load(contact.id) is None:
            raise UserError(f"no session with {contact.display_name} yet")
        return contact

    def _invite(
        self, r: Repos, row: int, group_id: bytes, name: str, keys: list[bytes], now: int
    ) -> None:
        log_ = tuple((s.statement, s.signature) for s in r.groups.log(row))
        if len(log_) > pl.MAX_GROUP_LOG:
            raise UserError("this group's history is too long to invite anyone more")
        peers = _peers(r, keys)
        for peer in peers:
            r.outbox.add(_seal(peer, pl.GroupInvite(group_id, name, log_), now)[0])
        _keep(r, peers, now)

    async def add(self, row: int, contact_id: int) -> Group:
        """Add a contact (admins only): every member hears of it and the contact is invited."""
        ctx = self._ctx
        async with ctx.lock:
            g, roster = await self._admin_view(row)
            contact = await ctx.store.read(lambda r: self._invitable(r, contact_id))
            if contact.identity_keys in roster.members:
                raise UserError(f"{contact.display_name} is a member already")
            if len(roster.members) >= MAX_GROUP_MEMBERS:
                raise UserError(f"a group has at most {MAX_GROUP_MEMBERS} members")
            keys = contact.identity_keys

            def also(r: Repos, now: int) -> None:
                name = r.contacts.get(row).display_name
                self._invite(r, row, g.group_id, name, [keys], now)

            await self._change(row, st.Op.ADD, keys, contact.display_name, also=also)
        return await self._announce(row)

    async def remove(self, row: int, member: bytes) -> Group:
        """Remove a member (admins only): nothing more is sent to them from now on."""
        async with self._ctx.lock:
            _, roster = await self._admin_view(row)
            if member not in roster.members:
                raise UserError("not a member of this group")
            if member == self._me:
                raise UserError("leave the group instead")
            await self._change(row, st.Op.REMOVE, member, tell=[member])
        return await self._announce(row)

    async def promote(self, row: int, member: bytes) -> Group:
        async with self._ctx.lock:
            _, roster = await self._admin_view(row)
            seat = roster.members.get(member)
            if seat is None or seat.admin:
                raise UserError("only a member who is not an admin can be made one")
            await self._change(row, st.Op.PROMOTE, member)
        return await self._announce(row)

    async def rename(self, row: int, name: str) -> Group:
        name = check_display_name(name)
        async with self._ctx.lock:
            await self._admin_view(row)
            await self._change(row, st.Op.RENAME, name=name)
        return await self._announce(row)

    async def leave(self, row: int) -> Group:
        """Leave the group: members stop sending to us; its conversation stays, read-only.
        The last admin names the longest-standing member an admin first."""
        ctx = self._ctx
        async with ctx.lock:
            g, roster = await self._view(row)
            if g.state is not GroupState.JOINED:
                raise UserError(f"you are not a member of {roster.name}")
            me = roster.members.get(self._me)
            if me is not None and me.admin and len(roster.admins) == 1 and len(roster.members) > 1:
                heir = next(k for k in roster.members if k != self._me)  # the longest there
                await self._change(row, st.Op.PROMOTE, heir)
            await self._change(row, st.Op.LEAVE, self._me)
            await self._drop_code(row)
        return await self._announce(row)

    async def join(self, row: int) -> Group:
        """Take an invitation: our group code goes to the admin who invited us, who
        introduces us to the other members."""
        ctx = self._ctx
        async with ctx.lock:
            g = await self._row(row)
            if g.state is not GroupState.INVITED:
                raise UserError("no invitation to join there")
            relays = ctx.settings.relays
            box = await store_invitation(ctx, relays, address=False)
            invitation = Invitation.from_bytes(box.private_key)
            code = invitation.card(
                ctx.identity, box.relay_url, ctx.settings.name, fallbacks=box.fallbacks
            ).encode()
            now = ctx.clock()
            inviter = g.invited_by

            def unit(r: Repos) -> None:
                r.groups.set_code(row, box.id)
                r.groups.set_state(row, GroupState.JOINED)
                r.groups.set_member(row, self._me, code=JOINED_NO_CODE)
                peers = _peers(r, [] if inviter is None else [inviter])
                for peer in peers:
                    r.outbox.add(_seal(peer, pl.GroupJoin(g.group_id, code), now)[0])
                _keep(r, peers, now)

            await ctx.store.run(unit)
        await self._routing.listen(box.relays, invitation.mailbox, None)
        ctx.wake()
        return await self._announce(row, new=True)

    async def decline(self, row: int) -> None:
        """Drop an invitation; nothing is sent."""
        ctx = self._ctx
        async with ctx.lock:
            g = await self._row(row)
            if g.state is not GroupState.INVITED:
                raise UserError("no invitation there")
            await ctx.store.run(lambda r: r.contacts.delete(row))
            self._rows.discard(row)
        ctx.emit(ContactRemoved(row))

    async def delete(self, row: int, keep_history: bool = False) -> None:
        """Leave the group (if we are in it) and, unless its history is kept, delete its
        conversation."""
        g = await self._row(row)
        if g.state is GroupState.JOINED:
            await self.leave(row)
        if keep_history:
            return
        await self._drop_code(row)
        async with self._ctx.lock:
            await self._ctx.store.run(lambda r: r.contacts.delete(row))
            self._rows.discard(row)
        self._ctx.emit(ContactRemoved(row))

    async def send(self, row: int, text: str, reply_to: int | None = None) -> Message:
        """Sign one post and seal a copy for every member we have a channel with, in one
        unit; members without one get it passed on by others (or by us, once connected)."""
        ctx = self._ctx
        check_text(text)
        async with ctx.lock:
            g = await self._row(row)
            problem = g.state is not GroupState.JOINED
            if problem:
                name = await ctx.store.read(lambda r: r.contacts.get(row).display_name)
                state = {GroupState.INVITED: f"join {name} before writing to it"}
                raise SendingBlocked(state.get(g.state, f"you are no longer in {name}"))
            ref = await self._messaging.quoted_id(row, reply_to)
            now = ctx.clock()

            def unit(r: Repos) -> int:
                seq = r.groups.next_post(row)
                post = st.make_post(ctx.identity, g.group_id, seq, now, text, ref)
                message = NewMessage(
                    row,
                    Direction.OUTGOING,
                    post.post_id,
                    seq,
                    text,
                    now,
                    None,
                    Status.QUEUED,
                    True,
                    reply_to=ref,
                )
                stored = r.messages.insert(message)
                assert stored.message_row is not None
                mrow = stored.message_row
                r.groups.add_post(row, self._me, seq, mrow, Signed(post.statement, post.signature))
                others = [m.keys for m in r.groups.members(row) if m.keys != self._me]
                peers = _peers(r, others)
                content = pl.GroupSigned(True, post.statement, post.signature)
                for peer in peers:
                    item, frame_id = _seal(peer, content, now)
                    r.outbox.add(item, MessageRow(mrow))
                    r.groups.add_copy(frame_id, mrow, peer.keys)
                _keep(r, peers, now)
                return mrow

            mrow = await ctx.store.run(unit)
            added = await ctx.store.read(lambda r: r.messages.get(mrow))
        ctx.emit(MessageAdded(added))
        ctx.wake()
        return added

    # -- changes of membership -----------------------------------------------------------

    async def _row(self, row: int) -> GroupRow:
        def load(r: Repos) -> GroupRow:
            found = r.groups.find(row)
            if found is None:
                raise UnknownContact(f"no group {row}")
            return found

        return await self._ctx.store.read(load)

    async def _view(self, row: int) -> tuple[GroupRow, Roster]:
        g = await self._row(row)
        return g, await self._ctx.store.read(lambda r: _roster(r, row))

    async def _admin_view(self, row: int) -> tuple[GroupRow, Roster]:
        g, roster = await self._view(row)
        me = roster.members.get(self._me)
        if g.state is not GroupState.JOINED or me is None:
            raise UserError("you are not a member of this group")
        if not me.admin:
            raise UserError("only an admin of this group can do that")
        return g, roster

    async def _change(
        self,
        row: int,
        op: st.Op,
        member: bytes = b"",
        name: str = "",
        *,
        tell: list[bytes] | None = None,
        also: Callable[[Repos, int], None] | None = None,
    ) -> None:
        """Sign one event of ours, apply it, and send it to every member (and `tell`), in
        one unit (under the lock)."""
        ctx = self._ctx
        g = await self._row(row)
        now = ctx.clock()

        def unit(r: Repos) -> None:
            roster = _roster(r, row)
            told = [k for k in roster.members if k != self._me] + (tell or [])
            seq = r.groups.next_event(row)
            event = st.make_event(ctx.identity, g.group_id, seq, now, op, member, name)
            verdict, why = roster.apply(event)
            if verdict is not Verdict.APPLIED:
                raise UserError(why)
            _record(r, row, event)
            self._after_change(r, row, event)
            if also is not None:
                also(r, now)
            peers = _peers(r, dict.fromkeys(told))
            content = pl.GroupSigned(False, event.statement, event.signature)
            for peer in peers:
                r.outbox.add(_seal(peer, content, now)[0])
            _keep(r, peers, now)

        await ctx.store.run(unit)
        ctx.wake()

    def _after_change(self, r: Repos, row: int, event: st.Event) -> None:
        """What an applied event changes beyond the roster: nothing more goes to a member
        who is gone; we are out if it was us."""
        if event.op not in (st.Op.REMOVE, st.Op.LEAVE):
            return
        if event.member == self._me:
            r.groups.set_state(
                row, GroupState.LEFT if event.op is st.Op.LEAVE else GroupState.REMOVED
            )
            return
        contact = r.contacts.find_by_identity(event.member)
        if contact is not None:
            r.outbox.drop_frames(contact.id, r.groups.undelivered_to(row, event.member))

    async def _drop_code(self, row: int) -> None:
        """Our group code stops taking handshakes (we left, or were removed)."""

        def unit(r: Repos) -> list[OurMailbox]:
            g = r.groups.get(row)
            if g.code_mailbox is None:
                return []
            box = r.mailboxes.get_ours(g.code_mailbox)
            r.groups.set_code(row, None)
            if box is None:
                return []
            r.mailboxes.delete_ours(box.id)
            return [box]

        boxes = await self._ctx.store.run(unit)
        if boxes:
            await self._routing.drop_mailboxes(boxes)

    async def _announce(self, row: int, *, new: bool = False) -> Group:
        group = await self.group(row)
        contact = await self._ctx.store.read(lambda r: r.contacts.get(row))
        if group.state is not GroupState.INVITED:
            self._ctx.emit(ContactAdded(contact) if new else ContactChanged(contact))
        self._ctx.emit(GroupChanged(group))
        return group

    # -- what members send (called by inbound, under the lock) ---------------------------

    async def take(
        self,
        contact: Contact,
        session: Session,
        mid: WireId,
        content: pl.Group,
        theirs: list[TheirMailbox],
        via: bytes | None,
    ) -> list[OurMailbox]:
        """A group payload from a member (or, for an invitation, a contact): checked, its
        effect stored with the ratchet step, acknowledged; returns the mailboxes retired."""
        ctx = self._ctx
        now = ctx.clock()
        outcome = _Outcome()

        def unit(r: Repos) -> list[OurMailbox]:
            retired = step_taken(r, contact.id, session, via, now)
            r.conversation.remember(contact.id, mid, now)
            current = {contact.id: session}
            try:
                self._take(r, contact, content, current, now, outcome)
            except st.StatementError as exc:
                outcome.refused = f"a group statement failed its check ({exc})"
            for contact_id, latest in current.items():  # the sender's last step included
                r.sessions.save(contact_id, latest.to_bytes(), now)
            return retired

        retired = await ctx.store.run(unit)
        if theirs:
            self._messaging.acknowledge(contact.id, mid)
        await self._after_take(outcome)
        return retired

    def _take(
        self,
        r: Repos,
        sender: Contact,
        content: pl.Group,
        current: dict[int, Session],
        now: int,
        out: _Outcome,
    ) -> None:
        match content:
            case pl.GroupInvite():
                self._take_invite(r, sender, content, now, out)
            case pl.GroupSigned(post=True):
                post = st.read(content.statement, content.signature)
                assert isinstance(post, st.Post)
                self._take_post(r, post, now, out)
            case pl.GroupSigned(post=False):
                event = st.read(content.statement, content.signature)
                if not isinstance(event, st.Event):
                    raise st.StatementError("a post sent as a membership change")
                self._take_event(r, event, out)
            case pl.GroupJoin(group_id, code):
                self._take_join(r, sender, group_id, code, current, now, out)
            case pl.GroupIntro(group_id, member, code):
                self._take_intro(r, sender, group_id, member, code, out)
            case pl.GroupSync():
                self._take_sync(r, sender, content, current, now, out)

    def _joined(self, r: Repos, group_id: bytes, out: _Outcome) -> GroupRow | None:
        g = r.groups.by_group_id(group_id)
        if g is None or g.state is not GroupState.JOINED:
            out.refused = "a group message for a group we are not in"
            return None
        return g

    def _take_invite(
        self, r: Repos, sender: Contact, invite: pl.GroupInvite, now: int, out: _Outcome
    ) -> None:
        if sender.state is not ContactState.CONTACT:
            out.refused = "a group invitation from someone who is not a contact"
            return
        roster = Roster()
        events = []
        for statement, signature in invite.log:
            event = st.read(statement, signature)
            if not isinstance(event, st.Event) or event.group_id != invite.group_id:
                raise st.StatementError("an invitation's log holds something else")
            verdict, why = roster.apply(event)
            if verdict is not Verdict.APPLIED:
                raise st.StatementError(why)
            events.append(event)
        seat = roster.members.get(sender.identity_keys)
        if self._me not in roster.members or seat is None or not seat.admin:
            out.refused = "a group invitation that does not add us, or not from an admin"
            return
        known = r.groups.by_group_id(invite.group_id)
        if known is not None and known.state is GroupState.JOINED:
            return  # we are in already: a copy of an old invitation
        if known is not None:
            r.contacts.delete(known.contact_id)  # an older invitation, or a group we left
        row = r.contacts.add(roster.name, invite.group_id, now, kind=ContactKind.GROUP).id
        r.groups.add(row, invite.group_id, GroupState.INVITED, sender.identity_keys)
        for event in events:
            _record(r, row, event)
        out.changed, out.new_rows = row, [row]
        if known is not None:
            out.removed.append(known.contact_id)

    def _take_event(self, r: Repos, event: st.Event, out: _Outcome) -> None:
        g = r.groups.by_group_id(event.group_id)
        if g is None or g.state not in (GroupState.JOINED, GroupState.INVITED):
            out.refused = "a membership change for a group we are not in"
            return
        row = g.contact_id
        roster = _roster(r, row)
        verdict, why = roster.apply(event)
        if verdict is Verdict.EARLY:
            signed = Signed(event.statement, event.signature)
            if r.groups.waiting_count(row) < 64:
                r.groups.add_event(row, event.author, event.seq, signed, applied=False)
            return
        if verdict is Verdict.STALE:
            if not any(s.statement == event.statement for s in r.groups.log(row)):
                out.refused = why
            return
        if verdict is not Verdict.APPLIED:
            out.refused = why
            return
        _record(r, row, event)
        self._after_change(r, row, event)
        out.changed = row
        if event.op in (st.Op.REMOVE, st.Op.LEAVE) and event.member == self._me:
            out.drop_code = row
        self._apply_waiting(r, row, out)

    def _apply_waiting(self, r: Repos, row: int, out: _Outcome) -> None:
        progress = True
        while progress:
            progress = False
            for event_id, signed in r.groups.waiting(row):
                event = st.read(signed.statement, signed.signature)
                assert isinstance(event, st.Event)
                roster = _roster(r, row)
                verdict, _ = roster.apply(event)
                if verdict is Verdict.EARLY:
                    continue
                r.groups.drop_waiting(event_id)
                if verdict is Verdict.APPLIED:
                    _record(r, row, event)
                    self._after_change(r, row, event)
                    progress = True

    def _take_post(self, r: Repos, post: st.Post, now: int, out: _Outcome) -> None:
        g = r.groups.by_group_id(post.group_id)
        if g is None or g.state not in (GroupState.JOINED, GroupState.INVITED):
            out.refused = "a group message for a group we are not in"
            return
        row = g.contact_id
        if post.author == self._me or r.groups.has_post(row, post.author, post.seq):
            return  # ours, or one we have: a copy passed on
        author = r.groups.member(row, post.author)
        if author is None or author.state is not MemberState.MEMBER:
            out.refused = "a group message from someone who is not a member"
            return
        message = NewMessage(
            row,
            Direction.INCOMING,
            post.post_id,
            post.seq,
            post.body,
            post.sent_at,
            now,
            Status.DELIVERED,
            reply_to=post.reply_to,
            author_keys=post.author,
        )
        stored = r.messages.insert(message)
        if stored.message_row is None:
            return
        signed = Signed(post.statement, post.signature)
        r.groups.add_post(row, post.author, post.seq, stored.message_row, signed)
        out.added.append(stored.message_row)

    def _take_join(
        self,
        r: Repos,
        sender: Contact,
        group_id: bytes,
        code: str,
        current: dict[int, Session],
        now: int,
        out: _Outcome,
    ) -> None:
        g = self._joined(r, group_id, out)
        if g is None:
            return
        row = g.contact_id
        joiner = r.groups.member(row, sender.identity_keys)
        if joiner is None or joiner.state is not MemberState.MEMBER:
            out.refused = "a join from someone who is not a member"
            return
        card = _card_of(code, sender.identity_keys)
        if card is None:
            out.refused = "a join whose code is not the joiner's"
            return
        r.groups.set_member(row, sender.identity_keys, code=code)
        others = [
            m.keys
            for m in r.groups.members(row)
            if m.code is not None and m.keys not in (self._me, sender.identity_keys)
        ]
        peers = _peers(r, others, current)
        intro = pl.GroupIntro(group_id, sender.identity_keys, code)
        for peer in peers:
            r.outbox.add(_seal(peer, intro, now)[0])
            current[peer.contact_id] = peer.session
        out.changed = row

    def _take_intro(
        self, r: Repos, sender: Contact, group_id: bytes, member: bytes, code: str, out: _Outcome
    ) -> None:
        g = self._joined(r, group_id, out)
        if g is None:
            return
        row = g.contact_id
        introducer = r.groups.member(row, sender.identity_keys)
        joiner = r.groups.member(row, member)
        if introducer is None or not introducer.admin or introducer.state is not MemberState.MEMBER:
            out.refused = "an introduction not from an admin"
            return
        if joiner is None or joiner.state is not MemberState.MEMBER or member == self._me:
            out.refused = "an introduction of someone who is not a member"
            return
        if _card_of(code, member) is None:
            out.refused = "an introduction whose code is not the member's"
            return
        r.groups.set_member(row, member, code=code)
        out.changed = row
        contact = r.contacts.find_by_identity(member)
        if contact is None or contact.state is ContactState.ENDED:
            out.connect.append((code, joiner.name))

    def _take_sync(
        self,
        r: Repos,
        sender: Contact,
        sync: pl.GroupSync,
        current: dict[int, Session],
        now: int,
        out: _Outcome,
    ) -> None:
        g = self._joined(r, sync.group_id, out)
        if g is None:
            return
        row = g.contact_id
        them = r.groups.member(row, sender.identity_keys)
        if them is None or them.state is not MemberState.MEMBER:
            out.refused = "a group exchange with someone who is not a member"
            return
        theirs = dict(sync.have)
        ours = r.groups.held(row)
        peers = _peers(r, [sender.identity_keys], current)
        if not peers:
            return
        peer = peers[0]
        more = False  # a batch was full: ask again once they hold it
        for author, seq in ours.items():
            if seq > theirs.get(author, 0):
                batch = r.groups.posts_after(row, author, theirs.get(author, 0), MAX_FORWARD)
                more = more or len(batch) == MAX_FORWARD
                for signed in batch:
                    content = pl.GroupSigned(True, signed.statement, signed.signature)
                    r.outbox.add(_seal(peer, content, now)[0])
        have = tuple(ours.items())[: pl.MAX_SYNC_AUTHORS]
        if more:
            r.outbox.add(_seal(peer, pl.GroupSync(sync.group_id, have, False), now)[0])
        elif not sync.reply and any(n > ours.get(a, 0) for a, n in theirs.items()):
            r.outbox.add(_seal(peer, pl.GroupSync(sync.group_id, have, True), now)[0])
        current[peer.contact_id] = peer.session

    async def _after_take(self, out: _Outcome) -> None:
        ctx = self._ctx
        if out.refused:
            ctx.reject(out.refused, Rejection.GROUP)
        for row in out.new_rows:
            self._rows.add(row)
        for row in out.removed:
            self._rows.discard(row)
            ctx.emit(ContactRemoved(row))
        if out.drop_code is not None:
            await self._drop_code(out.drop_code)
        for code, name in out.connect:
            await self._handshakes.connect_member(code, name)
        if out.added:
            added = await ctx.store.read(lambda r: [r.messages.get(m) for m in out.added])
            for message in added:
                ctx.emit(MessageAdded(message))
        if out.changed is not None:
            with contextlib.suppress(UserError):
                await self._announce(out.changed)
        ctx.wake()

    # -- receipts and presence ---------------------------------------------------------------

    def delivered(self, r: Repos, contact_id: int, ids: Iterable[bytes], now: int) -> list[int]:
        """In the unit of a member's receipt: our copies it names are delivered; the group
        messages all of whose copies are become "delivered". Returns the messages touched."""
        contact = r.contacts.get(contact_id)
        touched = r.groups.delivered(contact.identity_keys, ids)
        for message_row in touched:
            copies = r.groups.copies(message_row)
            if copies and all(d for _, d in copies):
                r.messages.raise_status(message_row, Status.DELIVERED, now)
        return touched

    def on_event(self, event: Event) -> None:
        """A member with whom we share a group came online, or our channel with them just
        opened: tell them what we hold (at most every SYNC_EVERY_S)."""
        match event:
            case PresenceChanged(contact_id, True):
                pass
            case ContactChanged(contact) if _talks(contact):
                contact_id = contact.id
            case _:
                return
        if time.monotonic() - self._synced.get(contact_id, -SYNC_EVERY_S) < SYNC_EVERY_S:
            return
        task = asyncio.get_running_loop().create_task(self.sync_with(contact_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def sync_with(self, contact_id: int) -> int:
        """Send the member a `gsync` for every joined group we share; how many."""
        ctx = self._ctx
        async with ctx.lock:

            def unit(r: Repos) -> int:
                try:
                    contact = r.contacts.get(contact_id)
                except NotFound:
                    return 0
                rows = r.groups.shared_with(contact.identity_keys)
                peers = _peers(r, [contact.identity_keys]) if rows else []
                if not peers:
                    return 0
                now = ctx.clock()
                for row in rows:
                    g = r.groups.get(row)
                    have = tuple(r.groups.held(row).items())[: pl.MAX_SYNC_AUTHORS]
                    r.outbox.add(_seal(peers[0], pl.GroupSync(g.group_id, have, False), now)[0])
                _keep(r, peers, now)
                return len(rows)

            sent = await ctx.store.run(unit)
        if sent:
            self._synced[contact_id] = time.monotonic()
            ctx.wake()
        return sent

    async def close(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)


@dataclass(slots=True)
class _Outcome:
    """What taking a group payload did, told to the front ends once it is stored."""

    refused: str = ""  # why it was dropped (reported), or ""
    changed: int | None = None  # a group whose state or members changed
    new_rows: list[int] = field(default_factory=list)  # groups that now exist here
    removed: list[int] = field(default_factory=list)  # conversation rows that went
    added: list[int] = field(default_factory=list)  # messages stored
    connect: list[tuple[str, str]] = field(default_factory=list)  # (code, name) to hand-shake
    drop_code: int | None = None  # a group whose code of ours stops working


def _card_of(code: str, keys: bytes) -> Card | None:
    """The card in `code` if it is one of the holder of `keys`; None otherwise."""
    try:
        card = Card.parse(code)
    except CardError:
        return None
    return card if card.identity.to_bytes() == keys else None
