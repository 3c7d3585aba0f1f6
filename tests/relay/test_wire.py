"""The envelope format: round trips, exact bytes, and one typed error for every bad input."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import msgpack
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given, settings
from hypothesis import strategies as st

from relay import wire
from relay.state import RelayLimits
from relay.wire import ErrorCode, WireError
from tests.relay.helpers import ROOT

ids = st.integers(0, wire.MAX_REQUEST_ID)
box = st.binary(min_size=32, max_size=32)
codes = st.text(min_size=1, max_size=64)
positive = st.floats(min_value=1e-3, max_value=1e9, allow_nan=False, allow_infinity=False)
limits = st.builds(
    wire.Limits,
    max_frame_size=st.integers(0, 2**32),
    send_rate=positive,
    send_burst=st.integers(0, 10**6),
    max_subscriptions=st.integers(0, 10**6),
    max_watches=st.integers(0, 10**6),
    idle_timeout=positive,
)
frames = st.one_of(
    st.builds(
        wire.Hello,
        st.lists(st.integers(0, 255), min_size=1, max_size=4).map(tuple),
        box,
        limits,
    ),
    st.builds(
        wire.Subscribe,
        ids,
        box,
        box,
        st.binary(min_size=64, max_size=64),
    ),
    st.builds(wire.Unsubscribe, ids, box),
    st.builds(wire.Send, ids, box, st.binary(max_size=300)),
    st.builds(wire.Sent, ids, st.integers(0, 2**40)),
    st.builds(wire.Deliver, box, st.binary(max_size=300)),
    st.builds(wire.Watch, ids, st.lists(box, max_size=5).map(tuple)),
    st.builds(wire.Watching, ids, st.lists(box, max_size=5).map(tuple)),
    st.builds(wire.Unwatch, ids, st.lists(box, max_size=5).map(tuple)),
    st.builds(wire.Presence, box, st.booleans()),
    st.builds(wire.Ok, ids),
    st.builds(wire.Error, st.none() | ids, codes),
    st.builds(wire.Ping, ids),
    st.builds(wire.Pong, ids),
    st.builds(wire.Goodbye, codes),
)


def decode_or_code(data: bytes) -> wire.Frame | str:
    """The decoded frame, or the code of the WireError; any other exception fails the test."""
    try:
        return wire.decode(data)
    except WireError as exc:
        return exc.code


@given(frames)
def test_every_frame_round_trips(frame: wire.Frame) -> None:
    data = wire.encode(frame)
    assert wire.decode(data, max_size=len(data)) == frame
    assert wire.encode(wire.decode(data)) == data


def test_the_strategy_covers_every_frame_type() -> None:
    assert {cls.TYPE for cls in wire.FRAME_TYPES} == {
        "hello", "subscribe", "unsubscribe", "send", "sent", "deliver", "watch", "watching",
        "unwatch", "presence", "ok", "error", "ping", "pong", "goodbye",
    }  # fmt: skip
    assert set(wire.CLIENT_FRAMES) | set(wire.RELAY_FRAMES) == set(wire.FRAME_TYPES)


@settings(max_examples=500)
@given(st.binary(max_size=200))
def test_decoder_raises_only_wire_error_on_arbitrary_bytes(data: bytes) -> None:
    outcome = decode_or_code(data)
    assert isinstance(outcome, wire.FRAME_TYPES) or outcome in ErrorCode.DECODE


def fast_or_code(data: bytes) -> wire.Frame | str:
    """What the relay's hot-path reader makes of `data`, a send's fields built into the frame
    they would make, or the code of the WireError."""
    try:
        read = wire.decode_fast(data)
    except WireError as exc:
        return exc.code
    return wire.Send(*read) if isinstance(read, tuple) else read


def send_maps() -> st.SearchStrategy[dict[str, Any]]:
    """Send envelopes with every field right, wrong or missing (a bool for an int, a str for
    bytes, a number out of range, a mailbox of the wrong size, extra keys)."""
    anything = st.one_of(
        st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.binary(max_size=40),
        st.text(max_size=4), st.lists(st.integers(0, 9), max_size=2),
    )  # fmt: skip
    field = {
        "rid": st.one_of(st.integers(0, wire.MAX_REQUEST_ID), anything),
        "mailbox": st.one_of(st.binary(min_size=32, max_size=32), anything),
        "payload": st.one_of(st.binary(max_size=64), anything),
        "v": st.one_of(st.just(1), st.just(True), anything),
        "t": st.one_of(st.just("send"), st.just("sent"), anything),
    }
    return st.dictionaries(st.sampled_from([*sorted(field), "x"]), st.none(), max_size=6).flatmap(
        lambda keys: st.fixed_dictionaries({k: field.get(k, anything) for k in keys})
    )


@settings(max_examples=1000)
@given(st.one_of(st.binary(max_size=120), send_maps().map(msgpack.packb), frames.map(wire.encode)))
def test_the_hot_path_reads_every_frame_as_the_decoder_does(data: bytes) -> None:
    assert fast_or_code(data) == decode_or_code(data)


@settings(max_examples=500)
@given(frames, st.data())
def test_decoder_survives_mutated_valid_frames(frame: wire.Frame, data: st.DataObject) -> None:
    raw = bytearray(wire.encode(frame))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(raw) - 1))
        raw[at] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(raw)))
    for sample in (bytes(raw), bytes(raw[:cut])):
        outcome = decode_or_code(sample)
        assert isinstance(outcome, wire.FRAME_TYPES) or outcome in ErrorCode.DECODE


msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=10)
    | st.binary(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


FIELD_NAMES = [
    *("rid", "mailbox", "key", "sig", "payload", "mailboxes", "online", "delivered"),
    *("code", "reason", "challenge", "versions", "limits", "x"),
]


@settings(max_examples=500)
@given(
    st.sampled_from([cls.TYPE for cls in wire.FRAME_TYPES]),
    st.dictionaries(
        st.sampled_from(FIELD_NAMES),
        msgpack_values,
    ),
)
def test_decoder_rejects_mistyped_fields_with_wire_error(kind: str, body: dict[str, Any]) -> None:
    data = msgpack.packb({"v": 1, "t": kind, **body}, use_bin_type=True)
    outcome = decode_or_code(data)
    if isinstance(outcome, str):
        assert outcome == ErrorCode.MALFORMED
    else:
        assert kind == outcome.TYPE


def error_code(data: bytes, max_size: int = wire.DEFAULT_MAX_FRAME_SIZE) -> str:
    with pytest.raises(WireError) as caught:
        wire.decode(data, max_size=max_size)
    assert isinstance(caught.value, wire.RemoteProtocolError)
    return caught.value.code


def test_each_decode_error_has_its_code() -> None:
    good = wire.encode(wire.Ping(5))
    assert error_code(b"") == ErrorCode.TRUNCATED
    assert error_code(good[:-1]) == ErrorCode.TRUNCATED
    assert error_code(good + b"\x00") == ErrorCode.MALFORMED
    assert error_code(b"\xc1") == ErrorCode.MALFORMED
    assert error_code(msgpack.packb([1, "ping", 5])) == ErrorCode.MALFORMED
    assert error_code(good, max_size=len(good) - 1) == ErrorCode.TOO_LARGE
    assert error_code(msgpack.packb({"v": 2, "t": "ping", "rid": 1})) == "unsupported_version"
    assert error_code(msgpack.packb({"v": True, "t": "ping", "rid": 1})) == ErrorCode.MALFORMED
    assert error_code(msgpack.packb({"v": 1, "t": "pang", "rid": 1})) == ErrorCode.UNKNOWN_TYPE
    assert error_code(msgpack.packb({"v": 1, "t": b"ping", "rid": 1})) == ErrorCode.MALFORMED
    assert error_code(msgpack.packb({"v": 1, "t": "ping"})) == ErrorCode.MALFORMED
    assert error_code(msgpack.packb({"v": 1, "t": "ping", "rid": -1})) == ErrorCode.MALFORMED
    assert error_code(msgpack.packb({"v": 1, "t": "ping", "rid": 2**63})) == ErrorCode.MALFORMED
    assert error_code(msgpack.packb({1: 1})) == ErrorCode.MALFORMED
    assert error_code(b"\x91" * 5000 + b"\x00", max_size=10**6) == ErrorCode.MALFORMED
    text_mailbox = {"v": 1, "t": "unsubscribe", "rid": 1, "mailbox": "x" * 32}
    assert error_code(msgpack.packb(text_mailbox)) == ErrorCode.MALFORMED
    short = {"v": 1, "t": "unsubscribe", "rid": 1, "mailbox": b"x" * 31}
    assert error_code(msgpack.packb(short, use_bin_type=True)) == ErrorCode.MALFORMED
    presence = {"v": 1, "t": "presence", "mailbox": b"x" * 32, "online": 1}
    assert error_code(msgpack.packb(presence, use_bin_type=True)) == ErrorCode.MALFORMED


def test_unknown_keys_are_ignored() -> None:
    data = msgpack.packb({"v": 1, "t": "ping", "rid": 3, "future": [1, 2]})
    assert wire.decode(data) == wire.Ping(3)


def test_building_an_invalid_frame_is_our_bug_not_the_peers() -> None:
    with pytest.raises(wire.LocalProtocolError):
        wire.Send(1, b"short", b"")
    with pytest.raises(wire.LocalProtocolError):
        wire.Ok(-1)
    with pytest.raises(wire.LocalProtocolError):
        wire.Presence(b"x" * 32, 1)  # type: ignore[arg-type]
    with pytest.raises(wire.LocalProtocolError):
        wire.encode("ping")  # type: ignore[arg-type]
    assert not issubclass(wire.LocalProtocolError, wire.RemoteProtocolError)


def test_request_id_of_reads_what_it_can() -> None:
    assert wire.request_id_of(msgpack.packb({"v": 9, "rid": 12})) == 12
    assert wire.request_id_of(msgpack.packb({"rid": "12"})) is None
    assert wire.request_id_of(b"\xc1") is None


def test_mailbox_proof_bytes_are_fixed() -> None:
    key = bytes(range(32))
    assert wire.mailbox_id(key).hex() == (
        __import__("hashlib").sha256(b"anonchat/mailbox/v1\x00" + key).hexdigest()
    )
    signed = wire.subscribe_signed_bytes(b"\x01" * 32, b"\x02" * 32)
    assert signed == b"anonchat/subscribe/v1\x00" + b"\x01" * 32 + b"\x02" * 32
    assert len(signed) == 86
    with pytest.raises(ValueError, match="32 bytes"):
        wire.mailbox_id(b"\x00" * 31)
    with pytest.raises(ValueError, match="32 bytes"):
        wire.subscribe_signed_bytes(b"\x00" * 31, b"\x00" * 32)


def doc_examples() -> dict[str, bytes]:
    text = (ROOT / "docs" / "protocol.md").read_text()
    found = re.findall(r"<!-- example: (\w+) -->\n```hex\n(.*?)```", text, re.S)
    return {name: bytes.fromhex(block) for name, block in found}


def test_protocol_doc_worked_example_matches_the_encoder() -> None:
    examples = doc_examples()
    seed = examples["seed"]
    private = Ed25519PrivateKey.from_private_bytes(seed)
    public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    mailbox = wire.mailbox_id(public)
    challenge = bytes(range(32))
    signed = wire.subscribe_signed_bytes(challenge, mailbox)
    sig = private.sign(signed)
    payload = bytes.fromhex("deadbeef")
    expected: dict[str, wire.Frame] = {
        "hello": wire.Hello((1,), challenge, RelayLimits().announced()),
        "subscribe": wire.Subscribe(1, mailbox, public, sig),
        "ok": wire.Ok(1),
        "send": wire.Send(2, mailbox, payload),
        "deliver": wire.Deliver(mailbox, payload),
        "sent": wire.Sent(2, 1),
        "watch": wire.Watch(3, (mailbox,)),
        "watching": wire.Watching(3, (mailbox,)),
        "presence": wire.Presence(mailbox, False),
        "error": wire.Error(4, ErrorCode.BAD_SIGNATURE),
        "goodbye": wire.Goodbye(ErrorCode.GOING_AWAY),
    }
    assert examples["public_key"] == public
    assert examples["mailbox_id"] == mailbox
    assert examples["signed_bytes"] == signed
    assert examples["signature"] == sig
    for name, frame in expected.items():
        assert examples[name] == wire.encode(frame), name
        assert wire.decode(examples[name]) == frame, name


def test_protocol_doc_lists_every_frame_type_and_error_code() -> None:
    text = (ROOT / "docs" / "protocol.md").read_text()
    for cls in wire.FRAME_TYPES:
        assert f"`{cls.TYPE}`" in text, cls.TYPE
    for name, value in vars(ErrorCode).items():
        if name.isupper() and isinstance(value, str):
            assert f"`{value}`" in text, value


def largest_subscribe() -> wire.Subscribe:
    return wire.Subscribe(wire.MAX_REQUEST_ID, bytes(32), bytes(32), bytes(64))


@given(limits)
def test_the_least_frame_limit_fits_the_hello_announcing_it_and_no_less_does(
    announced: wire.Limits,
) -> None:
    least, kind = wire.min_frame_size(announced)
    assert kind in ("hello", "subscribe")

    def largest_at(size: int) -> int:
        hello = wire.Hello(
            wire.SUPPORTED_VERSIONS, bytes(32), replace(announced, max_frame_size=size)
        )
        return max(len(wire.encode(hello)), len(wire.encode(largest_subscribe())))

    assert largest_at(least) <= least
    assert largest_at(least - 1) > least - 1


def test_the_least_frame_limit_covers_every_fixed_frame_and_protocol_md_names_it() -> None:
    least, kind = wire.min_frame_size(RelayLimits().announced())
    rid, code = wire.MAX_REQUEST_ID, "x" * 64
    for frame in (
        largest_subscribe(),
        wire.Sent(rid, rid),
        wire.Watching(rid, (bytes(32),)),
        wire.Error(rid, code),
        wire.Goodbye(code),
    ):
        assert len(wire.encode(frame)) <= least, frame.TYPE
    text = (ROOT / "docs" / "protocol.md").read_text()
    named = re.search(
        r"that frame is the `(\w+)` and the least accepted value\s+is (\d+) bytes", text
    )
    assert named is not None
    assert (named.group(1), int(named.group(2))) == (kind, least)


@given(
    st.binary(min_size=32, max_size=32),
    # Across msgpack's bin8, bin16 and bin32 lengths.
    st.binary(max_size=300) | st.integers(65530, 65540).map(bytes),
    st.integers(0, wire.MAX_REQUEST_ID),
    st.integers(0, 2**31),
)
def test_the_hot_path_encoders_make_the_same_bytes(
    mailbox: bytes, payload: bytes, rid: int, delivered: int
) -> None:
    assert wire.encode_deliver(mailbox, payload) == wire.encode(wire.Deliver(mailbox, payload))
    assert wire.encode_sent(rid, delivered) == wire.encode(wire.Sent(rid, delivered))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("mailbox", bytes(31)),
        ("mailbox", bytes(33)),
        ("mailbox", "0" * 32),
        ("rid", -1),
        ("rid", wire.MAX_REQUEST_ID + 1),
        ("rid", True),
        ("rid", 1.0),
        ("payload", "text"),
        ("payload", None),
    ],
)
def test_the_hot_path_refuses_a_send_with_one_field_wrong(field: str, value: Any) -> None:
    envelope = {"v": 1, "t": "send", "rid": 5, "mailbox": bytes(32), "payload": b"x"}
    assert isinstance(wire.decode_fast(msgpack.packb(envelope)), tuple)
    envelope[field] = value
    with pytest.raises(WireError) as caught:
        wire.decode_fast(msgpack.packb(envelope))
    assert caught.value.code == ErrorCode.MALFORMED
