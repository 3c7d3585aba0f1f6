"""Which mailboxes we listen on and whose we watch: the engine's view of the relays.

Which connection carries what is the isolation setting: a relay ties together whatever one
connection subscribes, watches and sends to. `per-contact` gives the card's mailboxes a
connection of their own and each contact one of its own; `card-apart` keeps only the card
apart (all contacts share); `shared` uses one connection per relay. A relay takes at most
MAX_SUBSCRIPTIONS of our mailboxes on one connection, so contacts that share spread over as
many connections as they need, CONTACTS_PER_CONNECTION each. Without a proxy the relay sees
one network address for all of them anyway, so `card-apart` is the default; with a proxy the
default is `per-contact`.

Our mailboxes are subscribed on their relays (the card's invitation mailbox and one per
contact); each contact's newest mailbox is watched, which tells us whether they are online and
when what waits for them may go. A contact's own mailboxes never change once made (they are
only dropped), so the mailbox-to-contact lookup is cached here; `drop_mailboxes` and
`forget_contact` are the only ways out of the cache.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from enum import StrEnum

from app.core.context import Context
from app.core.events import (
    ConnectionChanged,
    ConnectionState,
    PresenceChanged,
    Rejection,
    RouteChanged,
)
from app.crypto.handshake import Invitation
from app.crypto.mailbox import MailboxKey
from app.domain.contacts import TALKED_TO
from app.net import events as net
from app.net.errors import NetError
from app.net.pool import RelayPool
from app.store.records import MailboxPurpose, OurMailbox
from app.store.repos import Repos

log = logging.getLogger(__name__)

Destination = tuple[str, bytes]  # (relay URL, mailbox id)
CONTACTS_PER_CONNECTION = 48  # below the protocol's default 64 subscriptions per connection
STAGGER_S = 2.0  # per-contact connections open spread over this long
CARD_LANE = "card"


class Isolation(StrEnum):
    PER_CONTACT = "per-contact"
    CARD_APART = "card-apart"
    SHARED = "shared"


def isolation_for(chosen: str, proxy: str) -> Isolation:
    """The isolation in force: the one chosen, or by default per-contact with a proxy and
    card-apart without."""
    if chosen:
        return Isolation(chosen)
    return Isolation.PER_CONTACT if proxy else Isolation.CARD_APART


class Lanes:
    """Which connection (lane) of a relay carries a contact's mailboxes, or the card's
    (contact None). Contacts that share are packed CONTACTS_PER_CONNECTION to a lane, each
    keeping its lane for as long as it is known here."""

    def __init__(self, isolation: Isolation) -> None:
        self.isolation = isolation
        self._slot: dict[int, int] = {}
        self._filled: Counter[int] = Counter()

    def lane(self, contact_id: int | None) -> str:
        if contact_id is None:
            return "0" if self.isolation is Isolation.SHARED else CARD_LANE
        if self.isolation is Isolation.PER_CONTACT:
            return f"contact-{contact_id}"
        slot = self._slot.get(contact_id)
        if slot is None:
            slot = next(n for n in range(len(self._slot) + 1) if self._filled[n] < self._room(n))
            self._slot[contact_id] = slot
            self._filled[slot] += 1
        return str(slot)

    def _room(self, slot: int) -> int:
        # Shared: the card's mailboxes (one, two while a relay changes) ride on lane 0.
        if self.isolation is Isolation.SHARED and slot == 0:
            return CONTACTS_PER_CONNECTION - 4
        return CONTACTS_PER_CONNECTION

    def release(self, contact_id: int) -> str | None:
        """Forget a contact's lane; the lane's name when it is now empty."""
        if self.isolation is Isolation.PER_CONTACT:
            return f"contact-{contact_id}"
        slot = self._slot.pop(contact_id, None)
        if slot is None:
            return None
        self._filled[slot] -= 1
        if self._filled[slot] == 0 and not (self.isolation is Isolation.SHARED and slot == 0):
            return str(slot)
        return None


def mailbox_key(box: OurMailbox) -> MailboxKey:
    """The key that subscribes one of our mailboxes (an invitation keeps its own inside)."""
    if box.purpose is MailboxPurpose.INVITATION:
        return Invitation.from_bytes(box.private_key).mailbox
    return MailboxKey.from_bytes(box.private_key)


class Routing:
    """Subscriptions, watches and presence over one pool of relay connections."""

    def __init__(
        self,
        ctx: Context,
        deliver: Callable[[net.Delivered], None],
        room: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """`deliver` takes each frame in; `room()` returns once it may take another (the
        connections are not read meanwhile)."""
        self._ctx = ctx
        self._deliver = deliver
        self._room = room
        self._pool: RelayPool | None = None
        self._lanes = Lanes(Isolation.SHARED)
        self._shown: dict[str, ConnectionState] = {}
        self._offline: set[Destination] = set()
        self._watched: dict[Destination, int] = {}
        self._online: set[int] = set()
        self._contact_boxes: dict[bytes, OurMailbox] = {}
        self._fallbacks: dict[bytes, tuple[str, ...]] = {}  # their mailbox -> fallback relays
        self._via: dict[int, str] = {}  # contacts written to through a fallback: which one
        self._background: set[asyncio.Future[None]] = set()
        self._closing = False

    @property
    def pool(self) -> RelayPool:
        """The relay connections, made on first use with the settings of that moment (a
        changed proxy or isolation applies from the next start)."""
        if self._pool is None:
            settings = self._ctx.settings
            proxy = settings.proxy or None
            self._lanes = Lanes(isolation_for(settings.isolation, settings.proxy))
            stagger = STAGGER_S if self._lanes.isolation is Isolation.PER_CONTACT else 0.0
            self._pool = RelayPool(
                self.on_net_event, proxy=proxy, stagger=stagger, intake=self._room
            )
        return self._pool

    @property
    def isolation(self) -> Isolation:
        _ = self.pool  # the lanes are chosen with the pool
        return self._lanes.isolation

    def lane(self, contact_id: int | None) -> str:
        _ = self.pool
        return self._lanes.lane(contact_id)

    async def start(self) -> None:
        """Listen on all our mailboxes and watch every contact's (all at once: each
        connection answers for its own)."""
        ctx = self._ctx
        boxes = await ctx.store.read(lambda r: r.mailboxes.list_ours())
        await asyncio.gather(*(self.listen(b.relays, mailbox_key(b), b.contact_id) for b in boxes))
        contacts = await ctx.store.read(lambda r: r.contacts.all(kinds=TALKED_TO))
        await asyncio.gather(*(self.watch_contact(c.id) for c in contacts))

    async def close(self) -> None:
        self._closing = True
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        if self._pool is not None:
            await self._pool.close()

    # -- what the pool tells us ----------------------------------------------------------

    def on_net_event(self, event: net.NetEvent) -> None:
        ctx = self._ctx
        match event:
            case net.Delivered():
                self._deliver(event)
            case net.MailboxPresence(url, mailbox, online):
                self._presence(url, mailbox, online)
            case net.ConnectionChanged(url, state, _):
                if state is ConnectionState.ONLINE:
                    self._offline = {d for d in self._offline if d[0] != url}
                    self._reschedule_soon(url, None)
                shown = self.pool.state(url)  # the relay as a whole, over its connections
                if self._shown.get(url) is not shown:
                    self._shown[url] = shown
                    retry_in = event.retry_in if shown is state else None
                    ctx.emit(ConnectionChanged(url, shown, retry_in))
            case net.RelayRejected(_, code, _):
                ctx.reject(f"relay sent a bad frame ({code})", Rejection.RELAY)
            case net.RequestRefused(_, code, _):
                ctx.reject(f"relay refused a request ({code})", Rejection.RELAY)

    def _presence(self, url: str, mailbox: bytes, online: bool) -> None:
        contact_id = self._watched.get((url, mailbox))
        if contact_id is None:
            return
        if online:
            self._offline.discard((url, mailbox))
            self._reschedule_soon(url, mailbox)
            self._online.add(contact_id)
        else:
            self._online.discard(contact_id)
        self._ctx.emit(PresenceChanged(contact_id, online))

    def _reschedule_soon(self, url: str, mailbox: bytes | None) -> None:
        """The way to a mailbox (or a whole relay) opened: what waits for it goes now.

        Also while starting: a relay that comes online as we start gets everything that was
        waiting, whatever its timer said."""
        if self._closing:
            return
        ctx = self._ctx
        now = ctx.clock()

        behind = self.fallback_users(url) if mailbox is None else []

        async def job() -> None:
            def unit(r: Repos) -> None:
                r.outbox.reschedule(url, mailbox, now)
                for box in behind:  # what waits for a relay this one stands in for
                    r.outbox.reschedule_mailbox(box, now)

            await ctx.store.run(unit)
            ctx.wake()

        task = asyncio.ensure_future(job())
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(_log_failure)

    # -- our mailboxes -------------------------------------------------------------------

    async def listen(
        self, relays: tuple[str, ...], key: MailboxKey, contact_id: int | None
    ) -> None:
        """Subscribe one of our mailboxes (a contact's, or the card's: contact None) on its
        relay and each of its fallbacks."""
        lane = self.lane(contact_id)
        await asyncio.gather(
            *(
                self.pool.subscribe(
                    url, key.id, lambda ch: (key.public, key.sign_subscribe(ch)), lane=lane
                )
                for url in relays
            )
        )

    async def relisten_contact(self, contact_id: int) -> None:
        """Subscribe a contact's mailboxes on its own connection (after they moved to it)."""
        boxes = await self._ctx.store.read(lambda r: r.mailboxes.list_ours(contact_id=contact_id))
        for box in boxes:
            await self.listen(box.relays, mailbox_key(box), contact_id)

    def known_mailbox(self, mailbox: bytes) -> OurMailbox | None:
        """One of our contact mailboxes already looked up (no store access)."""
        return self._contact_boxes.get(mailbox)

    async def our_mailbox(self, mailbox: bytes) -> OurMailbox | None:
        """Which of our mailboxes a frame came to (None: one we no longer have)."""
        box = self._contact_boxes.get(mailbox)
        if box is None:
            box = await self._ctx.store.read(lambda r: r.mailboxes.get_ours(mailbox))
            if box is not None and box.purpose is MailboxPurpose.CONTACT:
                self._contact_boxes[box.id] = box
        return box

    async def drop_mailboxes(self, boxes: list[OurMailbox]) -> None:
        """Stop listening on mailboxes a transaction just forgot."""
        for box in boxes:
            self._contact_boxes.pop(box.id, None)
            for url in box.relays:
                with contextlib.suppress(NetError):
                    await self.pool.unsubscribe(url, box.id, lane=self.lane(box.contact_id))

    async def leave_unused(self, urls: set[str]) -> set[str]:
        """Close every connection to those of these relays nothing needs any more (no mailbox
        of ours or of a contact's, nothing waiting to go there); they are not tried again.
        Returns the relays left."""
        ctx = self._ctx
        needed = await ctx.store.read(lambda r: {u for u in urls if r.mailboxes.uses_relay(u)})
        left = urls - needed
        for url in left:
            self._watched = {d: c for d, c in self._watched.items() if d[0] != url}
            self._offline = {d for d in self._offline if d[0] != url}
            for lane in self.pool.lanes(url):
                await self.pool.release(url, lane)
            self._shown.pop(url, None)
        return left

    # -- their mailboxes -----------------------------------------------------------------

    def is_online(self, contact_id: int) -> bool:
        return contact_id in self._online

    def online(self) -> frozenset[int]:
        """The contacts whose newest mailbox has a listener now."""
        return frozenset(self._online)

    def route(self, dest: Destination, contact_id: int) -> str:
        """The relay to write to a contact's mailbox through now: its own relay while that
        one is online, else the first of its fallbacks that is (each is connected to as soon
        as the relay is away); its own relay when none is."""
        url, mailbox = dest
        fallbacks = self._fallbacks.get(mailbox)
        pool = self.pool
        via = url
        if fallbacks and pool.state(url) is not ConnectionState.ONLINE:
            lane = self.lane(contact_id)
            for fallback in fallbacks:
                if pool.state(fallback) is ConnectionState.ONLINE:
                    via = fallback
                    break
                pool.connect(fallback, lane)
        if self._via.get(contact_id, url) != via:  # said when it changes, not for every frame
            self._ctx.emit(RouteChanged(contact_id, via))
        if via == url:
            self._via.pop(contact_id, None)
        else:
            self._via[contact_id] = via
        return via

    def fallback_users(self, url: str) -> list[bytes]:
        """Their mailboxes that have this relay as a fallback."""
        return [m for m, fallbacks in self._fallbacks.items() if url in fallbacks]

    def is_offline(self, dest: Destination) -> bool:
        """The relay said nobody listens there; sends wait for its presence notice."""
        return dest in self._offline

    def connection_states(self) -> dict[str, ConnectionState]:
        return {url: self.pool.state(url) for url in self.pool.urls}

    async def watch_contact(self, contact_id: int) -> None:
        """Watch the newest of a contact's mailboxes (older ones are no longer written to)."""
        theirs = await self._ctx.store.read(lambda r: r.mailboxes.list_theirs(contact_id))
        if not theirs:
            return
        newest = theirs[0]
        for box in theirs:
            if box.fallbacks:
                self._fallbacks[box.id] = box.fallbacks
        for old in theirs[1:]:
            self._watched.pop((old.relay_url, old.id), None)
        self._watched[(newest.relay_url, newest.id)] = contact_id
        try:
            online = await self.pool.watch(newest.relay_url, [newest.id], self.lane(contact_id))
        except NetError:
            return  # the pool restores the watch when the relay comes back
        self._presence(newest.relay_url, newest.id, newest.id in online)

    async def forget_watches(self, contact_id: int) -> None:
        """The relay no longer tells us about any mailbox of this contact's (they moved)."""
        lane = self.lane(contact_id)
        for key in [k for k, v in self._watched.items() if v == contact_id]:
            del self._watched[key]
            self._offline.discard(key)
            self._fallbacks.pop(key[1], None)
            with contextlib.suppress(NetError):
                await self.pool.unwatch(key[0], [key[1]], lane)

    async def went_offline(self, dest: Destination, contact_id: int) -> None:
        """The relay found no subscriber: wait for the mailbox's presence notice."""
        self._offline.add(dest)
        self._watched.setdefault(dest, contact_id)
        with contextlib.suppress(NetError):
            online = await self.pool.watch(dest[0], [dest[1]], self.lane(contact_id))
            if dest[1] in online:
                self._offline.discard(dest)
                self._reschedule_soon(*dest)

    async def forget_contact(self, contact_id: int) -> None:
        """A contact or request is gone or lost its channels: no presence or cache of it, and
        the relay is no longer asked to tell us about its mailbox; once none of our mailboxes
        is left for it, its place on a connection is freed (and a connection left empty is
        closed)."""
        await self.forget_watches(contact_id)
        self._online.discard(contact_id)
        stale = [m for m, box in self._contact_boxes.items() if box.contact_id == contact_id]
        for mailbox in stale:
            del self._contact_boxes[mailbox]
        left = await self._ctx.store.read(lambda r: r.mailboxes.list_ours(contact_id=contact_id))
        if left:  # its channels go on (a request accepted): it keeps its connection
            return
        empty = self._lanes.release(contact_id)
        if empty is not None:  # nothing of it is left to restore: close that connection
            for url in self.pool.urls:
                await self.pool.release(url, empty)  # (nothing where it has no such lane)


def _log_failure(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("a background store update failed", exc_info=task.exception())
