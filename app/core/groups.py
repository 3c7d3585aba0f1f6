"""Groups (docs/groups.md): creating one, inviting, joining, adding, removing, leaving,
renaming, writing to it; receipts for our copies; holdings exchanged with members.

Nothing here is seen by a relay as a group: every statement travels as a pairwise payload
sealed under the session with one member, one copy each, resent by the outbox until that
member's receipt. A post or a membership event is signed by its author, so a member may pass
on what another wrote and the receiver checks it all the same.

Every change of session state happens under the context's lock in the unit that stores what
it sealed. What members send is taken by `group_intake.py`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Iterable

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
)
from app.core.group_state import (
    after_change,
    channels_to,
    keep,
    member_view,
    read_group,
    record,
    roster_of,
    seal,
)
from app.core.messaging import Messaging, check_text
from app.core.profile import check_display_name
from app.core.roster import Roster, Verdict
from app.core.routing import Routing
from app.crypto.handshake import Invitation
from app.domain.contacts import Contact, ContactKind, ContactState
from app.domain.groups import (
    GROUP_ID_SIZE,
    MAX_GROUP_MEMBERS,
    Delivery,
    Group,
    GroupState,
)
from app.domain.messages import Direction, Message, MessageRow, Status
from app.store.errors import NotFound
from app.store.groups import JOINED_NO_CODE, GroupRow, Signed
from app.store.records import NewMessage, OurMailbox
from app.store.repos import Repos

log = logging.getLogger(__name__)

SYNC_EVERY_S = 20.0  # a member coming online hears what we hold at most this often


class Groups:
    def __init__(self, ctx: Context, routing: Routing, messaging: Messaging) -> None:
        self._ctx = ctx
        self._routing = routing
        self._messaging = messaging
        self._rows: set[int] = set()  # every group's conversation row
        self.listening = False  # set once the engine listens: a new group code is listened on
        self._synced: dict[int, float] = {}  # member row -> when we last told them our holdings
        self._tasks: set[asyncio.Task[int]] = set()
        self._me = ctx.identity.public.to_bytes()

    async def load(self) -> None:
        rows = await self._ctx.store.read(lambda r: r.groups.all())
        self._rows = {g.contact_id for g in rows}

    def is_group(self, contact_id: int) -> bool:
        return contact_id in self._rows

    def known(self, row: int) -> None:
        """A group's conversation row now exists (an invitation arrived)."""
        self._rows.add(row)

    def forget(self, row: int) -> None:
        self._rows.discard(row)

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
        """Our group message's copies: one per member it was sealed for when it was sent,
        delivered or not (later members and removals do not change the count)."""
        me = self._me

        def load(r: Repos) -> list[Delivery]:
            message = r.messages.get(message_row)
            if message.direction is not Direction.OUTGOING or not self.is_group(message.contact_id):
                raise UserError("only your own group messages have deliveries")
            copies = dict(r.groups.copies(message_row))
            everyone = r.groups.members(message.contact_id, everyone=True)
            return [
                Delivery(member_view(r, m, me), copies[m.keys])
                for m in everyone
                if m.keys in copies
            ]

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
                    record(r, row, event)
                    r.groups.next_event(row)
                self._invite(r, row, group_id, name, [c.identity_keys for c in invited], now)
                return row

            row = await ctx.store.run(unit)
            self._rows.add(row)
        ctx.wake()  # the invitations go now
        return await self.announce(row, new=True)

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
        peers = channels_to(r, keys)
        for peer in peers:
            r.outbox.add(seal(peer, pl.GroupInvite(group_id, name, log_), now)[0])
        keep(r, peers, now)

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
        return await self.announce(row)

    async def remove(self, row: int, member: bytes) -> Group:
        """Remove a member (admins only): nothing more is sent to them from now on."""
        async with self._ctx.lock:
            _, roster = await self._admin_view(row)
            if member not in roster.members:
                raise UserError("not a member of this group")
            if member == self._me:
                raise UserError("leave the group instead")
            await self._change(row, st.Op.REMOVE, member, tell=[member])
        return await self.announce(row)

    async def promote(self, row: int, member: bytes) -> Group:
        async with self._ctx.lock:
            _, roster = await self._admin_view(row)
            seat = roster.members.get(member)
            if seat is None or seat.admin:
                raise UserError("only a member who is not an admin can be made one")
            await self._change(row, st.Op.PROMOTE, member)
        return await self.announce(row)

    async def rename(self, row: int, name: str) -> Group:
        name = check_display_name(name)
        async with self._ctx.lock:
            await self._admin_view(row)
            await self._change(row, st.Op.RENAME, name=name)
        return await self.announce(row)

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
            await self.drop_code(row)
        return await self.announce(row)

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
                peers = channels_to(r, [] if inviter is None else [inviter])
                for peer in peers:
                    r.outbox.add(seal(peer, pl.GroupJoin(g.group_id, code), now)[0])
                keep(r, peers, now)

            await ctx.store.run(unit)
        if self.listening:  # else the engine's start listens on it with the others
            await self._routing.listen(box.relays, invitation.mailbox, None)
        ctx.wake()
        return await self.announce(row, new=True)

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
        await self.drop_code(row)
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
                others = [  # those who joined: an invitation not taken gets nothing
                    m.keys
                    for m in r.groups.members(row)
                    if m.keys != self._me and m.code is not None
                ]
                peers = channels_to(r, others)
                content = pl.GroupSigned(True, post.statement, post.signature)
                for peer in peers:
                    item, frame_id = seal(peer, content, now)
                    r.outbox.add(item, MessageRow(mrow))
                    r.groups.add_copy(frame_id, mrow, peer.keys)
                keep(r, peers, now)
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
        return g, await self._ctx.store.read(lambda r: roster_of(r, row))

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
            roster = roster_of(r, row)
            told = [k for k in roster.members if k != self._me] + (tell or [])
            seq = r.groups.next_event(row)
            event = st.make_event(ctx.identity, g.group_id, seq, now, op, member, name)
            verdict, why = roster.apply(event)
            if verdict is not Verdict.APPLIED:
                raise UserError(why)
            record(r, row, event)
            after_change(r, row, event, self._me)
            if also is not None:
                also(r, now)
            peers = channels_to(r, dict.fromkeys(told))
            content = pl.GroupSigned(False, event.statement, event.signature)
            for peer in peers:
                r.outbox.add(seal(peer, content, now)[0])
            keep(r, peers, now)

        await ctx.store.run(unit)
        ctx.wake()

    async def drop_code(self, row: int) -> None:
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

    async def announce(self, row: int, *, new: bool = False) -> Group:
        group = await self.group(row)
        contact = await self._ctx.store.read(lambda r: r.contacts.get(row))
        if group.state is not GroupState.INVITED:
            self._ctx.emit(ContactAdded(contact) if new else ContactChanged(contact))
        self._ctx.emit(GroupChanged(group))
        return group

    # -- receipts and presence ---------------------------------------------------------------

    def delivered(self, r: Repos, contact_id: int, ids: Iterable[bytes], now: int) -> list[int]:
        """In the unit of a member's receipt: our copies it names are delivered; the group
        messages all of whose copies are become "delivered". Returns the messages touched."""
        contact = r.contacts.get(contact_id)
        touched = r.groups.delivered(contact.identity_keys, ids)
        for message_row in touched:
            if r.groups.all_delivered(message_row):
                r.messages.raise_status(message_row, Status.DELIVERED, now)
        return touched

    def on_event(self, event: Event) -> None:
        """A member with whom we share a group came online: tell them what we hold, at most
        every SYNC_EVERY_S."""
        if not isinstance(event, PresenceChanged) or not event.online:
            return
        last = self._synced.get(event.contact_id)
        if last is None or time.monotonic() - last >= SYNC_EVERY_S:
            self.channel_opened(event.contact_id)

    def channel_opened(self, contact_id: int) -> None:
        """We can give this contact or member what they lack now (our handshake with them
        completed, or they joined a group we share): tell them what we hold."""
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
                peers = channels_to(r, [contact.identity_keys]) if rows else []
                if not peers:
                    return 0
                now = ctx.clock()
                for row in rows:
                    g = r.groups.get(row)
                    have = tuple(r.groups.held(row).items())[: pl.MAX_SYNC_AUTHORS]
                    r.outbox.add(seal(peers[0], pl.GroupSync(g.group_id, have, False), now)[0])
                keep(r, peers, now)
                return len(rows)

            sent = await ctx.store.run(unit)
        if sent:
            self._synced[contact_id] = time.monotonic()
            ctx.wake()
        return sent

    async def close(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
