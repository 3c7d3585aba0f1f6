"""A hostile relay: a man in the middle between the CLIs and a real relay process.

It drops, duplicates, reorders, replays and flips bits of the frames the relay delivers.
The clients must report what they rejected, never crash, and show every message once; when
the man in the middle goes away, the outbox brings every lost message through.
"""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from collections.abc import Callable

import pytest

from relay import wire
from tests.e2e.conftest import (
    Listener,
    Profile,
    Relay,
    assert_exactly_once,
    incoming_bodies,
    pair,
)
from tests.e2e.injector import Injector

pytestmark = pytest.mark.timeout(240)


class HostileProxy(Injector):
    """The injecting relay, with mischief on the frames it forwards while `hostile` is on."""

    def __init__(self, upstream: str, seed: int = 7) -> None:
        self.hostile = False
        self.rng = random.Random(seed)
        self.done: Counter[str] = Counter()
        self.seen: list[bytes] = []
        super().__init__(upstream)

    def mangle(self, frame: bytes, held: list[bytes]) -> list[bytes]:
        """What the client gets instead of `frame` (plus a frame held back earlier)."""
        released, held[:] = list(held), []
        if not self.hostile:
            return [frame, *released]
        try:
            decoded = wire.decode(frame)
        except wire.ProtocolError:
            return [frame, *released]
        if not isinstance(decoded, wire.Deliver):
            return [frame, *released]
        self.seen.append(frame)
        roll = self.rng.random()
        if roll < 0.08:
            self.done["drop"] += 1
            out = []
        elif roll < 0.16:
            self.done["duplicate"] += 1
            out = [frame, frame]
        elif roll < 0.24:
            self.done["reorder"] += 1
            held.append(frame)
            out = []
        elif roll < 0.32:
            self.done["replay"] += 1
            out = [frame, self.rng.choice(self.seen)]
        elif roll < 0.40:
            self.done["flip"] += 1
            payload = bytearray(decoded.payload)
            payload[self.rng.randrange(len(payload))] ^= 1 << self.rng.randrange(8)
            out = [wire.encode(dataclasses.replace(decoded, payload=bytes(payload)))]
        elif roll < 0.43:
            self.done["flip_frame"] += 1
            raw = bytearray(frame)
            raw[self.rng.randrange(len(raw))] ^= 1 << self.rng.randrange(8)
            out = [bytes(raw)]
        else:
            out = [frame]
        return [*out, *released]


def shown(listener: Listener) -> list[str]:
    return [e["body"] for e in listener.incoming()]


def test_hostile_relay(relay: Relay, make_profile: Callable[..., Profile]) -> None:
    proxy = HostileProxy(relay.url)
    try:
        alice, bob = pair(make_profile, proxy.url)
        n = 40
        alice.queue("Bob", "a", 0, n)
        bob.queue("Alice", "b", 0, n)
        proxy.hostile = True
        alice_l, bob_l = alice.listen(), bob.listen()
        bob_l.wait_for(lambda ev: len([e for e in ev if e.get("direction") == "in"]) >= n // 2)
        alice_l.wait_for(lambda ev: len([e for e in ev if e.get("direction") == "in"]) >= n // 2)
        for listener in (alice_l, bob_l):
            assert listener.proc.poll() is None
            assert listener.stop() == 0
            listener.assert_clean()
        rejected = alice_l.of("rejected") + bob_l.of("rejected")
        assert rejected, proxy.done
        assert {"drop", "duplicate", "reorder", "replay", "flip"} <= set(proxy.done), proxy.done
        for listener in (alice_l, bob_l):  # never the same message twice
            bodies = shown(listener)
            assert len(bodies) == len(set(bodies))

        # the man in the middle goes away: the outboxes bring the rest through, once
        proxy.hostile = False
        alice_2, bob_2 = alice.listen(), bob.listen()
        expect_bob = [f"a{i}" for i in range(n)]
        expect_alice = [f"b{i}" for i in range(n)]
        bob_2.wait_for(lambda ev: set(shown(bob_l) + shown(bob_2)) >= set(expect_bob), 60)
        alice_2.wait_for(lambda ev: set(shown(alice_l) + shown(alice_2)) >= set(expect_alice), 60)
        for listener in (alice_2, bob_2):
            assert listener.stop() == 0
            listener.assert_clean()
        assert_exactly_once(shown(bob_l) + shown(bob_2), expect_bob)
        assert_exactly_once(shown(alice_l) + shown(alice_2), expect_alice)
        assert_exactly_once(incoming_bodies(bob, "Alice"), expect_bob)
        assert_exactly_once(incoming_bodies(alice, "Bob"), expect_alice)
    finally:
        proxy.close()
