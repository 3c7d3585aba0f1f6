"""Relay connections through a real SOCKS5 proxy on 127.0.0.1: the relay's name is one only
the proxy can resolve, so a conversation that works at all went through it; each connection
gives the proxy credentials of its own (what Tor isolates circuits by); and a proxy that is
down holds everything back, losing nothing, until it is up again."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import socks5server.server
from socks5server import SocksServer
from socks5server.auth import AuthenticationBase
from socks5server.client_socks5 import Socks5Client
from socks5server.enums import AuthMethod

from app.core.events import ConnectionChanged, ConnectionState, MessageAdded, PresenceChanged
from app.core.routing import Isolation
from app.domain.messages import Status
from relay.server import RelayConfig, serve_relay
from tests.core.test_live_relay import introduce, people

RELAY_NAME = "relay.anonchat.test"  # resolves nowhere but at the proxy


@dataclass
class ProxyLog:
    logins: list[tuple[str, str]] = field(default_factory=list)
    destinations: list[tuple[str, int]] = field(default_factory=list)


class AnyLogin(AuthenticationBase):
    """Username/password authentication (RFC 1929) that takes any pair and notes it, as Tor
    does with IsolateSOCKSAuth."""

    def __init__(self, log: ProxyLog) -> None:
        self.log = log

    async def authenticate(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        _version, ulen = await reader.readexactly(2)
        user = (await reader.readexactly(ulen)).decode()
        (plen,) = await reader.readexactly(1)
        password = (await reader.readexactly(plen)).decode()
        self.log.logins.append((user, password))
        writer.write(b"\x01\x00")
        await writer.drain()
        return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def socks_proxy(port: int, relay_port: int, log: ProxyLog) -> AsyncIterator[None]:
    """A SOCKS5 server on 127.0.0.1:port that knows RELAY_NAME (nobody else does)."""

    class Resolving(Socks5Client):
        async def _handle_connection(self, address: str, port_: int) -> None:
            log.destinations.append((address, port_))
            target = "127.0.0.1" if address == RELAY_NAME else address
            await super()._handle_connection(target, port_)

    server = SocksServer("127.0.0.1", port)
    server.register_authentication(AuthMethod.PASSWORD, AnyLogin(log))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socks5server.server, "Socks5Client", Resolving)
        task = asyncio.create_task(server.serve())
        for _ in range(100):
            with contextlib.suppress(OSError):
                _, w = await asyncio.open_connection("127.0.0.1", port)
                w.close()
                break
            await asyncio.sleep(0.02)
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def test_every_connection_goes_through_the_proxy_each_with_its_own_login(tmp_path: Path) -> None:
    async def body() -> None:
        relay = await serve_relay(RelayConfig(host="127.0.0.1", port=0))
        proxy_port, log = free_port(), ProxyLog()
        url = f"ws://{RELAY_NAME}:{relay.port}"
        try:
            async with (
                socks_proxy(proxy_port, relay.port, log),
                people(
                    tmp_path,
                    "Alice",
                    "Bob",
                    relay_url=url,
                    proxy=f"socks5h://127.0.0.1:{proxy_port}",
                ) as (alice, bob),
            ):
                assert alice.engine.isolation() is Isolation.PER_CONTACT  # the proxy's default
                to_bob, to_alice = await introduce(alice, bob)
                await alice.until(PresenceChanged, lambda e: e.online)  # type: ignore[attr-defined]
                await alice.engine.send(to_bob, "through the proxy")
                await bob.until(MessageAdded, lambda e: e.message.body == "through the proxy")  # type: ignore[attr-defined]
                await bob.engine.send(to_alice, "and back")
                await alice.until(MessageAdded, lambda e: e.message.body == "and back")  # type: ignore[attr-defined]
                # The relay's name went to the proxy as a name (socks5h), never resolved here.
                assert {d for d in log.destinations} == {(RELAY_NAME, relay.port)}
                # A login per connection: two people, each a card and a contact connection.
                assert len(log.logins) >= 4
                assert len(set(log.logins)) == len(log.logins)
                assert len(relay.relay.connections) == len(log.destinations)
        finally:
            await relay.close()

    asyncio.run(body())


def test_a_proxy_that_is_down_holds_messages_back_and_loses_none(tmp_path: Path) -> None:
    async def body() -> None:
        relay = await serve_relay(RelayConfig(host="127.0.0.1", port=0))
        proxy_port, log = free_port(), ProxyLog()
        url = f"ws://{RELAY_NAME}:{relay.port}"
        proxy = f"socks5h://127.0.0.1:{proxy_port}"
        try:
            async with (
                socks_proxy(proxy_port, relay.port, log),
                people(tmp_path, "Alice", "Bob", relay_url=url, proxy=proxy) as (alice, bob),
            ):
                to_bob, _ = await introduce(alice, bob)
                await alice.until(PresenceChanged, lambda e: e.online)  # type: ignore[attr-defined]
            # (people() closed both engines with the proxy; open them again without it.)
            async with people(
                tmp_path, "Alice", "Bob", relay_url=url, proxy=proxy, reopen=True
            ) as (alice, bob):
                sent = await alice.engine.send(to_bob, "held back")
                await alice.until(
                    ConnectionChanged,
                    lambda e: e.state is ConnectionState.BACKING_OFF,  # type: ignore[attr-defined]
                )
                await asyncio.sleep(0.5)
                assert (await alice.engine.messages(to_bob, 1))[0].status is Status.QUEUED
                assert await alice.engine.pending_outbox(to_bob) >= 1
                assert len(relay.relay.connections) == 0  # nothing went around the proxy
                async with socks_proxy(proxy_port, relay.port, log):
                    await bob.until(MessageAdded, lambda e: e.message.body == "held back")  # type: ignore[attr-defined]
                    assert sent.id == (await alice.engine.messages(to_bob, 1))[0].id
        finally:
            await relay.close()

    asyncio.run(body())
