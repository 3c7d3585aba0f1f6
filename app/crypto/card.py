"""The contact card: the short text a QR code carries so a friend can start a handshake.

Uppercase base32 keeps the payload inside a QR code's alphanumeric mode. The card carries no
signature: everything in it arrives over the same channel as the identity key it would be
signed with, so a forger could re-sign; docs/crypto.md explains why that is safe.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from dataclasses import dataclass

from app.crypto.codec import Reader, Writer
from app.crypto.errors import CardError
from app.crypto.identity import PublicIdentity
from app.crypto.names import MAX_NAME_BYTES, valid_name
from app.crypto.primitives import KEY_SIZE, LABEL_CARD_CHECK, sha256

CARD_PREFIX = "anonchat:"
CARD_VERSION = 2
FALLBACK_VERSION = 3  # version 2 followed by the fallback relays; written only when there are any
FIRST_VERSION = 1  # every version-1 card was a long-lived address (read as one)
FLAG_ADDRESS = 0x01  # set: a long-lived address; clear: a code that works for one contact
MAX_FALLBACKS = 2  # a card names at most three relays: the first, then these in order
CHECKSUM_SIZE = 4
MAX_URL_BYTES = 200
MAX_CARD_CHARS = 16 * 1024  # a card's text, spaces included; the largest card is 1,294 characters
_MIN_BODY = 1 + 4 * KEY_SIZE + 1 + 1


def valid_relay_url(url: str) -> bool:
    """A ws:// or wss:// URL of at most 200 printable ASCII characters, as a card can carry
    it (no spaces or control characters)."""
    if (
        len(url) > MAX_URL_BYTES
        or not url.isascii()
        or any(c.isspace() or ord(c) < 0x21 or c == "\x7f" for c in url)
    ):
        return False
    scheme, sep, rest = url.partition("://")
    return bool(sep) and scheme in ("ws", "wss") and bool(rest) and not rest.startswith("/")


def valid_relays(urls: tuple[str, ...] | list[str]) -> bool:
    """One to three distinct relay URLs, each as `valid_relay_url` wants it."""
    return (
        1 <= len(urls) <= 1 + MAX_FALLBACKS
        and len(set(urls)) == len(urls)
        and all(valid_relay_url(u) for u in urls)
    )


@dataclass(frozen=True, slots=True)
class Card:
    """A parsed, fully checked card. Construct directly to publish your own."""

    identity: PublicIdentity
    prekey: bytes
    relay_url: str
    mailbox: bytes
    name: str = ""
    address: bool = False  # a long-lived address, or (False) a one-time code
    fallbacks: tuple[str, ...] = ()  # relays to try, in order, when `relay_url` is out of reach

    def __post_init__(self) -> None:
        if len(self.prekey) != KEY_SIZE or len(self.mailbox) != KEY_SIZE:
            raise ValueError("prekey and mailbox id are 32 bytes each")
        if not valid_relays(self.relays):
            raise ValueError(
                "relay URL: one to three distinct ws:// or wss:// URLs of at most 200 bytes each"
            )
        if not valid_name(self.name, allow_empty=True):
            raise ValueError(f"name must be a display name of at most {MAX_NAME_BYTES} bytes")

    @property
    def relays(self) -> tuple[str, ...]:
        """Where the card's mailbox listens, in the order to try them."""
        return (self.relay_url, *self.fallbacks)

    def to_bytes(self) -> bytes:
        """The binary record: see docs/crypto.md, "Contact card". A card without fallback
        relays is version 2, byte for byte what earlier versions wrote."""
        writer = (
            Writer()
            .u8(FALLBACK_VERSION if self.fallbacks else CARD_VERSION)
            .u8(FLAG_ADDRESS if self.address else 0)
            .raw(self.identity.sign)
            .raw(self.identity.dh)
            .raw(self.prekey)
            .raw(self.mailbox)
            .var8(self.relay_url.encode("ascii"))
            .var8(self.name.encode("utf-8"))
        )
        if self.fallbacks:
            writer.u8(len(self.fallbacks))
            for url in self.fallbacks:
                writer.var8(url.encode("ascii"))
        body = writer.bytes()
        return body + sha256(LABEL_CARD_CHECK, body)[:CHECKSUM_SIZE]

    def encode(self) -> str:
        """'anonchat:' + uppercase base32 of the record, without padding."""
        return CARD_PREFIX + base64.b32encode(self.to_bytes()).decode("ascii").rstrip("=")

    @classmethod
    def parse(cls, text: str) -> Card:
        """The card in `text`, or one `CardError` whose reason says what is wrong."""
        if not isinstance(text, str):
            raise CardError("not text")
        if len(text) > MAX_CARD_CHARS:  # refused before any copy of it is made
            raise CardError(f"too large: {len(text)} characters, at most {MAX_CARD_CHARS}")
        text = "".join(text.split())
        if text[: len(CARD_PREFIX)].lower() != CARD_PREFIX:
            raise CardError("not an AnonChat card")
        payload = text[len(CARD_PREFIX) :].upper()
        if len(payload) % 8 in (1, 3, 6):
            raise CardError("truncated or mistyped")
        try:
            data = base64.b32decode(payload + "=" * (-len(payload) % 8))
        except (binascii.Error, ValueError):
            raise CardError("invalid characters") from None
        if base64.b32encode(data).decode("ascii").rstrip("=") != payload:
            raise CardError("truncated or mistyped")
        return cls.from_bytes(data)

    @classmethod
    def from_bytes(cls, data: bytes) -> Card:
        if len(data) < 1:
            raise CardError("truncated")
        version = data[0]
        if version not in (FIRST_VERSION, CARD_VERSION, FALLBACK_VERSION):
            raise CardError("unknown card version")
        flags_size = 0 if version == FIRST_VERSION else 1
        if len(data) < _MIN_BODY + flags_size + CHECKSUM_SIZE:
            raise CardError("truncated")
        body, check = data[:-CHECKSUM_SIZE], data[-CHECKSUM_SIZE:]
        if not hmac.compare_digest(sha256(LABEL_CARD_CHECK, body)[:CHECKSUM_SIZE], check):
            raise CardError("checksum mismatch: mistyped or truncated")
        reader = Reader(body, CardError)
        reader.u8()
        address = True
        if version != FIRST_VERSION:
            flags = reader.u8()
            if flags & ~FLAG_ADDRESS:
                raise CardError("unknown card flags")
            address = bool(flags & FLAG_ADDRESS)
        sign, dh = reader.raw(KEY_SIZE), reader.raw(KEY_SIZE)
        prekey, mailbox = reader.raw(KEY_SIZE), reader.raw(KEY_SIZE)
        url_bytes, name_bytes = reader.var8(), reader.var8()
        extra: list[bytes] = []
        if version == FALLBACK_VERSION:
            count = reader.u8()
            if not 1 <= count <= MAX_FALLBACKS:
                raise CardError(f"a card names 1 to {MAX_FALLBACKS} fallback relays")
            extra = [reader.var8() for _ in range(count)]
        reader.end()
        try:
            url, name = url_bytes.decode("ascii"), name_bytes.decode("utf-8")
            fallbacks = tuple(b.decode("ascii") for b in extra)
        except UnicodeDecodeError:
            raise CardError("invalid text field") from None
        if not valid_relays((url, *fallbacks)):
            raise CardError("invalid relay URL")
        if not valid_name(name, allow_empty=True):
            raise CardError("invalid name")
        return cls(PublicIdentity(sign, dh), prekey, url, mailbox, name, address, fallbacks)
