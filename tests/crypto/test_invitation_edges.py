"""The responder's side of the handshake, at its edges: the invitation's documented layout,
the 4,096 handshakes one card takes, and introductions that are sealed correctly but say
something a client must refuse (the seal only makes them confidential, not well formed)."""

from __future__ import annotations

import struct

import pytest

from app.crypto.card import Card
from app.crypto.codec import Writer
from app.crypto.errors import HandshakeError, LocalStateError
from app.crypto.handshake import Invitation, initiate, session_ad
from app.crypto.header import init_prefix
from app.crypto.identity import Identity
from app.crypto.mailbox import MailboxKey
from app.crypto.primitives import (
    LABEL_X3DH,
    LABEL_X3DH_SEAL,
    X3DH_F,
    dh,
    hkdf,
    seal,
    x25519_from_rng,
    x25519_public,
)
from app.crypto.ratchet import Session

from .conftest import DetRng, make_pair


def _invitation_bytes(prekey: bytes, mailbox: bytes, accepted: list[bytes]) -> bytes:
    """docs/crypto.md: version || prekey private(32) || mailbox key (1+33) || count(4) ||
    replay ids (32 each, sorted)."""
    return (
        bytes([1])
        + prekey
        + bytes([len(mailbox)])
        + mailbox
        + struct.pack(">I", len(accepted))
        + b"".join(sorted(accepted))
    )


def _first_frame(identity: Identity, card: Card, intro: bytes, rng: DetRng) -> bytes:
    """An initiator's first frame built from the documented X3DH, around any introduction."""
    ek = x25519_from_rng(rng)
    ek_pub = x25519_public(ek)
    dh1 = dh(identity.dh_key, card.prekey)
    dh2, dh3 = dh(ek, card.identity.dh), dh(ek, card.prekey)
    seal_key = hkdf(X3DH_F + dh2 + dh3, b"", LABEL_X3DH_SEAL, 32)
    sealed = seal(seal_key, intro, ek_pub + card.identity.to_bytes() + card.prekey)
    shared = hkdf(X3DH_F + dh1 + dh2 + dh3, b"", LABEL_X3DH, 32)
    ad = session_ad(identity.public, card.identity, ek_pub)
    session = Session.initiator(
        shared, ad, card.prekey, card.identity.sign, init_prefix(ek_pub, sealed), rng
    )
    return session.encrypt(b"\x81\xa1k\xa5intro", rng=rng)[1]


def _intro(identity: Identity, name: bytes, version: int = 1, extra: bytes = b"") -> bytes:
    return (
        Writer()
        .u8(version)
        .raw(identity.public.sign)
        .raw(identity.public.dh)
        .raw(b"\x33" * 32)
        .var8(name)
        .raw(extra)
        .bytes()
    )


def test_the_invitation_is_stored_in_its_documented_layout() -> None:
    rng = DetRng(b"layout")
    invitation = Invitation.generate(rng)
    raw = invitation.to_bytes()
    prekey, mailbox = raw[1:33], raw[34:67]
    assert raw == _invitation_bytes(prekey, mailbox, [])
    accepted = [bytes([i]) * 32 for i in (3, 1, 2)]
    built = _invitation_bytes(prekey, mailbox, accepted)
    parsed = Invitation.from_bytes(built)
    assert parsed.to_bytes() == built
    assert all(parsed.has_accepted(rid) for rid in accepted)
    assert parsed.mailbox.id == MailboxKey.from_bytes(mailbox).id
    for bad in (b"\x02" + built[1:], b"\x00" + built[1:], built + b"\x00", built[:-1]):
        with pytest.raises(LocalStateError):
            Invitation.from_bytes(bad)


def test_a_card_takes_4096_handshakes_then_asks_for_a_new_one() -> None:
    rng = DetRng(b"full")
    bob, alice = Identity.generate(rng), Identity.generate(rng)
    fresh = Invitation.generate(rng)
    raw = fresh.to_bytes()
    taken = [i.to_bytes(32, "big") for i in range(4096)]
    full = Invitation.from_bytes(_invitation_bytes(raw[1:33], raw[34:67], taken))
    almost = Invitation.from_bytes(_invitation_bytes(raw[1:33], raw[34:67], taken[:-1]))
    card = fresh.card(bob, "ws://h:1", "Bob")
    a = initiate(alice, card, name="Alice", reply_mailbox=b"\x01" * 32, rng=rng)
    _, frame = a.encrypt(b"hi", rng=rng)
    accepted = almost.accept(bob, frame, rng=rng)
    assert accepted.invitation.has_accepted(accepted.replay_id)
    assert len(accepted.invitation.to_bytes()) == len(full.to_bytes())
    with pytest.raises(HandshakeError, match="exhausted"):
        full.accept(bob, frame, rng=rng)
    with pytest.raises(LocalStateError):
        Invitation.from_bytes(_invitation_bytes(raw[1:33], raw[34:67], [*taken, b"\xff" * 32]))


@pytest.mark.parametrize(
    ("intro", "why"),
    [
        (lambda me: _intro(me, b"Alice", extra=b"\x00"), "trailing"),
        (lambda me: _intro(me, b"Alice", version=2), "version"),
        (lambda me: _intro(me, b"Ali\xffce"), "name"),
        (lambda me: _intro(me, "Alice\u202e".encode()), "name"),
        (lambda me: _intro(me, b"Al\x1bice"), "name"),
        (lambda me: _intro(me, b"x" * 65), "name"),
        (lambda me: _intro(me, b"Alice")[:-2], "truncated"),
    ],
)
def test_a_well_sealed_but_malformed_introduction_is_refused(intro, why: str) -> None:  # type: ignore[no-untyped-def]
    pair = make_pair(b"intro-" + why.encode(), reply=False)
    frame = _first_frame(pair.alice, pair.card, intro(pair.alice), pair.rng)
    before = pair.invitation.to_bytes()
    with pytest.raises(HandshakeError, match=why):
        pair.invitation.accept(pair.bob, frame)
    assert pair.invitation.to_bytes() == before
    # The same builder with a valid introduction is accepted: only the introduction differs.
    good = _first_frame(pair.alice, pair.card, _intro(pair.alice, b"Alice"), pair.rng)
    assert pair.invitation.accept(pair.bob, good).peer.name == "Alice"


def test_initiate_refuses_what_it_could_not_put_in_an_introduction() -> None:
    pair = make_pair(b"initiate", reply=False)
    initiate(pair.alice, pair.card, name="n" * 64, reply_mailbox=bytes(32))
    initiate(pair.alice, pair.card, name="", reply_mailbox=bytes(32))
    for name, mailbox in (
        ("n" * 65, bytes(32)),
        ("Bob\u202e", bytes(32)),
        ("ok", bytes(31)),
        ("ok", bytes(33)),
    ):
        with pytest.raises(ValueError, match="reply mailbox is 32 bytes"):
            initiate(pair.alice, pair.card, name=name, reply_mailbox=mailbox)


def test_an_introduction_may_carry_no_name_and_never_shows_its_plaintext() -> None:
    pair = make_pair(b"no-name", reply=False)
    frame = _first_frame(pair.alice, pair.card, _intro(pair.alice, b""), pair.rng)
    accepted = pair.invitation.accept(pair.bob, frame)
    assert accepted.peer.name == ""
    other = make_pair(b"secret", reply=False)
    frame = _first_frame(other.alice, other.card, _intro(other.alice, b"Alice"), other.rng)
    accepted = other.invitation.accept(other.bob, frame)
    assert accepted.plaintext == b"\x81\xa1k\xa5intro"
    assert "intro" not in repr(accepted)
    assert "plaintext" not in repr(accepted)
