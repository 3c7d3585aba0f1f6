"""Reconnecting a profile restored from a backup with every contact, as the same contact.

A backup holds no ratchet state (docs/backup.md). So each side of a live channel gives the
other, over that channel, a prekey for this contact alone (`rejoin`); the public half is in
the other's backup, the private half never leaves our store. A restored profile seals a fresh
handshake under its unchanged identity key to the contact's prekey and sends it to the mailbox
it already wrote to. The contact, failing to read it with the session it has, opens it with
the prekey it gave us: an introduction under the identity key of that very contact re-opens
that contact's channels (no request, no key change, the verified mark kept) and ends the
session with the old computer, whose later frames go to a mailbox nobody listens on. The
prekey is used once; a fresh one follows on the new channel.

Only the holder of our identity key, who also read the prekey inside our ratchet, can make
such a handshake: a relay that sees every frame has neither.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from dataclasses import replace
from typing import Any

from app.core import payload as pl
from app.core.context import Context
from app.core.errors import UserError
from app.core.events import ContactAdded, ContactChanged, Event, PresenceChanged, Rejection
from app.core.handshakes import Handshakes, introduction
from app.core.messaging import Messaging, contact_or_none, step_taken
from app.core.outbox import outbox_row
from app.crypto.card import Card
from app.crypto.errors import HandshakeError, LocalStateError
from app.crypto.handshake import Invitation, rejoin_prekey
from app.crypto.identity import PublicIdentity
from app.crypto.mailbox import MailboxKey
from app.crypto.ratchet import Session
from app.domain.contacts import ContactState
from app.domain.messages import WireId
from app.store.records import OurMailbox, OutboxKind, TheirMailbox
from app.store.repos import Repos


class Rejoin:
    def __init__(self, ctx: Context, handshakes: Handshakes, messaging: Messaging) -> None:
        self._ctx = ctx
        self._handshakes = handshakes
        self._messaging = messaging
        self._tasks: set[asyncio.Task[Any]] = set()
        self.active = False  # set once the engine runs: prekeys are given from then on

    # -- giving our prekey ---------------------------------------------------------------

    def channel_opened(self, contact_id: int) -> None:
        """A handshake with this contact completed (ours or theirs): give them a prekey."""
        if self.active:
            self._spawn(self.offer_all())

    def on_event(self, event: Event) -> None:
        """A contact added or changed (a handshake answered, a request accepted), or a peer
        came online: a channel that holds no prekey of ours gets one."""
        if not self.active:
            return
        if isinstance(event, (ContactAdded, ContactChanged)):
            if event.contact.state is ContactState.CONTACT:
                self._spawn(self.offer_all())
        elif isinstance(event, PresenceChanged) and event.online:
            self._spawn(self.offer_all())

    async def offer_all(self) -> int:
        """A prekey for every live channel that has none; how many were given."""
        ctx = self._ctx
        given = 0
        async with ctx.lock:
            for contact_id in await ctx.store.read(lambda r: r.rejoin.to_offer()):
                given += await self._offer(contact_id)
        if given:
            ctx.wake()
        return given

    async def _offer(self, contact_id: int) -> int:
        ctx = self._ctx

        def load(r: Repos) -> tuple[list[TheirMailbox], bytes | None]:
            return r.mailboxes.list_theirs(contact_id), r.sessions.load(contact_id)

        theirs, blob = await ctx.store.read(load)
        if not theirs or blob is None:
            return 0
        private, public = rejoin_prekey()
        session, frame = Session.from_bytes(blob).encrypt(pl.encode(pl.Rejoin(public)))
        now = ctx.clock()
        row = replace(
            outbox_row(contact_id, OutboxKind.CONTROL, theirs[0], frame, now),
            frame_id=pl.message_id(frame),
        )

        def unit(r: Repos) -> None:
            r.rejoin.set_ours(contact_id, private)
            r.sessions.save(contact_id, session.to_bytes(), now)
            r.outbox.add(row)

        await ctx.store.run(unit)
        return 1

    async def take(
        self,
        contact_id: int,
        session: Session,
        mid: WireId,
        offer: pl.Rejoin,
        theirs: list[TheirMailbox],
        via: bytes | None,
    ) -> list[OurMailbox]:
        """The contact's prekey for us (called by inbound, under the lock): kept for our
        next backup, with its ratchet step, and acknowledged."""
        ctx = self._ctx
        now = ctx.clock()

        def unit(r: Repos) -> list[OurMailbox]:
            retired = step_taken(r, contact_id, session, via, now)
            if r.conversation.remember(contact_id, mid, now):
                r.rejoin.set_theirs(contact_id, offer.prekey)
            return retired

        retired = await ctx.store.run(unit)
        if theirs:
            self._messaging.acknowledge(contact_id, mid)
        return retired

    # -- a restored profile of the contact's ---------------------------------------------

    async def try_frame(self, box: OurMailbox, contact_id: int, frame: bytes) -> bool:
        """A frame on the contact's mailbox that their session could not read (called by
        inbound, under the lock): True when it was their restored profile's handshake to the
        prekey we gave them, now answered. False changes nothing."""
        ctx = self._ctx

        def load(r: Repos) -> tuple[bytes | None, bytes | None]:
            contact = contact_or_none(r, contact_id)
            if contact is None or contact.state is not ContactState.CONTACT:
                return None, None
            return r.rejoin.ours(contact_id), contact.identity_keys

        prekey, keys = await ctx.store.read(load)
        if prekey is None or keys is None:
            return False
        try:
            invitation = Invitation.for_rejoin(prekey, MailboxKey.from_bytes(box.private_key))
            accepted = invitation.accept(ctx.identity, frame)
        except (HandshakeError, LocalStateError):
            return False
        if accepted.peer.identity.to_bytes() != keys:
            ctx.reject("a rejoin under another identity key", Rejection.HANDSHAKE)
            return True
        try:
            intro = introduction(accepted)
        except pl.PayloadError as exc:
            ctx.reject(f"a rejoin carried no valid introduction ({exc})", Rejection.HANDSHAKE)
            return True
        await self._handshakes.answer_rejoin(box, accepted, intro, contact_id)
        return True

    # -- ours, restored ------------------------------------------------------------------

    async def reconnect(self) -> int:
        """A fresh handshake with every contact a restore left one owed to (at start); how
        many were started. One whose prekey or mailbox is unusable is left for its card."""
        ctx = self._ctx
        started = 0
        async with ctx.lock:
            for contact_id in await ctx.store.read(lambda r: r.rejoin.due()):
                started += await self._reconnect(contact_id)
        return started

    async def _reconnect(self, contact_id: int) -> int:
        ctx = self._ctx

        def load(r: Repos) -> tuple[bytes | None, list[TheirMailbox]]:
            return r.rejoin.theirs(contact_id), r.mailboxes.list_theirs(contact_id)

        prekey, theirs = await ctx.store.read(load)
        contact = await ctx.store.read(lambda r: contact_or_none(r, contact_id))
        card = None
        if contact is not None and prekey is not None and theirs:
            with contextlib.suppress(ValueError):
                card = Card(
                    PublicIdentity(contact.identity_keys[:32], contact.identity_keys[32:]),
                    prekey,
                    theirs[0].relay_url,
                    theirs[0].id,
                    fallbacks=theirs[0].fallbacks,
                )
        if contact is None or card is None:
            await ctx.store.run(lambda r: r.rejoin.forget(contact_id))
            return 0
        try:
            await self._handshakes.rejoin(contact, card)
        except (UserError, HandshakeError):  # a prekey no handshake can use: left for its card
            await ctx.store.run(lambda r: r.rejoin.forget(contact_id))
            return 0
        return 1

    # -- lifecycle -----------------------------------------------------------------------

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
