"""The ratchet's documented numbers, exactly: the limits docs/crypto.md states (1,000 skipped
keys per chain, 2,000 stored, 8 old chains remembered, an ML-KEM re-key every 16th chain) and
the flags a session keeps across a restart. Literal numbers on purpose: the test is the
documentation's, not the code's, so changing a limit means changing both."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PrivateKey

from app.crypto.errors import (
    AuthenticationFailed,
    DuplicateMessage,
    LocalStateError,
    MalformedMessage,
    TooFarAhead,
)
from app.crypto.header import split_message
from app.crypto.ratchet import Session

from . import state
from .conftest import Pair, make_pair


def _burst(sender: Session, count: int, rng: object) -> tuple[Session, list[bytes]]:
    frames = []
    for i in range(count):
        sender, frame = sender.encrypt(b"%d" % i, rng=rng)  # type: ignore[arg-type]
        frames.append(frame)
    return sender, frames


def test_a_thousand_skipped_keys_in_a_chain_are_taken_and_one_more_is_too_far(
    pair: Pair,
) -> None:
    _a, frames = _burst(pair.a, 1002, pair.rng)
    b, text = pair.b.decrypt(frames[1000])  # skips 0..999: exactly 1,000
    assert text == b"1000"
    assert b.skipped_count == 1000
    with pytest.raises(TooFarAhead):
        pair.b.decrypt(frames[1001])  # would skip 1,001


def test_a_new_chain_may_start_at_message_1000_but_not_1001(pair: Pair) -> None:
    b, reply = pair.b.encrypt(b"turn", rng=pair.rng)
    a, _ = pair.a.decrypt(reply)
    a, frames = _burst(a, 1002, pair.rng)  # a new sending chain of Alice's
    assert split_message(frames[0])[0].dh != split_message(reply)[0].dh
    _b_took, text = b.decrypt(frames[1000])
    assert text == b"1000"
    with pytest.raises(TooFarAhead):
        b.decrypt(frames[1001])


def test_at_most_2000_skipped_keys_are_stored_oldest_first_out(pair: Pair) -> None:
    a, b = pair.a, pair.b
    kept: list[bytes] = []
    for _ in range(3):
        a, frames = _burst(a, 1001, pair.rng)
        b, _ = b.decrypt(frames[-1])  # 1,000 skipped each time
        kept += frames[:-1]
        b_reply, frame = b.encrypt(b"turn", rng=pair.rng)
        a, _ = a.decrypt(frame)
        b = b_reply
    assert b.skipped_count == 2000
    with pytest.raises(DuplicateMessage):
        b.decrypt(kept[999])  # the first chain's keys went first
    assert b.decrypt(kept[1000])[1] == b"0"
    blob = state.parse(b.to_bytes())
    restored = Session.from_bytes(state.build(blob))
    assert restored.skipped_count == 2000
    extra = blob.with_(skipped=(*blob.skipped, (b"\x01" * 32, 7, b"\x02" * 32)))
    with pytest.raises(LocalStateError):
        Session.from_bytes(state.build(extra))


def test_frames_of_the_last_8_chains_are_duplicates_older_ones_fail(pair: Pair) -> None:
    a, b = pair.a, pair.b
    per_chain: list[bytes] = []
    for turn in range(10):
        a, frame = a.encrypt(b"a%d" % turn, rng=pair.rng)
        b, _ = b.decrypt(frame)
        per_chain.append(frame)
        b, reply = b.encrypt(b"b%d" % turn, rng=pair.rng)
        a, _ = a.decrypt(reply)
    # Bob's current receiving chain is Alice's 10th; the 8 before it are remembered.
    for back in range(1, 9):
        with pytest.raises(DuplicateMessage):
            b.decrypt(per_chain[-1 - back])
    with pytest.raises(AuthenticationFailed):
        b.decrypt(per_chain[-10])  # 9 chains back: forgotten, so it is just a bad frame


def test_ml_kem_re_keys_every_16th_sending_chain() -> None:
    pair = make_pair(b"rekey", reply=False)
    a, b = pair.a, pair.b
    offered: list[int] = []
    for turn in range(1, 40):
        b, frame = b.encrypt(b"b", rng=pair.rng)
        if split_message(frame)[0].kem_pk:
            offered.append(turn)
        a, _ = a.decrypt(frame)
        a, frame = a.encrypt(b"a", rng=pair.rng)
        b, _ = b.decrypt(frame)
    # Bob's first chain carries the signed prekey of the handshake; then a new key pair on
    # every 16th sending chain of his (his chains are counted from the first).
    assert offered == [1, 16, 32]


def test_fresh_sessions_are_not_post_quantum_and_only_the_initiator_awaits_a_reply() -> None:
    pair = make_pair(b"fresh", reply=False)
    assert not pair.a.post_quantum
    assert not pair.b.post_quantum
    assert pair.a.awaiting_reply
    assert not pair.b.awaiting_reply
    for session in (pair.a, pair.b):
        again = Session.from_bytes(session.to_bytes())
        assert again.post_quantum is False
        assert again.awaiting_reply is session.awaiting_reply
    b, reply = pair.b.encrypt(b"r", rng=pair.rng)
    a, _ = pair.a.decrypt(reply)
    assert not a.awaiting_reply
    a, frame = a.encrypt(b"pq", rng=pair.rng)
    b, _ = b.decrypt(frame)
    for session in (a, b):
        assert session.post_quantum
        assert Session.from_bytes(session.to_bytes()).post_quantum


def test_a_restarted_responder_still_opens_the_ml_kem_step() -> None:
    pair = make_pair(b"restart", reply=False)
    b, reply = pair.b.encrypt(b"r", rng=pair.rng)
    b = Session.from_bytes(b.to_bytes())  # the KEM private key comes back from its seed
    a, _ = pair.a.decrypt(reply)
    a, frame = a.encrypt(b"pq", rng=pair.rng)
    assert split_message(frame)[0].kem_ct
    b, text = b.decrypt(frame)
    assert text == b"pq"
    assert b.post_quantum


def test_an_authentic_frame_with_bad_padding_is_malformed_and_changes_nothing() -> None:
    pair = make_pair(b"padding", reply=False)
    bob = state.parse(pair.b.to_bytes())
    kem_pk = MLKEM768PrivateKey.from_seed_bytes(bob.kem_seed).public_key().public_bytes_raw()
    for padded in (b"no marker" * 30, bytes(256), b"x" * 255 + b"\x80" + bytes(1)):
        reply = state.first_reply(bob, b"", kem_pk=kem_pk, kem_sig=bob.kem_sig, padded=padded)
        before = pair.a.to_bytes()
        with pytest.raises(MalformedMessage):
            pair.a.decrypt(reply)
        assert pair.a.to_bytes() == before
