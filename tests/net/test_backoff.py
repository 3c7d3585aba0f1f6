"""Reconnect delays and send pacing: pure numbers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.net.backoff import Backoff
from app.net.pacing import Pacer


def test_delays_double_up_to_the_cap_and_jitter_only_shortens() -> None:
    top = Backoff(base=0.5, factor=2, cap=8, jitter=0.5, rng=lambda: 0.0)
    low = Backoff(base=0.5, factor=2, cap=8, jitter=0.5, rng=lambda: 1.0)
    assert [top.delay(n) for n in range(6)] == [0.5, 1, 2, 4, 8, 8]
    assert [low.delay(n) for n in range(6)] == [0.25, 0.5, 1, 2, 4, 4]
    assert top.delay(10_000) == 8  # no overflow for a relay that stays away a long time


@given(st.integers(0, 200), st.floats(0, 1))
def test_every_delay_lies_between_half_and_all_of_its_ceiling(attempt: int, r: float) -> None:
    backoff = Backoff(base=0.25, factor=3, cap=30, rng=lambda: r)
    ceiling = min(30, 0.25 * 3 ** min(attempt, 64))
    assert ceiling / 2 <= backoff.delay(attempt) <= ceiling


def test_nonsense_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        Backoff(base=0)
    with pytest.raises(ValueError):
        Backoff(jitter=2)
    with pytest.raises(ValueError):
        Backoff().delay(-1)


def test_pacer_lets_a_burst_through_then_spaces_frames_at_the_rate() -> None:
    pacer = Pacer(rate=10, burst=3, now=0.0)
    assert [pacer.take(0.0) for _ in range(3)] == [0, 0, 0]
    assert pacer.take(0.0) == pytest.approx(0.1)
    assert pacer.take(0.0) == pytest.approx(0.2)  # reserved behind the previous one
    assert pacer.take(0.3) == 0  # the waits elapsed: refilled by exactly what was reserved
    assert pacer.take(10.0) == 0  # long idle refills only up to the burst
    assert [pacer.take(10.0) for _ in range(2)] == [0, 0]
    assert pacer.take(10.0) > 0
