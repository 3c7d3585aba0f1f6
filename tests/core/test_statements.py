"""Group statements (docs/groups.md, "Statements"): what is signed, and that nothing else is
taken: any bytes, any signature, any field changed after signing."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as s

from app.core import statements as st
from app.crypto.groupsig import LABEL, sign_statement, statement_is_signed
from app.crypto.identity import Identity

ALICE = Identity.from_seeds(b"a" * 32, b"A" * 32)
BOB = Identity.from_seeds(b"b" * 32, b"B" * 32)
GID = b"g" * 16


def pack(fields: dict[str, Any]) -> bytes:
    packed: bytes = msgpack.packb(fields, use_bin_type=True)
    return packed


def signed(fields: dict[str, Any], who: Identity = ALICE) -> tuple[bytes, bytes]:
    statement = pack(fields)
    return statement, sign_statement(who, statement)


def post_fields(**extra: Any) -> dict[str, Any]:
    return {"k": "post", "g": GID, "a": ALICE.public.to_bytes(), "n": 1, "t": 5, "b": "hi"} | extra


def test_a_post_and_each_event_read_back_as_made() -> None:
    post = st.make_post(ALICE, GID, 7, 1234, "hello", b"r" * 16)
    assert st.read(post.statement, post.signature) == post
    assert post.post_id == st.post_id(post.statement)
    member = BOB.public.to_bytes()
    for op in st.Op:
        who = ALICE.public.to_bytes() if op is st.Op.LEAVE else member
        event = st.make_event(ALICE, GID, 3, 99, op, who, "Name", by="Al")
        back = st.read(event.statement, event.signature)
        assert back == event
        assert isinstance(back, st.Event)
        assert back.member == (who if op in st.ABOUT_A_MEMBER else b"")
        assert back.name == ("Name" if op in st.NAMED else "")


def test_the_signature_covers_the_label() -> None:
    post = st.make_post(ALICE, GID, 1, 0, "x")
    keys = ALICE.public.to_bytes()
    assert statement_is_signed(keys, post.statement, post.signature)
    assert not statement_is_signed(keys, post.statement, ALICE.sign(post.statement))
    assert statement_is_signed(keys, post.statement, ALICE.sign(LABEL + post.statement))
    assert not statement_is_signed(keys[:63], post.statement, post.signature)
    assert not statement_is_signed(keys, post.statement, post.signature[:63])


@settings(max_examples=300, deadline=None)
@given(s.binary(max_size=400), s.binary(max_size=80))
def test_any_bytes_are_a_statement_error_or_nothing(raw: bytes, signature: bytes) -> None:
    with pytest.raises(st.StatementError):
        st.read(raw, signature)


@settings(max_examples=200, deadline=None)
@given(s.data())
def test_any_byte_changed_after_signing_is_refused(data: s.DataObject) -> None:
    post = st.make_post(ALICE, GID, 2, 10, "the text that was signed")
    which = data.draw(s.sampled_from(["statement", "signature"]))
    blob = bytearray(post.statement if which == "statement" else post.signature)
    i = data.draw(s.integers(0, len(blob) - 1))
    blob[i] ^= data.draw(s.integers(1, 255))
    statement = bytes(blob) if which == "statement" else post.statement
    signature = bytes(blob) if which == "signature" else post.signature
    with pytest.raises(st.StatementError):
        st.read(statement, signature)


@pytest.mark.parametrize(
    ("fields", "why"),
    [
        (post_fields(a=BOB.public.to_bytes()), "signature"),  # names Bob, signed by Alice
        (post_fields(g=b"g" * 15), "'g'"),
        (post_fields(a=b"a" * 63), "'a'"),
        (post_fields(n=0), "'n'"),
        (post_fields(n=2**63), "'n'"),
        (post_fields(t=-1), "'t'"),
        (post_fields(t=253_402_300_800_000), "'t'"),
        (post_fields(b=" "), "text"),
        (post_fields(b="x" * 16_001), "text"),
        (post_fields(b=b"bytes"), "'b'"),
        (post_fields(re=b"r" * 15), "'re'"),
        (post_fields(k="note"), "not a statement"),
        ({"k": "ev", "g": GID, "a": ALICE.public.to_bytes(), "n": 1, "t": 0, "op": "own"}, "knows"),
        (
            {"k": "ev", "g": GID, "a": ALICE.public.to_bytes(), "n": 1, "t": 0, "op": "add"},
            "'m'",
        ),
        (
            {
                "k": "ev",
                "g": GID,
                "a": ALICE.public.to_bytes(),
                "n": 1,
                "t": 0,
                "op": "leave",
                "m": BOB.public.to_bytes(),
            },
            "itself",
        ),
        (
            {
                "k": "ev",
                "g": GID,
                "a": ALICE.public.to_bytes(),
                "n": 1,
                "t": 0,
                "op": "rename",
                "name": " bad ",
            },
            "'name'",
        ),
        (
            {
                "k": "ev",
                "g": GID,
                "a": ALICE.public.to_bytes(),
                "n": 1,
                "t": 0,
                "op": "create",
                "name": "G",
                "by": "",
            },
            "'by'",
        ),
    ],
)
def test_each_field_is_checked(fields: dict[str, Any], why: str) -> None:
    statement, signature = signed(fields)
    with pytest.raises(st.StatementError, match=why):
        st.read(statement, signature)


def test_a_post_without_a_reply_and_one_with_read_back() -> None:
    statement, signature = signed(post_fields())
    post = st.read(statement, signature)
    assert isinstance(post, st.Post)
    assert post.reply_to is None
    statement, signature = signed(post_fields(re=b"q" * 16))
    post = st.read(statement, signature)
    assert isinstance(post, st.Post)
    assert post.reply_to == b"q" * 16


def test_each_kind_signs_exactly_its_own_fields() -> None:
    plain = st.make_post(ALICE, GID, 1, 0, "no reply")
    assert set(msgpack.unpackb(plain.statement)) == {"k", "g", "a", "n", "t", "b"}
    assert st.read(plain.statement, plain.signature) == plain
    member = BOB.public.to_bytes()
    expected = {
        st.Op.CREATE: {"name", "by"},
        st.Op.ADD: {"m", "name"},
        st.Op.REMOVE: {"m"},
        st.Op.PROMOTE: {"m"},
        st.Op.RENAME: {"name"},
        st.Op.LEAVE: {"m"},
    }
    for op, own in expected.items():
        event = st.make_event(ALICE, GID, 1, 0, op, member, "Name", by="Al")
        assert set(msgpack.unpackb(event.statement)) == {"k", "g", "a", "n", "t", "op"} | own


def test_the_ranges_hold_at_their_ends() -> None:
    top = st.make_post(ALICE, GID, st.MAX_SEQ, st.MAX_TIME_MS, "x" * 16_000)
    assert st.read(top.statement, top.signature) == top
    assert st.MAX_SEQ == 2**63 - 1
    for extra in ({"n": st.MAX_SEQ + 1}, {"t": st.MAX_TIME_MS + 1}, {"b": "x" * 16_001}):
        statement, signature = signed(post_fields(**extra))
        with pytest.raises(st.StatementError):
            st.read(statement, signature)


def test_a_statement_of_more_than_16_fields_is_refused_before_it_is_read() -> None:
    fields = post_fields(**{f"x{i}": i for i in range(10)})
    assert len(fields) == 16
    assert st.read(*signed(fields))
    with pytest.raises(st.StatementError):
        st.read(*signed(fields | {"x10": 10}))


def test_statements_are_values() -> None:
    post = st.make_post(ALICE, GID, 1, 0, "x")
    event = st.make_event(ALICE, GID, 1, 0, st.Op.RENAME, name="N")
    for value in (post, event):
        with pytest.raises(AttributeError):
            value.seq = 5  # type: ignore[misc]
