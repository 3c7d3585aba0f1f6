"""relay.resp without a socket: RESP bytes in, callbacks and pushed messages out, in order."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from relay.resp import (
    LOST,
    Push,
    RedisLink,
    RespError,
    Target,
    encode_command,
    parse,
    parse_url,
)


class Transport:
    """What the link wrote, and whether it was aborted."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def abort(self) -> None:
        self.aborted = True


class Harness:
    def __init__(self) -> None:
        self.messages: list[tuple[bytes, bytes]] = []
        self.lost: list[BaseException | None] = []
        self.events: list[Any] = []
        self.link = RedisLink(self.on_message, self.lost.append)
        self.transport = Transport()
        self.link.connection_made(self.transport)  # type: ignore[arg-type]

    def on_message(self, channel: bytes, data: bytes) -> None:
        self.messages.append((channel, data))
        self.events.append(("message", channel, data))

    def reply(self, name: str) -> Any:
        return lambda value: self.events.append((name, value))


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_commands_are_bulk_string_arrays() -> None:
    assert encode_command([b"PUBLISH", b"ch", b"\r\n"]) == (
        b"*3\r\n$7\r\nPUBLISH\r\n$2\r\nch\r\n$2\r\n\r\n\r\n"
    )
    assert encode_command([]) == b"*0\r\n"


@pytest.mark.parametrize(
    ("data", "value"),
    [
        (b"+OK\r\n", b"OK"),
        (b":42\r\n", 42),
        (b":-1\r\n", -1),
        (b"$3\r\nabc\r\n", b"abc"),
        (b"$-1\r\n", None),
        (b"$0\r\n\r\n", b""),
        (b"*2\r\n:1\r\n$1\r\nx\r\n", [1, b"x"]),
        (b"*-1\r\n", None),
        (b"%1\r\n+a\r\n:1\r\n", {b"a": 1}),
        (b"_\r\n", None),
        (b"#t\r\n", True),
        (b"#f\r\n", False),
        (b",1.5\r\n", 1.5),
        (b"(12345678901234567890\r\n", 12345678901234567890),
        (b"=7\r\ntxt:abc\r\n", b"abc"),
        (b"~1\r\n:3\r\n", [3]),
        (b"|1\r\n+ttl\r\n:3\r\n:7\r\n", 7),  # an attribute, then the value it annotates
    ],
)
def test_parse_each_type(data: bytes, value: Any) -> None:
    assert parse(data, 0) == (value, len(data))


def test_parse_errors_and_pushes() -> None:
    error, _ = parse(b"-ERR wrong\r\n", 0)
    assert isinstance(error, RespError)
    assert str(error) == "ERR wrong"
    push, _ = parse(b">2\r\n$7\r\nmessage\r\n:1\r\n", 0)
    assert type(push) is Push
    assert push == [b"message", 1]
    for junk in (b"?\r\n", b":x\r\n", b"$z\r\n"):
        with pytest.raises(RespError):
            parse(junk, 0)


nested = st.recursive(
    st.one_of(st.binary(max_size=40), st.integers(-(2**63), 2**63 - 1)),
    lambda inner: st.lists(inner, max_size=4),
    max_leaves=12,
)


def encode_value(value: Any) -> bytes:
    if isinstance(value, bytes):
        return b"$%d\r\n%s\r\n" % (len(value), value)
    if isinstance(value, int):
        return b":%d\r\n" % value
    return b"*%d\r\n" % len(value) + b"".join(encode_value(v) for v in value)


@given(nested)
def test_parse_round_trip_and_every_prefix_is_incomplete(value: Any) -> None:
    data = encode_value(value)
    assert parse(data, 0) == (value, len(data))
    for cut in range(len(data)):
        with pytest.raises(Exception) as raised:
            parse(data[:cut], 0)
        assert not isinstance(raised.value, RespError)


def test_replies_and_messages_come_in_the_order_redis_sent_them() -> None:
    async def scenario() -> Harness:
        h = Harness()
        h.link.subscription(b"SUBSCRIBE", [b"a", b"b"], h.reply("subscribed"))
        h.link.command([b"PUBLISH", b"a", b"x"], h.reply("published"))
        h.link.command([b"PUBSUB", b"NUMSUB", b"a"], h.reply("counted"))
        await asyncio.sleep(0)  # one write per loop turn
        assert h.transport.written == [
            encode_command([b"SUBSCRIBE", b"a", b"b"])
            + encode_command([b"PUBLISH", b"a", b"x"])
            + encode_command([b"PUBSUB", b"NUMSUB", b"a"])
        ]
        stream = (
            b">3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n"
            b">3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n"
            b">3\r\n$7\r\nmessage\r\n$1\r\na\r\n$1\r\nx\r\n"
            b":1\r\n"
            b"*2\r\n$1\r\na\r\n:1\r\n"
        )
        # Byte by byte: every value waits until it is whole.
        for i in range(len(stream)):
            h.link.data_received(stream[i : i + 1])
        return h

    h = run(scenario())
    assert h.events == [
        ("subscribed", None),
        ("message", b"a", b"x"),
        ("published", 1),
        ("counted", [b"a", 1]),
    ]
    assert h.link.pending() == 0
    assert h.link.oldest() is None
    assert not h.transport.aborted


def test_a_big_message_split_anywhere() -> None:
    payload = bytes(range(256)) * 40

    async def scenario() -> Harness:
        h = Harness()
        frame = b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$%d\r\n%s\r\n" % (len(payload), payload)
        for cut in (1, 17, 23, len(frame) - 1):
            h.link.data_received(frame[:cut])
            h.link.data_received(frame[cut:])
        return h

    assert run(scenario()).messages == [(b"ch", payload)] * 4


@pytest.mark.parametrize(
    "stream",
    [
        b":1\r\n",  # a reply nobody asked for
        b">3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n",  # a confirmation nobody asked for
        b"?what\r\n",  # not RESP
        b">3\r\n$7\r\nmessage\r\n$1\r\naXX$1\r\nx\r\n",  # a message with a broken length
    ],
)
def test_what_nobody_asked_for_ends_the_link(stream: bytes) -> None:
    async def scenario() -> Harness:
        h = Harness()
        h.link.data_received(stream)
        return h

    h = run(scenario())
    assert h.transport.aborted
    assert len(h.lost) == 1
    assert isinstance(h.lost[0], RespError)


def test_an_error_reply_ends_the_link_unless_it_was_awaited() -> None:
    async def scenario() -> tuple[Harness, Any, Harness]:
        awaited = Harness()
        future = awaited.link.call([b"HELLO", b"3"])
        awaited.link.data_received(b"-NOPROTO unsupported\r\n")
        plain = Harness()
        plain.link.command([b"PUBLISH", b"a", b"x"], plain.reply("published"))
        plain.link.data_received(b"-NOPERM no\r\n")
        return awaited, await future, plain

    awaited, reply, plain = run(scenario())
    assert isinstance(reply, RespError)
    assert not awaited.transport.aborted
    assert plain.transport.aborted
    # Every command still waiting is told the link is lost, once.
    assert plain.events == [("published", LOST)]


def test_a_lost_link_answers_every_command_waiting_or_later_and_writes_nothing() -> None:
    async def scenario() -> Harness:
        h = Harness()
        h.link.command([b"PUBLISH", b"a", b"1"], h.reply("one"))
        h.link.subscription(b"UNSUBSCRIBE", [b"a"], h.reply("two"))
        h.link.connection_lost(ConnectionResetError())
        h.link.command([b"PUBLISH", b"a", b"3"], h.reply("three"))
        await asyncio.sleep(0)
        return h

    h = run(scenario())
    assert h.events == [("one", LOST), ("two", LOST), ("three", LOST)]
    assert len(h.lost) == 1
    assert h.link.pending() == 0
    assert h.transport.written == []


def test_urls() -> None:
    assert parse_url("redis://127.0.0.1:6380/2") == Target(
        "127.0.0.1", 6380, None, None, None, False
    )
    assert parse_url("rediss://u:p%40ss@redis.internal") == Target(
        "redis.internal", 6379, None, "u", "p@ss", True
    )
    assert parse_url("redis://:secret@h").password == "secret"
    assert parse_url("unix:///run/redis.sock") == Target(
        None, 0, "/run/redis.sock", None, None, False
    )
    for wrong in ("http://h", "unix://"):
        with pytest.raises(ValueError):
            parse_url(wrong)
