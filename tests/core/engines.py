"""Throwaway engines for the engine tests: real SQLCipher profiles, a cheap Argon2id, and a
relay address nobody listens on (frames are handed over by the tests themselves)."""

from __future__ import annotations

from pathlib import Path

from app.core.engine import Engine
from app.core.profile import create_profile, profile_paths
from app.crypto.passphrase import INSECURE_FAST_PARAMS

RELAY = "ws://127.0.0.1:9"
PASS = "first passphrase"


async def make(path: Path, name: str) -> Engine:
    opened = await create_profile(profile_paths(str(path)), PASS, name, RELAY, INSECURE_FAST_PARAMS)
    return await Engine.open(opened)
