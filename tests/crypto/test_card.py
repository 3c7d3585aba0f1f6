from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.crypto.card import CARD_PREFIX, Card
from app.crypto.errors import CardError
from app.crypto.identity import PublicIdentity
from app.crypto.names import valid_name

from .conftest import DetRng, make_pair

keys = st.binary(min_size=32, max_size=32)
names = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cf", "Cs", "Co", "Cn")), max_size=16
).filter(lambda s: valid_name(s, allow_empty=True))  # a blank name (" ") is refused
urls = st.from_regex(r"wss?://[a-z0-9.\-]{1,30}(:[0-9]{1,5})?(/[a-z0-9]{0,10})?", fullmatch=True)


def _card() -> Card:
    return make_pair().card


@given(st.data())
def test_round_trip(data: st.DataObject) -> None:
    pair = make_pair()
    card = Card(
        PublicIdentity(pair.bob.public.sign, data.draw(keys)),
        data.draw(keys),
        data.draw(urls),
        data.draw(keys),
        data.draw(names),
        data.draw(st.booleans()),
    )
    text = card.encode()
    assert text.startswith(CARD_PREFIX)
    assert text[len(CARD_PREFIX) :] == text[len(CARD_PREFIX) :].upper()
    assert "=" not in text
    assert Card.parse(text) == card
    assert Card.parse(text.lower()) == card
    assert Card.parse(" " + text[:40] + "\n" + text[40:]) == card


def test_typical_card_fits_300_chars() -> None:
    card = _card()
    long = Card(
        card.identity, card.prekey, "ws://relay.example.org:8765", card.mailbox, "Alexandra"
    )
    assert len(card.encode()) <= 300
    assert len(long.encode()) <= 300


def test_every_truncation_is_rejected() -> None:
    text = _card().encode()
    for cut in range(len(text)):
        with pytest.raises(CardError):
            Card.parse(text[:cut])


def test_every_single_character_typo_is_rejected() -> None:
    text = _card().encode()
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    for i in range(len(CARD_PREFIX), len(text)):
        wrong = alphabet[(alphabet.index(text[i]) + 7) % 32]
        with pytest.raises(CardError) as info:
            Card.parse(text[:i] + wrong + text[i + 1 :])
        assert info.value.reason


def _reencode(record: bytes) -> str:
    return CARD_PREFIX + base64.b32encode(record).decode().rstrip("=")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("hello", "not an AnonChat card"),
        ("anonchat:!!!!", "invalid characters"),
        ("anonchat:A", "truncated or mistyped"),
        (_reencode(b"\x04" + bytes(200)), "unknown card version"),
        (_reencode(b"\x01" + bytes(10)), "truncated"),
    ],
)
def test_errors_say_what_is_wrong(text: str, reason: str) -> None:
    with pytest.raises(CardError) as info:
        Card.parse(text)
    assert info.value.reason.startswith(reason)


def test_checksum_catches_a_changed_key_bit() -> None:
    record = bytearray(_card().to_bytes())
    record[40] ^= 0x01
    with pytest.raises(CardError, match="checksum"):
        Card.parse(_reencode(bytes(record)))


def test_bad_url_inside_a_valid_checksum_is_rejected() -> None:
    from app.crypto.primitives import LABEL_CARD_CHECK, sha256

    body = b"\x01" + bytes(128) + bytes((7,)) + b"http://" + b"\x00"
    with pytest.raises(CardError, match="relay URL"):
        Card.parse(_reencode(body + sha256(LABEL_CARD_CHECK, body)[:4]))


def test_constructor_refuses_bad_fields() -> None:
    card = _card()
    with pytest.raises(ValueError):
        Card(card.identity, card.prekey, "http://x", card.mailbox)
    with pytest.raises(ValueError):
        Card(card.identity, card.prekey[:31], card.relay_url, card.mailbox)
    with pytest.raises(ValueError):
        Card(card.identity, card.prekey, card.relay_url, card.mailbox, "x\n")


def test_det_rng_is_deterministic() -> None:
    assert DetRng(b"s")(40) == DetRng(b"s")(40)
