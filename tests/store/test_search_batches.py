"""The search index in batches (migration 6): whatever the order of stores, deletions and
searches, a search finds exactly the stored messages that match, and FTS5's own integrity
check agrees with the messages table. Row ids reused after the newest message was deleted
(contact deleted) are the edge case."""

from __future__ import annotations

import pytest
import sqlcipher3 as sqlite3  # the SQLite the store runs on (FTS5 secure-delete)
from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.messages import Direction, Status
from app.store import messages as messages_module
from app.store import migrations
from app.store.records import NewMessage
from app.store.repos import Repos

WORDS = ["apple", "pear", "plum", "fig"]


@pytest.fixture(autouse=True)
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(messages_module, "SEARCH_BATCH", 3)


def fresh() -> Repos:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    migrations.configure(conn)
    migrations.migrate(conn)
    return Repos(conn)


def fts_consistent(r: Repos) -> None:
    """FTS5 raises when its index differs from the external content it claims to hold."""
    upto = r.conn.execute("SELECT indexed_upto FROM search_progress").fetchone()[0]
    r.conn.execute("INSERT INTO messages_fts (messages_fts, rank) VALUES ('integrity-check', 0)")
    indexed = r.conn.execute(
        "SELECT count(*) FROM messages_fts WHERE messages_fts MATCH 'apple OR pear OR plum OR fig'"
    ).fetchone()[0]
    below = r.conn.execute("SELECT count(*) FROM messages WHERE id <= ?", (upto,)).fetchone()[0]
    assert indexed == below  # everything up to the mark is indexed, nothing beyond it


ops = st.lists(
    st.one_of(
        st.tuples(st.just("store"), st.integers(0, 2), st.sampled_from(WORDS)),
        st.tuples(st.just("many"), st.integers(0, 2), st.lists(st.sampled_from(WORDS), max_size=5)),
        st.tuples(st.just("delete"), st.integers(0, 2), st.just("")),
        st.tuples(st.just("search"), st.integers(0, 2), st.sampled_from(WORDS)),
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(ops)
def test_search_finds_exactly_what_is_stored(script: list[tuple[str, int, object]]) -> None:
    r = fresh()
    contacts: dict[int, int] = {}  # slot -> contact id
    model: dict[int, tuple[int, str]] = {}  # message id -> (contact slot, body)
    n = 0

    def contact(slot: int) -> int:
        if slot not in contacts:
            contacts[slot] = r.contacts.add(f"c{slot}", b"K%d-%d" % (slot, n), 1).id
        return contacts[slot]

    def message(slot: int, word: str) -> NewMessage:
        nonlocal n
        n += 1
        body = f"{word} number{n}"
        return NewMessage(contact(slot), Direction.INCOMING, b"m%d" % n, n, body, n, n, Status.READ)

    for op, slot, arg in script:
        if op == "store":
            m = message(slot, str(arg))
            stored = r.messages.insert(m)
            assert stored.message_row is not None
            model[stored.message_row] = (slot, m.body)
        elif op == "many":
            batch = [message(slot, w) for w in arg]  # type: ignore[attr-defined]
            before = {row for (row,) in r.conn.execute("SELECT id FROM messages")}
            assert r.messages.insert_many(batch) == len(batch)
            new = r.conn.execute("SELECT id, body FROM messages ORDER BY id").fetchall()
            for row, body in new:
                if row not in before:
                    model[row] = (slot, body)
        elif op == "delete" and slot in contacts:
            r.contacts.delete(contacts.pop(slot))
            model = {k: v for k, v in model.items() if v[0] != slot}
        elif op == "search":
            hits = r.search(str(arg), 100)
            found = [k for k, v in model.items() if v[1].startswith(str(arg))]
            expect = sorted(found, reverse=True)
            assert [h.message.id for h in hits] == expect
            if slot in contacts:
                mine = r.search(str(arg), 100, contact_id=contacts[slot])
                assert [h.message.id for h in mine] == [k for k in expect if model[k][0] == slot]
        fts_consistent(r)
    r.search(WORDS[0], 1)
    upto = r.conn.execute("SELECT indexed_upto FROM search_progress").fetchone()[0]
    assert upto >= max(model, default=0)  # a search leaves nothing behind the mark


def test_a_receive_writes_no_index_until_the_batch_is_full() -> None:
    r = fresh()
    c = r.contacts.add("c", b"K", 1).id

    def segments() -> int:
        return int(r.conn.execute("SELECT count(*) FROM messages_fts_data").fetchone()[0])

    empty = segments()
    for n in range(2):
        body = f"fig {n}"
        r.messages.insert(NewMessage(c, Direction.INCOMING, b"%d" % n, n, body, n, n, Status.READ))
    assert segments() == empty  # two waiting: the index is untouched
    r.messages.insert(NewMessage(c, Direction.INCOMING, b"x", 9, "fig 9", 9, 9, Status.READ))
    assert segments() > empty  # the third fills the batch: all three go in together
    assert len(r.search("fig", 10)) == 3
