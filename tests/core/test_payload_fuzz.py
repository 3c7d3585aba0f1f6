"""A peer's client sends anything inside valid ratchet frames: the engine drops and reports
what is not a valid payload, never raises, and never stores half of anything.

The frames are authentic (Bob's real session encrypts them), so each one advances Alice's
ratchet; what it carries is either stored whole (message, receipt queued, session advanced,
one transaction) or dropped and reported with only the ratchet step kept.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.core.engine import Engine
from app.core.events import Event, FrameRejected, MessageAdded, Rejection
from app.crypto.ratchet import Session
from app.domain.contacts import Contact
from app.domain.messages import Direction
from app.store.records import OutboxKind
from tests.core.engines import befriend, deliver, make, own_loop

EDGE_INTS = st.sampled_from(
    [0, 1, -1, 2**31, 2**53, 2**63 - 1, 2**63, 2**64 - 1, -(2**63), 253_402_300_799_999 + 1]
)
VALUES = st.recursive(
    st.none()
    | st.booleans()
    | EDGE_INTS
    | st.integers(-(2**63), 2**64 - 1)
    | st.text(max_size=20)
    | st.binary(max_size=40)
    | st.floats(allow_nan=True),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = (
    "k",
    "seq",
    "ts",
    "body",
    "ids",
    "read",
    "mb",
    "relay",
    "name",
    "ref",
    "emoji",
    "ttl",
    "re",
)
KINDS = st.sampled_from(
    ["msg", "rcpt", "welcome", "intro", "edit", "del", "react", "timer", "other", ""]
)


@st.composite
def payloads(draw: st.DrawFn) -> bytes:
    """Mostly maps shaped like ours with one field wrong; sometimes anything at all."""
    if draw(st.integers(0, 4)) == 0:
        return draw(st.one_of(st.binary(max_size=100), VALUES.map(_pack)))
    data = {"k": draw(KINDS)}
    base = {
        "seq": 1,
        "ts": 1_700_000_000_000,
        "body": "hello",
        "ids": [],
        "read": False,
        "mb": b"\x01" * 32,
        "relay": "ws://127.0.0.1:9",
        "name": "Bob",
        "ref": b"\x02" * 16,
        "emoji": "👍",
        "ttl": 300,
    }
    data.update(base)
    for key in draw(st.lists(st.sampled_from(FIELDS), max_size=3)):
        data[key] = draw(st.one_of(VALUES, EDGE_INTS))
    return _pack(data)


def _pack(value: object) -> bytes:
    packed: bytes = msgpack.packb(value, use_bin_type=True)
    return packed


@dataclass
class Pair:
    loop: asyncio.AbstractEventLoop
    alice: Engine
    bob: Engine
    to_bob: Contact
    to_alice: Contact
    events: list[Event] = field(default_factory=list)

    async def bob_sends(self, plaintext: bytes) -> None:
        """Bob's real session seals any plaintext; the frame goes straight to Alice."""
        cid = self.to_alice.id
        blob = await self.bob.store.read(lambda r: r.sessions.load(cid))
        assert blob is not None
        session, frame = Session.from_bytes(blob).encrypt(plaintext)
        await self.bob.store.run(lambda r: r.sessions.save(cid, session.to_bytes(), 0))
        dest = await self.alice.store.read(
            lambda r: r.mailboxes.list_ours(contact_id=self.to_bob.id)
        )
        await deliver(self.alice, dest[0].id, frame)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    tmp = tmp_path_factory.mktemp("fuzz")
    with own_loop() as (loop, opened):

        async def setup() -> Pair:
            alice, bob = await make(tmp / "alice", "Alice"), await make(tmp / "bob", "Bob")
            to_bob, to_alice = await befriend(alice, bob)
            return Pair(loop, alice, bob, to_bob, to_alice)

        built = loop.run_until_complete(setup())
        opened += [built.alice, built.bob]
        built.alice.subscribe(built.events.append)
        yield built


def test_any_payload_in_an_authentic_frame_is_stored_whole_or_dropped_and_reported(
    pair: Pair, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(plaintext=payloads())
    def fuzz(plaintext: bytes) -> None:
        async def once() -> None:
            cid = pair.to_bob.id

            def load(r):  # type: ignore[no-untyped-def]
                return (
                    r.sessions.load(cid),
                    r.messages.count(cid),
                    [i.id for i in r.outbox.for_contact(cid) if i.kind is OutboxKind.RECEIPT],
                    r.mailboxes.list_theirs(cid),
                    replace(r.contacts.get(cid), timer_s=0),  # a `timer` may change that only
                )

            before = await pair.alice.store.read(load)
            pair.events.clear()
            await pair.bob_sends(plaintext)
            after = await pair.alice.store.read(load)
            assert after[0] != before[0]  # authentic: the ratchet step is always kept
            assert after[3:] == before[3:]  # no payload here may reroute or change Bob
            added = [e for e in pair.events if isinstance(e, MessageAdded)]
            rejected = [e for e in pair.events if isinstance(e, FrameRejected)]
            if added:
                (event,) = added
                assert event.message.direction is Direction.INCOMING
                assert after[1] == before[1] + 1
                assert len(after[2]) == len(before[2]) + 1  # its receipt, same transaction
                assert not rejected
            elif len(after[2]) == len(before[2]) + 1:
                # Acknowledged without a row: an update (edit, deletion, reaction) or one more
                # of a run of unknown kinds (one line stands for them).
                assert after[1] == before[1]
                assert not rejected
            else:
                assert after[1] == before[1]
                assert len(after[2]) == len(before[2])
            if not added and rejected:
                assert rejected[0].kind in (Rejection.PAYLOAD, Rejection.WELCOME)

        pair.loop.run_until_complete(once())

    fuzz()
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_a_timestamp_past_what_a_clock_shows_is_dropped_and_reported(pair: Pair) -> None:
    """The regression: ts = 2**64 - 1 raised OverflowError out of the receive path."""

    async def body() -> None:
        before = await pair.alice.messages(pair.to_bob.id, 10_000)
        pair.events.clear()
        for bad in (2**64 - 1, 2**63, -1, 253_402_300_800_000):
            await pair.bob_sends(_pack({"k": "msg", "seq": 7, "ts": bad, "body": "x"}))
        for bad in (2**64 - 1, 0, -5):
            await pair.bob_sends(_pack({"k": "msg", "seq": bad, "ts": 0, "body": "x"}))
        assert await pair.alice.messages(pair.to_bob.id, 10_000) == before
        kinds = [e.kind for e in pair.events if isinstance(e, FrameRejected)]
        assert kinds == [Rejection.PAYLOAD] * 7

    pair.loop.run_until_complete(body())
