"""Session state read and written from the layout in docs/crypto.md ("Session state"), so a
test can build a peer that deviates in one field (an unsigned ML-KEM prekey, no prekey, an
invalid one) and hand-make the frame such a peer would send, with the real key schedule."""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from app.crypto.codec import Reader, Writer
from app.crypto.header import encode_header
from app.crypto.padding import pad
from app.crypto.primitives import dh, kdf_ck, kdf_rk, seal, x25519_public


@dataclass(frozen=True)
class State:
    ad: bytes
    rk: bytes
    dhs: bytes
    dhr: bytes
    cks: bytes
    ckr: bytes
    ns: int
    nr: int
    pn: int
    steps: int
    flags: int
    peer_sign: bytes
    kem_seed: bytes
    kem_sig: bytes
    peer_kem: bytes
    kem_ct: bytes
    prefix: bytes
    peer_prefix: bytes
    old_dhr: tuple[bytes, ...]
    skipped: tuple[tuple[bytes, int, bytes], ...]

    def with_(self, **changes: object) -> State:
        return replace(self, **changes)  # type: ignore[arg-type]


def parse(blob: bytes) -> State:
    r = Reader(blob, ValueError)
    assert r.u8() == 1
    ad, rk, dhs = r.raw(32), r.raw(32), r.raw(32)
    dhr, cks, ckr = r.var8(), r.var8(), r.var8()
    ns, nr, pn, steps = r.u32(), r.u32(), r.u32(), r.u32()
    flags, peer_sign = r.u8(), r.raw(32)
    kem_seed, kem_sig, peer_kem, kem_ct = r.var8(), r.var8(), r.var32(), r.var32()
    prefix, peer_prefix = r.var32(), r.var32()
    old = tuple(r.raw(32) for _ in range(r.u8()))
    skipped = tuple((r.raw(32), r.u32(), r.raw(32)) for _ in range(r.u32()))
    r.end()
    return State(
        ad, rk, dhs, dhr, cks, ckr, ns, nr, pn, steps, flags, peer_sign,
        kem_seed, kem_sig, peer_kem, kem_ct, prefix, peer_prefix, old, skipped,
    )  # fmt: skip


def build(s: State) -> bytes:
    w = Writer().u8(1).raw(s.ad).raw(s.rk).raw(s.dhs).var8(s.dhr).var8(s.cks).var8(s.ckr)
    w.u32(s.ns).u32(s.nr).u32(s.pn).u32(s.steps).u8(s.flags).raw(s.peer_sign)
    w.var8(s.kem_seed).var8(s.kem_sig).var32(s.peer_kem).var32(s.kem_ct)
    w.var32(s.prefix).var32(s.peer_prefix).u8(len(s.old_dhr))
    for old in s.old_dhr:
        w.raw(old)
    w.u32(len(s.skipped))
    for dhr, n, mk in s.skipped:
        w.raw(dhr).u32(n).raw(mk)
    return w.bytes()


def first_reply(
    responder: State,
    plaintext: bytes,
    *,
    kem_pk: bytes,
    kem_sig: bytes,
    ratchet_seed: bytes = b"\x05" * 32,
    padded: bytes | None = None,
) -> bytes:
    """The responder's first frame as the real key schedule makes it, with the KEM fields (or
    the padded body) the test chooses: what a peer that deviates from the protocol would send."""
    assert not responder.cks, "the responder has not sent yet"
    ours = X25519PrivateKey.from_private_bytes(ratchet_seed)
    _, cks = kdf_rk(responder.rk, dh(ours, responder.dhr))
    _, mk = kdf_ck(cks)
    header = encode_header(x25519_public(ours), responder.ns, 0, kem_pk, kem_sig, b"")
    body = pad(plaintext) if padded is None else padded
    return header + seal(mk, body, responder.ad + struct.pack(">I", 0) + header)
