"""Every frame the relays hand us, one at a time: which mailbox it came to decides who reads
it (a handshake on the card's mailbox, a contact's session otherwise); a contact's frame is
decrypted and its content goes to messaging or, for a welcome, to handshakes; a piece of a
file (or a transfer's control message) goes to files as it arrives. Anything that fails a
check is dropped and counted (`Context.reject`), changing nothing.

What waits to be read is bounded (app/core/intake.py): the relay connections are read only
while there is room. A frame is checked against the contact's session kept in memory for as
long as the store has not changed, so a forged frame costs its check and nothing else: no
store access, no transaction. Failed frames are budgeted per mailbox and messages per contact.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable

from app.core import intake
from app.core import payload as pl
from app.core.context import Context
from app.core.conversation import Conversation
from app.core.events import ContactLimited, Limit, Rejection
from app.core.files import Files
from app.core.group_intake import GroupIntake
from app.core.handshakes import Handshakes
from app.core.messaging import Messaging, contact_or_none
from app.core.moving import Moving
from app.core.rejoin import Rejoin
from app.core.routing import Routing
from app.crypto.errors import DecryptError, DuplicateMessage, LocalStateError, MalformedMessage
from app.crypto.filecrypt import is_file_frame
from app.crypto.ratchet import Session
from app.domain.contacts import Contact
from app.domain.messages import Direction
from app.net import events as net
from app.store.records import MailboxPurpose, OurMailbox, TheirMailbox
from app.store.repos import Repos

log = logging.getLogger(__name__)


class Inbound:
    """The receive loop: `put` frames in (from the pool), `run()` until `stop()`."""

    def __init__(
        self,
        ctx: Context,
        routing: Routing,
        handshakes: Handshakes,
        messaging: Messaging,
        conversation: Conversation,
        moving: Moving,
        files: Files,
        groups: GroupIntake,
        rejoin: Rejoin,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ctx = ctx
        self._routing = routing
        self._handshakes = handshakes
        self._messaging = messaging
        self._conversation = conversation
        self._moving = moving
        self._files = files
        self._groups = groups
        self._rejoin = rejoin
        files.transfers.budget_failed = lambda mailbox: self.budgets.failed(mailbox, self._clock())
        self._clock = clock
        self._queue: deque[net.Delivered] = deque()
        self._queued_bytes = 0
        self._ready = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._stopping = False
        self.budgets = intake.Budgets()
        # contact id -> (the store's generation when loaded, the session then)
        self._sessions: dict[int, tuple[int, Session]] = {}
        self._invitations: set[bytes] = set()  # our card mailboxes frames came to

    # -- the intake --------------------------------------------------------------------------

    def put(self, delivered: net.Delivered) -> None:
        """Queue a frame, unless its mailbox is over its failed-frame budget and checking it
        would cost anything (then it is dropped unread and counted). A frame whose cost is
        not known yet (its session is not at hand) is queued: its turn will tell."""
        mailbox, work = delivered.mailbox, None
        box = self._routing.known_mailbox(mailbox)
        if is_file_frame(delivered.payload) and box is not None and box.contact_id is not None:
            self._file_frame(box.id, box.contact_id, delivered.payload)
            return
        cached = (
            None if box is None or box.contact_id is None else self._sessions.get(box.contact_id)
        )
        if cached is not None:
            work = cached[1].work(delivered.payload)
        if (cached is not None or mailbox in self._invitations) and not self.budgets.worth_trying(
            mailbox, work, self._clock(), spend=False
        ):
            self._ctx.reject("a frame from a mailbox that sends forgeries", Rejection.FLOOD)
            return
        self._queue.append(delivered)
        self._queued_bytes += len(delivered.payload)
        self._ready.set()
        if self._full():
            self._room.clear()

    async def room(self) -> None:
        """Returns once there is room for another frame (the link reads on only then)."""
        await self._room.wait()

    def _full(self) -> bool:
        return len(self._queue) >= intake.INTAKE_FRAMES or self._queued_bytes >= intake.INTAKE_BYTES

    def stop(self) -> None:
        self._stopping = True
        self._ready.set()
        self._room.set()

    async def run(self) -> None:
        while not self._stopping:
            if not self._queue:
                self._ready.clear()
                await self._ready.wait()
                continue
            delivered = self._queue.popleft()
            self._queued_bytes -= len(delivered.payload)
            if not self._full():
                self._room.set()
            try:
                await self.receive(delivered)
            except Exception:
                log.exception("processing an incoming frame failed")

    # -- one frame ---------------------------------------------------------------------------

    async def receive(self, delivered: net.Delivered) -> None:
        """One frame, now, under the context's lock."""
        async with self._ctx.lock:
            box = await self._routing.our_mailbox(delivered.mailbox)
            if box is None:
                return
            if box.purpose is MailboxPurpose.INVITATION:
                self._invitations.add(box.id)
                if not self.budgets.worth_trying(box.id, None, self._clock()):
                    self._ctx.reject("a frame from a mailbox that sends forgeries", Rejection.FLOOD)
                    return
                failures = self._ctx.rejections.total
                replayed_for = await self._handshakes.on_invitation_frame(box, delivered.payload)
                if self._ctx.rejections.total != failures:
                    self.budgets.failed(box.id, self._clock())
                if replayed_for is not None:
                    await self._contact_frame(box.id, replayed_for, delivered.payload, True)
            elif box.contact_id is not None and is_file_frame(delivered.payload):
                self._file_frame(box.id, box.contact_id, delivered.payload)
            elif box.contact_id is not None:
                await self._contact_frame(box.id, box.contact_id, delivered.payload, False)

    def _file_frame(self, mailbox: bytes, contact_id: int, frame: bytes) -> None:
        """A piece of a file, or a transfer's control message: handled as it arrives (one
        lookup, one check, a write), never queued, unless its mailbox sends forgeries."""
        if not self.budgets.worth_trying(mailbox, None, self._clock()):
            self._ctx.reject("a frame from a mailbox that sends forgeries", Rejection.FLOOD)
            return
        self._files.transfers.on_frame(mailbox, contact_id, frame)

    async def _session(self, contact_id: int) -> Session | None:
        """The contact's session as the store holds it, from memory while nothing changed."""
        store = self._ctx.store
        cached = self._sessions.get(contact_id)
        if cached is not None and cached[0] == store.generation:
            return cached[1]
        generation = store.generation
        blob = await store.read(lambda r: r.sessions.load(contact_id))
        if blob is None:
            self._sessions.pop(contact_id, None)
            return None
        try:
            session = Session.from_bytes(blob)
        except LocalStateError:
            log.error("a stored session could not be read")
            return None
        self._sessions[contact_id] = (generation, session)
        return session

    async def _contact_frame(
        self, mailbox: bytes, contact_id: int, frame: bytes, via_invitation: bool
    ) -> None:
        """A frame from a contact's ratchet session: decrypt, store, acknowledge.

        One that came through our card's mailbox (`via_invitation`) was sent before the peer
        had our welcome, so it does not show the welcome arrived: the welcome stays queued."""
        ctx, messaging, budgets = self._ctx, self._messaging, self.budgets
        session = await self._session(contact_id)
        if session is None:
            return
        work = session.work(frame)
        if not budgets.worth_trying(mailbox, work, self._clock()):
            ctx.reject("a frame from a mailbox that sends forgeries", Rejection.FLOOD)
            return
        try:
            session, plaintext = session.decrypt(frame)
        except DuplicateMessage:
            if budgets.recheck(mailbox, self._clock()):  # a resend (or a replay) costs a lookup
                await self._acknowledge_again(contact_id, pl.message_id(frame))
            return
        except (MalformedMessage, DecryptError) as exc:
            if not via_invitation and await self._rejoined(mailbox, contact_id, frame):
                return
            budgets.failed(mailbox, self._clock())
            if isinstance(exc, MalformedMessage):
                ctx.reject(f"a frame that is not a message ({exc})", Rejection.MALFORMED)
            else:
                ctx.reject(f"a message failed its check ({type(exc).__name__})", Rejection.FORGED)
            return
        was_throttled = budgets.throttled(contact_id)
        if not budgets.take_message(contact_id, work, len(frame), self._clock()):
            # Left out, not lost: without our receipt the contact's outbox sends it again.
            ctx.rejections.count(Rejection.THROTTLED)
            if not was_throttled:
                ctx.emit(ContactLimited(contact_id, Limit.THROTTLED))
            return
        self._sessions.pop(contact_id, None)  # whatever happens next changes the store
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

        def load(r: Repos) -> tuple[Contact | None, list[TheirMailbox]]:
            return contact_or_none(r, contact_id), r.mailboxes.list_theirs(contact_id)

        contact, theirs = await ctx.store.read(load)
        if contact is None:
            return
        mid = pl.message_id(frame)
        via = None if via_invitation else mailbox
        match content:
            case pl.Chat(file=offer) if offer is not None:
                if not await messaging.within_quota(contact_id, content.body):
                    return
                retired = await self._files.take_offer(
                    contact_id, session, mid, content, theirs, via
                )
                await self._retire(retired)
            case pl.Chat():
                if not await messaging.within_quota(contact_id, content.body):
                    return  # left out like a throttled one: sent again once there is room
                retired = await messaging.take_chat(contact_id, session, mid, content, theirs, via)
                await self._retire(retired)
            case pl.Receipt(read, ids):
                retired = await messaging.take_receipt(contact_id, session, ids, read, via)
                await self._retire(retired)
            case pl.Edit() | pl.Delete() | pl.React():
                conversation = self._conversation
                retired = await conversation.take_update(
                    contact_id, session, mid, content, theirs, via
                )
                await self._retire(retired)
            case pl.Timer():
                conversation = self._conversation
                retired = await conversation.take_timer(
                    contact_id, session, mid, content, theirs, via
                )
                await self._retire(retired)
            case pl.Unknown():
                retired = await self._conversation.take_unknown(
                    contact_id, session, mid, theirs, via
                )
                await self._retire(retired)
            case (
                pl.GroupInvite()
                | pl.GroupJoin()
                | pl.GroupIntro()
                | pl.GroupSigned()
                | pl.GroupSync()
            ):
                if not await self._groups.fits(content):
                    return  # left out like a chat over the quota
                retired = await self._groups.take(contact, session, mid, content, theirs, via)
                await self._retire(retired)
            case pl.Rejoin():
                retired = await self._rejoin.take(contact_id, session, mid, content, theirs, via)
                await self._retire(retired)
            case pl.Welcome():
                await self._handshakes.on_welcome(contact, session, content)
                await self._moving.catch_up_locked([contact_id])  # we changed relays meanwhile
            case pl.Move():
                await self._moving.on_move(contact, session, content, mailbox)
            case pl.Intro():
                await ctx.keep_step_and_reject(
                    contact_id, session, "an introduction outside a handshake", Rejection.PAYLOAD
                )

    async def _rejoined(self, mailbox: bytes, contact_id: int, frame: bytes) -> bool:
        """A frame the contact's session cannot read, on their mailbox: their profile restored
        from a backup, opening a fresh session with the prekey we gave them?"""
        box = await self._routing.our_mailbox(mailbox)
        if box is None or box.contact_id != contact_id:
            return False
        if not await self._rejoin.try_frame(box, contact_id, frame):
            return False
        self._sessions.pop(contact_id, None)
        return True

    async def _retire(self, boxes: list[OurMailbox]) -> None:
        """Stop listening on mailboxes a handshake or a move retired, and leave a relay that
        nothing needs any more."""
        if boxes:
            await self._routing.drop_mailboxes(boxes)
            await self._routing.leave_unused({url for box in boxes for url in box.relays})

    async def _acknowledge_again(self, contact_id: int, mid: bytes) -> None:
        """A resend of a message we have: our receipt was lost, so it goes out again."""

        def seen(r: Repos) -> bool:
            if r.messages.find(contact_id, Direction.INCOMING, mid) is not None:
                return True
            return r.conversation.applied(contact_id, mid)  # an update of theirs

        if await self._ctx.store.read(seen):
            self._messaging.acknowledge(contact_id, mid)
