"""A small Redis client for the backplane: RESP3 on one connection, every command pipelined.

The backplane needs only PUBLISH, SUBSCRIBE, UNSUBSCRIBE and PUBSUB NUMSUB, at tens of
thousands of commands a second. A general client pays a connection pool and a coroutine per
command; here a command is a few bytes appended to one buffer, written once per loop turn, and
its reply a callback, called in the order Redis answered.

RESP3 (Redis 6 and later) lets one connection publish and count while it is subscribed, with
pushed messages and replies in a single stream in the order Redis produced them. The
backplane relies on that order: a reply that comes after a pushed message was made after it.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, cast
from urllib.parse import parse_qs, unquote, urlsplit

DEFAULT_PORT: Final = 6379
CRLF: Final = b"\r\n"
MESSAGE_HEAD: Final = b">3\r\n$7\r\nmessage\r\n$"

Reply = Any
ReplyFn = Callable[[Reply], None]
PushFn = Callable[[bytes, bytes], None]


class RespError(Exception):
    """An error reply from Redis, or bytes that are not RESP: the link is not to be trusted."""


class _Incomplete(Exception):
    """The buffer ends inside a value: wait for more bytes."""


_INCOMPLETE: Final = _Incomplete()
# The reply of every command still unanswered when the link ends.
LOST: Final = RespError("the link to Redis ended before it answered")


class Push(list[Any]):
    """An out-of-band RESP3 push (``>``): a pub/sub message or a (un)subscribe confirmation."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where a Redis URL points: ``redis://``, ``rediss://`` (TLS) or ``unix://``."""

    host: str | None
    port: int
    path: str | None
    username: str | None
    password: str | None
    tls: bool


def parse_url(url: str) -> Target:
    """``redis://[user:password@]host[:port][/db]``, the same with ``rediss://``, or
    ``unix://[user:password@]/path/to/socket``. Pub/sub ignores the database number."""
    parts = urlsplit(url)
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    if parts.scheme == "unix":
        path = parts.path or parse_qs(parts.query).get("path", [""])[0]
        if not path:
            raise ValueError("a unix:// Redis URL needs a socket path")
        return Target(None, 0, path, username, password, False)
    if parts.scheme not in ("redis", "rediss"):
        raise ValueError("a Redis URL starts with redis://, rediss:// or unix://")
    return Target(
        parts.hostname or "127.0.0.1",
        parts.port or DEFAULT_PORT,
        None,
        username,
        password,
        parts.scheme == "rediss",
    )


def encode_command(args: Sequence[bytes]) -> bytes:
    """One command as a RESP array of bulk strings."""
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        out.append(b"$%d\r\n" % len(arg))
        out.append(arg)
        out.append(CRLF)
    return b"".join(out)


def parse(buf: bytes | bytearray, pos: int) -> tuple[Reply, int]:
    """The RESP2/RESP3 value at ``buf[pos:]`` and the position after it.

    Raises :class:`_Incomplete` when the buffer ends inside the value, :class:`RespError`
    when it is not RESP. An error reply is returned as a :class:`RespError`, not raised.
    """
    end = buf.find(CRLF, pos)
    if end < 0:
        raise _INCOMPLETE
    kind = buf[pos]
    head = buf[pos + 1 : end]
    after = end + 2
    try:
        if kind in b"$=!":  # bulk string, verbatim string, bulk error
            size = int(head)
            if size < 0:
                return None, after
            stop = after + size
            if len(buf) < stop + 2:
                raise _INCOMPLETE
            data = bytes(buf[after:stop])
            if kind == 0x3D:  # '=': "txt:" before the text
                data = data[4:]
            elif kind == 0x21:
                return RespError(data.decode(errors="replace")), stop + 2
            return data, stop + 2
        if kind in b":(":
            return int(head), after
        if kind in b"*>~":  # array, push, set
            count = int(head)
            if count < 0:
                return None, after
            items: list[Reply] = Push() if kind == 0x3E else []
            for _ in range(count):
                item, after = parse(buf, after)
                items.append(item)
            return items, after
        if kind in b"%|":  # map, attribute
            pairs: dict[Any, Reply] = {}
            for _ in range(int(head)):
                key, after = parse(buf, after)
                value, after = parse(buf, after)
                pairs[tuple(key) if isinstance(key, list) else key] = value
            if kind == 0x7C:  # an attribute annotates the value that follows: skip it
                return parse(buf, after)
            return pairs, after
        if kind == 0x2B:  # '+'
            return bytes(head), after
        if kind == 0x2D:  # '-'
            return RespError(bytes(head).decode(errors="replace")), after
        if kind == 0x5F:  # '_'
            return None, after
        if kind == 0x23:  # '#'
            return head == b"t", after
        if kind == 0x2C:  # ','
            return float(head), after
    except ValueError:
        raise RespError("not RESP") from None
    raise RespError("not RESP")


class _Pending:
    """A command waiting for its answer: one reply, or ``pushes`` (un)subscribe confirmations."""

    __slots__ = ("callback", "errors", "pushes", "since")

    def __init__(
        self, callback: ReplyFn | None, pushes: int, since: float, errors: bool = False
    ) -> None:
        self.callback = callback
        self.pushes = pushes
        self.since = since
        self.errors = errors  # an error reply goes to the callback instead of failing the link


class RedisLink(asyncio.Protocol):
    """One RESP3 connection. Commands queue in one buffer written once per loop turn; replies
    reach their callbacks and pushed messages ``on_message``, in the order Redis sent them."""

    def __init__(self, on_message: PushFn, on_lost: Callable[[BaseException | None], None]):
        self.on_message = on_message
        self.on_lost = on_lost
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._in = bytearray()
        self._out: list[bytes] = []
        self._flush_due = False
        self._pending: deque[_Pending] = deque()

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed:
            self.closed = True
            self._abandon()
            self.on_lost(exc)

    def data_received(self, data: bytes) -> None:
        buf = self._in
        buf += data
        pos = 0
        try:
            while pos < len(buf):
                # The two things that come by the thousand, read without the general parser:
                # a published message, and PUBLISH's count.
                if buf.startswith(MESSAGE_HEAD, pos):
                    read = self._message(buf, pos)
                    if read < 0:
                        break
                    pos = read
                    continue
                if buf[pos] == 0x3A:  # ':' an integer
                    end = buf.find(CRLF, pos)
                    if end < 0:
                        break
                    try:
                        value = int(buf[pos + 1 : end])
                    except ValueError:
                        raise RespError("not RESP") from None
                    pos = end + 2
                    self._dispatch(value)
                    continue
                try:
                    value, pos = parse(buf, pos)
                except _Incomplete:
                    break
                self._dispatch(value)
        except RespError as exc:
            self.fail(exc)
            return
        finally:
            del buf[:pos]

    def _message(self, buf: bytearray, pos: int) -> int:
        """``>3 message <channel> <data>`` at ``pos``: hand it on, return where it ends
        (-1 when it is not all in the buffer yet)."""
        start = pos + len(MESSAGE_HEAD)
        end = buf.find(CRLF, start)
        if end < 0:
            return -1
        try:
            size = int(buf[start:end])
            channel_end = end + 2 + size
            if len(buf) < channel_end + 3:
                return -1
            if buf[channel_end : channel_end + 3] != b"\r\n$":
                raise ValueError
            start = channel_end + 3
            end = buf.find(CRLF, start)
            if end < 0:
                return -1
            data_end = end + 2 + int(buf[start:end])
        except ValueError:
            raise RespError("not RESP") from None
        if len(buf) < data_end + 2:
            return -1
        channel = bytes(buf[channel_end - size : channel_end])
        self.on_message(channel, bytes(buf[end + 2 : data_end]))
        return data_end + 2

    def _dispatch(self, value: Reply) -> None:
        if type(value) is Push:
            kind = value[0] if value else None
            if kind == b"message" and len(value) == 3:
                self.on_message(value[1], value[2])
                return
            if kind not in (b"subscribe", b"unsubscribe"):
                return  # another push (a tracking invalidation): not ours to answer
            head = self._pending[0] if self._pending else None
            if head is None or head.pushes == 0:
                raise RespError("a confirmation nobody asked for")
            head.pushes -= 1
            if head.pushes:
                return
            value = None
        if not self._pending or self._pending[0].pushes:
            raise RespError("a reply nobody asked for")
        if isinstance(value, RespError) and not self._pending[0].errors:
            raise value
        pending = self._pending.popleft()
        if pending.callback is not None:
            pending.callback(value)

    # -- commands -----------------------------------------------------------------------------

    def command(self, args: Sequence[bytes], callback: ReplyFn | None = None) -> None:
        """Queue a command; ``callback`` gets its reply (:data:`LOST` once the link ended)."""
        self._queue(encode_command(args), _Pending(callback, 0, self.loop.time()))

    def subscription(
        self, verb: bytes, channels: Sequence[bytes], callback: ReplyFn | None = None
    ) -> None:
        """SUBSCRIBE or UNSUBSCRIBE ``channels``; ``callback(None)`` once all are confirmed."""
        pending = _Pending(callback, len(channels), self.loop.time())
        self._queue(encode_command([verb, *channels]), pending)

    def _queue(self, data: bytes, pending: _Pending) -> None:
        if self.closed:  # answered at once, as every command the link's end left waiting
            if pending.callback is not None:
                pending.callback(LOST)
            return
        self._out.append(data)
        self._pending.append(pending)
        if not self._flush_due:
            self._flush_due = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_due = False
        if self.closed or self.transport is None:
            return
        out, self._out = self._out, []
        self.transport.write(b"".join(out))

    def oldest(self) -> float | None:
        """When the oldest unanswered command was queued; None when all are answered."""
        return self._pending[0].since if self._pending else None

    def call(self, args: Sequence[bytes]) -> asyncio.Future[Reply]:
        """A command whose reply (an error reply too) is awaited."""
        future: asyncio.Future[Reply] = self.loop.create_future()

        def done(value: Reply) -> None:
            if not future.done():
                future.set_result(value)

        self._queue(encode_command(args), _Pending(done, 0, self.loop.time(), errors=True))
        return future

    def fail(self, exc: BaseException | None = None) -> None:
        """Close the link; ``on_lost`` is told once."""
        if self.transport is not None:
            self.transport.abort()
        if not self.closed:
            self.closed = True
            self._abandon()
            self.on_lost(exc)

    def _abandon(self) -> None:
        """The link is gone: every command still waiting gets :data:`LOST` for its reply."""
        pending, self._pending = self._pending, deque()
        self._out.clear()
        for waiting in pending:
            if waiting.callback is not None:
                waiting.callback(LOST)

    def pending(self) -> int:
        return len(self._pending)


async def open_link(
    url: str,
    on_message: PushFn,
    on_lost: Callable[[BaseException | None], None],
) -> RedisLink:
    """Connect, switch to RESP3 (authenticating when the URL has credentials), return the
    link. Raises OSError or :class:`RespError`; the caller bounds the wait."""
    target = parse_url(url)
    loop = asyncio.get_running_loop()
    link = RedisLink(on_message, on_lost)
    if target.path is not None:
        await loop.create_unix_connection(lambda: link, target.path)
    else:
        host = target.host or "127.0.0.1"
        context = ssl.create_default_context() if target.tls else None
        await loop.create_connection(
            lambda: link, host, target.port, ssl=context, server_hostname=host if context else None
        )
    hello = [b"HELLO", b"3"]
    if target.password is not None:
        hello += [b"AUTH", (target.username or "default").encode(), target.password.encode()]
    reply = await link.call(hello)
    if isinstance(reply, RespError) or not isinstance(reply, dict):
        link.fail()
        raise RespError("Redis refused RESP3 (HELLO 3): the backplane needs Redis 6 or later")
    return link
