"""A profile's long-term identity: an Ed25519 signing key and an X25519 agreement key.

Two keys rather than one converted key so each is used only for what it was designed for; the
safety number and the card commit to both.
"""

from __future__ import annotations

from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from app.crypto.codec import Reader, Writer
from app.crypto.errors import LocalStateError
from app.crypto.primitives import DEFAULT_RNG, KEY_SIZE, Rng, x25519_public

IDENTITY_VERSION = 1


@dataclass(frozen=True, slots=True)
class PublicIdentity:
    """The public half: what a card carries and a safety number commits to."""

    sign: bytes
    dh: bytes

    def __post_init__(self) -> None:
        if len(self.sign) != KEY_SIZE or len(self.dh) != KEY_SIZE:
            raise ValueError("identity public keys are 32 bytes each")

    def to_bytes(self) -> bytes:
        """sign || dh, 64 bytes: the encoding used in AD, fingerprints and handshakes."""
        return self.sign + self.dh

    def verify(self, signature: bytes, data: bytes) -> bool:
        """Ed25519 verification with the identity key; False rather than raising."""
        return verify_ed25519(self.sign, signature, data)


def verify_ed25519(public: bytes, signature: bytes, data: bytes) -> bool:
    """Ed25519 verification of raw bytes; any malformed input is simply False."""
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, data)
    except (InvalidSignature, ValueError):
        return False
    return True


class Identity:
    """The private identity. Immutable; serialise with `to_bytes` to store it."""

    __slots__ = ("_dh", "_public", "_sign")

    def __init__(self, sign: Ed25519PrivateKey, dh: X25519PrivateKey) -> None:
        self._sign = sign
        self._dh = dh
        self._public = PublicIdentity(sign.public_key().public_bytes_raw(), x25519_public(dh))

    @classmethod
    def generate(cls, rng: Rng = DEFAULT_RNG) -> Identity:
        return cls.from_seeds(rng(KEY_SIZE), rng(KEY_SIZE))

    @classmethod
    def from_seeds(cls, sign_seed: bytes, dh_seed: bytes) -> Identity:
        """Deterministic construction, for restoring and for fixed test vectors."""
        return cls(
            Ed25519PrivateKey.from_private_bytes(sign_seed),
            X25519PrivateKey.from_private_bytes(dh_seed),
        )

    @property
    def public(self) -> PublicIdentity:
        return self._public

    @property
    def dh_key(self) -> X25519PrivateKey:
        return self._dh

    def sign(self, data: bytes) -> bytes:
        return self._sign.sign(data)

    def to_bytes(self) -> bytes:
        """version(1) || Ed25519 seed(32) || X25519 private(32)."""
        return (
            Writer()
            .u8(IDENTITY_VERSION)
            .raw(self._sign.private_bytes_raw())
            .raw(self._dh.private_bytes_raw())
            .bytes()
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Identity:
        reader = Reader(data, LocalStateError)
        if reader.u8() != IDENTITY_VERSION:
            raise LocalStateError("unknown identity version")
        sign_seed, dh_seed = reader.raw(KEY_SIZE), reader.raw(KEY_SIZE)
        reader.end()
        return cls.from_seeds(sign_seed, dh_seed)

    def __repr__(self) -> str:
        return "Identity(<private>)"
