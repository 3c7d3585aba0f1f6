"""What a conversation does besides new messages: edit, delete (for me or for everyone),
react, set the disappearing-messages timer, and the same arriving from the contact.

An edit, a deletion for everyone and a reaction are updates: a payload naming a message by its
wire id, stored with its ratchet step in the outbox as a control frame and resent until the
contact's receipt names it. The contact's client applies each once (it remembers what it
applied), and only within the rules: an edit or a deletion only of the sender's own messages
(a deletion only within DELETE_FOR_EVERYONE_MS of sending), a reaction to any message, the
latest of each winning; an update of a message it does not have is dropped. A timer change is
a conversation row of its own (a notice both sides see) and travels as a message does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from app.core import payload as pl
from app.core.context import Context
from app.core.errors import UnknownContact, UserError
from app.core.events import ContactChanged, MessageChanged, MessagesRemoved
from app.core.messaging import (
    Messaging,
    check_can_send,
    check_text,
    contact_or_none,
    step_taken,
)
from app.core.outbox import outbox_row
from app.crypto.ratchet import Session
from app.domain.contacts import Contact
from app.domain.messages import (
    DELETE_FOR_EVERYONE_MS,
    MAX_TIMER_S,
    Direction,
    Message,
    MessageKind,
    Status,
    WireId,
)
from app.store.errors import NotFound
from app.store.records import NewMessage, OurMailbox, OutboxKind, TheirMailbox
from app.store.repos import Repos

CLOCK_SKEW_MS = 5 * 60 * 1000  # a deletion may claim to be this much older than its message

_Apply = Callable[[Repos], object]  # an update's change here, inside its unit


class Conversation:
    def __init__(self, ctx: Context, messaging: Messaging) -> None:
        self._ctx = ctx
        self._messaging = messaging

    # -- ours ----------------------------------------------------------------------------

    async def edit(self, message_row: int, text: str) -> Message:
        """Our message now reads `text`, here and (soon) at the contact's."""
        check_text(text)
        message = await self._ours(message_row, "edit")
        at = max(self._ctx.clock(), (message.edited_at or message.sent_at) + 1)
        return await self._update(
            message,
            pl.Edit(message.msg_id, at, text),
            lambda r: r.conversation.edit(message.id, text, at),
        )

    async def delete(self, message_row: int, for_everyone: bool = False) -> Message | None:
        """Delete a message for us (any message: gone with its reactions, and not sent if it
        was still waiting), or for everyone (ours only, within DELETE_FOR_EVERYONE_MS: the
        text goes on both sides, the row says it was deleted). Returns the row as it is now
        (None: gone)."""
        if not for_everyone:
            message = await self._message(message_row)
            async with self._ctx.lock:
                await self._ctx.store.run(lambda r: r.conversation.delete([message.id]))
            self._ctx.emit(MessagesRemoved(message.contact_id, (message.id,)))
            return None
        message = await self._ours(message_row, "delete for everyone")
        now = self._ctx.clock()
        if now - message.sent_at > DELETE_FOR_EVERYONE_MS:
            raise UserError("a message can be deleted for everyone only within 24 hours")
        return await self._update(
            message,
            pl.Delete(message.msg_id, now),
            lambda r: r.conversation.delete_for_everyone(message.id),
        )

    async def react(self, message_row: int, emoji: str) -> Message:
        """Our reaction to a message of either side ("" takes it back); one per message."""
        if not pl.valid_reaction(emoji):
            raise UserError("a reaction is one emoji")
        message = await self._message(message_row)
        if not message.is_text:
            raise UserError("only a message can have reactions")
        now = self._ctx.clock()
        return await self._update(
            message,
            pl.React(message.msg_id, now, emoji),
            lambda r: r.conversation.react(message.id, True, emoji, now),
        )

    async def set_timer(self, contact_id: int, seconds: int) -> Message | None:
        """Set the conversation's disappearing-messages timer (0: off) for both sides: a
        notice in the conversation says who set what. None when it was already so."""
        if not 0 <= seconds <= MAX_TIMER_S:
            raise UserError(f"a timer is off or 1 to {MAX_TIMER_S} seconds")
        contact = await self._contact(contact_id)
        if contact.timer_s == seconds:
            return None

        def compose(contact: Contact, seq: int, now: int) -> tuple[pl.Payload, NewMessage]:
            row = NewMessage(
                contact_id,
                Direction.OUTGOING,
                b"",
                seq,
                "",
                now,
                None,
                Status.QUEUED,
                True,
                kind=MessageKind.TIMER,
                timer_s=seconds,
            )
            return pl.Timer(seq, now, seconds), row

        def also(r: Repos, now: int) -> None:
            r.contacts.set_timer(contact_id, seconds, now)

        notice = await self._messaging.send_row(contact_id, compose, also)
        self._ctx.emit(ContactChanged(await self._contact(contact_id)))
        return notice

    async def _message(self, message_row: int) -> Message:
        try:
            return await self._ctx.store.read(lambda r: r.messages.get(message_row))
        except NotFound:
            raise UserError("no such message") from None

    async def _ours(self, message_row: int, what: str) -> Message:
        message = await self._message(message_row)
        if message.direction is not Direction.OUTGOING or not message.is_text:
            raise UserError(f"you can only {what} a message you wrote")
        return message

    async def _contact(self, contact_id: int) -> Contact:
        found = await self._ctx.store.read(lambda r: contact_or_none(r, contact_id))
        if found is None:
            raise UnknownContact("no such contact")
        return found

    async def _update(self, message: Message, update: pl.Update, apply: _Apply) -> Message:
        """Apply an update here and queue it for the contact, with its ratchet step, in one
        unit; resent until the contact's receipt names it."""
        ctx, contact_id = self._ctx, message.contact_id

        def load(r: Repos) -> tuple[Contact | None, list[TheirMailbox], bytes | None]:
            theirs = r.mailboxes.list_theirs(contact_id)
            return contact_or_none(r, contact_id), theirs, r.sessions.load(contact_id)

        async with ctx.lock:
            contact, theirs, blob = await ctx.store.read(load)
            if contact is None:
                raise UnknownContact("no such contact")
            check_can_send(contact)
            if not theirs or blob is None:
                raise UserError("no session with this contact yet")
            session, frame = Session.from_bytes(blob).encrypt(pl.encode(update))
            now = ctx.clock()
            row = replace(
                outbox_row(contact_id, OutboxKind.CONTROL, theirs[0], frame, now),
                frame_id=pl.message_id(frame),
            )

            def unit(r: Repos) -> Message:
                apply(r)
                r.sessions.save(contact_id, session.to_bytes(), now)
                r.outbox.add(row)
                return r.messages.get(message.id)

            changed = await ctx.store.run(unit)
        ctx.emit(MessageChanged(changed))
        ctx.wake()
        return changed

    # -- the contact's (called by inbound, under the lock) -----------------------------------

    async def take_update(
        self,
        contact_id: int,
        session: Session,
        mid: WireId,
        update: pl.Update,
        theirs: list[TheirMailbox],
        via: bytes | None,
    ) -> list[OurMailbox]:
        """Apply the contact's edit, deletion or reaction (once, within the rules) with its
        ratchet step, and acknowledge it; returns the mailboxes retired, as `take_chat`."""
        ctx = self._ctx
        now = ctx.clock()

        def unit(r: Repos) -> tuple[Message | None, list[OurMailbox]]:
            retired = step_taken(r, contact_id, session, via, now)
            if not r.conversation.remember(contact_id, mid, now):
                return None, retired  # applied already: a resend
            changed = _apply_theirs(r, contact_id, update)
            return (None if changed is None else r.messages.get(changed)), retired

        changed, retired = await ctx.store.run(unit)
        if theirs:
            self._messaging.acknowledge(contact_id, mid)
        if changed is not None:
            ctx.emit(MessageChanged(changed))
        return retired

    async def take_timer(
        self,
        contact_id: int,
        session: Session,
        mid: WireId,
        timer: pl.Timer,
        theirs: list[TheirMailbox],
        via: bytes | None,
    ) -> list[OurMailbox]:
        """The contact set the conversation's timer: a notice, and the timer (unless we set
        it later ourselves)."""
        notice = NewMessage(
            contact_id,
            Direction.INCOMING,
            mid,
            timer.seq,
            "",
            timer.sent_at,
            self._ctx.clock(),
            Status.DELIVERED,
            True,
            kind=MessageKind.TIMER,
            timer_s=timer.timer_s,
        )

        def also(r: Repos) -> None:
            r.contacts.set_timer(contact_id, timer.timer_s, timer.sent_at)

        retired = await self._messaging.take_message(contact_id, session, notice, theirs, via, also)
        contact = await self._ctx.store.read(lambda r: contact_or_none(r, contact_id))
        if contact is not None:
            self._ctx.emit(ContactChanged(contact))
        return retired

    async def take_unknown(
        self,
        contact_id: int,
        session: Session,
        mid: WireId,
        theirs: list[TheirMailbox],
        via: bytes | None,
    ) -> list[OurMailbox]:
        """Something from a newer version: acknowledged (so it is not sent again), and shown
        as a neutral line in the conversation, once for a run of them (a contact's client
        cannot fill the conversation with such lines)."""
        ctx = self._ctx
        now = ctx.clock()

        def repeat(r: Repos) -> bool:
            newest = r.messages.page(contact_id, 1)
            return bool(newest) and newest[0].kind is MessageKind.UNSUPPORTED

        if await ctx.store.read(repeat):

            def step(r: Repos) -> list[OurMailbox]:
                r.conversation.remember(contact_id, mid, now)  # a resend is acknowledged again
                return step_taken(r, contact_id, session, via, now)

            retired = await ctx.store.run(step)
            if theirs:
                self._messaging.acknowledge(contact_id, mid)
            return retired
        notice = NewMessage(
            contact_id,
            Direction.INCOMING,
            mid,
            0,
            "",
            now,
            now,
            Status.DELIVERED,
            True,
            kind=MessageKind.UNSUPPORTED,
        )
        return await self._messaging.take_message(contact_id, session, notice, theirs, via)


def _apply_theirs(r: Repos, contact_id: int, update: pl.Update) -> int | None:
    """The row an update of the contact's changed, or None when it changed nothing (a message
    we do not have, not theirs to change, too old to delete, or already newer)."""
    match update:
        case pl.Edit(ref, at, body):
            target = r.conversation.find_text(contact_id, ref, Direction.INCOMING)
            if target is not None and r.conversation.edit(target.id, body, at):
                return target.id
        case pl.Delete(ref, at):
            target = r.conversation.find_text(contact_id, ref, Direction.INCOMING)
            if (
                target is not None
                and target.sent_at - CLOCK_SKEW_MS <= at <= target.sent_at + DELETE_FOR_EVERYONE_MS
                and r.conversation.delete_for_everyone(target.id)
            ):
                return target.id
        case pl.React(ref, at, emoji):
            target = r.conversation.find_text(contact_id, ref)
            if target is not None and r.conversation.react(target.id, False, emoji, at):
                return target.id
    return None
