"""Safety numbers and the verification QR payload (Signal's numeric fingerprint, v0).

Each side's fingerprint is 5200 rounds of SHA-512 over its identity keys; the displayed number
is both halves sorted, so it reads the same on both screens.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from app.crypto.codec import Reader, Writer
from app.crypto.errors import VerificationError
from app.crypto.identity import PublicIdentity

ITERATIONS = 5200
FINGERPRINT_VERSION = b"\x00\x00"
VERIFY_PREFIX = "anonchat-verify:"
VERIFY_VERSION = 1
_HALF = 32


def fingerprint(identity: PublicIdentity) -> bytes:
    """Signal's iterated hash: H0 = SHA512(0x0000 || K), Hi = SHA512(Hi-1 || K), K = sign||dh."""
    key = identity.to_bytes()
    digest = hashlib.sha512(FINGERPRINT_VERSION + key).digest()
    for _ in range(ITERATIONS):
        digest = hashlib.sha512(digest + key).digest()
    return digest


def _digits(fp: bytes) -> str:
    """30 digits: six 5-byte big-endian chunks, each mod 100000."""
    return "".join(f"{int.from_bytes(fp[i : i + 5], 'big') % 100000:05d}" for i in range(0, 30, 5))


def safety_number(ours: PublicIdentity, theirs: PublicIdentity) -> str:
    """The 60-digit number, identical on both sides (halves sorted)."""
    return "".join(sorted((_digits(fingerprint(ours)), _digits(fingerprint(theirs)))))


def format_safety_number(number: str) -> str:
    """12 groups of 5 digits separated by spaces, for display."""
    return " ".join(number[i : i + 5] for i in range(0, len(number), 5))


def verification_payload(ours: PublicIdentity, theirs: PublicIdentity) -> str:
    """What my QR shows: my fingerprint then the one I hold for you, 32 bytes each."""
    record = (
        Writer()
        .u8(VERIFY_VERSION)
        .raw(fingerprint(ours)[:_HALF])
        .raw(fingerprint(theirs)[:_HALF])
        .bytes()
    )
    return VERIFY_PREFIX + base64.b32encode(record).decode("ascii").rstrip("=")


def check_verification(payload: str, ours: PublicIdentity, theirs: PublicIdentity) -> bool:
    """True when the peer's scanned payload shows the same two keys we hold (constant time).

    Raises `VerificationError` only when the payload is not a verification payload at all.
    """
    text = "".join(payload.split()) if isinstance(payload, str) else ""
    if text[: len(VERIFY_PREFIX)].lower() != VERIFY_PREFIX:
        raise VerificationError("not a verification code")
    body = text[len(VERIFY_PREFIX) :].upper()
    try:
        data = base64.b32decode(body + "=" * (-len(body) % 8))
    except (binascii.Error, ValueError):
        raise VerificationError("invalid characters") from None
    if base64.b32encode(data).decode("ascii").rstrip("=") != body:
        raise VerificationError("not a canonical encoding")
    reader = Reader(data, VerificationError)
    if reader.u8() != VERIFY_VERSION:
        raise VerificationError("unknown verification version")
    their_claim, our_claim = reader.raw(_HALF), reader.raw(_HALF)
    reader.end()
    expected = fingerprint(theirs)[:_HALF] + fingerprint(ours)[:_HALF]
    return hmac.compare_digest(their_claim + our_claim, expected)
