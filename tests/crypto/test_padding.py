"""Padding as docs/crypto.md states it: ``pt || 0x80 || 0x00...`` up to the bucket, buckets of
256, 512, ... 65536 bytes, then multiples of 65536; the marker takes one byte, so a message of
0 to 255 bytes always pads to 256."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.crypto.padding import bucket_size, pad, unpad

# Finding a bucket takes a few steps; a size search that never ends fails here in seconds
# instead of hanging the run.
pytestmark = pytest.mark.timeout(5)

# (plaintext length, padded length) at every kind of edge.
EDGES = [
    (0, 256),
    (1, 256),
    (255, 256),  # 255 + marker fills the first bucket
    (256, 512),
    (511, 512),
    (512, 1024),
    (1023, 1024),
    (32767, 32768),
    (32768, 65536),
    (65535, 65536),  # the last doubling bucket
    (65536, 131072),  # from here on, 64 KiB steps
    (65537, 131072),
    (131071, 131072),
    (131072, 196608),
    (196607, 196608),
    (196608, 262144),
    (262143, 262144),
    (262144, 327680),  # a step, not a doubling
]


@pytest.mark.parametrize(("length", "bucket"), EDGES)
def test_bucket_edges(length: int, bucket: int) -> None:
    assert bucket_size(length) == bucket
    padded = pad(b"\x07" * length)
    assert padded == b"\x07" * length + b"\x80" + bytes(bucket - length - 1)
    assert unpad(padded) == b"\x07" * length


@given(st.binary(max_size=2000))
def test_round_trip_and_the_marker(plaintext: bytes) -> None:
    padded = pad(plaintext)
    assert len(padded) == bucket_size(len(plaintext)) > len(plaintext)
    assert padded[len(plaintext)] == 0x80
    assert not any(padded[len(plaintext) + 1 :])
    assert unpad(padded) == plaintext


def test_a_plaintext_ending_in_the_marker_or_zeros_comes_back_whole() -> None:
    for plaintext in (b"\x80", b"\x00", b"a\x80\x00", bytes(255), b"\x80" * 255):
        assert unpad(pad(plaintext)) == plaintext


@pytest.mark.parametrize(
    "padded",
    [
        b"",
        bytes(256),  # no marker at all
        b"hi" + bytes(254),  # last non-zero byte is not 0x80
        b"hi\x81" + bytes(253),
        b"hi\x01" + bytes(253),
        b"hi\x80" + bytes(254),  # 257 bytes: not a bucket size
        b"hi\x80" + bytes(252),  # 255 bytes
        b"hi\x80" + bytes(509),  # 512 bytes, but 2 bytes of text belong in a 256-byte bucket
        b"x" * 255 + b"\x80" + bytes(256),  # 255 bytes belong in 256, not 512
        b"x" * 256 + b"\x80",  # 257 bytes for a 256-byte text: must be 512
        b"x" * 65535 + b"\x80" + bytes(65536),  # 65535 bytes belong in 65536
    ],
)
def test_malformed_padding_is_none(padded: bytes) -> None:
    assert unpad(padded) is None


def test_the_bucket_is_the_smallest_that_fits_text_and_marker() -> None:
    assert unpad(b"x" * 254 + b"\x80" + b"\x00") == b"x" * 254
    assert unpad(b"x" * 256 + b"\x80" + bytes(255)) == b"x" * 256
    assert unpad(b"x" * 254 + b"\x80" + bytes(257)) is None
