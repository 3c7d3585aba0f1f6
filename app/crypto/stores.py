"""What the crypto core and the engine need from storage, as small interfaces.

Key material crosses these interfaces only as opaque versioned blobs that app/crypto itself
encodes; storage never interprets them. The synchronous protocols are met by the store's
repositories (used inside one transaction on the store thread); the asynchronous ones by the
store's async facade (used from the event loop).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class SessionStore(Protocol):
    """Ratchet state per contact."""

    def load(self, contact_id: int) -> bytes | None: ...

    def save(self, contact_id: int, state: bytes, now: int) -> None: ...


@runtime_checkable
class HandshakeReplayStore(Protocol):
    """First handshake messages already processed, by digest."""

    def mark_seen(self, digest: bytes, now: int) -> bool:
        """True the first time, False for a replay."""
        ...

    def was_seen(self, digest: bytes) -> bool: ...


@runtime_checkable
class AsyncSessionStore(Protocol):
    """Ratchet state per contact, from the event loop."""

    async def load_session(self, contact_id: int) -> bytes | None: ...

    async def save_session(self, contact_id: int, state: bytes, now: int) -> None: ...
