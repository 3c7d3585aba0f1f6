"""Repositories: atomic units, duplicates, paging edges, unread counters, search, migrations."""

from __future__ import annotations

import pytest
import sqlcipher3 as sqlite3  # the SQLite the store runs on (FTS5 secure-delete)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.domain.contacts import ContactState
from app.domain.messages import Direction, Status
from app.store import connection, migrations
from app.store.errors import MailboxInUse, NotFound
from app.store.records import (
    HandshakeLink,
    MailboxPurpose,
    NewMessage,
    NewOutbox,
    OurMailbox,
    OutboxKind,
    TheirMailbox,
)
from app.store.repos import Repos
from app.store.search import fts_query


def incoming(contact: int, n: int, body: str = "") -> NewMessage:
    return NewMessage(
        contact, Direction.INCOMING, b"in%d" % n, n, body or f"message {n}", n, n, Status.DELIVERED
    )


def outgoing(contact: int, n: int) -> NewMessage:
    return NewMessage(
        contact, Direction.OUTGOING, b"out%d" % n, n, f"sent {n}", n, None, Status.QUEUED
    )


def box(contact: int, data: bytes, kind: OutboxKind = OutboxKind.MESSAGE) -> NewOutbox:
    return NewOutbox(contact, kind, b"mbx", "ws://relay", data, 0, 0)


def counts(r: Repos) -> tuple[int, int, int]:
    one = r.conn.execute
    return (
        one("SELECT count(*) FROM messages").fetchone()[0],
        one("SELECT count(*) FROM outbox").fetchone()[0],
        one("SELECT count(*) FROM sessions").fetchone()[0],
    )


def test_receive_unit_and_duplicate(repos: Repos) -> None:
    c = repos.contacts.add("alice", b"K" * 64, 1).id
    first = repos.messages.store_incoming(
        incoming(c, 1), b"S1", box(c, b"R1", OutboxKind.RECEIPT), 5
    )
    assert not first.duplicate
    assert first.message_row
    assert first.outbox_row
    assert repos.sessions.load(c) == b"S1"
    dup = repos.messages.store_incoming(incoming(c, 1), b"S2", box(c, b"R2", OutboxKind.RECEIPT), 6)
    assert dup.duplicate
    assert dup.message_row is None
    assert repos.sessions.load(c) == b"S1"  # nothing of the duplicate was written
    assert counts(repos) == (1, 1, 1)
    assert repos.messages.unread_counts() == {c: 1}


def test_insert_many_skips_duplicates_and_keeps_counters(repos: Repos) -> None:
    c = repos.contacts.add("alice", b"K" * 64, 1).id
    repos.messages.insert(incoming(c, 2))
    batch = [incoming(c, n, f"batch {n}") for n in range(5)] + [outgoing(c, 9)]
    assert repos.messages.insert_many(batch) == 5  # incoming 2 was already stored
    assert counts(repos) == (6, 0, 0)
    assert repos.messages.unread_counts() == {c: 5}
    assert [h.message.sender_seq for h in repos.search("batch", 10)] == [4, 3, 1, 0]


def test_failed_unit_leaves_nothing(repos: Repos) -> None:
    c = repos.contacts.add("alice", b"K", 1).id
    bad = NewOutbox(c + 99, OutboxKind.RECEIPT, b"m", "ws://r", b"x", 0, 0)  # FK violation
    with pytest.raises(connection.IntegrityError):
        repos.messages.store_incoming(incoming(c, 1), b"S", bad, 1)
    assert counts(repos) == (0, 0, 0)
    assert repos.messages.unread_counts() == {}


def test_send_acknowledge_and_outbox(repos: Repos) -> None:
    c = repos.contacts.add("bob", b"K", 1).id
    sent = repos.messages.store_outgoing(outgoing(c, 1), b"S", box(c, b"C1"), 1)
    assert sent.outbox_row is not None
    assert [i.ciphertext for i in repos.outbox.due(0)] == [b"C1"]
    repos.outbox.sent(sent.outbox_row, next_try=100)
    assert repos.messages.find(c, Direction.OUTGOING, b"out1").status is Status.SENT  # type: ignore[union-attr]
    assert repos.outbox.due(50) == []
    assert repos.outbox.next_due() == 100
    assert repos.messages.acknowledge(c, [b"out1", b"unknown"], Status.READ) == 1
    assert repos.outbox.for_contact(c) == []
    # A late "delivered" does not undo "read".
    repos.messages.acknowledge(c, [b"out1"], Status.DELIVERED)
    assert repos.messages.find(c, Direction.OUTGOING, b"out1").status is Status.READ  # type: ignore[union-attr]
    # Receipts leave the outbox once the relay took them; failures mark the message.
    rid = repos.outbox.add(box(c, b"R", OutboxKind.RECEIPT))
    repos.outbox.sent(rid, 0)
    again = repos.messages.store_outgoing(outgoing(c, 2), b"S", box(c, b"C2"), 1)
    assert again.outbox_row is not None
    repos.outbox.fail(again.outbox_row)
    assert repos.messages.find(c, Direction.OUTGOING, b"out2").status is Status.FAILED  # type: ignore[union-attr]
    assert repos.outbox.next_due() is None
    with pytest.raises(NotFound):
        repos.outbox.retry_later(12345, 1)


def test_paging_edges_and_unread(repos: Repos) -> None:
    a = repos.contacts.add("a", b"A", 1).id
    b = repos.contacts.add("b", b"B", 1).id
    assert repos.messages.page(a, 10) == []
    rows = []
    for n in range(25):
        rows.append(repos.messages.insert(incoming(a, n)).message_row)
        repos.messages.insert(incoming(b, n))
    newest = repos.messages.page(a, 10)
    assert [m.id for m in newest] == rows[::-1][:10]
    seen = [m.id for m in newest]
    cursor = newest[-1].id
    while page := repos.messages.page(a, 10, before=cursor):
        seen += [m.id for m in page]
        cursor = page[-1].id
    assert seen == rows[::-1]
    assert repos.messages.page(a, 10, before=rows[0]) == []
    assert [m.id for m in repos.messages.page(a, 10, before=rows[1])] == [rows[0]]
    assert repos.messages.page(a, 0) == []
    assert repos.messages.unread_counts() == {a: 25, b: 25}
    assert repos.messages.mark_read(a, rows[9], 0) == [b"in%d" % n for n in range(10)]
    assert repos.messages.mark_read(a, rows[9], 0) == []
    assert repos.messages.unread_counts() == {a: 15, b: 25}
    repos.contacts.delete(b)
    assert repos.messages.unread_counts() == {a: 15}


def test_contacts_new_keys_states_and_blocks(repos: Repos) -> None:
    c = repos.contacts.add("carol", b"old", 1, verified=True)
    assert repos.contacts.find_by_identity(b"old") == c
    changed = repos.contacts.replace_keys(c.id, b"new", 9)
    assert (changed.identity_keys, changed.verified) == (b"new", False)
    assert [(h.identity_keys, h.replaced_at) for h in repos.contacts.key_history(c.id)] == [
        (b"old", 9)
    ]
    assert repos.contacts.replace_keys(c.id, b"new", 10) == changed  # same keys: nothing
    assert len(repos.contacts.key_history(c.id)) == 1
    with pytest.raises(NotFound):
        repos.contacts.rename(999, "x")
    r = repos.contacts.add("r", b"req", 2, state=ContactState.REQUEST)
    assert repos.contacts.all(ContactState.REQUEST) == [r]
    assert repos.contacts.count(ContactState.REQUEST) == 1
    assert repos.contacts.count(ContactState.CONTACT) == 1
    repos.contacts.block(b"req", 3)
    repos.contacts.block(b"req", 4)  # twice is once
    assert repos.contacts.get(r.id).blocked
    assert repos.contacts.is_blocked(b"req")
    assert repos.contacts.unblock(b"req")
    assert not repos.contacts.unblock(b"req")
    assert not repos.contacts.get(r.id).blocked
    repos.contacts.set_state(c.id, ContactState.ENDED)
    live = repos.contacts.add("carol again", b"new", 5)
    assert repos.contacts.find_by_identity(b"new") == live  # the live row before the ended one


def test_a_mailbox_id_is_never_reassigned(repos: Repos) -> None:
    a = repos.contacts.add("a", b"A", 1).id
    b = repos.contacts.add("b", b"B", 1).id
    repos.mailboxes.add_theirs(TheirMailbox(b"t" * 32, "ws://r", a, 1))
    mine = OurMailbox(b"m" * 32, b"k", "ws://r", MailboxPurpose.CONTACT, a, 1)
    repos.mailboxes.add_ours(mine)
    for taken in (b"t" * 32, b"m" * 32):
        assert repos.mailboxes.in_use(taken)
        with pytest.raises(MailboxInUse):
            repos.mailboxes.add_theirs(TheirMailbox(taken, "ws://evil", b, 2))
        with pytest.raises(MailboxInUse):
            repos.mailboxes.add_ours(
                OurMailbox(taken, b"k2", "ws://r", MailboxPurpose.CONTACT, b, 2)
            )
    assert repos.mailboxes.list_theirs(a) == [TheirMailbox(b"t" * 32, "ws://r", a, 1)]
    assert repos.mailboxes.list_theirs(b) == []
    assert not repos.mailboxes.in_use(b"x" * 32)


def test_merging_a_request_moves_everything_and_counts_unread(repos: Repos) -> None:
    target = repos.contacts.add("bob", b"old", 1).id
    request = repos.contacts.add("bob", b"new", 2, state=ContactState.REQUEST).id
    repos.messages.insert(incoming(target, 1))
    for n in range(3):
        repos.messages.insert(incoming(request, 10 + n))
    repos.mailboxes.add_ours(
        OurMailbox(b"m" * 32, b"k", "ws://r", MailboxPurpose.CONTACT, request, 1)
    )
    repos.mailboxes.add_theirs(TheirMailbox(b"t" * 32, "ws://r", request, 1))
    repos.sessions.save(request, b"session", 1)
    repos.sessions.save(target, b"old session", 1)
    repos.handshakes.put(HandshakeLink(b"h", request, b"m" * 32, 1))
    repos.merge_contact(request, target)
    assert repos.handshakes.get(b"h") == HandshakeLink(b"h", target, b"m" * 32, 1)
    assert repos.messages.unread_counts() == {target: 4}
    assert repos.sessions.load(target) == b"session"
    assert [m.contact_id for m in repos.mailboxes.list_ours()] == [target]
    assert [m.id for m in repos.mailboxes.list_theirs(target)] == [b"t" * 32]
    with pytest.raises(NotFound):
        repos.contacts.get(request)


def test_mailboxes_handshakes_profile(repos: Repos) -> None:
    assert repos.profile.get() is None
    repos.profile.create(b"\x01identity", "me", 3)
    assert repos.profile.get().display_name == "me"  # type: ignore[union-attr]
    c = repos.contacts.add("d", b"D", 1).id
    inv = OurMailbox(b"i" * 32, b"priv", "ws://r", MailboxPurpose.INVITATION, None, 1)
    mine = OurMailbox(b"m" * 32, b"priv2", "ws://r", MailboxPurpose.CONTACT, c, 2)
    repos.mailboxes.add_ours(inv)
    repos.mailboxes.add_ours(mine)
    assert repos.mailboxes.list_ours(purpose=MailboxPurpose.INVITATION) == [inv]
    assert repos.mailboxes.list_ours(contact_id=c) == [mine]
    repos.mailboxes.add_theirs(TheirMailbox(b"t" * 32, "ws://r", c, 5))
    assert repos.mailboxes.list_theirs(c)[0].id == b"t" * 32
    link = HandshakeLink(b"h", c, b"m" * 32, 1)
    repos.handshakes.put(link)
    assert repos.handshakes.get(b"h") == link
    assert repos.handshakes.get(b"x") is None
    assert repos.handshakes.all() == [link]
    moved = HandshakeLink(b"h", c, None, 2)  # a second put moves the link, keeps its time
    repos.handshakes.put(moved)
    assert repos.handshakes.all() == [HandshakeLink(b"h", c, None, 1)]
    repos.contacts.delete(c)  # cascades
    assert repos.mailboxes.list_ours() == [inv]
    assert repos.handshakes.all() == []


SYNTAX = st.text(
    alphabet=st.sampled_from(list("\"*^():-+{}[],.'\\ NEARORANDNOT ab\x00é")), max_size=30
)


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=SYNTAX)
def test_search_survives_any_query(repos: Repos, query: str) -> None:
    if not repos.contacts.all():
        c = repos.contacts.add("s", b"S", 1).id
        for n, body in enumerate(['say "NEAR" (x) AND y*', "ab-cd: é", "plain words"]):
            repos.messages.insert(incoming(c, n, body))
    hits = repos.search(query, 10)
    ids = [h.message.id for h in hits]
    assert ids == sorted(ids, reverse=True)


def test_search_results(repos: Repos) -> None:
    a = repos.contacts.add("a", b"A", 1).id
    b = repos.contacts.add("b", b"B", 1).id
    for n in range(5):
        repos.messages.insert(incoming(a, n, f"meet at the café {n}"))
        repos.messages.insert(incoming(b, 100 + n, f"meeting notes {n}"))
    hits = repos.search("meet", 20)
    assert len(hits) == 10
    assert hits[0].message.contact_id == b
    assert all(h.message.contact_id == a for h in repos.search("meet", 20, contact_id=a))
    cafe = repos.search("cafe", 2, contact_id=a)
    assert [h.message.body for h in cafe] == ["meet at the café 4", "meet at the café 3"]
    assert "\x02café\x03" in cafe[0].snippet
    older = repos.search("cafe", 10, contact_id=a, before=cafe[-1].message.id)
    assert [h.message.sender_seq for h in older] == [2, 1, 0]
    assert repos.search('"NEAR(', 5) == []
    assert repos.search("", 5) == []
    assert fts_query('a"b c*') == '"a""b" "c*"*'


def schema(conn: object) -> list[tuple[str, str]]:
    rows = conn.execute(  # type: ignore[attr-defined]
        "SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name"
    ).fetchall()
    return [(n, " ".join(s.split())) for n, s in rows]


@pytest.mark.parametrize("start", range(migrations.LATEST))
def test_migrate_from_every_version(start: int) -> None:
    """A database left at each earlier version, with data, migrates to today's schema."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    migrations.configure(conn)
    migrations.migrate(conn, target=start)
    assert migrations.schema_version(conn) == start
    if start >= 2:
        conn.execute(
            "INSERT INTO contacts (display_name, identity_keys, created_at) VALUES ('x', x'01', 1)"
        )
        conn.execute(
            "INSERT INTO messages (contact_id, direction, msg_id, sender_seq, body, sent_at, "
            "status) "
            "VALUES (1, 0, x'01', 1, 'legacy history', 1, 'delivered')"
        )
    applied = migrations.migrate(conn)
    assert applied == list(range(start + 1, migrations.LATEST + 1))
    fresh = sqlite3.connect(":memory:", isolation_level=None)
    migrations.migrate(fresh)
    assert schema(conn) == schema(fresh)
    if start >= 2:
        r = Repos(conn)
        assert [h.message.body for h in r.search("legacy", 5)] == ["legacy history"]
        assert r.messages.unread_counts() == {1: 1}
    assert migrations.migrate(conn) == []


def test_migration_8_keeps_the_handshake_links() -> None:
    """pending_handshakes becomes handshake_links without its state column, rows kept;
    handshakes_seen is gone."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    migrations.configure(conn)
    migrations.migrate(conn, target=7)
    conn.execute(
        "INSERT INTO contacts (display_name, identity_keys, created_at) VALUES ('x', x'01', 1)"
    )
    conn.execute(
        "INSERT INTO pending_handshakes (id, contact_id, mailbox_id, state, created_at) "
        "VALUES (x'aa', 1, x'bb', x'', 5), (x'cc', NULL, NULL, x'', 6)"
    )
    conn.execute("INSERT INTO handshakes_seen (digest, seen_at) VALUES (x'dd', 1)")
    assert migrations.migrate(conn) == list(range(8, migrations.LATEST + 1))
    tables = {n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "handshake_links" in tables
    assert not tables & {"pending_handshakes", "handshakes_seen"}
    columns = [c[1] for c in conn.execute("PRAGMA table_info(handshake_links)")]
    assert columns == ["id", "contact_id", "mailbox_id", "created_at"]
    assert Repos(conn).handshakes.all() == [
        HandshakeLink(b"\xaa", 1, b"\xbb", 5),
        HandshakeLink(b"\xcc", None, None, 6),
    ]
    conn.execute("DELETE FROM contacts WHERE id = 1")  # the link still goes with its contact
    assert [link.id for link in Repos(conn).handshakes.all()] == [b"\xcc"]


def test_migration_9_keeps_an_old_profiles_card_working_as_its_address() -> None:
    """Its newest card mailbox becomes the long-lived address; a newer profile's none."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    migrations.configure(conn)
    migrations.migrate(conn, target=8)
    conn.execute(
        "INSERT INTO our_mailboxes (id, private_key, relay_url, purpose, contact_id, created_at) "
        "VALUES (x'0a0b', x'00', 'ws://h:1', 'invitation', NULL, 1), "
        "(x'0c0d', x'00', 'ws://h:1', 'invitation', NULL, 2), "
        "(x'0e0f', x'00', 'ws://h:1', 'contact', NULL, 3)"
    )
    assert migrations.migrate(conn) == list(range(9, migrations.LATEST + 1))
    assert Repos(conn).settings.get("address_mailbox") == "0c0d"
    empty = sqlite3.connect(":memory:", isolation_level=None)
    migrations.migrate(empty)
    assert Repos(empty).settings.get("address_mailbox") is None
