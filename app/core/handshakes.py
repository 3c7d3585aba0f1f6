"""Adding contacts: starting a handshake from a card, answering one, and the welcome.

The initiator listens on a fresh mailbox it names inside the sealed introduction and writes
to the card's invitation mailbox until the responder's `welcome` names the responder's own
fresh mailbox; from then on each direction has its own random mailbox, unlinkable to the
card. Both the introduction and the welcome stay in the outbox until the peer shows it has
them (any authentic frame back), so either side may be offline or crash in between.

Who may change what: a handshake under an identity key we do not know, whatever name it
claims, becomes a message request of its own and never touches an existing contact; one
under the key of a contact or request re-opens that row's channels (only that key's holder
can make one); one under a blocked key is dropped without a word. A mailbox id belongs to one
contact and one direction for its whole life, and a welcome is taken only by the contact that
waits for it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from app.core import payload as pl
from app.core.context import Context
from app.core.errors import UserError
from app.core.events import (
    ContactAdded,
    ContactChanged,
    Rejection,
    RequestAdded,
    RequestRemoved,
)
from app.core.profile import SETTING_ADDRESS, check_display_name
from app.core.routing import Routing
from app.crypto.card import Card
from app.crypto.errors import CardError, HandshakeError, ReplayedHandshake
from app.crypto.handshake import Accepted, Invitation, initiate
from app.crypto.mailbox import MailboxKey
from app.crypto.ratchet import Session
from app.domain.contacts import Contact, ContactKind, ContactState
from app.domain.groups import MemberState
from app.store.groups import JOINED_NO_CODE
from app.store.records import (
    HandshakeLink,
    MailboxPurpose,
    NewOutbox,
    OurMailbox,
    OutboxKind,
    TheirMailbox,
)
from app.store.repos import Repos

MAX_REQUESTS = 100  # pending message requests kept; the oldest goes when another arrives
UNNAMED = "Unnamed"


def parse_card(text: str) -> Card:
    """The one place a card's text is read; UserError saying why it is not one."""
    try:
        return Card.parse(text)
    except CardError as exc:
        raise UserError(f"not a valid AnonChat code: {exc}") from None


def introduction(accepted: Accepted) -> pl.Intro:
    """The `intro` a handshake's first message must be; PayloadError otherwise."""
    intro = pl.decode(accepted.plaintext)
    if not isinstance(intro, pl.Intro):
        raise pl.PayloadError("the first message is not an introduction")
    return intro


def forget_channels(r: Repos, contact_id: int) -> list[OurMailbox]:
    """Drop a contact's session, mailboxes and undeliverable outbox; return our old mailboxes
    (the caller unsubscribes them once the transaction is done)."""
    ours = r.mailboxes.list_ours(contact_id=contact_id)
    for box in ours:
        r.mailboxes.delete_ours(box.id)
    for theirs in r.mailboxes.list_theirs(contact_id):
        r.mailboxes.delete_theirs(theirs.id)
    for item in r.outbox.for_contact(contact_id):
        r.outbox.fail(item.id)
    r.sessions.delete(contact_id)
    r.rejoin.forget(contact_id)
    return ours


def _open_channels(
    r: Repos,
    cid: int,
    mine: MailboxKey,
    our_relays: tuple[str, ...],
    their_mailbox: bytes,
    their_relays: tuple[str, ...],
    session: Session,
    first_frame: bytes,
    now: int,
) -> None:
    """Both sides of a handshake, in its transaction: our fresh mailbox for this contact, the
    peer's, the session, and our first frame (introduction or welcome) queued for the peer."""
    r.mailboxes.add_ours(
        OurMailbox(
            mine.id,
            mine.to_bytes(),
            our_relays[0],
            MailboxPurpose.CONTACT,
            cid,
            now,
            our_relays[1:],
        )
    )
    r.mailboxes.add_theirs(TheirMailbox(their_mailbox, their_relays[0], cid, now, their_relays[1:]))
    r.sessions.save(cid, session.to_bytes(), now)
    r.outbox.add(
        NewOutbox(cid, OutboxKind.MESSAGE, their_mailbox, their_relays[0], first_frame, now, now)
    )


async def mailbox_is_new(
    ctx: Context, contact_id: int, session: Session, mailbox: bytes, what: str
) -> bool:
    """Whether a mailbox a contact names (in a welcome or a move) belongs to nobody yet; if it
    does, the frame is dropped and reported with its ratchet step kept."""
    if not await ctx.store.read(lambda r: r.mailboxes.in_use(mailbox)):
        return True
    await ctx.keep_step_and_reject(
        contact_id, session, f"{what} named a mailbox that is not theirs", Rejection.MAILBOX
    )
    return False


def is_address(r: Repos, mailbox_id: bytes) -> bool:
    """Whether one of our invitation mailboxes is the long-lived address (else a one-time
    code)."""
    return r.settings.get(SETTING_ADDRESS) == mailbox_id.hex()


def retire_used_codes(r: Repos, contact_id: int) -> list[OurMailbox]:
    """The handshake with this contact is complete (their first frame on its own mailbox): the
    one-time code it came through is dropped; returns its mailbox to unsubscribe."""
    gone = []
    for link in r.handshakes.all():
        if link.contact_id != contact_id or link.mailbox_id is None:
            continue
        box = r.mailboxes.get_ours(link.mailbox_id)
        if box is None or box.purpose is not MailboxPurpose.INVITATION:
            continue
        if not is_address(r, box.id) and r.groups.by_code(box.id) is None:
            r.mailboxes.delete_ours(box.id)
            gone.append(box)
    return gone


def _member_name(r: Repos, mailbox_id: bytes, keys: bytes) -> str | None:
    """Through one of our group codes, the name of these keys in that group if they are a
    current member of it (None otherwise, and for any other code)."""
    group = r.groups.by_code(mailbox_id)
    if group is None:
        return None
    member = r.groups.member(group.contact_id, keys)
    if member is None or member.state is not MemberState.MEMBER:
        return None
    return member.name


def _joined_through_code(r: Repos, mailbox_id: bytes, keys: bytes) -> None:
    group = r.groups.by_code(mailbox_id)
    member = None if group is None else r.groups.member(group.contact_id, keys)
    if group is not None and member is not None and member.code is None:
        r.groups.set_member(group.contact_id, keys, code=JOINED_NO_CODE)


def _make_room_for_a_request(r: Repos) -> tuple[list[int], list[OurMailbox]]:
    """Delete the oldest requests until one more fits: nobody can flood the list."""
    requests = r.contacts.all(ContactState.REQUEST)
    gone: list[int] = []
    boxes: list[OurMailbox] = []
    for old in requests[: max(0, len(requests) - MAX_REQUESTS + 1)]:
        boxes += r.mailboxes.list_ours(contact_id=old.id)
        r.contacts.delete(old.id)
        gone.append(old.id)
    return gone, boxes


class Handshakes:
    def __init__(self, ctx: Context, routing: Routing) -> None:
        self._ctx = ctx
        self._routing = routing
        # Our handshake with this row is complete (set by the engine to Groups.channel_opened).
        self.channel_opened: Callable[[int], None] = lambda contact_id: None

    # -- initiator -----------------------------------------------------------------------

    async def add_contact(self, text: str, name: str | None = None) -> Contact:
        """Start a contact from their card; it appears at once. Re-adding someone we deleted
        (history kept) or blocked reconnects that contact: scanning their code is asking to
        talk to them again."""
        ctx = self._ctx
        card = parse_card(text)
        keys = card.identity.to_bytes()
        if keys == ctx.identity.public.to_bytes():
            raise UserError("that is your own code")
        display = check_display_name(name or card.name or UNNAMED)
        async with ctx.lock:

            def load(r: Repos) -> tuple[Contact | None, bool]:
                return r.contacts.find_by_identity(keys), r.mailboxes.in_use(card.mailbox)

            known, taken = await ctx.store.read(load)
            if known is not None and known.kind is ContactKind.MEMBER:
                return await self._make_contact(known, display)
            if known is not None and known.state is ContactState.CONTACT:
                raise UserError(f"{known.display_name} is already a contact")
            if known is not None and known.state is ContactState.REQUEST:
                raise UserError(
                    f"{known.display_name} has already asked to talk to you: accept their request"
                )
            if taken:
                raise UserError("this code names a mailbox that belongs to another contact")
            return await self._initiate(card, display, known)

    async def _make_contact(self, member: Contact, display: str) -> Contact:
        """Someone we knew only through a group, added by their card: a contact now, on the
        channel we already have."""

        def unit(r: Repos) -> Contact:
            r.contacts.set_kind(member.id, ContactKind.PERSON)
            r.contacts.rename(member.id, display)
            return r.contacts.get(member.id)

        contact = await self._ctx.store.run(unit)
        self._ctx.emit(ContactAdded(contact))
        return contact

    async def connect_member(self, code: str, name: str) -> None:
        """Start a channel with a group member through their group code (called under the
        lock, by groups): a member-only contact, in no contact list. A code that does not
        parse or names a mailbox in use changes nothing."""
        try:
            card = Card.parse(code)
        except CardError:
            return
        taken = await self._ctx.store.read(lambda r: r.mailboxes.in_use(card.mailbox))
        if not taken:
            await self._initiate(card, name, None, kind=ContactKind.MEMBER)

    async def rejoin(self, contact: Contact, card: Card) -> Contact:
        """Our profile, restored from a backup, opens a fresh session with this contact (under
        the lock, by rejoin.py, as the profile opens): the card is their rejoin prekey on the
        mailbox we wrote to. The row stays the same contact, verified mark and history kept.
        Nothing goes to the network here: the engine's start listens on the new mailbox and
        sends what waits, so a profile restored with no relay in reach opens at once."""
        return await self._initiate(
            card, contact.display_name, contact, kind=contact.kind, connect=False
        )

    async def _initiate(
        self,
        card: Card,
        display: str,
        ended: Contact | None,
        kind: ContactKind = ContactKind.PERSON,
        *,
        connect: bool = True,
    ) -> Contact:
        ctx = self._ctx
        box = MailboxKey.generate()
        our_relays = ctx.settings.relays
        session = initiate(ctx.identity, card, name=ctx.settings.name, reply_mailbox=box.id)
        session, frame = session.encrypt(pl.encode(pl.Intro(our_relays[0], our_relays[1:])))
        keys = card.identity.to_bytes()
        now = ctx.clock()

        def unit(r: Repos) -> tuple[Contact, list[OurMailbox]]:
            old: list[OurMailbox] = []
            r.contacts.unblock(keys)
            if ended is None:
                cid = r.contacts.add(display, keys, now, awaiting_welcome=True, kind=kind).id
            else:
                cid, old = ended.id, forget_channels(r, ended.id)
                r.contacts.set_state(cid, ContactState.CONTACT)
                r.contacts.set_awaiting_welcome(cid, True)
            _open_channels(r, cid, box, our_relays, card.mailbox, card.relays, session, frame, now)
            return r.contacts.get(cid), old

        contact, old = await ctx.store.run(unit)
        if connect:
            await self._after_channels_changed(contact, old, our_relays, box)
        if kind is ContactKind.PERSON:
            ctx.emit(ContactAdded(contact) if ended is None else ContactChanged(contact))
        return contact

    async def _after_channels_changed(
        self,
        contact: Contact,
        old: list[OurMailbox],
        our_relays: tuple[str, ...],
        box: MailboxKey,
    ) -> None:
        """Unsubscribe what was forgotten, listen on the new mailbox, watch the peer's."""
        routing = self._routing
        await routing.drop_mailboxes(old)
        await routing.listen(our_relays, box, contact.id)
        await routing.watch_contact(contact.id)
        self._ctx.wake()

    async def on_welcome(self, contact: Contact, session: Session, welcome: pl.Welcome) -> None:
        """The responder's first reply: from now on write to the mailbox it names. Taken only
        by a contact that waits for it, and only for a mailbox nobody else has."""
        ctx = self._ctx
        now = ctx.clock()
        if not contact.awaiting_welcome:
            await ctx.keep_step_and_reject(
                contact.id, session, "a welcome nobody was waiting for", Rejection.WELCOME
            )
            return
        if not await mailbox_is_new(ctx, contact.id, session, welcome.mailbox, "a welcome"):
            return
        ack_session, ack = session.encrypt(pl.encode(pl.Receipt(False, ())))
        dest = TheirMailbox(welcome.mailbox, welcome.relay_url, contact.id, now, welcome.fallbacks)

        def unit(r: Repos) -> Contact:
            for card_box in r.mailboxes.list_theirs(contact.id):  # the card's: handshake only
                r.mailboxes.delete_theirs(card_box.id)
                r.outbox.readdress(contact.id, card_box.id, dest.id, dest.relay_url)
            r.mailboxes.add_theirs(dest)
            r.outbox.drop_handshake_controls(contact.id)
            r.contacts.set_awaiting_welcome(contact.id, False)
            r.sessions.save(contact.id, ack_session.to_bytes(), now)
            r.outbox.add(
                NewOutbox(contact.id, OutboxKind.RECEIPT, dest.id, dest.relay_url, ack, now, now)
            )
            return r.contacts.get(contact.id)

        changed = await ctx.store.run(unit)
        await self._routing.watch_contact(contact.id)
        if changed.kind is not ContactKind.MEMBER:  # a member-only row is in no list
            ctx.emit(ContactChanged(changed))
        self.channel_opened(changed.id)
        ctx.wake()

    # -- responder -----------------------------------------------------------------------

    async def on_invitation_frame(self, box: OurMailbox, frame: bytes) -> int | None:
        """A frame on our card's mailbox: a new handshake (answered here), or a later frame of
        an accepted one: then the contact whose session it belongs to is returned."""
        ctx = self._ctx
        invitation = Invitation.from_bytes(box.private_key)
        try:
            accepted = invitation.accept(ctx.identity, frame)
        except ReplayedHandshake as replay:
            rid = replay.replay_id
            link = await ctx.store.read(lambda r: r.handshakes.get(rid))
            return None if link is None else link.contact_id
        except HandshakeError as exc:
            ctx.reject(f"a handshake failed its check ({exc})", Rejection.HANDSHAKE)
            return None
        try:
            intro = introduction(accepted)
        except pl.PayloadError as exc:
            ctx.reject(f"a handshake carried no valid introduction ({exc})", Rejection.HANDSHAKE)
            return None
        peer = accepted.peer
        keys = peer.identity.to_bytes()
        ours = ctx.identity.public.to_bytes()
        if keys == ours:
            ctx.reject("a handshake from our own identity", Rejection.HANDSHAKE)
            return None

        def load(r: Repos) -> tuple[bool, Contact | None, bool, bool, str | None]:
            return (
                r.contacts.is_blocked(keys),
                r.contacts.find_by_identity(keys),
                r.mailboxes.in_use(peer.mailbox),
                is_address(r, box.id),
                _member_name(r, box.id, keys),
            )

        blocked, known, taken, address, member = await ctx.store.read(load)
        if blocked:
            return None  # dropped without a word: the blocked person learns nothing either
        group_code = await ctx.store.read(lambda r: r.groups.by_code(box.id) is not None)
        if group_code and member is None:
            ctx.reject("a handshake through a group code from a non-member", Rejection.HANDSHAKE)
            return None
        if invitation.used and not address and not group_code:
            ctx.reject("a one-time code that was already used", Rejection.HANDSHAKE)
            return None
        if taken:
            ctx.reject(
                "a handshake named a mailbox that belongs to someone else", Rejection.MAILBOX
            )
            return None
        if known is not None and known.state is ContactState.ENDED:
            known = None  # a contact we ended asks again: a request of its own
        if known is not None and known.awaiting_welcome and keys > ours:
            return None  # both added each other at once: the lower key's handshake goes ahead
        if known is not None and known.state is ContactState.REQUEST and member is not None:
            return None  # a stranger's request stays one until the person accepts it
        await self._answer(box, accepted, intro, known, member)
        return None

    async def answer_rejoin(
        self, box: OurMailbox, accepted: Accepted, intro: pl.Intro, contact_id: int
    ) -> None:
        """The contact's profile, restored from a backup, opened a fresh session through the
        prekey we gave them, on their mailbox `box` (by rejoin.py, under the lock): new
        channels for the same contact; the old session and that mailbox end."""
        known = await self._ctx.store.read(lambda r: r.contacts.get(contact_id))
        await self._answer(box, accepted, intro, known, rejoin=True)

    async def _answer(
        self,
        box: OurMailbox,
        accepted: Accepted,
        intro: pl.Intro,
        known: Contact | None,
        member: str | None = None,
        *,
        rejoin: bool = False,
    ) -> None:
        """Accept the handshake: a new request, or new channels for the contact or request of
        this same key. Our welcome goes out at once, so a request's messages are acknowledged
        as delivered (never as read) while it waits. Through a group code, from a member of
        that group (`member`: their name there), a new row is a member-only contact instead
        of a request."""
        ctx = self._ctx
        peer = accepted.peer
        mine = MailboxKey.generate()
        our_relays = ctx.settings.relays
        session, welcome = accepted.session.encrypt(
            pl.encode(pl.Welcome(mine.id, our_relays[0], ctx.settings.name, our_relays[1:]))
        )
        now = ctx.clock()
        invitation_row = replace(box, private_key=accepted.invitation.to_bytes())
        name = peer.name or UNNAMED

        def unit(r: Repos) -> tuple[Contact, list[OurMailbox], list[int]]:
            old: list[OurMailbox] = []
            pushed_out: list[int] = []
            if member is not None:  # they joined, since they hold our code: say so
                _joined_through_code(r, box.id, peer.identity.to_bytes())
            if known is None and member is not None:
                keys = peer.identity.to_bytes()
                cid = r.contacts.add(member, keys, now, kind=ContactKind.MEMBER).id
            elif known is None:
                pushed_out, old = _make_room_for_a_request(r)
                keys = peer.identity.to_bytes()
                cid = r.contacts.add(name, keys, now, state=ContactState.REQUEST).id
            else:
                cid, old = known.id, forget_channels(r, known.id)
                r.contacts.set_awaiting_welcome(cid, False)
            if not rejoin:  # a rejoin came on the contact's mailbox, forgotten with the rest
                r.mailboxes.delete_ours(box.id)
                r.mailboxes.add_ours(invitation_row)
                r.handshakes.put(HandshakeLink(accepted.replay_id, cid, box.id, now))
            their_relays = (intro.relay_url, *intro.fallbacks)
            _open_channels(
                r, cid, mine, our_relays, peer.mailbox, their_relays, session, welcome, now
            )
            return r.contacts.get(cid), old, pushed_out

        contact, old, pushed_out = await ctx.store.run(unit)
        await self._after_channels_changed(contact, old, our_relays, mine)
        for gone in pushed_out:
            await self._routing.forget_contact(gone)
            ctx.emit(RequestRemoved(gone))
        if contact.kind is ContactKind.MEMBER:
            return  # in no list: its groups show it connected
        if contact.state is ContactState.REQUEST:
            ctx.emit(RequestAdded(contact))  # new, or the same stranger starting over
        else:
            ctx.emit(ContactChanged(contact))
