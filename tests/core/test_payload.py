"""The plaintext payload inside ratchet messages: round trips, and garbage is a PayloadError."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.core import payload as pl

ids = st.binary(min_size=pl.MSG_ID_SIZE, max_size=pl.MSG_ID_SIZE)
payloads = st.one_of(
    st.builds(pl.Intro, st.text()),
    st.builds(pl.Welcome, st.binary(min_size=32, max_size=32), st.text(), st.text(max_size=64)),
    st.builds(
        pl.Chat,
        st.integers(min_value=0, max_value=2**63 - 1),
        st.integers(min_value=0, max_value=2**63 - 1),
        st.text(max_size=200),
    ),
    st.builds(pl.Receipt, st.booleans(), st.lists(ids, max_size=20).map(tuple)),
)


@given(payloads)
def test_round_trip(payload: pl.Payload) -> None:
    assert pl.decode(pl.encode(payload)) == payload


def rejected_or_valid(raw: bytes) -> None:
    """PayloadError and nothing else, or a payload that survives its own round trip."""
    try:
        decoded = pl.decode(raw)
    except pl.PayloadError:
        return
    assert pl.decode(pl.encode(decoded)) == decoded


@given(st.binary(max_size=200))
def test_random_bytes_are_rejected_or_valid(raw: bytes) -> None:
    rejected_or_valid(raw)


@given(
    st.recursive(
        st.none()
        | st.booleans()
        | st.integers(-(2**63), 2**64 - 1)
        | st.text(max_size=10)
        | st.binary(max_size=40),
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=5)
        ),
        max_leaves=20,
    )
)
def test_any_msgpack_value_is_rejected_or_valid(value: object) -> None:
    rejected_or_valid(msgpack.packb(value, use_bin_type=True))


def pack(data: object) -> bytes:
    packed: bytes = msgpack.packb(data, use_bin_type=True)
    return packed


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xc1",
        b"\x92\x01\x02",
        pack([1, 2]),
        pack({"k": "nope"}),
        pack({"k": "msg", "seq": "1", "ts": 0, "body": "x"}),
        pack({"k": "msg", "seq": True, "ts": 0, "body": "x"}),
        pack({"k": "msg", "seq": 1, "ts": 0, "body": "x" * (pl.MAX_BODY_CHARS + 1)}),
        pack({"k": "msg", "seq": 1, "ts": 0}),
        pack({"k": "rcpt", "read": 1, "ids": []}),
        pack({"k": "rcpt", "read": False, "ids": [b"short"]}),
        pack({"k": "rcpt", "read": False, "ids": [b"x" * 16] * (pl.MAX_RECEIPT_IDS + 1)}),
        pack({"k": "rcpt", "read": False, "ids": "x"}),
        pack({"k": "welcome", "mb": b"x" * 31, "relay": "ws://a:1", "name": "n"}),
        pack({"k": "welcome", "mb": "x" * 32, "relay": "ws://a:1", "name": "n"}),
        pack({"k": "intro", "relay": 5}),
        pack({1: "intro"}),
        pack({"k": "intro", "relay": "ws://a:1"}) + b"trailing",
    ],
)
def test_garbage_is_a_payload_error(data: bytes) -> None:
    with pytest.raises(pl.PayloadError):
        pl.decode(data)


def test_welcome_name_is_cut_to_64() -> None:
    raw = pack({"k": "welcome", "mb": b"m" * 32, "relay": "ws://a:1", "name": "n" * 100})
    decoded = pl.decode(raw)
    assert isinstance(decoded, pl.Welcome)
    assert decoded.name == "n" * 64
