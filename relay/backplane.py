"""The Redis pub/sub link between relay processes, so that several relays share routing.

Each relay keeps one RESP3 connection to Redis (relay/resp.py) and subscribes there to the
*mailbox channel* of every mailbox that has a subscriber on it, to the *presence channel* of
every mailbox one of its clients watches, to the cluster's control channel and to its own
node channel. A send is delivered locally, then PUBLISHed on the mailbox channel unless this
relay knows it is the only one holding that mailbox; PUBLISH says how many relays took it.
A relay that starts or stops holding a mailbox says so on both channels; the relays already
holding it acknowledge, so the new subscriber's ``ok`` waits until every relay will pass its
sends on. Each relay counts the node channels of the others a few times a second, so a relay
that died without a word is noticed within a fraction of a second.

Redis stores nothing for us: no key is ever written, only PUBLISH and SUBSCRIBE. Channel names
carry a keyed hash of the mailbox id, never the id (relay/cluster.py). docs/protocol.md §12
specifies all of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import partial
from typing import Any, Final

from relay.cluster import (
    MAX_SEQ,
    NODE_SIZE,
    Ack,
    BackplaneError,
    Hello,
    Holding,
    Payload,
    control_channel,
    decode_message,
    encode_message,
    encode_payload,
    mailbox_channel,
    node_channel,
    payload_head,
    presence_channel,
)
from relay.resp import RedisLink, Reply, RespError, open_link
from relay.state import Lookup, Relay

log = logging.getLogger("relay.backplane")

# Channels per SUBSCRIBE, UNSUBSCRIBE or PUBSUB NUMSUB command.
BATCH: Final = 512
# Other relays remembered at most, all counted in one command (a cluster has a handful; this
# bounds what forged hellos could make us count).
MAX_PEERS: Final = BATCH
LINK_ERRORS: Final = (RespError, OSError, TimeoutError)

SUBSCRIBE: Final = b"SUBSCRIBE"
UNSUBSCRIBE: Final = b"UNSUBSCRIBE"
PUBLISH: Final = b"PUBLISH"
NUMSUB: Final = (b"PUBSUB", b"NUMSUB")

# What a channel we subscribed to stands for.
MAILBOX, PRESENCE, CONTROL, NODE = range(4)


# ---------------------------------------------------------------------------------------------
# The link.


@dataclass(slots=True)
class BackplaneCounters:
    """Counts for /metrics, never who or what."""

    published: int = 0
    received: int = 0
    dropped: int = 0
    errors: int = 0
    links: int = 0
    relays_lost: int = 0


class _Announced:
    """A first subscriber's hold, waiting for every other relay holding the mailbox to say it
    passes sends on (or for ``deadline``)."""

    __slots__ = ("acks", "deadline", "done", "needed")

    def __init__(self, done: asyncio.Future[None], deadline: float) -> None:
        self.done = done
        self.deadline = deadline
        self.needed: int | None = None  # known once Redis answered the announcement
        self.acks = 0

    def check(self) -> bool:
        if self.needed is not None and self.acks >= self.needed and not self.done.done():
            self.done.set_result(None)
        return self.done.done()


class Backplane:
    """One relay's link to the others; implements :class:`relay.state.Remote`.

    Everything goes through one pipelined Redis connection whose replies and pushed messages
    arrive in the order Redis made them; each is handled as it arrives, so what this relay
    believes about a mailbox follows Redis's own order of events.
    """

    def __init__(
        self,
        relay: Relay,
        url: str,
        key: bytes,
        *,
        node: bytes | None = None,
        timeout: float = 5.0,
        beat: float = 0.2,
        retry_max: float = 2.0,
    ) -> None:
        self.relay = relay
        self.url = url
        self.key = key
        self.node = node or os.urandom(NODE_SIZE)
        self.timeout = timeout
        self.beat = beat
        self.retry_max = retry_max
        self.up = False
        self.counters = BackplaneCounters()
        self._link: RedisLink | None = None
        self._lost: asyncio.Future[None] | None = None
        self._head = payload_head(self.node)
        self._node_channel = node_channel(key, self.node)
        self._control = control_channel(key)
        self._channels: dict[bytes, bytes] = {}  # mailbox -> its mailbox channel, while held
        self._routes: dict[bytes, tuple[int, bytes]] = {}  # channel -> (kind, mailbox)
        self._held: set[bytes] = set()  # mailbox channels subscribed on this link
        self._watched: set[bytes] = set()  # presence channels subscribed on this link
        self._alone: set[bytes] = set()  # held here and, as Redis last said, nowhere else
        self._peers: set[bytes] = set()  # the other relays linked, as far as we heard
        self._seq = 0
        self._announced: dict[int, _Announced] = {}
        self._holding: dict[bytes, asyncio.Future[None]] = {}
        self._waiting: set[asyncio.Future[Any]] = set()  # lookups, until answered
        self._went_up = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- the state's hooks (relay.state.Remote) -----------------------------------------------

    def hold(self, mailbox: bytes) -> None:
        if self.up:
            self._hold([mailbox])

    def release(self, mailbox: bytes) -> None:
        if self.up and mailbox in self._held:
            self._release(mailbox)

    def unwatch(self, mailbox: bytes) -> None:
        if self.up and mailbox in self._watched:
            self._watched.discard(mailbox)
            channel = presence_channel(self.key, mailbox)
            self._link_or_die().subscription(
                UNSUBSCRIBE, [channel], lambda _: self._unrouted(channel, mailbox)
            )

    @property
    def peers(self) -> int:
        """How many other relays this one knows to be linked."""
        return len(self._peers)

    def shared(self, mailbox: bytes) -> bool:
        """Whether a send to ``mailbox``, which has a subscriber here, must also be published:
        unless Redis said no other relay holds it, or there is no link to publish on."""
        return self.up and mailbox not in self._alone

    # -- the driver's calls -------------------------------------------------------------------

    async def start(self) -> None:
        """Start linking; wait (at most ``timeout``) for the first link so start-up is ready."""
        self._task = asyncio.get_running_loop().create_task(self._run())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.timeout):
                await self._went_up.wait()

    async def close(self) -> None:
        """Tell the other relays what we stopped holding (bounded wait), then unlink."""
        link = self._link
        if self.up and link is not None:
            for mailbox in list(self._held):
                self._release(mailbox)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.timeout):
                    await link.call([b"PING"])
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def publish(self, mailbox: bytes, payload: bytes, done: Callable[[int], None]) -> None:
        """Publish a send to the other relays; ``done`` gets how many of them took it, once
        Redis answered (0 at once when the link is down, or when it ends first)."""
        link = self._link
        if not self.up or link is None:
            done(0)
            return
        channel = self._channels.get(mailbox) or mailbox_channel(self.key, mailbox)
        # Our own subscription, if any, was queued before this PUBLISH on the same link, so
        # Redis counts us exactly when we hold the mailbox now.
        mine = 1 if mailbox in self._held else 0
        counters = self.counters

        def took(count: Reply) -> None:
            if type(count) is int:
                counters.published += 1
                done(count - mine if count > mine else 0)
            else:
                counters.errors += 1
                done(0)

        link.command([PUBLISH, channel, encode_payload(self._head, payload)], took)

    async def lookup(self, lookup: Lookup) -> None:
        """Learn whether ``lookup.fresh`` are held elsewhere; returns when the state knows."""
        if not self.up:
            return
        future = self._watch(lookup.fresh)
        self._waiting.add(future)
        try:
            await future
        finally:
            self._waiting.discard(future)

    async def routed(self, mailbox: bytes) -> None:
        """Until every relay that holds ``mailbox`` too passes its sends on to us, so that a
        first subscriber's ``ok`` means sends on any relay reach it (bounded by ``timeout``)."""
        waiting = self._holding.get(mailbox)
        if waiting is not None:
            await asyncio.shield(waiting)

    # -- what the link does for the state -----------------------------------------------------

    def _link_or_die(self) -> RedisLink:
        assert self._link is not None
        return self._link

    def _hold(self, mailboxes: Iterable[bytes]) -> None:
        """Subscribe to the mailbox channels, then announce each hold on its two channels."""
        link = self._link_or_die()
        loop = asyncio.get_running_loop()
        fresh = [m for m in mailboxes if m not in self._held]
        for start in range(0, len(fresh), BATCH):
            chunk = fresh[start : start + BATCH]
            channels = [mailbox_channel(self.key, m) for m in chunk]
            for mailbox, channel in zip(chunk, channels, strict=True):
                self._channels[mailbox] = channel
                self._routes[channel] = (MAILBOX, mailbox)
                self._held.add(mailbox)
                self._alone.discard(mailbox)
            link.subscription(SUBSCRIBE, channels)
            for mailbox, channel in zip(chunk, channels, strict=True):
                seq = self._next_seq()
                done: asyncio.Future[None] = loop.create_future()
                self._holding[mailbox] = done
                done.add_done_callback(partial(self._routed, mailbox))
                self._announced[seq] = _Announced(done, loop.time() + self.timeout)
                note = encode_message(Holding(self.node, True, seq))
                link.command(
                    [PUBLISH, channel, note], partial(self._announce_counted, mailbox, seq)
                )
                link.command([PUBLISH, presence_channel(self.key, mailbox), note])

    def _routed(self, mailbox: bytes, done: asyncio.Future[None]) -> None:
        if self._holding.get(mailbox) is done:
            del self._holding[mailbox]

    def _announce_counted(self, mailbox: bytes, seq: int, count: Reply) -> None:
        """Redis answered a hold's announcement: ``count`` - 1 other relays hold the mailbox
        and will each acknowledge it."""
        announced = self._announced.get(seq)
        others = count - 1 if type(count) is int else 0
        if mailbox in self._held:
            if others <= 0:
                self._alone.add(mailbox)
            else:
                self._alone.discard(mailbox)
        if announced is not None:
            announced.needed = max(0, others)
            if announced.check():
                del self._announced[seq]

    def _release(self, mailbox: bytes) -> None:
        link = self._link_or_die()
        channel = self._channels.pop(mailbox, None) or mailbox_channel(self.key, mailbox)
        self._held.discard(mailbox)
        self._alone.discard(mailbox)
        # The route stays until Redis confirms: an announcement that counted us meanwhile is
        # still acknowledged, or its announcer would wait for us in vain.
        link.subscription(UNSUBSCRIBE, [channel], lambda _: self._unrouted(channel, mailbox))
        note = encode_message(Holding(self.node, False, self._next_seq()))
        link.command([PUBLISH, channel, note])
        link.command([PUBLISH, presence_channel(self.key, mailbox), note])

    def _unrouted(self, channel: bytes, mailbox: bytes) -> None:
        """Redis confirmed an UNSUBSCRIBE: forget the channel unless it was taken up again."""
        route = self._routes.get(channel)
        if route is not None and mailbox not in (
            self._held if route[0] == MAILBOX else self._watched
        ):
            del self._routes[channel]

    def _watch(self, mailboxes: Iterable[bytes]) -> asyncio.Future[None]:
        """Subscribe to the presence channels, then count who holds each mailbox."""
        link = self._link_or_die()
        fresh = [m for m in mailboxes if m not in self._watched]
        for start in range(0, len(fresh), BATCH):
            chunk = fresh[start : start + BATCH]
            channels = [presence_channel(self.key, m) for m in chunk]
            for mailbox, channel in zip(chunk, channels, strict=True):
                self._routes[channel] = (PRESENCE, mailbox)
                self._watched.add(mailbox)
            link.subscription(SUBSCRIBE, channels)
        return self._count(fresh)

    def _count(self, mailboxes: list[bytes]) -> asyncio.Future[None]:
        """Ask Redis how many relays hold each mailbox; tell the state which others do. The
        future is done once the last answer is in."""
        link = self._link_or_die()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if not mailboxes:
            future.set_result(None)
            return future
        for start in range(0, len(mailboxes), BATCH):
            chunk = mailboxes[start : start + BATCH]
            mine = [m in self._held for m in chunk]  # as Redis will count: queued in order
            channels = [mailbox_channel(self.key, m) for m in chunk]
            last = start + BATCH >= len(mailboxes)

            def counted(
                reply: Reply, chunk: list[bytes] = chunk, mine: list[bool] = mine, last: bool = last
            ) -> None:
                if type(reply) is list and len(reply) == 2 * len(chunk):
                    now = asyncio.get_running_loop().time()
                    for i, mailbox in enumerate(chunk):
                        others = int(reply[2 * i + 1]) - mine[i]
                        if mailbox in self._held:
                            if others > 0:
                                self._alone.discard(mailbox)
                            elif mine[i]:
                                self._alone.add(mailbox)
                        self.relay.remote_presence(mailbox, others > 0, now)
                if last and not future.done():
                    future.set_result(None)

            link.command([*NUMSUB, *channels], counted)
        return future

    def _next_seq(self) -> int:
        self._seq = (self._seq + 1) & MAX_SEQ
        return self._seq

    # -- messages from Redis ------------------------------------------------------------------

    def on_message(self, channel: bytes, data: bytes) -> None:
        """A message Redis pushed on one of our channels, handled as it arrives (in the
        link's order, between the replies before and after it)."""
        route = self._routes.get(channel)
        if route is None:
            return
        try:
            message = decode_message(data)
        except BackplaneError:
            self.counters.dropped += 1
            return
        if message.origin == self.node:
            return
        self.counters.received += 1
        kind, mailbox = route
        if kind == MAILBOX and type(message) is Payload:
            self.relay.deliver_remote(mailbox, message.payload)
        elif kind == MAILBOX and type(message) is Holding:
            self._meet(message.origin)
            if message.online:
                # From now on our sends to it are published; say so to the announcer, who
                # counted us (also when we are leaving the mailbox: we were subscribed).
                self._alone.discard(mailbox)
                ack = encode_message(Ack(self.node, message.seq))
                self._link_or_die().command([PUBLISH, node_channel(self.key, message.origin), ack])
            elif mailbox in self._held:
                self._count([mailbox])
        elif kind == PRESENCE and type(message) is Holding:
            self._meet(message.origin)
            if mailbox in self._watched:
                self._count([mailbox])
        elif kind == NODE and type(message) is Ack:
            announced = self._announced.get(message.seq)
            if announced is not None:
                announced.acks += 1
                if announced.check():
                    del self._announced[message.seq]
        elif kind in (CONTROL, NODE) and type(message) is Hello:
            self._meet(message.origin)
            if kind == CONTROL:  # a relay that (re)linked knows nobody yet: answer it
                hello = encode_message(Hello(self.node))
                self._link_or_die().command(
                    [PUBLISH, node_channel(self.key, message.origin), hello]
                )
        else:
            self.counters.dropped += 1

    def _meet(self, node: bytes) -> None:
        """Remember another relay, so that its death is noticed (:meth:`tick`)."""
        if len(self._peers) < MAX_PEERS:
            self._peers.add(node)

    # -- the heartbeat ------------------------------------------------------------------------

    def tick(self) -> None:
        """Every ``beat``: count the other relays' node channels (a relay whose connection
        ended, by a crash or a kill, has none), end holds whose acknowledgements are overdue,
        and give up on a link whose oldest command has waited ``timeout``."""
        link = self._link_or_die()
        now = asyncio.get_running_loop().time()
        oldest = link.oldest()
        if oldest is not None and now - oldest > self.timeout:
            link.fail(TimeoutError())
            return
        for seq, announced in list(self._announced.items()):
            if now >= announced.deadline:
                announced.needed = 0
            if announced.check():
                del self._announced[seq]
        if not self._peers:
            return
        peers = list(self._peers)
        channels = [node_channel(self.key, p) for p in peers]

        def counted(reply: Reply) -> None:
            if type(reply) is not list or len(reply) != 2 * len(peers):
                return
            gone = [p for i, p in enumerate(peers) if reply[2 * i + 1] == 0]
            if gone and self.up:
                self._peers.difference_update(gone)
                self.counters.relays_lost += len(gone)
                self._lost_relay()

        link.command([*NUMSUB, *channels], counted)

    def _lost_relay(self) -> None:
        """Another relay is gone: recount what it may have held, as watched from here (its
        mailbox channels went with its connection), and what we hold with others."""
        relay = self.relay
        suspects = [m for m in relay.watchers if m in relay.remote_online]
        suspects += [m for m in self._held if m not in self._alone and m not in relay.watchers]
        self._count(suspects)

    # -- linking ------------------------------------------------------------------------------

    async def _run(self) -> None:
        delay = 0.05
        told = ""  # the failure last logged: one line per kind of failure, not one per retry
        while True:
            try:
                await self._session()
            except LINK_ERRORS as exc:
                reason = type(exc).__name__
                if self.up or reason != told:
                    log.warning("backplane down (%s); serving local traffic", reason)
                    told = reason
            except Exception:
                log.exception("backplane failed; reconnecting")
            finally:
                if self.up:
                    delay = 0.05
                    told = ""
                self._down()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.retry_max)

    async def _session(self) -> None:
        loop = asyncio.get_running_loop()
        lost: asyncio.Future[None] = loop.create_future()

        def on_lost(exc: BaseException | None) -> None:
            if not lost.done():
                lost.set_exception(exc if isinstance(exc, LINK_ERRORS) else ConnectionError())

        async with asyncio.timeout(self.timeout):
            link = await open_link(self.url, self.on_message, on_lost)
        try:
            self.link_up(link)
            while not lost.done():
                await asyncio.wait([lost], timeout=self.beat)
                if not lost.done():
                    self.tick()
            lost.result()
        finally:
            link.fail()
            with contextlib.suppress(BaseException):
                lost.exception()

    def link_up(self, link: RedisLink) -> None:
        """Route through ``link``, a fresh connection: say hello to the other relays, announce
        what we hold and recount what we watch, from the state's own tables. Every command is
        pipelined behind the subscriptions, so nothing needs waiting for."""
        self._link = link
        self._routes = {self._control: (CONTROL, b""), self._node_channel: (NODE, b"")}
        link.subscription(SUBSCRIBE, [self._control, self._node_channel])
        link.command([PUBLISH, self._control, encode_message(Hello(self.node))])
        self.up = True
        self.counters.links += 1
        self._went_up.set()
        log.info("backplane up")
        self._hold(list(self.relay.subscribers))
        self._watch(list(self.relay.watchers))

    def _down(self) -> None:
        was_up = self.up
        self.up = False
        self._link = None
        self._channels.clear()
        self._routes.clear()
        self._held.clear()
        self._watched.clear()
        self._alone.clear()
        self._peers.clear()
        for announced in self._announced.values():
            if not announced.done.done():
                announced.done.set_result(None)
        self._announced.clear()
        for future in list(self._waiting):
            if not future.done():
                future.set_result(None)
        if was_up:
            self.relay.remote_lost(asyncio.get_running_loop().time())
