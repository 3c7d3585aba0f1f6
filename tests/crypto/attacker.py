"""What a hostile relay knows, and the frames it can build from that knowledge alone.

The relay operator has photographed both cards (identity keys, prekeys, invitation mailbox),
sees every frame on the wire in full (handshake wrappers, ratchet headers, ML-KEM public keys,
signatures and ciphertexts), and may send any bytes to any mailbox at any time. It also runs
its own keys: an X25519 key pair (so it knows every DH output between its public key and any
public key it has seen), an ML-KEM key pair and an Ed25519 key.

What it does not know is anything secret to the two people: private keys, root keys, chain
keys. So its message keys come from public constants and public values: the chain KDF over
an empty or all-zero key (the old initiator bug), HKDF/root-KDF outputs salted with guessable
roots over DH outputs it can compute, and random keys. `Attacker.frames()` is a hypothesis
strategy over everything it can build: forged frames under those keys with the correct
session AD, and replays, splices, truncations and bit flips of what it saw.
"""

from __future__ import annotations

import hmac
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.mlkem import (
    MLKEM768PrivateKey,
    MLKEM768PublicKey,
)
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from hypothesis import strategies as st

from app.crypto.card import Card
from app.crypto.handshake import session_ad
from app.crypto.header import (
    KEM_CT_SIZE,
    KEM_PK_SIZE,
    SIG_SIZE,
    TYPE_INIT,
    encode_header,
    frame_type,
    init_prefix,
    split_init,
    split_message,
)
from app.crypto.identity import PublicIdentity
from app.crypto.padding import pad
from app.crypto.primitives import LABEL_KEM_SIG, LABEL_ROOT, hkdf, seal

# Public points of low order (and a non-canonical one): X25519 outputs from these are zero.
LOW_ORDER = [
    bytes(32),
    (1).to_bytes(32, "little"),
    bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800"),
    bytes.fromhex("5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157"),
    b"\xec" + b"\xff" * 30 + b"\x7f",
    b"\xed" + b"\xff" * 30 + b"\x7f",
    b"\xee" + b"\xff" * 30 + b"\x7f",
]


def _chain(ck: bytes, n: int) -> bytes:
    """The message key at index n of a chain started from `ck`, by the public chain KDF
    (HMAC-SHA256 as docs/crypto.md specifies), with no length check: the attacker's own code."""
    for _ in range(n):
        ck = hmac.digest(ck, b"\x02", "sha256")
    return hmac.digest(ck, b"\x01", "sha256")


@dataclass
class Attacker:
    """Both cards, every frame seen on the wire, and the attacker's own keys."""

    cards: list[Card]
    identities: list[PublicIdentity]
    wire: list[bytes] = field(default_factory=list)
    dh_key: X25519PrivateKey = field(
        default_factory=lambda: X25519PrivateKey.from_private_bytes(b"\x07" * 32)
    )
    kem_key: MLKEM768PrivateKey = field(
        default_factory=lambda: MLKEM768PrivateKey.from_seed_bytes(b"\x09" * 64)
    )
    sign_key: Ed25519PrivateKey = field(
        default_factory=lambda: Ed25519PrivateKey.from_private_bytes(b"\x0b" * 32)
    )

    def saw(self, frames: Iterable[bytes]) -> None:
        self.wire.extend(frames)

    # -- what the wire and the cards reveal -------------------------------------------------

    def ephemerals(self) -> list[bytes]:
        out = []
        for frame in self.wire:
            try:
                if frame_type(frame) == TYPE_INIT:
                    out.append(split_init(frame).ephemeral)
            except Exception:
                continue
        return sorted(set(out))

    def prefixes(self) -> list[bytes]:
        out = []
        for frame in self.wire:
            try:
                if frame_type(frame) == TYPE_INIT:
                    init = split_init(frame)
                    out.append(frame[: len(frame) - len(init.message)])
            except Exception:
                continue
        return sorted(set(out))

    def headers(self) -> list[tuple[bytes, bytes, bytes, bytes]]:
        """(ratchet key, KEM public key, KEM signature, KEM ciphertext) of each frame seen."""
        out = []
        for frame in self.wire:
            try:
                inner = split_init(frame).message if frame_type(frame) == TYPE_INIT else frame
                header, _ = split_message(inner)
            except Exception:
                continue
            out.append((header.dh, header.kem_pk, header.kem_sig, header.kem_ct))
        return out

    def public_keys(self) -> list[bytes]:
        keys = {c.prekey for c in self.cards}
        keys |= {i.dh for i in self.identities}
        keys |= set(self.ephemerals())
        keys |= {h[0] for h in self.headers()}
        keys.add(self.dh_key.public_key().public_bytes_raw())
        return sorted(keys)

    def ads(self) -> list[bytes]:
        """Every session AD the attacker can compute: both identities (in either role) and
        each ephemeral key seen."""
        out = []
        for ek in self.ephemerals() or [bytes(32)]:
            for a in self.identities:
                for b in self.identities:
                    if a != b:
                        out.append(session_ad(a, b, ek))
        return out

    def chain_keys(self) -> list[bytes]:
        """Chain keys the attacker can compute: public constants, and root-KDF outputs over DH
        values it knows, salted with guessable roots."""
        keys = [b"", bytes(32), b"\xff" * 32]
        ours = self.dh_key
        roots = [bytes(32), b"\xff" * 32, *self.ads()[:2]]
        for pub in self.public_keys()[:8]:
            try:
                shared = ours.exchange(X25519PublicKey.from_public_bytes(pub))
            except ValueError:
                continue
            for root in roots:
                out = hkdf(shared, root, LABEL_ROOT, 64)
                keys.append(out[32:])
        return keys

    # -- building frames -------------------------------------------------------------------

    def frames(self) -> st.SearchStrategy[bytes]:
        """Every kind of frame this attacker can produce; half of them forged under keys it
        can compute, so a search of a few thousand frames tries each forgery many times."""
        return st.one_of(
            self._forged(), st.one_of(self._mutated(), self._replayed(), self._garbage())
        )

    def _replayed(self) -> st.SearchStrategy[bytes]:
        return st.sampled_from(self.wire)

    def _garbage(self) -> st.SearchStrategy[bytes]:
        prefixes = st.sampled_from([b"\x01\x01", b"\x01\x02", b"\x02\x01", b""])
        return st.builds(lambda p, b: p + b, prefixes, st.binary(max_size=200))

    def _mutated(self) -> st.SearchStrategy[bytes]:
        @st.composite
        def build(draw: st.DrawFn) -> bytes:
            frame = bytearray(draw(st.sampled_from(self.wire)))
            how = draw(st.sampled_from(["flip", "cut", "splice", "extend"]))
            if how == "flip":
                for _ in range(draw(st.integers(1, 3))):
                    bit = draw(st.integers(0, len(frame) * 8 - 1))
                    frame[bit // 8] ^= 1 << (bit % 8)
            elif how == "cut":
                frame = frame[: draw(st.integers(0, len(frame) - 1))]
            elif how == "splice":
                other = draw(st.sampled_from(self.wire))
                at = draw(st.integers(0, min(len(frame), len(other))))
                frame = frame[:at] + other[at:]
            else:
                frame += draw(st.binary(min_size=1, max_size=40))
            return bytes(frame)

        return build()

    def _forged(self) -> st.SearchStrategy[bytes]:
        headers = self.headers()
        seen_kem_pks = sorted({h[1] for h in headers if h[1]})
        seen_sigs = sorted({h[2] for h in headers if h[2]})
        seen_cts = sorted({h[3] for h in headers if h[3]})
        own_kem_pk = self.kem_key.public_key().public_bytes_raw()
        counters = st.one_of(
            st.integers(0, 4),
            st.sampled_from([999, 1000, 1001, 2**31, 2**32 - 1]),
        )

        @st.composite
        def build(draw: st.DrawFn) -> bytes:
            dh = draw(
                st.one_of(
                    st.sampled_from([c.prekey for c in self.cards]),
                    st.sampled_from(self.public_keys()),
                    st.sampled_from(LOW_ORDER),
                )
            )
            pn, n = draw(counters), draw(counters)
            kem_pk = kem_sig = kem_ct = b""
            if draw(st.integers(0, 3)) == 0:
                kem_pk = draw(st.sampled_from([*seen_kem_pks, own_kem_pk, b"\xff" * KEM_PK_SIZE]))
                ad_for_sig = draw(st.sampled_from(self.ads()))
                own_sig = self.sign_key.sign(LABEL_KEM_SIG + ad_for_sig + kem_pk)
                kem_sig = draw(st.sampled_from([*seen_sigs, own_sig, bytes(SIG_SIZE), b""]))
            if draw(st.integers(0, 3)) == 0:
                candidates = [*seen_cts, bytes(KEM_CT_SIZE)]
                for pk in seen_kem_pks[:1]:
                    candidates.append(MLKEM768PublicKey.from_public_bytes(pk).encapsulate()[1])
                kem_ct = draw(st.sampled_from(candidates))
            header = encode_header(dh, pn, n, kem_pk, kem_sig, kem_ct)
            chain = draw(
                st.one_of(st.just(b""), st.just(bytes(32)), st.sampled_from(self.chain_keys()))
            )
            index = n if n < 50 else draw(st.integers(0, 3))
            if draw(st.integers(0, 3)):
                mk = _chain(chain, index)
            else:
                mk = draw(st.binary(min_size=32, max_size=32))
            ad = draw(st.sampled_from(self.ads()))
            body = draw(st.one_of(st.binary(max_size=300), st.just(b"\x81\xa1k\xa3msg")))
            sealed = seal(mk, pad(body), ad + struct.pack(">I", 0) + header)
            frame = header + sealed
            wrap = draw(st.sampled_from(["none", "none", "seen", "fresh"]))
            prefixes = self.prefixes()
            if wrap == "seen" and prefixes:
                frame = draw(st.sampled_from(prefixes)) + frame
            elif wrap == "fresh":
                own_ek = self.dh_key.public_key().public_bytes_raw()
                frame = init_prefix(own_ek, draw(st.binary(min_size=16, max_size=200))) + frame
            return frame

        return build()


def empty_chain_forgery(
    alice: PublicIdentity, bob: Card, first_frame: bytes, plaintext: bytes, n: int = 0
) -> bytes:
    """The old critical forgery: "Bob's" frame on Alice's first chain, whose key derives from
    the empty chain key. Everything in it comes from the two cards and Alice's first frame."""
    ek = split_init(first_frame).ephemeral
    ad = session_ad(alice, bob.identity, ek)
    header = encode_header(bob.prekey, 0, n, b"", b"", b"")
    mk = _chain(b"", n)
    return header + seal(mk, pad(plaintext), ad + bytes(4) + header)
