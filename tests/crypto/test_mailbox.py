from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from app.crypto.errors import LocalStateError
from app.crypto.identity import Identity
from app.crypto.mailbox import MailboxKey
from relay.wire import mailbox_id, subscribe_signed_bytes

from .conftest import DetRng


def test_id_and_subscribe_signature_match_the_relay_bytes() -> None:
    key = MailboxKey.generate(DetRng(b"mb"))
    assert key.id == mailbox_id(key.public)
    challenge = bytes(range(32))
    signature = key.sign_subscribe(challenge)
    Ed25519PublicKey.from_public_bytes(key.public).verify(
        signature, subscribe_signed_bytes(challenge, key.id)
    )


def test_round_trip_and_bad_bytes() -> None:
    key = MailboxKey.generate(DetRng(b"mb"))
    again = MailboxKey.from_bytes(key.to_bytes())
    assert again.id == key.id
    assert again.to_bytes() == key.to_bytes()
    for bad in (b"", key.to_bytes()[:-1], key.to_bytes() + b"\x00", b"\x09" + bytes(32)):
        with pytest.raises(LocalStateError):
            MailboxKey.from_bytes(bad)
    assert "<private>" in repr(key)


def test_identity_round_trip() -> None:
    ident = Identity.generate(DetRng(b"id"))
    again = Identity.from_bytes(ident.to_bytes())
    assert again.public == ident.public
    assert ident.public.verify(ident.sign(b"x"), b"x")
    assert not ident.public.verify(ident.sign(b"x"), b"y")
    with pytest.raises(LocalStateError):
        Identity.from_bytes(ident.to_bytes()[:-1])
