"""The key header format and the Argon2id derivation."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.crypto.duress import random_field
from app.crypto.passphrase import (
    DEFAULT_PARAMS,
    INSECURE_FAST_PARAMS,
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
)

FAST = INSECURE_FAST_PARAMS
params = st.builds(
    KdfParams,
    memory_kib=st.integers(512, 4 * 1024 * 1024),
    iterations=st.integers(1, 64),
    lanes=st.integers(1, 64),
)
slots = st.builds(KeySlot, params=params, salt=st.binary(min_size=16, max_size=64))
duress_fields = st.builds(
    DuressField,
    params=params,
    salt=st.binary(min_size=16, max_size=16),
    verifier=st.binary(min_size=32, max_size=32),
    sealed=st.binary(min_size=1552, max_size=1552),
)
headers = st.builds(
    KeyHeader,
    slots=st.lists(slots, min_size=1, max_size=2).map(tuple),
    page_hmac=st.sampled_from(PageHmac),
    duress=duress_fields,
)


@given(headers)
def test_header_round_trip(header: KeyHeader) -> None:
    assert decode_header(encode_header(header)) == header


@given(headers, st.data())
def test_any_damage_is_one_header_error(header: KeyHeader, data: st.DataObject) -> None:
    raw = bytearray(encode_header(header))
    i = data.draw(st.integers(0, len(raw) - 1))
    raw[i] ^= data.draw(st.integers(1, 255))
    with pytest.raises(HeaderError):
        decode_header(bytes(raw))


@given(st.binary(max_size=200))
def test_garbage_is_one_header_error(raw: bytes) -> None:
    with pytest.raises(HeaderError):
        decode_header(raw)


def test_unknown_page_hmac_is_a_header_error() -> None:
    raw = bytearray(encode_header(KeyHeader((new_slot(FAST),), duress=random_field(FAST))))
    raw[8] = 9  # the HMAC byte after the magic
    body = bytes(raw[:-32])
    with pytest.raises(HeaderError, match="page HMAC"):
        decode_header(body + hashlib.sha256(body).digest())


def test_truncated_header_rejected() -> None:
    raw = encode_header(KeyHeader((new_slot(FAST),), duress=random_field(FAST)))
    for n in range(len(raw)):
        with pytest.raises(HeaderError):
            decode_header(raw[:n])


def test_derivation_is_deterministic_and_salted() -> None:
    a = KeySlot(INSECURE_FAST_PARAMS, b"a" * 16)
    b = KeySlot(INSECURE_FAST_PARAMS, b"b" * 16)
    k = derive_key("pässword", a)
    assert len(k) == 32
    assert derive_key("pässword", a) == k
    assert derive_key("pa\u0308ssword", a) == k  # NFD input, same key
    assert derive_key("pässword", b) != k
    assert derive_key("password", a) != k


def test_empty_passphrase_refused() -> None:
    with pytest.raises(PassphraseError):
        derive_key("", KeySlot(INSECURE_FAST_PARAMS, b"a" * 16))


def test_hostile_parameters_refused() -> None:
    with pytest.raises(HeaderError):
        KdfParams(memory_kib=64 * 1024 * 1024, iterations=1, lanes=1)
    assert DEFAULT_PARAMS.memory_kib >= 64 * 1024
