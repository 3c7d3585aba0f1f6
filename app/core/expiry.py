"""Disappearing messages running out: deleted from the store (and so from the search index
and the outbox) when their time comes, checked when the profile opens and then on a timer set
for the next one due. The front ends hear `MessagesRemoved`.

A message's clock starts when it is sent (ours) or read (theirs); messaging sets its
`expires_at` and calls `soon()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from app.core.context import Context
from app.core.events import MessagesRemoved
from app.domain.messages import MessageRow
from app.store.repos import Repos

log = logging.getLogger(__name__)

MAX_SLEEP_S = 3600.0  # the timer is set again at least this often (the clock may be changed)
APPLIED_KEPT_MS = 30 * 24 * 3600 * 1000  # how long an applied update's id is remembered


class Expiry:
    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self._running = False

    async def sweep(self) -> int:
        """Delete what ran out now; returns how many. Sets the timer for the next one."""
        ctx = self._ctx
        now = ctx.clock()

        def unit(r: Repos) -> tuple[list[tuple[int, MessageRow]], int | None]:
            gone = r.conversation.expire(now)
            r.conversation.forget_applied(now - APPLIED_KEPT_MS)
            return gone, r.conversation.next_expiry()

        async with ctx.lock:
            gone, due = await ctx.store.run(unit)
        by_contact: dict[int, list[MessageRow]] = {}
        for contact_id, row in gone:
            by_contact.setdefault(contact_id, []).append(row)
        for contact_id, rows in by_contact.items():
            ctx.emit(MessagesRemoved(contact_id, tuple(rows)))
        self._set(due)
        return len(gone)

    def start(self) -> None:
        """Run the timer from now on (the engine is started)."""
        self._running = True
        self.soon()

    def stop(self) -> None:
        self._running = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def drain(self) -> None:
        """Wait for a sweep under way (closing)."""
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task

    def soon(self) -> None:
        """A message's clock started: sweep now, which sets the timer for the next one due."""
        if not self._running or (self._task is not None and not self._task.done()):
            return
        self._task = asyncio.get_running_loop().create_task(self._sweep_logged())

    async def _sweep_logged(self) -> None:
        try:
            await self.sweep()
        except Exception:
            log.exception("deleting disappearing messages failed")

    def _set(self, due: int | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._running or due is None:
            return
        delay = min(max(0.0, (due - self._ctx.clock()) / 1000), MAX_SLEEP_S)
        self._timer = asyncio.get_running_loop().call_later(delay, self.soon)
