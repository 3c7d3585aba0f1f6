"""Benchmark: unlocking with the duress passphrase against unlocking with the passphrase.

Each round makes a fresh profile with the default Argon2id parameters (a contact, some
messages, a duress passphrase set), closes it, and times opening it as a front end does
(`open_profile`, then `Engine.open`: what passes between pressing Unlock and the window)
with the passphrase, or with the duress passphrase, which wipes the profile and opens a new
one in its place. Rounds alternate, 5 of each by default. Printed: both medians, their
ratio, and one Argon2id derivation for scale. The last stdout line is one JSON object with
`unlock_ms`, `duress_unlock_ms` and `duress_vs_unlock`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.core.engine import Engine
from app.core.profile import create_profile, open_profile, profile_paths
from app.crypto.passphrase import DEFAULT_PARAMS, derive_key, new_slot
from app.store.records import Direction, NewMessage, Status
from app.store.repos import Repos

PASSPHRASE = "the passphrase of the profile"
DURESS = "the duress passphrase of it"
RELAY = "ws://127.0.0.1:9"


async def fresh_profile(directory: Path, messages: int) -> None:
    """A closed profile with one contact, `messages` messages and a duress passphrase."""
    paths = profile_paths(str(directory))
    engine = await Engine.open(
        await create_profile(paths, PASSPHRASE, "Alice", RELAY, DEFAULT_PARAMS)
    )
    try:
        now = int(time.time() * 1000)

        def fill(r: Repos) -> None:
            contact = r.contacts.add("Bob", bytes(64), now).id
            r.messages.insert_many(
                [
                    NewMessage(
                        contact,
                        Direction.INCOMING if i % 2 else Direction.OUTGOING,
                        i.to_bytes(16, "big"),
                        i,
                        f"message number {i} of the benchmark's conversation",
                        now + i,
                        now + i,
                        Status.READ,
                        True,
                    )
                    for i in range(messages)
                ]
            )

        await engine.store.run(fill)
        await engine.set_duress(DURESS)
    finally:
        await engine.close()


async def timed_unlock(directory: Path, passphrase: str) -> float:
    """Milliseconds from the passphrase to an engine ready for the window."""
    start = time.perf_counter()
    engine = await Engine.open(await open_profile(profile_paths(str(directory)), passphrase))
    took = (time.perf_counter() - start) * 1000
    await engine.close()
    return took


async def main(rounds: int, messages: int, where: str | None) -> dict[str, float]:
    unlock: list[float] = []
    duress: list[float] = []
    with tempfile.TemporaryDirectory(dir=where) as tmp:
        for i in range(2 * rounds):
            directory = Path(tmp) / f"profile-{i}"
            await fresh_profile(directory, messages)
            with_duress = i % 2 == 1
            took = await timed_unlock(directory, DURESS if with_duress else PASSPHRASE)
            (duress if with_duress else unlock).append(took)
            print(f"round {i // 2 + 1}: {'duress' if with_duress else 'passphrase'} {took:.0f} ms")
    start = time.perf_counter()
    derive_key(PASSPHRASE, new_slot(DEFAULT_PARAMS))
    argon2id_ms = (time.perf_counter() - start) * 1000
    median_unlock = statistics.median(unlock)
    median_duress = statistics.median(duress)
    ratio = median_duress / median_unlock
    print(f"one Argon2id derivation (default parameters): {argon2id_ms:.0f} ms")
    print(f"unlock with the passphrase: median {median_unlock:.0f} ms of {len(unlock)}")
    print(
        f"unlock with the duress passphrase (wipe, then a new profile): median "
        f"{median_duress:.0f} ms of {len(duress)}"
    )
    print(f"duress / passphrase: {ratio:.3f} ({median_duress - median_unlock:+.0f} ms)")
    return {
        "unlock_ms": round(median_unlock, 1),
        "duress_unlock_ms": round(median_duress, 1),
        "duress_vs_unlock": round(ratio, 3),
    }


if __name__ == "__main__":
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("--rounds", type=int, default=5, help="of each kind (default 5)")
    cli.add_argument("--messages", type=int, default=2000, help="in each profile")
    cli.add_argument("--dir", help="where the profiles are made (default: the temp folder)")
    options = cli.parse_args()
    figures = asyncio.run(main(options.rounds, options.messages, options.dir))
    print(json.dumps(figures))
