"""What arrives is bounded: forgeries cost their check and then nothing, a flooding contact is
throttled without losing a message, a contact's messages have a storage quota, and receipts go
out many ids to a frame. Real SQLCipher profiles; frames handed in as the relay would."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from app.core import intake
from app.core.context import TOLD_BURST, TOLD_RATE, Rejections
from app.core.engine import Engine
from app.core.events import ContactLimited, Event, Limit, MessageAdded, Rejection
from app.core.intake import Budgets
from app.core.messaging import RECEIPT_DELAY_S
from app.crypto.header import encode_header
from app.crypto.ratchet import DH_STEP_WORK, MAX_SKIP, Session
from app.domain.messages import Status
from app.net.events import Delivered
from app.store.records import OutboxItem, OutboxKind
from tests.core.engines import RELAY, befriend, carry, deliver, eventually, make


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# -- the budgets on their own ---------------------------------------------------------------


def test_a_mailbox_over_its_failed_budget_is_tried_only_where_trying_is_cheap() -> None:
    budgets, clock, box = Budgets(), Clock(), os.urandom(32)
    assert budgets.worth_trying(box, None, clock())  # nothing failed yet
    for _ in range(intake.FAILED_BURST - 1):
        assert not budgets.failed(box, clock())
    assert budgets.failed(box, clock())  # the last token
    assert not budgets.worth_trying(box, None, clock())  # a handshake, or unknown cost
    assert not budgets.worth_trying(box, DH_STEP_WORK + intake.CHEAP_WORK + 1, clock())
    assert budgets.worth_trying(box, intake.CHEAP_WORK, clock())  # the next message in order
    # A new chain from its start (a reply), or a short skip, is tried STEP_RATE a second.
    opening = DH_STEP_WORK + 1
    for _ in range(int(intake.STEP_RATE)):
        assert budgets.worth_trying(box, opening, clock(), spend=False)
        assert budgets.worth_trying(box, opening, clock())
    assert not budgets.worth_trying(box, opening, clock(), spend=False)
    assert not budgets.worth_trying(box, opening, clock())
    assert not budgets.worth_trying(box, DH_STEP_WORK + MAX_SKIP, clock())
    assert budgets.worth_trying(os.urandom(32), 10_000, clock())  # another mailbox: untouched
    clock.now += 1.0 / intake.FAILED_RATE
    assert budgets.worth_trying(box, 10_000, clock())  # one refilled


def test_copies_of_what_we_have_are_looked_up_within_their_own_budget() -> None:
    budgets, clock, box = Budgets(), Clock(), os.urandom(32)
    for _ in range(intake.REPLAY_BURST):
        assert budgets.recheck(box, clock())
    assert not budgets.recheck(box, clock())
    assert budgets.worth_trying(box, 10_000, clock())  # copies are no forgeries
    clock.now += 1.0 / intake.REPLAY_RATE
    assert budgets.recheck(box, clock())


def test_a_throttled_contact_is_taken_in_order_only_until_its_budget_is_whole() -> None:
    budgets, clock, cid = Budgets(), Clock(), 7
    small, large = 100, 4 * intake.MESSAGE_COST
    for _ in range(intake.MESSAGE_BURST // intake.MESSAGE_COST):  # small ones cost the least
        assert budgets.take_message(cid, 1, small, clock())
    assert not budgets.throttled(cid)
    assert not budgets.take_message(cid, 1, small, clock())  # over budget: left out
    assert budgets.throttled(cid)
    clock.now += intake.MESSAGE_COST / intake.MESSAGE_RATE  # room for one small one
    assert not budgets.take_message(cid, 2, small, clock())  # would skip the one left out
    assert not budgets.take_message(cid, 1, large, clock())  # a large one costs more
    assert budgets.take_message(cid, 1, small, clock())  # the one left out, sent again
    assert not budgets.take_message(cid, 1, small, clock())
    clock.now += intake.MESSAGE_BURST / intake.MESSAGE_RATE  # whole again
    assert budgets.take_message(cid, 50, small, clock())  # any order once not throttled
    assert not budgets.throttled(cid)
    for _ in range(intake.MESSAGE_BURST // large):  # large ones are paced by their size
        assert budgets.take_message(8, 1, large, clock())
    assert not budgets.take_message(8, 1, large, clock())


# -- through an engine -------------------------------------------------------------------------


async def _message_items(engine: Engine) -> list[OutboxItem]:
    items = await engine.store.read(lambda r: r.outbox.due(2**62, 10_000))
    return [i for i in items if i.kind is OutboxKind.MESSAGE]


async def _wait_for(events: list[Event], kind: type) -> Event:
    async def seen() -> bool:
        return any(isinstance(e, kind) for e in events)

    await eventually(seen)
    return next(e for e in events if isinstance(e, kind))


def test_costly_forgeries_are_dropped_unread_and_the_real_message_gets_through(
    tmp_path: Path,
) -> None:
    async def body() -> None:
        alice, bob = await make(tmp_path / "a", "Alice"), await make(tmp_path / "b", "Bob")
        try:
            _, to_bob = await befriend(bob, alice)
            await alice.send(to_bob.id, "real")
            (real,) = await _message_items(alice)
            events: list[Event] = []
            bob.subscribe(events.append)
            await bob.start()
            # What a hostile relay makes: message-shaped frames at the skip limit, each
            # costing a chain walk of MAX_SKIP steps (and a DH step) before it fails.
            for _ in range(3000):
                dh = X25519PrivateKey.generate().public_key().public_bytes_raw()
                forged = encode_header(dh, MAX_SKIP, MAX_SKIP, b"", b"", b"") + os.urandom(80)
                bob.on_net_event(Delivered(RELAY, real.mailbox_id, forged))
            bob.on_net_event(Delivered(RELAY, real.mailbox_id, real.ciphertext))
            added = await _wait_for(events, MessageAdded)
            assert isinstance(added, MessageAdded)
            assert added.message.body == "real"
            # The mailbox is still over its budget, and the session the next frame needs is
            # not in memory (storing "real" changed it): the next message is not dropped.
            events.clear()
            await alice.send(to_bob.id, "next")
            (_, following) = await _message_items(alice)
            bob.on_net_event(Delivered(RELAY, following.mailbox_id, following.ciphertext))
            added = await _wait_for(events, MessageAdded)
            assert isinstance(added, MessageAdded)
            assert added.message.body == "next"
            totals = await bob.rejections()
            # Only the failed-frame budget's burst (and what refilled meanwhile) was checked.
            assert totals.get("forged", 0) <= intake.FAILED_BURST + 50
            assert totals.get("flood", 0) + totals.get("forged", 0) == 3000
            assert totals.get("flood", 0) > 2000
        finally:
            await alice.close()
            await bob.close()

    asyncio.run(body())


def test_a_flooding_contact_is_throttled_and_nothing_it_sent_is_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(intake, "MESSAGE_COST", 8192)  # more than any frame here: all cost it
    monkeypatch.setattr(intake, "MESSAGE_BURST", 5 * 8192)
    monkeypatch.setattr(intake, "MESSAGE_RATE", 4.0 * 8192)

    async def body() -> None:
        alice, bob = await make(tmp_path / "a", "Alice"), await make(tmp_path / "b", "Bob")
        try:
            to_alice, to_bob = await befriend(bob, alice)
            events: list[Event] = []
            bob.subscribe(events.append)
            await carry(alice, bob, (OutboxKind.RECEIPT,))  # all Alice sent so far
            skipped_before = await _skipped(bob, to_alice.id)
            for n in range(8):
                await alice.send(to_bob.id, f"m{n}")
            await carry(alice, bob)
            got = [m.body for m in reversed(await bob.messages(to_alice.id, 100))]
            assert 4 <= len(got) < 8  # the budget of 5, less the receipt carried first
            assert got == [f"m{n}" for n in range(len(got))]  # a prefix, nothing skipped
            limited = [e for e in events if isinstance(e, ContactLimited)]
            assert limited == [ContactLimited(to_alice.id, Limit.THROTTLED)]
            # Left out, not acknowledged: Alice's outbox keeps the rest and sends it again.
            assert len(await _receipt_items(bob)) == len(got)
            await asyncio.sleep(2.0)  # the budget refills (4 messages a second, up to 5)
            await carry(alice, bob)  # the outbox's resend, in order
            got = [m.body for m in reversed(await bob.messages(to_alice.id, 100))]
            assert got == [f"m{n}" for n in range(8)]
            assert await _skipped(bob, to_alice.id) == skipped_before
            assert {e.contact_id for e in events if isinstance(e, ContactLimited)} == {to_alice.id}
        finally:
            await alice.close()
            await bob.close()

    asyncio.run(body())


async def _skipped(engine: Engine, contact_id: int) -> int:
    blob = await engine.store.read(lambda r: r.sessions.load(contact_id))
    assert blob is not None
    return Session.from_bytes(blob).skipped_count


def test_a_contact_over_its_storage_quota_waits_and_is_told_once(tmp_path: Path) -> None:
    async def body() -> None:
        alice, bob = await make(tmp_path / "a", "Alice"), await make(tmp_path / "b", "Bob")
        try:
            to_alice, to_bob = await befriend(bob, alice)
            await bob.set_quota(1)
            events: list[Event] = []
            bob.subscribe(events.append)
            text = "x" * 16_000
            for _ in range(70):
                await alice.send(to_bob.id, text)
            await carry(alice, bob)
            stored = await bob.messages(to_alice.id, 1000)
            assert len(stored) == 1_000_000 // 16_000  # as many as fit, and no more
            assert [e for e in events if isinstance(e, ContactLimited)] == [
                ContactLimited(to_alice.id, Limit.QUOTA, 1_000_000)
            ]
            # Nothing beyond the quota is acknowledged: it stays in Alice's outbox.
            await carry(bob, alice, (OutboxKind.RECEIPT,))
            assert len(await _message_items(alice)) == 70 - len(stored)
            # With room again (a larger quota) the rest comes in on its next resend.
            await bob.set_quota(2)
            await carry(alice, bob)
            assert len(await bob.messages(to_alice.id, 1000)) == 70
        finally:
            await alice.close()
            await bob.close()

    asyncio.run(body())


def test_receipts_leave_in_batches_many_ids_to_a_frame(tmp_path: Path) -> None:
    async def body() -> None:
        alice, bob = await make(tmp_path / "a", "Alice"), await make(tmp_path / "b", "Bob")
        try:
            to_alice, to_bob = await befriend(bob, alice)
            await bob.start()
            for n in range(30):
                await alice.send(to_bob.id, f"m{n}")
            for item in await _message_items(alice):
                bob.on_net_event(Delivered(RELAY, item.mailbox_id, item.ciphertext))

            async def all_in() -> bool:
                return len(await bob.messages(to_alice.id, 100)) == 30

            async def acknowledged() -> bool:
                return bool(await _receipt_items(bob))

            await eventually(all_in)
            await eventually(acknowledged)
            await asyncio.sleep(3 * RECEIPT_DELAY_S)
            receipts = await _receipt_items(bob)
            assert 1 <= len(receipts) <= 3  # not one per message
            for item in receipts:
                await deliver(alice, item.mailbox_id, item.ciphertext)
            statuses = {m.status for m in await alice.messages(to_bob.id, 100)}
            assert statuses == {Status.DELIVERED}
        finally:
            await alice.close()
            await bob.close()

    asyncio.run(body())


async def _receipt_items(engine: Engine) -> list[OutboxItem]:
    items = await engine.store.read(lambda r: r.outbox.due(2**62, 10_000))
    return [i for i in items if i.kind is OutboxKind.RECEIPT]


def test_the_intake_holds_at_most_its_bound_and_the_link_waits_for_room(tmp_path: Path) -> None:
    async def body() -> None:
        bob = await make(tmp_path / "b", "Bob")
        inbound = bob._inbound  # the queue itself, before any receive loop runs
        try:

            async def room() -> bool:
                try:
                    await asyncio.wait_for(inbound.room(), 0.05)
                except TimeoutError:
                    return False
                return True

            for _ in range(intake.INTAKE_FRAMES - 1):
                inbound.put(Delivered(RELAY, os.urandom(32), b"x"))
            assert await room()
            inbound.put(Delivered(RELAY, os.urandom(32), b"x"))
            assert not await room()  # full by count: the link reads no further
            loop = asyncio.create_task(inbound.run())  # frames for no mailbox of ours

            async def drained() -> bool:
                return not inbound._queue

            await eventually(drained)
            big = b"x" * (1 << 20)
            async with bob._ctx.lock:  # the loop waits: nothing is taken out meanwhile
                for _ in range((intake.INTAKE_BYTES >> 20) + 1):
                    inbound.put(Delivered(RELAY, os.urandom(32), big))
                assert len(inbound._queue) < 16
                assert not await room()  # full by bytes, far below the count
            await asyncio.wait_for(inbound.room(), 10)
            inbound.stop()
            await loop
        finally:
            await bob.close()

    asyncio.run(body())


def test_front_ends_hear_of_a_flood_of_rejections_a_few_a_second_and_all_are_counted() -> None:
    clock = Clock()
    rejections = Rejections(clock)
    told = 0
    for _ in range(1000):
        rejections.count(Rejection.FORGED)
        told += rejections.may_tell(Rejection.FORGED)
    assert told == TOLD_BURST
    assert rejections.total == 1000
    clock.now += 1.0
    assert sum(rejections.may_tell(Rejection.FORGED) for _ in range(100)) == TOLD_RATE
    # An authentic frame's content comes from a contact, whose messages have their own budget.
    assert all(rejections.may_tell(Rejection.PAYLOAD) for _ in range(100))


def test_the_bounds_docs_threat_model_md_gives_are_the_codes() -> None:
    """The table "what arrives / bound" in docs/threat-model.md, number by number."""
    assert (intake.INTAKE_FRAMES, intake.INTAKE_BYTES) == (256, 8 * 1024 * 1024)
    assert (intake.FAILED_BURST, intake.FAILED_RATE, intake.STEP_RATE) == (40, 10.0, 20.0)
    assert (intake.REPLAY_BURST, intake.REPLAY_RATE) == (2000, 200.0)
    assert (intake.MESSAGE_BURST, intake.MESSAGE_RATE) == (10_000_000, 1_000_000.0)
    assert intake.MESSAGE_COST == 1024
    assert (intake.CHEAP_WORK, intake.IN_ORDER_WORK) == (2, 1)
    assert (TOLD_RATE, TOLD_BURST) == (5.0, 20.0)
    assert RECEIPT_DELAY_S == 0.3
