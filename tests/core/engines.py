"""Throwaway engines for the engine tests: real SQLCipher profiles, a cheap Argon2id, and a
relay address nobody listens on (frames are handed over by the tests themselves)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

from app.core.engine import Engine
from app.core.profile import create_profile, profile_paths
from app.crypto.passphrase import INSECURE_FAST_PARAMS
from app.domain.contacts import Contact, ContactState
from app.net.events import Delivered
from app.store.records import OutboxKind

RELAY = "ws://127.0.0.1:9"
PASS = "first passphrase"


async def make(path: Path, name: str) -> Engine:
    opened = await create_profile(profile_paths(str(path)), PASS, name, RELAY, INSECURE_FAST_PARAMS)
    return await Engine.open(opened)


async def deliver(receiver: Engine, mailbox: bytes, frame: bytes) -> None:
    """One frame into the receiver's mailbox, as the relay would hand it over."""
    await receiver.receive(Delivered(RELAY, mailbox, frame))


async def carry(
    sender: Engine, receiver: Engine, kinds: tuple[OutboxKind, ...] = (OutboxKind.MESSAGE,)
) -> int:
    """Hand every frame of these kinds waiting in the sender's outbox to the receiver (the
    outbox keeps them, as it does until a receipt comes); how many were handed over."""
    items = [i for i in await sender.store.read(lambda r: r.outbox.due(2**62)) if i.kind in kinds]
    for item in items:
        await deliver(receiver, item.mailbox_id, item.ciphertext)
    return len(items)


async def eventually(check: Callable[[], Awaitable[object]], seconds: float = 20.0) -> None:
    """Let the loop run until the coroutine `check()` returns something true."""
    deadline = time.monotonic() + seconds
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {check}")
        await asyncio.sleep(0.02)


async def rows(engine: Engine, *states: ContactState) -> list[Contact]:
    return await engine.store.read(lambda r: r.contacts.all(*states))


async def befriend(a: Engine, b: Engine) -> tuple[Contact, Contact]:
    """`b` scans `a`'s card, `a` accepts the request, the welcome reaches `b`: (a's contact
    for b, b's contact for a), both established."""
    b_side = await b.add_contact(await a.card())
    await carry(b, a)
    (request,) = [s.request for s in await a.requests()]
    a_side = await a.accept_request(request.id)
    await carry(a, b)
    return a_side, await b.contact(b_side.id)


@contextlib.contextmanager
def own_loop() -> Iterator[tuple[asyncio.AbstractEventLoop, list[Engine]]]:
    """A private event loop for engines that a module's fixture shares across hypothesis
    examples (each example runs on it); engines put in the list are closed at the end."""
    loop = asyncio.new_event_loop()
    opened: list[Engine] = []
    try:
        yield loop, opened
    finally:
        for engine in opened:
            loop.run_until_complete(engine.close())
        loop.close()
