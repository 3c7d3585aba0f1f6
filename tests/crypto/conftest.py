"""Deterministic randomness and a ready-made contact pair for the crypto tests."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pytest

from app.crypto.card import Card
from app.crypto.handshake import Invitation, initiate
from app.crypto.identity import Identity
from app.crypto.mailbox import MailboxKey
from app.crypto.ratchet import Session


class DetRng:
    """SHA-256 in counter mode over a seed: the same seed gives the same bytes."""

    def __init__(self, seed: bytes) -> None:
        self.seed = seed
        self.counter = 0

    def __call__(self, size: int) -> bytes:
        out = b""
        while len(out) < size:
            out += hashlib.sha256(self.seed + self.counter.to_bytes(8, "big")).digest()
            self.counter += 1
        return out[:size]


@dataclass
class Pair:
    alice: Identity
    bob: Identity
    invitation: Invitation
    card: Card
    a: Session
    b: Session
    first_frame: bytes
    rng: DetRng


def make_pair(seed: bytes = b"pair", reply: bool = True) -> Pair:
    """Alice scanned Bob's card and sent b'hello'; with `reply`, Bob answered b'welcome'."""
    rng = DetRng(seed)
    alice, bob = Identity.generate(rng), Identity.generate(rng)
    invitation = Invitation.generate(rng)
    card = invitation.card(bob, "ws://127.0.0.1:8765", "Bob")
    a = initiate(alice, card, name="Alice", reply_mailbox=MailboxKey.generate(rng).id, rng=rng)
    a, first = a.encrypt(b"hello", rng=rng)
    accepted = invitation.accept(bob, first, rng=rng)
    b = accepted.session
    if reply:
        b, frame = b.encrypt(b"welcome", rng=rng)
        a, text = a.decrypt(frame)
        assert text == b"welcome"
    return Pair(alice, bob, accepted.invitation, card, a, b, first, rng)


@pytest.fixture
def pair() -> Pair:
    return make_pair()
