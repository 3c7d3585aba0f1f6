"""What every use case works with: the profile's store and identity, the clock, where events
go, how the outbox is woken, the profile's settings, and the one lock over session state.

The engine builds one `Context` and hands it to each use case; no use case reaches into
another one or into the engine.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from app.core.events import Event, FrameRejected, Rejection
from app.core.profile import (
    SETTING_ISOLATION,
    SETTING_PROXY,
    SETTING_READ_RECEIPTS,
    SETTING_RELAY,
)
from app.crypto.identity import Identity
from app.crypto.ratchet import Session
from app.store.repos import Repos
from app.store.store import Store

REJECTED_PREFIX = "rejected."  # settings that count dropped frames by kind


@dataclass(slots=True)
class Settings:
    """The profile's settings the use cases read on every step (kept in memory, written
    through to the store by the account use case)."""

    name: str = ""
    relay_url: str = ""
    read_receipts: bool = True
    proxy: str = ""  # socks5h://host:port every relay connection goes through, or none
    isolation: str = ""  # which connections carry what (routing.Isolation); "" the default


class Rejections:
    """How many frames were dropped, by kind: counted in memory, added to the profile's
    totals now and then (a flood of bad frames costs no transaction each)."""

    def __init__(self) -> None:
        self._pending: Counter[Rejection] = Counter()

    def count(self, kind: Rejection) -> None:
        self._pending[kind] += 1

    async def flush(self, store: Store) -> None:
        counts, self._pending = self._pending, Counter()
        if not counts:
            return

        def unit(r: Repos) -> None:
            for kind, n in counts.items():
                key = REJECTED_PREFIX + kind.value
                r.settings.set(key, str(int(r.settings.get(key) or 0) + n))

        await store.run(unit)

    async def totals(self, store: Store) -> dict[str, int]:
        """Over the profile's life."""
        await self.flush(store)
        stored = await store.read(lambda r: r.settings.all())
        return {
            k[len(REJECTED_PREFIX) :]: int(v)
            for k, v in stored.items()
            if k.startswith(REJECTED_PREFIX)
        }


@dataclass(frozen=True, slots=True)
class Context:
    store: Store
    identity: Identity
    clock: Callable[[], int]  # now, in ms
    emit: Callable[[Event], None]  # to the front ends
    wake: Callable[[], None]  # the outbox has something new
    settings: Settings = field(default_factory=Settings)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one session change at a time
    rejections: Rejections = field(default_factory=Rejections)

    async def load_settings(self) -> None:
        me = await self.store.identity()
        stored = await self.store.read(lambda r: r.settings.all())
        self.settings.name = me.display_name if me else ""
        self.settings.relay_url = stored.get(SETTING_RELAY, "")
        self.settings.read_receipts = stored.get(SETTING_READ_RECEIPTS, "1") == "1"
        self.settings.proxy = stored.get(SETTING_PROXY, "")
        self.settings.isolation = stored.get(SETTING_ISOLATION, "")

    def reject(self, reason: str, kind: Rejection) -> None:
        """Something that arrived was dropped: tell the front ends and count it by kind."""
        self.rejections.count(kind)
        self.emit(FrameRejected(reason, kind))

    async def keep_step_and_reject(
        self, contact_id: int, session: Session, reason: str, kind: Rejection
    ) -> None:
        """An authentic frame whose content we drop: its ratchet step is kept, so the
        conversation stays in step, and nothing else changes."""
        state, now = session.to_bytes(), self.clock()
        await self.store.run(lambda r: r.sessions.save(contact_id, state, now))
        self.reject(reason, kind)
