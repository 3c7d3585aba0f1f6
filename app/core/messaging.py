"""A conversation's messages: writing one, retrying a failed one, reading, and what comes back
(a message stored and acknowledged, a receipt raising our messages' status).

Each step of the ratchet lands in the store in the same transaction as the message, receipt or
outbox row it produced, under the context's lock, so a crash keeps both or neither.

Receipts for what arrived go out in batches: the ids of a contact's messages gather for
RECEIPT_DELAY_S and leave in one frame (a crash in between loses no message: the contact
sends it again, and a message we have is acknowledged again). A contact's messages may take
at most the profile's quota (Settings.quota_mb); past it new ones are left out, unacknowledged,
so the contact's outbox keeps them until there is room.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import replace

from app.core import payload as pl
from app.core.context import Context
from app.core.errors import SendingBlocked, UnknownContact, UserError
from app.core.events import ContactLimited, Limit, MessageAdded, MessageStatusChanged, Rejection
from app.core.expiry import Expiry
from app.core.handshakes import retire_used_codes
from app.core.moving import move_done
from app.core.outbox import outbox_row
from app.crypto.ratchet import Session
from app.domain.contacts import Contact, ContactState
from app.domain.messages import (
    MAX_MESSAGE_CHARS,
    Direction,
    Message,
    MessageKind,
    MessageRow,
    Status,
    WireId,
)
from app.store.errors import NotFound
from app.store.records import NewMessage, OurMailbox, OutboxKind, TheirMailbox
from app.store.repos import Repos

SEQ_PREFIX = "seq:"  # settings: the last sequence number we wrote to each contact
RECEIPT_DELAY_S = 0.3  # receipts gather this long: a few frames a second, many ids each
USAGE_FRESH_S = 10.0  # how long a contact's counted usage is trusted before it is recounted


def contact_or_none(r: Repos, contact_id: int) -> Contact | None:
    try:
        return r.contacts.get(contact_id)
    except NotFound:
        return None


def check_can_send(contact: Contact) -> None:
    problem = contact.why_not_writable()
    if problem is not None:
        raise SendingBlocked(problem)


def step_taken(
    r: Repos, contact_id: int, session: Session, via: bytes | None, now: int
) -> list[OurMailbox]:
    """An authentic frame of the contact's, in the unit that stores what it brought: its
    ratchet step kept, and what a frame on that mailbox completes (see `_handshake_done`)."""
    r.sessions.save(contact_id, session.to_bytes(), now)
    return [] if via is None else _handshake_done(r, contact_id, via)


def _handshake_done(r: Repos, contact_id: int, mailbox: bytes) -> list[OurMailbox]:
    """A frame on the contact's own mailbox: our introduction or welcome, resent until now,
    is done, and so is the one-time code the handshake came through; on the mailbox our move
    named, so is the move (our older mailboxes for them go)."""
    moved = move_done(r, contact_id, mailbox)
    if r.outbox.drop_handshake_controls(contact_id) == 0:
        return moved
    return moved + retire_used_codes(r, contact_id)


def _offer_of(message: Message) -> Callable[[Repos], pl.Offer]:
    """The offer a file message of ours carries (to send it again)."""

    def read(r: Repos) -> pl.Offer:
        assert message.file is not None
        t = r.files.transfer(message.file.id)
        f = t.info
        return pl.Offer(t.file_id, f.name, f.size, f.mime, f.sha256, t.file_key, f.thumbnail)

    return read


def check_text(text: str) -> None:
    if not text.strip():
        raise UserError("an empty message is not sent")
    if len(text) > MAX_MESSAGE_CHARS:
        raise UserError(f"a message holds at most {MAX_MESSAGE_CHARS} characters")


def expires(now: int, timer_s: int) -> int | None:
    return now + timer_s * 1000 if timer_s else None


# What a new row of ours is, given the contact, its sequence number and the time: the payload
# that carries it and the row to store (its direction, wire id, status and session are added).
Compose = Callable[[Contact, int, int], tuple[pl.Payload, NewMessage]]


class Messaging:
    def __init__(self, ctx: Context, expiry: Expiry) -> None:
        self._ctx = ctx
        self._expiry = expiry
        self._to_acknowledge: dict[int, dict[bytes, None]] = {}
        self._flushing: dict[int, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._usage: dict[int, tuple[float, int]] = {}  # contact -> (counted at, bytes)
        self._over_quota: set[int] = set()
        # In a receipt's unit: our group messages' copies it names (set by the engine to
        # Groups.delivered); returns the group messages touched.
        self.group_receipts: Callable[[Repos, int, tuple[bytes, ...], int], list[int]] | None = None

    # -- writing -------------------------------------------------------------------------

    async def send(
        self,
        contact_id: int,
        text: str,
        reply_to: int | None = None,
        *,
        offer: pl.Offer | None = None,
        attach: Callable[[Repos, MessageRow], object] | None = None,
    ) -> Message:
        """Encrypt, store and queue one message (a reply to message row `reply_to`, if
        given); the outbox takes it from there. It disappears as the conversation's timer
        says. With an `offer` it is a file message whose text, the caption, may be empty
        (`attach(repos, row)` stores the file's row in the same transaction)."""
        if offer is None:
            check_text(text)
        elif len(text) > MAX_MESSAGE_CHARS:
            raise UserError(f"a caption holds at most {MAX_MESSAGE_CHARS} characters")
        ref = await self.quoted_id(contact_id, reply_to)

        def compose(contact: Contact, seq: int, now: int) -> tuple[pl.Payload, NewMessage]:
            timer = contact.timer_s
            row = NewMessage(
                contact_id,
                Direction.OUTGOING,
                b"",
                seq,
                text,
                now,
                None,
                Status.QUEUED,
                True,
                reply_to=ref,
                timer_s=timer,
                expires_at=expires(now, timer),
            )
            return pl.Chat(seq, now, text, ref, timer, offer), row

        return await self.send_row(contact_id, compose, attach=attach)

    async def quoted_id(self, contact_id: int, reply_to: int | None) -> bytes | None:
        """The wire id of message row `reply_to` (None for none), which a message to this
        contact may quote: one of the same conversation, someone wrote, not deleted."""
        if reply_to is None:
            return None

        def quoted(r: Repos) -> bytes:
            try:
                message = r.messages.get(reply_to)
            except NotFound:
                raise UserError("no such message to reply to") from None
            if message.contact_id != contact_id or not message.is_text:
                raise UserError("a reply quotes a message of the same conversation")
            return message.msg_id

        return await self._ctx.store.read(quoted)

    async def send_row(
        self,
        contact_id: int,
        compose: Compose,
        also: Callable[[Repos, int], None] | None = None,
        *,
        attach: Callable[[Repos, MessageRow], object] | None = None,
    ) -> Message:
        """A new conversation row of ours, numbered, encrypted, stored and queued in one
        unit (with `also(repos, now)` before it and `attach(repos, row)` after it, if given,
        in the same transaction)."""
        ctx = self._ctx
        seq_key = f"{SEQ_PREFIX}{contact_id}"

        def load(r: Repos) -> tuple[Contact, list[TheirMailbox], bytes | None, str | None]:
            contact = contact_or_none(r, contact_id)
            if contact is None:
                raise UnknownContact("no such contact")
            theirs = r.mailboxes.list_theirs(contact_id)
            return contact, theirs, r.sessions.load(contact_id), r.settings.get(seq_key)

        async with ctx.lock:
            contact, theirs, blob, last_seq = await ctx.store.read(load)
            check_can_send(contact)
            if not theirs or blob is None:
                raise UserError("no session with this contact yet")
            seq = int(last_seq or 0) + 1
            now = ctx.clock()
            content, message = compose(contact, seq, now)
            session, frame = Session.from_bytes(blob).encrypt(pl.encode(content))
            message = replace(message, msg_id=pl.message_id(frame))
            row = outbox_row(contact_id, OutboxKind.MESSAGE, theirs[0], frame, now)

            def unit(r: Repos) -> Message:
                r.settings.set(seq_key, str(seq))
                if also is not None:
                    also(r, now)
                stored = r.messages.store_outgoing(message, session.to_bytes(), row, now)
                assert stored.message_row is not None
                if attach is not None:
                    attach(r, MessageRow(stored.message_row))
                return r.messages.get(stored.message_row)

            added = await ctx.store.run(unit)
        ctx.emit(MessageAdded(added))
        ctx.wake()
        if added.expires_at is not None:
            self._expiry.soon()
        return added

    async def retry(self, message_row: int) -> Message:
        """Send a failed message again under the current session (a fresh ciphertext)."""
        ctx = self._ctx
        async with ctx.lock:

            def load(r: Repos) -> tuple[Message, Contact | None, list[TheirMailbox], bytes | None]:
                message = r.messages.get(message_row)
                cid = message.contact_id
                return (
                    message,
                    contact_or_none(r, cid),
                    r.mailboxes.list_theirs(cid),
                    r.sessions.load(cid),
                )

            try:
                message, contact, theirs, blob = await ctx.store.read(load)
            except NotFound:
                raise UserError("no such message") from None
            if (
                message.direction is not Direction.OUTGOING
                or message.status is not Status.FAILED
                or message.deleted
            ):
                raise UserError("only a message that failed can be sent again")
            if contact is None:
                raise UnknownContact("no such contact")
            check_can_send(contact)
            if not theirs:
                raise UserError("this contact has no mailbox to write to yet")
            if blob is None:
                raise UserError("no session with this contact")
            offer = None if message.file is None else await ctx.store.read(_offer_of(message))
            content: pl.Payload = pl.Chat(
                message.sender_seq,
                message.sent_at,
                message.body,
                message.reply_to,
                message.timer_s,
                offer,
            )
            if message.kind is MessageKind.TIMER:
                content = pl.Timer(message.sender_seq, message.sent_at, message.timer_s)
            session, frame = Session.from_bytes(blob).encrypt(pl.encode(content))
            now = ctx.clock()
            row = outbox_row(contact.id, OutboxKind.MESSAGE, theirs[0], frame, now)
            mid = pl.message_id(frame)

            def unit(r: Repos) -> Message:
                r.messages.requeue(message_row, mid, session.to_bytes(), row, now)
                return r.messages.get(message_row)

            updated = await ctx.store.run(unit)
        ctx.emit(MessageStatusChanged(contact.id, MessageRow(message_row), Status.QUEUED))
        ctx.wake()
        return updated

    async def mark_read(self, contact_id: int) -> int:
        """Mark the conversation read and, when enabled, tell the peer; returns how many."""
        ctx = self._ctx

        def load(r: Repos) -> tuple[Contact | None, list[Message]]:
            return contact_or_none(r, contact_id), r.messages.page(contact_id, 1)

        async with ctx.lock:
            contact, newest = await ctx.store.read(load)
            if not newest:
                return 0
            if contact is None:
                raise UnknownContact("no such contact")
            if contact.state is ContactState.REQUEST:
                return 0  # a request's messages are never marked read until it is accepted
            up_to, now = newest[0].id, ctx.clock()
            ids = await ctx.store.run(lambda r: r.messages.mark_read(contact_id, up_to, now))
            if ids:
                self._expiry.soon()  # the clocks of disappearing messages read now
            if not ids or not ctx.settings.read_receipts:
                return len(ids)

            def channel(r: Repos) -> tuple[bytes | None, list[TheirMailbox]]:
                return r.sessions.load(contact_id), r.mailboxes.list_theirs(contact_id)

            blob, theirs = await ctx.store.read(channel)
            if blob is None or not theirs:
                return len(ids)
            session = Session.from_bytes(blob)
            for start in range(0, len(ids), pl.MAX_RECEIPT_IDS):
                chunk = tuple(ids[start : start + pl.MAX_RECEIPT_IDS])
                session = await self.commit_receipt(contact_id, session, chunk, True, theirs[0])
            return len(ids)

    # -- what comes back (called by inbound, under the lock) -----------------------------

    async def take_chat(
        self,
        contact_id: int,
        session: Session,
        mid: WireId,
        chat: pl.Chat,
        theirs: list[TheirMailbox],
        via: bytes | None,
        *,
        attach: Callable[[Repos, MessageRow], object] | None = None,
    ) -> list[OurMailbox]:
        """Store an incoming message with its ratchet step and our receipt for it (and, for a
        file message, `attach(repos, row)` its file in the same transaction); returns
        our mailboxes the completed handshake or move retired (to unsubscribe). `via`: the
        contact mailbox of ours it came to (None: our card's). A disappearing one's clock
        starts when it is read."""
        message = NewMessage(
            contact_id,
            Direction.INCOMING,
            mid,
            chat.seq,
            chat.body,
            chat.sent_at,
            self._ctx.clock(),
            Status.DELIVERED,
            reply_to=chat.reply_to,
            timer_s=chat.timer_s,
        )
        return await self.take_message(contact_id, session, message, theirs, via, attach=attach)

    async def take_message(
        self,
        contact_id: int,
        session: Session,
        message: NewMessage,
        theirs: list[TheirMailbox],
        via: bytes | None,
        also: Callable[[Repos], None] | None = None,
        *,
        attach: Callable[[Repos, MessageRow], object] | None = None,
    ) -> list[OurMailbox]:
        """Store an incoming conversation row (a message or a notice) with its ratchet step
        (and `also(repos)` and `attach(repos, row)`, if given, in the same transaction),
        acknowledge it, and tell the front ends; returns the mailboxes retired, as
        `take_chat`."""
        ctx = self._ctx
        now = ctx.clock()

        def unit(r: Repos) -> tuple[Message | None, list[OurMailbox]]:
            retired = [] if via is None else _handshake_done(r, contact_id, via)
            stored = r.messages.store_incoming(message, session.to_bytes(), None, now)
            if stored.duplicate or stored.message_row is None:
                return None, retired
            if also is not None:
                also(r)
            if attach is not None:
                attach(r, MessageRow(stored.message_row))
            return r.messages.get(stored.message_row), retired

        added, retired = await ctx.store.run(unit)
        if theirs:
            self.acknowledge(contact_id, message.msg_id)
        if added is not None:
            counted = self._usage.get(contact_id)
            if counted is not None:
                self._usage[contact_id] = (counted[0], counted[1] + len(message.body.encode()))
            ctx.emit(MessageAdded(added))
        return retired

    # -- receipts, in batches ------------------------------------------------------------

    def acknowledge(self, contact_id: int, mid: bytes) -> None:
        """Say "delivered" for this message of the contact's, with others in one frame soon."""
        self._to_acknowledge.setdefault(contact_id, {})[mid] = None
        if contact_id not in self._flushing:
            loop = asyncio.get_running_loop()
            self._flushing[contact_id] = loop.call_later(
                RECEIPT_DELAY_S, self._spawn_flush, contact_id
            )

    def _spawn_flush(self, contact_id: int) -> None:
        task = asyncio.get_running_loop().create_task(self._flush(contact_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _flush(self, contact_id: int) -> None:
        ctx = self._ctx
        async with ctx.lock:
            self._flushing.pop(contact_id, None)
            ids = tuple(self._to_acknowledge.pop(contact_id, {}))
            if not ids:
                return

            def channel(r: Repos) -> tuple[bytes | None, list[TheirMailbox]]:
                return r.sessions.load(contact_id), r.mailboxes.list_theirs(contact_id)

            blob, theirs = await ctx.store.read(channel)
            if blob is None or not theirs:
                return
            session = Session.from_bytes(blob)
            for start in range(0, len(ids), pl.MAX_RECEIPT_IDS):
                chunk = ids[start : start + pl.MAX_RECEIPT_IDS]
                session = await self.commit_receipt(contact_id, session, chunk, False, theirs[0])

    async def flush_receipts(self) -> None:
        """Store the receipts still gathering now (they go out with the outbox)."""
        for handle in self._flushing.values():
            handle.cancel()
        for contact_id in list(self._flushing):
            await self._flush(contact_id)
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # -- the storage quota ---------------------------------------------------------------

    async def within_quota(self, contact_id: int, body: str) -> bool:
        """Whether one more message of this size from the contact fits its quota; the first
        time it does not, the front ends are told (once, until it fits again)."""
        ctx = self._ctx
        quota = ctx.settings.quota_mb * 1_000_000
        now = time.monotonic()
        counted = self._usage.get(contact_id)
        if counted is None or now - counted[0] > USAGE_FRESH_S:
            used = await ctx.store.read(lambda r: r.messages.incoming_bytes(contact_id))
            counted = self._usage[contact_id] = (now, used)
        if counted[1] + len(body.encode()) <= quota:
            self._over_quota.discard(contact_id)
            return True
        ctx.rejections.count(Rejection.QUOTA)
        if contact_id not in self._over_quota:
            self._over_quota.add(contact_id)
            ctx.emit(ContactLimited(contact_id, Limit.QUOTA, quota))
        return False

    async def take_receipt(
        self,
        contact_id: int,
        session: Session,
        ids: tuple[bytes, ...],
        read: bool,
        via: bytes | None,
    ) -> list[OurMailbox]:
        """The peer has (or has read) these messages of ours: raise their status; returns
        our mailboxes the completed handshake or move retired (to unsubscribe)."""
        ctx = self._ctx
        status = Status.READ if read else Status.DELIVERED
        now = ctx.clock()

        def unit(r: Repos) -> tuple[list[Message], list[OurMailbox]]:
            retired = step_taken(r, contact_id, session, via, now)
            r.messages.acknowledge(contact_id, ids, status, now)
            found = [r.messages.find(contact_id, Direction.OUTGOING, i) for i in ids]
            if self.group_receipts is not None and not read:
                found += [r.messages.get(m) for m in self.group_receipts(r, contact_id, ids, now)]
            return [m for m in found if m is not None], retired

        changed, retired = await ctx.store.run(unit)
        for message in changed:
            ctx.emit(MessageStatusChanged(message.contact_id, message.id, message.status))
        return retired

    async def commit_receipt(
        self,
        contact_id: int,
        session: Session,
        ids: tuple[bytes, ...],
        read: bool,
        dest: TheirMailbox,
    ) -> Session:
        """A receipt on its own (a duplicate's re-ack, read receipts): session + outbox."""
        ctx = self._ctx
        session, frame = session.encrypt(pl.encode(pl.Receipt(read, ids)))
        now = ctx.clock()
        row = outbox_row(contact_id, OutboxKind.RECEIPT, dest, frame, now)

        def unit(r: Repos) -> None:
            r.sessions.save(contact_id, session.to_bytes(), now)
            r.outbox.add(row)

        await ctx.store.run(unit)
        ctx.wake()
        return session
