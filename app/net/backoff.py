"""Reconnect delays: exponential with jitter, so many clients of a restarted relay spread out.

Pure arithmetic on an attempt number and a random source, so tests can pin the numbers.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Backoff:
    """``delay(n)`` is ``min(cap, base * factor**n)`` scaled down by up to ``jitter``.

    With the default jitter of 0.5 the wait lies in ``[d/2, d]``: never zero (a relay that
    drops us at once is not hammered) and never above the cap.
    """

    base: float = 0.5
    factor: float = 2.0
    cap: float = 30.0
    jitter: float = 0.5
    rng: Callable[[], float] = field(default=random.random, compare=False)

    def __post_init__(self) -> None:
        if not (self.base > 0 and self.factor >= 1 and self.cap >= self.base):
            raise ValueError("backoff needs base > 0, factor >= 1 and cap >= base")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter is a fraction in 0..1")

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (0 after a healthy connection)."""
        if attempt < 0:
            raise ValueError("attempt counts from 0")
        # Cap the exponent first: factor**attempt overflows a float long before attempt does.
        ceiling = self.cap
        if attempt < 64:
            ceiling = min(self.cap, self.base * self.factor**attempt)
        fraction = min(max(self.rng(), 0.0), 1.0)
        return ceiling * (1.0 - self.jitter * fraction)
