"""relay.state against cheap abuse, sans-I/O: presence coalescing, the watcher and per-address
watch caps, the per-address frame and signature-check budgets, and the accept-time counts."""

from __future__ import annotations

import heapq
import itertools
import os

from hypothesis import example, given, settings
from hypothesis import strategies as st

from relay import wire
from relay.state import Address, Hold, Lookup, Relay, RelayLimits, Wait
from relay.wire import ErrorCode
from tests.relay.test_backplane_state import Recorder
from tests.relay.test_state import KEYS


class Clock:
    def __init__(self) -> None:
        self.now = 0.0


class Peer:
    """A connection whose every frame from the relay is kept with the time it was sent."""

    def __init__(self, relay: Relay, clock: Clock, address: str = "10.0.0.1") -> None:
        self.relay = relay
        self.clock = clock
        self.got: list[tuple[float, wire.Frame]] = []
        self.conn = relay.connect(self._take, address, clock.now)
        hello = self.got.pop(0)[1]
        assert isinstance(hello, wire.Hello)
        self.challenge = hello.challenge

    def _take(self, data: bytes) -> None:
        self.got.append((self.clock.now, wire.decode(data)))

    def send(self, frame: wire.Frame) -> object:
        """One frame in, and whatever the driver would complete at once (Hold, Lookup)."""
        result = self.relay.receive(self.conn, wire.encode(frame), self.clock.now)
        if isinstance(result, Hold):
            self.relay.held(result)
        elif isinstance(result, Lookup):
            self.relay.watched(result)
        return result

    def frames(self) -> list[wire.Frame]:
        out = [frame for _, frame in self.got]
        self.got.clear()
        return out


def presence(m: bytes, online: bool) -> wire.Presence:
    return wire.Presence(m, online)


# -- presence coalescing ---------------------------------------------------------------------


def test_the_first_change_is_told_at_once_and_the_next_when_the_interval_ends() -> None:
    relay, clock = Relay(), Clock()
    watcher, sub = Peer(relay, clock), Peer(relay, clock)
    m = KEYS[0].mailbox
    watcher.send(wire.Watch(1, (m,)))
    assert watcher.frames() == [wire.Watching(1, ())]
    sub.send(KEYS[0].subscribe(1, sub.challenge))
    assert watcher.frames() == [presence(m, True)]
    clock.now = 0.3
    sub.send(wire.Unsubscribe(2, m))
    clock.now = 0.6
    sub.send(KEYS[0].subscribe(3, sub.challenge))
    clock.now = 0.7
    sub.send(wire.Unsubscribe(4, m))
    assert watcher.frames() == []
    assert relay.tick(0.9) == 1.0  # the notice is due when the interval ends
    assert watcher.frames() == []
    clock.now = 1.0
    relay.tick(1.0)
    assert watcher.got == [(1.0, presence(m, False))]  # the latest state, once


def test_a_state_that_went_back_to_what_watchers_were_told_is_not_told() -> None:
    relay, clock = Relay(), Clock()
    watcher, sub = Peer(relay, clock), Peer(relay, clock)
    m = KEYS[0].mailbox
    watcher.send(wire.Watch(1, (m,)))
    sub.send(KEYS[0].subscribe(1, sub.challenge))
    watcher.frames()
    for step in range(1, 9):  # a subscriber that comes and goes every 0.1 s
        clock.now = step / 10
        if step % 2:
            sub.send(wire.Unsubscribe(step, m))
        else:
            sub.send(KEYS[0].subscribe(step, sub.challenge))
    relay.tick(1.0)
    assert watcher.frames() == []
    assert relay.quiet == {}  # nothing left to remember


def test_an_expired_interval_not_yet_ticked_does_not_hold_a_change_back() -> None:
    relay, clock = Relay(), Clock()
    watcher, sub = Peer(relay, clock), Peer(relay, clock)
    m = KEYS[0].mailbox
    watcher.send(wire.Watch(1, (m,)))
    sub.send(KEYS[0].subscribe(1, sub.challenge))
    clock.now = 1.5  # the driver's tick is late
    sub.send(wire.Unsubscribe(2, m))
    assert watcher.got[-1] == (1.5, presence(m, False))


def test_a_new_watcher_is_answered_what_the_other_watchers_were_last_told() -> None:
    """Every watcher of a mailbox has the same view: a watch during the interval hears the
    state of the last notice, and the notice at its end corrects both."""
    relay, clock = Relay(), Clock()
    first, sub, second = Peer(relay, clock), Peer(relay, clock), Peer(relay, clock)
    m = KEYS[0].mailbox
    first.send(wire.Watch(1, (m,)))
    sub.send(KEYS[0].subscribe(1, sub.challenge))
    clock.now = 0.5
    sub.send(wire.Unsubscribe(2, m))
    second.send(wire.Watch(1, (m,)))
    assert second.frames() == [wire.Watching(1, (m,))]
    relay.tick(1.0)
    assert first.frames()[-1] == second.frames()[-1] == presence(m, False)


def test_presence_from_other_relays_is_coalesced_the_same_way() -> None:
    relay, clock = Relay(), Clock()
    relay.attach(Recorder())
    watcher = Peer(relay, clock)
    m = KEYS[0].mailbox
    watcher.send(wire.Watch(1, (m,)))
    watcher.frames()
    for step in range(10):
        relay.remote_presence(m, step % 2 == 0, step / 20)
    assert watcher.frames() == [presence(m, True)]
    relay.tick(1.0)
    assert watcher.frames() == [presence(m, False)]
    relay.remote_presence(m, True, 1.5)
    relay.remote_lost(1.6)
    relay.tick(2.0)
    assert watcher.frames() == []  # back to what it was told before the tick


def test_tick_says_when_it_is_next_due_and_forgets_what_it_sent() -> None:
    relay, clock = Relay(RelayLimits(presence_interval=0.5)), Clock()
    watcher, sub = Peer(relay, clock), Peer(relay, clock)
    watcher.send(wire.Watch(1, (KEYS[0].mailbox, KEYS[1].mailbox)))
    assert relay.tick(0.0) == 1.0  # nothing pending: within a second
    sub.send(KEYS[0].subscribe(1, sub.challenge))
    clock.now = 0.25
    sub.send(KEYS[1].subscribe(2, sub.challenge))
    assert relay.tick(0.3) == 0.5
    assert relay.tick(0.5) == 0.75
    assert relay.tick(0.75) == 1.75
    assert relay.quiet == {}


def test_an_unwatched_mailbox_is_told_to_nobody_and_kept_nowhere() -> None:
    relay, clock = Relay(), Clock()
    sub = Peer(relay, clock)
    for rid in range(10):
        sub.send(KEYS[0].subscribe(rid, sub.challenge))
        sub.send(wire.Unsubscribe(rid, KEYS[0].mailbox))
    assert relay.quiet == {}


STEPS = (0.05, 0.1, 0.25, 0.5, 1.0)
# (what, which connection or STEPS index, which mailbox or online)
OPS = st.tuples(
    st.sampled_from(["advance", "sub", "unsub", "drop", "watch", "unwatch", "remote"]),
    st.integers(0, 2),
    st.integers(0, 2),
)


@settings(max_examples=300, deadline=None)
@given(ops=st.lists(OPS, max_size=60), linked=st.booleans())
@example(ops=[("advance", 0, 0), ("advance", 2, 2), ("sub", 0, 0), ("unsub", 0, 0)], linked=False)
def test_whatever_the_churn_each_watcher_ends_up_told_the_state_and_never_twice_a_second(
    ops: list[tuple[str, int, int]], linked: bool
) -> None:
    relay, clock = Relay(), Clock()
    if linked:
        relay.attach(Recorder())
    subs = [Peer(relay, clock) for _ in range(3)]
    watchers = [Peer(relay, clock) for _ in range(3)]
    boxes = [k.mailbox for k in KEYS[:3]]
    asked: list[tuple[bytes, ...]] = [() for _ in watchers]
    knows: list[dict[bytes, bool]] = [{} for _ in watchers]  # what each was told last
    notices: list[list[tuple[float, bytes]]] = [[] for _ in watchers]

    def read() -> None:
        for i, w in enumerate(watchers):
            for at, frame in w.got:
                if isinstance(frame, wire.Presence):
                    knows[i][frame.mailbox] = frame.online
                    notices[i].append((at, frame.mailbox))
                elif isinstance(frame, wire.Watching):
                    for m in asked[i]:
                        knows[i][m] = m in frame.online
            w.got.clear()

    def advance(dt: float) -> None:  # a driver ticking at least every 0.25 s
        end = clock.now + dt
        while clock.now < end:
            clock.now = min(end, clock.now + 0.25)
            relay.tick(clock.now)
            read()

    for i, w in enumerate(watchers):  # everyone watches everything to begin with
        asked[i] = tuple(boxes)
        w.send(wire.Watch(1, asked[i]))
    read()
    for kind, i, k in ops:
        if kind == "advance":
            advance(STEPS[i + k])
        elif kind == "sub":
            subs[i].send(KEYS[k].subscribe(1, subs[i].challenge))
        elif kind == "unsub":
            subs[i].send(wire.Unsubscribe(1, boxes[k]))
        elif kind == "drop":
            relay.disconnect(subs[i].conn, clock.now)
            subs[i] = Peer(relay, clock)
        elif kind == "watch":
            asked[i] = (boxes[k],)
            watchers[i].send(wire.Watch(1, asked[i]))
        elif kind == "unwatch":
            watchers[i].send(wire.Unwatch(1, (boxes[k],)))
        elif linked:
            relay.remote_presence(boxes[i], k > 0, clock.now)
        read()
        for i in range(len(watchers)):  # drop what is no longer watched
            knows[i] = {m: v for m, v in knows[i].items() if m in watchers[i].conn.watches}
    advance(2.0)
    for i, w in enumerate(watchers):
        for m in w.conn.watches:
            assert knows[i][m] == relay.online(m)
        for m in boxes:
            times = [at for at, box in notices[i] if box == m]
            assert all(b - a >= 1.0 - 1e-9 for a, b in itertools.pairwise(times))
    assert relay.quiet == {}


def test_a_notice_to_more_than_two_watchers_is_paid_by_the_address_that_caused_it() -> None:
    """Each watcher told beyond the two a pairwise mailbox has costs the subscriber's address
    a frame token, also when the notice goes out at the end of the quiet interval."""
    limits = RelayLimits(address_send_rate=10.0, address_send_burst=10)
    relay, clock = Relay(limits), Clock()
    watchers = [Peer(relay, clock, f"10.0.1.{n}") for n in range(6)]
    sub = Peer(relay, clock, "10.0.0.9")
    m = KEYS[0].mailbox
    for w in watchers:
        w.send(wire.Watch(1, (m,)))
    sub.send(KEYS[0].subscribe(1, sub.challenge))  # 1 token, and 4 for the notice
    assert relay.addresses["10.0.0.9"].frames.tokens == 5
    clock.now = 0.5
    sub.send(wire.Unsubscribe(2, m))  # held back: the notice waits for the interval's end
    assert relay.addresses["10.0.0.9"].frames.tokens == 9
    clock.now = 1.0
    relay.tick(1.0)
    assert all(w.frames()[-1] == presence(m, False) for w in watchers)
    assert relay.addresses["10.0.0.9"].frames.tokens == 6  # full again, then paid 4


def test_two_watchers_are_told_for_nothing_and_debt_stops_a_burst_deep() -> None:
    limits = RelayLimits(address_send_rate=10.0, address_send_burst=10)
    relay, clock = Relay(limits), Clock()
    bucket = relay.addresses.setdefault("10.0.0.9", Address(limits, 0.0)).frames
    pair = [Peer(relay, clock, f"10.0.1.{n}") for n in range(2)]
    sub = Peer(relay, clock, "10.0.0.9")
    for w in pair:
        w.send(wire.Watch(1, (KEYS[0].mailbox,)))
    sub.send(KEYS[0].subscribe(1, sub.challenge))
    assert bucket.tokens == 9
    bucket.owe(1000, 0.0)
    assert bucket.tokens == -10
    assert sub.send(wire.Ping(2)) == Wait(1.1, wire.encode(wire.Ping(2)))


# -- watch caps ------------------------------------------------------------------------------


def test_a_mailbox_takes_at_most_max_watchers_and_a_refused_watch_changes_nothing() -> None:
    relay, clock = Relay(RelayLimits(max_watchers=2)), Clock()
    a, b, c = (Peer(relay, clock, f"10.0.0.{n}") for n in range(3))
    m, other = KEYS[0].mailbox, KEYS[1].mailbox
    a.send(wire.Watch(1, (m,)))
    b.send(wire.Watch(1, (m,)))
    c.send(wire.Watch(1, (other, m)))
    assert c.frames() == [wire.Error(1, ErrorCode.TOO_MANY_WATCHERS)]
    assert c.conn.watches == set()
    assert relay.watchers == {m: {a.conn, b.conn}}
    b.send(wire.Watch(2, (m,)))  # already watching: counts once
    assert b.frames()[-1] == wire.Watching(2, ())
    a.send(wire.Unwatch(2, (m,)))
    c.send(wire.Watch(2, (other, m)))
    assert c.frames() == [wire.Watching(2, ())]
    assert relay.rejects[ErrorCode.TOO_MANY_WATCHERS] == 1


def test_watches_are_capped_over_all_connections_of_an_address() -> None:
    relay, clock = Relay(RelayLimits(max_watches_per_address=4)), Clock()
    a1, a2, b = Peer(relay, clock), Peer(relay, clock), Peer(relay, clock, "10.0.0.2")
    boxes = [os.urandom(32) for _ in range(6)]
    a1.send(wire.Watch(1, tuple(boxes[:3])))
    a2.send(wire.Watch(1, tuple(boxes[3:5])))
    assert a2.frames() == [wire.Error(1, ErrorCode.TOO_MANY_ADDRESS_WATCHES)]
    assert a2.conn.watches == set()
    a2.send(wire.Watch(2, (boxes[3],)))
    assert a2.frames() == [wire.Watching(2, ())]
    b.send(wire.Watch(1, tuple(boxes[:4])))  # another address has its own count
    assert b.frames() == [wire.Watching(1, ())]
    a1.send(wire.Unwatch(2, (boxes[0],)))
    relay.disconnect(a2.conn, 0.0)
    a1.send(wire.Watch(3, tuple(boxes[3:5])))
    assert a1.frames()[-1] == wire.Watching(3, ())
    assert relay.addresses["10.0.0.1"].watches == 4


# -- the budgets of an address ---------------------------------------------------------------


def test_frames_over_the_address_budget_wait_for_their_token_and_are_then_handled() -> None:
    limits = RelayLimits(address_send_rate=10.0, address_send_burst=2)
    relay, clock = Relay(limits), Clock()
    a, b, other = Peer(relay, clock), Peer(relay, clock), Peer(relay, clock, "10.0.0.2")
    assert a.send(wire.Ping(1)) is None
    assert b.send(wire.Ping(1)) is None
    waits = [a.send(wire.Ping(2)), b.send(wire.Ping(2))]  # the bucket goes into debt
    assert waits == [Wait(0.1, wire.encode(wire.Ping(2))), Wait(0.2, wire.encode(wire.Ping(2)))]
    assert other.send(wire.Ping(1)) is None  # another address is not affected
    assert a.frames() == b.frames() == [wire.Pong(1)]
    for peer, wait in zip((a, b), waits, strict=True):
        assert isinstance(wait, Wait)
        assert relay.resume(peer.conn, wait, wait.until) is None
        assert peer.frames() == [wire.Pong(2)]
    assert relay.rejects.total() == 0  # late, never refused


def test_a_text_message_waits_like_a_frame() -> None:
    relay, clock = Relay(RelayLimits(address_send_rate=10.0, address_send_burst=1)), Clock()
    a = Peer(relay, clock)
    assert relay.receive_text(a.conn, 0.0) is None
    wait = relay.receive_text(a.conn, 0.0)
    assert wait == Wait(0.1, None)
    assert isinstance(wait, Wait)
    relay.resume(a.conn, wait, 0.1)
    assert a.frames() == [wire.Error(None, ErrorCode.MALFORMED)] * 2


def test_signature_checks_over_the_address_budget_wait_and_mismatched_keys_cost_none() -> None:
    checks: list[bytes] = []

    def verify(key: bytes, sig: bytes, message: bytes) -> bool:
        checks.append(key)
        return False

    limits = RelayLimits(address_subscribe_rate=4.0, address_subscribe_burst=1)
    relay, clock = Relay(limits, verify=verify), Clock()
    a = Peer(relay, clock)
    good = KEYS[0].subscribe(1, a.challenge)
    for rid in range(3):  # a key that is not the mailbox's is refused before any check
        a.send(wire.Subscribe(rid, KEYS[1].mailbox, good.key, good.sig))
    assert a.frames() == [wire.Error(r, ErrorCode.KEY_MISMATCH) for r in range(3)]
    assert a.send(good) is None
    wait = a.send(KEYS[0].subscribe(2, a.challenge))
    assert isinstance(wait, Wait)
    assert wait.until == 0.25
    assert isinstance(wait.frame, wire.Subscribe)
    assert len(checks) == 1
    assert relay.resume(a.conn, wait, 0.25) is None
    assert len(checks) == 2
    assert a.frames() == [wire.Error(1, ErrorCode.BAD_SIGNATURE), wire.Error(2, "bad_signature")]


def test_a_connection_closed_while_it_waits_has_its_frame_dropped() -> None:
    relay, clock = Relay(RelayLimits(address_send_rate=10.0, address_send_burst=1)), Clock()
    a = Peer(relay, clock)
    a.send(wire.Ping(1))
    wait = a.send(wire.Ping(2))
    assert isinstance(wait, Wait)
    relay.disconnect(a.conn, 0.05)
    assert relay.resume(a.conn, wait, 0.1) is None
    assert a.frames() == [wire.Pong(1)]


def run_driver(
    relay: Relay, starts: list[tuple[float, Peer, list[bytes]]], until: float = 60.0
) -> dict[Peer, list[float]]:
    """Simulate the server: each connection's frames one after the other, from its start,
    each handed in when the previous one is done (after its Wait, if any). Returns each
    connection's reply times."""
    clock = starts[0][1].clock
    queue: list[tuple[float, int, Peer, list[bytes], Wait | None]] = []
    order = itertools.count()
    for start, peer, frames in starts:
        heapq.heappush(queue, (start, next(order), peer, list(frames), None))
    replies: dict[Peer, list[float]] = {peer: [] for _, peer, _ in starts}
    while queue:
        at, _, peer, frames, wait = heapq.heappop(queue)
        assert at < until
        clock.now = at
        relay.tick(at)
        if wait is not None:
            result = relay.resume(peer.conn, wait, at)
        else:
            result = relay.receive(peer.conn, frames.pop(0), at)
        if isinstance(result, Wait):
            heapq.heappush(queue, (result.until, next(order), peer, frames, result))
            continue
        assert result is None
        replies[peer] += [t for t, _ in peer.got]
        assert not any(isinstance(f, wire.Error) for _, f in peer.got), peer.got
        peer.got.clear()
        if frames:
            heapq.heappush(queue, (at, next(order), peer, frames, None))
    return replies


def fake_subscribe(rid: int) -> bytes:
    key = os.urandom(32)
    return wire.encode(wire.Subscribe(rid, wire.mailbox_id(key), key, bytes(64)))


def accept_all(key: bytes, sig: bytes, message: bytes) -> bool:
    return True


def test_a_client_with_500_contact_connections_comes_up_under_the_default_budgets() -> None:
    """One address, 500 connections opened over 2 s, each subscribing 3 mailboxes, watching
    its contact's and sending a message: nothing is refused and all is answered within 3.5 s."""
    relay, clock = Relay(verify=accept_all), Clock()
    starts = []
    for n in range(500):
        clock.now = n * 2.0 / 500
        peer = Peer(relay, clock)
        frames = [fake_subscribe(r) for r in range(3)]
        frames += [wire.encode(wire.Watch(4, (os.urandom(32),)))]
        frames += [wire.encode(wire.Send(5, os.urandom(32), bytes(200)))]
        starts.append((clock.now, peer, frames))
    replies = run_driver(relay, starts)
    assert all(len(times) == 5 for times in replies.values())
    assert max(t for times in replies.values() for t in times) < 3.5
    assert relay.rejects.total() == 0
    assert sum(len(c.subscriptions) for c in relay.connections) == 1500


def test_200_connections_of_one_address_get_no_more_than_its_budgets() -> None:
    """Bad-signature subscribes from 200 connections for 5 s: the checks stay within the
    address's check budget, and frames within its frame budget."""
    checks = 0

    def verify(key: bytes, sig: bytes, message: bytes) -> bool:
        nonlocal checks
        checks += 1
        return False

    relay, clock = Relay(verify=verify), Clock()
    queue: list[tuple[float, int, Peer, Wait | None]] = []
    order = itertools.count()
    peers = [Peer(relay, clock) for _ in range(200)]
    for peer in peers:
        heapq.heappush(queue, (0.0, next(order), peer, None))
    handled = 0
    while queue and queue[0][0] < 5.0:
        at, _, peer, wait = heapq.heappop(queue)
        clock.now = at
        if wait is not None:
            result: object = relay.resume(peer.conn, wait, at)
        else:
            result = relay.receive(peer.conn, fake_subscribe(1), at)
        peer.got.clear()
        if isinstance(result, Wait):
            heapq.heappush(queue, (result.until, next(order), peer, result))
            continue
        handled += 1
        heapq.heappush(queue, (at + 0.01, next(order), peer, None))  # 100/s, its own rate
    limits = relay.limits
    assert checks <= limits.address_subscribe_burst + 5 * limits.address_subscribe_rate
    assert handled <= limits.address_send_burst + 5 * limits.address_send_rate
    assert relay.rejects[ErrorCode.RATE_LIMITED] == 0  # each connection kept to its own rate


# -- before the handshake --------------------------------------------------------------------


def test_unfinished_handshakes_are_capped_per_address_and_in_all() -> None:
    relay = Relay(RelayLimits(max_handshakes=5, max_handshakes_per_address=3))
    assert [relay.accept("a", 0.0) for _ in range(4)] == [True, True, True, False]
    relay.handshake_read("a")  # one got through its handshake: another may start
    assert relay.accept("a", 0.0)
    assert not relay.accept("a", 0.0)
    assert [relay.accept("b", 0.0) for _ in range(3)] == [True, True, False]  # 5 in all
    relay.socket_closed("b", opening=True)
    assert relay.accept("c", 0.0)
    assert relay.opening == 5
    assert relay.rejects[ErrorCode.TOO_MANY_CONNECTIONS] == 3
    assert relay.addresses["a"].sockets == 4


def test_sockets_count_against_their_address_until_closed() -> None:
    relay = Relay(RelayLimits(max_connections_per_address=2))
    assert relay.accept("a", 0.0)
    relay.handshake_read("a")
    assert relay.accept("a", 0.0)
    assert not relay.accept("a", 0.0)
    relay.socket_closed("a", opening=False)
    assert relay.accept("a", 0.0)
    for _ in range(2):
        relay.socket_closed("a", opening=True)
    assert relay.opening == 0
    relay.tick(0.0)
    assert relay.addresses == {}
