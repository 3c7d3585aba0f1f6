"""Replies, edits, deletion, reactions and disappearing messages through two real engines
(real SQLCipher profiles; frames handed over as the relay would), including what a contact
who runs a modified client (Bob's real session sealing any payload) can and cannot change.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import msgpack
import pytest

from app.core import payload as pl
from app.core.engine import Engine
from app.core.errors import SendingBlocked, UnknownContact, UserError
from app.core.events import ContactChanged, Event, MessageChanged, MessagesRemoved
from app.core.profile import create_profile, open_profile, profile_paths
from app.crypto.errors import DuplicateMessage
from app.crypto.passphrase import INSECURE_FAST_PARAMS
from app.crypto.ratchet import Session
from app.domain.contacts import Contact
from app.domain.messages import MAX_TIMER_S, Direction, Message, MessageKind, Reaction
from app.store.records import OutboxKind
from tests.core.engines import PASS, RELAY, befriend, carry, deliver

ALL = (OutboxKind.MESSAGE, OutboxKind.CONTROL, OutboxKind.RECEIPT)
HOUR_MS = 3_600_000


class Clock:
    """A clock both engines read, moved by the test."""

    def __init__(self) -> None:
        self.now = 1_800_000_000_000

    def __call__(self) -> int:
        return self.now


class Chat:
    """Alice and Bob, befriended, on one clock; every event of each kept."""

    def __init__(self, alice: Engine, bob: Engine, to_bob: Contact, to_alice: Contact) -> None:
        self.alice, self.bob = alice, bob
        self.to_bob, self.to_alice = to_bob, to_alice
        self.events: dict[str, list[Event]] = {"alice": [], "bob": []}
        alice.subscribe(self.events["alice"].append)
        bob.subscribe(self.events["bob"].append)

    async def exchange(self) -> None:
        """Everything waiting goes across, both ways, until nothing new does (receipts of
        receipts do not exist, so this ends)."""
        for _ in range(4):
            await carry(self.alice, self.bob, ALL)
            await carry(self.bob, self.alice, ALL)
            await self.alice.store.run(lambda r: _drop_receipts(r))
            await self.bob.store.run(lambda r: _drop_receipts(r))

    async def bob_seals(self, payload: object) -> bytes:
        """Bob's client sends anything at all inside his real session; returns the frame."""
        cid = self.to_alice.id
        blob = await self.bob.store.read(lambda r: r.sessions.load(cid))
        assert blob is not None
        raw = msgpack.packb(payload, use_bin_type=True)
        session, frame = Session.from_bytes(blob).encrypt(raw)
        await self.bob.store.run(lambda r: r.sessions.save(cid, session.to_bytes(), 0))
        await self.to_alice_mailbox(frame)
        return frame

    async def to_alice_mailbox(self, frame: bytes) -> None:
        ours = await self.alice.store.read(lambda r: r.mailboxes.list_ours(self.to_bob.id))
        await deliver(self.alice, ours[0].id, frame)


def _drop_receipts(r) -> None:  # type: ignore[no-untyped-def]
    """Receipts handed over are done (the outbox would delete them once sent)."""
    r.conn.execute("DELETE FROM outbox WHERE kind = 'receipt'")


async def make_at(path: Path, name: str, clock: Clock) -> Engine:
    opened = await create_profile(profile_paths(str(path)), PASS, name, RELAY, INSECURE_FAST_PARAMS)
    return await Engine.open(opened, clock=clock)


async def chat(tmp_path: Path, clock: Clock) -> Chat:
    alice = await make_at(tmp_path / "alice", "Alice", clock)
    bob = await make_at(tmp_path / "bob", "Bob", clock)
    to_bob, to_alice = await befriend(alice, bob)
    return Chat(alice, bob, to_bob, to_alice)


def run(tmp_path: Path, body: Callable[[Chat, Clock], Awaitable[None]]) -> None:
    async def main() -> None:
        clock = Clock()
        c = await chat(tmp_path, clock)
        try:
            await body(c, clock)
        finally:
            await c.alice.close()
            await c.bob.close()

    asyncio.run(main())


async def only(engine: Engine, contact: Contact) -> list[Message]:
    page = await engine.messages(contact.id, 100)
    return list(reversed(page))


async def find(engine: Engine, contact: Contact, body: str) -> Message:
    (found,) = [m for m in await only(engine, contact) if m.body == body]
    return found


def test_a_reply_quotes_the_message_on_both_sides(tmp_path: Path) -> None:
    async def body(c: Chat, clock: Clock) -> None:
        sent = await c.alice.send(c.to_bob.id, "lunch at noon?")
        await c.exchange()
        theirs = await find(c.bob, c.to_alice, "lunch at noon?")
        reply = await c.bob.send(c.to_alice.id, "yes!", reply_to=theirs.id)
        assert reply.quote is not None
        assert reply.quote.id == theirs.id
        await c.exchange()
        got = await find(c.alice, c.to_bob, "yes!")
        assert got.reply_to == sent.msg_id
        assert got.quote is not None
        assert (got.quote.id, got.quote.direction, got.quote.body) == (
            sent.id,
            Direction.OUTGOING,
            "lunch at noon?",
        )
        notice = await c.bob.set_timer(c.to_alice.id, 60)
        assert notice is not None
        with pytest.raises(UserError, match="same conversation"):
            await c.bob.send(c.to_alice.id, "x", reply_to=notice.id)  # a notice, not a message
        with pytest.raises(UserError, match="no such message"):
            await c.bob.send(c.to_alice.id, "x", reply_to=99_999)

    run(tmp_path, body)


def test_an_edit_replaces_the_text_on_both_sides_and_in_search(tmp_path: Path) -> None:
    async def body(c: Chat, clock: Clock) -> None:
        sent = await c.alice.send(c.to_bob.id, "meet at the bakery")
        await c.exchange()
        clock.now += 1000
        edited = await c.alice.edit(sent.id, "meet at the library")
        assert edited.body == "meet at the library"
        assert edited.edited_at is not None
        assert MessageChanged(edited) in c.events["alice"]  # the window shows it at once
        await c.exchange()
        got = await find(c.bob, c.to_alice, "meet at the library")
        assert got.edited_at == edited.edited_at
        assert any(isinstance(e, MessageChanged) for e in c.events["bob"])
        assert [h.message.id for h in await c.bob.search("library")] == [got.id]
        assert await c.bob.search("bakery") == []
        # The update was acknowledged: nothing of it waits in Alice's outbox.
        assert await c.alice.pending_outbox(c.to_bob.id) == 0
        # Bob cannot edit what Alice wrote.
        with pytest.raises(UserError, match="only edit a message you wrote"):
            await c.bob.edit(got.id, "hijacked")

    run(tmp_path, body)


def test_the_latest_edit_wins_whatever_order_they_arrive_in(tmp_path: Path) -> None:
    async def body(c: Chat, clock: Clock) -> None:
        sent = await c.alice.send(c.to_bob.id, "v1")
        await c.exchange()
        for text in ("v2", "v3"):
            clock.now += 1000
            await c.alice.edit(sent.id, text)
        controls = [
            i
            for i in await c.alice.store.read(lambda r: r.outbox.for_contact(c.to_bob.id))
            if i.kind is OutboxKind.CONTROL
        ]
        assert len(controls) == 2
        for item in reversed(controls):  # v3 first, then the older v2
            await deliver(c.bob, item.mailbox_id, item.ciphertext)
        assert [m.body for m in await only(c.bob, c.to_alice)] == ["v3"]

    run(tmp_path, body)


def test_a_contact_cannot_edit_delete_or_react_beyond_the_rules(tmp_path: Path) -> None:
    """Bob's modified client tries to edit and delete Alice's own message, to edit a message
    nobody has, and to delete his own after 24 hours: nothing changes, nothing crashes, and
    each update is acknowledged (so it is not sent forever)."""

    async def body(c: Chat, clock: Clock) -> None:
        mine = await c.alice.send(c.to_bob.id, "mine, not yours")
        await c.exchange()
        old = await c.bob.send(c.to_alice.id, "an old message of Bob's")
        await c.exchange()
        before = await only(c.alice, c.to_bob)
        now = clock.now
        await c.bob_seals({"k": "edit", "ref": mine.msg_id, "ts": now, "body": "forged"})
        await c.bob_seals({"k": "del", "ref": mine.msg_id, "ts": now})
        await c.bob_seals({"k": "edit", "ref": b"\x00" * 16, "ts": now, "body": "nobody's"})
        late = old.sent_at + 24 * HOUR_MS + 1
        await c.bob_seals({"k": "del", "ref": old.msg_id, "ts": late})
        assert await only(c.alice, c.to_bob) == before
        # Each was acknowledged: four receipt ids wait in Alice's outbox for Bob.
        waiting = await c.alice.store.read(lambda r: r.outbox.for_contact(c.to_bob.id))
        assert [i.kind for i in waiting].count(OutboxKind.RECEIPT) >= 1

    run(tmp_path, body)


def test_delete_for_everyone_removes_the_text_from_the_receivers_search(tmp_path: Path) -> None:
    async def body(c: Chat, clock: Clock) -> None:
        sent = await c.alice.send(c.to_bob.id, "the password is swordfish")
        await c.exchange()
        theirs = await find(c.bob, c.to_alice, "the password is swordfish")
        await c.bob.react(theirs.id, "👍")
        await c.exchange()
        assert [h.message.id for h in await c.bob.search("swordfish")] == [theirs.id]
        clock.now += HOUR_MS
        after = await c.alice.delete_message(sent.id, for_everyone=True)
        assert after is not None
        assert after.deleted
        assert after.body == ""
        await c.exchange()
        (gone,) = await only(c.bob, c.to_alice)
        assert (gone.id, gone.deleted, gone.body, gone.reactions) == (theirs.id, True, "", ())
        assert await c.bob.search("swordfish") == []
        assert await c.alice.search("swordfish") == []
        assert await index_terms(c.bob) & {"swordfish", "password"} == set()
        assert b"swordfish" not in await index_bytes(c.bob)
        # Deleting again, or editing a deleted message, is refused.
        with pytest.raises(UserError):
            await c.alice.delete_message(sent.id, for_everyone=True)
        with pytest.raises(UserError):
            await c.alice.edit(sent.id, "back")

    run(tmp_path, body)


def test_delete_for_everyone_is_refused_after_24_hours(tmp_path: Path) -> None:
    async def body(c: Chat, clock: Clock) -> None:
        sent = await c.alice.send(c.to_bob.id, "old news")
        clock.now += 24 * HOUR_MS + 1
        with pytest.raises(UserError, match="within 24 hours"):
            await c.alice.delete_message(sent.id, for_everyone=True)
        assert (await c.alice.message(sent.id)).body == "old news"

    run(tmp_path, body)


def test_delete_for_me_removes_the_row_its_outbox_and_its_words(tmp_path: Path) -> None:
    async def body(c: Chat, clock: Clock) -> None:
        before = await c.alice.pending_outbox(c.to_bob.id)
        sent = await c.alice.send(c.to_bob.id, "unsent zebra")  # still in the outbox
        assert await c.alice.pending_outbox(c.to_bob.id) == before + 1
        assert await c.alice.delete_message(sent.id) is None
        assert await only(c.alice, c.to_bob) == []
        assert await c.alice.pending_outbox(c.to_bob.id) == before
        assert await c.alice.search("zebra") == []
        removed = [e for e in c.events["alice"] if isinstance(e, MessagesRemoved)]
        assert removed == [MessagesRemoved(c.to_bob.id, (sent.id,))]

    run(tmp_path, body)


def test_one_reaction_per_person_changeable_and_removable(tmp_path: Path) -> None:
    async def body(c: Chat, clock: Clock) -> None:
        sent = await c.alice.send(c.to_bob.id, "we won")
        await c.exchange()
        theirs = await find(c.bob, c.to_alice, "we won")
        await c.bob.react(theirs.id, "👍")
        await c.alice.react(sent.id, "🎉")
        await c.exchange()
        assert (await c.alice.message(sent.id)).reactions == (
            Reaction(False, "👍"),
            Reaction(True, "🎉"),
        )
        clock.now += 1000
        await c.bob.react(theirs.id, "❤️")
        await c.exchange()
        assert (await c.alice.message(sent.id)).reactions == (
            Reaction(False, "❤️"),
            Reaction(True, "🎉"),
        )
        clock.now += 1000
        await c.bob.react(theirs.id, "")
        await c.exchange()
        assert (await c.alice.message(sent.id)).reactions == (Reaction(True, "🎉"),)
        assert (await c.bob.message(theirs.id)).reactions == (Reaction(False, "🎉"),)
        with pytest.raises(UserError, match="one emoji"):
            await c.bob.react(theirs.id, "not an emoji at all")

    run(tmp_path, body)


def test_an_update_resent_is_applied_once_and_acknowledged_again(tmp_path: Path) -> None:
    async def body(c: Chat, clock: Clock) -> None:
        sent = await c.alice.send(c.to_bob.id, "first")
        await c.exchange()
        clock.now += 1000
        await c.alice.edit(sent.id, "second")
        (control,) = [
            i
            for i in await c.alice.store.read(lambda r: r.outbox.for_contact(c.to_bob.id))
            if i.kind is OutboxKind.CONTROL
        ]
        await deliver(c.bob, control.mailbox_id, control.ciphertext)
        changed = sum(isinstance(e, MessageChanged) for e in c.events["bob"])
        await c.bob.store.run(lambda r: _drop_receipts(r))  # Bob's receipt was lost
        await deliver(c.bob, control.mailbox_id, control.ciphertext)  # so Alice resends
        assert sum(isinstance(e, MessageChanged) for e in c.events["bob"]) == changed
        await carry(c.bob, c.alice, (OutboxKind.RECEIPT,))  # the receipt, sent again
        assert await c.alice.pending_outbox(c.to_bob.id) == 0

    run(tmp_path, body)


def test_an_unknown_kind_is_a_neutral_line_and_is_acknowledged(tmp_path: Path) -> None:
    async def body(c: Chat, clock: Clock) -> None:
        frame = await c.bob_seals({"k": "poll", "question": "lunch?", "options": ["a", "b"]})
        (line,) = await only(c.alice, c.to_bob)
        assert line.kind is MessageKind.UNSUPPORTED
        assert line.msg_id == pl.message_id(frame)
        assert await c.alice.summaries()  # the list still reads
        waiting = await c.alice.store.read(lambda r: r.outbox.for_contact(c.to_bob.id))
        assert [i.kind for i in waiting] == [OutboxKind.RECEIPT]
        # A run of them is one line; each is acknowledged, and the conversation stays in step.
        for n in range(5):
            await c.bob_seals({"k": "poll", "n": n})
        assert [m.kind for m in await only(c.alice, c.to_bob)] == [MessageKind.UNSUPPORTED]
        waiting = await c.alice.store.read(lambda r: r.outbox.for_contact(c.to_bob.id))
        assert [i.kind for i in waiting] == [OutboxKind.RECEIPT] * 6
        await c.bob.send(c.to_alice.id, "still in step")
        await c.exchange()
        assert [m.body for m in await only(c.alice, c.to_bob)][-1] == "still in step"

    run(tmp_path, body)


def test_the_timer_is_set_by_either_side_and_both_see_who(tmp_path: Path) -> None:
    async def body(c: Chat, clock: Clock) -> None:
        notice = await c.alice.set_timer(c.to_bob.id, 300)
        assert notice is not None
        assert notice.kind is MessageKind.TIMER
        assert (await c.alice.contact(c.to_bob.id)).timer_s == 300
        assert await c.alice.set_timer(c.to_bob.id, 300) is None  # no change, no notice
        await c.exchange()
        assert (await c.bob.contact(c.to_alice.id)).timer_s == 300
        (seen,) = await only(c.bob, c.to_alice)
        assert (seen.kind, seen.timer_s, seen.direction) == (
            MessageKind.TIMER,
            300,
            Direction.INCOMING,
        )
        assert any(
            isinstance(e, ContactChanged) and e.contact.timer_s == 300 for e in c.events["bob"]
        )
        clock.now += 1000
        await c.bob.set_timer(c.to_alice.id, 0)
        await c.exchange()
        assert (await c.alice.contact(c.to_bob.id)).timer_s == 0
        kinds = [(m.direction, m.timer_s) for m in await only(c.alice, c.to_bob)]
        assert kinds == [(Direction.OUTGOING, 300), (Direction.INCOMING, 0)]

    run(tmp_path, body)


def test_disappearing_messages_run_from_sending_and_from_reading(tmp_path: Path) -> None:
    async def body(c: Chat, clock: Clock) -> None:
        await c.alice.set_timer(c.to_bob.id, 300)
        await c.exchange()
        sent = await c.alice.send(c.to_bob.id, "burn after reading")
        assert sent.timer_s == 300
        assert sent.expires_at == sent.sent_at + 300_000
        await c.exchange()
        theirs = await find(c.bob, c.to_alice, "burn after reading")
        assert theirs.expires_at is None  # not read yet: Bob's clock has not started
        clock.now += 200_000
        await c.bob.mark_read(c.to_alice.id)
        assert (await c.bob.message(theirs.id)).expires_at == clock.now + 300_000
        clock.now += 100_001  # Alice's ran out; Bob's has 200 s left
        await c.alice._expiry.sweep()
        await c.bob._expiry.sweep()
        assert [m.body for m in await only(c.alice, c.to_bob)] == [""]  # the notice only
        assert await c.alice.search("burn") == []
        assert [m.id for m in await only(c.bob, c.to_alice) if m.body] == [theirs.id]
        clock.now += 200_000
        await c.bob._expiry.sweep()
        assert [m.body for m in await only(c.bob, c.to_alice)] == [""]
        assert any(
            isinstance(e, MessagesRemoved) and e.message_rows == (theirs.id,)
            for e in c.events["bob"]
        )

    run(tmp_path, body)


async def index_terms(engine: Engine) -> set[str]:
    """Every word the search index holds, read from the index itself."""

    def read(r) -> set[str]:  # type: ignore[no-untyped-def]
        r.conn.execute(
            "CREATE VIRTUAL TABLE IF NOT EXISTS temp.vocab USING fts5vocab(main, messages_fts, row)"
        )
        return {row[0] for row in r.conn.execute("SELECT term FROM temp.vocab")}

    return await engine.store.read(read)


async def index_bytes(engine: Engine) -> bytes:
    def read(r) -> bytes:  # type: ignore[no-untyped-def]
        rows = r.conn.execute("SELECT block FROM messages_fts_data").fetchall()
        return b"".join(bytes(row[0]) for row in rows if row[0] is not None)

    return await engine.store.read(read)


def test_an_expired_message_is_gone_from_the_index_after_a_restart(tmp_path: Path) -> None:
    """The profile is closed before the message runs out and opened after: the sweep at
    opening deletes it, and neither the index's words nor its pages hold it."""

    async def main() -> None:
        clock = Clock()
        c = await chat(tmp_path, clock)
        await c.alice.set_timer(c.to_bob.id, 60)
        before = await c.alice.pending_outbox(c.to_bob.id)
        sent = await c.alice.send(c.to_bob.id, "quixotically vanishing")
        await c.alice.search("quixotically")  # indexed now (search indexes what waits)
        assert "quixotically" in await index_terms(c.alice)
        await c.alice.close()
        await c.bob.close()
        wal = str(profile_paths(str(tmp_path / "alice")).database) + "-wal"
        assert wal_size(wal) == 0  # closing truncated the WAL
        clock.now = sent.sent_at + 61_000
        opened = await open_profile(profile_paths(str(tmp_path / "alice")), PASS)
        alice = await Engine.open(opened, clock=clock)
        try:
            assert [m.kind for m in await alice.messages(c.to_bob.id, 10)] == [MessageKind.TIMER]
            assert await alice.search("quixotically") == []
            assert "quixotically" not in await index_terms(alice)
            assert b"quixotically" not in await index_bytes(alice)
            assert b"xotically" not in await index_bytes(alice)
            assert await alice.pending_outbox(c.to_bob.id) == before  # its frame is gone too
        finally:
            await alice.close()

    asyncio.run(main())


def test_a_running_engine_deletes_a_message_when_its_time_comes(tmp_path: Path) -> None:
    """Not only at opening: the timer set for the next one due fires while the engine runs."""

    async def body(c: Chat, clock: Clock) -> None:
        await c.alice.set_timer(c.to_bob.id, 1)
        await c.alice.start()  # its relay is away; the timer runs all the same
        sent = await c.alice.send(c.to_bob.id, "one second")
        await asyncio.sleep(0.2)  # the sweep its sending asked for: nothing due yet
        assert not any(isinstance(e, MessagesRemoved) for e in c.events["alice"])
        clock.now += 1000  # by the time the timer fires (a second after it was set), it is due
        for _ in range(100):
            if any(isinstance(e, MessagesRemoved) for e in c.events["alice"]):
                break
            await asyncio.sleep(0.05)
        removed = [e for e in c.events["alice"] if isinstance(e, MessagesRemoved)]
        assert removed == [MessagesRemoved(c.to_bob.id, (sent.id,))]
        assert [m.kind for m in await only(c.alice, c.to_bob)] == [MessageKind.TIMER]

    run(tmp_path, body)


def test_the_rules_hold_at_their_edges(tmp_path: Path) -> None:
    """Each limit exactly at and just past its edge: the deletion window (24 hours after, 5
    minutes of clock skew before), the timer's range, an edit's text, what can have
    reactions; a message that does not exist; a contact we can no longer write to."""

    async def body(c: Chat, clock: Clock) -> None:
        day = 24 * HOUR_MS
        skew = 5 * 60 * 1000
        olds = []
        for n in range(4):
            olds.append(await c.bob.send(c.to_alice.id, f"edge {n}"))
        await c.exchange()
        edge = [await find(c.alice, c.to_bob, f"edge {n}") for n in range(4)]
        at = [
            olds[0].sent_at + day,  # the last moment: honoured
            olds[1].sent_at + day + 1,  # too late
            olds[2].sent_at - skew,  # a clock 5 minutes behind: honoured
            olds[3].sent_at - skew - 1,  # further behind: refused
        ]
        for old, ts in zip(olds, at, strict=True):
            await c.bob_seals({"k": "del", "ref": old.msg_id, "ts": ts})
        deleted = [(await c.alice.message(m.id)).deleted for m in edge]
        assert deleted == [True, False, True, False]
        # Each update was acknowledged, once: four receipts, no more.
        waiting = await c.alice.store.read(lambda r: r.outbox.for_contact(c.to_bob.id))
        assert [i.kind for i in waiting].count(OutboxKind.RECEIPT) == 4
        # Only the honoured ones were told to the front ends.
        changed = [e.message.id for e in c.events["alice"] if isinstance(e, MessageChanged)]
        assert changed == [edge[0].id, edge[2].id]

        mine = await c.alice.send(c.to_bob.id, "mine")
        clock.now = mine.sent_at + day  # exactly 24 hours: still ours to delete
        assert (await c.alice.delete_message(mine.id, for_everyone=True)) is not None
        with pytest.raises(UserError, match="empty"):
            await c.alice.edit((await c.alice.send(c.to_bob.id, "x")).id, "   ")
        notice = await c.alice.set_timer(c.to_bob.id, MAX_TIMER_S)
        assert notice is not None
        assert any(
            isinstance(e, ContactChanged) and e.contact.timer_s == MAX_TIMER_S
            for e in c.events["alice"]
        )
        for bad in (-1, MAX_TIMER_S + 1):
            with pytest.raises(UserError, match="timer"):
                await c.alice.set_timer(c.to_bob.id, bad)
        with pytest.raises(UserError, match="only a message"):
            await c.alice.react(notice.id, "👍")
        with pytest.raises(UserError, match="no such message"):
            await c.alice.edit(999_999, "nothing there")
        with pytest.raises(UnknownContact):
            await c.alice.set_timer(999_999, 60)
        await c.alice.block(c.to_bob.id)
        with pytest.raises(SendingBlocked):
            await c.alice.react(edge[1].id, "👍")

    run(tmp_path, body)


def test_an_edit_after_the_clock_went_back_still_wins(tmp_path: Path) -> None:
    async def body(c: Chat, clock: Clock) -> None:
        sent = await c.alice.send(c.to_bob.id, "first")
        await c.exchange()
        clock.now += 1000
        await c.alice.edit(sent.id, "second")
        clock.now -= 60_000  # the computer's clock was set back
        third = await c.alice.edit(sent.id, "third")
        assert third.body == "third"
        assert third.edited_at == sent.sent_at + 1000 + 1  # just after the edit it replaces
        await c.exchange()
        assert [m.body for m in await only(c.bob, c.to_alice)] == ["third"]

    run(tmp_path, body)


def test_an_update_advances_the_ratchet_and_a_notice_is_never_unread(tmp_path: Path) -> None:
    async def body(c: Chat, clock: Clock) -> None:
        sent = await c.bob.send(c.to_alice.id, "hello")
        await c.exchange()

        async def state() -> bytes | None:
            return await c.alice.store.read(lambda r: r.sessions.load(c.to_bob.id))

        async def spent(frame: bytes) -> bool:
            """Whether Alice's stored session has used this frame's key already."""
            blob = await state()
            assert blob is not None
            try:
                Session.from_bytes(blob).decrypt(frame)
            except DuplicateMessage:
                return True
            return False

        reacted = await c.bob_seals(
            {"k": "react", "ref": sent.msg_id, "ts": clock.now, "emoji": "👍"}
        )
        assert await spent(reacted)
        first = await c.bob_seals({"k": "poll"})
        again = await c.bob_seals({"k": "poll"})  # one more of a run: no line, the step kept
        assert await spent(first)
        assert await spent(again)
        # Its receipt lost, the one without a line of its own comes again: acknowledged again.
        await c.alice.store.run(lambda r: _drop_receipts(r))
        await c.to_alice_mailbox(again)
        waiting = await c.alice.store.read(lambda r: r.outbox.for_contact(c.to_bob.id))
        assert [i.kind for i in waiting] == [OutboxKind.RECEIPT]
        await c.bob.set_timer(c.to_alice.id, 60)
        await c.exchange()
        unread = await c.alice.store.read(lambda r: r.messages.unread_count(c.to_bob.id))
        assert unread == 1  # "hello"; the notices are not unread messages
        kinds = [m.kind for m in await only(c.alice, c.to_bob)]
        assert kinds == [MessageKind.TEXT, MessageKind.UNSUPPORTED, MessageKind.TIMER]
        (line,) = [m for m in await only(c.alice, c.to_bob) if m.kind is MessageKind.UNSUPPORTED]
        assert line.sender_seq == 0

    run(tmp_path, body)


def test_applied_updates_are_remembered_30_days_and_the_timer_wakes_hourly(
    tmp_path: Path,
) -> None:
    async def body(c: Chat, clock: Clock) -> None:
        month = 30 * 24 * HOUR_MS
        now = clock.now

        def seed(r) -> None:  # type: ignore[no-untyped-def]
            r.conversation.remember(c.to_bob.id, b"o" * 16, now - month - 1)
            r.conversation.remember(c.to_bob.id, b"k" * 16, now - month)

        await c.alice.store.run(seed)
        await c.alice._expiry.sweep()
        kept = await c.alice.store.read(
            lambda r: [r.conversation.applied(c.to_bob.id, x * 16) for x in (b"o", b"k")]
        )
        assert kept == [False, True]
        # A message due in a day: the timer is set for an hour at most (clocks change).
        await c.alice.set_timer(c.to_bob.id, 86_400)
        await c.alice.send(c.to_bob.id, "tomorrow")  # not started: no timer yet
        assert c.alice._expiry._timer is None
        await c.alice.start()  # starting sets it for what is due
        await asyncio.sleep(0.2)
        timer = c.alice._expiry._timer
        assert timer is not None
        assert 3590 < timer.when() - asyncio.get_running_loop().time() <= 3600
        c.alice._expiry.stop()  # closing: the timer goes
        assert timer.cancelled()
        assert c.alice._expiry._timer is None

    run(tmp_path, body)


def test_a_failed_message_deleted_for_everyone_is_not_sent_again(tmp_path: Path) -> None:
    async def body(c: Chat, clock: Clock) -> None:
        sent = await c.alice.send(c.to_bob.id, "never arrived")

        def fail(r) -> None:  # type: ignore[no-untyped-def]
            for item in r.outbox.for_contact(c.to_bob.id):
                if item.message_row == sent.id:
                    r.outbox.fail(item.id)

        await c.alice.store.run(fail)
        await c.alice.delete_message(sent.id, for_everyone=True)
        with pytest.raises(UserError, match="failed can be sent again"):
            await c.alice.retry(sent.id)

    run(tmp_path, body)


def test_what_the_relay_saw_of_another_conversation_gives_a_contact_nothing(
    tmp_path: Path,
) -> None:
    """The relay sees every frame, so it knows the id of each message Carol sends Alice (the
    hash of its ciphertext). Bob, working with it, names that id in a reply, an edit, a
    deletion and a reaction: Carol's message in Alice's other conversation stays as it was,
    and Bob's reply quotes nothing."""

    async def body(c: Chat, clock: Clock) -> None:
        carol = await make_at(tmp_path / "carol", "Carol", clock)
        try:
            to_carol, carol_to_alice = await befriend(c.alice, carol)
            await carol.send(carol_to_alice.id, "carol's secret plan")
            seen_by_relay = [
                pl.message_id(i.ciphertext)
                for i in await carol.store.read(lambda r: r.outbox.for_contact(carol_to_alice.id))
                if i.kind is OutboxKind.MESSAGE
            ]
            await carry(carol, c.alice)
            target = await find(c.alice, to_carol, "carol's secret plan")
            assert target.msg_id in seen_by_relay  # the relay does know its id
            ref, now = target.msg_id, clock.now
            await c.bob_seals({"k": "msg", "seq": 90, "ts": now, "body": "look", "re": ref})
            await c.bob_seals({"k": "edit", "ref": ref, "ts": now, "body": "rewritten"})
            await c.bob_seals({"k": "react", "ref": ref, "ts": now, "emoji": "💩"})
            await c.bob_seals({"k": "del", "ref": ref, "ts": now})
            assert await c.alice.message(target.id) == target
            reply = await find(c.alice, c.to_bob, "look")
            assert reply.reply_to == ref
            assert reply.quote is None  # quotes are looked up in Bob's conversation only
            changed = [e for e in c.events["alice"] if isinstance(e, MessageChanged)]
            assert changed == []
        finally:
            await carol.close()

    run(tmp_path, body)


def wal_size(path: str) -> int:
    """The size of a WAL file (0 when there is none)."""
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return 0
