"""Ratchet cost per message (encrypt + decrypt): ours, the bare primitive floor, doubleratchet.

Two workloads, all measured in this one run: a one-way burst of 10,000 messages (symmetric
ratchet only) and a ping-pong of 2,000 (a DH ratchet step every turn). The floor makes the same
HMAC, AES-GCM, HKDF and X25519 calls directly with no ratchet logic. The last stdout line is
one JSON object.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from doubleratchet import double_ratchet as dr_core
from doubleratchet.recommended import (
    HashFunction,
    aead_aes_hmac,
    diffie_hellman_ratchet_curve25519,
    kdf_hkdf,
    kdf_separate_hmacs,
)

from app.crypto.handshake import Invitation, initiate
from app.crypto.identity import Identity
from app.crypto.padding import pad
from app.crypto.primitives import hkdf

BURST = 10_000
PINGPONG = 2_000
PLAINTEXT = b"m" * 100
NONCE = bytes(12)


def ours_pair() -> tuple[object, object]:
    alice, bob = Identity.generate(), Identity.generate()
    invitation = Invitation.generate()
    a = initiate(
        alice, invitation.card(bob, "ws://127.0.0.1:8765"), name="", reply_mailbox=bytes(32)
    )
    a, first = a.encrypt(b"hi")
    b = invitation.accept(bob, first).session
    b, reply = b.encrypt(b"hi")
    a, _ = a.decrypt(reply)
    a, frame = a.encrypt(b"hi")  # settles the first ML-KEM encapsulation
    b, _ = b.decrypt(frame)
    return a, b


def ours_burst() -> float:
    a, b = ours_pair()
    start = time.perf_counter()
    frames = []
    for _ in range(BURST):
        a, frame = a.encrypt(PLAINTEXT)  # type: ignore[attr-defined]
        frames.append(frame)
    for frame in frames:
        b, _text = b.decrypt(frame)  # type: ignore[attr-defined]
    return (time.perf_counter() - start) / BURST


def ours_pingpong() -> float:
    a, b = ours_pair()
    start = time.perf_counter()
    for i in range(PINGPONG):
        sender, receiver = (a, b) if i % 2 == 0 else (b, a)
        sender, frame = sender.encrypt(PLAINTEXT)  # type: ignore[attr-defined]
        receiver, _ = receiver.decrypt(frame)  # type: ignore[attr-defined]
        a, b = (sender, receiver) if i % 2 == 0 else (receiver, sender)
    return (time.perf_counter() - start) / PINGPONG


def _ck(key: bytes) -> tuple[bytes, bytes]:
    return hmac.digest(key, b"\x02", "sha256"), hmac.digest(key, b"\x01", "sha256")


def floor_burst() -> float:
    padded = pad(PLAINTEXT)
    ad = os.urandom(32 + 4 + 43)
    start = time.perf_counter()
    cks = ckr = bytes(32)
    cts = []
    for _ in range(BURST):
        cks, mk = _ck(cks)
        cts.append(AESGCM(mk).encrypt(NONCE, padded, ad))
    for ct in cts:
        ckr, mk = _ck(ckr)
        AESGCM(mk).decrypt(NONCE, ct, ad)
    return (time.perf_counter() - start) / BURST


def floor_pingpong() -> float:
    padded = pad(PLAINTEXT)
    ad = os.urandom(32 + 4 + 43)
    keys = [X25519PrivateKey.generate(), X25519PrivateKey.generate()]
    rk = bytes(32)
    start = time.perf_counter()
    for i in range(PINGPONG):
        me, peer = i % 2, 1 - i % 2
        keys[me] = X25519PrivateKey.generate()  # sender's new ratchet key
        out = keys[me].exchange(keys[peer].public_key())
        derived = hkdf(out, rk, b"root", 64)
        rk, ck = derived[:32], derived[32:]
        ck, mk = _ck(ck)
        ct = AESGCM(mk).encrypt(NONCE, padded, ad)
        out = keys[peer].exchange(keys[me].public_key())  # receiver's side of the same step
        derived = hkdf(out, bytes(32), b"root", 64)
        _, _mk2 = _ck(derived[32:])
        AESGCM(mk).decrypt(NONCE, ct, ad)
    return (time.perf_counter() - start) / PINGPONG


class _DR(dr_core.DoubleRatchet):
    @staticmethod
    def _build_associated_data(associated_data: bytes, header: object) -> bytes:
        h = header  # type: ignore[assignment]
        return (
            associated_data
            + h.ratchet_pub  # type: ignore[attr-defined]
            + h.sending_chain_length.to_bytes(8, "big")  # type: ignore[attr-defined]
            + h.previous_sending_chain_length.to_bytes(8, "big")  # type: ignore[attr-defined]
        )


class _DH(diffie_hellman_ratchet_curve25519.DiffieHellmanRatchet):
    pass


class _AEAD(aead_aes_hmac.AEAD):
    @staticmethod
    def _get_hash_function() -> HashFunction:
        return HashFunction.SHA_256

    @staticmethod
    def _get_info() -> bytes:
        return b"bench aead"


class _RootKDF(kdf_hkdf.KDF):
    @staticmethod
    def _get_hash_function() -> HashFunction:
        return HashFunction.SHA_256

    @staticmethod
    def _get_info() -> bytes:
        return b"bench root"


class _ChainKDF(kdf_separate_hmacs.KDF):
    @staticmethod
    def _get_hash_function() -> HashFunction:
        return HashFunction.SHA_256


def _dr_args() -> dict[str, object]:
    return {
        "diffie_hellman_ratchet_class": _DH,
        "root_chain_kdf": _RootKDF,
        "message_chain_kdf": _ChainKDF,
        "message_chain_constant": b"\x02\x01",
        "dos_protection_threshold": 1000,
        "max_num_skipped_message_keys": 2000,
        "aead": _AEAD,
    }


async def _dr_pair() -> tuple[object, object]:
    bob_priv = X25519PrivateKey.generate()
    bob_pub = bob_priv.public_key().public_bytes_raw()
    shared, ad = os.urandom(32), os.urandom(32)
    a, msg = await _DR.encrypt_initial_message(
        **_dr_args(),
        shared_secret=shared,
        recipient_ratchet_pub=bob_pub,
        message=b"hi",
        associated_data=ad,
    )
    b, _ = await _DR.decrypt_initial_message(
        **_dr_args(),
        shared_secret=shared,
        own_ratchet_priv=bob_priv.private_bytes_raw(),
        message=msg,
        associated_data=ad,
    )
    return a, b


async def dr_burst() -> float:
    a, b = await _dr_pair()
    ad = b"ad"
    start = time.perf_counter()
    msgs = [await a.encrypt_message(PLAINTEXT, ad) for _ in range(BURST)]  # type: ignore[attr-defined]
    for msg in msgs:
        await b.decrypt_message(msg, ad)  # type: ignore[attr-defined]
    return (time.perf_counter() - start) / BURST


async def dr_pingpong() -> float:
    a, b = await _dr_pair()
    ad = b"ad"
    start = time.perf_counter()
    for i in range(PINGPONG):
        sender, receiver = (b, a) if i % 2 == 0 else (a, b)
        msg = await sender.encrypt_message(PLAINTEXT, ad)  # type: ignore[attr-defined]
        await receiver.decrypt_message(msg, ad)  # type: ignore[attr-defined]
    return (time.perf_counter() - start) / PINGPONG


def best(fn: object, runs: int = 3) -> float:
    return min(fn() for _ in range(runs))  # type: ignore[operator]


def main() -> None:
    ob, fb = best(ours_burst), best(floor_burst)
    op, fp = best(ours_pingpong), best(floor_pingpong)
    db = min(asyncio.run(dr_burst()) for _ in range(2))
    dp = min(asyncio.run(dr_pingpong()) for _ in range(2))
    us = 1e6
    print(
        f"burst    ours {ob * us:7.1f} us/msg  floor {fb * us:7.1f}  doubleratchet {db * us:7.1f}"
    )
    print(
        f"pingpong ours {op * us:7.1f} us/msg  floor {fp * us:7.1f}  doubleratchet {dp * us:7.1f}"
    )
    result = {
        "burst_ours_us": round(ob * us, 2),
        "burst_floor_us": round(fb * us, 2),
        "burst_doubleratchet_us": round(db * us, 2),
        "pingpong_ours_us": round(op * us, 2),
        "pingpong_floor_us": round(fp * us, 2),
        "pingpong_doubleratchet_us": round(dp * us, 2),
        "burst_vs_floor": round(ob / fb, 3),
        "pingpong_vs_floor": round(op / fp, 3),
        "speedup_vs_doubleratchet": round(min(db / ob, dp / op), 3),
        "burst_speedup_vs_doubleratchet": round(db / ob, 3),
        "pingpong_speedup_vs_doubleratchet": round(dp / op, 3),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
