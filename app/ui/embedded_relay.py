"""A relay inside the app's own process: for a profile on the default relay when nothing listens
there, for the demo and for the self-test. The one module of the app that imports the relay."""

from __future__ import annotations

import logging
from typing import Protocol
from urllib.parse import urlsplit

from app.core.profile import DEFAULT_RELAY
from app.ui.aio import is_listening
from relay.server import RelayConfig, serve_relay

log = logging.getLogger(__name__)
LOOPBACK = "127.0.0.1"


class EmbeddedRelay(Protocol):
    """A running relay as the app sees it: where it listens, and how to stop it."""

    @property
    def url(self) -> str: ...

    async def close(self) -> None: ...


async def start_embedded_relay(host: str = LOOPBACK, port: int = 0) -> EmbeddedRelay:
    """Start a relay on the running loop; port 0 picks a free one (see `url`). OSError when
    the address is taken."""
    return await serve_relay(RelayConfig(host=host, port=port))


async def embedded_relay_for(relay_url: str) -> EmbeddedRelay | None:
    """Start the in-process relay when the profile uses the default one and nothing listens."""
    if relay_url.rstrip("/") != DEFAULT_RELAY:
        return None
    parts = urlsplit(DEFAULT_RELAY)
    host, port = parts.hostname or LOOPBACK, parts.port or 8765
    if await is_listening(host, port):
        return None
    try:
        return await start_embedded_relay(host, port)
    except OSError:
        log.warning("could not start the embedded relay; connecting to the configured one")
        return None
