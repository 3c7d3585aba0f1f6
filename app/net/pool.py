"""The engine's one door to the relays: connections per relay URL, opened on first use.

Contacts may live on different relays, so every call names its URL, and a `lane`: each lane
of a relay is a connection of its own, so the engine can keep mailboxes the relay must not tie
together apart (see app/core/routing.py). What the engine asks for (subscriptions, watches) is
remembered per connection and restored by each new one; pushes and state changes arrive
through the single ``on_event`` callback, on the event loop.

With a proxy (``socks5h://host:port``, Tor's is ``socks5h://127.0.0.1:9050``) every
connection goes through it, each lane with a username and password of its own: Tor keeps
connections with different credentials on different circuits (IsolateSOCKSAuth), and the
relay's name is resolved by the proxy.
"""

from __future__ import annotations

import asyncio
import random
import secrets
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit, urlunsplit

from app.net.backoff import Backoff
from app.net.errors import RelayUnavailable
from app.net.events import ConnectionState, NetEvent
from app.net.link import EventSink, Intake, RelayLink
from app.net.protocol import Signer

PROXY_SCHEMES = ("socks5", "socks5h")


def check_proxy_url(url: str) -> str:
    """A SOCKS5 proxy URL as the setting takes it (socks5h://host:port; socks5:// is read as
    socks5h://, so the relay's name never leaves through local DNS). ValueError otherwise."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        raise ValueError(f"not a proxy URL (socks5h://host:port): {url!r}") from None
    if parts.scheme not in PROXY_SCHEMES or not parts.hostname or port is None:
        raise ValueError(f"not a proxy URL (socks5h://host:port): {url!r}")
    if parts.username or parts.password or parts.path not in ("", "/") or parts.query:
        raise ValueError("a proxy URL is socks5h://host:port, without credentials or a path")
    return urlunsplit(("socks5h", parts.netloc, "", "", ""))


def _with_credentials(proxy: str) -> str:
    """The proxy URL with a fresh random username and password (one pair per connection)."""
    parts = urlsplit(proxy)
    user, password = secrets.token_hex(8), secrets.token_hex(8)
    return urlunsplit((parts.scheme, f"{user}:{password}@{parts.netloc}", "", "", ""))


class RelayPool:
    """Connections to any number of relays, each kept up with backoff until :meth:`close`."""

    def __init__(
        self,
        on_event: Callable[[NetEvent], None],
        *,
        request_timeout: float = 10.0,
        backoff: Backoff | None = None,
        proxy: str | None = None,
        stagger: float = 0.0,
        intake: Intake | None = None,
        hello_timeout: float = 10.0,
    ) -> None:
        """`stagger`: each connection after the first of a relay waits up to this many seconds
        (at random) before opening, so many lanes do not connect in lockstep. `intake`: awaited
        after each delivered frame, before the connection is read on (bounds what waits in
        memory). A relay that does not say hello within `hello_timeout`, or answer a request
        within `request_timeout`, is dropped and connected again."""
        if request_timeout <= 0:
            raise ValueError("request_timeout must be positive")
        self.request_timeout = request_timeout
        self.proxy = None if proxy is None else check_proxy_url(proxy)
        self._on_event: EventSink = on_event
        self._backoff = backoff or Backoff()
        self._stagger = stagger
        self._intake = intake
        self._hello_timeout = hello_timeout
        self._links: dict[tuple[str, str], RelayLink] = {}
        self._closed = False

    def connect(self, url: str, lane: str = "") -> None:
        """Start connecting to ``url`` now (every other call does this by itself)."""
        self._link(url, lane)

    @property
    def urls(self) -> frozenset[str]:
        return frozenset(url for url, _ in self._links)

    def lanes(self, url: str) -> frozenset[str]:
        """The lanes (connections) open or opening to ``url``."""
        return frozenset(lane for u, lane in self._links if u == url)

    def state(self, url: str) -> ConnectionState:
        """Where ``url`` stands: ONLINE when any of its connections is, else the best of the
        others; CLOSED for a relay never used."""
        states = {link.state for (u, _), link in self._links.items() if u == url}
        for state in (
            ConnectionState.ONLINE,
            ConnectionState.CONNECTING,
            ConnectionState.BACKING_OFF,
        ):
            if state in states:
                return state
        return ConnectionState.CLOSED

    async def subscribe(self, url: str, mailbox: bytes, signer: Signer, lane: str = "") -> bool:
        """Receive ``mailbox``'s payloads, now and after every reconnect.

        ``signer(challenge)`` returns the mailbox public key and its signature over
        ``relay.wire.subscribe_signed_bytes(challenge, mailbox)``; it runs again for each new
        connection. True when the relay confirmed it, False when the relay is out of reach
        (it is applied once connected). Raises RelayRefused when the relay says no.
        """
        return await self._link(url, lane).subscribe(mailbox, signer, self.request_timeout)

    async def unsubscribe(self, url: str, mailbox: bytes, lane: str = "") -> None:
        """Stop receiving ``mailbox`` and stop restoring it."""
        link = self._existing(url, lane)
        if link is not None:
            await link.unsubscribe(mailbox, self.request_timeout)

    async def watch(self, url: str, mailboxes: Iterable[bytes], lane: str = "") -> frozenset[bytes]:
        """Be told (MailboxPresence) when these mailboxes come online or go offline; returns
        those online now, or an empty set when not connected (events follow on connect)."""
        return await self._link(url, lane).watch(mailboxes, self.request_timeout)

    async def unwatch(self, url: str, mailboxes: Iterable[bytes], lane: str = "") -> None:
        """Stop presence notices for these mailboxes and stop restoring them."""
        link = self._existing(url, lane)
        if link is not None:
            await link.unwatch(mailboxes, self.request_timeout)

    async def send(
        self,
        url: str,
        mailbox: bytes,
        payload: bytes,
        *,
        lane: str = "",
        within: float | None = None,
    ) -> int:
        """Forward ``payload`` to ``mailbox``'s subscribers; how many it reached (0: offline).

        Waits for a connection attempt under way, then for the reply, ``within`` seconds in
        all (the pool's request timeout by default). Raises RelayUnavailable when not
        connected or the connection drops (RequestTimeout when no answer came in time: the
        payload may still have been forwarded), RelayRefused when the relay says no,
        PayloadTooLarge when the frame exceeds the relay's limit.
        """
        limit = self.request_timeout if within is None else within
        return await self._link(url, lane).send(mailbox, payload, limit)

    async def release(self, url: str, lane: str) -> None:
        """Close one lane's connection (nothing of it is restored): its mailboxes are gone."""
        link = self._links.pop((url, lane), None)
        if link is not None:
            await link.close()

    async def close(self) -> None:
        """Close every connection; each ends in CLOSED and no call is accepted afterwards."""
        self._closed = True
        links = list(self._links.values())
        await asyncio.gather(*(link.close() for link in links))

    def _existing(self, url: str, lane: str) -> RelayLink | None:
        """A connection already made (undoing something needs no new one)."""
        if self._closed:
            raise RelayUnavailable("the pool is closed")
        return self._links.get((url, lane))

    def _link(self, url: str, lane: str) -> RelayLink:
        if self._closed:
            raise RelayUnavailable("the pool is closed")
        link = self._links.get((url, lane))
        if link is None:
            first = not any(u == url for u, _ in self._links)
            cell: list[RelayLink] = []

            def forward(event: NetEvent) -> None:
                if cell and self._links.get((url, lane)) is cell[0]:  # not once released
                    self._on_event(event)

            link = RelayLink(
                url,
                forward,
                backoff=self._backoff,
                proxy=None if self.proxy is None else _with_credentials(self.proxy),
                first_delay=0.0 if first else random.uniform(0, self._stagger),
                hello_timeout=self._hello_timeout,
                reply_timeout=self.request_timeout,
                intake=self._intake,
            )
            cell.append(link)
            self._links[(url, lane)] = link
            link.start()
        return link
