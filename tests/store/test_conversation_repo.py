"""The conversation's store: whatever order edits, reactions and timer settings arrive in, the
latest (by the sender's time) is what stays; a deletion for everyone, an expiry or a deletion
for me takes the words out of the search index's pages; expiry takes only what ran out."""

from __future__ import annotations

import sqlcipher3
from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.messages import Direction, MessageKind, Status
from app.store import migrations
from app.store.records import NewMessage, NewOutbox, OutboxKind
from app.store.repos import Repos


def fresh() -> Repos:
    conn = sqlcipher3.connect(":memory:", isolation_level=None)
    migrations.configure(conn)
    migrations.migrate(conn)
    return Repos(conn)


def message(r: Repos, contact: int, n: int, body: str, **extra: object) -> int:
    new = NewMessage(
        contact, Direction.INCOMING, b"m%d" % n, n, body, n, n, Status.DELIVERED, **extra
    )  # type: ignore[arg-type]
    stored = r.messages.insert(new)
    assert stored.message_row is not None
    return stored.message_row


def index_bytes(r: Repos) -> bytes:
    rows = r.conn.execute("SELECT block FROM messages_fts_data").fetchall()
    return b"".join(bytes(row[0]) for row in rows if row[0] is not None)


changes = st.lists(
    st.tuples(st.integers(min_value=0, max_value=50), st.sampled_from(["a", "b", "c", "d"])),
    min_size=1,
    max_size=12,
)


@settings(max_examples=60, deadline=None)
@given(changes, st.randoms(use_true_random=False))
def test_the_latest_edit_and_reaction_win_in_any_order(
    made: list[tuple[int, str]], order: object
) -> None:
    r = fresh()
    c = r.contacts.add("bob", b"K", 1).id
    row = message(r, c, 1, "original")
    shuffled = list(made)
    order.shuffle(shuffled)  # type: ignore[attr-defined]
    for at, word in shuffled:
        r.conversation.edit(row, f"text {word}", at + 10)
        r.conversation.react(row, False, {"a": "👍", "b": "❤️", "c": "😂", "d": ""}[word], at)
    latest_at = max(at for at, _ in made)
    latest = [w for at, w in made if at == latest_at]
    got = r.messages.get(row)
    # Ties between different texts at the same time keep the first applied; no tie, one answer.
    if len(set(latest)) == 1:
        assert got.body == f"text {latest[0]}"
        emoji = {"a": "👍", "b": "❤️", "c": "😂", "d": ""}[latest[0]]
        assert [x.emoji for x in got.reactions] == ([emoji] if emoji else [])
    assert got.edited_at == latest_at + 10


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.integers(min_value=0, max_value=30), st.integers(0, 10**6)), max_size=10)
)
def test_the_latest_timer_setting_wins_in_any_order(settings_made: list[tuple[int, int]]) -> None:
    r = fresh()
    c = r.contacts.add("bob", b"K", 1).id
    for at, seconds in sorted(settings_made, key=lambda s: -s[0]):  # newest first
        r.contacts.set_timer(c, seconds, at)
    expected = 0
    if settings_made:
        newest = max(at for at, _ in settings_made)
        firsts = [s for at, s in sorted(settings_made, key=lambda s: -s[0]) if at == newest]
        expected = firsts[-1]  # equal times: the last applied
    assert r.contacts.get(c).timer_s == expected


def test_expiry_takes_only_what_ran_out_with_its_outbox_reactions_and_words() -> None:
    r = fresh()
    c = r.contacts.add("bob", b"K", 1).id
    gone = message(r, c, 1, "ephemeral aardvark", timer_s=60, expires_at=1_000)
    kept = message(r, c, 2, "lasting badger", timer_s=60, expires_at=2_000)
    plain = message(r, c, 3, "plain capybara")
    r.conversation.react(gone, True, "👍", 5)
    r.outbox.add(NewOutbox(c, OutboxKind.MESSAGE, b"mb", "ws://r", b"frame", 0, 0), gone)
    r.search("aardvark")  # everything indexed
    assert b"aardvark" in index_bytes(r)
    assert r.conversation.next_expiry() == 1_000
    assert r.conversation.expire(999) == []
    assert r.conversation.expire(1_000) == [(c, gone)]
    assert [m.id for m in r.messages.page(c, 10)] == [plain, kept]
    assert r.outbox.count() == 0
    assert r.conn.execute("SELECT count(*) FROM reactions").fetchone()[0] == 0
    assert r.search("aardvark") == []
    assert b"aardvark" not in index_bytes(r)
    assert b"badger" in index_bytes(r)
    assert r.conversation.next_expiry() == 2_000


def test_delete_for_everyone_keeps_the_row_and_takes_the_words() -> None:
    r = fresh()
    c = r.contacts.add("bob", b"K", 1).id
    row = message(r, c, 1, "secret walrus", reply_to=b"q" * 16)
    r.conversation.react(row, False, "👍", 5)
    r.search("walrus")
    assert r.conversation.delete_for_everyone(row)
    got = r.messages.get(row)
    assert (got.body, got.deleted, got.reply_to, got.reactions, got.kind) == (
        "",
        True,
        None,
        (),
        MessageKind.TEXT,
    )
    assert b"walrus" not in index_bytes(r)
    assert not r.conversation.delete_for_everyone(row)  # once
    assert not r.conversation.edit(row, "back again", 99)  # a deleted message stays deleted
    assert r.conversation.find_text(c, b"m1") is None


def test_an_update_is_remembered_once_and_forgotten_later() -> None:
    r = fresh()
    c = r.contacts.add("bob", b"K", 1).id
    assert r.conversation.remember(c, b"u" * 16, 100)
    assert not r.conversation.remember(c, b"u" * 16, 200)
    assert r.conversation.applied(c, b"u" * 16)
    assert r.conversation.forget_applied(100) == 0
    assert r.conversation.forget_applied(101) == 1
    assert not r.conversation.applied(c, b"u" * 16)


def test_receipts_note_when_a_message_was_delivered_and_read_once() -> None:
    r = fresh()
    c = r.contacts.add("bob", b"K", 1).id
    new = NewMessage(c, Direction.OUTGOING, b"o1", 1, "hi", 10, None, Status.SENT)
    row = r.messages.insert(new).message_row
    assert row is not None
    r.messages.acknowledge(c, [b"o1"], Status.DELIVERED, 100)
    r.messages.acknowledge(c, [b"o1"], Status.DELIVERED, 150)  # a resent receipt
    got = r.messages.get(row)
    assert (got.status, got.delivered_at, got.read_at) == (Status.DELIVERED, 100, None)
    r.messages.acknowledge(c, [b"o1"], Status.READ, 200)
    r.messages.acknowledge(c, [b"o1"], Status.DELIVERED, 250)  # late: changes nothing
    got = r.messages.get(row)
    assert (got.status, got.delivered_at, got.read_at) == (Status.READ, 100, 200)


def test_find_text_looks_on_the_side_asked_and_reactions_say_what_changed() -> None:
    r = fresh()
    c = r.contacts.add("bob", b"K", 1).id
    for n in range(3):  # row ids that are not the contact's id
        message(r, c, 100 + n, f"filler {n}")
    theirs = message(r, c, 1, "theirs")
    ours = r.messages.insert(
        NewMessage(c, Direction.OUTGOING, b"o1", 1, "ours", 1, None, Status.SENT)
    ).message_row
    assert ours is not None
    assert [
        getattr(r.conversation.find_text(c, ref, side), "id", None)
        for ref, side in (
            (b"m1", None),
            (b"o1", None),
            (b"m1", Direction.INCOMING),
            (b"o1", Direction.INCOMING),
            (b"o1", Direction.OUTGOING),
            (b"m1", Direction.OUTGOING),
        )
    ] == [theirs, ours, theirs, None, ours, None]
    assert r.conversation.react(ours, False, "👍", 10)  # shows a change
    assert not r.conversation.react(ours, False, "👍", 11)  # the same again: no change
    assert not r.conversation.react(ours, False, "❤️", 9)  # older: refused
    assert r.conversation.react(ours, False, "❤️", 11)  # same time, another: taken
    assert r.conversation.react(ours, False, "", 12)
    assert not r.conversation.react(ours, False, "", 13)
    assert r.messages.get(ours).reactions == ()
    expiring = message(r, c, 7, "soon gone", timer_s=1, expires_at=50)
    assert r.conversation.expire(50) == [(c, expiring)]
    assert [m.id for m in r.messages.page(c, 10)] == [
        ours,
        theirs,
        theirs - 1,
        theirs - 2,
        theirs - 3,
    ]
    assert r.conversation.delete_for_everyone(theirs)
    assert not r.conversation.delete_for_everyone(theirs)
