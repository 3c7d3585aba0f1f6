"""Changing relays without losing anyone: test the new relay, then move every contact to it.

A relay is tried before it is taken: a connection, its hello, and a round trip (a frame sent
to a fresh mailbox of ours comes back). Taking new relays gives each contact a fresh mailbox
of ours on them and tells the contact over the ratchet with a `move`, resent until the contact
answers on that mailbox (its client writes there from then on, what it still had queued
included). Then our older mailboxes for that contact are dropped; once no mailbox and nothing
queued needs the old relay, its connections close and it is not tried again. The card follows
at once: an unused one-time code on the old relays is replaced by a fresh one on the new
relays, listened on at once, and the long-lived address keeps its mailbox on the new relays,
which makes a new code of it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

from app.core import payload as pl
from app.core.account import store_invitation
from app.core.context import Context
from app.core.errors import UserError
from app.core.handshakes import is_address, mailbox_is_new
from app.core.profile import (
    SETTING_FALLBACKS,
    SETTING_RELAY,
    SETTING_RELAY_MODE,
    RelayMode,
    check_relay_url,
    check_relays,
)
from app.core.routing import Routing, mailbox_key
from app.crypto.handshake import Invitation
from app.crypto.mailbox import MailboxKey
from app.crypto.ratchet import Session
from app.domain.contacts import TALKED_TO, Contact, ContactState
from app.net import events as net
from app.net.errors import NetError
from app.net.pool import RelayPool
from app.store.errors import NotFound
from app.store.records import MailboxPurpose, NewOutbox, OurMailbox, OutboxKind, TheirMailbox
from app.store.repos import Repos

PROBE_TIMEOUT_S = 10.0
PROBE_PAYLOAD = b"anonchat relay test"


async def probe(url: str, *, proxy: str | None = None, within: float = PROBE_TIMEOUT_S) -> None:
    """Connect to `url`, wait for its hello, subscribe a fresh mailbox and see a frame sent to
    it come back. UserError saying what failed otherwise."""
    events: asyncio.Queue[net.NetEvent] = asyncio.Queue()
    pool = RelayPool(events.put_nowait, proxy=proxy, request_timeout=within)
    key = MailboxKey.generate()
    step = "no relay answered there (a wrong address, or the relay is down)"
    try:
        async with asyncio.timeout(within):
            pool.connect(url)
            while True:
                event = await events.get()
                if isinstance(event, net.ConnectionChanged):
                    if event.state is net.ConnectionState.ONLINE:
                        break
                    if event.state is net.ConnectionState.BACKING_OFF:
                        raise UserError(f"could not reach {url}: {step}")
            step = "it took no subscription"
            if not await pool.subscribe(
                url, key.id, lambda ch: (key.public, key.sign_subscribe(ch))
            ):
                raise UserError(f"could not use {url}: {step}")
            step = "it forwarded nothing"
            await pool.send(url, key.id, PROBE_PAYLOAD)
            while True:
                event = await events.get()
                if isinstance(event, net.Delivered) and event.mailbox == key.id:
                    return
    except TimeoutError:
        raise UserError(f"could not use {url}: {step} within {within:g} s") from None
    except NetError as exc:
        raise UserError(f"could not use {url}: {exc}") from None
    finally:
        await pool.close()


def move_done(r: Repos, contact_id: int, mailbox: bytes) -> list[OurMailbox]:
    """An authentic frame from the contact came to one of our mailboxes: when it is the one
    our move named, the move is done and our older mailboxes for them go (returned, to
    unsubscribe)."""
    if not r.outbox.has_moves(contact_id):
        return []
    ours = r.mailboxes.list_ours(contact_id=contact_id)
    if not ours or ours[-1].id != mailbox:
        return []
    r.outbox.drop_moves(contact_id)
    for old in ours[:-1]:
        r.mailboxes.delete_ours(old.id)
    return ours[:-1]


class Moving:
    def __init__(self, ctx: Context, routing: Routing) -> None:
        self._ctx = ctx
        self._routing = routing
        self.listening = False  # set once the engine listens

    async def test_relay(self, url: str) -> None:
        """UserError saying why `url` cannot be used as a relay now (through the proxy, if
        one is set); None when a frame made the round trip."""
        url = check_relay_url(url.strip())
        await probe(url, proxy=self._ctx.settings.proxy or None)

    async def set_relays(
        self, urls: Sequence[str], mode: RelayMode = RelayMode.URL, *, test: bool = True
    ) -> tuple[str, ...]:
        """Use these relays (the first, then fallbacks in order) from now on; each one not in
        use yet is tested first (UserError, nothing changed, when one fails). Every contact
        is moved to them. Returns the relays now in use."""
        ctx = self._ctx
        relays = check_relays(urls)
        before = ctx.settings.relays
        if test:
            for url in relays:
                if url not in before:
                    await self.test_relay(url)

        def save(r: Repos) -> None:
            r.settings.set(SETTING_RELAY, relays[0])
            r.settings.set(SETTING_FALLBACKS, " ".join(relays[1:]))
            r.settings.set(SETTING_RELAY_MODE, mode.value)

        async with ctx.lock:
            await ctx.store.run(save)
            ctx.settings.relay_url, ctx.settings.fallbacks = relays[0], relays[1:]
            ctx.settings.relay_mode = mode
            if relays == before:
                return relays
            gone, rehomed = await ctx.store.run(lambda r: _move_card(r, relays))
            fresh = [await store_invitation(ctx, relays, address=False)] if gone else []
        routing = self._routing
        await routing.drop_mailboxes(gone + rehomed)
        if self.listening:  # the address, and a fresh one-time code for the one dropped
            for box in rehomed + fresh:
                await routing.listen(relays, mailbox_key(box), None)
        await self.catch_up()
        await routing.leave_unused(set(before) - set(relays))
        return relays

    async def catch_up(self, contact_ids: Sequence[int] | None = None) -> int:
        """Move each contact (or these) whose newest mailbox of ours is not on our relays;
        how many were moved."""
        async with self._ctx.lock:
            return await self.catch_up_locked(contact_ids)

    async def catch_up_locked(self, contact_ids: Sequence[int] | None = None) -> int:
        """`catch_up` for a caller that holds the context's lock."""
        ctx = self._ctx
        relays = ctx.settings.relays
        now = ctx.clock()

        def unit(r: Repos) -> list[tuple[int, MailboxKey]]:
            moved = []
            contacts = (
                r.contacts.all(ContactState.CONTACT, ContactState.REQUEST, kinds=TALKED_TO)
                if contact_ids is None
                else [c for c in (_contact(r, i) for i in contact_ids) if c is not None]
            )
            for contact in contacts:
                key = _move_one(r, contact, relays, now)
                if key is not None:
                    moved.append((contact.id, key))
            return moved

        moved = await ctx.store.run(unit)
        if self.listening:
            await asyncio.gather(*(self._routing.listen(relays, key, cid) for cid, key in moved))
        if moved:
            ctx.wake()
        return len(moved)

    async def on_move(
        self, contact: Contact, session: Session, move: pl.Move, mailbox: bytes
    ) -> None:
        """The contact moved: write to the mailbox it names from now on (what waits for it
        too) and answer there, which tells it the move arrived. Under the lock."""
        ctx = self._ctx
        if contact.awaiting_welcome:
            return  # before their welcome: dropped unkept, so their resend is read after it
        now = ctx.clock()
        if not await mailbox_is_new(ctx, contact.id, session, move.mailbox, "a move"):
            return
        dest = TheirMailbox(move.mailbox, move.relay_url, contact.id, now, move.fallbacks)
        ack_session, ack = session.encrypt(pl.encode(pl.Receipt(False, ())))

        def unit(r: Repos) -> set[str]:
            old_relays: set[str] = set()
            for old in r.mailboxes.list_theirs(contact.id):
                old_relays.update(old.relays)
                r.outbox.readdress(contact.id, old.id, dest.id, dest.relay_url)
                r.mailboxes.delete_theirs(old.id)
            r.mailboxes.add_theirs(dest)
            r.sessions.save(contact.id, ack_session.to_bytes(), now)
            r.outbox.add(
                NewOutbox(contact.id, OutboxKind.RECEIPT, dest.id, dest.relay_url, ack, now, now)
            )
            return old_relays

        old_relays = await ctx.store.run(unit)
        routing = self._routing
        await routing.forget_watches(contact.id)
        await routing.watch_contact(contact.id)
        ctx.wake()
        with contextlib.suppress(NetError):
            await routing.leave_unused(old_relays - set(dest.relays) - set(ctx.settings.relays))


def _contact(r: Repos, contact_id: int) -> Contact | None:
    try:
        contact = r.contacts.get(contact_id)
    except NotFound:
        return None
    return None if contact.state is ContactState.ENDED else contact


def _move_one(r: Repos, contact: Contact, relays: tuple[str, ...], now: int) -> MailboxKey | None:
    """A fresh mailbox of ours on `relays` for this contact and our move naming it, queued
    (any earlier move of theirs replaced); None when there is nothing to move."""
    if contact.awaiting_welcome:
        return None  # their welcome comes first; the engine moves them once it has
    ours = r.mailboxes.list_ours(contact_id=contact.id)
    theirs = r.mailboxes.list_theirs(contact.id)
    blob = r.sessions.load(contact.id)
    if not ours or not theirs or blob is None or ours[-1].relays == relays:
        return None
    key = MailboxKey.generate()
    session, frame = Session.from_bytes(blob).encrypt(
        pl.encode(pl.Move(key.id, relays[0], relays[1:]))
    )
    r.mailboxes.add_ours(
        OurMailbox(
            key.id, key.to_bytes(), relays[0], MailboxPurpose.CONTACT, contact.id, now, relays[1:]
        )
    )
    r.sessions.save(contact.id, session.to_bytes(), now)
    r.outbox.drop_moves(contact.id)
    dest = theirs[0]
    r.outbox.add(
        NewOutbox(contact.id, OutboxKind.CONTROL, dest.id, dest.relay_url, frame, now, now)
    )
    return key


def _move_card(r: Repos, relays: tuple[str, ...]) -> tuple[list[OurMailbox], list[OurMailbox]]:
    """Our card on new relays: unused one-time codes elsewhere are dropped, the address moves
    with its mailbox. Returns (dropped, moved), both as they were (to unsubscribe)."""
    gone: list[OurMailbox] = []
    rehomed: list[OurMailbox] = []
    for box in r.mailboxes.list_ours(purpose=MailboxPurpose.INVITATION):
        if box.relays == relays:
            continue
        if is_address(r, box.id):
            r.mailboxes.rehome(box.id, relays)
            rehomed.append(box)
        elif not Invitation.from_bytes(box.private_key).used:
            r.mailboxes.delete_ours(box.id)
            gone.append(box)
    return gone, rehomed
