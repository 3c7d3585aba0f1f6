"""A card naming up to three relays: version 3 only when there are fallbacks (a card without
them is the version-2 record byte for byte), every field checked, and the largest LAN card
still one QR code that a laptop camera reads."""

from __future__ import annotations

import io

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image, ImageFilter

from app.core.qr import decode_image, make_png, qr_version
from app.crypto.card import CARD_VERSION, FALLBACK_VERSION, Card, valid_relays
from app.crypto.errors import CardError
from app.crypto.handshake import Invitation
from app.crypto.identity import Identity
from app.crypto.primitives import LABEL_CARD_CHECK, sha256

LAN = ("ws://192.168.178.120:8765", "ws://10.100.200.150:8765", "ws://172.16.254.201:8765")
urls = st.from_regex(r"wss?://[a-z0-9.]{1,40}:[0-9]{1,5}", fullmatch=True)


def card(*relays: str, name: str = "Alice Example", address: bool = False) -> Card:
    invitation = Invitation.generate()
    return invitation.card(
        Identity.generate(), relays[0], name, address=address, fallbacks=tuple(relays[1:])
    )


@given(st.lists(urls, min_size=1, max_size=3, unique=True), st.booleans())
def test_any_card_with_up_to_two_fallbacks_round_trips(relays: list[str], address: bool) -> None:
    made = card(*relays, address=address)
    parsed = Card.parse(made.encode())
    assert parsed == made
    assert parsed.relays == tuple(relays)
    assert made.to_bytes()[0] == (FALLBACK_VERSION if len(relays) > 1 else CARD_VERSION)


def test_without_fallbacks_the_record_is_version_2_unchanged() -> None:
    one = card(LAN[0])
    record = one.to_bytes()
    assert record[0] == CARD_VERSION
    # Appending a fallback changes only the version byte, the tail and the checksum.
    three = Card(one.identity, one.prekey, LAN[0], one.mailbox, one.name, False, LAN[1:])
    longer = three.to_bytes()
    assert longer[1:-4].startswith(record[1:-4])
    tail = longer[len(record) - 4 : -4]
    assert (
        tail == bytes([2, len(LAN[1])]) + LAN[1].encode() + bytes([len(LAN[2])]) + LAN[2].encode()
    )


def _resealed(record: bytes) -> bytes:
    body = record[:-4]
    return body + sha256(LABEL_CARD_CHECK, body)[:4]


@pytest.mark.parametrize("count", [0, 3, 255])
def test_a_fallback_count_outside_one_to_two_is_refused(count: int) -> None:
    record = card(*LAN).to_bytes()
    body = record[:-4]
    at = len(body) - (3 + len(LAN[1]) + len(LAN[2]))
    forged = _resealed(body[:at] + bytes([count]) + body[at + 1 :] + b"0000")
    with pytest.raises(CardError, match="fallback relays"):
        Card.from_bytes(forged)


def test_a_relay_named_twice_or_a_bad_fallback_is_refused() -> None:
    assert not valid_relays((LAN[0], LAN[0]))
    assert not valid_relays((LAN[0], "http://x:1"))
    assert not valid_relays((*LAN, "ws://four:1"))
    assert not valid_relays(())
    good = card(*LAN)
    with pytest.raises(ValueError, match="relay URL"):
        Card(good.identity, good.prekey, LAN[0], good.mailbox, fallbacks=(LAN[0],))
    # The same, forged into a record with a valid checksum: refused when read.
    record = good.to_bytes().replace(LAN[2].encode(), LAN[1].encode())
    with pytest.raises(CardError, match="invalid relay URL"):
        Card.from_bytes(_resealed(record))


def test_a_version_2_record_with_trailing_fallbacks_is_refused() -> None:
    record = bytearray(card(*LAN).to_bytes())
    record[0] = CARD_VERSION
    with pytest.raises(CardError, match=r"trailing|truncated|too long|extra"):
        Card.from_bytes(_resealed(bytes(record)))


def test_three_lan_relays_fit_one_code_a_laptop_camera_reads() -> None:
    text = card(*LAN, name="Alice Example-Long Name").encode()
    version = qr_version(text)
    print(f"card with three LAN relays: {len(text)} characters, QR version {version}")
    assert (len(text), version) == (385, 12)  # as docs/crypto.md says
    # As a 640x480 camera frame sees a phone screen: small, blurred, compressed.
    code = Image.open(io.BytesIO(make_png(text, scale=4))).convert("L")
    code.thumbnail((300, 300))
    frame = Image.new("L", (640, 480), 170)
    frame.paste(code, (170, 90))
    frame = frame.filter(ImageFilter.GaussianBlur(0.6))
    out = io.BytesIO()
    frame.save(out, "JPEG", quality=60)
    assert Card.parse(decode_image(Image.open(io.BytesIO(out.getvalue())))).relays == LAN
