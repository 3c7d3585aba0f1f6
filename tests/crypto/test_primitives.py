"""The primitive calls of docs/crypto.md against independent references: HKDF is RFC 5869
(an empty salt is 32 zero bytes), the chain KDF is HMAC-SHA256 with 0x02 / 0x01, the AEAD is
AES-256-GCM with a 12-byte zero nonce and a 16-byte tag, X25519 refuses low-order points."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from hypothesis import given
from hypothesis import strategies as st

from app.crypto.primitives import (
    KEY_SIZE,
    LABEL_ROOT,
    TAG_SIZE,
    X3DH_F,
    ZERO_NONCE,
    DHError,
    dh,
    hkdf,
    kdf_ck,
    kdf_rk,
    open_sealed,
    seal,
    sha256,
    x25519_public,
)

KEY = bytes(range(32))


def test_the_documented_sizes() -> None:
    assert (KEY_SIZE, TAG_SIZE) == (32, 16)
    assert ZERO_NONCE == b"\x00" * 12
    assert X3DH_F == b"\xff" * 32


def test_hkdf_rfc5869_case_2_long_inputs_three_blocks() -> None:
    okm = hkdf(bytes(range(0x50)), bytes(range(0x60, 0xB0)), bytes(range(0xB0, 0x100)), 82)
    assert okm.hex() == (
        "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c"
        "59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71"
        "cc30c58179ec3e87c14c01d5c1f3434f1d87"
    )


def test_hkdf_rfc5869_case_3_empty_salt_and_info() -> None:
    okm = hkdf(b"\x0b" * 22, b"", b"", 42)
    assert okm.hex() == (
        "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"
    )
    assert hkdf(b"\x0b" * 22, bytes(32), b"", 42) == okm  # "an empty salt means 32 zero bytes"


@given(
    ikm=st.binary(max_size=80),
    salt=st.binary(max_size=64),
    info=st.binary(max_size=40),
    length=st.integers(1, 200),
)
def test_hkdf_matches_the_cryptography_package(
    ikm: bytes, salt: bytes, info: bytes, length: int
) -> None:
    expected = HKDF(hashes.SHA256(), length, salt or None, info).derive(ikm)
    assert hkdf(ikm, salt, info, length) == expected


def test_hkdf_gives_up_to_255_blocks_as_rfc5869_allows_and_no_more() -> None:
    longest = hkdf(b"ikm", b"salt", b"info", 255 * 32)
    assert longest == HKDF(hashes.SHA256(), 255 * 32, b"salt", b"info").derive(b"ikm")
    with pytest.raises(ValueError):
        hkdf(b"ikm", b"salt", b"info", 255 * 32 + 1)


def test_root_kdf_is_hkdf_over_dh_then_kem_secret_split_32_32() -> None:
    rk, dh_out, kem = b"\x01" * 32, b"\x02" * 32, b"\x03" * 32
    out = hkdf(dh_out + kem, rk, b"anonchat/ratchet-root/v1", 64)
    assert LABEL_ROOT == b"anonchat/ratchet-root/v1"
    assert kdf_rk(rk, dh_out, kem) == (out[:32], out[32:])
    plain = hkdf(dh_out, rk, LABEL_ROOT, 64)
    assert kdf_rk(rk, dh_out) == (plain[:32], plain[32:])


def test_chain_kdf_is_hmac_with_02_then_01() -> None:
    assert kdf_ck(KEY) == (
        hmac.new(KEY, b"\x02", hashlib.sha256).digest(),
        hmac.new(KEY, b"\x01", hashlib.sha256).digest(),
    )


@pytest.mark.parametrize("size", [0, 1, 31, 33, 64])
def test_chain_kdf_refuses_any_chain_key_but_32_bytes(size: int) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        kdf_ck(bytes(size))


def test_seal_is_aes_gcm_with_the_zero_nonce_and_a_16_byte_tag() -> None:
    sealed = seal(KEY, b"plaintext", b"ad")
    assert sealed == AESGCM(KEY).encrypt(bytes(12), b"plaintext", b"ad")
    assert len(sealed) == len(b"plaintext") + 16
    assert open_sealed(KEY, sealed, b"ad") == b"plaintext"


def test_open_sealed_is_none_for_any_wrong_key_ad_or_byte() -> None:
    sealed = seal(KEY, b"plaintext", b"ad")
    assert open_sealed(bytes(32), sealed, b"ad") is None
    assert open_sealed(KEY, sealed, b"other ad") is None
    assert open_sealed(KEY, sealed[:-1] + bytes([sealed[-1] ^ 1]), b"ad") is None


def test_dh_agrees_and_refuses_low_order_points() -> None:
    a = X25519PrivateKey.from_private_bytes(b"\x11" * 32)
    b = X25519PrivateKey.from_private_bytes(b"\x22" * 32)
    assert dh(a, x25519_public(b)) == dh(b, x25519_public(a))
    for low_order in (bytes(32), b"\x01" + bytes(31)):
        with pytest.raises(DHError):
            dh(a, low_order)
    with pytest.raises(DHError):
        dh(a, bytes(31))


def test_sha256_hashes_the_concatenation() -> None:
    assert sha256(b"ab", b"", b"c") == hashlib.sha256(b"abc").digest()
