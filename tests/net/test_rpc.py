"""The local JSON-RPC socket: real Unix sockets in temporary directories, one event loop per
test, bytes on the wire checked where the client would hide them."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import socket
import stat
import tempfile
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.net import rpc
from app.net.rpc import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    INVALID_REQUEST,
    MAX_CALLS,
    MAX_CONNECTIONS,
    MAX_LINE,
    METHOD_NOT_FOUND,
    PARSE_ERROR,
    TOO_MANY_CALLS,
    ApiClient,
    ApiServer,
    Call,
    RpcError,
    socket_path,
)

SECRET = "the-secret-text-4711"


def run(main: Callable[[], Awaitable[None]]) -> None:
    async def bounded() -> None:
        await asyncio.wait_for(main(), 15)

    asyncio.run(bounded())


@pytest.fixture
def profile() -> Iterator[Path]:
    """A profile directory as the app makes it: 0700 (mkdtemp), short enough for sun_path."""
    directory = Path(tempfile.mkdtemp(prefix="api-"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


async def handler(method: str, params: dict[str, Any], call: Call) -> Any:
    if method == "echo":
        return params
    if method == "sleep":
        await asyncio.sleep(params["s"])
        return params["s"]
    if method == "ticks":
        for i in range(params["n"]):
            call.notify("tick", {"i": i})
        return "done"
    if method == "boom":
        raise RuntimeError(SECRET)
    raise RpcError(METHOD_NOT_FOUND, "method not found", method)


async def serving(directory: Path, serve: rpc.Handler = handler) -> ApiServer:
    server = ApiServer(socket_path(directory), serve)
    await server.start()
    return server


async def connected(directory: Path) -> ApiClient:
    client = await ApiClient.connect(socket_path(directory))
    assert client is not None
    return client


async def raw(directory: Path) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_unix_connection(socket_path(directory), limit=4 * MAX_LINE)


async def answers(reader: asyncio.StreamReader, count: int) -> list[dict[str, Any]]:
    got = []
    for _ in range(count):
        line = await asyncio.wait_for(reader.readline(), 5)
        assert line.endswith(b"\n")
        got.append(json.loads(line))
    return got


def request(rid: object, method: str = "echo", **fields: Any) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, **fields}).encode() + b"\n"


def test_a_call_round_trips(profile: Path) -> None:
    async def main() -> None:
        server = await serving(profile)
        client = await connected(profile)
        assert socket_path(profile) == profile / "api.sock"
        assert await client.call("echo", {"text": "héllo ✓", "n": [1, None]}) == {
            "text": "héllo ✓",
            "n": [1, None],
        }
        assert await client.call("echo") == {}
        await client.close()
        await server.close()
        assert not socket_path(profile).exists()

    run(main)


def test_concurrent_calls_are_answered_as_they_finish(profile: Path) -> None:
    async def main() -> None:
        server = await serving(profile)
        reader, writer = await raw(profile)
        writer.write(
            b"".join(request(i, "sleep", params={"s": s}) for i, s in enumerate([0.3, 0.15, 0]))
        )
        got = await answers(reader, 3)
        assert [(a["id"], a["result"]) for a in got] == [(2, 0), (1, 0.15), (0, 0.3)]
        writer.close()

        client = await connected(profile)
        done: list[float] = []

        async def timed(s: float) -> None:
            done.append(await client.call("sleep", {"s": s}))

        await asyncio.gather(*(timed(s) for s in (0.2, 0.1, 0.0)))
        assert done == [0.0, 0.1, 0.2]
        await client.close()
        await server.close()

    run(main)


def test_notifications_reach_on_notify_before_the_result(profile: Path) -> None:
    async def main() -> None:
        server = await serving(profile)
        client = await connected(profile)
        seen: list[tuple[str, dict[str, Any]]] = []
        result = await client.call("ticks", {"n": 3}, on_notify=lambda m, p: seen.append((m, p)))
        assert result == "done"
        assert seen == [("tick", {"i": 0}), ("tick", {"i": 1}), ("tick", {"i": 2})]

        reader, writer = await raw(profile)
        writer.write(request(9, "ticks", params={"n": 2}))
        got = await answers(reader, 3)
        assert got[0] == {"jsonrpc": "2.0", "method": "tick", "params": {"i": 0}}
        assert "id" not in got[1]
        assert got[2] == {"jsonrpc": "2.0", "id": 9, "result": "done"}
        writer.close()
        await client.close()
        await server.close()

    run(main)


def test_bad_lines_get_errors_and_the_connection_goes_on(profile: Path) -> None:
    cases: list[tuple[bytes, object, int]] = [
        (b"not json\n", None, PARSE_ERROR),
        (b"\xff\xfe{}\n", None, PARSE_ERROR),
        (b'{"jsonrpc":"2.0","id":1,"method":"echo","params":{"x":NaN}}\n', None, PARSE_ERROR),
        (b"\n", None, PARSE_ERROR),
        (b"[" * 100_000 + b"\n", None, PARSE_ERROR),
        (b'[{"jsonrpc":"2.0","id":1,"method":"echo"}]\n', None, INVALID_REQUEST),
        (b"42\n", None, INVALID_REQUEST),
        (b'{"jsonrpc":"1.0","id":5,"method":"echo"}\n', 5, INVALID_REQUEST),
        (b'{"id":"a","method":"echo"}\n', "a", INVALID_REQUEST),
        (b'{"jsonrpc":"2.0","id":6,"method":7}\n', 6, INVALID_REQUEST),
        (b'{"jsonrpc":"2.0","id":7,"method":"echo","params":[1]}\n', 7, INVALID_PARAMS),
        (b'{"jsonrpc":"2.0","id":8,"method":"echo","params":"x"}\n', 8, INVALID_REQUEST),
        (b'{"jsonrpc":"2.0","id":8,"method":"echo","params":null}\n', 8, INVALID_REQUEST),
        (b'{"jsonrpc":"2.0","id":1.5,"method":"echo"}\n', None, INVALID_REQUEST),
        (b'{"jsonrpc":"2.0","id":true,"method":"echo"}\n', None, INVALID_REQUEST),
        (b'{"jsonrpc":"2.0","method":7}\n', None, INVALID_REQUEST),  # not even a notification
        (request(10, "nope"), 10, METHOD_NOT_FOUND),
    ]

    async def main() -> None:
        server = await serving(profile)
        reader, writer = await raw(profile)
        for line, rid, code in cases:
            writer.write(line)
            (got,) = await answers(reader, 1)
            assert got["jsonrpc"] == "2.0", line
            assert got["id"] == rid, line
            assert "result" not in got, line
            assert got["error"]["code"] == code, line
        # notifications run and get no answer, not even a wrong one
        writer.write(b'{"jsonrpc":"2.0","method":"echo","params":{}}\n')
        writer.write(b'{"jsonrpc":"2.0","method":"echo","params":[1]}\n')
        writer.write(b'{"jsonrpc":"2.0","method":"boom"}\n')
        writer.write(request("last", params={"ok": True}))
        assert await answers(reader, 1) == [
            {"jsonrpc": "2.0", "id": "last", "result": {"ok": True}}
        ]
        writer.close()
        await server.close()

    run(main)


def test_an_oversize_line_is_refused_and_closes_only_that_connection(profile: Path) -> None:
    async def main() -> None:
        server = await serving(profile)
        bystander = await connected(profile)
        reader, writer = await raw(profile)
        writer.write(b'{"jsonrpc":"2.0","id":1,"method":"echo","params":{"x":"')
        writer.write(b"a" * (MAX_LINE + 10) + b'"}}\n')
        with contextlib.suppress(ConnectionError):
            await writer.drain()  # the server may close before it has read it all
        (got,) = await answers(reader, 1)
        assert got["id"] is None
        assert got["error"]["code"] == INVALID_REQUEST
        with contextlib.suppress(ConnectionResetError):
            assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()

        at_the_limit = "b" * (MAX_LINE - 100)
        assert await bystander.call("echo", {"x": at_the_limit}) == {"x": at_the_limit}
        fresh = await connected(profile)
        assert await fresh.call("echo", {"y": 1}) == {"y": 1}
        with pytest.raises(ValueError, match="longer than a line"):
            await fresh.call("echo", {"x": "c" * MAX_LINE})
        for client in (bystander, fresh):
            await client.close()
        await server.close()

    run(main)


def test_unknown_method_and_handler_errors_reach_the_caller(profile: Path) -> None:
    async def main() -> None:
        server = await serving(profile)
        client = await connected(profile)
        with pytest.raises(RpcError) as caught:
            await client.call("nope", {"a": 1})
        assert (caught.value.code, caught.value.message, caught.value.data) == (
            METHOD_NOT_FOUND,
            "method not found",
            "nope",
        )
        await client.close()
        await server.close()

    run(main)


def test_a_generic_exception_is_an_internal_error_that_leaks_nothing(
    profile: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> None:
        server = await serving(profile)
        reader, writer = await raw(profile)
        writer.write(request(1, "boom", params={"password": SECRET}))
        (got,) = await answers(reader, 1)
        assert got["error"]["code"] == INTERNAL_ERROR
        assert SECRET not in json.dumps(got)
        client = await connected(profile)
        with pytest.raises(RpcError) as caught:
            await client.call("boom")
        assert caught.value.code == INTERNAL_ERROR
        writer.close()
        await client.close()
        await server.close()

    with caplog.at_level(logging.DEBUG):
        run(main)
    assert "RuntimeError" in caplog.text
    assert "'boom'" in caplog.text
    assert SECRET not in caplog.text


def test_a_client_that_disconnects_mid_call_loses_nothing(profile: Path) -> None:
    started, finished = asyncio.Event(), asyncio.Event()
    saw_gone: list[bool] = []
    streamed: list[int] = []

    async def serve(method: str, params: dict[str, Any], call: Call) -> Any:
        if method == "work":
            started.set()
            await asyncio.sleep(0.3)
            saw_gone.append(call.gone.is_set())
            call.notify("late", {})  # to nobody, silently
            finished.set()
            return "kept"
        n = 0
        while not call.gone.is_set():  # a listen: streams until the client goes
            call.notify("event", {"n": n})
            streamed.append(n)
            n += 1
            await asyncio.sleep(0.01)
        return n

    async def main() -> None:
        server = await serving(profile, serve)
        client = await connected(profile)
        pending = asyncio.create_task(client.call("work"))
        await started.wait()
        await client.close()
        with pytest.raises(ConnectionError):
            await pending
        await asyncio.wait_for(finished.wait(), 5)
        assert saw_gone == [True]

        listener = await connected(profile)
        heard = asyncio.Event()

        def on_event(method: str, params: dict[str, Any]) -> None:
            if params["n"] == 2:
                heard.set()

        listening = asyncio.create_task(listener.call("listen", on_notify=on_event))
        await heard.wait()
        await listener.close()
        with pytest.raises(ConnectionError):
            await listening
        await asyncio.sleep(0.1)
        count = len(streamed)
        await asyncio.sleep(0.1)
        assert len(streamed) == count  # it stopped
        await server.close()

    run(main)


def test_the_socket_is_0600_and_an_open_directory_is_refused(profile: Path) -> None:
    async def main() -> None:
        server = await serving(profile)
        assert stat.S_IMODE(os.stat(socket_path(profile)).st_mode) == 0o600
        assert stat.S_ISSOCK(os.stat(socket_path(profile)).st_mode)
        await server.close()

        for mode in (0o755, 0o750, 0o701):
            os.chmod(profile, mode)
            with pytest.raises(PermissionError, match="open to other users"):
                await ApiServer(socket_path(profile), handler).start()
            assert not socket_path(profile).exists()
        os.chmod(profile, 0o700)
        with pytest.raises(FileNotFoundError):
            await ApiServer(profile / "missing" / "api.sock", handler).start()

    run(main)


def test_a_stale_socket_is_replaced_and_a_stranger_file_is_not(profile: Path) -> None:
    async def main() -> None:
        path = socket_path(profile)
        assert await ApiClient.connect(path) is None  # no file
        assert await ApiClient.connect(profile / "missing" / "api.sock") is None
        crashed = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        crashed.bind(str(path))  # a socket file nobody listens on, as a crash leaves it
        crashed.close()
        assert await ApiClient.connect(path) is None  # ECONNREFUSED
        server = await serving(profile)
        client = await connected(profile)
        assert await client.call("echo", {"a": 1}) == {"a": 1}
        await client.close()
        await server.close()

        path.write_text("not a socket")
        with pytest.raises(FileExistsError):
            await ApiServer(path, handler).start()
        assert path.read_text() == "not a socket"

    run(main)


def test_a_second_server_on_the_same_profile_is_refused(profile: Path) -> None:
    async def main() -> None:
        first = await serving(profile)
        second = ApiServer(socket_path(profile), handler)
        with pytest.raises(OSError, match="another process serves this profile"):
            await second.start()
        await second.close()
        client = await connected(profile)
        assert await client.call("echo", {"still": "first"}) == {"still": "first"}
        await client.close()
        await first.close()
        assert not socket_path(profile).exists()

    run(main)


def test_close_unlinks_only_its_own_socket_file(profile: Path) -> None:
    async def main() -> None:
        server = await serving(profile)
        path = socket_path(profile)
        os.unlink(path)
        path.write_text("someone else's")
        await server.close()
        assert path.read_text() == "someone else's"

    run(main)


def test_close_waits_for_calls_then_cancels_what_outlives_the_grace(
    profile: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rpc, "CLOSE_GRACE", 0.3)
    ends: list[str] = []

    async def serve(method: str, params: dict[str, Any], call: Call) -> Any:
        try:
            await asyncio.sleep(0.1 if method == "short" else 60)
            ends.append(f"{method} finished")
        except asyncio.CancelledError:
            ends.append(f"{method} cancelled")
            raise

    async def main() -> None:
        server = await serving(profile, serve)
        client = await connected(profile)
        calls = [asyncio.create_task(client.call(m)) for m in ("short", "long")]
        await asyncio.sleep(0.05)
        loop = asyncio.get_running_loop()
        began = loop.time()
        await server.close()
        assert 0.25 < loop.time() - began < 2
        for task in calls:
            with pytest.raises(ConnectionError):
                await task
        assert sorted(ends) == ["long cancelled", "short finished"]
        assert not socket_path(profile).exists()
        assert await ApiClient.connect(socket_path(profile)) is None
        await client.close()

    run(main)


def test_a_long_profile_path_is_served(profile: Path) -> None:
    deep = profile / ("d" * 120) / ("e" * 120)
    deep.mkdir(parents=True, mode=0o700)
    assert len(os.fsencode(socket_path(deep))) > 200

    async def main() -> None:
        server = await serving(deep)
        assert stat.S_IMODE(os.stat(socket_path(deep)).st_mode) == 0o600
        with pytest.raises(OSError, match="another process"):
            await ApiServer(socket_path(deep), handler).start()
        client = await connected(deep)
        assert await client.call("echo", {"deep": True}) == {"deep": True}
        await client.close()
        await server.close()
        assert not socket_path(deep).exists()
        assert await ApiClient.connect(socket_path(deep)) is None

    run(main)


@pytest.mark.skipif(os.geteuid() != 0, reason="acting as another user needs root")
def test_a_peer_with_another_uid_is_closed_without_a_word() -> None:
    # Under /tmp, not pytest's tmp_path: uid 65534 must be able to reach the socket.
    profile = Path(tempfile.mkdtemp(prefix="api-uid-"))

    def stranger(path: str) -> int:
        os.setgid(65534)
        os.setuid(65534)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(path)  # the filesystem fence is opened below, on purpose
            return 0 if sock.recv(100) == b"" else 2

    async def main() -> None:
        server = await serving(profile)
        path = socket_path(profile)
        os.chmod(profile, 0o711)  # open the filesystem fence, leaving the uid check alone
        os.chmod(path, 0o666)
        pid = os.fork()
        if pid == 0:
            code = 3
            try:
                code = stranger(str(path))
            finally:
                os._exit(code)
        _, status = await asyncio.to_thread(os.waitpid, pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0  # connected, then closed, no bytes
        client = await connected(profile)
        assert await client.call("echo", {"me": 0}) == {"me": 0}
        await client.close()
        await server.close()

    try:
        run(main)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def test_at_most_64_calls_run_at_once_per_connection(profile: Path) -> None:
    running, release = asyncio.Event(), asyncio.Event()
    count = 0

    async def serve(method: str, params: dict[str, Any], call: Call) -> Any:
        nonlocal count
        if method == "hold":
            count += 1
            if count == MAX_CALLS:
                running.set()
            await release.wait()
        return method

    async def main() -> None:
        server = await serving(profile, serve)
        client = await connected(profile)
        held = [asyncio.create_task(client.call("hold")) for _ in range(MAX_CALLS)]
        await running.wait()
        with pytest.raises(RpcError) as caught:
            await client.call("echo")
        assert (caught.value.code, caught.value.message) == (
            TOO_MANY_CALLS,
            "too many calls at once",
        )
        other = await connected(profile)  # the bound is per connection
        assert await other.call("echo") == "echo"
        release.set()
        assert await asyncio.gather(*held) == ["hold"] * MAX_CALLS
        assert await client.call("echo") == "echo"
        for each in (client, other):
            await each.close()
        await server.close()

    run(main)


def test_at_most_32_connections(profile: Path) -> None:
    async def main() -> None:
        server = await serving(profile)
        clients = [await connected(profile) for _ in range(MAX_CONNECTIONS)]
        for client in clients:
            assert await client.call("echo") == {}
        extra = await connected(profile)
        with pytest.raises(ConnectionError):
            await extra.call("echo")
        await extra.close()
        await clients.pop().close()
        for _ in range(100):  # the server notices the goodbye on its next turn
            late = await connected(profile)
            try:
                assert await late.call("echo", {"in": 1}) == {"in": 1}
                break
            except ConnectionError:
                await asyncio.sleep(0.02)
            finally:
                await late.close()
        else:
            pytest.fail("a freed place was never given to a new client")
        for client in clients:
            await client.close()
        await server.close()

    run(main)


def test_a_client_that_does_not_read_is_dropped(profile: Path) -> None:
    gone = asyncio.Event()

    async def serve(method: str, params: dict[str, Any], call: Call) -> Any:
        if method == "flood":
            for _ in range(40):  # 20 MB, more than the 8 MB a client may leave unread
                call.notify("blob", {"b": "x" * (512 * 1024)})
            await call.gone.wait()
            gone.set()
        return method

    async def main() -> None:
        server = await serving(profile, serve)
        _reader, writer = await raw(profile)
        writer.write(request(1, "flood"))
        await asyncio.wait_for(gone.wait(), 5)
        client = await connected(profile)
        assert await client.call("echo") == "echo"
        writer.close()
        await client.close()
        await server.close()

    run(main)


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)
_requestish = st.fixed_dictionaries(
    {},
    optional={
        "jsonrpc": st.just("2.0") | _json,
        "method": st.sampled_from(["echo", "boom", "nope", "ticks"]) | _json,
        "params": st.dictionaries(st.text(max_size=4), _json, max_size=2) | _json,
        "id": st.integers() | st.text(max_size=8) | _json,
    },
)
_lines = st.one_of(
    st.binary(max_size=300),
    _json.map(lambda v: json.dumps(v).encode()),
    _requestish.map(lambda v: json.dumps(v, ensure_ascii=False).encode()),
).map(lambda b: b.replace(b"\n", b" "))
PROBE = "probe-after-the-line"


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(line=_lines)
def test_any_line_gets_an_answer_or_a_closed_door_and_the_server_serves_on(
    profile: Path, line: bytes
) -> None:
    async def safe(method: str, params: dict[str, Any], call: Call) -> Any:
        if method == "ticks":
            return "no ticks here"  # params are random: do not read them
        return await handler(method, params, call)

    async def main() -> None:
        server = await serving(profile, safe)
        reader, writer = await raw(profile)
        writer.write(line + b"\n" + request(PROBE))
        while True:
            got = await asyncio.wait_for(reader.readline(), 5)
            if not got:
                break  # the connection was closed: allowed
            message = json.loads(got)
            assert message["jsonrpc"] == "2.0"
            assert ("result" in message) != ("error" in message)
            if "error" in message:
                assert isinstance(message["error"]["code"], int)
                assert SECRET not in got.decode()
            if message["id"] == PROBE:
                assert message["result"] == {}
                break
        writer.close()
        client = await connected(profile)
        assert await client.call("echo", {"after": True}) == {"after": True}
        await client.close()
        await server.close()

    run(main)
