"""relay.cluster: the cluster key, channel names and message framing (msgpack)."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import re
from pathlib import Path

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.cluster import (
    CHANNEL_PREFIX,
    MAX_SEQ,
    NODE_SIZE,
    Ack,
    BackplaneError,
    Hello,
    Holding,
    Payload,
    cluster_key,
    control_channel,
    decode_message,
    encode_message,
    mailbox_channel,
    node_channel,
    presence_channel,
)
from relay.server import parse_args

MAILBOX = bytes(range(32))
NODE = bytes(range(100, 100 + NODE_SIZE))
KEY = cluster_key("redis://127.0.0.1:6379/0", b"cluster secret")


def test_channel_names_are_keyed_hashes_with_a_readable_prefix() -> None:
    tag = hmac.new(KEY, b"mailbox\x00" + MAILBOX, hashlib.sha256).hexdigest().encode()
    assert mailbox_channel(KEY, MAILBOX) == b"anonchat:v1:m:" + tag
    tag = hmac.new(KEY, b"presence\x00" + MAILBOX, hashlib.sha256).hexdigest().encode()
    assert presence_channel(KEY, MAILBOX) == b"anonchat:v1:p:" + tag
    assert control_channel(KEY).startswith(CHANNEL_PREFIX + b"c:")
    tag = hmac.new(KEY, b"node\x00" + NODE, hashlib.sha256).hexdigest().encode()
    assert node_channel(KEY, NODE) == b"anonchat:v1:n:" + tag


def test_channel_names_never_carry_the_mailbox_id() -> None:
    for channel in (mailbox_channel(KEY, MAILBOX), presence_channel(KEY, MAILBOX)):
        assert MAILBOX.hex().encode() not in channel
        assert MAILBOX not in channel
        assert hashlib.sha256(MAILBOX).hexdigest().encode() not in channel
    # The two channels of one mailbox do not share a tag.
    assert mailbox_channel(KEY, MAILBOX)[14:] != presence_channel(KEY, MAILBOX)[14:]


def test_names_depend_on_the_key_and_the_mailbox_only() -> None:
    other = cluster_key("redis://127.0.0.1:6379/0", b"another secret")
    assert mailbox_channel(KEY, MAILBOX) == mailbox_channel(KEY, bytes(MAILBOX))
    assert mailbox_channel(KEY, MAILBOX) != mailbox_channel(other, MAILBOX)
    assert mailbox_channel(KEY, MAILBOX) != mailbox_channel(KEY, bytes(32))
    with pytest.raises(ValueError, match="32 bytes"):
        mailbox_channel(KEY, b"short")


def test_cluster_key_from_secret_ignores_the_url() -> None:
    assert cluster_key("redis://a:6379", b"s") == cluster_key("redis://b.example:7000/3", b"s")
    assert cluster_key("redis://a:6379", b"s") != cluster_key("redis://a:6379", b"t")


def test_cluster_key_without_secret_comes_from_credentials_not_host() -> None:
    one = cluster_key("redis://user:pw@10.0.0.1:6379/0")
    assert one == cluster_key("redis://user:pw@redis.internal:6380/0")
    assert one != cluster_key("redis://user:other@10.0.0.1:6379/0")
    assert cluster_key("redis://10.0.0.1") == cluster_key("redis://127.0.0.1:6379")
    # A secret and no secret never collide, even for look-alike material.
    assert cluster_key("redis://:@h") != cluster_key("redis://h", b":")


@pytest.mark.parametrize("size", [0, 1, 255, 256, 65535, 65536, 70000])
def test_payload_message_bytes(size: int) -> None:
    """Built by hand (every cross-relay send makes one), byte for byte what msgpack makes."""
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    data = encode_message(Payload(NODE, payload))
    expected = {"v": 1, "k": "d", "o": NODE, "p": payload}
    assert data == msgpack.packb(expected, use_bin_type=True)
    assert data[:1] == b"\x84"  # a 4-entry map
    assert b"\xc4\x10" + NODE in data  # bin 8, 16 bytes: the origin is binary, not a string
    assert decode_message(data) == Payload(NODE, payload)


def test_holding_ack_and_hello_message_bytes() -> None:
    on = encode_message(Holding(NODE, True, 7))
    expected = {"v": 1, "k": "p", "o": NODE, "on": True, "s": 7}
    assert on == msgpack.packb(expected, use_bin_type=True)
    assert on.endswith(b"\xa2on\xc3\xa1s\x07")
    assert encode_message(Holding(NODE, False, 7)).endswith(b"\xa2on\xc2\xa1s\x07")
    ack = {"v": 1, "k": "a", "o": NODE, "s": 7}
    assert encode_message(Ack(NODE, 7)) == msgpack.packb(ack, use_bin_type=True)
    hello = {"v": 1, "k": "n", "o": NODE}
    assert encode_message(Hello(NODE)) == msgpack.packb(hello, use_bin_type=True)


@given(st.binary(min_size=NODE_SIZE, max_size=NODE_SIZE), st.binary(max_size=4096))
def test_payload_round_trip(origin: bytes, payload: bytes) -> None:
    assert decode_message(encode_message(Payload(origin, payload))) == Payload(origin, payload)


@given(
    st.binary(min_size=NODE_SIZE, max_size=NODE_SIZE),
    st.booleans(),
    st.integers(min_value=0, max_value=MAX_SEQ),
)
def test_holding_ack_and_hello_round_trip(origin: bytes, online: bool, seq: int) -> None:
    for message in (Holding(origin, online, seq), Ack(origin, seq), Hello(origin)):
        assert decode_message(encode_message(message)) == message


@pytest.mark.parametrize(
    "body",
    [
        {"v": 2, "k": "d", "o": NODE, "p": b""},
        {"k": "d", "o": NODE, "p": b""},
        {"v": 1, "k": "d", "o": NODE[:-1], "p": b""},
        {"v": 1, "k": "d", "o": "x" * NODE_SIZE, "p": b""},
        {"v": 1, "k": "d", "o": NODE, "p": "text"},
        {"v": 1, "k": "d", "o": NODE},
        {"v": 1, "k": "p", "o": NODE, "on": 1, "s": 1},
        {"v": 1, "k": "p", "o": NODE, "on": True},
        {"v": 1, "k": "p", "o": NODE, "on": True, "s": -1},
        {"v": 1, "k": "a", "o": NODE, "s": "1"},
        {"v": 1, "k": "a", "o": NODE, "s": 2**64 - 1},
        {"v": 1, "k": "n", "o": NODE[:8]},
        {"v": 1, "k": "x", "o": NODE, "p": b""},
        [1, "d", NODE, b""],
    ],
)
def test_decode_refuses_what_is_not_ours(body: object) -> None:
    with pytest.raises(BackplaneError):
        decode_message(msgpack.packb(body, use_bin_type=True))


def test_decode_refuses_non_bytes_and_trailing_bytes() -> None:
    with pytest.raises(BackplaneError):
        decode_message("text")
    with pytest.raises(BackplaneError):
        decode_message(encode_message(Holding(NODE, True, 1)) + b"\x00")


@given(st.binary(max_size=256))
def test_decode_never_raises_anything_else(data: bytes) -> None:
    with contextlib.suppress(BackplaneError):
        decode_message(data)


def test_protocol_doc_backplane_example_matches_the_code() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()
    found = dict(re.findall(r"<!-- backplane: (\w+) -->\n```(?:hex|text)\n(.*?)```", text, re.S))
    mailbox = bytes.fromhex("65fd5b881873bddece236d16c18aa4b025b97fed56a720329ed0ef125ac2fc23")
    key = cluster_key("redis://10.0.0.5:6379/0", b"example cluster secret")
    origin = bytes(range(NODE_SIZE))
    assert bytes.fromhex(found["cluster_key"]) == key
    assert found["mailbox_channel"].strip().encode() == mailbox_channel(key, mailbox)
    assert found["presence_channel"].strip().encode() == presence_channel(key, mailbox)
    payload = encode_message(Payload(origin, bytes.fromhex("deadbeef")))
    assert bytes.fromhex(found["payload"]) == payload
    assert bytes.fromhex(found["holding"]) == encode_message(Holding(origin, True, 1))
    assert bytes.fromhex(found["ack"]) == encode_message(Ack(bytes(range(16, 32)), 1))
    assert found["node_channel"].strip().encode() == node_channel(key, origin)


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    secret = tmp_path / "secret"
    secret.write_bytes(b"  shared secret\n")
    config, _ = parse_args(
        ["--redis", "redis://127.0.0.1:6379/0", "--redis-secret-file", str(secret)]
    )
    assert config.redis_url == "redis://127.0.0.1:6379/0"
    assert config.redis_secret == b"shared secret"
    assert "shared secret" not in repr(config)
    assert parse_args([])[0].redis_url is None
    (tmp_path / "empty").write_bytes(b"\n")
    for argv, message in [
        (["--redis", "http://127.0.0.1"], "redis://"),
        (["--redis-secret-file", str(secret)], "goes with --redis"),
        (["--redis", "redis://h", "--redis-secret-file", str(tmp_path / "none")], "cannot read"),
        (["--redis", "redis://h", "--redis-secret-file", str(tmp_path / "empty")], "is empty"),
    ]:
        with pytest.raises(SystemExit) as exited:
            parse_args(argv)
        assert exited.value.code == 2
        assert message in capsys.readouterr().err
