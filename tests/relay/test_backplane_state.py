"""relay.state with a backplane attached, still sans-I/O: a recording Remote stands in for Redis."""

from __future__ import annotations

from relay import wire
from relay.state import Hold, Lookup, Publish, Relay, RelayLimits
from relay.wire import ErrorCode
from tests.relay.helpers import MailboxKey
from tests.relay.test_state import Client

KEY, OTHER = MailboxKey.generate(), MailboxKey.generate()


class Recorder:
    """What the state told the backplane, in order; mailboxes in ``alone`` are held by no
    other relay."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, bytes]] = []
        self.alone: set[bytes] = set()

    def shared(self, mailbox: bytes) -> bool:
        return mailbox not in self.alone

    def hold(self, mailbox: bytes) -> None:
        self.calls.append(("hold", mailbox))

    def release(self, mailbox: bytes) -> None:
        self.calls.append(("release", mailbox))

    def unwatch(self, mailbox: bytes) -> None:
        self.calls.append(("unwatch", mailbox))


def linked(limits: RelayLimits | None = None) -> tuple[Relay, Recorder]:
    relay = Relay(limits)
    remote = Recorder()
    relay.attach(remote)
    return relay, remote


def test_first_subscriber_is_held_elsewhere_before_its_ok() -> None:
    relay, remote = linked()
    a, b = Client(relay), Client(relay)
    result = a.send(KEY.subscribe(1, a.hello.challenge))
    assert result == Hold(a.conn, 1, KEY.mailbox)
    assert remote.calls == [("hold", KEY.mailbox)]
    assert a.take() == []
    assert isinstance(result, Hold)
    relay.held(result)
    assert a.take() == [wire.Ok(1)]
    # The second subscriber here needs nothing from the backplane.
    assert b.send(KEY.subscribe(1, b.hello.challenge)) is None
    assert b.take() == [wire.Ok(1)]
    # A closed connection gets no late ok.
    c = Client(relay)
    late = c.send(OTHER.subscribe(1, c.hello.challenge))
    assert isinstance(late, Hold)
    relay.disconnect(c.conn, 0.0)
    relay.held(late)
    assert c.take() == []


def test_first_and_last_subscriber_are_told_to_the_backplane() -> None:
    relay, remote = linked()
    a, b = Client(relay), Client(relay)
    a.subscribe(KEY)
    b.subscribe(KEY)
    assert remote.calls == [("hold", KEY.mailbox)]
    b.send(wire.Unsubscribe(2, KEY.mailbox))
    assert remote.calls == [("hold", KEY.mailbox)]
    relay.disconnect(a.conn, 0.0)
    assert remote.calls == [("hold", KEY.mailbox), ("release", KEY.mailbox)]


def test_send_delivers_locally_then_waits_for_the_remote_count() -> None:
    relay, _ = linked()
    sender, sub = Client(relay), Client(relay)
    sub.subscribe(KEY)
    result = sender.send(wire.Send(7, KEY.mailbox, b"payload"))
    assert result == Publish(sender.conn, 7, KEY.mailbox, b"payload", 1)
    assert sub.take() == [wire.Deliver(KEY.mailbox, b"payload")]
    assert sender.take() == []  # no reply until the backplane answered
    assert isinstance(result, Publish)
    relay.sent(result, 2)
    assert sender.take() == [wire.Sent(7, 3)]


def test_a_send_to_a_mailbox_held_here_alone_is_answered_at_once() -> None:
    relay, remote = linked()
    sender, sub = Client(relay), Client(relay)
    sub.subscribe(KEY)
    remote.alone.add(KEY.mailbox)
    assert sender.send(wire.Send(7, KEY.mailbox, b"payload")) is None
    assert sub.take() == [wire.Deliver(KEY.mailbox, b"payload")]
    assert sender.take() == [wire.Sent(7, 1)]
    # Nobody here: published whatever the backplane says of sharing.
    remote.alone.add(OTHER.mailbox)
    assert isinstance(sender.send(wire.Send(8, OTHER.mailbox, b"x")), Publish)


def test_sent_to_a_closed_connection_is_dropped() -> None:
    relay, _ = linked()
    sender = Client(relay)
    result = sender.send(wire.Send(1, KEY.mailbox, b"x"))
    assert isinstance(result, Publish)
    assert result.local == 0
    relay.disconnect(sender.conn, 0.0)
    relay.sent(result, 1)
    assert sender.take() == []


def test_watch_of_a_fresh_mailbox_waits_for_the_lookup() -> None:
    relay, _ = linked()
    first, second = Client(relay), Client(relay)
    both = (KEY.mailbox, OTHER.mailbox)
    result = first.send(wire.Watch(1, both))
    assert result == Lookup(first.conn, 1, both, both)
    assert first.take() == []
    # While the lookup runs, the backplane learns KEY is held elsewhere: no presence notice
    # reaches the connection still waiting for its watching reply.
    relay.remote_presence(KEY.mailbox, True, 0.0)
    assert first.take() == []
    assert isinstance(result, Lookup)
    relay.watched(result)
    assert first.take() == [wire.Watching(1, (KEY.mailbox,))]
    # A second watcher of a mailbox someone here already watches is answered at once.
    assert second.send(wire.Watch(2, (KEY.mailbox,))) is None
    assert second.take() == [wire.Watching(2, (KEY.mailbox,))]


def test_presence_follows_the_union_of_local_and_remote() -> None:
    relay, _ = linked()
    watcher, sub = Client(relay), Client(relay)
    lookup = watcher.send(wire.Watch(1, (KEY.mailbox,)))
    assert isinstance(lookup, Lookup)
    relay.watched(lookup)
    watcher.take()
    relay.remote_presence(KEY.mailbox, True, 0.0)
    assert watcher.take() == [wire.Presence(KEY.mailbox, True)]
    relay.remote_presence(KEY.mailbox, True, 0.0)
    assert watcher.take() == []
    sub.subscribe(KEY)  # online already: no second notice
    assert watcher.take() == []
    relay.remote_presence(KEY.mailbox, False, 0.0)  # still online here
    assert watcher.take() == []
    relay.disconnect(sub.conn, 1.0)
    assert watcher.take() == [wire.Presence(KEY.mailbox, False)]


def test_local_changes_are_silent_while_another_relay_holds_the_mailbox() -> None:
    relay, _ = linked()
    watcher, sub = Client(relay), Client(relay)
    lookup = watcher.send(wire.Watch(1, (KEY.mailbox,)))
    assert isinstance(lookup, Lookup)
    relay.remote_presence(KEY.mailbox, True, 0.0)
    relay.watched(lookup)
    watcher.take()
    sub.subscribe(KEY)
    relay.disconnect(sub.conn, 0.0)
    assert watcher.take() == []
    relay.remote_lost(1.0)
    assert watcher.take() == [wire.Presence(KEY.mailbox, False)]
    assert relay.remote_online == set()


def test_remote_presence_of_an_unwatched_mailbox_is_ignored_and_unwatch_is_told() -> None:
    relay, remote = linked()
    watcher = Client(relay)
    relay.remote_presence(KEY.mailbox, True, 0.0)
    assert relay.remote_online == set()
    lookup = watcher.send(wire.Watch(1, (KEY.mailbox,)))
    assert isinstance(lookup, Lookup)
    relay.watched(lookup)
    relay.remote_presence(KEY.mailbox, True, 0.0)
    watcher.send(wire.Unwatch(2, (KEY.mailbox,)))
    assert remote.calls == [("unwatch", KEY.mailbox)]
    assert relay.remote_online == set()


def test_remote_payloads_reach_local_subscribers_within_the_frame_limit() -> None:
    relay, _ = linked(RelayLimits(max_frame_size=200))
    sub = Client(relay)
    sub.subscribe(KEY)
    assert relay.deliver_remote(KEY.mailbox, b"p" * 10) == 1
    assert sub.take() == [wire.Deliver(KEY.mailbox, b"p" * 10)]
    assert relay.deliver_remote(KEY.mailbox, b"p" * 500) == 0
    assert sub.take() == []
    assert relay.rejects[ErrorCode.TOO_LARGE] == 1
    assert relay.deliver_remote(OTHER.mailbox, b"nobody") == 0


def test_without_a_backplane_nothing_changes() -> None:
    relay = Relay()
    sender, sub = Client(relay), Client(relay)
    sub.subscribe(KEY)
    assert sender.send(wire.Send(1, KEY.mailbox, b"x")) is None
    assert sender.take() == [wire.Sent(1, 1)]
    assert sender.send(wire.Watch(2, (KEY.mailbox,))) is None
    assert sender.take() == [wire.Watching(2, (KEY.mailbox,))]
