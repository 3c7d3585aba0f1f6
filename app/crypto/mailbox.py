"""Mailbox keys: the relay routes by the hash of a mailbox public key, never by identity.

The signed bytes and the id come from relay.wire so the relay and the app cannot disagree.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.crypto.codec import Reader, Writer
from app.crypto.errors import LocalStateError
from app.crypto.primitives import DEFAULT_RNG, KEY_SIZE, Rng
from relay.wire import mailbox_id, subscribe_signed_bytes

MAILBOX_KEY_VERSION = 1


class MailboxKey:
    """An Ed25519 mailbox key pair; `id` is what the relay and the peer see."""

    __slots__ = ("_id", "_key", "_public")

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self._public = key.public_key().public_bytes_raw()
        self._id = mailbox_id(self._public)

    @classmethod
    def generate(cls, rng: Rng = DEFAULT_RNG) -> MailboxKey:
        return cls(Ed25519PrivateKey.from_private_bytes(rng(KEY_SIZE)))

    @property
    def public(self) -> bytes:
        return self._public

    @property
    def id(self) -> bytes:
        return self._id

    def sign_subscribe(self, challenge: bytes) -> bytes:
        """The 64-byte signature the relay's subscribe frame carries for this challenge."""
        return self._key.sign(subscribe_signed_bytes(challenge, self._id))

    def to_bytes(self) -> bytes:
        """version(1) || Ed25519 seed(32)."""
        return Writer().u8(MAILBOX_KEY_VERSION).raw(self._key.private_bytes_raw()).bytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> MailboxKey:
        reader = Reader(data, LocalStateError)
        if reader.u8() != MAILBOX_KEY_VERSION:
            raise LocalStateError("unknown mailbox key version")
        seed = reader.raw(KEY_SIZE)
        reader.end()
        return cls(Ed25519PrivateKey.from_private_bytes(seed))

    def __repr__(self) -> str:
        return "MailboxKey(<private>)"
