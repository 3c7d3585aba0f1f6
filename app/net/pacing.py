"""Stay inside the relay's send budget instead of being told ``rate_limited``.

The relay charges one token per frame from a bucket of ``send_burst`` tokens refilled at
``send_rate`` per second, and announces both in hello. The client keeps its own, slightly
smaller bucket and waits when it is empty, so a burst from the outbox slows down rather than
failing. Pure: the clock is passed in.
"""

from __future__ import annotations

from relay.wire import Limits

# Keep a margin under the relay's numbers: its clock and ours do not tick together.
RATE_MARGIN = 0.9
BURST_MARGIN = 0.9


class Pacer:
    """A token bucket that answers how long to wait before the next frame may go."""

    __slots__ = ("_burst", "_rate", "_stamp", "_tokens")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._stamp = now

    @classmethod
    def for_limits(cls, limits: Limits, now: float) -> Pacer:
        """A bucket just inside what the relay announced."""
        burst = max(1, int(limits.send_burst * BURST_MARGIN))
        return cls(limits.send_rate * RATE_MARGIN, burst, now)

    def take(self, now: float) -> float:
        """Spend one token; returns 0 when the frame may go now, else the seconds to wait
        (the token is then reserved: call again after waiting only for the next frame)."""
        elapsed = now - self._stamp
        if elapsed > 0:
            self._tokens = min(self._burst, self._tokens + elapsed * self._rate)
            self._stamp = now
        self._tokens -= 1.0
        if self._tokens >= 0:
            return 0.0
        return -self._tokens / self._rate
