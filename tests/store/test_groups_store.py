"""Groups in the store (app/store/groups.py): members come and go, events wait for their turn
and then join the log in order, posts are kept once per (author, number) and forgotten with
their message, our copies count their receipts; a model check of `held` (hypothesis)."""

from __future__ import annotations

import sqlcipher3
from hypothesis import given, settings
from hypothesis import strategies as s

from app.domain.contacts import ContactKind, ContactState
from app.domain.groups import GroupState, MemberState
from app.domain.messages import Direction, Status
from app.store import migrations
from app.store.groups import Signed
from app.store.records import NewMessage
from app.store.repos import Repos

A, B, C = (bytes([i]) * 64 for i in (1, 2, 3))
GID = b"g" * 16


def fresh() -> tuple[Repos, int]:
    conn = sqlcipher3.connect(":memory:", isolation_level=None)
    migrations.configure(conn)
    migrations.migrate(conn)
    r = Repos(conn)
    row = r.contacts.add("Friends", GID, 1, kind=ContactKind.GROUP).id
    r.groups.add(row, GID, GroupState.JOINED, None)
    return r, row


def post(r: Repos, row: int, author: bytes, seq: int, body: str = "x") -> int:
    stored = r.messages.insert(
        NewMessage(
            row,
            Direction.INCOMING,
            bytes([seq % 256]) * 8 + author[:8],
            seq,
            body,
            0,
            0,
            Status.DELIVERED,
            author_keys=author,
        )
    )
    assert stored.message_row is not None
    r.groups.add_post(row, author, seq, stored.message_row, Signed(b"s%d" % seq, b"sig"))
    return stored.message_row


def test_a_group_row_is_in_no_contact_list_and_lists_only_once_joined() -> None:
    r, row = fresh()
    person = r.contacts.add("Bob", B, 1).id
    member = r.contacts.add("Carol", C, 1, kind=ContactKind.MEMBER).id
    assert [c.id for c in r.contacts.all()] == [person]
    assert r.contacts.count(ContactState.CONTACT) == 1
    assert r.contacts.find_by_identity(GID) is None
    assert r.contacts.find_by_identity(C).id == member  # type: ignore[union-attr]
    assert r.groups.listed(row)
    r.groups.set_state(row, GroupState.INVITED)
    assert not r.groups.listed(row)
    assert r.groups.by_group_id(GID).contact_id == row  # type: ignore[union-attr]
    assert r.groups.all(GroupState.INVITED)[0].contact_id == row
    assert r.groups.all(GroupState.JOINED) == []


def test_members_come_go_and_come_back_in_the_order_added() -> None:
    r, row = fresh()
    for keys, name in ((A, "A"), (B, "B"), (C, "C")):
        r.groups.put_member(row, keys, name, keys == A)
    r.groups.set_member(row, B, code="card", event_seq=3)
    assert [(m.name, m.admin, m.code, m.event_seq) for m in r.groups.members(row)] == [
        ("A", True, None, 0),
        ("B", False, "card", 3),
        ("C", False, None, 0),
    ]
    r.groups.set_member(row, B, state=MemberState.REMOVED)
    assert [m.name for m in r.groups.members(row)] == ["A", "C"]
    assert len(r.groups.members(row, everyone=True)) == 3
    r.groups.set_state(row, GroupState.JOINED)
    assert r.groups.shared_with(C) == [row]
    assert r.groups.shared_with(B) == []
    r.groups.put_member(row, B, "B again", False)  # back: at the end, no code, its numbers kept
    back = r.groups.member(row, B)
    assert back is not None
    assert (back.state, back.code, back.event_seq) == (MemberState.MEMBER, None, 3)
    assert [m.name for m in r.groups.members(row)] == ["A", "C", "B again"]


def test_numbers_are_taken_one_at_a_time() -> None:
    r, row = fresh()
    assert [r.groups.next_post(row) for _ in range(3)] == [1, 2, 3]
    assert r.groups.next_event(row) == 1
    assert r.groups.get(row).post_seq == 3


def test_events_wait_then_join_the_log_in_order() -> None:
    r, row = fresh()
    assert r.groups.add_event(row, A, 1, Signed(b"one", b"1"), applied=True)
    assert not r.groups.add_event(row, A, 1, Signed(b"other", b"1"), applied=True)
    assert r.groups.add_event(row, A, 3, Signed(b"three", b"3"), applied=False)
    assert r.groups.add_event(row, A, 2, Signed(b"two", b"2"), applied=True)
    assert r.groups.waiting_count(row) == 1
    ((event_id, waiting),) = r.groups.waiting(row)
    assert waiting.statement == b"three"
    r.groups.applied(event_id)
    assert [s.statement for s in r.groups.log(row)] == [b"one", b"two", b"three"]
    assert r.groups.waiting(row) == []
    r.groups.add_event(row, B, 5, Signed(b"far", b"5"), applied=False)
    ((event_id, _),) = r.groups.waiting(row)
    r.groups.drop_waiting(event_id)
    assert r.groups.waiting_count(row) == 0


def test_a_post_is_kept_once_and_forgotten_with_its_message() -> None:
    r, row = fresh()
    first = post(r, row, A, 1, "secret words")
    assert r.groups.has_post(row, A, 1)
    assert not r.groups.add_post(row, A, 1, first, Signed(b"again", b""))
    assert r.groups.post_of(first) == Signed(b"s1", b"sig")
    post(r, row, A, 2)
    r.conn.execute("DELETE FROM messages WHERE id = ?", (first,))
    # Its number stays (so it is neither taken again nor asked for), its text is gone.
    assert r.groups.has_post(row, A, 1)
    assert r.groups.held(row) == {A: 2}
    assert r.groups.posts_after(row, A, 0, 10) == [Signed(b"s2", b"sig")]
    stored = r.conn.execute("SELECT statement FROM group_posts WHERE seq = 1").fetchone()
    assert bytes(stored[0]) == b""


def test_our_copies_count_their_receipts() -> None:
    r, row = fresh()
    mine = r.messages.insert(
        NewMessage(row, Direction.OUTGOING, b"m" * 16, 1, "hi", 0, None, Status.SENT, True)
    ).message_row
    assert mine is not None
    r.groups.add_copy(b"f1" * 8, mine, B)
    r.groups.add_copy(b"f2" * 8, mine, C)
    assert r.groups.delivered(C, [b"f1" * 8]) == []  # not Carol's copy
    assert r.groups.delivered(B, [b"f1" * 8, b"zz" * 8]) == [mine]
    assert r.groups.copies(mine) == [(B, True), (C, False)]
    assert not r.groups.all_delivered(mine)
    assert r.groups.delivered(C, [b"f2" * 8]) == [mine]
    assert r.groups.all_delivered(mine)
    r.conn.execute("UPDATE group_copies SET delivered = 0 WHERE member = ?", (C,))
    assert r.groups.undelivered_to(row, C) == [b"f2" * 8]
    assert r.groups.undelivered_to(row, B) == []
    assert r.messages.raise_status(mine, Status.DELIVERED, 7)
    assert not r.messages.raise_status(mine, Status.SENT, 8)  # never back
    assert r.messages.get(mine).status is Status.DELIVERED
    assert r.messages.get(mine).delivered_at == 7
    assert not r.groups.all_delivered(12345)  # no copies: nothing to say delivered


@settings(max_examples=100, deadline=None)
@given(s.lists(s.tuples(s.sampled_from([A, B]), s.integers(1, 12)), max_size=30))
def test_held_is_the_highest_number_with_all_before_it(taken: list[tuple[bytes, int]]) -> None:
    r, row = fresh()
    for author, seq in taken:
        if not r.groups.has_post(row, author, seq):
            post(r, row, author, seq)
    have = set(taken)
    expected = {}
    for author in (A, B):
        n = 0
        while (author, n + 1) in have:
            n += 1
        if n:
            expected[author] = n
    assert r.groups.held(row) == expected
    for author, n in expected.items():
        after = r.groups.posts_after(row, author, n - 1, 100)  # oldest first
        assert after[0] == Signed(b"s%d" % n, b"sig")
        assert r.groups.posts_after(row, author, n - 1, 1) == [Signed(b"s%d" % n, b"sig")]
        assert r.groups.posts_after(row, author, n, 100) == [
            Signed(b"s%d" % seq, b"sig")
            for seq in sorted({q for a, q in have if a == author})
            if seq > n
        ]
