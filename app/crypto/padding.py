"""Bucketed padding so a ciphertext's length says little about its plaintext's.

ISO/IEC 7816-4 style: a 0x80 marker then zeros up to the bucket, so removal is unambiguous.
Buckets double from 256 bytes to 64 KiB, then grow in 64 KiB steps.
"""

from __future__ import annotations

MIN_BUCKET = 256
STEP_BUCKET = 65536


def bucket_size(length: int) -> int:
    """The padded size for `length` plaintext bytes (the marker needs one byte)."""
    need = length + 1
    if need > STEP_BUCKET:
        return -(-need // STEP_BUCKET) * STEP_BUCKET
    size = MIN_BUCKET
    while size < need:
        size <<= 1
    return size


def pad(plaintext: bytes) -> bytes:
    return plaintext + b"\x80" + bytes(bucket_size(len(plaintext)) - len(plaintext) - 1)


def unpad(padded: bytes) -> bytes | None:
    """The plaintext, or None when the padding is malformed."""
    stripped = padded.rstrip(b"\x00")
    if not stripped or stripped[-1] != 0x80 or len(padded) != bucket_size(len(stripped) - 1):
        return None
    return stripped[:-1]
