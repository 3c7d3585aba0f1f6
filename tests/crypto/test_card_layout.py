"""The contact card as docs/crypto.md lays it out, built by hand here:

``version=2 || flags(1) || identity Ed25519(32) || identity X25519(32) || prekey(32) ||
mailbox id(32) || url_len(1) || url || name_len(1) || name || checksum(4)`` (version 1: no
flags, an address), checksum = the first 4 bytes of
``H("anonchat/card-check/v1\\0" || everything before)``; the text is ``anonchat:`` + uppercase
unpadded canonical base32. Each way a card can be wrong has its own `CardError` reason.
"""

from __future__ import annotations

import base64
import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.crypto.card import Card, valid_relay_url
from app.crypto.errors import CardError
from app.crypto.identity import PublicIdentity

SIGN, DH = bytes(range(1, 33)), bytes(range(33, 65))
PREKEY, MAILBOX = bytes(range(65, 97)), bytes(range(97, 129))
URL = "ws://127.0.0.1:8765"
MIN_RECORD = 136  # 1 + 1 + 4 * 32 + 1 + 1 + 4: empty URL and name


def _body(
    url: bytes = URL.encode(), name: bytes = b"Bob", version: int = 2, flags: int = 0
) -> bytes:
    return (
        bytes([version])
        + (bytes([flags]) if version == 2 else b"")
        + SIGN
        + DH
        + PREKEY
        + MAILBOX
        + bytes([len(url)])
        + url
        + bytes([len(name)])
        + name
    )


def _checked(body: bytes) -> bytes:
    return body + hashlib.sha256(b"anonchat/card-check/v1\x00" + body).digest()[:4]


def _text(record: bytes) -> str:
    return "anonchat:" + base64.b32encode(record).decode().rstrip("=")


def _card(url: str = URL, name: str = "Bob", address: bool = False) -> Card:
    return Card(PublicIdentity(SIGN, DH), PREKEY, url, MAILBOX, name, address)


def _reason(parse: object, value: object) -> str:
    with pytest.raises(CardError) as info:
        parse(value)  # type: ignore[operator]
    assert str(info.value) == info.value.reason
    return info.value.reason


def test_the_record_is_the_documented_layout() -> None:
    record = _checked(_body())
    assert len(record) == MIN_RECORD + len(URL) + len("Bob")
    assert _card().to_bytes() == record
    assert _card().encode() == _text(record)
    assert Card.from_bytes(record) == _card()
    assert Card.parse(_text(record)) == _card()


def test_the_flags_byte_says_an_address_from_a_one_time_code() -> None:
    assert _card().address is False
    record = _checked(_body(flags=1))
    assert _card(address=True).to_bytes() == record
    assert Card.from_bytes(record) == _card(address=True)
    assert Card.parse(_card(address=True).encode()).address is True
    for flags in (2, 3, 0x80, 0xFF):
        assert _reason(Card.from_bytes, _checked(_body(flags=flags))) == "unknown card flags"


def test_a_version_1_card_has_no_flags_and_is_read_as_an_address() -> None:
    record = _checked(_body(version=1))
    assert len(record) == MIN_RECORD - 1 + len(URL) + len("Bob")
    assert Card.from_bytes(record) == _card(address=True)
    assert Card.parse(_text(record)) == _card(address=True)
    assert _reason(Card.from_bytes, b"\x01" + bytes(MIN_RECORD - 3)) == "truncated"
    assert _reason(Card.from_bytes, _checked(_body(version=1, url=b""))) == "invalid relay URL"


def test_a_card_without_a_name_has_an_empty_name_field() -> None:
    record = _checked(_body(name=b""))
    assert Card(PublicIdentity(SIGN, DH), PREKEY, URL, MAILBOX).to_bytes() == record
    assert Card.from_bytes(record).name == ""


def test_a_utf8_name_is_length_prefixed_in_bytes() -> None:
    record = _checked(_body(name="Zoë 名".encode()))
    assert _card(name="Zoë 名").to_bytes() == record
    assert Card.from_bytes(record).name == "Zoë 名"


def test_the_text_is_uppercase_base32_without_padding() -> None:
    text = _card().encode()
    payload = text.removeprefix("anonchat:")
    assert set(payload) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
    assert base64.b32decode(payload + "=" * (-len(payload) % 8)) == _card().to_bytes()


def test_a_relay_url_of_200_bytes_fits_and_201_does_not() -> None:
    url = "wss://" + "a" * 194
    assert len(url) == 200
    assert valid_relay_url(url)
    assert Card.parse(_card(url=url).encode()).relay_url == url
    assert not valid_relay_url(url + "a")
    with pytest.raises(ValueError, match="relay URL"):
        _card(url=url + "a")
    assert _reason(Card.from_bytes, _checked(_body(url=url.encode() + b"a"))) == (
        "invalid relay URL"
    )


@pytest.mark.parametrize(
    "url",
    [
        "ws://h",
        "wss://h",
        "ws://relay.example.org:8765/path?x=1",
        "ws://h/!",  # '!' (0x21) is the first printable character
        "ws://[::1]:80",
    ],
)
def test_relay_urls_a_card_takes(url: str) -> None:
    assert valid_relay_url(url)
    assert Card.from_bytes(_checked(_body(url=url.encode()))).relay_url == url


@pytest.mark.parametrize(
    "url",
    [
        "",
        "ws://",
        "ws:///path",  # no host
        "http://h",
        "wss:/h",
        "wsx://h",
        "WS://h",
        "//h",
        "ws",
        "ws://h\x00",
        "ws://h\x01",
        "ws://h\x1f",
        "ws://h h",
        "ws://h\t",
        "ws://h\n",
        "ws://hé",
    ],
)
def test_relay_urls_a_card_refuses(url: str) -> None:
    assert not valid_relay_url(url)
    with pytest.raises(ValueError, match="relay URL"):
        _card(url=url)
    if url.isascii():
        assert _reason(Card.from_bytes, _checked(_body(url=url.encode()))) == "invalid relay URL"


def test_a_name_must_be_a_display_name() -> None:
    with pytest.raises(ValueError, match="display name"):
        _card(name="Bob\u202e")
    with pytest.raises(ValueError, match="display name"):
        _card(name=" ")
    assert _reason(Card.from_bytes, _checked(_body(name=b" "))) == "invalid name"
    assert _reason(Card.from_bytes, _checked(_body(name=b"a" * 65))) == "invalid name"
    assert Card.from_bytes(_checked(_body(name=b"a" * 64))).name == "a" * 64


@pytest.mark.parametrize(("prekey", "mailbox"), [(31, 32), (33, 32), (32, 31), (32, 33)])
def test_prekey_and_mailbox_are_32_bytes_each(prekey: int, mailbox: int) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        Card(PublicIdentity(SIGN, DH), bytes(prekey), URL, bytes(mailbox))


def test_text_fields_that_are_not_ascii_or_utf8_are_invalid_text() -> None:
    assert _reason(Card.from_bytes, _checked(_body(url=b"ws://h\xff"))) == "invalid text field"
    assert _reason(Card.from_bytes, _checked(_body(name=b"Bo\xff"))) == "invalid text field"


def test_every_record_shorter_than_the_minimum_is_truncated() -> None:
    assert _reason(Card.from_bytes, b"") == "truncated"
    for size in range(1, MIN_RECORD):
        assert _reason(Card.from_bytes, b"\x02" + bytes(size - 1)) == "truncated", size


def test_the_minimum_record_gets_past_the_length_check() -> None:
    record = _checked(_body(url=b"", name=b""))
    assert len(record) == MIN_RECORD
    assert _reason(Card.from_bytes, record) == "invalid relay URL"
    assert _reason(Card.from_bytes, record[:-1]) == "truncated"


@pytest.mark.parametrize("version", [0, 4, 255])
def test_another_version_is_unknown_whatever_the_length(version: int) -> None:
    assert _reason(Card.from_bytes, bytes([version])) == "unknown card version"
    record = _checked(_body(version=version))
    assert _reason(Card.from_bytes, record) == "unknown card version"


def test_fields_that_end_early_are_truncated() -> None:
    # A checksum-valid record whose name length points past the end of the body.
    body = _body(name=b"")[:-1] + b"\x05ab"
    assert _reason(Card.from_bytes, _checked(body)) == "truncated"


def test_bytes_after_the_name_are_trailing() -> None:
    assert _reason(Card.from_bytes, _checked(_body() + b"\x00")) == "trailing bytes"


def test_a_changed_checksum_is_a_mismatch() -> None:
    record = _checked(_body())
    for i in range(len(record) - 4, len(record)):
        broken = record[:i] + bytes([record[i] ^ 0x80]) + record[i + 1 :]
        assert _reason(Card.from_bytes, broken) == "checksum mismatch: mistyped or truncated"


def test_parse_refuses_what_is_not_text() -> None:
    assert _reason(Card.parse, _text(_checked(_body())).encode()) == "not text"
    assert _reason(Card.parse, None) == "not text"


@pytest.mark.parametrize("text", ["", "hello", "anonchat", "anonchat-verify:AE", "nonchat:AE"])
def test_parse_refuses_what_does_not_start_with_the_prefix(text: str) -> None:
    assert _reason(Card.parse, text) == "not an AnonChat card"


def test_the_prefix_and_payload_ignore_case_and_whitespace() -> None:
    text = _text(_checked(_body()))
    assert Card.parse("ANONCHAT:" + text[9:].lower()) == _card()
    assert Card.parse("  anon chat:\n" + "\t".join(text[9:])) == _card()


def test_a_text_of_16384_characters_is_read_and_16385_is_too_large() -> None:
    text = _text(_checked(_body()))
    padded = text + " " * (16_384 - len(text))
    assert Card.parse(padded) == _card()
    assert _reason(Card.parse, padded + " ") == "too large: 16385 characters, at most 16384"


# Base32 turns 1, 2, 3, 4 and 5 bytes into 2, 4, 5, 7 and 8 characters: no byte count gives
# a length of 1, 3 or 6 modulo 8.
@pytest.mark.parametrize("size", [1, 3, 6, 9, 11, 14, 17, 19, 22])
def test_a_payload_length_base32_never_makes_is_truncated_or_mistyped(size: int) -> None:
    assert _reason(Card.parse, "anonchat:" + "C" * size) == "truncated or mistyped"


@pytest.mark.parametrize("size", range(1, 11))
def test_every_possible_payload_length_is_decoded(size: int) -> None:
    # A version-4 record of any length decodes as far as the version byte.
    record = b"\x04" + bytes(size - 1)
    assert _reason(Card.parse, _text(record)) == "unknown card version"


def test_characters_outside_base32_are_invalid() -> None:
    for bad in ("0", "1", "8", "9", "!", "="):
        assert _reason(Card.parse, "anonchat:AE" + bad + "A") == "invalid characters", bad


def test_only_the_canonical_base32_is_accepted() -> None:
    # "AR" decodes to 0x04 like "AQ" does, but sets the two unused trailing bits.
    assert _reason(Card.parse, "anonchat:AQ") == "unknown card version"
    assert _reason(Card.parse, "anonchat:AR") == "truncated or mistyped"
    assert _reason(Card.parse, "anonchat:AQ======") == "truncated or mistyped"
    text = _text(_checked(_body()))
    assert _reason(Card.parse, text + "=" * (-len(text[9:]) % 8)) == "truncated or mistyped"


@given(
    st.binary(min_size=32, max_size=32),
    st.binary(min_size=32, max_size=32),
    st.text("abcdefghijklmnopqrstuvwxyz0123456789.-", min_size=1, max_size=190),
    st.binary(min_size=32, max_size=32),
)
def test_any_card_round_trips_through_its_layout(
    prekey: bytes, mailbox: bytes, host: str, dh: bytes
) -> None:
    card = Card(PublicIdentity(SIGN, dh), prekey, "wss://" + host, mailbox, "Bob")
    body = (
        b"\x02\x00"
        + SIGN
        + dh
        + prekey
        + mailbox
        + bytes([len(host) + 6])
        + b"wss://"
        + host.encode()
        + b"\x03Bob"
    )
    assert card.to_bytes() == _checked(body)
    assert Card.parse(card.encode()) == card


def test_a_relay_url_holds_no_delete_character() -> None:
    assert not valid_relay_url("ws://h\x7f:1")
    assert valid_relay_url("ws://h~:1")  # the character before it is fine
