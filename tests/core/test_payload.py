"""The plaintext payload inside ratchet messages: round trips, and garbage is a PayloadError."""

from __future__ import annotations

import dataclasses
import hashlib

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.core import payload as pl
from app.crypto.names import valid_name
from app.domain.messages import MAX_TIMER_S

ids = st.binary(min_size=pl.MSG_ID_SIZE, max_size=pl.MSG_ID_SIZE)
relays = st.from_regex(r"wss?://[a-z0-9.]{1,60}:[0-9]{1,5}", fullmatch=True)
names = st.text(max_size=30).map(str.strip).filter(valid_name)
fallbacks = st.lists(relays, max_size=2).map(tuple)
mailboxes = st.binary(min_size=32, max_size=32)
seqs = st.integers(min_value=1, max_value=pl.MAX_SEQ)
times = st.integers(min_value=0, max_value=pl.MAX_TIME_MS)
reactions = st.sampled_from(["", "👍", "❤️", "😂", "👨‍👩‍👧", "🇺🇦", "👍🏽", "🏴󠁧󠁢󠁳󠁣󠁴󠁿"])
KNOWN_KINDS = {"intro", "welcome", "move", "msg", "rcpt", "edit", "del", "react", "timer"}
payloads = st.one_of(
    st.builds(pl.Intro, relays),
    st.builds(pl.Intro, relays, fallbacks).filter(
        lambda p: len(set(p.fallbacks) | {p.relay_url}) == len(p.fallbacks) + 1
    ),
    st.builds(pl.Welcome, mailboxes, relays, names | st.just("")),
    st.builds(pl.Welcome, mailboxes, relays, names | st.just(""), fallbacks).filter(
        lambda p: len(set(p.fallbacks) | {p.relay_url}) == len(p.fallbacks) + 1
    ),
    st.builds(pl.Move, mailboxes, relays, fallbacks).filter(
        lambda p: len(set(p.fallbacks) | {p.relay_url}) == len(p.fallbacks) + 1
    ),
    st.builds(
        pl.Chat,
        seqs,
        times,
        st.text(max_size=200),
        st.none() | ids,
        st.just(0) | st.integers(min_value=1, max_value=MAX_TIMER_S),
    ),
    st.builds(pl.Receipt, st.booleans(), st.lists(ids, max_size=20).map(tuple)),
    st.builds(pl.Edit, ids, times, st.text(min_size=1, max_size=200).filter(str.strip)),
    st.builds(pl.Delete, ids, times),
    st.builds(pl.React, ids, times, reactions),
    st.builds(pl.Timer, seqs, times, st.integers(min_value=0, max_value=MAX_TIMER_S)),
    st.builds(
        pl.Unknown,
        st.text(min_size=1, max_size=pl.MAX_KIND_CHARS).filter(lambda k: k not in KNOWN_KINDS),
    ),
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
        pack({"k": ""}),
        pack({"k": "x" * 33}),
        pack({"k": "edit", "ref": b"x" * 16, "ts": 0, "body": " "}),
        pack({"k": "edit", "ref": b"x" * 15, "ts": 0, "body": "x"}),
        pack({"k": "edit", "ref": "x" * 16, "ts": 0, "body": "x"}),
        pack({"k": "del", "ref": b"x" * 16}),
        pack({"k": "del", "ref": b"x" * 16, "ts": -1}),
        pack({"k": "react", "ref": b"x" * 16, "ts": 0, "emoji": "a b"}),
        pack({"k": "react", "ref": b"x" * 16, "ts": 0, "emoji": "\u202e"}),
        pack({"k": "react", "ref": b"x" * 16, "ts": 0, "emoji": "\x1b[31m"}),
        pack({"k": "react", "ref": b"x" * 16, "ts": 0, "emoji": "👍" * 17}),
        pack({"k": "react", "ref": b"x" * 16, "ts": 0}),
        pack({"k": "timer", "seq": 1, "ts": 0, "ttl": -1}),
        pack({"k": "timer", "seq": 1, "ts": 0, "ttl": MAX_TIMER_S + 1}),
        pack({"k": "timer", "seq": 0, "ts": 0, "ttl": 5}),
        pack({"k": "msg", "seq": 1, "ts": 0, "body": "x", "re": b"x" * 15}),
        pack({"k": "msg", "seq": 1, "ts": 0, "body": "x", "ttl": 0}),
        pack({"k": "msg", "seq": 1, "ts": 0, "body": "x", "ttl": MAX_TIMER_S + 1}),
        pack({"k": "msg", "seq": "1", "ts": 0, "body": "x"}),
        pack({"k": "msg", "seq": True, "ts": 0, "body": "x"}),
        pack({"k": "msg", "seq": 1, "ts": 0, "body": "x" * (pl.MAX_MESSAGE_CHARS + 1)}),
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


def chat(**fields: object) -> bytes:
    return pack({"k": "msg", "seq": 1, "ts": 0, "body": "x", **fields})


# The documented ranges (docs/messages.md), as literals: the code must match the document.
@pytest.mark.parametrize(
    ("field", "low", "high"),
    [("seq", 1, 2**63 - 1), ("ts", 0, 253_402_300_799_999)],
)
def test_numbers_are_range_checked_at_both_ends(field: str, low: int, high: int) -> None:
    for good in (low, high):
        decoded = pl.decode(chat(**{field: good}))
        assert getattr(decoded, "seq" if field == "seq" else "sent_at") == good
    for bad in (low - 1, high + 1, 2**64 - 1, -(2**63)):
        with pytest.raises(pl.PayloadError, match="out of range"):
            pl.decode(chat(**{field: bad}))


def test_receipt_ids_are_exactly_sixteen_bytes_of_binary() -> None:
    for bad in ([b"x" * 15], [b"x" * 17], ["x" * 16], [b"x" * 16, "y" * 16]):
        with pytest.raises(pl.PayloadError, match="receipt ids"):
            pl.decode(pack({"k": "rcpt", "read": False, "ids": bad}))
    full = [bytes([i % 256]) * 16 for i in range(512)]
    decoded = pl.decode(pack({"k": "rcpt", "read": True, "ids": full}))
    assert isinstance(decoded, pl.Receipt)
    assert decoded.ids == tuple(full)


def test_body_length_is_checked_at_the_limit() -> None:
    assert pl.decode(chat(body="é" * 16_000)) == pl.Chat(1, 0, "é" * 16_000)
    assert pl.decode(chat(body="😀" * 16_000)) == pl.Chat(1, 0, "😀" * 16_000)  # 64,000 bytes
    with pytest.raises(pl.PayloadError, match="too long"):
        pl.decode(chat(body="x" * 16_001))


@pytest.mark.parametrize(
    "name", ["Bob\u202e", "\u2067Bob", "Bob\x1b[31m", "Bo\u200bb", "Bob\u2028", "x" * 65]
)
def test_welcome_names_that_could_pose_as_another_are_refused(name: str) -> None:
    raw = pack({"k": "welcome", "mb": b"m" * 32, "relay": "ws://a:1", "name": name})
    with pytest.raises(pl.PayloadError, match="name"):
        pl.decode(raw)


@pytest.mark.parametrize(
    "name", ["n" * 64, "é" * 32, "\U0001f468\u200d\U0001f469\u200d\U0001f467", ""]
)
def test_every_valid_welcome_name_up_to_64_bytes_is_kept_whole(name: str) -> None:
    raw = pack({"k": "welcome", "mb": b"m" * 32, "relay": "ws://a:1", "name": name})
    decoded = pl.decode(raw)
    assert isinstance(decoded, pl.Welcome)
    assert decoded.name == name


@pytest.mark.parametrize("relay", ["http://a:1", "ws://", "ws:// a:1", "ws://a:1/" + "p" * 200, ""])
def test_relays_must_be_relay_urls(relay: str) -> None:
    for kind in ("intro", "welcome"):
        with pytest.raises(pl.PayloadError, match="relay"):
            pl.decode(pack({"k": kind, "mb": b"m" * 32, "relay": relay, "name": ""}))


def test_bombs_are_refused_before_they_are_built() -> None:
    for data in (
        pack({"k": "rcpt", "read": False, "ids": [b"x" * 16] * (pl.MAX_RECEIPT_IDS + 1)}),
        pack({"k": "msg", **{f"f{i}": i for i in range(20)}}),
        # No binary field is longer than a group statement, nor a thumbnail than 16 KB.
        pack({"k": "msg", "seq": 1, "ts": 0, "body": "x", "extra": b"y" * (64 * 1024 + 1)}),
        pack(
            {
                "k": "file",
                "seq": 1,
                "ts": 0,
                "body": "",
                "id": b"i" * 16,
                "name": "a.png",
                "size": 1,
                "type": "image/png",
                "h": b"h" * 32,
                "key": b"k" * 32,
                "th": b"t" * (16 * 1024 + 1),
            }
        ),
        b"\x91" * 5000,
    ):
        with pytest.raises(pl.PayloadError):
            pl.decode(data)


def test_message_ids_are_the_first_16_bytes_of_the_frames_sha256() -> None:
    frame = b"any ratchet frame"
    assert pl.message_id(frame) == hashlib.sha256(frame).digest()[:16]


def test_an_unknown_kind_is_kept_apart_whatever_fields_it_carries() -> None:
    """A kind from a newer version is `Unknown` (shown as a neutral line), its fields never
    read; a map without a kind is no payload."""
    data = {"read": True, "ids": [], "relay": "ws://a:1", "seq": 1, "ts": 0}
    data |= {"body": "x", "mb": b"m" * 32, "name": ""}
    assert pl.decode(pack({**data, "k": "poll"})) == pl.Unknown("poll")
    assert pl.decode(pack({**data, "k": "x" * 32})) == pl.Unknown("x" * 32)
    for kind in ("", None, 1, b"msg", "x" * 33):
        with pytest.raises(pl.PayloadError, match="no payload kind"):
            pl.decode(pack({**data, "k": kind}))


def test_updates_and_replies_name_a_sixteen_byte_message_id() -> None:
    ref = b"r" * 16
    assert pl.decode(chat(re=ref, ttl=300)) == pl.Chat(1, 0, "x", ref, 300)
    assert pl.decode(pack({"k": "edit", "ref": ref, "ts": 5, "body": "new"})) == pl.Edit(
        ref, 5, "new"
    )
    assert pl.decode(pack({"k": "del", "ref": ref, "ts": 5})) == pl.Delete(ref, 5)
    assert pl.decode(pack({"k": "react", "ref": ref, "ts": 5, "emoji": ""})) == pl.React(ref, 5, "")
    assert pl.decode(pack({"k": "timer", "seq": 2, "ts": 5, "ttl": 0})) == pl.Timer(2, 5, 0)
    for bad in (b"r" * 15, b"r" * 17, "r" * 16):
        for kind in ("edit", "del", "react"):
            with pytest.raises(pl.PayloadError, match="ref"):
                pl.decode(pack({"k": kind, "ref": bad, "ts": 5, "body": "b", "emoji": ""}))


@pytest.mark.parametrize("emoji", ["👍", "❤️", "👨‍👩‍👧", "🇺🇦", "👍🏽", "🏴󠁧󠁢󠁳󠁣󠁴󠁿", "", "x" * 16])
def test_reactions_keep_joined_and_modified_emoji_whole(emoji: str) -> None:
    assert pl.valid_reaction(emoji)
    decoded = pl.decode(pack({"k": "react", "ref": b"r" * 16, "ts": 0, "emoji": emoji}))
    assert decoded == pl.React(b"r" * 16, 0, emoji)


@pytest.mark.parametrize("emoji", ["x" * 17, " ", "👍 ", "\u200b", "\u2067👍", "\n", "\x00"])
def test_reactions_that_hide_or_spoof_text_are_refused(emoji: str) -> None:
    assert not pl.valid_reaction(emoji)


def test_map_keys_are_text_only() -> None:
    with pytest.raises(pl.PayloadError, match="not a payload"):
        pl.decode(pack({"k": "intro", "relay": "ws://a:1", 1: 2}))
    assert pl.decode(pack({"k": "intro", "relay": "ws://a:1", "later": 2})) == pl.Intro("ws://a:1")


def test_up_to_16_fields_are_read_and_bins_up_to_a_group_statement() -> None:
    extra = {f"x{i}": i for i in range(13)}  # k, relay + 13 = 15; with one more, 16
    assert pl.decode(pack({"k": "intro", "relay": "ws://a:1", **extra, "y": 0})) == pl.Intro(
        "ws://a:1"
    )
    with pytest.raises(pl.PayloadError):
        pl.decode(pack({"k": "intro", "relay": "ws://a:1", **extra, "y": 0, "z": 0}))
    assert pl.decode(pack({"k": "intro", "relay": "ws://a:1", "x": b"b" * 64 * 1024}))
    with pytest.raises(pl.PayloadError):
        pl.decode(pack({"k": "intro", "relay": "ws://a:1", "x": b"b" * (64 * 1024 + 1)}))


@pytest.mark.parametrize("kind", [pl.Intro, pl.Welcome, pl.Chat, pl.Receipt])
def test_payloads_are_frozen_values(kind: type) -> None:
    assert dataclasses.is_dataclass(kind)
    field = dataclasses.fields(kind)[0].name
    value = {
        pl.Intro: pl.Intro("ws://a:1"),
        pl.Welcome: pl.Welcome(b"m" * 32, "ws://a:1", ""),
        pl.Chat: pl.Chat(1, 0, ""),
        pl.Receipt: pl.Receipt(False, ()),
    }[kind]
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(value, field, None)


def test_513_receipt_ids_are_one_too_many() -> None:
    ids = [bytes([i % 256, i // 256]) * 8 for i in range(513)]
    with pytest.raises(pl.PayloadError):
        pl.decode(pack({"k": "rcpt", "read": False, "ids": ids}))
    assert len(pl.decode(pack({"k": "rcpt", "read": False, "ids": ids[:512]})).ids) == 512  # type: ignore[union-attr]


def test_oversize_strings_and_extension_types_are_refused_before_they_are_built() -> None:
    """The decoder caps what msgpack may allocate: a string past 64,000 bytes or any
    extension type fails as "not a payload", even in a field nobody reads."""
    with pytest.raises(pl.PayloadError, match="not a payload"):
        pl.decode(chat(body="😀" * 16_000 + "x"))
    with pytest.raises(pl.PayloadError, match="not a payload"):
        pl.decode(pack({"k": "intro", "relay": "ws://a:1", "later": "x" * 64_001}))
    ext = msgpack.ExtType(1, b"a")
    with pytest.raises(pl.PayloadError, match="not a payload"):
        pl.decode(pack({"k": "intro", "relay": "ws://a:1", "later": ext}))


def test_fallbacks_are_written_only_when_there_are_some() -> None:
    """A payload without fallbacks is the same bytes as before they existed."""
    plain = msgpack.unpackb(pl.encode(pl.Intro("ws://a:1")), raw=False)
    assert plain == {"k": "intro", "relay": "ws://a:1"}
    both = msgpack.unpackb(pl.encode(pl.Move(bytes(32), "ws://a:1", ("ws://b:2",))), raw=False)
    assert both == {"k": "move", "mb": bytes(32), "relay": "ws://a:1", "fb": ["ws://b:2"]}


@pytest.mark.parametrize(
    "fb",
    [
        ["ws://b:2", "ws://c:3", "ws://d:4"],  # three fallbacks: one too many
        ["ws://a:1"],  # the relay itself again
        ["ws://b:2", "ws://b:2"],  # one twice
        ["http://b:2"],  # not a relay URL
        [b"ws://b:2"],  # not text
        "ws://b:2",  # not a list
        {"ws://b:2": 1},
    ],
)
def test_bad_fallbacks_are_refused_for_every_kind_that_names_a_relay(fb: object) -> None:
    for data in (
        {"k": "intro", "relay": "ws://a:1", "fb": fb},
        {"k": "welcome", "mb": bytes(32), "relay": "ws://a:1", "name": "", "fb": fb},
        {"k": "move", "mb": bytes(32), "relay": "ws://a:1", "fb": fb},
    ):
        with pytest.raises(pl.PayloadError):
            pl.decode(pack(data))


@pytest.mark.parametrize("mb", [bytes(31), bytes(33), "x" * 32, None])
def test_a_move_names_a_mailbox_of_exactly_32_bytes(mb: object) -> None:
    with pytest.raises(pl.PayloadError):
        pl.decode(pack({"k": "move", "mb": mb, "relay": "ws://a:1"}))


def test_group_payloads_are_bounded() -> None:
    gid, keys = b"g" * 16, b"k" * 64
    have = [[keys, 1]] * (pl.MAX_SYNC_AUTHORS + 1)
    log = [[b"s", b"x" * 64]] * (pl.MAX_GROUP_LOG + 1)
    for data in (
        pack({"k": "gsync", "g": gid, "have": have, "reply": False}),
        pack({"k": "gsync", "g": gid, "have": [[keys, -1]], "reply": False}),
        pack({"k": "gsync", "g": gid, "have": [[b"k" * 63, 1]], "reply": False}),
        pack({"k": "ginv", "g": gid, "name": "G", "log": log}),
        pack({"k": "ginv", "g": gid, "name": "G", "log": []}),
        pack({"k": "gintro", "g": gid, "m": keys, "code": "x" * (pl.MAX_CODE_CHARS + 1)}),
        pack({"k": "gjoin", "g": b"g" * 15, "code": "anonchat:x"}),
        pack({"k": "gpost", "s": b"s", "sig": b"x" * 63}),
    ):
        with pytest.raises(pl.PayloadError):
            pl.decode(data)
    assert pl.decode(pack({"k": "gsync", "g": gid, "have": have[:-1], "reply": True}))
