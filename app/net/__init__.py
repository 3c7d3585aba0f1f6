"""The WebSocket client: one connection per relay, kept up and restored by itself.

The engine uses :class:`RelayPool` and the events; :mod:`app.net.protocol` is the sans-I/O
protocol core the pool drives.
"""

from __future__ import annotations

from app.net.backoff import Backoff
from app.net.errors import (
    NetError,
    PayloadTooLarge,
    RelayRefused,
    RelayUnavailable,
    RequestTimeout,
)
from app.net.events import (
    ConnectionChanged,
    ConnectionState,
    Delivered,
    MailboxPresence,
    NetEvent,
    RelayRejected,
    RequestRefused,
)
from app.net.pool import RelayPool
from app.net.protocol import Signer

__all__ = [
    "Backoff",
    "ConnectionChanged",
    "ConnectionState",
    "Delivered",
    "MailboxPresence",
    "NetError",
    "NetEvent",
    "PayloadTooLarge",
    "RelayPool",
    "RelayRefused",
    "RelayRejected",
    "RelayUnavailable",
    "RequestRefused",
    "RequestTimeout",
    "Signer",
]
