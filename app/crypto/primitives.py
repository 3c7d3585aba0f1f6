"""The few primitive calls everything else is made of, with their domain-separation labels.

Kept in one place so docs/crypto.md, the fixed test vectors and the benchmark floor all see the
same HKDF, HMAC, AEAD and X25519 calls. HKDF is RFC 5869 on the stdlib's HMAC-SHA256 because
the ratchet calls it every turn and the C `hmac.digest` is several times cheaper per call.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

Rng = Callable[[int], bytes]
"""Randomness source: returns n fresh bytes. Tests pass a deterministic one."""

DEFAULT_RNG: Rng = os.urandom

KEY_SIZE = 32
TAG_SIZE = 16
ZERO_NONCE = bytes(12)

# Domain-separation labels (HKDF info strings and signature contexts); see docs/crypto.md.
LABEL_X3DH = b"anonchat/x3dh/v1"
LABEL_X3DH_SEAL = b"anonchat/x3dh-seal/v1"
LABEL_ROOT = b"anonchat/ratchet-root/v1"
LABEL_KEM_SIG = b"anonchat/kem-prekey/v1\x00"
LABEL_AD = b"anonchat/ad/v1\x00"
LABEL_REPLAY = b"anonchat/replay/v1\x00"
LABEL_CARD_CHECK = b"anonchat/card-check/v1\x00"

CHAIN_MESSAGE = b"\x01"
CHAIN_NEXT = b"\x02"
X3DH_F = b"\xff" * 32


class DHError(ValueError):
    """A Diffie-Hellman output was all zeros: the peer sent a low-order point."""


def hkdf(ikm: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    """RFC 5869 HKDF-SHA256 (extract then expand)."""
    prk = hmac.digest(salt or bytes(KEY_SIZE), ikm, "sha256")
    out = b""
    block = b""
    counter = 1
    while len(out) < length:
        block = hmac.digest(prk, block + info + bytes((counter,)), "sha256")
        out += block
        counter += 1
    return out[:length]


def kdf_rk(root_key: bytes, dh_out: bytes, kem_secret: bytes = b"") -> tuple[bytes, bytes]:
    """Root KDF: HKDF(salt=RK, ikm=DH output || ML-KEM secret) -> (new RK, chain key)."""
    out = hkdf(dh_out + kem_secret, root_key, LABEL_ROOT, 64)
    return out[:32], out[32:]


def kdf_ck(chain_key: bytes) -> tuple[bytes, bytes]:
    """Chain KDF (Signal's recommendation): -> (next chain key, message key).

    Refuses anything but a 32-byte key: an empty or short chain key is public knowledge, and
    a message key derived from it would authenticate anyone's frame."""
    if len(chain_key) != KEY_SIZE:
        raise ValueError("a chain key is 32 bytes")
    return (
        hmac.digest(chain_key, CHAIN_NEXT, "sha256"),
        hmac.digest(chain_key, CHAIN_MESSAGE, "sha256"),
    )


def seal(key: bytes, plaintext: bytes, ad: bytes) -> bytes:
    """AES-256-GCM under a key used exactly once, so a constant nonce is safe (spec 5.2)."""
    return AESGCM(key).encrypt(ZERO_NONCE, plaintext, ad)


def open_sealed(key: bytes, ciphertext: bytes, ad: bytes) -> bytes | None:
    """Inverse of `seal`; None when the tag does not verify."""
    try:
        return AESGCM(key).decrypt(ZERO_NONCE, ciphertext, ad)
    except InvalidTag:
        return None


def x25519_from_rng(rng: Rng) -> X25519PrivateKey:
    """A fresh X25519 key from the injectable RNG (clamping is done by the library)."""
    return X25519PrivateKey.from_private_bytes(rng(KEY_SIZE))


def x25519_public(key: X25519PrivateKey) -> bytes:
    return key.public_key().public_bytes_raw()


def dh(private: X25519PrivateKey, public: bytes) -> bytes:
    """X25519 with the peer's raw public key; rejects low-order points with `DHError`."""
    try:
        return private.exchange(X25519PublicKey.from_public_bytes(public))
    except ValueError as exc:
        raise DHError("invalid X25519 public key") from exc


def sha256(*parts: bytes) -> bytes:
    return hashlib.sha256(b"".join(parts)).digest()
