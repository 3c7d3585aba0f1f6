"""The key header beside the database, byte for byte as docs/crypto.md draws it, and the
bounds a header may ask for (a damaged or hostile one must not make us allocate 64 GiB).
Version 2 headers are built here by hand too: they are still read."""

from __future__ import annotations

import dataclasses
import hashlib
import struct

import pytest

from app.crypto.duress import random_field
from app.crypto.passphrase import (
    DEFAULT_PARAMS,
    INSECURE_FAST_PARAMS,
    MAGIC,
    MAGIC_V1,
    MAGIC_V2,
    DuressField,
    HeaderError,
    KdfParams,
    KeyHeader,
    KeySlot,
    PageHmac,
    PassphraseError,
    decode_header,
    derive_key,
    encode_header,
    new_slot,
    normalize,
)

FAST = KdfParams(memory_kib=64, iterations=1, lanes=1)


def documented(
    magic: bytes,
    hmac_byte: bytes,
    slots: list[tuple[int, int, int, bytes]],
    duress: bytes = b"",
) -> bytes:
    """ "ANCKDF03" || page HMAC(1) || slot count(1) || slots || duress field || SHA-256 of
    everything before, each slot algorithm(1: 1 Argon2id) || memory KiB(4) || passes(4) ||
    lanes(1) || salt length(1) || salt, integers big-endian ("ANCKDF02": no duress field)."""
    body = magic + hmac_byte + bytes([len(slots)])
    for memory, passes, lanes, salt in slots:
        body += struct.pack(">BIIB", 1, memory, passes, lanes) + bytes([len(salt)]) + salt
    return body + duress + hashlib.sha256(body + duress).digest()


def duress_bytes(memory: int, passes: int, lanes: int, fill: int = 0x44) -> bytes:
    """The duress field: algorithm(1) || memory KiB(4) || passes(4) || lanes(1) || salt(16)
    || verifier(32) || sealed(1552)."""
    return struct.pack(">BIIB", 1, memory, passes, lanes) + bytes([fill]) * (16 + 32 + 1552)


def _field(memory: int, passes: int, lanes: int, fill: int = 0x44) -> DuressField:
    return DuressField(
        KdfParams(memory, passes, lanes),
        bytes([fill]) * 16,
        bytes([fill]) * 32,
        bytes([fill]) * 1552,
    )


def test_the_header_is_written_in_its_documented_layout() -> None:
    one = KeySlot(KdfParams(262144, 4, 4), b"s" * 16)
    two = KeySlot(KdfParams(65536, 3, 2), b"t" * 64)
    field = _field(262144, 4, 4)
    assert encode_header(KeyHeader((one,), duress=field)) == documented(
        MAGIC, b"\x02", [(262144, 4, 4, b"s" * 16)], duress_bytes(262144, 4, 4)
    )
    assert encode_header(KeyHeader((one, two), PageHmac.SHA512, field)) == documented(
        MAGIC,
        b"\x01",
        [(262144, 4, 4, b"s" * 16), (65536, 3, 2, b"t" * 64)],
        duress_bytes(262144, 4, 4),
    )
    assert (MAGIC, MAGIC_V2) == (b"ANCKDF03", b"ANCKDF02")
    assert (PageHmac.SHA512, PageHmac.SHA256) == (1, 2)


def test_a_header_is_never_written_without_its_duress_field() -> None:
    with pytest.raises(HeaderError, match="duress field"):
        encode_header(KeyHeader((KeySlot(FAST, b"s" * 16),)))


def test_a_version_2_header_reads_as_one_without_a_duress_field() -> None:
    raw = documented(MAGIC_V2, b"\x02", [(64, 1, 1, b"v" * 16)])
    assert decode_header(raw) == KeyHeader((KeySlot(FAST, b"v" * 16),), PageHmac.SHA256, None)


def test_a_version_1_header_has_no_hmac_byte_and_means_sha512() -> None:
    body = MAGIC_V1 + bytes([1]) + struct.pack(">BIIB", 1, 64, 1, 1) + bytes([16]) + b"v" * 16
    header = decode_header(body + hashlib.sha256(body).digest())
    assert header == KeyHeader((KeySlot(FAST, b"v" * 16),), PageHmac.SHA512)
    assert MAGIC_V1 == b"ANCKDF01"


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (documented(MAGIC, b"\x02", [(64, 1, 1, b"s" * 16)])[:40], "not a key header"),
        (b"ANCKDF04" + bytes(40), "not a key header"),
        (documented(MAGIC, b"\x02", [(64, 1, 1, b"s" * 16)]), "truncated"),  # no duress field
        (documented(MAGIC, b"\x03", [(64, 1, 1, b"s" * 16)]), "page HMAC"),
        (documented(MAGIC, b"\x00", [(64, 1, 1, b"s" * 16)]), "page HMAC"),
        (documented(MAGIC, b"\x02", [(64, 1, 1, b"s" * 16)])[:-1] + b"\x00", "checksum"),
    ],
)
def test_what_is_not_a_header_says_so(raw: bytes, why: str) -> None:
    with pytest.raises(HeaderError, match=why):
        decode_header(raw)


def _resealed(body: bytes) -> bytes:
    return body + hashlib.sha256(body).digest()


def test_every_structural_defect_is_its_own_header_error() -> None:
    good = documented(MAGIC_V2, b"\x02", [(64, 1, 1, b"s" * 16)])[:-32]
    with pytest.raises(HeaderError, match="unknown key derivation algorithm"):
        decode_header(_resealed(good[:10] + b"\x02" + good[11:]))
    with pytest.raises(HeaderError, match="trailing bytes"):
        decode_header(_resealed(good + b"\x00"))
    with pytest.raises(HeaderError, match="truncated"):
        decode_header(_resealed(good[:-1]))  # the salt is one byte short
    with pytest.raises(HeaderError, match="truncated"):
        decode_header(_resealed(good[:15]))  # inside the slot's fixed part
    with pytest.raises(HeaderError, match="truncated"):
        decode_header(_resealed(MAGIC + b"\x02"))  # no slot count
    with pytest.raises(HeaderError, match="one or two"):
        decode_header(_resealed(MAGIC + b"\x02\x00" + duress_bytes(64, 1, 1)))
    three = documented(MAGIC, b"\x02", [(64, 1, 1, b"s" * 16)] * 3, duress_bytes(64, 1, 1))
    with pytest.raises(HeaderError, match="one or two"):
        decode_header(three)
    v3 = documented(MAGIC, b"\x02", [(64, 1, 1, b"s" * 16)], duress_bytes(64, 1, 1))[:-32]
    with pytest.raises(HeaderError, match="truncated"):
        decode_header(_resealed(v3[:-1]))  # the sealed part one byte short
    with pytest.raises(HeaderError, match="trailing bytes"):
        decode_header(_resealed(v3 + b"\x00"))
    at = len(v3) - (10 + 16 + 32 + 1552)  # the duress field's algorithm byte
    with pytest.raises(HeaderError, match="unknown key derivation algorithm"):
        decode_header(_resealed(v3[:at] + b"\x02" + v3[at + 1 :]))
    with pytest.raises(HeaderError, match="out of range"):  # its parameters are bounded too
        decode_header(_resealed(v3[:at] + struct.pack(">BIIB", 1, 64, 65, 1) + v3[at + 10 :]))


@pytest.mark.parametrize(
    ("memory", "iterations", "lanes", "ok"),
    [
        (8, 1, 1, True),
        (7, 1, 1, False),
        (8 * 64, 1, 64, True),
        (8 * 64 - 1, 1, 64, False),
        (4 * 1024 * 1024, 1, 1, True),
        (4 * 1024 * 1024 + 1, 1, 1, False),
        (64, 64, 1, True),
        (64, 65, 1, False),
        (64, 0, 1, False),
        (1024, 1, 65, False),
        (1024, 1, 0, False),
    ],
)
def test_argon2id_bounds(memory: int, iterations: int, lanes: int, ok: bool) -> None:
    if ok:
        params = KdfParams(memory, iterations, lanes)
        raw = encode_header(KeyHeader((KeySlot(params, b"s" * 16),), duress=random_field(params)))
        assert decode_header(raw).slots[0].params == params
        return
    with pytest.raises(HeaderError, match="out of range"):
        KdfParams(memory, iterations, lanes)
    with pytest.raises(HeaderError, match="out of range"):
        decode_header(documented(MAGIC_V2, b"\x02", [(memory, iterations, lanes, b"s" * 16)]))


@pytest.mark.parametrize(("size", "ok"), [(15, False), (16, True), (64, True), (65, False)])
def test_salts_are_16_to_64_bytes(size: int, ok: bool) -> None:
    raw = documented(MAGIC_V2, b"\x02", [(64, 1, 1, b"s" * size)])
    if ok:
        assert decode_header(raw).slots[0].salt == b"s" * size
    else:
        with pytest.raises(HeaderError, match="salt"):
            decode_header(raw)


def test_header_values_are_frozen() -> None:
    slot = KeySlot(FAST, b"s" * 16)
    for value, name in ((FAST, "lanes"), (slot, "salt"), (KeyHeader((slot,)), "slots")):
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(value, name, None)


def test_every_parameter_goes_into_the_key() -> None:
    salt = b"s" * 16
    base = derive_key("passphrase", KeySlot(KdfParams(64, 1, 1), salt))
    for params in (KdfParams(72, 1, 1), KdfParams(64, 2, 1), KdfParams(64, 1, 2)):
        assert derive_key("passphrase", KeySlot(params, salt)) != base
    assert normalize("A\u030a") == "\u00c5".encode()
    with pytest.raises(PassphraseError):
        normalize("")


def test_a_slot_cut_right_after_its_fixed_part_is_truncated_not_a_crash() -> None:
    good = documented(MAGIC_V2, b"\x02", [(64, 1, 1, b"s" * 16)])[:-32]
    with pytest.raises(HeaderError, match="truncated"):
        decode_header(_resealed(good[:20]))  # magic, HMAC, count, 10 bytes of slot: no salt length
    no_salt = good[:20] + b"\x00"  # a salt length of 0, and nothing after it
    with pytest.raises(HeaderError, match="salt length out of range"):
        decode_header(_resealed(no_salt))


def test_the_documented_defaults() -> None:
    """docs/crypto.md: a 16-byte random salt, 256 MiB, 4 passes, 4 lanes."""
    assert new_slot(DEFAULT_PARAMS).params == KdfParams(256 * 1024, 4, 4)
    assert len(new_slot(DEFAULT_PARAMS).salt) == 16
    assert KdfParams(64, 1, 1) == INSECURE_FAST_PARAMS  # what tests use: fast and weak
