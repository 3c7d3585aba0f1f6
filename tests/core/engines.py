"""Throwaway engines for the engine tests: real SQLCipher profiles, a cheap Argon2id, and a
relay address nobody listens on (frames are handed over by the tests themselves)."""

from __future__ import annotations

from pathlib import Path

from app.core.engine import Engine
from app.core.profile import create_profile, profile_paths
from app.crypto.passphrase import INSECURE_FAST_PARAMS
from app.net.events import Delivered
from app.store.records import OutboxKind

RELAY = "ws://127.0.0.1:9"
PASS = "first passphrase"


async def make(path: Path, name: str) -> Engine:
    opened = await create_profile(profile_paths(str(path)), PASS, name, RELAY, INSECURE_FAST_PARAMS)
    return await Engine.open(opened)


async def carry(sender: Engine, receiver: Engine) -> None:
    """Hand every frame waiting in the sender's outbox to the receiver, as the relay would."""
    for item in await sender.store.read(lambda r: r.outbox.due(2**62)):
        if item.kind is OutboxKind.MESSAGE:
            async with receiver._mutex:
                await receiver._receive(Delivered(RELAY, item.mailbox_id, item.ciphertext))
