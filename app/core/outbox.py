"""Sending what the outbox holds: in order per mailbox, again until the peer's receipt.

Every ciphertext is stored before it is sent (see messaging and handshakes); this pump only
moves stored rows to the relay and records the outcome. A message becomes "sent" when the
relay took it, "failed" when the relay refused it for good; anything else (relay away, nobody
listening) waits for the way to open (`Routing` reschedules it) or for a later try.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from app.core.context import Context
from app.core.events import MessageStatusChanged
from app.core.routing import Destination, Routing
from app.domain.messages import MessageRow, Status
from app.net.errors import PayloadTooLarge, RelayRefused, RelayUnavailable
from app.store.errors import NotFound
from app.store.records import NewOutbox, OutboxItem, OutboxKind, TheirMailbox
from app.store.repos import Repos

log = logging.getLogger(__name__)

RESEND_AFTER_MS = 15_000  # a forwarded message with no receipt yet goes out again after this
MAX_RESEND_MS = 300_000
UNREACHABLE_RETRY_MS = 30_000  # fallback when the relay or the peer's mailbox is away
BATCH = 200
COALESCE_S = 0.003  # a woken outbox waits this long, so a burst goes out (and is marked) as one


def outbox_row(
    contact_id: int, kind: OutboxKind, dest: TheirMailbox, frame: bytes, now: int
) -> NewOutbox:
    """A frame to send now (and again until acknowledged) to a contact's mailbox (through
    its relay, or a fallback of the mailbox's while that one is away)."""
    return NewOutbox(contact_id, kind, dest.id, dest.relay_url, frame, now, now)


class Outbox:
    """The pump: `run()` until `stop()`; `ctx.wake()` (the event given here) sends now."""

    def __init__(self, ctx: Context, routing: Routing, woken: asyncio.Event) -> None:
        self._ctx = ctx
        self._routing = routing
        self._woken = woken
        self._stopping = False

    def stop(self) -> None:
        self._stopping = True
        self._woken.set()

    async def run(self) -> None:
        ctx = self._ctx
        while not self._stopping:
            self._woken.clear()
            try:
                while not self._stopping and await self.drain():
                    pass
                next_due = await ctx.store.read(lambda r: r.outbox.next_due())
            except Exception:
                log.exception("the outbox pump failed; trying again shortly")
                next_due = ctx.clock() + UNREACHABLE_RETRY_MS
            timeout = None if next_due is None else max(0.0, (next_due - ctx.clock()) / 1000)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._woken.wait()
                    await asyncio.sleep(COALESCE_S)

    async def drain(self) -> bool:
        """Send what is due, in order per destination; True when more may be due.

        The sends are pipelined (the link writes them in call order) and their outcomes are
        recorded in one transaction, so a burst costs one round trip, not one per message.
        """
        ctx, routing = self._ctx, self._routing
        now = ctx.clock()
        items = await ctx.store.read(lambda r: r.outbox.due(now, BATCH))
        via = {
            i.id: routing.route((i.relay_url, i.mailbox_id), i.contact_id) for i in items
        }  # the relay itself, or a fallback while it is away
        ready = [i for i in items if not routing.is_offline((via[i.id], i.mailbox_id))]
        postponed = [i for i in items if routing.is_offline((via[i.id], i.mailbox_id))]
        results = await asyncio.gather(
            *(
                routing.pool.send(
                    via[i.id], i.mailbox_id, i.ciphertext, lane=routing.lane(i.contact_id)
                )
                for i in ready
            ),
            return_exceptions=True,
        )
        sent: list[OutboxItem] = []
        failed: list[OutboxItem] = []
        went_offline: dict[Destination, int] = {}
        for item, result in zip(ready, results, strict=True):
            if isinstance(result, (RelayRefused, PayloadTooLarge)):
                failed.append(item)
            elif isinstance(result, BaseException):
                if not isinstance(result, RelayUnavailable):
                    log.error("sending failed unexpectedly", exc_info=result)
                postponed.append(item)
            elif result == 0:
                went_offline[(via[item.id], item.mailbox_id)] = item.contact_id
                postponed.append(item)
            else:
                sent.append(item)
        done = ctx.clock()
        later = done + UNREACHABLE_RETRY_MS

        def record(r: Repos) -> list[tuple[int, MessageRow]]:
            newly_sent = []
            for item in sent:
                backoff = min(RESEND_AFTER_MS * 2 ** min(item.attempts, 8), MAX_RESEND_MS)
                conversation = _mark_sent(r, item, done + backoff)
                if conversation is not None and item.message_row is not None:
                    newly_sent.append((conversation, item.message_row))
            for item in failed:
                with contextlib.suppress(NotFound):  # acknowledged while the relay refused it
                    r.outbox.fail(item.id)
            for item in postponed:
                with contextlib.suppress(NotFound):  # acknowledged in the meantime
                    r.outbox.retry_later(item.id, later)
            return newly_sent

        if sent or failed or postponed:
            for conversation, message_row in await ctx.store.run(record):
                ctx.emit(MessageStatusChanged(conversation, message_row, Status.SENT))
            for item in failed:
                if item.message_row is not None:
                    ctx.emit(MessageStatusChanged(item.contact_id, item.message_row, Status.FAILED))
        for dest, contact_id in went_offline.items():
            await routing.went_offline(dest, contact_id)
        return len(items) == BATCH and len(postponed) < len(items)


def _mark_sent(r: Repos, item: OutboxItem, next_try: int) -> int | None:
    """Record that the relay forwarded an item; when its message just became "sent", the
    conversation it is in (a group's, for a copy to one member)."""
    try:
        before = None if item.message_row is None else r.messages.get(item.message_row)
        r.outbox.sent(item.id, next_try)
    except NotFound:  # the receipt (or the welcome) came back first, or the message is gone
        return None
    return before.contact_id if before is not None and before.status is Status.QUEUED else None
