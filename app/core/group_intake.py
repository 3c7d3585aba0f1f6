"""What members send (docs/groups.md): invitations, joins, introductions, signed posts and
membership changes, and the exchange of holdings. Each payload is checked, its effect stored
in the unit of its ratchet step, and acknowledged; anything that fails a check is dropped and
reported. Called by inbound, under the context's lock."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field

from app.core import payload as pl
from app.core import statements as st
from app.core.context import Context
from app.core.errors import UserError
from app.core.events import ContactRemoved, MessageAdded, Rejection
from app.core.group_state import (
    after_change,
    card_of,
    channels_to,
    record,
    roster_of,
    seal,
    talks,
)
from app.core.groups import Groups
from app.core.handshakes import Handshakes
from app.core.intake import Bucket
from app.core.messaging import Messaging, step_taken
from app.core.roster import Roster, Verdict
from app.crypto.ratchet import Session
from app.domain.contacts import Contact, ContactKind, ContactState
from app.domain.groups import GroupState, MemberState
from app.domain.messages import Direction, MessageRow, Status, WireId
from app.store.groups import JOINED_NO_CODE, GroupRow, Signed
from app.store.records import NewMessage, OurMailbox, TheirMailbox
from app.store.repos import Repos

MAX_WAITING = 64  # membership changes ahead of their turn, kept per group
MAX_FORWARD = 200  # posts per author passed on in one exchange
# Posts passed on to one member: a small `gsync` must not make us seal a group's history again
# and again. Up to FORWARD_BURST at once, then FORWARD_RATE a second.
FORWARD_BURST = 1000
FORWARD_RATE = 50.0
MAX_INVITES = 100  # invitations kept; the oldest goes when another arrives


class GroupIntake:
    def __init__(
        self, ctx: Context, messaging: Messaging, handshakes: Handshakes, groups: Groups
    ) -> None:
        self._ctx = ctx
        self._messaging = messaging
        self._handshakes = handshakes
        self._groups = groups
        self._me = ctx.identity.public.to_bytes()
        self._forwarding: dict[int, Bucket] = {}  # member row -> posts we may pass on

    async def fits(self, content: pl.Group) -> bool:
        """Whether a post fits its group's storage quota (the profile's quota per
        conversation); one that does not is left out unacknowledged, so whoever sent it sends
        it again once there is room. Anything else fits (its checks come with `take`)."""
        if not isinstance(content, pl.GroupSigned) or not content.post:
            return True
        try:
            post = st.read(content.statement, content.signature)
        except st.StatementError:
            return True
        g = await self._ctx.store.read(lambda r: r.groups.by_group_id(post.group_id))
        if g is None or not isinstance(post, st.Post):
            return True
        return await self._messaging.within_quota(g.contact_id, post.body)

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
        if isinstance(content, pl.GroupSync):
            budget = self._budget(contact.id)
            outcome.allowance = int(budget.tokens)

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
        if outcome.forwarded:
            self._budget(contact.id).take(time.monotonic(), outcome.forwarded)
        if theirs:
            self._messaging.acknowledge(contact.id, mid)
        await self._after_take(outcome)
        return retired

    def _budget(self, contact_id: int) -> Bucket:
        """The posts we may pass on to this member now (refilled to this moment)."""
        now = time.monotonic()
        bucket = self._forwarding.get(contact_id)
        if bucket is None:
            bucket = self._forwarding[contact_id] = Bucket.full(FORWARD_RATE, FORWARD_BURST, now)
        bucket.has(now)
        return bucket

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
                if not isinstance(post, st.Post):
                    raise st.StatementError("a membership change sent as a post")
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
        waiting = r.groups.all(GroupState.INVITED)
        for old in waiting[: max(0, len(waiting) - MAX_INVITES + 1)]:  # nobody floods the list
            r.contacts.delete(old.contact_id)
            out.removed.append(old.contact_id)
        row = r.contacts.add(roster.name, invite.group_id, now, kind=ContactKind.GROUP).id
        r.groups.add(row, invite.group_id, GroupState.INVITED, sender.identity_keys)
        for event in events:
            record(r, row, event)
        out.changed, out.new_rows = row, [row]
        if known is not None:
            out.removed.append(known.contact_id)

    def _take_event(self, r: Repos, event: st.Event, out: _Outcome) -> None:
        g = r.groups.by_group_id(event.group_id)
        if g is None or g.state not in (GroupState.JOINED, GroupState.INVITED):
            out.refused = "a membership change for a group we are not in"
            return
        row = g.contact_id
        roster = roster_of(r, row)
        verdict, why = roster.apply(event)
        if verdict is Verdict.EARLY:
            signed = Signed(event.statement, event.signature)
            if r.groups.waiting_count(row) < MAX_WAITING:
                r.groups.add_event(row, event.author, event.seq, signed, applied=False)
            return
        if verdict is Verdict.STALE:
            if not any(s.statement == event.statement for s in r.groups.log(row)):
                out.refused = why
            return
        if verdict is not Verdict.APPLIED:
            out.refused = why
            return
        record(r, row, event)
        after_change(r, row, event, self._me)
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
                assert isinstance(event, st.Event)  # kept only after it was read as one
                roster = roster_of(r, row)
                verdict, _ = roster.apply(event)
                if verdict is Verdict.EARLY:
                    continue
                r.groups.drop_waiting(event_id)
                if verdict is Verdict.APPLIED:
                    record(r, row, event)
                    after_change(r, row, event, self._me)
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
        if author.code is None:  # writing, so they joined (their introduction is elsewhere)
            r.groups.set_member(row, post.author, code=JOINED_NO_CODE)
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
        card = card_of(code, sender.identity_keys)
        if card is None:
            out.refused = "a join whose code is not the joiner's"
            return
        r.groups.set_member(row, sender.identity_keys, code=code)
        others = [
            m.keys
            for m in r.groups.members(row)
            if m.code is not None and m.keys not in (self._me, sender.identity_keys)
        ]
        peers = channels_to(r, others, current)
        intro = pl.GroupIntro(group_id, sender.identity_keys, code)
        for peer in peers:
            r.outbox.add(seal(peer, intro, now)[0])
            current[peer.contact_id] = peer.session
        out.changed = row
        out.opened.append(sender.id)  # what was written before they joined goes to them now

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
        if card_of(code, member) is None:
            out.refused = "an introduction whose code is not the member's"
            return
        r.groups.set_member(row, member, code=code)
        out.changed = row
        contact = r.contacts.find_by_identity(member)
        if contact is None or contact.state is ContactState.ENDED:
            out.connect.append((code, joiner.name))
        elif talks(contact):
            out.opened.append(contact.id)  # a contact already: what they lack goes now

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
        peers = channels_to(r, [sender.identity_keys], current)
        if not peers:
            return
        peer = peers[0]
        more = False  # a batch was full: ask again once they hold it
        for author, seq in ours.items():
            if seq > theirs.get(author, 0):
                limit = min(MAX_FORWARD, out.allowance - out.forwarded)
                if limit <= 0:
                    break  # over this member's budget: the rest in a later exchange
                batch = r.groups.posts_after(row, author, theirs.get(author, 0), limit)
                more = more or len(batch) == MAX_FORWARD
                out.forwarded += len(batch)
                for signed in batch:
                    content = pl.GroupSigned(True, signed.statement, signed.signature)
                    item, frame_id = seal(peer, content, now)
                    mine = signed.message_id if author == self._me else None
                    if mine is not None:  # our own, late: its receipt counts like a first copy's
                        r.groups.add_copy(frame_id, mine, peer.keys)
                    r.outbox.add(item, None if mine is None else MessageRow(mine))
        have = tuple(ours.items())[: pl.MAX_SYNC_AUTHORS]
        if more:
            r.outbox.add(seal(peer, pl.GroupSync(sync.group_id, have, False), now)[0])
        elif not sync.reply and any(n > ours.get(a, 0) for a, n in theirs.items()):
            r.outbox.add(seal(peer, pl.GroupSync(sync.group_id, have, True), now)[0])
        current[peer.contact_id] = peer.session

    async def _after_take(self, out: _Outcome) -> None:
        ctx = self._ctx
        if out.refused:
            ctx.reject(out.refused, Rejection.GROUP)
        for row in out.removed:  # first: a new row may take the number of one that went
            self._groups.forget(row)
            ctx.emit(ContactRemoved(row))
        for row in out.new_rows:
            self._groups.known(row)
        if out.drop_code is not None:
            await self._groups.drop_code(out.drop_code)
        for code, name in out.connect:
            await self._handshakes.connect_member(code, name)
        for contact_id in out.opened:
            self._groups.channel_opened(contact_id)
        if out.added:
            added = await ctx.store.read(lambda r: [r.messages.get(m) for m in out.added])
            for message in added:
                ctx.emit(MessageAdded(message))
        if out.changed is not None:
            with contextlib.suppress(UserError):
                await self._groups.announce(out.changed)
        ctx.wake()


@dataclass(slots=True)
class _Outcome:
    """What taking a group payload did, told to the front ends once it is stored."""

    refused: str = ""  # why it was dropped (reported), or ""
    changed: int | None = None  # a group whose state or members changed
    new_rows: list[int] = field(default_factory=list)  # groups that now exist here
    removed: list[int] = field(default_factory=list)  # conversation rows that went
    added: list[int] = field(default_factory=list)  # messages stored
    connect: list[tuple[str, str]] = field(default_factory=list)  # (code, name) to hand-shake
    opened: list[int] = field(default_factory=list)  # members to offer what we hold
    drop_code: int | None = None  # a group whose code of ours stops working
    allowance: int = 0  # posts we may pass on to the sender of a `gsync`
    forwarded: int = 0  # posts we did
