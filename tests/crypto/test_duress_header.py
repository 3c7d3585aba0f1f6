"""The version 3 key header and its duress field: round trips, damage refused, older
versions still read, and nothing in the bytes that says whether a duress passphrase is set."""

from __future__ import annotations

import hashlib
import os
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.crypto.duress import (
    CAPACITY,
    DuressError,
    matches,
    new_duress_slot,
    open_field,
    random_field,
    sealed_field,
)
from app.crypto.passphrase import (
    DURESS_SEALED_LEN,
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
    decode_header,
    encode_header,
)

FAST = INSECURE_FAST_PARAMS
params = st.builds(
    KdfParams,
    memory_kib=st.integers(512, 4 * 1024 * 1024),
    iterations=st.integers(1, 64),
    lanes=st.integers(1, 64),
)
slots = st.builds(KeySlot, params=params, salt=st.binary(min_size=16, max_size=64))
fields = st.builds(
    DuressField,
    params=params,
    salt=st.binary(min_size=16, max_size=16),
    verifier=st.binary(min_size=32, max_size=32),
    sealed=st.binary(min_size=DURESS_SEALED_LEN, max_size=DURESS_SEALED_LEN),
)
headers = st.builds(
    KeyHeader,
    slots=st.lists(slots, min_size=1, max_size=2).map(tuple),
    page_hmac=st.sampled_from(PageHmac),
    duress=fields,
)
# What a profile keeps for its duress passphrase: short names, values up to a relay URL.
kept = st.dictionaries(st.text(min_size=1, max_size=20), st.text(max_size=120), max_size=8).filter(
    lambda d: sum(len(k.encode()) + len(v.encode()) + 3 for k, v in d.items()) < CAPACITY
)


@given(headers)
def test_a_header_round_trips(header: KeyHeader) -> None:
    raw = encode_header(header)
    assert raw.startswith(MAGIC)
    assert decode_header(raw) == header


@given(headers, st.data())
def test_any_flipped_byte_is_refused(header: KeyHeader, data: st.DataObject) -> None:
    raw = bytearray(encode_header(header))
    i = data.draw(st.integers(0, len(raw) - 1))
    raw[i] ^= data.draw(st.integers(1, 255))
    with pytest.raises(HeaderError):
        decode_header(bytes(raw))


@given(headers, st.data())
def test_any_cut_is_refused(header: KeyHeader, data: st.DataObject) -> None:
    raw = encode_header(header)
    with pytest.raises(HeaderError):
        decode_header(raw[: data.draw(st.integers(0, len(raw) - 1))])


def _older(magic: bytes, header: KeyHeader) -> bytes:
    """A version 1 or 2 header built by hand (version 1: no HMAC byte)."""
    body = magic if magic == MAGIC_V1 else magic + bytes([header.page_hmac])
    body += bytes([len(header.slots)])
    for slot in header.slots:
        p = slot.params
        body += struct.pack(">BIIB", 1, p.memory_kib, p.iterations, p.lanes)
        body += bytes([len(slot.salt)]) + slot.salt
    return body + hashlib.sha256(body).digest()


@given(st.lists(slots, min_size=1, max_size=2).map(tuple), st.sampled_from(PageHmac))
def test_version_1_and_2_headers_are_still_read(slots: tuple[KeySlot, ...], hmac: PageHmac) -> None:
    assert decode_header(_older(MAGIC_V2, KeyHeader(slots, hmac))) == KeyHeader(slots, hmac)
    v1 = decode_header(_older(MAGIC_V1, KeyHeader(slots)))
    assert v1 == KeyHeader(slots, PageHmac.SHA512)
    assert v1.duress is None


@given(kept)
@settings(max_examples=50)
def test_the_sealed_settings_open_with_their_key_and_no_other(kept: dict[str, str]) -> None:
    key = os.urandom(32)
    slot = new_duress_slot(FAST)
    field = sealed_field(key, slot, kept)
    assert field.slot == slot
    assert matches(field, key)
    assert open_field(field, key) == kept
    other = os.urandom(32)
    assert not matches(field, other)
    with pytest.raises(DuressError):
        open_field(field, other)


def test_a_damaged_or_unset_field_does_not_open() -> None:
    key = os.urandom(32)
    field = sealed_field(key, new_duress_slot(FAST), {"name": "Ann"})
    damaged = DuressField(field.params, field.salt, field.verifier, bytes(DURESS_SEALED_LEN))
    with pytest.raises(DuressError):
        open_field(damaged, key)
    unset = random_field(FAST)
    assert not matches(unset, key)
    with pytest.raises(DuressError):
        open_field(unset, key)


def test_settings_too_large_for_the_field_are_refused() -> None:
    with pytest.raises(DuressError, match="holds 1536"):
        sealed_field(os.urandom(32), new_duress_slot(FAST), {"relay": "x" * CAPACITY})
    with pytest.raises(DuressError, match="too many"):
        sealed_field(os.urandom(32), new_duress_slot(FAST), {str(i): "" for i in range(256)})


def _duress_bytes(field: DuressField) -> bytes:
    """The field's bytes inside a header (after magic, HMAC byte, count, one 27-byte slot)."""
    raw = encode_header(KeyHeader((KeySlot(FAST, bytes(16)),), duress=field))
    return raw[8 + 2 + 27 : -32]


def test_set_or_unset_the_field_has_the_same_size_and_no_telling_byte() -> None:
    """Sixty-four fields of each kind: the same length; the same parameters; the only bytes
    they share are the parameters'; no byte of salt, verifier or sealed part is fixed in
    either kind (a fixed byte would tell them apart), and the bytes of both spread alike
    (a duress field holding a few short settings is mostly padding before it is sealed)."""
    small = {"name": "Ann", "relay_url": "ws://10.0.0.1:8765"}
    sets = [
        _duress_bytes(sealed_field(os.urandom(32), new_duress_slot(FAST), small)) for _ in range(64)
    ]
    unsets = [_duress_bytes(random_field(FAST)) for _ in range(64)]
    assert {len(b) for b in sets} == {len(b) for b in unsets} == {10 + 16 + 32 + DURESS_SEALED_LEN}
    assert {b[:10] for b in sets} == {b[:10] for b in unsets}  # the profile's parameters
    for kind in (sets, unsets):
        for i in range(10, len(kind[0])):
            assert len({b[i] for b in kind}) > 1, f"byte {i} is the same in every field"
    for kind in (sets, unsets):
        body = b"".join(b[10:] for b in kind)
        assert abs(sum(body) / len(body) - 127.5) < 2.0
        assert max(body.count(bytes([v])) for v in range(256)) < 2 * len(body) / 256
