from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PublicKey

from app.crypto.errors import AuthenticationFailed, HandshakeError, ReplayedHandshake
from app.crypto.handshake import Invitation, initiate, replay_id
from app.crypto.header import KEM_PK_SIZE, split_message
from app.crypto.identity import Identity
from app.crypto.mailbox import MailboxKey

from .conftest import DetRng, make_pair


def test_first_frame_introduces_the_initiator() -> None:
    rng = DetRng(b"intro")
    alice, bob = Identity.generate(rng), Identity.generate(rng)
    invitation = Invitation.generate(rng)
    reply = MailboxKey.generate(rng).id
    a = initiate(
        alice, invitation.card(bob, "ws://h:1"), name="Alice", reply_mailbox=reply, rng=rng
    )
    assert a.awaiting_reply
    a, frame = a.encrypt(b"hi", rng=rng)
    # Nothing identifying travels in clear.
    for secret in (alice.public.sign, alice.public.dh, reply, b"Alice", b"hi"):
        assert secret not in frame
    accepted = invitation.accept(bob, frame, rng=rng)
    assert accepted.peer.identity == alice.public
    assert accepted.peer.name == "Alice"
    assert accepted.peer.mailbox == reply
    assert accepted.plaintext == b"hi"
    assert accepted.invitation.has_accepted(accepted.replay_id)
    assert not invitation.has_accepted(accepted.replay_id)
    assert accepted.session.ad == a.ad


def test_replayed_first_frame_creates_no_second_session() -> None:
    pair = make_pair(reply=False)
    before = pair.invitation.to_bytes()
    with pytest.raises(ReplayedHandshake) as info:
        pair.invitation.accept(pair.bob, pair.first_frame)
    assert pair.invitation.to_bytes() == before
    assert info.value.replay_id == replay_id(pair.first_frame[2:34])
    # Routed to the existing session it is a duplicate, not a new conversation.
    with pytest.raises(Exception) as dup:
        pair.b.decrypt(pair.first_frame)
    assert type(dup.value).__name__ == "DuplicateMessage"
    # The invitation survives a restart with its memory of accepted handshakes.
    with pytest.raises(ReplayedHandshake):
        Invitation.from_bytes(before).accept(pair.bob, pair.first_frame)


def test_later_wrapped_frames_reach_the_existing_session_out_of_order() -> None:
    pair = make_pair(reply=False)
    a, second = pair.a.encrypt(b"second", rng=pair.rng)
    a, third = a.encrypt(b"third", rng=pair.rng)
    with pytest.raises(ReplayedHandshake):
        pair.invitation.accept(pair.bob, third)
    b, text = pair.b.decrypt(third)
    assert text == b"third"
    b, text = b.decrypt(second)
    assert text == b"second"


def test_first_frame_for_another_identity_or_tampered_is_refused() -> None:
    rng = DetRng(b"tamper")
    alice, bob = Identity.generate(rng), Identity.generate(rng)
    invitation = Invitation.generate(rng)
    card = invitation.card(bob, "ws://h:1")
    a = initiate(alice, card, name="A", reply_mailbox=bytes(32), rng=rng)
    _, frame = a.encrypt(b"hi", rng=rng)
    with pytest.raises(HandshakeError):
        Invitation.generate(DetRng(b"other")).accept(bob, frame)
    with pytest.raises(HandshakeError):
        invitation.accept(Identity.generate(rng), frame)
    before = invitation.to_bytes()
    for bad in (b"", b"\x01\x02", frame[:-1], b"\x01\x01" + frame[2:], frame + b"\x00"):
        with pytest.raises(HandshakeError):
            invitation.accept(bob, bad)
    for i in range(len(frame) * 8):
        flipped = bytearray(frame)
        flipped[i // 8] ^= 1 << (i % 8)
        with pytest.raises(HandshakeError):
            invitation.accept(bob, bytes(flipped))
    assert invitation.to_bytes() == before
    assert invitation.accept(bob, frame).plaintext == b"hi"


def test_first_reply_carries_a_signed_kem_prekey_and_unsigned_is_refused() -> None:
    pair = make_pair(reply=False)
    _b, frame = pair.b.encrypt(b"welcome", rng=pair.rng)
    header, _ = split_message(frame)
    assert len(header.kem_pk) == KEM_PK_SIZE
    assert len(header.kem_sig) == 64
    MLKEM768PublicKey.from_public_bytes(header.kem_pk)
    # A forged signature (header is authenticated, so resigning is all an attacker could try).
    forged = bytearray(frame)
    sig_at = len(header.raw) - 64
    forged[sig_at] ^= 1
    with pytest.raises(AuthenticationFailed):
        pair.a.decrypt(bytes(forged))


def test_kem_secret_really_contributes() -> None:
    """Same handshake, same ciphertext, different KEM secret: different message keys."""
    pair = make_pair(b"kem")
    a, b = pair.a, pair.b
    captured: list[tuple[bytes, bytes]] = []

    def real(pk: bytes) -> tuple[bytes, bytes]:
        secret, ct = MLKEM768PublicKey.from_public_bytes(pk).encapsulate()
        captured.append((secret, ct))
        return secret, ct

    state = pair.rng.counter
    a1, good = a.encrypt(b"pq", rng=pair.rng, encap=real)
    pair.rng.counter = state
    _secret, ct = captured[0]
    _a2, bad = a.encrypt(b"pq", rng=pair.rng, encap=lambda _pk: (bytes(32), ct))
    hg, body_good = split_message(good)
    hb, body_bad = split_message(bad)
    assert hg.raw == hb.raw
    assert hg.kem_ct == ct
    assert body_good != body_bad
    with pytest.raises(AuthenticationFailed):
        b.decrypt(bad)
    b2, text = b.decrypt(good)
    assert text == b"pq"
    assert b2.post_quantum
    assert a1.post_quantum
