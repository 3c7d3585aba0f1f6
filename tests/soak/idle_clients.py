"""A client process of the idle-connection soak: COUNT connections to the relay from one
loopback source address, each subscribed to a mailbox of its own; says ``ready N`` once all are
up, then holds them (answering the relay's pings) until its standard input closes."""

from __future__ import annotations

import asyncio
import resource
import socket
import sys

from websockets.asyncio.client import ClientConnection, connect

from relay import wire
from tests.relay.helpers import MailboxKey

AT_ONCE = 64  # connections being opened at the same time


async def one(url: str, host: str, port: int, source: str) -> ClientConnection:
    sock = socket.socket()
    sock.setblocking(False)
    sock.bind((source, 0))
    await asyncio.get_running_loop().sock_connect(sock, (host, port))
    ws = await connect(url, sock=sock, compression=None, ping_interval=None, max_size=None)
    hello = wire.decode(await ws.recv())  # type: ignore[arg-type]
    assert isinstance(hello, wire.Hello)
    key = MailboxKey.generate()
    await ws.send(wire.encode(key.subscribe(1, hello.challenge)))
    assert wire.decode(await ws.recv()) == wire.Ok(1)  # type: ignore[arg-type]
    return ws


async def main(url: str, source: str, count: int) -> None:
    host, port = "127.0.0.1", int(url.rsplit(":", 1)[1].strip("/"))
    gate = asyncio.Semaphore(AT_ONCE)
    opened: list[ClientConnection] = []

    async def opener() -> None:
        async with gate:
            opened.append(await one(url, host, port, source))

    await asyncio.gather(*(opener() for _ in range(count)))
    print(f"ready {len(opened)}", flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)
    for ws in opened:
        ws.transport.abort()


if __name__ == "__main__":
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = int(sys.argv[3]) + 100
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, max(hard, need)))
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
