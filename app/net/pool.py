"""The engine's one door to the relays: a connection per relay URL, opened on first use.

Contacts may live on different relays, so every call names its URL. What the engine asks for
(subscriptions, watches) is remembered per URL and restored by each new connection; pushes and
state changes arrive through the single ``on_event`` callback, on the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

from app.net.backoff import Backoff
from app.net.errors import RelayUnavailable
from app.net.events import ConnectionState, NetEvent
from app.net.link import EventSink, RelayLink
from app.net.protocol import Signer


class RelayPool:
    """Connections to any number of relays, each kept up with backoff until :meth:`close`."""

    def __init__(
        self,
        on_event: Callable[[NetEvent], None],
        *,
        request_timeout: float = 10.0,
        backoff: Backoff | None = None,
    ) -> None:
        if request_timeout <= 0:
            raise ValueError("request_timeout must be positive")
        self.request_timeout = request_timeout
        self._on_event: EventSink = on_event
        self._backoff = backoff or Backoff()
        self._links: dict[str, RelayLink] = {}
        self._closed = False

    def connect(self, url: str) -> None:
        """Start connecting to ``url`` now (every other call does this by itself)."""
        self._link(url)

    @property
    def urls(self) -> frozenset[str]:
        return frozenset(self._links)

    def state(self, url: str) -> ConnectionState:
        """The connection state of ``url``; CLOSED for a relay never used."""
        link = self._links.get(url)
        return link.state if link is not None else ConnectionState.CLOSED

    async def subscribe(self, url: str, mailbox: bytes, signer: Signer) -> bool:
        """Receive ``mailbox``'s payloads, now and after every reconnect.

        ``signer(challenge)`` returns the mailbox public key and its signature over
        ``relay.wire.subscribe_signed_bytes(challenge, mailbox)``; it runs again for each new
        connection. True when the relay confirmed it, False when the relay is out of reach
        (it is applied once connected). Raises RelayRefused when the relay says no.
        """
        return await self._link(url).subscribe(mailbox, signer, self.request_timeout)

    async def unsubscribe(self, url: str, mailbox: bytes) -> None:
        """Stop receiving ``mailbox`` and stop restoring it."""
        await self._link(url).unsubscribe(mailbox, self.request_timeout)

    async def watch(self, url: str, mailboxes: Iterable[bytes]) -> frozenset[bytes]:
        """Be told (MailboxPresence) when these mailboxes come online or go offline; returns
        those online now, or an empty set when not connected (events follow on connect)."""
        return await self._link(url).watch(mailboxes, self.request_timeout)

    async def unwatch(self, url: str, mailboxes: Iterable[bytes]) -> None:
        """Stop presence notices for these mailboxes and stop restoring them."""
        await self._link(url).unwatch(mailboxes, self.request_timeout)

    async def send(
        self, url: str, mailbox: bytes, payload: bytes, *, within: float | None = None
    ) -> int:
        """Forward ``payload`` to ``mailbox``'s subscribers; how many it reached (0: offline).

        Waits for a connection attempt under way, then for the reply, ``within`` seconds in
        all (the pool's request timeout by default). Raises RelayUnavailable when not
        connected or the connection drops (RequestTimeout when no answer came in time: the
        payload may still have been forwarded), RelayRefused when the relay says no,
        PayloadTooLarge when the frame exceeds the relay's limit.
        """
        limit = self.request_timeout if within is None else within
        return await self._link(url).send(mailbox, payload, limit)

    async def close(self) -> None:
        """Close every connection; each ends in CLOSED and no call is accepted afterwards."""
        self._closed = True
        links = list(self._links.values())
        await asyncio.gather(*(link.close() for link in links))

    def _link(self, url: str) -> RelayLink:
        if self._closed:
            raise RelayUnavailable("the pool is closed")
        link = self._links.get(url)
        if link is None:
            link = RelayLink(url, self._on_event, backoff=self._backoff)
            self._links[url] = link
            link.start()
        return link
