from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from app.crypto import ratchet
from app.crypto.errors import (
    AuthenticationFailed,
    DecryptError,
    DuplicateMessage,
    LocalStateError,
    TooFarAhead,
    WrongSession,
)
from app.crypto.header import encode_header, split_message
from app.crypto.padding import bucket_size, pad, unpad
from app.crypto.ratchet import (
    DH_STEP_WORK,
    KEM_REKEY_STEPS,
    MAX_SKIP,
    MAX_STORED_SKIPPED,
    Session,
)

from .conftest import Pair, make_pair


def _assert_every_flip_rejected(session: Session, frame: bytes, ad: bytes = b"") -> None:
    before = session.to_bytes()
    for i in range(len(frame) * 8):
        flipped = bytearray(frame)
        flipped[i // 8] ^= 1 << (i % 8)
        with pytest.raises(DecryptError):
            session.decrypt(bytes(flipped), ad)
    for i in range(len(ad) * 8):
        flipped = bytearray(ad)
        flipped[i // 8] ^= 1 << (i % 8)
        with pytest.raises(DecryptError):
            session.decrypt(frame, bytes(flipped))
    assert session.to_bytes() == before
    session.decrypt(frame, ad)


def test_every_bit_flip_of_a_plain_message_is_rejected(pair: Pair) -> None:
    a, frame = pair.a.encrypt(b"x" * 40, b"mailbox-ad", rng=pair.rng)
    b, _ = pair.b.decrypt(frame, b"mailbox-ad")
    _, frame2 = a.encrypt(b"second", b"mailbox-ad", rng=pair.rng)  # same chain, no DH step
    _assert_every_flip_rejected(b, frame2, b"mailbox-ad")


def test_every_bit_flip_of_kem_bearing_frames_is_rejected() -> None:
    pair = make_pair(reply=False)
    b, reply = pair.b.encrypt(b"welcome", rng=pair.rng)  # signed ML-KEM prekey in header
    _assert_every_flip_rejected(pair.a, reply)
    a, _ = pair.a.decrypt(reply)
    a, kem_frame = a.encrypt(b"pq", rng=pair.rng)  # ML-KEM ciphertext in header
    assert split_message(kem_frame)[0].kem_ct
    _assert_every_flip_rejected(b, kem_frame)


def test_every_bit_flip_of_a_wrapped_frame_is_rejected() -> None:
    pair = make_pair(reply=False)
    _, frame = pair.a.encrypt(b"again", rng=pair.rng)
    _assert_every_flip_rejected(pair.b, frame)


def test_replay_too_far_ahead_and_wrong_session(pair: Pair) -> None:
    a, frame = pair.a.encrypt(b"m", rng=pair.rng)
    b, _ = pair.b.decrypt(frame)
    with pytest.raises(DuplicateMessage):
        b.decrypt(frame)
    for _ in range(MAX_SKIP + 2):  # receiver has n=0; n=MAX_SKIP+1 needs MAX_SKIP+1 skips
        a, far = a.encrypt(b"", rng=pair.rng)
    with pytest.raises(TooFarAhead):
        b.decrypt(far)
    other = make_pair(b"other")
    _, foreign = other.a.encrypt(b"m", rng=other.rng)
    with pytest.raises(AuthenticationFailed):
        b.decrypt(foreign)
    with pytest.raises(WrongSession):
        b.decrypt(other.first_frame)


def test_skipped_keys_are_bounded_oldest_evicted(pair: Pair) -> None:
    a, b = pair.a, pair.b
    frames = []
    for _ in range(3):
        for _ in range(MAX_SKIP):
            a, f = a.encrypt(b"old", rng=pair.rng)
            frames.append(f)
        a, last = a.encrypt(b"last", rng=pair.rng)
        b, _ = b.decrypt(last)
    assert b.skipped_count == MAX_STORED_SKIPPED
    with pytest.raises(DuplicateMessage):
        b.decrypt(frames[0])
    b2, text = b.decrypt(frames[-1])
    assert text == b"old"
    assert b2.skipped_count == MAX_STORED_SKIPPED - 1
    assert Session.from_bytes(b.to_bytes()).to_bytes() == b.to_bytes()


def test_kem_rekeys_on_schedule(pair: Pair) -> None:
    a, b = pair.a, pair.b
    kem_frames = 0
    for turn in range(3 * KEM_REKEY_STEPS):
        a, f = a.encrypt(b"%d" % turn, rng=pair.rng)
        kem_frames += bool(split_message(f)[0].kem_ct)
        b, _ = b.decrypt(f)
        b, f = b.encrypt(b"%d" % turn, rng=pair.rng)
        kem_frames += bool(split_message(f)[0].kem_ct)
        a, _ = a.decrypt(f)
    assert kem_frames >= 4


def test_state_round_trips_and_bad_state_is_refused(pair: Pair) -> None:
    raw = pair.a.to_bytes()
    again = Session.from_bytes(raw)
    assert again.to_bytes() == raw
    _a, f = again.encrypt(b"after restore", rng=pair.rng)
    assert pair.b.decrypt(f)[1] == b"after restore"
    for bad in (b"", raw[:-1], raw + b"\x00", b"\x07" + raw[1:]):
        with pytest.raises(LocalStateError):
            Session.from_bytes(bad)


@given(st.binary(max_size=70000))
@settings(max_examples=60)
def test_padding_round_trip(data: bytes) -> None:
    padded = pad(data)
    assert len(padded) == bucket_size(len(data))
    assert unpad(padded) == data


def test_padding_buckets() -> None:
    assert [bucket_size(n) for n in (0, 255, 256, 1000, 65535, 65536)] == [
        256,
        256,
        512,
        1024,
        65536,
        131072,
    ]
    assert unpad(b"") is None
    assert unpad(bytes(256)) is None
    assert unpad(b"\x80" + bytes(10)) is None


def _forged(dh: bytes, pn: int, n: int) -> bytes:
    """A frame shaped like a message with the given counters and a body that is noise."""
    return encode_header(dh, pn, n, b"", b"", b"") + bytes(64)


def test_a_forged_frame_walks_one_chain_and_changes_nothing(
    pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = pair.a, pair.b
    for _ in range(3):  # Bob's receiving chain has a key in hand and is at n=3
        a, frame = a.encrypt(b"m", rng=pair.rng)
        b, _ = b.decrypt(frame)
    before = b.to_bytes()
    steps = []
    real = ratchet.kdf_ck

    def counted(ck: bytes) -> tuple[bytes, bytes]:
        steps.append(1)
        return real(ck)

    monkeypatch.setattr(ratchet, "kdf_ck", counted)
    fresh_dh = X25519PrivateKey.generate().public_key().public_bytes_raw()
    forged = _forged(fresh_dh, 3 + MAX_SKIP, MAX_SKIP)
    # Before it can fail, it costs the new chain's walk only: the previous chain's skipped
    # keys (pn) are derived after authentication, which a forgery never passes.
    assert b.work(forged) == DH_STEP_WORK + MAX_SKIP + 1
    with pytest.raises(AuthenticationFailed):
        b.decrypt(forged)
    assert len(steps) == MAX_SKIP + 1
    assert b.to_bytes() == before
    steps.clear()
    same_chain = _forged(split_message(frame)[0].dh, 0, 3 + MAX_SKIP)
    assert b.work(same_chain) == MAX_SKIP + 1
    with pytest.raises(AuthenticationFailed):
        b.decrypt(same_chain)
    assert len(steps) == MAX_SKIP + 1
    assert b.to_bytes() == before


def test_work_prices_what_decrypt_will_do(pair: Pair) -> None:
    a, b = pair.a, pair.b  # Alice has Bob's reply: her next message starts a new chain
    a, first = a.encrypt(b"0", rng=pair.rng)
    a, second = a.encrypt(b"1", rng=pair.rng)
    a, third = a.encrypt(b"2", rng=pair.rng)
    assert b.work(first) == DH_STEP_WORK + 1
    assert b.work(second) == DH_STEP_WORK + 2
    b, _ = b.decrypt(second)  # skips (and keeps) the first's key
    assert b.work(first) == 0
    assert b.work(third) == 1  # the next in order
    assert b.work(b"\x00garbage") == 0  # not a message: refused before any work
    b, text = b.decrypt(first)
    assert text == b"0"


@settings(max_examples=300, deadline=None)
@given(frame=st.binary(max_size=2000))
def test_work_prices_any_bytes_a_relay_sends_without_raising(frame: bytes) -> None:
    pair = make_pair(b"work")
    assert pair.b.work(frame) >= 0
    assert pair.b.work(frame[:3] + frame) >= 0
