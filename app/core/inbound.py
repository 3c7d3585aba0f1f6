"""Every frame the relays hand us, one at a time: which mailbox it came to decides who reads
it (a handshake on the card's mailbox, a contact's session otherwise); a contact's frame is
decrypted and its content goes to messaging or, for a welcome, to handshakes. Anything that
fails a check is dropped and counted (`Context.reject`), changing nothing.
"""

from __future__ import annotations

import asyncio
import logging

from app.core import payload as pl
from app.core.context import Context
from app.core.events import Rejection
from app.core.handshakes import Handshakes
from app.core.messaging import Messaging, contact_or_none
from app.core.routing import Routing
from app.crypto.errors import DecryptError, DuplicateMessage, MalformedMessage
from app.crypto.ratchet import Session
from app.domain.contacts import Contact
from app.domain.messages import Direction, Message
from app.net import events as net
from app.store.records import MailboxPurpose, TheirMailbox
from app.store.repos import Repos

log = logging.getLogger(__name__)


class Inbound:
    """The receive loop: `put` frames in (from the pool), `run()` until `stop()`."""

    def __init__(
        self, ctx: Context, routing: Routing, handshakes: Handshakes, messaging: Messaging
    ) -> None:
        self._ctx = ctx
        self._routing = routing
        self._handshakes = handshakes
        self._messaging = messaging
        self._queue: asyncio.Queue[net.Delivered | None] = asyncio.Queue()  # None: stop
        self._stopping = False

    def put(self, delivered: net.Delivered) -> None:
        self._queue.put_nowait(delivered)

    def stop(self) -> None:
        self._stopping = True
        self._queue.put_nowait(None)

    async def run(self) -> None:
        while not self._stopping:
            delivered = await self._queue.get()
            if delivered is None:
                return
            try:
                await self.receive(delivered)
            except Exception:
                log.exception("processing an incoming frame failed")

    async def receive(self, delivered: net.Delivered) -> None:
        """One frame, now, under the context's lock."""
        async with self._ctx.lock:
            box = await self._routing.our_mailbox(delivered.mailbox)
            if box is None:
                return
            if box.purpose is MailboxPurpose.INVITATION:
                replayed_for = await self._handshakes.on_invitation_frame(box, delivered.payload)
                if replayed_for is not None:
                    await self._contact_frame(replayed_for, delivered.payload, True)
            elif box.contact_id is not None:
                await self._contact_frame(box.contact_id, delivered.payload, False)

    async def _contact_frame(self, contact_id: int, frame: bytes, via_invitation: bool) -> None:
        """A frame from a contact's ratchet session: decrypt, store, acknowledge.

        One that came through our card's mailbox (`via_invitation`) was sent before the peer
        had our welcome, so it does not show the welcome arrived: the welcome stays queued."""
        ctx, messaging = self._ctx, self._messaging
        mid = pl.message_id(frame)

        def load(
            r: Repos,
        ) -> tuple[Contact | None, bytes | None, Message | None, list[TheirMailbox]]:
            return (
                contact_or_none(r, contact_id),
                r.sessions.load(contact_id),
                r.messages.find(contact_id, Direction.INCOMING, mid),
                r.mailboxes.list_theirs(contact_id),
            )

        contact, blob, seen, theirs = await ctx.store.read(load)
        if contact is None or blob is None:
            return
        session = Session.from_bytes(blob)
        if seen is not None:  # a resend of what we have: our receipt was lost, send it again
            if theirs:
                await messaging.commit_receipt(contact_id, session, (mid,), False, theirs[0])
            return
        try:
            session, plaintext = session.decrypt(frame)
        except DuplicateMessage:
            return
        except MalformedMessage as exc:
            ctx.reject(f"a frame that is not a message ({exc})", Rejection.MALFORMED)
            return
        except DecryptError as exc:
            ctx.reject(f"a message failed its check ({type(exc).__name__})", Rejection.FORGED)
            return
        try:
            content = pl.decode(plaintext)
        except pl.PayloadError as exc:
            await ctx.keep_step_and_reject(
                contact_id,
                session,
                f"a message carried no valid content ({exc})",
                Rejection.PAYLOAD,
            )
            return
        match content:
            case pl.Chat():
                retired = await messaging.take_chat(
                    contact_id, session, mid, content, theirs, via_invitation
                )
                await self._routing.drop_mailboxes(retired)
            case pl.Receipt(read, ids):
                retired = await messaging.take_receipt(
                    contact_id, session, ids, read, via_invitation
                )
                await self._routing.drop_mailboxes(retired)
            case pl.Welcome():
                await self._handshakes.on_welcome(contact, session, content)
            case pl.Intro():
                await ctx.keep_step_and_reject(
                    contact_id, session, "an introduction outside a handshake", Rejection.PAYLOAD
                )
