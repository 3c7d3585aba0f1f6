"""A hostile relay against the bare sessions: the regressions it once got through, and a
search over every frame it can build from both cards and everything on the wire."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings

from app.crypto.card import Card
from app.crypto.errors import (
    AuthenticationFailed,
    DecryptError,
    DuplicateMessage,
    HandshakeError,
    LocalStateError,
)
from app.crypto.handshake import Invitation, initiate
from app.crypto.identity import Identity, PublicIdentity
from app.crypto.primitives import kdf_ck
from app.crypto.ratchet import Session

from . import state
from .attacker import LOW_ORDER, Attacker, empty_chain_forgery
from .conftest import Pair, make_pair


def _refused(session: Session, frame: bytes) -> DecryptError:
    before = session.to_bytes()
    with pytest.raises(DecryptError) as info:
        session.decrypt(frame)
    assert session.to_bytes() == before
    return info.value


# -- the regressions --------------------------------------------------------------------------


def test_chain_kdf_refuses_keys_that_are_not_32_bytes() -> None:
    for size in (0, 1, 31, 33, 64):
        with pytest.raises(ValueError, match="32 bytes"):
            kdf_ck(bytes(size))
    assert len(kdf_ck(bytes(32))[1]) == 32


def test_a_frame_on_the_initiators_first_chain_is_a_forgery() -> None:
    """The critical one: the card prekey named no secret chain, so a message key came from
    the chain KDF over an empty key, and the AD from the cards and Alice's first frame."""
    pair = make_pair(reply=False)
    for n in (0, 1, 5):
        forged = empty_chain_forgery(pair.alice.public, pair.card, pair.first_frame, b"hi", n)
        error = _refused(pair.a, forged)
        assert isinstance(error, AuthenticationFailed)
    # The real reply still goes through afterwards.
    _b, reply = pair.b.encrypt(b"welcome", rng=pair.rng)
    _a, text = pair.a.decrypt(reply)
    assert text == b"welcome"


def test_no_key_stashed_on_the_first_chain_survives_into_the_real_session() -> None:
    """The attacker's frames 0 and 500 would have left 499 skipped keys that still open forged
    frames after the session is verified and post-quantum."""
    pair = make_pair(reply=False)
    a = pair.a
    for n in (0, 500):
        forged = empty_chain_forgery(pair.alice.public, pair.card, pair.first_frame, b"x", n)
        _refused(a, forged)
    b, reply = pair.b.encrypt(b"welcome", rng=pair.rng)
    a, _ = a.decrypt(reply)
    a, frame = a.encrypt(b"pq", rng=pair.rng)
    b, _ = b.decrypt(frame)
    b, frame = b.encrypt(b"back", rng=pair.rng)
    a, _ = a.decrypt(frame)
    assert a.post_quantum
    assert b.post_quantum
    assert a.skipped_count == 0
    for n in (1, 300, 499):
        forged = empty_chain_forgery(pair.alice.public, pair.card, pair.first_frame, b"x", n)
        _refused(a, forged)


def test_a_replayed_frame_of_an_old_chain_is_a_duplicate_not_a_forgery(pair: Pair) -> None:
    a, old = pair.a.encrypt(b"one", rng=pair.rng)
    b, _ = pair.b.decrypt(old)
    b, frame = b.encrypt(b"two", rng=pair.rng)
    a, _ = a.decrypt(frame)
    a, frame = a.encrypt(b"three", rng=pair.rng)  # a new chain of Alice's
    b, _ = b.decrypt(frame)
    assert isinstance(_refused(b, old), DuplicateMessage)


# -- the first reply's signed ML-KEM prekey ---------------------------------------------------


def _responder(pair: Pair) -> state.State:
    return state.parse(pair.b.to_bytes())


def test_a_first_reply_with_the_prekey_signed_by_another_key_is_refused() -> None:
    pair = make_pair(reply=False)
    bob = _responder(pair)
    kem_pk = _kem_public(bob)
    wrong = make_pair(b"someone else").bob.sign(b"anonchat/kem-prekey/v1\x00" + bob.ad + kem_pk)
    reply = state.first_reply(bob, b"welcome", kem_pk=kem_pk, kem_sig=wrong)
    assert isinstance(_refused(pair.a, reply), AuthenticationFailed)
    # ... and a correctly signed one, built the same way, is taken: the check is the signature.
    right = pair.bob.sign(b"anonchat/kem-prekey/v1\x00" + bob.ad + kem_pk)
    reply = state.first_reply(bob, b"welcome", kem_pk=kem_pk, kem_sig=right)
    assert pair.a.decrypt(reply)[1] == b"welcome"


def test_a_first_reply_without_an_ml_kem_prekey_is_a_downgrade_and_refused() -> None:
    pair = make_pair(reply=False)
    reply = state.first_reply(_responder(pair), b"welcome", kem_pk=b"", kem_sig=b"")
    assert isinstance(_refused(pair.a, reply), AuthenticationFailed)


def test_the_signature_requirement_survives_a_restart() -> None:
    pair = make_pair(reply=False)
    restored = Session.from_bytes(pair.a.to_bytes())
    assert restored.to_bytes() == pair.a.to_bytes()
    reply = state.first_reply(_responder(pair), b"welcome", kem_pk=b"", kem_sig=b"")
    assert isinstance(_refused(restored, reply), AuthenticationFailed)


def test_an_invalid_ml_kem_prekey_is_refused_even_when_signed() -> None:
    pair = make_pair(reply=False)
    bob = _responder(pair)
    bogus = b"\xff" * 1184  # coefficients out of range: not an ML-KEM-768 public key
    sig = pair.bob.sign(b"anonchat/kem-prekey/v1\x00" + bob.ad + bogus)
    reply = state.first_reply(bob, b"welcome", kem_pk=bogus, kem_sig=sig)
    assert isinstance(_refused(pair.a, reply), AuthenticationFailed)


def test_the_ml_kem_private_key_is_forgotten_once_used() -> None:
    pair = make_pair(reply=True)
    assert _responder(pair).kem_seed  # kept until the initiator encapsulates to it
    _a, frame = pair.a.encrypt(b"pq", rng=pair.rng)
    b, _ = pair.b.decrypt(frame)
    after = state.parse(b.to_bytes())
    assert after.kem_seed == b""
    assert after.kem_sig == b""
    assert b.post_quantum


def _kem_public(s: state.State) -> bytes:
    from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PrivateKey

    return MLKEM768PrivateKey.from_seed_bytes(s.kem_seed).public_key().public_bytes_raw()


# -- the attacker's whole repertoire ----------------------------------------------------------


@dataclass
class Scene:
    attacker: Attacker
    sessions: list[Session]
    invitation: Invitation
    pair: Pair


def _scene(stage: str) -> Scene:
    """Alice and Bob at a stage of their conversation, every frame delivered once, and the
    attacker holding both cards and a copy of every frame."""
    pair = make_pair(b"scene-" + stage.encode(), reply=False)
    alice_card = Invitation.generate(pair.rng).card(pair.alice, "ws://127.0.0.1:8765", "Alice")
    attacker = Attacker([pair.card, alice_card], [pair.alice.public, pair.bob.public])
    attacker.saw([pair.first_frame])
    a, b = pair.a, pair.b
    a, frame = a.encrypt(b"second", rng=pair.rng)
    b, _ = b.decrypt(frame)
    attacker.saw([frame])
    turns = {"first": 0, "replied": 1, "post-quantum": 6}[stage]
    for turn in range(turns):
        b, frame = b.encrypt(b"b%d" % turn, rng=pair.rng)
        a, _ = a.decrypt(frame)
        a, frame2 = a.encrypt(b"a%d" % turn, rng=pair.rng)
        b, _ = b.decrypt(frame2)
        attacker.saw([frame, frame2])
    if stage == "post-quantum":
        assert a.post_quantum
        assert b.post_quantum
    return Scene(attacker, [a, b], pair.invitation, pair)


SCENES = {stage: _scene(stage) for stage in ("first", "replied", "post-quantum")}


@pytest.mark.parametrize("stage", list(SCENES))
def test_nothing_the_relay_can_build_is_accepted_or_changes_a_session(stage: str) -> None:
    scene = SCENES[stage]

    @settings(
        max_examples=2000,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(frame=scene.attacker.frames())
    def attack(frame: bytes) -> None:
        for session in scene.sessions:
            before = session.to_bytes()
            with pytest.raises(DecryptError):
                session.decrypt(frame)
            assert session.to_bytes() == before
        before = scene.invitation.to_bytes()
        with pytest.raises(HandshakeError):
            scene.invitation.accept(scene.pair.bob, frame)
        assert scene.invitation.to_bytes() == before

    attack()


# -- what a peer or a stranger can cause is only ever a protocol error ------------------------


def test_stored_sessions_with_chains_of_the_wrong_shape_are_refused(pair: Pair) -> None:
    good = state.parse(pair.a.to_bytes())
    for bad in (
        good.with_(ckr=bytes(31)),
        good.with_(ckr=bytes(33)),
        good.with_(ckr=bytes(1)),
        good.with_(cks=bytes(33)),
        good.with_(cks=bytes(31)),
        good.with_(cks=bytes(1)),
        good.with_(dhr=bytes(16)),
        good.with_(dhr=bytes(31)),
        good.with_(dhr=bytes(33)),
        good.with_(dhr=bytes(1)),
        good.with_(dhr=b"", ckr=bytes(32)),
        good.with_(peer_kem=bytes(100)),
        good.with_(peer_kem=bytes(1185)),
        good.with_(kem_ct=bytes(1087)),
        good.with_(kem_ct=bytes(1089)),
        good.with_(kem_sig=bytes(63)),
        good.with_(kem_sig=bytes(65)),
        good.with_(kem_seed=bytes(63)),
        good.with_(kem_seed=bytes(65)),
    ):
        with pytest.raises(LocalStateError):
            Session.from_bytes(state.build(bad))
    assert Session.from_bytes(state.build(good)).to_bytes() == pair.a.to_bytes()


class _Claims:
    """An identity that shows someone else's public keys but holds its own private ones."""

    def __init__(self, shown: PublicIdentity, real: Identity) -> None:
        self.public = shown
        self.dh_key = real.dh_key
        self.sign = real.sign


def test_nobody_can_introduce_themselves_under_another_persons_identity() -> None:
    pair = make_pair(b"impersonation", reply=False)
    mallory = Identity.generate(pair.rng)
    fake = _Claims(pair.alice.public, mallory)
    session = initiate(fake, pair.card, name="Alice", reply_mailbox=bytes(32), rng=pair.rng)  # type: ignore[arg-type]
    _, frame = session.encrypt(b"it is me", rng=pair.rng)
    before = pair.invitation.to_bytes()
    with pytest.raises(HandshakeError) as info:
        pair.invitation.accept(pair.bob, frame)
    assert type(info.value) is HandshakeError
    assert pair.invitation.to_bytes() == before


@pytest.mark.parametrize("point", LOW_ORDER)
def test_a_low_order_identity_key_in_an_introduction_is_a_handshake_error(point: bytes) -> None:
    pair = make_pair(b"low-order", reply=False)
    fake = _Claims(PublicIdentity(pair.alice.public.sign, point), pair.alice)
    session = initiate(fake, pair.card, name="A", reply_mailbox=bytes(32), rng=pair.rng)  # type: ignore[arg-type]
    _, frame = session.encrypt(b"x", rng=pair.rng)
    with pytest.raises(HandshakeError):
        pair.invitation.accept(pair.bob, frame)


@pytest.mark.parametrize("point", LOW_ORDER)
def test_a_low_order_ratchet_key_is_an_authentication_failure(pair: Pair, point: bytes) -> None:
    _a, frame = pair.a.encrypt(b"x", rng=pair.rng)
    forged = point + frame[32 + 3 :]
    forged = frame[:3] + forged
    assert isinstance(_refused(pair.b, forged), DecryptError)


def test_every_short_first_frame_is_a_handshake_error() -> None:
    pair = make_pair(b"short", reply=False)
    for size in range(0, 80):
        for filler in (b"\x00", b"\xff"):
            frame = (b"\x01\x02" + filler * size)[: max(size, 0)]
            with pytest.raises(HandshakeError):
                pair.invitation.accept(pair.bob, frame)
    for size in range(0, 60):
        with pytest.raises(DecryptError):
            pair.b.decrypt(b"\x01\x01" + bytes(size))


@pytest.mark.parametrize("point", LOW_ORDER[:3])
def test_a_card_with_a_low_order_key_cannot_be_started(point: bytes) -> None:
    pair = make_pair(b"bad-card", reply=False)
    for card in (
        Card(pair.card.identity, point, pair.card.relay_url, pair.card.mailbox),
        Card(
            PublicIdentity(pair.card.identity.sign, point),
            pair.card.prekey,
            pair.card.relay_url,
            pair.card.mailbox,
        ),
    ):
        with pytest.raises(HandshakeError, match="invalid key"):
            initiate(pair.alice, card, name="A", reply_mailbox=bytes(32))


@pytest.mark.parametrize("point", LOW_ORDER)
def test_a_first_reply_under_a_low_order_ratchet_key_fails_authentication(point: bytes) -> None:
    """Even with the real signed ML-KEM prekey in front of it, which passes its check."""
    pair = make_pair(b"low-reply", reply=False)
    _, reply = pair.b.encrypt(b"welcome", rng=pair.rng)
    forged = reply[:3] + point + reply[35:]
    assert isinstance(_refused(pair.a, forged), AuthenticationFailed)
