"""Fixed vectors from a deterministic RNG: any change to a label or layout fails here.

If a change is intended, bump the relevant version byte and regenerate these on purpose.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace

from app.crypto.card import Card
from app.crypto.handshake import Invitation, initiate
from app.crypto.identity import Identity
from app.crypto.primitives import hkdf, kdf_ck, kdf_rk
from app.crypto.safety import format_safety_number, safety_number, verification_payload

from .conftest import DetRng

CARD = (
    "anonchat:AIAEPHREFBIJCWWHJVVZSRV22TMM3FQY5WZXMLM23RWMYKYFQDGFKEDX6F7QX7ERMNM74DPFKAPSFX7JAWUA"
    "YKBHAAYA4UCUZNX72WO2FB545IIQAAQHHYAZD5VXDACBJ4BMOQZNW5AGYSA42XZOTK5XIGIBAVFPXAW7BOLJAE2R3PPJ"
    "FP4HOSHVC4HOMMRMJOINE53QRDLLRYPECN3XGORPF4YTENZOGAXDALRRHI4DONRVANBG6YXAXRK6M"
)
# The same card as version 1 wrote it (no flags byte): still read, as a long-lived address.
CARD_V1 = (
    "anonchat:AFDZ4JBIKCIVVR2NNOMUNOWU3DGZMGHNWN3C3GW4NTGCWBMAZRKRA57RP4F7ZELDLH7A3ZKQD4RN72IFVAGC"
    "QJYAGAHFAVGLN76VTWRIPPHKCEAAEBZ6AGI7NNYYAQKPALDUGLNXIBWEQHGV6LU2XN2BSAIFJL5YFXYLS2IBGUO332JL"
    "7B3UR5IXB3TDELCLSDJHO4EI224ODZATO5ZTULZPGEZDOLRQFYYC4MJ2HA3TMNIDIJXWEPCPVUBA"
)
SAFETY = "528775843586315977534375585826884736018911912818510212469640"
VERIFY = (
    "anonchat-verify:AETLY6SLDHHNSL7O3VSXM2W5RCCCQPVXHOTWOFMFRR4RFISORBEVRXQ4CMLS2POK6N3SH72BGJ2S"
    "XKUVLRMZT54CXT2UXLCBJEPEFUTT"
)
FIRST_FRAME = "9fc8c71188262526494304b0646a9016759f7dd52b78d68e9e889cdb43e1630a"
REPLY_FRAME = "1e0392250de3f6a8b97f37d306962b5b3ccbd8edc4561585ccaa49c053803ddb"
KEM_FRAME = "3fe5e2bd631702765948e1b831f4be9de05ac1562e6281447c07cab8267d20aa"
ALICE_STATE = "987f4f7275eae036c8443b41c25ac6c40b76233b3f172660119b6dc8ead44526"
ROOT = (
    "4d9f2f29c330e7aaac662136fec9ebe737691f912b9f464caaa7b33709012b33"
    "4fcb73f292f20808cb3baaa5cde35b5ae3f1d508678a822a2eb04ca1fff7a9c5"
)
CHAIN = (
    "4304c22c84a53755ab08ead8d97a8d429be5efa480682d7ad1da27f73e1fbe1d"
    "9b4c8120a4823a95f47cde17a244f4507244ee6e3957d1fab9fa29b44d3829b7"
)


def _h(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_conversation_vectors() -> None:
    rng = DetRng(b"anonchat test vector")
    alice, bob = Identity.generate(rng), Identity.generate(rng)
    invitation = Invitation.generate(rng)
    card = invitation.card(bob, "ws://127.0.0.1:8765", "Bob")
    assert card.encode() == CARD
    assert Card.parse(CARD_V1) == replace(card, address=True)
    assert safety_number(alice.public, bob.public) == SAFETY
    assert format_safety_number(SAFETY).startswith("52877 58435 ")
    assert verification_payload(alice.public, bob.public) == VERIFY
    a = initiate(alice, card, name="Alice", reply_mailbox=bytes(range(32)), rng=rng)
    a, first = a.encrypt(b"hello", rng=rng)
    assert _h(first) == FIRST_FRAME
    assert len(first) == 472
    accepted = invitation.accept(bob, first, rng=rng)
    _b, reply = accepted.session.encrypt(b"welcome", rng=rng)
    assert _h(reply) == REPLY_FRAME
    assert len(reply) == 1563
    a, text = a.decrypt(reply)
    assert text == b"welcome"
    a, kem = a.encrypt(
        b"post-quantum now", rng=rng, encap=lambda _: (bytes(range(32)), bytes(1088))
    )
    assert _h(kem) == KEM_FRAME
    assert len(kem) == 1403
    assert _h(a.to_bytes()) == ALICE_STATE


def test_kdf_vectors() -> None:
    rk, ck = kdf_rk(bytes(32), bytes(range(32)), b"\x01" * 32)
    assert (rk + ck).hex() == ROOT
    nxt, mk = kdf_ck(bytes(range(32)))
    assert (nxt + mk).hex() == CHAIN


def test_hkdf_rfc5869_case_1() -> None:
    okm = hkdf(b"\x0b" * 22, bytes(range(13)), bytes(range(0xF0, 0xFA)), 42)
    assert okm.hex() == (
        "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
    )
