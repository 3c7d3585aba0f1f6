"""Stored key records, parsed from bytes built by hand from docs/crypto.md and written back
byte for byte: identity ``version=1 || Ed25519 seed(32) || X25519 private(32)``, mailbox key
``version=1 || seed(32)``. Any other version, a short record or trailing bytes is a
`LocalStateError`."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from app.crypto.errors import LocalStateError
from app.crypto.identity import Identity, PublicIdentity, verify_ed25519
from app.crypto.mailbox import MailboxKey
from relay.wire import mailbox_id, subscribe_signed_bytes

SIGN_SEED = bytes(range(32))
DH_SEED = bytes(range(64, 96))
MAILBOX_SEED = bytes(range(128, 160))


def _ed25519_public(seed: bytes) -> bytes:
    return Ed25519PrivateKey.from_private_bytes(seed).public_key().public_bytes_raw()


def test_identity_record_from_the_documented_layout() -> None:
    record = b"\x01" + SIGN_SEED + DH_SEED
    identity = Identity.from_bytes(record)
    assert identity.public.sign == _ed25519_public(SIGN_SEED)
    dh_public = X25519PrivateKey.from_private_bytes(DH_SEED).public_key().public_bytes_raw()
    assert identity.public.dh == dh_public
    assert identity.public.to_bytes() == identity.public.sign + dh_public  # IK, 64 bytes
    assert identity.to_bytes() == record
    assert Identity.from_seeds(SIGN_SEED, DH_SEED).to_bytes() == record


@pytest.mark.parametrize("version", [0, 2, 255])
def test_identity_record_of_another_version_is_refused(version: int) -> None:
    with pytest.raises(LocalStateError, match=r"^unknown identity version$"):
        Identity.from_bytes(bytes([version]) + SIGN_SEED + DH_SEED)


@pytest.mark.parametrize(
    "record",
    [b"", b"\x01", b"\x01" + SIGN_SEED, b"\x01" + SIGN_SEED + DH_SEED[:-1]],
)
def test_a_short_identity_record_is_truncated(record: bytes) -> None:
    with pytest.raises(LocalStateError, match=r"^truncated$"):
        Identity.from_bytes(record)


def test_identity_record_with_trailing_bytes_is_refused() -> None:
    with pytest.raises(LocalStateError, match=r"^trailing bytes$"):
        Identity.from_bytes(b"\x01" + SIGN_SEED + DH_SEED + b"\x00")


def test_identity_generate_takes_the_sign_seed_then_the_dh_seed_from_the_rng() -> None:
    chunks = [SIGN_SEED, DH_SEED]
    identity = Identity.generate(lambda size: chunks.pop(0)[:size])
    assert identity.to_bytes() == b"\x01" + SIGN_SEED + DH_SEED


def test_identity_signs_with_its_ed25519_key() -> None:
    identity = Identity.from_seeds(SIGN_SEED, DH_SEED)
    signature = identity.sign(b"data")
    Ed25519PrivateKey.from_private_bytes(SIGN_SEED).public_key().verify(signature, b"data")
    assert identity.public.verify(signature, b"data") is True
    assert identity.public.verify(signature, b"other") is False
    assert identity.public.verify(signature[:-1] + bytes([signature[-1] ^ 1]), b"data") is False


@pytest.mark.parametrize(
    ("public", "signature"),
    [
        (bytes(31), bytes(64)),  # not a key at all: False, not ValueError
        (_ed25519_public(SIGN_SEED), bytes(63)),
        (_ed25519_public(SIGN_SEED), b""),
        (_ed25519_public(SIGN_SEED), bytes(64)),
    ],
)
def test_verify_ed25519_is_false_for_malformed_input(public: bytes, signature: bytes) -> None:
    assert verify_ed25519(public, signature, b"data") is False


def test_verify_ed25519_checks_the_key_it_is_given() -> None:
    signature = Ed25519PrivateKey.from_private_bytes(SIGN_SEED).sign(b"data")
    assert verify_ed25519(_ed25519_public(SIGN_SEED), signature, b"data") is True
    assert verify_ed25519(_ed25519_public(DH_SEED), signature, b"data") is False


@pytest.mark.parametrize(("sign", "dh"), [(31, 32), (33, 32), (32, 31), (32, 33), (0, 0)])
def test_public_identity_keys_are_32_bytes_each(sign: int, dh: int) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        PublicIdentity(bytes(sign), bytes(dh))


@given(st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32))
def test_public_identity_is_sign_then_dh(sign: bytes, dh: bytes) -> None:
    assert PublicIdentity(sign, dh).to_bytes() == sign + dh


def test_private_keys_do_not_show_in_repr() -> None:
    identity = Identity.from_seeds(SIGN_SEED, DH_SEED)
    mailbox = MailboxKey.from_bytes(b"\x01" + MAILBOX_SEED)
    assert repr(identity) == "Identity(<private>)"
    assert repr(mailbox) == "MailboxKey(<private>)"


def test_mailbox_key_record_from_the_documented_layout() -> None:
    record = b"\x01" + MAILBOX_SEED
    key = MailboxKey.from_bytes(record)
    assert key.public == _ed25519_public(MAILBOX_SEED)
    assert key.id == mailbox_id(key.public)
    assert key.to_bytes() == record
    assert MailboxKey.generate(lambda size: MAILBOX_SEED[:size]).to_bytes() == record


def test_mailbox_subscribe_signs_the_relays_bytes_with_the_mailbox_key() -> None:
    key = MailboxKey.from_bytes(b"\x01" + MAILBOX_SEED)
    challenge = bytes(range(200, 232))
    signed = subscribe_signed_bytes(challenge, key.id)
    assert verify_ed25519(key.public, key.sign_subscribe(challenge), signed)


@pytest.mark.parametrize("version", [0, 2, 255])
def test_mailbox_key_record_of_another_version_is_refused(version: int) -> None:
    with pytest.raises(LocalStateError, match=r"^unknown mailbox key version$"):
        MailboxKey.from_bytes(bytes([version]) + MAILBOX_SEED)


@pytest.mark.parametrize("record", [b"", b"\x01", b"\x01" + MAILBOX_SEED[:-1]])
def test_a_short_mailbox_key_record_is_truncated(record: bytes) -> None:
    with pytest.raises(LocalStateError, match=r"^truncated$"):
        MailboxKey.from_bytes(record)


def test_mailbox_key_record_with_trailing_bytes_is_refused() -> None:
    with pytest.raises(LocalStateError, match=r"^trailing bytes$"):
        MailboxKey.from_bytes(b"\x01" + MAILBOX_SEED + b"\x00")
