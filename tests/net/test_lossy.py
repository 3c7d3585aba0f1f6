"""A relay path that loses one frame at connect time: the client never waits forever.

A real relay process, and between it and one client a proxy on 127.0.0.1 that drops the first
frame of one kind the relay sends (hello, the ok to a subscribe, the watching reply, the sent
reply). Each time the client notices the missing answer within its timeouts, drops the
connection, connects again with backoff, and delivery resumes with nobody's help.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Iterator

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from app.net import Backoff, Delivered, MailboxPresence, NetError, RelayPool
from relay import wire
from tests.net.helpers import Recorder, RelayProcess
from tests.relay.helpers import MailboxKey

TIMEOUT = 0.5  # the client's hello and reply timeouts here (10 s by default)


@pytest.fixture(scope="module")
def relay() -> Iterator[RelayProcess]:
    proc = RelayProcess()
    try:
        yield proc
    finally:
        proc.stop()


class LossyProxy:
    """Forwards WebSocket messages both ways, dropping the first relay frame of one type."""

    def __init__(self, upstream: str, drop: str) -> None:
        self.upstream = upstream
        self.drop = drop
        self.dropped = 0
        self.connections = 0
        self.url = ""

    async def __aenter__(self) -> LossyProxy:
        self._server = await serve(self._handle, "127.0.0.1", 0, compression=None)
        port = next(iter(self._server.sockets)).getsockname()[1]
        self.url = f"ws://127.0.0.1:{port}/"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, client: ServerConnection) -> None:
        self.connections += 1
        async with connect(self.upstream, compression=None) as relay:

            async def down() -> None:
                async for message in relay:
                    assert isinstance(message, bytes)
                    if self.dropped == 0 and self.drop == wire.decode(message).TYPE:
                        self.dropped += 1
                        continue
                    await client.send(message)

            async def up() -> None:
                async for message in client:
                    await relay.send(message)

            tasks = [asyncio.create_task(down()), asyncio.create_task(up())]
            with contextlib.suppress(ConnectionClosed):
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def lossy_pool(events: Recorder) -> RelayPool:
    return RelayPool(
        events,
        request_timeout=TIMEOUT,
        hello_timeout=TIMEOUT,
        backoff=Backoff(base=0.05, cap=0.2),
    )


async def send_until_received(
    pool: RelayPool, url: str, mailbox: bytes, payload: bytes, receiver: Recorder
) -> None:
    """What the outbox does: send again until the receiver has it (its receipt), bounded.
    A send the relay forwarded to a connection that was just dropped is lost, like any."""

    def received() -> bool:
        return any(isinstance(e, Delivered) and e.payload == payload for e in receiver.events)

    async with asyncio.timeout(10):
        while not received():
            with contextlib.suppress(NetError):
                await pool.send(url, mailbox, payload, within=TIMEOUT)
            await asyncio.sleep(0.2)


@pytest.mark.parametrize("drop", ["hello", "ok", "watching"])
def test_a_receiver_whose_relay_loses_a_frame_at_connect_still_gets_its_messages(
    relay: RelayProcess, drop: str
) -> None:
    async def main() -> None:
        async with LossyProxy(relay.url, drop) as proxy:
            events, sender_events = Recorder(), Recorder()
            receiver, sender = lossy_pool(events), RelayPool(sender_events)
            key, other = MailboxKey.generate(), MailboxKey.generate()
            try:
                await receiver.subscribe(proxy.url, key.mailbox, key.signer)
                await receiver.watch(proxy.url, [other.mailbox])
                await send_until_received(sender, relay.url, key.mailbox, os.urandom(40), events)
                # Presence works on the new connection too: the watched mailbox comes online.
                await sender.subscribe(relay.url, other.mailbox, other.signer)
                await events.wait_for(
                    lambda e: isinstance(e, MailboxPresence) and e.online, within=5
                )
                assert proxy.dropped == 1
                assert proxy.connections >= 2  # the stalled connection was replaced
            finally:
                await receiver.close()
                await sender.close()

    asyncio.run(main())


def test_a_sender_whose_relay_loses_a_sent_reply_connects_again_and_delivers(
    relay: RelayProcess,
) -> None:
    async def main() -> None:
        async with LossyProxy(relay.url, "sent") as proxy:
            events, sender_events = Recorder(), Recorder()
            receiver, sender = RelayPool(events), lossy_pool(sender_events)
            key = MailboxKey.generate()
            try:
                await receiver.subscribe(relay.url, key.mailbox, key.signer)
                for _ in range(2):
                    await send_until_received(
                        sender, proxy.url, key.mailbox, os.urandom(40), events
                    )
                assert proxy.dropped == 1
                assert proxy.connections >= 2
            finally:
                await receiver.close()
                await sender.close()

    asyncio.run(main())
