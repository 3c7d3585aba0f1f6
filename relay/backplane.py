"""The Redis pub/sub link between relay processes, so that several relays share routing.

Each relay subscribes, on one Redis connection, to the *mailbox channel* of every mailbox that
has a subscriber on it, and to the *presence channel* of every mailbox one of its clients
watches. A send is delivered locally, then PUBLISHed once on the mailbox channel; the relays
subscribed there hand it to their own subscribers. A relay that starts or stops holding a
mailbox says so on its presence channel, and the relays watching it count the mailbox
channel's subscribers (PUBSUB NUMSUB) to learn whether any other relay still holds it.

Redis stores nothing for us: no key is ever written, only PUBLISH and SUBSCRIBE. Channel names
carry a keyed hash of the mailbox id, never the id. docs/protocol.md §12 specifies all of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import os
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

import msgpack
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from relay.frames import MAILBOX_ID_SIZE
from relay.state import Lookup, Relay

log = logging.getLogger("relay.backplane")

BACKPLANE_VERSION: Final = 1
NODE_SIZE: Final = 16
KEY_LABEL: Final = b"anonchat/backplane/v1\x00"
CHANNEL_PREFIX: Final = b"anonchat:v1:"
# Channels per SUBSCRIBE, UNSUBSCRIBE or PUBSUB NUMSUB command.
BATCH: Final = 512
LINK_ERRORS: Final = (RedisError, OSError, TimeoutError)


class BackplaneError(Exception):
    """A backplane message that is not one of ours: ignored and counted, never a crash."""


class LinkLost(Exception):
    """The Redis link ended; the supervisor reconnects."""


# ---------------------------------------------------------------------------------------------
# Channel names and messages: pure functions, the same on every relay of a cluster.


def cluster_key(url: str, secret: bytes | None = None) -> bytes:
    """The key that hashes mailbox ids into channel names; equal on every relay of a cluster.

    From the shared secret when one is given. Otherwise from the credentials in the Redis URL
    (never its host, which may be spelt differently on each relay): that hides mailbox ids only
    from those who do not know the URL, which the Redis operator does.
    """
    if secret:
        material = b"secret\x00" + secret
    else:
        parts = urlsplit(url)
        material = b"url\x00" + f"{parts.username or ''}:{parts.password or ''}".encode()
    return hmac.new(KEY_LABEL, material, hashlib.sha256).digest()


def _tag(key: bytes, kind: bytes, mailbox: bytes) -> bytes:
    if len(mailbox) != MAILBOX_ID_SIZE:
        raise ValueError("a mailbox id is 32 bytes")
    return hmac.new(key, kind + b"\x00" + mailbox, hashlib.sha256).hexdigest().encode()


def mailbox_channel(key: bytes, mailbox: bytes) -> bytes:
    """Where sends to ``mailbox`` are published: ``anonchat:v1:m:`` and 64 hex digits."""
    return CHANNEL_PREFIX + b"m:" + _tag(key, b"mailbox", mailbox)


def presence_channel(key: bytes, mailbox: bytes) -> bytes:
    """Where relays say they started or stopped holding ``mailbox``: ``anonchat:v1:p:``..."""
    return CHANNEL_PREFIX + b"p:" + _tag(key, b"presence", mailbox)


def control_channel(key: bytes) -> bytes:
    """Every relay's standing subscription; nothing is published on it."""
    return CHANNEL_PREFIX + b"c:" + hmac.new(key, b"control", hashlib.sha256).hexdigest().encode()


@dataclass(frozen=True, slots=True)
class Payload:
    """A send, published on the mailbox channel by the relay ``origin``."""

    origin: bytes
    payload: bytes


@dataclass(frozen=True, slots=True)
class Holding:
    """On the presence channel: relay ``origin`` now holds the mailbox (``online``) or not."""

    origin: bytes
    online: bool


Message = Payload | Holding


def encode_message(message: Message) -> bytes:
    """One backplane message: a msgpack map ``v``, ``k`` (``d`` or ``p``), ``o``, then fields."""
    body: dict[str, Any] = {"v": BACKPLANE_VERSION}
    if isinstance(message, Payload):
        body.update(k="d", o=message.origin, p=message.payload)
    else:
        body.update(k="p", o=message.origin, on=message.online)
    packed: bytes = msgpack.packb(body, use_bin_type=True)
    return packed


def decode_message(data: Any) -> Message:
    """The message in ``data``; anything else raises :class:`BackplaneError`."""
    if type(data) is not bytes:
        raise BackplaneError("not bytes")
    try:
        body = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception:  # msgpack raises several types for bad bytes
        raise BackplaneError("not msgpack") from None
    if type(body) is not dict or body.get("v") != BACKPLANE_VERSION:
        raise BackplaneError("not a version 1 map")
    origin = body.get("o")
    if type(origin) is not bytes or len(origin) != NODE_SIZE:
        raise BackplaneError("bad origin")
    kind = body.get("k")
    if kind == "d" and type(body.get("p")) is bytes:
        return Payload(origin, body["p"])
    if kind == "p" and type(body.get("on")) is bool:
        return Holding(origin, body["on"])
    raise BackplaneError("unknown kind or bad fields")


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


class Backplane:
    """One relay's link to the others; implements :class:`relay.state.Remote`.

    The state's hooks only mark a mailbox dirty. One worker task reconciles Redis with the
    state, one step at a time, waiting for Redis to confirm each (un)subscribe: so when it
    counts a channel's subscribers it knows exactly whether it is one of them itself.
    """

    def __init__(
        self,
        relay: Relay,
        url: str,
        key: bytes,
        *,
        node: bytes | None = None,
        timeout: float = 2.0,
        resync: float = 10.0,
        retry_max: float = 2.0,
        connections: int = 8,
    ) -> None:
        self.relay = relay
        self.url = url
        self.key = key
        self.node = node or os.urandom(NODE_SIZE)
        self.timeout = timeout
        self.resync = resync
        self.retry_max = retry_max
        self.connections = connections
        self.up = False
        self.counters = BackplaneCounters()
        self._client: Redis | None = None
        self._control = control_channel(key)
        # channel -> (is the mailbox channel, mailbox), for channels we subscribed.
        self._routes: dict[bytes, tuple[bool, bytes]] = {}
        self._subscribed: set[bytes] = set()  # mailboxes whose mailbox channel Redis confirmed
        self._watching: set[bytes] = set()  # mailboxes whose presence channel Redis confirmed
        self._dirty: set[bytes] = set()
        self._recount: set[bytes] = set()
        self._barriers: list[asyncio.Future[None]] = []
        self._wake = asyncio.Event()
        self._confirm: set[bytes] = set()
        self._confirmed = asyncio.Event()
        self._went_up = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- the state's hooks (relay.state.Remote) -----------------------------------------------

    def hold(self, mailbox: bytes) -> None:
        self._mark(mailbox)

    def release(self, mailbox: bytes) -> None:
        self._mark(mailbox)

    def unwatch(self, mailbox: bytes) -> None:
        self._mark(mailbox)

    def _mark(self, mailbox: bytes) -> None:
        # While down nothing is kept: linking again starts from the state's own tables.
        if self.up:
            self._dirty.add(mailbox)
            self._wake.set()

    # -- the driver's calls -------------------------------------------------------------------

    async def start(self) -> None:
        """Start linking; wait (at most ``timeout``) for the first link so start-up is ready."""
        self._task = asyncio.get_running_loop().create_task(self._run())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.timeout):
                await self._went_up.wait()

    async def close(self) -> None:
        """Tell the other relays what we stopped holding (bounded wait), then unlink."""
        if self.up:
            self._dirty.update(self._subscribed)
            self._dirty.update(self._watching)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.timeout):
                    await self._barrier()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def publish(self, mailbox: bytes, payload: bytes) -> int:
        """Publish a send to the other relays; how many of them took it (0 when down)."""
        client = self._client
        if not self.up or client is None:
            return 0
        data = encode_message(Payload(self.node, payload))
        try:
            async with asyncio.timeout(self.timeout):
                receivers = int(await client.publish(mailbox_channel(self.key, mailbox), data))
        except LINK_ERRORS:
            self.counters.errors += 1
            return 0
        self.counters.published += 1
        # Our own echo is dropped by origin; do not count it either. While our subscription
        # is changing this may be off by one, never turning a held mailbox into "offline".
        mine = mailbox in self.relay.subscribers and mailbox in self._subscribed
        return max(0, receivers - (1 if mine else 0))

    async def lookup(self, lookup: Lookup) -> None:
        """Learn whether ``lookup.fresh`` are held elsewhere; returns when the state knows."""
        if self.up:
            self._dirty.update(lookup.fresh)
            self._recount.update(lookup.fresh)
            await self.settle()

    async def settle(self) -> None:
        """Until Redis has taken every change the state asked for so far (bounded wait).

        A first subscriber's ``ok`` waits for this, so that from then on sends on every relay
        reach it. While the link is down there is nothing to wait for.
        """
        if not self.up:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.timeout * 2):
                await self._barrier()

    def _barrier(self) -> asyncio.Future[None]:
        """Done once the worker has finished a pass started after this call."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._barriers.append(future)
        self._wake.set()
        return future

    # -- the link -----------------------------------------------------------------------------

    async def _run(self) -> None:
        delay = 0.05
        told = ""  # the failure last logged: one line per kind of failure, not one per retry
        while True:
            try:
                await self._session()
            except (*LINK_ERRORS, LinkLost) as exc:
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
        pool: BlockingConnectionPool = BlockingConnectionPool.from_url(
            self.url,
            max_connections=self.connections,
            timeout=self.timeout,
            socket_connect_timeout=self.timeout,
            socket_timeout=self.timeout,
            retry=Retry(NoBackoff(), 0),
        )
        client = Redis(connection_pool=pool)
        pubsub = client.pubsub()
        tasks: list[asyncio.Task[None]] = []
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.timeout):
                await client.ping()
                self._expect([self._control])
                await pubsub.subscribe(self._control)
                tasks.append(loop.create_task(self._read(pubsub)))
                await self._confirmed.wait()
            self._routes = {}
            self._dirty = set(self.relay.subscribers) | set(self.relay.watchers)
            self._recount = set(self.relay.watchers)
            self._client = client
            self.up = True
            self.counters.links += 1
            self._went_up.set()
            log.info("backplane up")
            tasks.append(loop.create_task(self._work(pubsub, client)))
            tasks.append(loop.create_task(self._tick(client)))
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
            raise LinkLost
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(BaseException):
                    await task
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]
            with contextlib.suppress(Exception):
                await client.aclose()
            with contextlib.suppress(Exception):
                await pool.aclose()

    def _down(self) -> None:
        was_up = self.up
        self.up = False
        self._client = None
        self._subscribed.clear()
        self._watching.clear()
        self._routes.clear()
        self._confirm.clear()
        for future in self._barriers:
            if not future.done():
                future.set_result(None)
        self._barriers.clear()
        if was_up:
            self.relay.remote_lost(asyncio.get_running_loop().time())

    def _expect(self, channels: list[bytes]) -> None:
        self._confirm = set(channels)
        self._confirmed.clear()

    async def _read(self, pubsub: PubSub) -> None:
        relay = self.relay
        while True:
            message = await pubsub.get_message(timeout=None)
            if message is None:
                continue
            kind, channel = message["type"], message["channel"]
            if kind in ("subscribe", "unsubscribe"):
                self._confirm.discard(channel)
                if not self._confirm:
                    self._confirmed.set()
                continue
            route = self._routes.get(channel) if kind == "message" else None
            if route is None:
                continue
            try:
                decoded = decode_message(message["data"])
            except BackplaneError:
                self.counters.dropped += 1
                continue
            if decoded.origin == self.node:
                continue
            self.counters.received += 1
            is_mailbox, mailbox = route
            if is_mailbox and isinstance(decoded, Payload):
                relay.deliver_remote(mailbox, decoded.payload)
            elif not is_mailbox and isinstance(decoded, Holding):
                self._recount.add(mailbox)
                self._wake.set()
            else:
                self.counters.dropped += 1

    async def _tick(self, client: Redis) -> None:
        """Every ``resync`` seconds: recount what we watch (a relay that died said nothing)."""
        while True:
            await asyncio.sleep(self.resync)
            async with asyncio.timeout(self.timeout):
                await client.ping()
            self._recount.update(self.relay.watchers)
            self._wake.set()

    async def _work(self, pubsub: PubSub, client: Redis) -> None:
        relay = self.relay
        while True:
            await self._wake.wait()
            self._wake.clear()
            barriers, self._barriers = self._barriers, []
            dirty, self._dirty = self._dirty, set()
            hold = [m for m in dirty if m in relay.subscribers and m not in self._subscribed]
            drop = [m for m in dirty if m not in relay.subscribers and m in self._subscribed]
            watch = [m for m in dirty if m in relay.watchers and m not in self._watching]
            unwatch = [m for m in dirty if m not in relay.watchers and m in self._watching]
            on = [(mailbox_channel(self.key, m), True, m) for m in hold]
            on += [(presence_channel(self.key, m), False, m) for m in watch]
            for channel, is_mailbox, m in on:
                self._routes[channel] = (is_mailbox, m)
            await self._switch(pubsub, [c for c, _, _ in on], subscribe=True)
            self._subscribed.update(hold)
            self._watching.update(watch)
            off = [mailbox_channel(self.key, m) for m in drop]
            off += [presence_channel(self.key, m) for m in unwatch]
            for channel in off:
                self._routes.pop(channel, None)
            self._subscribed.difference_update(drop)
            self._watching.difference_update(unwatch)
            await self._switch(pubsub, off, subscribe=False)
            if hold or drop:
                async with asyncio.timeout(self.timeout), client.pipeline(False) as pipe:
                    for m, online in [(m, True) for m in hold] + [(m, False) for m in drop]:
                        note = encode_message(Holding(self.node, online))
                        pipe.publish(presence_channel(self.key, m), note)
                    await pipe.execute()
            recount, self._recount = self._recount, set()
            await self._count(client, [m for m in recount if m in relay.watchers])
            for future in barriers:
                if not future.done():
                    future.set_result(None)

    async def _switch(self, pubsub: PubSub, channels: list[bytes], *, subscribe: bool) -> None:
        for start in range(0, len(channels), BATCH):
            chunk = channels[start : start + BATCH]
            self._expect(chunk)
            async with asyncio.timeout(self.timeout):
                if subscribe:
                    await pubsub.subscribe(*chunk)
                else:
                    await pubsub.unsubscribe(*chunk)
                await self._confirmed.wait()

    async def _count(self, client: Redis, mailboxes: list[bytes]) -> None:
        """Ask Redis how many relays hold each mailbox; tell the state which others do."""
        for start in range(0, len(mailboxes), BATCH):
            chunk = mailboxes[start : start + BATCH]
            channels = [mailbox_channel(self.key, m) for m in chunk]
            async with asyncio.timeout(self.timeout):
                counts = await client.pubsub_numsub(*channels)
            now = asyncio.get_running_loop().time()
            for m, (_, n) in zip(chunk, counts, strict=True):
                others = int(n) - (1 if m in self._subscribed else 0)
                self.relay.remote_presence(m, others > 0, now)
