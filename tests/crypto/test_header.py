"""The two wire frames byte by byte, as docs/crypto.md draws them.

Frames here are built by hand from the documented layouts (never with the encoder under
test), so a changed constant, offset or flag shows up as a difference from the document.
Message frame: ``version=1 || type=1 || flags(1) || DH(32) || PN(4) || N(4) || [KEM public
key(1184)] || [KEM signature(64)] || [KEM ciphertext(1088)] || AES-GCM ciphertext(>= 16)``;
first frame: ``version=1 || type=2 || EK(32) || sealed_len(4) || sealed || ratchet message``.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.crypto.errors import MalformedMessage
from app.crypto.header import (
    TYPE_INIT,
    TYPE_MESSAGE,
    encode_header,
    frame_type,
    init_prefix,
    split_init,
    split_message,
)

DH = bytes(range(1, 33))  # no byte is 0, 1 or 2, so an off-by-one offset reads a wrong byte
PK = bytes([0xA1]) * 1184
SIG = bytes([0xB2]) * 64
CT = bytes([0xC3]) * 1088
TAG = bytes([0xD4]) * 16
EK = bytes(range(100, 132))

# The documented sizes, by flag bit.
FIELDS = {0x01: PK, 0x02: SIG, 0x04: CT}


def _fixed(flags: int, pn: int = 7, n: int = 9) -> bytes:
    """The 43 bytes every message frame starts with, straight from the table."""
    return bytes([1, 1, flags]) + DH + pn.to_bytes(4, "big") + n.to_bytes(4, "big")


def _kem_fields(flags: int) -> bytes:
    return b"".join(FIELDS[bit] for bit in (0x01, 0x02, 0x04) if flags & bit)


# Every combination the format allows: a signature only ever with a public key.
VALID_FLAGS = [0x00, 0x01, 0x03, 0x04, 0x05, 0x07]


def test_the_fixed_part_is_43_bytes_big_endian() -> None:
    assert encode_header(DH, 0x01020304, 0x0A0B0C0D, b"", b"", b"") == (
        b"\x01\x01\x00" + DH + b"\x01\x02\x03\x04" + b"\x0a\x0b\x0c\x0d"
    )


@pytest.mark.parametrize("flags", VALID_FLAGS)
def test_encode_header_sets_one_flag_bit_per_kem_field_in_order(flags: int) -> None:
    kem_pk, kem_sig, kem_ct = (FIELDS[bit] if flags & bit else b"" for bit in (1, 2, 4))
    encoded = encode_header(DH, 7, 9, kem_pk, kem_sig, kem_ct)
    assert encoded == _fixed(flags) + _kem_fields(flags)


@pytest.mark.parametrize("flags", VALID_FLAGS)
def test_split_message_reads_every_documented_field(flags: int) -> None:
    head = _fixed(flags, pn=0x01020304, n=0xFFFFFFFF) + _kem_fields(flags)
    header, ciphertext = split_message(head + TAG + b"body")
    assert header.dh == DH
    assert (header.pn, header.n) == (0x01020304, 0xFFFFFFFF)
    assert header.kem_pk == (PK if flags & 0x01 else b"")
    assert header.kem_sig == (SIG if flags & 0x02 else b"")
    assert header.kem_ct == (CT if flags & 0x04 else b"")
    assert header.raw == head  # exactly what is authenticated as associated data
    assert ciphertext == TAG + b"body"


@given(
    dh=st.binary(min_size=32, max_size=32),
    pn=st.integers(0, 2**32 - 1),
    n=st.integers(0, 2**32 - 1),
    flags=st.sampled_from(VALID_FLAGS),
    ciphertext=st.binary(min_size=16, max_size=64),
)
def test_encode_then_split_gives_back_every_field(
    dh: bytes, pn: int, n: int, flags: int, ciphertext: bytes
) -> None:
    kem_pk, kem_sig, kem_ct = (FIELDS[bit] if flags & bit else b"" for bit in (1, 2, 4))
    raw = encode_header(dh, pn, n, kem_pk, kem_sig, kem_ct)
    header, rest = split_message(raw + ciphertext)
    assert header == (dh, pn, n, kem_pk, kem_sig, kem_ct, raw)
    assert rest == ciphertext


def test_a_message_frame_needs_the_header_and_a_whole_tag() -> None:
    frame = _fixed(0) + TAG  # 43 + 16 = 59 bytes: the shortest message frame
    assert len(frame) == 59
    assert split_message(frame)[1] == TAG
    for cut in range(59):
        with pytest.raises(MalformedMessage, match=r"^not a message frame$"):
            split_message(frame[:cut])


@pytest.mark.parametrize("prefix", [b"\x00\x01", b"\x02\x01", b"\x01\x00", b"\x01\x02"])
def test_a_message_frame_starts_with_version_1_type_1(prefix: bytes) -> None:
    with pytest.raises(MalformedMessage, match=r"^not a message frame$"):
        split_message(prefix + _fixed(0)[2:] + TAG)


@pytest.mark.parametrize("flags", [0x08, 0x10, 0x80, 0x09, 0xFF])
def test_unknown_flag_bits_are_refused(flags: int) -> None:
    with pytest.raises(MalformedMessage, match=r"^unknown header flags$"):
        split_message(_fixed(flags) + _kem_fields(flags & 0x07) + TAG)


@pytest.mark.parametrize("flags", [0x02, 0x06])
def test_a_kem_signature_without_a_kem_public_key_is_refused(flags: int) -> None:
    with pytest.raises(MalformedMessage, match=r"^unknown header flags$"):
        split_message(_fixed(flags) + _kem_fields(flags) + TAG)


@pytest.mark.parametrize("flags", [0x01, 0x03, 0x04, 0x07])
def test_every_truncation_of_a_kem_bearing_frame_is_refused(flags: int) -> None:
    frame = _fixed(flags) + _kem_fields(flags) + TAG
    split_message(frame)  # whole, it parses
    for cut in range(59, len(frame)):
        with pytest.raises(MalformedMessage, match=r"^truncated$"):
            split_message(frame[:cut])


def test_init_prefix_is_version_type_ephemeral_length_sealed() -> None:
    sealed = b"sealed introduction"
    assert init_prefix(EK, sealed) == b"\x01\x02" + EK + b"\x00\x00\x00\x13" + sealed
    assert init_prefix(EK, b"") == b"\x01\x02" + EK + bytes(4)


def test_split_init_reads_ephemeral_sealed_and_message() -> None:
    sealed, message = bytes([0x5A]) * 300, b"ratchet message"
    frame = b"\x01\x02" + EK + struct.pack(">I", 300) + sealed + message
    parsed = split_init(frame)
    assert (parsed.ephemeral, parsed.sealed, parsed.message) == (EK, sealed, message)


def test_an_init_frame_is_at_least_38_bytes() -> None:
    frame = b"\x01\x02" + EK + bytes(4)  # 2 + 32 + 4: an empty introduction, no message
    assert len(frame) == 38
    parsed = split_init(frame)
    assert (parsed.ephemeral, parsed.sealed, parsed.message) == (EK, b"", b"")
    for cut in range(38):
        with pytest.raises(MalformedMessage, match=r"^not an init frame$"):
            split_init(frame[:cut])


def test_a_sealed_length_past_the_end_is_truncated() -> None:
    sealed = b"0123456789"
    exact = b"\x01\x02" + EK + struct.pack(">I", len(sealed)) + sealed
    assert split_init(exact).sealed == sealed
    assert split_init(exact).message == b""
    for size in (len(sealed) + 1, 2**32 - 1):
        with pytest.raises(MalformedMessage, match=r"^truncated$"):
            split_init(b"\x01\x02" + EK + struct.pack(">I", size) + sealed)


@pytest.mark.parametrize("prefix", [b"\x00\x02", b"\x02\x02", b"\x01\x01", b"\x01\x03"])
def test_an_init_frame_starts_with_version_1_type_2(prefix: bytes) -> None:
    with pytest.raises(MalformedMessage, match=r"^not an init frame$"):
        split_init(prefix + EK + bytes(4) + b"message")


def test_frame_type_reads_the_second_byte_after_version_1() -> None:
    assert (TYPE_MESSAGE, TYPE_INIT) == (1, 2)
    assert frame_type(b"\x01\x01") == 1
    assert frame_type(b"\x01\x02") == 2
    assert frame_type(b"\x01\x01" + DH) == 1
    assert frame_type(b"\x01\x02" + EK) == 2


@pytest.mark.parametrize(
    "frame", [b"", b"\x01", b"\x00\x01", b"\x02\x02", b"\x01\x00", b"\x01\x03", b"\x02\x01\x01"]
)
def test_frame_type_refuses_short_frames_and_other_versions_or_types(frame: bytes) -> None:
    with pytest.raises(MalformedMessage, match=r"^unknown frame version or type$"):
        frame_type(frame)
