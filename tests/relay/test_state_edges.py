"""relay.state at its edges: limits at their boundaries, exact counters, the close codes, what a
disconnect forgets, and the backplane replies that arrive after their connection is gone."""

from __future__ import annotations

import dataclasses
import itertools
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay import wire
from relay.state import (
    CLOSE_GOING_AWAY,
    CLOSE_NORMAL,
    CLOSE_POLICY,
    CLOSE_TRY_AGAIN_LATER,
    Address,
    Close,
    Connection,
    Counters,
    Hold,
    Lookup,
    Pause,
    Publish,
    Refused,
    Relay,
    RelayLimits,
)
from relay.wire import ErrorCode
from tests.relay.test_backplane_state import linked
from tests.relay.test_state import KEYS, Client

INT_LIMITS = (
    "max_frame_size",
    "send_burst",
    "max_subscriptions",
    "max_watches",
    "max_connections",
    "max_connections_per_address",
    "max_watchers",
    "max_watches_per_address",
    "address_send_burst",
    "address_subscribe_burst",
    "max_handshakes",
    "max_handshakes_per_address",
)
FLOAT_LIMITS = ("send_rate", "idle_timeout", "address_send_rate", "address_subscribe_rate")


def ignore(data: bytes) -> None:
    """A send callback for connections whose output the test does not read."""


# -- constants and value types ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (CLOSE_NORMAL, 1000),
        (CLOSE_GOING_AWAY, 1001),
        (CLOSE_POLICY, 1008),
        (CLOSE_TRY_AGAIN_LATER, 1013),
    ],
)
def test_close_codes_are_the_rfc6455_ones_protocol_md_names(code: int, expected: int) -> None:
    """protocol.md §5.11 and §7: goodbye 1000, shutdown 1001, flood 1008, over a limit 1013."""
    assert code == expected


def _value_objects() -> list[tuple[object, str]]:
    conn = Connection(ignore, "10.0.0.1", bytes(32), 1, 0.0, Address(RelayLimits(), 0.0))
    return [
        (RelayLimits(), "max_connections"),
        (Close(CLOSE_POLICY, ErrorCode.FLOOD), "code"),
        (Publish(conn, 1, KEYS[0].mailbox, b"payload", 0), "local"),
        (Hold(conn, 1, KEYS[0].mailbox), "mailbox"),
        (Lookup(conn, 1, (KEYS[0].mailbox,), (KEYS[0].mailbox,)), "fresh"),
    ]


@pytest.mark.parametrize(("value", "field"), _value_objects())
def test_value_types_refuse_assignment(value: object, field: str) -> None:
    """Limits and the driver's to-do items are values: nobody can change one after the fact."""
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(value, field, getattr(value, field))


def test_refused_says_its_close_reason() -> None:
    relay = Relay(RelayLimits(max_connections=1))
    Client(relay)
    with pytest.raises(Refused) as refused:
        Client(relay)
    assert str(refused.value) == ErrorCode.TOO_MANY_CONNECTIONS
    assert refused.value.args == (ErrorCode.TOO_MANY_CONNECTIONS,)
    assert refused.value.close == Close(CLOSE_TRY_AGAIN_LATER, ErrorCode.TOO_MANY_CONNECTIONS)


# -- limits ----------------------------------------------------------------------------------


def test_default_limits_are_the_ones_protocol_md_documents() -> None:
    """protocol.md §7 lists each relay flag's default; the flags take them from RelayLimits."""
    limits = RelayLimits()
    assert limits.max_frame_size == 65536
    assert limits.send_rate == 100.0
    assert limits.send_burst == 200
    assert limits.max_subscriptions == 64
    assert limits.max_watches == 1024
    assert limits.max_connections == 10_000
    assert limits.max_connections_per_address == 1024
    assert limits.idle_timeout == 60.0
    assert limits.flood_window == 5.0


def test_default_limits_admit_1024_connections_per_address_and_10000_in_all() -> None:
    relay = Relay()
    for _ in range(1024):
        assert relay.accept("10.0.0.1", 0.0)
        relay.handshake_read("10.0.0.1")
        relay.connect(ignore, "10.0.0.1", 0.0)
    assert not relay.accept("10.0.0.1", 0.0)
    for n in range(1024, 10_000):
        relay.connect(ignore, f"10.0.{n // 200}.{n % 200}", 0.0)
    assert len(relay.connections) == 10_000
    with pytest.raises(Refused):
        relay.connect(ignore, "10.9.9.9", 0.0)
    assert relay.rejects[ErrorCode.TOO_MANY_CONNECTIONS] == 2
    assert relay.counters.connections_total == 10_000


@pytest.mark.parametrize("name", INT_LIMITS)
@given(value=st.integers(max_value=0))
def test_every_count_limit_below_one_is_refused(name: str, value: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        RelayLimits(**{name: value})


@pytest.mark.parametrize("name", [n for n in INT_LIMITS if n != "max_frame_size"])
@given(value=st.integers(min_value=1, max_value=2**31))
def test_every_count_limit_from_one_up_is_accepted(name: str, value: int) -> None:
    assert getattr(RelayLimits(**{name: value}), name) == value


LEAST_FRAME = wire.min_frame_size(RelayLimits().announced())[0]


@given(value=st.integers(min_value=1, max_value=LEAST_FRAME - 1))
def test_a_frame_limit_below_the_protocols_largest_fixed_frame_is_refused(value: int) -> None:
    with pytest.raises(ValueError, match=f"max_frame_size must be at least {LEAST_FRAME} bytes"):
        RelayLimits(max_frame_size=value)


@given(value=st.integers(min_value=LEAST_FRAME, max_value=2**31))
def test_a_frame_limit_that_fits_the_hello_announcing_it_is_accepted(value: int) -> None:
    limits = RelayLimits(max_frame_size=value)
    hello = wire.Hello(wire.SUPPORTED_VERSIONS, bytes(32), limits.announced())
    assert len(wire.encode(hello)) <= value


@pytest.mark.parametrize("value", [0.0, -1.0, math.nan, math.inf])
def test_the_flood_window_must_be_a_positive_number_of_seconds(value: float) -> None:
    with pytest.raises(ValueError, match="flood_window"):
        RelayLimits(flood_window=value)


@pytest.mark.parametrize("name", FLOAT_LIMITS)
@given(value=st.floats(max_value=0.0) | st.just(math.nan))
def test_rate_and_idle_timeout_must_be_positive_numbers(name: str, value: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        RelayLimits(**{name: value})


@pytest.mark.parametrize("name", FLOAT_LIMITS)
@given(value=st.floats(min_value=0.0, exclude_min=True, allow_infinity=False))
def test_any_positive_rate_and_idle_timeout_is_accepted(name: str, value: float) -> None:
    assert getattr(RelayLimits(**{name: value}), name) == value


def test_all_count_limits_at_one_make_a_working_relay() -> None:
    """The smallest legal relay: one connection, one frame of budget, one of everything."""
    ones = {**dict.fromkeys(INT_LIMITS, 1), "max_frame_size": wire.DEFAULT_MAX_FRAME_SIZE}
    relay = Relay(RelayLimits(**ones))
    c = Client(relay, "10.0.0.1")
    with pytest.raises(Refused):
        Client(relay, "10.0.0.2")
    c.send(wire.Ping(1))
    c.send(wire.Ping(2))
    assert c.take() == [wire.Pong(1), wire.Error(2, ErrorCode.RATE_LIMITED)]


# -- connections -----------------------------------------------------------------------------


def test_each_connection_refused_over_the_total_limit_is_counted_once() -> None:
    relay = Relay(RelayLimits(max_connections=2))
    Client(relay, "10.0.0.1")
    Client(relay, "10.0.0.2")
    for n in range(3):
        with pytest.raises(Refused):
            relay.connect(ignore, f"10.0.1.{n}", 0.0)
        assert relay.rejects[ErrorCode.TOO_MANY_CONNECTIONS] == n + 1
    assert relay.counters.connections_total == 2
    assert relay.rejects.total() == 3


def test_each_connection_refused_over_the_per_address_limit_is_counted_once() -> None:
    relay = Relay(RelayLimits(max_connections_per_address=1))
    assert relay.accept("10.0.0.1", 0.0)
    for n in range(3):
        assert not relay.accept("10.0.0.1", 0.0)
        assert relay.rejects[ErrorCode.TOO_MANY_CONNECTIONS] == n + 1
    assert relay.accept("10.0.0.2", 0.0)
    assert relay.rejects.total() == 3


def test_connections_total_counts_admissions_not_open_connections() -> None:
    relay = Relay()
    assert relay.counters.connections_total == 0
    a = Client(relay)
    Client(relay)
    assert relay.counters.connections_total == 2
    relay.disconnect(a.conn, 0.0)
    assert relay.counters.connections_total == 2
    Client(relay)
    assert relay.counters.connections_total == 3


def test_a_closed_address_is_forgotten_once_its_budgets_are_full_again() -> None:
    """protocol.md §9: an address outlives its last connection only until its budgets refill,
    so that closing every connection does not refill them."""
    relay = Relay(RelayLimits(address_send_rate=10.0, address_send_burst=10))
    a1, a2, b = Client(relay, "10.0.0.1"), Client(relay, "10.0.0.1"), Client(relay, "10.0.0.2")
    for rid in range(5):
        a1.send(wire.Ping(rid), now=0.0)
    relay.disconnect(a1.conn, 0.0)
    assert dict(relay.per_address) == {"10.0.0.1": 1, "10.0.0.2": 1}
    relay.disconnect(a2.conn, 0.0)
    relay.disconnect(b.conn, 0.0)
    assert dict(relay.per_address) == {}
    relay.tick(0.0)
    assert set(relay.addresses) == {"10.0.0.1"}  # 5 frames short of a full budget
    relay.tick(0.4)
    assert set(relay.addresses) == {"10.0.0.1"}
    relay.tick(1.5)
    assert relay.addresses == {}


def test_disconnect_leaves_the_connection_holding_no_mailbox_ids() -> None:
    """A backplane reply still in flight keeps the Connection alive; it must hold nothing."""
    relay, _ = linked()
    c = Client(relay)
    hold = c.send(KEYS[0].subscribe(1, c.hello.challenge))
    assert isinstance(hold, Hold)
    relay.held(hold)
    lookup = c.send(wire.Watch(2, (KEYS[1].mailbox,)))
    assert isinstance(lookup, Lookup)
    assert c.conn.awaiting == {KEYS[1].mailbox}
    relay.disconnect(c.conn, 0.0)
    assert c.conn.subscriptions == set()
    assert c.conn.watches == set()
    assert c.conn.awaiting == set()
    assert relay.subscribers == {}
    assert relay.watchers == {}


# -- counters --------------------------------------------------------------------------------


def test_a_new_relay_has_counted_nothing() -> None:
    relay = Relay()
    assert dataclasses.astuple(relay.counters) == (0, 0, 0, 0, 0, 0)
    assert dataclasses.astuple(Counters()) == (0, 0, 0, 0, 0, 0)
    assert relay.rejects.total() == 0


def test_frames_and_bytes_out_are_exactly_what_the_send_callbacks_got() -> None:
    relay = Relay()
    out: list[bytes] = []
    conn = relay.connect(out.append, "10.0.0.1", 0.0)
    assert relay.counters.frames_out == 1
    assert relay.counters.bytes_out == len(out[0])  # the hello
    ping = wire.encode(wire.Ping(1))
    relay.receive(conn, ping, 0.0)
    relay.receive_text(conn, 0.0)
    relay.receive(conn, b"\xc1", 0.0)
    assert [type(wire.decode(d)) for d in out] == [wire.Hello, wire.Pong, wire.Error, wire.Error]
    assert relay.counters.frames_out == 4
    assert relay.counters.bytes_out == sum(len(d) for d in out)
    assert relay.counters.frames_in == 3
    assert relay.counters.bytes_in == len(ping) + 1  # a text message is not counted in bytes


def test_one_text_message_is_exactly_one_frame_in() -> None:
    relay = Relay()
    c = Client(relay)
    for n in range(1, 4):
        relay.receive_text(c.conn, 0.0)
        assert relay.counters.frames_in == n
    assert relay.counters.bytes_in == 0
    assert relay.rejects[ErrorCode.MALFORMED] == 3


def test_nothing_is_counted_or_sent_for_a_closed_connection() -> None:
    relay = Relay()
    c = Client(relay)
    relay.disconnect(c.conn, 0.0)
    before = dataclasses.astuple(relay.counters)
    assert relay.receive_text(c.conn, 0.0) is None
    assert relay.receive(c.conn, wire.encode(wire.Ping(1)), 0.0) is None
    assert c.inbox == []
    assert dataclasses.astuple(relay.counters) == before
    assert relay.rejects.total() == 0


# -- the token bucket ------------------------------------------------------------------------


# Floods at 128 frames/s against 8/s: binary fractions keep the clock exact.
TICK = 1 / 128


def flood(c: Client, start: float, stop: float) -> tuple[list[object], float]:
    """A ping every TICK from ``start`` until ``stop`` or a close: what the state answered to
    each, and the time of the last frame sent."""
    results: list[object] = []
    now = start
    for step in range(round((stop - start) / TICK) + 1):
        now = start + step * TICK
        results.append(c.send(wire.Ping(step), now))
        if isinstance(results[-1], Close):
            break
    return results, now


def test_a_connection_over_its_rate_for_longer_than_the_flood_window_is_closed() -> None:
    """protocol.md §7: the frames that a refill lets through do not end a flood; flooding
    for longer than the window does, at the next dropped frame."""
    relay = Relay(RelayLimits(send_rate=8.0, send_burst=4, flood_window=2.0))
    c = Client(relay)
    results, closed_at = flood(c, 0.0, 10.0)
    first_drop = 4 * TICK
    assert results[:5] == [None] * 4 + [Pause(TICK * 16)]
    assert results[-1] == Close(CLOSE_POLICY, ErrorCode.FLOOD)
    assert Close(CLOSE_POLICY, ErrorCode.FLOOD) not in results[:-1]
    assert first_drop + 2.0 < closed_at <= first_drop + 2.0 + 2 * TICK
    pongs = [f for f in c.take() if isinstance(f, wire.Pong)]
    assert 4 + 16 <= len(pongs) <= 4 + 17  # the burst, then 8/s all through the flood
    assert relay.rejects[ErrorCode.FLOOD] == 1
    assert relay.rejects[ErrorCode.RATE_LIMITED] == len(results) - 1 - len(pongs)


def test_rate_limited_is_said_at_most_once_per_refill_interval() -> None:
    relay = Relay(RelayLimits(send_rate=8.0, send_burst=4, flood_window=2.0))
    c = Client(relay)
    told: list[float] = []
    pongs = 0
    for step in range(256):
        c.send(wire.Ping(step), step * TICK)
        for frame in c.take():
            if isinstance(frame, wire.Error):
                told.append(step * TICK)
            pongs += isinstance(frame, wire.Pong)
    assert pongs == 4 + 15  # the burst, then what 1.99 s refill
    assert relay.rejects[ErrorCode.RATE_LIMITED] == 256 - pongs
    # 237 frames dropped over 1.97 s, and told about 16 times, 1/8 s apart.
    assert len(told) == 16
    assert all(later - earlier >= 1 / 8 for earlier, later in itertools.pairwise(told))


@pytest.mark.parametrize(("quiet", "closed"), [(0.875, True), (1.0, False)])
def test_a_second_without_a_dropped_frame_ends_a_flood(quiet: float, closed: bool) -> None:
    relay = Relay(RelayLimits(send_rate=8.0, send_burst=4, flood_window=2.0))
    c = Client(relay)
    results, last = flood(c, 0.0, 1.5)
    assert not any(isinstance(r, Close) for r in results)
    # Another 1.5 s of flood after the quiet spell: past the window only if it is the same.
    results, _ = flood(c, last + quiet, last + quiet + 1.5)
    assert isinstance(results[-1], Close) is closed


def test_flooding_lasts_from_a_dropped_frame_until_a_second_passes_without_one() -> None:
    relay = Relay(RelayLimits(send_rate=8.0, send_burst=1, flood_window=10.0))
    c = Client(relay)
    assert not relay.flooding(c.conn, 0.0)
    c.send(wire.Ping(1), 0.0)
    assert not relay.flooding(c.conn, 0.0)  # within budget
    assert isinstance(c.send(wire.Ping(2), 0.0), Pause)
    assert relay.flooding(c.conn, 0.0)
    assert c.send(wire.Ping(3), 0.5) is None  # a refill lets one through: still flooding
    assert relay.flooding(c.conn, 0.5)
    assert relay.flooding(c.conn, 1.0 - TICK)
    assert not relay.flooding(c.conn, 1.0)


def test_a_driver_that_waits_out_each_pause_is_still_closed_when_refills_are_slow() -> None:
    """One token every 2 s: a driver that reads nothing until each Pause ends sees a drop
    every 2 s, longer than FLOOD_PAUSE; the flood lasts until 2 refill intervals pass clean."""
    relay = Relay(RelayLimits(send_rate=0.5, send_burst=1, flood_window=5.0))
    c = Client(relay)
    now, results = 0.0, []
    for rid in range(20):
        result = c.send(wire.Ping(rid), now)
        results.append(result)
        if isinstance(result, Close):
            break
        if isinstance(result, Pause):
            assert result.until > now
            now = result.until  # the next frame comes exactly when its token is due
    flood_close = Close(CLOSE_POLICY, ErrorCode.FLOOD)
    assert results == [None, Pause(2.0), None, Pause(4.0), None, Pause(6.0), None, flood_close]
    assert now == 6.0
    assert [f for f in c.take() if isinstance(f, wire.Pong)] == [wire.Pong(r) for r in (0, 2, 4, 6)]


def test_a_dropped_frame_is_not_read() -> None:
    """Over budget, bytes that are not even msgpack cost no decoding: no malformed, only the
    one rate_limited of this refill interval, which cannot name a request."""
    relay = Relay(RelayLimits(send_rate=10.0, send_burst=1))
    c = Client(relay)
    c.send(wire.Ping(1))
    assert isinstance(c.send(b"\xc1 not msgpack"), Pause)
    assert isinstance(c.send(b"\xc1 not msgpack"), Pause)
    assert c.take() == [wire.Pong(1), wire.Error(None, ErrorCode.RATE_LIMITED)]
    assert relay.rejects == {ErrorCode.RATE_LIMITED: 2}


def test_a_clock_that_steps_back_neither_drains_nor_refills_the_bucket() -> None:
    relay = Relay(RelayLimits(send_rate=1.0, send_burst=3))
    c = Client(relay, now=10.0)
    c.send(wire.Ping(1), now=10.0)
    c.send(wire.Ping(2), now=5.0)  # 5 s in the past: still just one token
    c.send(wire.Ping(3), now=10.0)
    c.send(wire.Ping(4), now=10.0)
    assert c.take() == [
        wire.Pong(1),
        wire.Pong(2),
        wire.Pong(3),
        wire.Error(4, ErrorCode.RATE_LIMITED),
    ]
    c.send(wire.Ping(5), now=11.0)  # refills from 10.0, the latest time seen, not from 5.0
    c.send(wire.Ping(6), now=11.0)
    assert c.take() == [wire.Pong(5), wire.Error(6, ErrorCode.RATE_LIMITED)]


# -- watches ---------------------------------------------------------------------------------


def test_an_unwatched_mailbox_frees_its_watch_slot() -> None:
    relay = Relay(RelayLimits(max_watches=1))
    c = Client(relay)
    c.send(wire.Watch(1, (KEYS[0].mailbox,)))
    c.send(wire.Unwatch(2, (KEYS[0].mailbox,)))
    c.send(wire.Watch(3, (KEYS[1].mailbox,)))
    assert c.take() == [wire.Watching(1, ()), wire.Ok(2), wire.Watching(3, ())]
    assert c.conn.watches == {KEYS[1].mailbox}


def test_watching_again_after_an_unwatch_brings_presence_back() -> None:
    relay = Relay()
    watcher, sub = Client(relay), Client(relay)
    m = KEYS[0].mailbox
    watcher.send(wire.Watch(1, (m,)))
    watcher.send(wire.Unwatch(2, (m,)))
    watcher.send(wire.Watch(3, (m,)))
    watcher.take()
    sub.subscribe(KEYS[0])
    assert watcher.take() == [wire.Presence(m, True)]


# -- replies that complete through the backplane ---------------------------------------------


@pytest.mark.parametrize(("remote", "delivered"), [(0, 1), (-1, 1), (2, 3)])
def test_a_sends_count_is_local_plus_what_other_relays_took(remote: int, delivered: int) -> None:
    relay, _ = linked()
    sender, sub = Client(relay), Client(relay)
    sub.subscribe(KEYS[0])
    publish = sender.send(wire.Send(4, KEYS[0].mailbox, b"x"))
    assert isinstance(publish, Publish)
    relay.sent(publish, remote)
    assert sender.take() == [wire.Sent(4, delivered)]


def test_a_send_nobody_took_anywhere_is_reported_offline() -> None:
    relay, _ = linked()
    sender = Client(relay)
    publish = sender.send(wire.Send(4, KEYS[0].mailbox, b"x"))
    assert isinstance(publish, Publish)
    relay.sent(publish, 0)
    (reply,) = sender.take()
    assert reply == wire.Sent(4, 0)
    assert isinstance(reply, wire.Sent)
    assert reply.offline


def test_a_lookup_finished_after_its_connection_closed_sends_nothing() -> None:
    relay, _ = linked()
    c = Client(relay)
    lookup = c.send(wire.Watch(1, (KEYS[0].mailbox,)))
    assert isinstance(lookup, Lookup)
    relay.disconnect(c.conn, 0.0)
    frames_out = relay.counters.frames_out
    relay.watched(lookup)
    assert c.inbox == []
    assert relay.counters.frames_out == frames_out


def test_every_remote_payload_is_counted_delivered_or_not() -> None:
    relay, _ = linked(RelayLimits(max_frame_size=200))
    sub = Client(relay)
    sub.subscribe(KEYS[0])
    relay.deliver_remote(KEYS[0].mailbox, b"fits")
    assert relay.counters.remote_in == 1
    relay.deliver_remote(KEYS[1].mailbox, b"nobody here")
    assert relay.counters.remote_in == 2
    relay.deliver_remote(KEYS[0].mailbox, b"p" * 500)
    assert relay.counters.remote_in == 3
    assert relay.rejects[ErrorCode.TOO_LARGE] == 1


def test_a_remote_payload_exactly_at_the_frame_limit_is_delivered() -> None:
    m = KEYS[0].mailbox
    fits = b"p" * 1000
    limit = len(wire.encode(wire.Deliver(m, fits)))
    relay, _ = linked(RelayLimits(max_frame_size=limit))
    sub = Client(relay)
    sub.subscribe(KEYS[0])
    assert relay.subscribers == {m: {sub.conn}}
    assert relay.deliver_remote(m, fits) == 1
    assert sub.take() == [wire.Deliver(m, fits)]
    assert relay.deliver_remote(m, fits + b"p") == 0
    assert sub.take() == []
    assert relay.rejects[ErrorCode.TOO_LARGE] == 1
