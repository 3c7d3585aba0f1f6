"""JSON-RPC 2.0 over a Unix socket in the profile directory: one JSON object per line, UTF-8,
``\\n``-terminated, at most :data:`MAX_LINE` bytes either way.

The process that holds a profile open serves ``<profile>/api.sock``; clients call methods by
name with named params (an object; positional arrays get INVALID_PARAMS). A request without
an ``id`` is a notification: it runs, nothing answers. Batches (JSON arrays) are not
supported and get INVALID_REQUEST. While a call runs, its handler may send the client
notifications (``{"jsonrpc": "2.0", "method": m, "params": p}``, no id), e.g. a stream of
events until the client goes away.

Who may connect: the socket is created 0600 in a directory that must be 0700 and ours, and
each connection's peer uid (SO_PEERCRED, where the platform has it) must be ours too; another
uid is closed at once without a word.

Each request runs in a task of its own, so answers may come out of order. A client that
disconnects mid-call loses nothing: the call runs to its end, only its answer is dropped, and
``Call.gone`` tells a streaming handler to stop. Bounds: 64 calls at once per connection
(more get TOO_MANY_CALLS), 32 connections (more are closed at once), 8 MB of unread output
(the client is dropped).

A Unix socket address holds about 107 bytes. A longer path is bound and connected through an
open descriptor of its directory, ``/proc/self/fd/N/api.sock`` (Linux): no chdir, which would
move every thread of the process. Elsewhere a too-long path is a clear error.

Pure asyncio and the standard library, importing nothing else of the project, so any front end
can serve or call it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
import json
import logging
import os
import socket
import stat
import struct
import traceback
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MAX_LINE = 1 << 20  # bytes per line, either direction, without the newline
SOCKET_NAME = "api.sock"

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
TOO_MANY_CALLS = -32005

MAX_CALLS = 64  # running at once, per connection
MAX_CONNECTIONS = 32
MAX_UNREAD = 8 << 20  # bytes waiting for a client that does not read
CLOSE_GRACE = 5.0  # seconds running calls get at close() before they are cancelled

_SHORT_PATH = 100  # sun_path is 108 bytes on Linux, 104 on macOS, both with the NUL
_PROC_FD = "/proc/self/fd"

RequestId = str | int | None


class RpcError(Exception):
    """An error response: raised by a handler to answer with it, by a client on receiving it."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message
        self.data = data

    def __str__(self) -> str:
        return f"{self.message} ({self.code})"


@dataclass(frozen=True)
class Call:
    """What a handler gets besides method and params."""

    notify: Callable[[str, dict[str, Any]], None]  # to this client; dropped once it is gone
    gone: asyncio.Event  # set when the client disconnects


Handler = Callable[[str, dict[str, Any], Call], Awaitable[Any]]


def socket_path(profile_dir: Path) -> Path:
    return profile_dir / SOCKET_NAME


# --- addresses ----------------------------------------------------------------------------


@contextlib.contextmanager
def _address(path: Path) -> Iterator[bytes]:
    """An address bind/connect accept for path, valid inside the block."""
    raw = os.fsencode(path)
    if len(raw) < _SHORT_PATH:
        yield raw
        return
    if not os.path.isdir(_PROC_FD):
        raise OSError(
            errno.ENAMETOOLONG,
            "the path is too long for a Unix socket; use a shorter profile directory",
            str(path),
        )
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield os.fsencode(f"{_PROC_FD}/{fd}/") + os.fsencode(path.name)
    finally:
        os.close(fd)


async def _connect(path: Path) -> socket.socket | None:
    """A connected socket, or None when nothing serves at path."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        with _address(path) as address:
            await asyncio.get_running_loop().sock_connect(sock, address)
    except (FileNotFoundError, ConnectionRefusedError):
        sock.close()
        return None
    except BaseException:
        sock.close()
        raise
    return sock


def _serving_elsewhere(path: Path) -> OSError:
    return OSError(errno.EADDRINUSE, "another process serves this profile", str(path))


def _check_directory(directory: Path) -> None:
    """Refuse a directory other users could reach: the socket's mode alone is not a fence."""
    info = os.stat(directory)
    if info.st_uid != os.getuid():
        raise PermissionError(errno.EACCES, "the directory belongs to another user", str(directory))
    if info.st_mode & 0o077:
        mode = stat.S_IMODE(info.st_mode)
        raise PermissionError(
            errno.EACCES,
            f"the directory is open to other users (mode {mode:o}, needs 700)",
            str(directory),
        )


def _same_user(writer: asyncio.StreamWriter) -> bool:
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:  # macOS, BSD: the 0700 directory and 0600 socket are the fence
        return True
    sock = writer.get_extra_info("socket")
    if sock is None:
        return False
    size = struct.calcsize("3i")
    try:
        _pid, uid, _gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, option, size))
    except OSError:
        return False
    return bool(uid == os.getuid())


# --- lines --------------------------------------------------------------------------------


def _encode(message: dict[str, Any]) -> bytes:
    """One line; TypeError/ValueError for what is not strict JSON (NaN included)."""
    try:
        text = json.dumps(message, separators=(",", ":"), allow_nan=False)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    return text.encode() + b"\n"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _decode(line: bytes) -> Any:
    """The JSON value of a line; ValueError when it is not one."""
    try:
        return json.loads(line.decode("utf-8"), parse_constant=_reject_constant)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def _error(rid: RequestId, code: int, message: str, data: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": rid, "error": error}


@dataclass(frozen=True)
class _Request:
    method: str
    params: dict[str, Any]
    id: RequestId
    answered: bool  # False for a notification


class _Invalid(Exception):
    def __init__(self, code: int, message: str, rid: RequestId = None, answered: bool = True):
        super().__init__(message)
        self.code, self.message, self.rid, self.answered = code, message, rid, answered


def _valid_id(rid: object) -> bool:
    if isinstance(rid, bool):
        return False
    return rid is None or isinstance(rid, str | int)


def _parse(line: bytes) -> _Request:
    try:
        message = _decode(line)
    except ValueError:
        raise _Invalid(PARSE_ERROR, "parse error") from None
    if isinstance(message, list):
        raise _Invalid(INVALID_REQUEST, "batches are not supported")
    if not isinstance(message, dict):
        raise _Invalid(INVALID_REQUEST, "a request is a JSON object")
    rid = message.get("id")
    if not _valid_id(rid):
        raise _Invalid(INVALID_REQUEST, "id must be a string, an integer or null")
    if message.get("jsonrpc") != "2.0":
        raise _Invalid(INVALID_REQUEST, 'jsonrpc must be "2.0"', rid)
    method = message.get("method")
    if not isinstance(method, str):
        raise _Invalid(INVALID_REQUEST, "method must be a string", rid)
    params = message.get("params", {})
    answered = "id" in message
    if isinstance(params, list):
        raise _Invalid(INVALID_PARAMS, "params must be an object", rid, answered)
    if not isinstance(params, dict):
        raise _Invalid(INVALID_REQUEST, "params must be an object", rid)
    return _Request(method, params, rid, answered)


def _log_failure(method: str, exc: Exception) -> None:
    """Type and place only: an exception's text may quote user data."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f"{os.path.basename(frames[-1].filename)}:{frames[-1].lineno}" if frames else "?"
    log.error("API call %.64r failed: %s at %s", method, type(exc).__name__, where)


# --- server -------------------------------------------------------------------------------


class _Connection:
    """One client's write side. Each line goes out in one write, so lines never interleave
    (the per-connection lock a drain would need); a closing transport drops them."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.gone = asyncio.Event()
        self.calls: set[asyncio.Task[None]] = set()

    def send(self, line: bytes) -> None:
        if self.writer.is_closing():
            return
        self.writer.write(line)
        if self.writer.transport.get_write_buffer_size() > MAX_UNREAD:
            log.warning("an API client stopped reading its output; dropped")
            self.gone.set()
            self.writer.transport.abort()

    def reply(self, message: dict[str, Any]) -> None:
        try:
            line = _encode(message)
        except (TypeError, ValueError) as exc:
            log.error("an API result is not JSON: %s", type(exc).__name__)
            line = _encode(_error(message["id"], INTERNAL_ERROR, "internal error"))
        if len(line) > MAX_LINE + 1:
            log.error("an API response of %d bytes is longer than a line", len(line))
            line = _encode(_error(message["id"], INTERNAL_ERROR, "response too long"))
        self.send(line)

    def notify(self, method: str, params: dict[str, Any]) -> None:
        """Raises TypeError/ValueError for params that are not JSON or too long: the
        handler's bug, reported to it whether or not the client is still there."""
        line = _encode({"jsonrpc": "2.0", "method": method, "params": params})
        if len(line) > MAX_LINE + 1:
            raise ValueError(f"a notification of {len(line)} bytes is longer than a line")
        self.send(line)

    def close(self) -> None:
        self.gone.set()
        self.writer.close()


class ApiServer:
    """Serves handler on the Unix socket at path until :meth:`close`."""

    def __init__(self, path: Path, handler: Handler) -> None:
        self.path = path
        self._handler = handler
        self._server: asyncio.Server | None = None
        self._identity: tuple[int, int] | None = None  # (st_dev, st_ino) of our socket file
        self._closing = False
        self._connections: set[_Connection] = set()
        self._readers: set[asyncio.Task[Any]] = set()
        self._calls: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """OSError (EADDRINUSE) when another process serves path, PermissionError when its
        directory is not ours alone; a stale socket file left by a crash is replaced."""
        if self._server is not None or self._closing:
            raise RuntimeError("an ApiServer starts once")
        _check_directory(self.path.parent)
        await self._clear_stale()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            with _address(self.path) as address:
                mask = os.umask(0o177)  # process-wide, for the moment of the bind
                try:
                    sock.bind(address)
                except OSError as exc:
                    if exc.errno == errno.EADDRINUSE:
                        raise _serving_elsewhere(self.path) from None
                    raise
                finally:
                    os.umask(mask)
            info = os.lstat(self.path)
            self._identity = (info.st_dev, info.st_ino)
            sock.listen(MAX_CONNECTIONS)  # at once: a bound socket that refuses looks stale
            os.chmod(self.path, 0o600)
            sock.setblocking(False)
            self._server = await asyncio.start_unix_server(self._accept, sock=sock, limit=MAX_LINE)
        except BaseException:
            sock.close()
            self._unlink_if_ours()
            raise

    async def _clear_stale(self) -> None:
        try:
            info = os.lstat(self.path)
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(info.st_mode):
            raise FileExistsError(errno.EEXIST, "not a socket; left in place", str(self.path))
        sock = await _connect(self.path)
        if sock is not None:
            sock.close()
            raise _serving_elsewhere(self.path)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    def _unlink_if_ours(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            info = os.lstat(self.path)
            if (info.st_dev, info.st_ino) == self._identity:
                os.unlink(self.path)

    async def close(self) -> None:
        """Stop accepting, close every connection, give running calls CLOSE_GRACE seconds to
        finish, cancel the rest, remove the socket file if it is still ours."""
        server, self._server = self._server, None
        self._closing = True
        if server is None:
            return
        server.close()
        for connection in list(self._connections):
            connection.close()
        if self._calls:
            _, late = await asyncio.wait(self._calls, timeout=CLOSE_GRACE)
            for task in late:
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=1.0)
        if self._readers:
            await asyncio.wait(self._readers, timeout=1.0)
        await server.wait_closed()
        self._unlink_if_ours()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._closing or not _same_user(writer) or len(self._connections) >= MAX_CONNECTIONS:
            writer.transport.abort()
            return
        connection = _Connection(writer)
        task = asyncio.current_task()
        self._connections.add(connection)
        if task is not None:
            self._readers.add(task)
        try:
            await self._serve(connection, reader)
        except Exception as exc:
            log.error("an API connection failed: %s", type(exc).__name__)
        finally:
            connection.close()
            self._connections.discard(connection)
            if task is not None:
                self._readers.discard(task)

    async def _serve(self, connection: _Connection, reader: asyncio.StreamReader) -> None:
        with contextlib.suppress(OSError):  # OSError: the client went away
            while True:
                try:
                    line = await reader.readline()
                except ValueError:  # no newline within MAX_LINE bytes
                    connection.send(_encode(_error(None, INVALID_REQUEST, "line too long")))
                    connection.close()
                    break
                if not line:
                    break
                self._dispatch(connection, line)
        connection.gone.set()
        if connection.calls:  # their answers still go out to a client that only half-closed
            await asyncio.wait(connection.calls)

    def _dispatch(self, connection: _Connection, line: bytes) -> None:
        try:
            request = _parse(line)
        except _Invalid as bad:
            if bad.answered:
                connection.send(_encode(_error(bad.rid, bad.code, bad.message)))
            return
        if len(connection.calls) >= MAX_CALLS:
            if request.answered:
                connection.reply(_error(request.id, TOO_MANY_CALLS, "too many calls at once"))
            return
        task = asyncio.get_running_loop().create_task(self._run(connection, request))
        for calls in (connection.calls, self._calls):
            calls.add(task)
            task.add_done_callback(calls.discard)

    async def _run(self, connection: _Connection, request: _Request) -> None:
        call = Call(notify=connection.notify, gone=connection.gone)
        try:
            result = await self._handler(request.method, request.params, call)
        except RpcError as exc:
            reply = _error(request.id, exc.code, exc.message, exc.data)
        except Exception as exc:
            _log_failure(request.method, exc)
            reply = _error(request.id, INTERNAL_ERROR, "internal error")
        else:
            reply = {"jsonrpc": "2.0", "id": request.id, "result": result}
        if request.answered:
            connection.reply(reply)


# --- client -------------------------------------------------------------------------------

Notified = Callable[[str, dict[str, Any]], None]


class ApiClient:
    """Calls on a server's socket; use :meth:`connect`.

    Notifications carry no id, so each one goes to the ``on_notify`` of every call pending
    when it arrives: one call at a time (the CLI's case) gets exactly its own. Concurrent
    calls work; a caller that mixes them tells their notifications apart by content.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._ids = itertools.count(1)
        self._pending: dict[int, tuple[asyncio.Future[Any], Notified | None]] = {}
        self._lock = asyncio.Lock()
        self._lost: str | None = None  # why the connection is over, once it is
        self._task = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def connect(cls, path: Path) -> ApiClient | None:
        """None when nothing serves at path (no file, or one a crash left behind)."""
        sock = await _connect(path)
        if sock is None:
            return None
        try:
            reader, writer = await asyncio.open_unix_connection(sock=sock, limit=MAX_LINE)
        except BaseException:
            sock.close()
            raise
        return cls(reader, writer)

    async def call(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        on_notify: Notified | None = None,
    ) -> Any:
        """The result; RpcError for an error response, ConnectionError when the server goes
        away first (the call may still have run: it is not cancelled there)."""
        rid = next(self._ids)
        request = {"jsonrpc": "2.0", "id": rid, "method": method, "params": params or {}}
        line = _encode(request)
        if len(line) > MAX_LINE + 1:
            raise ValueError(f"a request of {len(line)} bytes is longer than a line")
        if self._lost is not None:
            raise ConnectionError(self._lost)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[rid] = (future, on_notify)
        try:
            async with self._lock:
                self._writer.write(line)
                await self._writer.drain()
            return await future
        finally:
            del self._pending[rid]

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.wait([self._task])
        self._writer.close()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()

    async def _read(self) -> None:
        reason = "the API server closed the connection"
        try:
            while line := await self._reader.readline():
                self._receive(line)
        except ValueError:
            reason = "the API server sent a line that is too long"
        except OSError as exc:
            reason = f"the API connection failed: {exc}"
        except asyncio.CancelledError:
            reason = "the API client is closed"
            raise
        finally:
            self._lost = reason
            for future, _ in self._pending.values():
                if not future.done():
                    future.set_exception(ConnectionError(reason))

    def _receive(self, line: bytes) -> None:
        try:
            message = _decode(line)
        except ValueError:
            log.debug("the API server sent a line that is not JSON")
            return
        if not isinstance(message, dict):
            return
        if "id" not in message:
            method, params = message.get("method"), message.get("params", {})
            if isinstance(method, str) and isinstance(params, dict):
                self._notified(method, params)
            return
        rid = message["id"]
        entry = self._pending.get(rid) if type(rid) is int else None
        if entry is None or entry[0].done():
            return  # an error about a line of ours it could not read, or a call given up
        future = entry[0]
        error = message.get("error")
        if error is None:
            future.set_result(message.get("result"))
        elif (
            isinstance(error, dict)
            and type(error.get("code")) is int
            and isinstance(error.get("message"), str)
        ):
            future.set_exception(RpcError(error["code"], error["message"], error.get("data")))
        else:
            future.set_exception(RpcError(INTERNAL_ERROR, "malformed error response"))

    def _notified(self, method: str, params: dict[str, Any]) -> None:
        """An on_notify that raises ends its own call with that exception."""
        for future, on_notify in list(self._pending.values()):
            if on_notify is None or future.done():
                continue
            try:
                on_notify(method, params)
            except Exception as exc:
                future.set_exception(exc)
