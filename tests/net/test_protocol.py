"""The sans-I/O client protocol: frames in and out, no sockets."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.net.errors import PayloadTooLarge
from app.net.events import Delivered, MailboxPresence, RequestRefused
from app.net.protocol import ClientProtocol, NotReady, Phase, Reply
from relay import wire
from relay.wire import ErrorCode
from tests.relay.helpers import MailboxKey

URL = "ws://127.0.0.1:1/"
LIMITS = wire.Limits(
    max_frame_size=4096,
    send_rate=100.0,
    send_burst=200,
    max_subscriptions=64,
    max_watches=1024,
    idle_timeout=60.0,
)


def hello(challenge: bytes | None = None) -> bytes:
    return wire.encode(wire.Hello((1,), challenge or os.urandom(32), LIMITS))


def ready(protocol: ClientProtocol, challenge: bytes | None = None) -> tuple[bytes, ...]:
    protocol.connection_made()
    step = protocol.receive(hello(challenge))
    assert step.ready
    assert step.violation is None
    return step.outgoing


def mailbox() -> bytes:
    return os.urandom(32)


def test_nothing_goes_out_before_hello_and_requests_wait_for_it() -> None:
    protocol = ClientProtocol(URL)
    key = MailboxKey.generate()
    assert protocol.subscribe(key.mailbox, key.signer) is None
    assert protocol.watch([mailbox()]) is None
    with pytest.raises(NotReady):
        protocol.send(mailbox(), b"x")
    protocol.connection_made()
    with pytest.raises(NotReady):
        protocol.send(mailbox(), b"x")
    assert protocol.phase is Phase.AWAITING_HELLO


def test_hello_restores_every_subscription_signed_against_its_challenge() -> None:
    protocol = ClientProtocol(URL)
    keys = [MailboxKey.generate() for _ in range(3)]
    watched = [mailbox() for _ in range(5)]
    for key in keys:
        protocol.subscribe(key.mailbox, key.signer)
    protocol.watch(watched)
    for _ in range(2):  # the same restore on each new connection, with that connection's proof
        challenge = os.urandom(32)
        frames = [wire.decode(d) for d in ready(protocol, challenge)]
        subs = [f for f in frames if isinstance(f, wire.Subscribe)]
        watches = [f for f in frames if isinstance(f, wire.Watch)]
        assert {s.mailbox for s in subs} == {k.mailbox for k in keys}
        for frame in subs:
            key = next(k for k in keys if k.mailbox == frame.mailbox)
            assert key.verify(frame, challenge)
            assert not key.verify(frame, os.urandom(32))
        assert [m for w in watches for m in w.mailboxes] == watched
        assert len({f.request_id for f in subs + watches}) == len(subs) + len(watches)
        assert protocol.connection_lost() == ()  # restore requests have no caller to fail


def test_restored_watch_reports_presence_of_every_watched_mailbox() -> None:
    protocol = ClientProtocol(URL)
    a, b = mailbox(), mailbox()
    protocol.watch([a, b])
    (data,) = ready(protocol)
    watch = wire.decode(data)
    assert isinstance(watch, wire.Watch)
    step = protocol.receive(wire.encode(wire.Watching(watch.request_id, (b,))))
    assert step.violation is None
    assert step.replies == ()
    assert set(step.events) == {MailboxPresence(URL, a, False), MailboxPresence(URL, b, True)}


def test_replies_are_matched_to_their_requests_by_id() -> None:
    protocol = ClientProtocol(URL)
    ready(protocol)
    box = mailbox()
    first = protocol.send(box, b"one")
    second = protocol.send(box, b"two")
    watch = protocol.watch([box])
    assert watch is not None
    assert len({first.request_id, second.request_id, watch.request_id}) == 3
    step = protocol.receive(wire.encode(wire.Sent(second.request_id, 2)))
    assert step.replies == (Reply(second.request_id, 2),)
    step = protocol.receive(wire.encode(wire.Watching(watch.request_id, (box,))))
    assert step.replies == (Reply(watch.request_id, frozenset({box})),)
    step = protocol.receive(wire.encode(wire.Sent(first.request_id, 0)))
    assert step.replies == (Reply(first.request_id, 0),)
    assert protocol.pending == frozenset()


def test_relay_errors_answer_the_request_and_a_refused_subscription_is_forgotten() -> None:
    protocol = ClientProtocol(URL)
    ready(protocol)
    key = MailboxKey.generate()
    request = protocol.subscribe(key.mailbox, key.signer)
    assert request is not None
    step = protocol.receive(wire.encode(wire.Error(request.request_id, ErrorCode.BAD_SIGNATURE)))
    assert step.replies == (Reply(request.request_id, error=ErrorCode.BAD_SIGNATURE),)
    assert protocol.subscriptions == frozenset()
    assert [wire.decode(d) for d in ready(protocol)] == []


def test_refused_restore_is_an_event_not_a_reply() -> None:
    protocol = ClientProtocol(URL)
    key = MailboxKey.generate()
    protocol.subscribe(key.mailbox, key.signer)
    (data,) = ready(protocol)
    frame = wire.decode(data)
    assert isinstance(frame, wire.Subscribe)
    code = ErrorCode.TOO_MANY_SUBSCRIPTIONS
    step = protocol.receive(wire.encode(wire.Error(frame.request_id, code)))
    assert step.violation is None
    assert step.replies == ()
    assert step.events == (RequestRefused(URL, code, key.mailbox),)
    step = protocol.receive(wire.encode(wire.Error(None, ErrorCode.MALFORMED)))
    assert step.events == (RequestRefused(URL, ErrorCode.MALFORMED, None),)


def test_a_failing_signer_is_reported_and_the_rest_restored() -> None:
    def broken(challenge: bytes) -> tuple[bytes, bytes]:
        raise RuntimeError("no key")

    protocol = ClientProtocol(URL)
    good, bad = MailboxKey.generate(), MailboxKey.generate()
    protocol.subscribe(bad.mailbox, broken)
    protocol.subscribe(good.mailbox, good.signer)
    protocol.connection_made()
    step = protocol.receive(hello())
    assert step.events == (RequestRefused(URL, "signer_failed", bad.mailbox),)
    (frame,) = [wire.decode(d) for d in step.outgoing]
    assert isinstance(frame, wire.Subscribe)
    assert frame.mailbox == good.mailbox


def test_pushes_reach_the_engine_only_for_what_it_asked_for() -> None:
    protocol = ClientProtocol(URL)
    key = MailboxKey.generate()
    other, watched = mailbox(), mailbox()
    protocol.subscribe(key.mailbox, key.signer)
    protocol.watch([watched])
    ready(protocol)
    step = protocol.receive(wire.encode(wire.Deliver(key.mailbox, b"ct")))
    assert step.events == (Delivered(URL, key.mailbox, b"ct"),)
    assert protocol.receive(wire.encode(wire.Deliver(other, b"ct"))).events == ()
    step = protocol.receive(wire.encode(wire.Presence(watched, True)))
    assert step.events == (MailboxPresence(URL, watched, True),)
    assert protocol.receive(wire.encode(wire.Presence(other, True))).events == ()
    protocol.unsubscribe(key.mailbox)
    protocol.unwatch([watched])
    assert protocol.receive(wire.encode(wire.Deliver(key.mailbox, b"late"))).events == ()
    assert protocol.receive(wire.encode(wire.Presence(watched, False))).events == ()


@pytest.mark.parametrize(
    "frame",
    [
        wire.Sent(999, 1),  # answers nothing we asked
        wire.Pong(1),
        wire.Hello((1,), bytes(32), LIMITS),  # a second hello
        wire.Send(1, bytes(32), b"x"),  # a client frame
        wire.Subscribe(1, bytes(32), bytes(32), bytes(64)),
    ],
)
def test_frames_the_protocol_does_not_allow_are_violations(frame: wire.Frame) -> None:
    protocol = ClientProtocol(URL)
    ready(protocol)
    step = protocol.receive(wire.encode(frame))
    assert step.violation is not None
    assert step.events == ()
    assert step.replies == ()


def test_a_reply_of_the_wrong_kind_is_a_violation() -> None:
    protocol = ClientProtocol(URL)
    ready(protocol)
    box = mailbox()
    send = protocol.send(box, b"x")
    assert protocol.receive(wire.encode(wire.Ok(send.request_id))).violation is not None
    watch = protocol.watch([box])
    assert watch is not None
    bogus = wire.Watching(watch.request_id, (mailbox(),))  # names a mailbox not asked about
    assert protocol.receive(wire.encode(bogus)).violation is not None


def test_anything_before_hello_is_a_violation_and_an_old_only_relay_is_refused() -> None:
    protocol = ClientProtocol(URL)
    protocol.connection_made()
    assert protocol.receive(wire.encode(wire.Deliver(bytes(32), b"x"))).violation is not None
    protocol.connection_made()
    step = protocol.receive(wire.encode(wire.Hello((7,), bytes(32), LIMITS)))
    assert step.violation is not None
    assert step.violation.code == ErrorCode.UNSUPPORTED_VERSION


def test_a_late_reply_to_an_abandoned_request_is_dropped_quietly() -> None:
    protocol = ClientProtocol(URL)
    ready(protocol)
    request = protocol.send(mailbox(), b"x")
    protocol.written(request.request_id)
    protocol.abandon(request.request_id)
    step = protocol.receive(wire.encode(wire.Sent(request.request_id, 1)))
    assert step.violation is None
    assert step.replies == ()
    # ...once: a second answer to the same id is bogus.
    assert protocol.receive(wire.encode(wire.Sent(request.request_id, 1))).violation is not None


def test_a_request_abandoned_before_it_was_written_is_owed_nothing() -> None:
    now = [0.0]
    protocol = ClientProtocol(URL, clock=lambda: now[0])
    ready(protocol)
    request = protocol.send(mailbox(), b"x")
    protocol.abandon(request.request_id)  # its caller timed out while it waited to be paced
    now[0] = 100.0
    assert protocol.overdue(10, 5) == 5  # nothing owed: the next check is a full period away
    assert protocol.receive(wire.encode(wire.Sent(request.request_id, 1))).violation is not None


def test_overdue_names_a_missing_hello_and_a_missing_reply_abandoned_or_not() -> None:
    now = [0.0]
    protocol = ClientProtocol(URL, clock=lambda: now[0])
    protocol.connection_made()
    assert protocol.overdue(10, 5) == 10
    now[0] = 9.5
    assert protocol.overdue(10, 5) == pytest.approx(0.5)
    now[0] = 10.0
    assert protocol.overdue(10, 5) == "no hello"
    ready(protocol)
    assert protocol.overdue(10, 5) == 5  # nothing owed
    first = protocol.send(mailbox(), b"x")
    protocol.written(first.request_id)
    now[0] = 12.0
    second = protocol.send(mailbox(), b"y")
    protocol.written(second.request_id)
    assert protocol.overdue(10, 5) == pytest.approx(3.0)  # the oldest one counts
    protocol.abandon(first.request_id)  # its caller gave up: the relay still owes it
    now[0] = 15.0
    assert protocol.overdue(10, 5) == "no reply"
    protocol.receive(wire.encode(wire.Sent(first.request_id, 1)))
    assert protocol.overdue(10, 5) == pytest.approx(2.0)  # now the second is the oldest
    protocol.receive(wire.encode(wire.Sent(second.request_id, 1)))
    now[0] = 100.0
    assert protocol.overdue(10, 5) == 5


def test_restoring_after_hello_is_owed_a_reply_too() -> None:
    now = [0.0]
    protocol = ClientProtocol(URL, clock=lambda: now[0])
    key = MailboxKey.generate()
    protocol.subscribe(key.mailbox, key.signer)
    ready(protocol)
    now[0] = 5.0
    assert protocol.overdue(10, 5) == "no reply"


def test_frames_from_the_relay_are_held_to_the_size_its_hello_announced() -> None:
    protocol = ClientProtocol(URL, max_frame_size=1 << 20)
    key = MailboxKey.generate()
    protocol.subscribe(key.mailbox, key.signer)
    ready(protocol)  # announces LIMITS.max_frame_size
    assert protocol.max_frame_size == LIMITS.max_frame_size
    fits = wire.encode(wire.Deliver(key.mailbox, bytes(LIMITS.max_frame_size - 128)))
    assert len(fits) <= LIMITS.max_frame_size
    assert protocol.receive(fits).violation is None
    big = wire.encode(wire.Deliver(key.mailbox, bytes(LIMITS.max_frame_size)))
    step = protocol.receive(big)
    assert step.violation is not None
    assert step.events == ()
    # A new connection starts from our own ceiling again until its hello.
    protocol.connection_made()
    assert protocol.max_frame_size == 1 << 20


def test_losing_the_connection_fails_only_the_callers_requests() -> None:
    protocol = ClientProtocol(URL)
    key = MailboxKey.generate()
    protocol.subscribe(key.mailbox, key.signer)
    ready(protocol)
    sends = {protocol.send(mailbox(), b"x").request_id for _ in range(3)}
    assert set(protocol.connection_lost()) == sends
    assert protocol.phase is Phase.DISCONNECTED
    assert protocol.receive(wire.encode(wire.Sent(min(sends), 1))).replies == ()
    assert protocol.subscriptions == {key.mailbox}


def test_goodbye_is_not_a_violation() -> None:
    protocol = ClientProtocol(URL)
    ready(protocol)
    step = protocol.receive(wire.encode(wire.Goodbye(ErrorCode.GOING_AWAY)))
    assert step.goodbye == ErrorCode.GOING_AWAY
    assert step.violation is None


def test_an_oversize_send_is_refused_before_it_leaves() -> None:
    protocol = ClientProtocol(URL)
    ready(protocol)
    with pytest.raises(PayloadTooLarge) as caught:
        protocol.send(mailbox(), bytes(LIMITS.max_frame_size))
    assert caught.value.limit == LIMITS.max_frame_size
    assert protocol.pending == frozenset()
    protocol.send(mailbox(), bytes(LIMITS.max_frame_size - 100))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.booleans())
def test_no_bytes_from_a_relay_make_the_session_raise(data: bytes, after_hello: bool) -> None:
    protocol = ClientProtocol(URL)
    if after_hello:
        ready(protocol)
    else:
        protocol.connection_made()
    step = protocol.receive(data)
    assert step.replies == ()


_ops = st.lists(
    st.one_of(
        st.tuples(st.just("sub"), st.integers(0, 5)),
        st.tuples(st.just("unsub"), st.integers(0, 5)),
        st.tuples(st.just("watch"), st.integers(0, 5)),
        st.tuples(st.just("unwatch"), st.integers(0, 5)),
        st.tuples(st.just("reconnect"), st.just(0)),
        st.tuples(st.just("drop"), st.just(0)),
    ),
    max_size=40,
)
_KEYS = [MailboxKey.generate() for _ in range(6)]


@settings(max_examples=150, deadline=None)
@given(_ops)
def test_after_any_history_a_new_hello_restores_exactly_what_is_wanted(
    ops: list[tuple[str, int]],
) -> None:
    protocol = ClientProtocol(URL)
    subs: set[bytes] = set()
    watches: set[bytes] = set()
    for op, i in ops:
        box = _KEYS[i].mailbox
        if op == "sub":
            protocol.subscribe(box, _KEYS[i].signer)
            subs.add(box)
        elif op == "unsub":
            protocol.unsubscribe(box)
            subs.discard(box)
        elif op == "watch":
            protocol.watch([box])
            watches.add(box)
        elif op == "unwatch":
            protocol.unwatch([box])
            watches.discard(box)
        elif op == "reconnect":
            ready(protocol)
        else:
            protocol.connection_lost()
    challenge = os.urandom(32)
    frames = [wire.decode(d) for d in ready(protocol, challenge)]
    restored = {f.mailbox for f in frames if isinstance(f, wire.Subscribe)}
    watched = {m for f in frames if isinstance(f, wire.Watch) for m in f.mailboxes}
    assert restored == subs
    assert watched == watches
    for frame in frames:
        if isinstance(frame, wire.Subscribe):
            assert next(k for k in _KEYS if k.mailbox == frame.mailbox).verify(frame, challenge)
