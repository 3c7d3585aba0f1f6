"""What a network call can raise: the relay is out of reach, or it answered no.

The split follows the wire errors: :class:`RelayUnavailable` is about reachability (retry
later, nothing was decided), :class:`RelayRefused` is the relay's answer (retrying the same
request will not help), :class:`PayloadTooLarge` is our caller's mistake.
"""

from __future__ import annotations


class NetError(Exception):
    """Base of every error app.net raises to its callers."""


class RelayUnavailable(NetError):
    """Not connected, or the connection went away before the relay answered."""


class RequestTimeout(RelayUnavailable):
    """The relay did not answer within the request timeout; the outcome is unknown."""


class RelayRefused(NetError):
    """The relay answered the request with an error frame; ``code`` is its wire error code."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class PayloadTooLarge(NetError, ValueError):
    """The frame would exceed the relay's announced frame size limit; it was not sent."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"frame of {size} bytes over the relay's limit of {limit}")
        self.size = size
        self.limit = limit
