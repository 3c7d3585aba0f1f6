"""The client under a hostile relay: two of bench/abuse.py's attacks, each against the same
measurement without it, in the same run.

Alice runs in this process (an engine on the real relay); Bob is a real `anonchat-cli listen`
process whose relay is an injecting proxy (tests/e2e/injector.py) in front of the same relay,
so the flood costs Bob's process, measured from outside.

- `client_flood_rss_growth_mb`: Bob's peak RSS growth while the hostile relay pushes 60 KB
  junk `deliver` frames into his contact mailbox for FLOOD_S seconds, as fast as he reads
  (baseline: the growth over as long without it).
- `skip_flood_delay_s`: how long Alice's next message takes to reach Bob's screen after 1 s of
  frames shaped like ratchet messages with their skip counters at the limit (baseline: the
  same message with no flood before it).
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' helpers, run alone

from app.core.engine import Engine
from app.core.profile import open_profile, profile_paths
from tests.e2e.conftest import PASS, Listener, Profile, Relay, pair
from tests.e2e.injector import Injector, skip_frame
from tests.e2e.test_cli_flood import PeakRss, rss_mb

FLOOD_S = 15.0
SKIP_FLOOD_S = 1.0


class Scene:
    """The relay, the injector, Alice's engine and Bob's listener, set up once."""

    def __init__(self, tmp: Path) -> None:
        self.relay = Relay(tmp)
        self.injector = Injector(self.relay.url)
        made: list[Profile] = []

        def make(name: str, relay_url: str | None = None) -> Profile:
            profile = Profile(tmp / name.lower(), name)
            if relay_url is not None:
                profile.init(relay_url)
            made.append(profile)
            return profile

        self.alice_profile, self.bob = pair(make, self.relay.url, self.injector.url)
        self.listener: Listener = self.bob.listen()
        self.listener.wait_listening()
        self.alice: Engine | None = None
        self.to_bob = 0
        self.mailbox = b""

    async def start(self) -> None:
        opened = await open_profile(profile_paths(str(self.alice_profile.dir)), PASS)
        self.alice = await Engine.open(opened)
        await self.alice.start()
        self.to_bob = (await self.alice.find_contact("Bob")).id
        await self.delay("hello")
        self.mailbox = self.injector.delivered[-1][0]

    async def delay(self, text: str) -> float:
        """Seconds from Alice's send to Bob's listener printing the message."""
        assert self.alice is not None
        started = time.monotonic()
        await self.alice.send(self.to_bob, text)
        await asyncio.to_thread(
            self.listener.wait_for, lambda ev: any(e.get("body") == text for e in ev), 300
        )
        return time.monotonic() - started

    async def close(self) -> None:
        if self.alice is not None:
            await self.alice.close()
        self.listener.kill()
        self.injector.close()
        self.relay.kill()


async def _measure(scene: Scene) -> dict[str, Any]:
    await scene.start()
    pid = scene.listener.proc.pid
    # Junk: growth over FLOOD_S with the flood, and without (idle), same process.
    before = rss_mb(pid)
    sampler = PeakRss(pid)
    await asyncio.sleep(FLOOD_S)
    idle_growth = sampler.stop() - before
    before = rss_mb(pid)
    sampler = PeakRss(pid)
    junk = await asyncio.to_thread(
        scene.injector.flood, scene.mailbox, lambda: os.urandom(60_000), FLOOD_S
    )
    flood_growth = sampler.stop() - before
    await scene.delay("after the junk")  # it settled
    # Skip counters: a message's delay after 1 s of them, and with none before it.
    calm = await scene.delay("calm")
    frames = await asyncio.to_thread(scene.injector.flood, scene.mailbox, skip_frame, SKIP_FLOOD_S)
    flooded = await scene.delay("after the skip flood")
    return {
        "client_flood_rss_growth_mb": round(flood_growth, 1),
        "client_idle_rss_growth_mb": round(idle_growth, 1),
        "client_flood_frames": junk,
        "skip_flood_delay_s": round(flooded, 3),
        "skip_calm_delay_s": round(calm, 3),
        "skip_flood_frames": frames,
    }


def client_attacks() -> dict[str, Any]:
    """Both client-side attacks, with their baselines; the figures by their issue's names."""
    with tempfile.TemporaryDirectory(prefix="anonchat-abuse-") as tmp:
        scene = Scene(Path(tmp))

        async def main() -> dict[str, Any]:
            try:
                return await _measure(scene)
            finally:
                await scene.close()

        return asyncio.run(main())


if __name__ == "__main__":
    import json

    print(json.dumps(client_attacks()))
