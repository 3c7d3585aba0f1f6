"""Relays inside the app's own process: the profile's own relay when it shares one on this
network or keeps to this computer, the demo's and the self-test's. The one module of the app
that imports the relay.

The profile's own relay listens where its card says (the card's port; in share mode on every
interface, announced on the network). When that port is held by another program, or this
computer's network address is no longer the card's, it runs where it can and the engine is
told the URL it really has, so contacts follow; the user is told why.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
from collections.abc import Sequence
from typing import Protocol
from urllib.parse import urlsplit

from app.core.engine import Engine
from app.core.profile import RelayMode
from app.net.discovery import local_addresses
from relay.announce import Announcer
from relay.server import DEFAULT_PORT, RelayConfig, RelayHandle, serve_relay

log = logging.getLogger(__name__)
LOOPBACK = "127.0.0.1"
EVERY_INTERFACE = "0.0.0.0"  # noqa: S104  (share mode: reachable from the network)
OWN_MODES = (RelayMode.SHARE, RelayMode.LOCAL)  # the modes in which the profile runs its relay


class EmbeddedRelay(Protocol):
    """A running relay as the app sees it: where it listens, and how to stop it."""

    @property
    def url(self) -> str: ...

    async def close(self) -> None: ...


async def start_embedded_relay(host: str = LOOPBACK, port: int = 0) -> EmbeddedRelay:
    """Start a relay on the running loop; port 0 picks a free one (see `url`). OSError when
    the address is taken."""
    return await serve_relay(RelayConfig(host=host, port=port))


def relay_url(host: str, port: int) -> str:
    """The URL a card carries for a relay at `host` (an address) and `port`."""
    return f"ws://[{host}]:{port}" if ":" in host else f"ws://{host}:{port}"


def share_address() -> str | None:
    """The address a shared relay is reached at from the network: this computer's first
    network address, None when it has none."""
    addresses = local_addresses()
    return addresses[0] if addresses else None


def share_url(address: str) -> str:
    """What the card of a profile sharing its relay at `address` carries at first."""
    return relay_url(address, DEFAULT_PORT)


def same_relay(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


async def use_relays(engine: Engine, urls: Sequence[str], mode: RelayMode) -> None:
    """Move the profile to these relays (the engine tests them first: UserError, nothing
    changed, when one fails), and have its code wait there at once: the engine drops unused
    codes on the old relays and makes the next one when asked, and until something of ours
    listens on the new relay, nobody can reach us there and the status bar has nothing to
    tell of it."""
    await engine.set_relays(urls, mode=mode)
    await engine.card()


class ProfileRelay:
    """The relay a profile runs itself in the SHARE and LOCAL modes, and the announcement of
    a shared one. A relay the profile moves away from stops being announced but keeps
    running until the profile closes, so contacts still on it hear of the move."""

    def __init__(self) -> None:
        self.url: str | None = None  # of the relay in use, None when none is
        self._current: RelayHandle | None = None
        self._announcing: asyncio.Task[None] | None = None
        self._announcer: Announcer | None = None
        self._retired: list[RelayHandle] = []

    async def apply(
        self,
        engine: Engine,
        mode: RelayMode,
        wanted: str,
        fallbacks: Sequence[str] = (),
    ) -> str:
        """Run the profile's relay for `mode` (SHARE or LOCAL) where `wanted` says, or as
        near as can be, and make it the engine's first relay (contacts follow); returns what
        to tell the user ("" for nothing). UserError when the engine refuses the relay:
        then nothing changed and the new relay is stopped again."""
        handle, url, notice = await self._start(mode, wanted)
        if not same_relay(url, engine.relay_url) or mode is not engine.relay_mode:
            try:
                await use_relays(engine, [url, *fallbacks], mode)
            except BaseException:
                with contextlib.suppress(Exception):
                    await handle.close()
                raise
        await self.leave()
        self._current, self.url = handle, url
        if mode is RelayMode.SHARE:  # meanwhile: the name check takes a second
            self._announcing = asyncio.create_task(self._announce(handle.port))
        return notice

    async def _start(self, mode: RelayMode, wanted: str) -> tuple[RelayHandle, str, str]:
        """A relay for `mode` on the wanted port, else a free one; with its URL and what
        to tell the user about where it runs."""
        parts = urlsplit(wanted)
        port = parts.port or DEFAULT_PORT
        notes = []
        if mode is RelayMode.SHARE:
            bind = EVERY_INTERFACE
            addresses = local_addresses()
            address = parts.hostname or LOOPBACK
            if address not in addresses and addresses:
                notes.append(
                    f"This computer's network address changed from {address} to "
                    f"{addresses[0]}; contacts are told."
                )
                address = addresses[0]
            elif not addresses:
                notes.append(
                    "This computer has no network address now: nobody on the network can "
                    "reach you until it has one again."
                )
        else:
            bind = address = LOOPBACK
        try:
            handle = await serve_relay(RelayConfig(host=bind, port=port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            handle = await serve_relay(RelayConfig(host=bind, port=0))
            if not self._holds(port):  # our own relay, still running for its contacts
                notes.append(
                    f"Port {port} is in use by another program; this profile's relay runs on "
                    f"port {handle.port}."
                )
        return handle, relay_url(address, handle.port), " ".join(notes)

    def _holds(self, port: int) -> bool:
        return any(h.port == port for h in (self._current, *self._retired) if h is not None)

    async def _announce(self, port: int) -> None:
        announcer = Announcer()
        try:
            await announcer.start(EVERY_INTERFACE, port)
        except Exception as exc:  # no address, no multicast here: the relay runs unannounced
            log.warning("could not announce the relay: %s", type(exc).__name__)
            return
        self._announcer = announcer

    async def leave(self) -> None:
        """The profile no longer uses this relay: stop announcing it, keep it running until
        `close` for the contacts still on it."""
        announcing, self._announcing = self._announcing, None
        if announcing is not None:
            announcing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await announcing
        announcer, self._announcer = self._announcer, None
        if announcer is not None:
            with contextlib.suppress(Exception):
                await announcer.close()
        if self._current is not None:
            self._retired.append(self._current)
        self._current, self.url = None, None

    async def close(self) -> None:
        await self.leave()
        retired, self._retired = self._retired, []
        for handle in retired:
            with contextlib.suppress(Exception):
                await handle.close()
