"""relay.state alone: bytes in, frames out, an explicit clock, no sockets."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from relay import wire
from relay.state import Close, Connection, Pause, Refused, Relay, RelayLimits
from relay.wire import ErrorCode
from tests.relay.helpers import MailboxKey

KEYS = [MailboxKey.generate() for _ in range(4)]


class Client:
    """A fake peer: what the relay sent it, decoded."""

    def __init__(self, relay: Relay, address: str = "10.0.0.1", now: float = 0.0) -> None:
        self.relay = relay
        self.inbox: list[bytes] = []
        self.conn: Connection = relay.connect(self.inbox.append, address, now)
        hello = wire.decode(self.inbox.pop(0))
        assert isinstance(hello, wire.Hello)
        self.hello = hello

    def send(self, frame: wire.Frame | bytes, now: float = 0.0) -> object:
        """Hand one frame in; returns what the state asks of its driver (None, Close, ...)."""
        data = frame if isinstance(frame, bytes) else wire.encode(frame)
        return self.relay.receive(self.conn, data, now)

    def take(self) -> list[wire.Frame]:
        frames = [wire.decode(d) for d in self.inbox]
        self.inbox.clear()
        return frames

    def subscribe(self, key: MailboxKey, rid: int = 1) -> list[wire.Frame]:
        self.send(key.subscribe(rid, self.hello.challenge))
        return self.take()


def counter_random() -> object:
    seq = itertools.count()
    return lambda n: next(seq).to_bytes(n, "big")


def test_hello_carries_versions_limits_and_a_fresh_challenge() -> None:
    limits = RelayLimits(max_subscriptions=3, send_rate=5.0)
    relay = Relay(limits)
    a, b = Client(relay), Client(relay)
    assert a.hello.versions == (1,)
    assert a.hello.limits == limits.announced()
    assert a.hello.limits.max_subscriptions == 3
    assert len(a.hello.challenge) == 32
    assert a.hello.challenge != b.hello.challenge


def test_send_reaches_every_subscriber_and_reports_the_count() -> None:
    relay = Relay()
    sender, one, two, other = (Client(relay) for _ in range(4))
    assert one.subscribe(KEYS[0], rid=5) == [wire.Ok(5)]
    assert two.subscribe(KEYS[0], rid=6) == [wire.Ok(6)]
    assert other.subscribe(KEYS[1]) == [wire.Ok(1)]
    sender.send(wire.Send(9, KEYS[0].mailbox, b"\x00ciphertext"))
    assert sender.take() == [wire.Sent(9, 2)]
    expected = [wire.Deliver(KEYS[0].mailbox, b"\x00ciphertext")]
    assert one.take() == expected
    assert two.take() == expected
    assert other.take() == []


def test_send_to_a_mailbox_nobody_holds_is_offline_and_kept_nowhere() -> None:
    relay = Relay()
    sender = Client(relay)
    sender.send(wire.Send(1, KEYS[0].mailbox, b"lost"))
    (reply,) = sender.take()
    assert reply == wire.Sent(1, 0)
    assert isinstance(reply, wire.Sent)
    assert reply.offline
    late = Client(relay)
    late.subscribe(KEYS[0])
    assert late.take() == []
    assert relay.subscribers.keys() == {KEYS[0].mailbox}


def test_subscribe_with_a_key_that_does_not_hash_to_the_mailbox_is_refused() -> None:
    relay = Relay()
    c = Client(relay)
    good = KEYS[0].subscribe(3, c.hello.challenge)
    c.send(wire.Subscribe(3, KEYS[1].mailbox, good.key, good.sig))
    assert c.take() == [wire.Error(3, ErrorCode.KEY_MISMATCH)]
    assert relay.subscribers == {}


def test_subscribe_with_a_wrong_signature_is_refused() -> None:
    relay = Relay()
    c = Client(relay)
    good = KEYS[0].subscribe(3, c.hello.challenge)
    forged = bytes([good.sig[0] ^ 1]) + good.sig[1:]
    c.send(wire.Subscribe(3, good.mailbox, good.key, forged))
    assert c.take() == [wire.Error(3, ErrorCode.BAD_SIGNATURE)]
    assert relay.subscribers == {}


def test_a_signature_over_another_connections_challenge_is_refused() -> None:
    relay = Relay()
    victim, thief = Client(relay), Client(relay)
    replayed = KEYS[0].subscribe(4, victim.hello.challenge)
    thief.send(replayed)
    assert thief.take() == [wire.Error(4, ErrorCode.BAD_SIGNATURE)]
    victim.send(replayed)
    assert victim.take() == [wire.Ok(4)]


def test_subscription_limit_is_per_connection_and_resubscribe_is_idempotent() -> None:
    relay = Relay(RelayLimits(max_subscriptions=2))
    c = Client(relay)
    assert c.subscribe(KEYS[0], 1) == [wire.Ok(1)]
    assert c.subscribe(KEYS[1], 2) == [wire.Ok(2)]
    assert c.subscribe(KEYS[0], 3) == [wire.Ok(3)]
    assert c.subscribe(KEYS[2], 4) == [wire.Error(4, ErrorCode.TOO_MANY_SUBSCRIPTIONS)]
    assert c.conn.subscriptions == {KEYS[0].mailbox, KEYS[1].mailbox}
    assert Client(relay).subscribe(KEYS[2], 5) == [wire.Ok(5)]


def test_unsubscribe_stops_delivery_and_is_idempotent() -> None:
    relay = Relay()
    sub, sender = Client(relay), Client(relay)
    sub.subscribe(KEYS[0])
    sub.send(wire.Unsubscribe(2, KEYS[0].mailbox))
    sub.send(wire.Unsubscribe(3, KEYS[0].mailbox))
    assert sub.take() == [wire.Ok(2), wire.Ok(3)]
    sender.send(wire.Send(1, KEYS[0].mailbox, b"x"))
    assert sender.take() == [wire.Sent(1, 0)]
    assert sub.take() == []


def test_watchers_hear_first_subscriber_and_last_one_leaving() -> None:
    relay = Relay()
    watcher, a, b = Client(relay), Client(relay), Client(relay)
    m = KEYS[0].mailbox
    watcher.send(wire.Watch(1, (m, KEYS[1].mailbox)))
    assert watcher.take() == [wire.Watching(1, ())]
    a.subscribe(KEYS[0])
    assert watcher.take() == [wire.Presence(m, True)]
    b.subscribe(KEYS[0])
    assert watcher.take() == []
    relay.disconnect(a.conn, 0.0)
    assert watcher.take() == []
    b.send(wire.Unsubscribe(7, m), now=1.0)  # a second after the last notice
    assert watcher.take() == [wire.Presence(m, False)]


def test_watch_reply_lists_what_is_online_now() -> None:
    relay = Relay()
    watcher, a = Client(relay), Client(relay)
    a.subscribe(KEYS[1])
    watcher.send(wire.Watch(2, (KEYS[0].mailbox, KEYS[1].mailbox, KEYS[1].mailbox)))
    assert watcher.take() == [wire.Watching(2, (KEYS[1].mailbox,))]
    relay.disconnect(a.conn, 0.0)
    assert watcher.take() == [wire.Presence(KEYS[1].mailbox, False)]


def test_unwatch_stops_notices() -> None:
    relay = Relay()
    watcher, a = Client(relay), Client(relay)
    watcher.send(wire.Watch(1, (KEYS[0].mailbox,)))
    watcher.send(wire.Unwatch(2, (KEYS[0].mailbox, KEYS[3].mailbox)))
    assert watcher.take() == [wire.Watching(1, ()), wire.Ok(2)]
    a.subscribe(KEYS[0])
    assert watcher.take() == []
    assert relay.watchers == {}


def test_watch_over_the_limit_changes_nothing() -> None:
    relay = Relay(RelayLimits(max_watches=2))
    c = Client(relay)
    c.send(wire.Watch(1, (KEYS[0].mailbox,)))
    c.send(wire.Watch(2, (KEYS[1].mailbox, KEYS[2].mailbox)))
    c.send(wire.Watch(3, (KEYS[0].mailbox, KEYS[1].mailbox)))
    assert c.take() == [
        wire.Watching(1, ()),
        wire.Error(2, ErrorCode.TOO_MANY_WATCHES),
        wire.Watching(3, ()),
    ]
    assert c.conn.watches == {KEYS[0].mailbox, KEYS[1].mailbox}


def test_ping_pong_and_goodbye_closes_normally() -> None:
    relay = Relay()
    c = Client(relay)
    assert c.send(wire.Ping(77)) is None
    assert c.take() == [wire.Pong(77)]
    assert c.send(wire.Goodbye("normal")) == Close(1000, ErrorCode.NORMAL)


@pytest.mark.parametrize(
    ("data", "code", "rid"),
    [
        (b"\xc1", ErrorCode.MALFORMED, None),
        (b"\x83\xa1v", ErrorCode.TRUNCATED, None),
        (b"\x83\xa1v\x09\xa1t\xa4ping\xa3rid\x05", ErrorCode.UNSUPPORTED_VERSION, 5),
        (b"\x83\xa1v\x01\xa1t\xa4nope\xa3rid\x06", ErrorCode.UNKNOWN_TYPE, 6),
        (b"\x82\xa1v\x01\xa1t\xa4ping", ErrorCode.MALFORMED, None),
    ],
)
def test_unreadable_frames_get_an_error_and_the_connection_stays(
    data: bytes, code: str, rid: int | None
) -> None:
    relay = Relay()
    c = Client(relay)
    assert c.send(data) is None
    assert c.take() == [wire.Error(rid, code)]
    c.send(wire.Ping(1))
    assert c.take() == [wire.Pong(1)]
    assert relay.rejects[code] == 1


@pytest.mark.parametrize(
    "frame",
    [
        wire.Ok(3),
        wire.Sent(3, 1),
        wire.Pong(3),
        wire.Watching(3, ()),
        wire.Deliver(b"\x00" * 32, b""),
        wire.Presence(b"\x00" * 32, True),
        wire.Error(3, "x"),
    ],
)
def test_relay_only_frames_from_a_client_are_unexpected(frame: wire.Frame) -> None:
    relay = Relay()
    c = Client(relay)
    c.send(frame)
    assert c.take() == [wire.Error(getattr(frame, "request_id", None), "unexpected_frame")]


def test_text_messages_are_malformed() -> None:
    relay = Relay()
    c = Client(relay)
    assert relay.receive_text(c.conn, 0.0) is None
    assert c.take() == [wire.Error(None, ErrorCode.MALFORMED)]


def test_oversize_frame_is_refused_unread_then_closed_1009() -> None:
    """protocol.md §7: error too_large (rid nil, the frame is not read), then close 1009."""
    relay = Relay(RelayLimits(max_frame_size=200))
    c = Client(relay)
    frames_in = relay.counters.frames_in
    assert c.send(wire.Send(8, KEYS[0].mailbox, b"x" * 200)) == Close(1009, ErrorCode.TOO_LARGE)
    assert c.take() == [wire.Error(None, ErrorCode.TOO_LARGE)]
    assert relay.rejects == {ErrorCode.TOO_LARGE: 1}
    assert relay.counters.frames_in == frames_in


def test_token_bucket_refuses_then_refills() -> None:
    relay = Relay(RelayLimits(send_rate=10.0, send_burst=3))
    c = Client(relay)
    for rid in range(3):
        c.send(wire.Ping(rid), now=0.0)
    assert c.send(wire.Ping(3), now=0.0) == Pause(0.1)
    assert c.take() == [wire.Pong(0), wire.Pong(1), wire.Pong(2), wire.Error(3, "rate_limited")]
    assert c.send(wire.Ping(4), now=0.1) is None
    assert c.take() == [wire.Pong(4)]
    assert relay.rejects == {ErrorCode.RATE_LIMITED: 1}


def test_connection_limits_total_after_the_handshake_and_per_address_from_the_accept() -> None:
    relay = Relay(RelayLimits(max_connections=3, max_connections_per_address=2))
    assert relay.accept("a", 0.0)
    assert relay.accept("a", 0.0)
    assert not relay.accept("a", 0.0)  # the driver aborts it before any handshake
    assert relay.accept("b", 0.0)
    relay.socket_closed("a", opening=True)
    assert relay.accept("a", 0.0)
    a1, _a2 = Client(relay, "a"), Client(relay, "b")
    Client(relay, "c")
    with pytest.raises(Refused) as refused:
        Client(relay, "d")
    assert refused.value.close == Close(1013, ErrorCode.TOO_MANY_CONNECTIONS)
    relay.disconnect(a1.conn, 0.0)
    relay.disconnect(a1.conn, 0.0)
    Client(relay, "a")
    assert relay.per_address == {"a": 1, "b": 1, "c": 1}
    assert relay.rejects[ErrorCode.TOO_MANY_CONNECTIONS] == 2


def test_disconnect_forgets_everything_and_later_frames_are_ignored() -> None:
    relay = Relay()
    c = Client(relay)
    c.subscribe(KEYS[0])
    c.send(wire.Watch(2, (KEYS[1].mailbox,)))
    c.take()
    relay.disconnect(c.conn, 0.0)
    assert relay.subscribers == {}
    assert relay.watchers == {}
    assert relay.connections == set()
    assert c.send(wire.Ping(1)) is None
    assert c.take() == []


def test_shutdown_says_goodbye_to_everyone() -> None:
    relay = Relay()
    a, b = Client(relay), Client(relay)
    relay.shutdown()
    assert a.take() == b.take() == [wire.Goodbye("going_away")]


def test_counters_count_frames_and_bytes() -> None:
    relay = Relay()
    c = Client(relay)
    data = wire.encode(wire.Ping(1))
    c.send(data)
    assert relay.counters.frames_in == 1
    assert relay.counters.bytes_in == len(data)
    assert relay.counters.frames_out == 2  # hello, pong


def test_challenge_comes_from_the_injected_random() -> None:
    relay = Relay(random=counter_random())  # type: ignore[arg-type]
    assert Client(relay).hello.challenge == bytes(32)
    assert Client(relay).hello.challenge == (1).to_bytes(32, "big")


def test_limits_reject_nonsense() -> None:
    with pytest.raises(ValueError, match="max_subscriptions"):
        RelayLimits(max_subscriptions=0)
    with pytest.raises(ValueError, match="positive"):
        RelayLimits(send_rate=0)


class RoutingMachine(RuleBasedStateMachine):
    """Random subscribe/unsubscribe/watch/send/disconnect sequences against a model."""

    def __init__(self) -> None:
        super().__init__()
        # Every presence change told at once: coalescing has its own tests (test_abuse.py).
        self.relay = Relay(RelayLimits(send_burst=10_000, send_rate=1e6, presence_interval=0.0))
        self.clients = [Client(self.relay) for _ in range(3)]
        self.model_subs: list[set[int]] = [set() for _ in range(3)]
        self.model_watch: list[set[int]] = [set() for _ in range(3)]

    def online(self, k: int) -> bool:
        return any(k in subs for subs in self.model_subs)

    @rule(c=st.integers(0, 2), k=st.integers(0, 3))
    def subscribe(self, c: int, k: int) -> None:
        was = self.online(k)
        self.flush()
        client = self.clients[c]
        client.send(KEYS[k].subscribe(1, client.hello.challenge))
        self.model_subs[c].add(k)
        self.check_presence(k, was)
        assert client.take() == [wire.Ok(1)]

    @rule(c=st.integers(0, 2), k=st.integers(0, 3))
    def unsubscribe(self, c: int, k: int) -> None:
        was = self.online(k)
        self.flush()
        self.clients[c].send(wire.Unsubscribe(1, KEYS[k].mailbox))
        self.model_subs[c].discard(k)
        self.check_presence(k, was)
        assert self.clients[c].take() == [wire.Ok(1)]

    @rule(c=st.integers(0, 2), k=st.integers(0, 3))
    def watch(self, c: int, k: int) -> None:
        self.flush()
        self.clients[c].send(wire.Watch(2, (KEYS[k].mailbox,)))
        self.model_watch[c].add(k)
        online = (KEYS[k].mailbox,) if self.online(k) else ()
        assert self.clients[c].take() == [wire.Watching(2, online)]

    @rule(c=st.integers(0, 2), k=st.integers(0, 3), payload=st.binary(max_size=40))
    def send(self, c: int, k: int, payload: bytes) -> None:
        self.flush()
        self.clients[c].send(wire.Send(3, KEYS[k].mailbox, payload))
        holders = [i for i, subs in enumerate(self.model_subs) if k in subs]
        for i, client in enumerate(self.clients):
            frames = client.take()
            expected: list[wire.Frame] = []
            if i in holders:
                expected.append(wire.Deliver(KEYS[k].mailbox, payload))
            if i == c:
                expected.append(wire.Sent(3, len(holders)))
            assert frames == expected

    @rule(c=st.integers(0, 2))
    def reconnect(self, c: int) -> None:
        before = [self.online(k) for k in range(4)]
        self.flush()
        self.relay.disconnect(self.clients[c].conn, 0.0)
        self.model_subs[c].clear()
        self.model_watch[c].clear()
        self.clients[c].take()
        self.clients[c] = Client(self.relay)
        for k in range(4):
            self.check_presence(k, before[k])

    def flush(self) -> None:
        for client in self.clients:
            client.take()

    def check_presence(self, k: int, was: bool) -> None:
        now = self.online(k)
        for i, client in enumerate(self.clients):
            notices = [
                f
                for f in client.inbox
                if wire.decode(f) in (wire.Presence(KEYS[k].mailbox, b) for b in (True, False))
            ]
            client.inbox[:] = [f for f in client.inbox if f not in notices]
            expected = [wire.Presence(KEYS[k].mailbox, now)] if now != was else []
            if k not in self.model_watch[i]:
                expected = []
            assert [wire.decode(n) for n in notices] == expected

    @invariant()
    def maps_match_the_model(self) -> None:
        subs = {
            KEYS[k].mailbox: {self.clients[i].conn for i, s in enumerate(self.model_subs) if k in s}
            for k in range(4)
            if self.online(k)
        }
        assert self.relay.subscribers == subs
        watched = {KEYS[k].mailbox for w in self.model_watch for k in w}
        assert set(self.relay.watchers) == watched


TestRouting = RoutingMachine.TestCase
TestRouting.settings = settings(max_examples=150, stateful_step_count=30, deadline=None)


def test_an_idle_connection_saves_up_no_more_than_one_burst() -> None:
    """The bucket is capped: an hour of silence buys send_burst frames, not thousands."""
    relay = Relay(RelayLimits(send_rate=10.0, send_burst=3))
    c = Client(relay)
    replies = []
    for rid in range(5):
        c.send(wire.Ping(rid), now=3600.0)
        replies += c.take()
    # The fifth is dropped too, unanswered: one rate_limited per refill interval.
    assert replies == [wire.Pong(0), wire.Pong(1), wire.Pong(2), wire.Error(3, "rate_limited")]
    assert relay.rejects[ErrorCode.RATE_LIMITED] == 2


def test_text_messages_spend_the_same_budget_and_a_text_flood_is_closed() -> None:
    relay = Relay(RelayLimits(send_rate=10.0, send_burst=3, flood_window=1.0))
    c = Client(relay)
    results = [relay.receive_text(c.conn, 0.0) for _ in range(3)]
    assert results == [None, None, None]
    assert c.take() == [wire.Error(None, ErrorCode.MALFORMED)] * 3
    assert isinstance(c.send(wire.Ping(1), now=0.0), Pause)  # the texts used the budget up
    assert c.take() == [wire.Error(1, ErrorCode.RATE_LIMITED)]
    # Texts at 100/s from then on: one in ten is within budget, the rest are dropped; the
    # flood began with the ping's drop at 0.0, so the first drop past 1.0 s closes.
    for step in range(1, 200):
        result = relay.receive_text(c.conn, step / 100)
        if isinstance(result, Close):
            break
    assert result == Close(1008, ErrorCode.FLOOD)
    assert step == 101
    replies = c.take()
    assert replies.count(wire.Error(None, ErrorCode.MALFORMED)) == 10
    # At most one rate_limited per 0.1 s refill interval (float steps may skip one).
    assert replies.count(wire.Error(None, ErrorCode.RATE_LIMITED)) in (9, 10)
