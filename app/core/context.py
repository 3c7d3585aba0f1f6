"""What every use case works with: the profile's store and identity, the clock, where events
go, how the outbox is woken, the profile's settings, and the one lock over session state.

The engine builds one `Context` and hands it to each use case; no use case reaches into
another one or into the engine.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from app.core.events import Event, FrameRejected, Rejection
from app.core.intake import Bucket
from app.core.profile import (
    MUTED_PREFIX,
    SETTING_AUTO_DOWNLOAD,
    SETTING_FALLBACKS,
    SETTING_ISOLATION,
    SETTING_PROXY,
    SETTING_QUOTA,
    SETTING_READ_RECEIPTS,
    SETTING_RELAY,
    SETTING_RELAY_MODE,
    RelayMode,
    relay_mode_of,
)
from app.crypto.identity import Identity
from app.crypto.ratchet import Session
from app.domain.files import DEFAULT_AUTO_DOWNLOAD_MB
from app.store.repos import Repos
from app.store.store import Store

REJECTED_PREFIX = "rejected."  # settings that count dropped frames by kind
# Each kind of rejection is told to the front ends at most this often (all are counted).
TOLD_RATE = 5.0
TOLD_BURST = 20.0
DEFAULT_QUOTA_MB = 64


@dataclass(slots=True)
class Settings:
    """The profile's settings the use cases read on every step (kept in memory, written
    through to the store by the account use case)."""

    name: str = ""
    relay_url: str = ""
    fallbacks: tuple[str, ...] = ()  # our relays after relay_url, in the order to try them
    relay_mode: RelayMode = RelayMode.URL
    read_receipts: bool = True
    proxy: str = ""  # socks5h://host:port every relay connection goes through, or none
    isolation: str = ""  # which connections carry what (routing.Isolation); "" the default
    quota_mb: int = DEFAULT_QUOTA_MB  # what one contact's messages may take in the store
    auto_download_mb: int = DEFAULT_AUTO_DOWNLOAD_MB  # files fetched without asking, up to
    muted: set[int] = field(default_factory=set)  # contacts whose notifications are silenced

    @property
    def relays(self) -> tuple[str, ...]:
        """Where our mailboxes listen: the relay, then its fallbacks."""
        return (self.relay_url, *self.fallbacks)


class Rejections:
    """How many frames were dropped, by kind: counted in memory, added to the profile's
    totals now and then (a flood of bad frames costs no transaction each)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._pending: Counter[Rejection] = Counter()
        self._told: dict[Rejection, Bucket] = {}
        self._clock = clock
        self.total = 0  # over this run, every kind

    def count(self, kind: Rejection) -> None:
        self._pending[kind] += 1
        self.total += 1

    def may_tell(self, kind: Rejection) -> bool:
        """Whether the front ends hear of one more of this kind now: what anyone can send
        unauthenticated is counted in full and told in part (an authentic frame comes from a
        contact, whose messages have a budget of their own)."""
        if kind in (Rejection.PAYLOAD, Rejection.WELCOME):
            return True
        now = self._clock()
        bucket = self._told.get(kind)
        if bucket is None:
            bucket = self._told[kind] = Bucket.full(TOLD_RATE, TOLD_BURST, now)
        return bucket.take(now)

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
        self.settings.fallbacks = tuple(stored.get(SETTING_FALLBACKS, "").split())
        self.settings.relay_mode = relay_mode_of(
            stored.get(SETTING_RELAY_MODE, ""), self.settings.relay_url
        )
        self.settings.read_receipts = stored.get(SETTING_READ_RECEIPTS, "1") == "1"
        self.settings.proxy = stored.get(SETTING_PROXY, "")
        self.settings.isolation = stored.get(SETTING_ISOLATION, "")
        self.settings.quota_mb = int(stored.get(SETTING_QUOTA, DEFAULT_QUOTA_MB))
        self.settings.auto_download_mb = int(
            stored.get(SETTING_AUTO_DOWNLOAD, DEFAULT_AUTO_DOWNLOAD_MB)
        )
        self.settings.muted = {
            int(k[len(MUTED_PREFIX) :])
            for k in stored
            if k.startswith(MUTED_PREFIX) and k[len(MUTED_PREFIX) :].isdigit()
        }

    def reject(self, reason: str, kind: Rejection) -> None:
        """Something that arrived was dropped: count it by kind and tell the front ends (a
        few a second at most)."""
        self.rejections.count(kind)
        if self.rejections.may_tell(kind):
            self.emit(FrameRejected(reason, kind))

    async def keep_step_and_reject(
        self, contact_id: int, session: Session, reason: str, kind: Rejection
    ) -> None:
        """An authentic frame whose content we drop: its ratchet step is kept, so the
        conversation stays in step, and nothing else changes."""
        state, now = session.to_bytes(), self.clock()
        await self.store.run(lambda r: r.sessions.save(contact_id, state, now))
        self.reject(reason, kind)
