"""Our chain and root KDF against the independent `doubleratchet` package (test-only)."""

from __future__ import annotations

import asyncio

from doubleratchet.kdf_chain import KDFChain
from doubleratchet.recommended import HashFunction, kdf_hkdf, kdf_separate_hmacs
from hypothesis import given, settings
from hypothesis import strategies as st

from app.crypto.primitives import LABEL_ROOT, kdf_ck, kdf_rk


class RootKDF(kdf_hkdf.KDF):
    @staticmethod
    def _get_hash_function() -> HashFunction:
        return HashFunction.SHA_256

    @staticmethod
    def _get_info() -> bytes:
        return LABEL_ROOT


class ChainKDF(kdf_separate_hmacs.KDF):
    @staticmethod
    def _get_hash_function() -> HashFunction:
        return HashFunction.SHA_256


key = st.binary(min_size=32, max_size=32)


@given(ck=key)
@settings(max_examples=50)
def test_chain_kdf_matches(ck: bytes) -> None:
    chain = KDFChain.create(ChainKDF, ck)
    # Their step: output = KDF(key, constant); key <- first 32 bytes, message key <- the rest.
    message_key = asyncio.run(chain.step(b"\x02\x01", 32))
    next_ck, mk = kdf_ck(ck)
    assert message_key == mk
    assert chain.model.key == next_ck


@given(rk=key, dh_out=key)
@settings(max_examples=50)
def test_root_kdf_matches_without_kem(rk: bytes, dh_out: bytes) -> None:
    chain = KDFChain.create(RootKDF, rk)
    chain_key = asyncio.run(chain.step(dh_out, 32))
    new_rk, ck = kdf_rk(rk, dh_out)
    assert chain_key == ck
    assert chain.model.key == new_rk


@given(rk=key, dh_out=key, kem=key)
@settings(max_examples=20)
def test_root_kdf_with_kem_is_hkdf_over_the_concatenation(
    rk: bytes, dh_out: bytes, kem: bytes
) -> None:
    chain = KDFChain.create(RootKDF, rk)
    assert asyncio.run(chain.step(dh_out + kem, 32)) == kdf_rk(rk, dh_out, kem)[1]
