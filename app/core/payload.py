"""The plaintext inside each ratchet message: a small msgpack map with a kind.

`intro` rides in the initiator's first frame (where it can be reached), `welcome` is the
responder's first reply (the mailbox it listens on), `move` names a new mailbox on other
relays, `msg` is a chat message and `rcpt` an end-to-end receipt naming message ids. Where a
relay is named, up to two fallback relays (`fb`) may follow it. Anything else, or any
mistyped field, is a `PayloadError`: the peer's fault, never a crash.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import msgpack

from app.crypto.card import MAX_FALLBACKS, valid_relays
from app.crypto.names import valid_name
from app.domain.messages import MAX_MESSAGE_CHARS, WireId

MAX_RECEIPT_IDS = 512
MSG_ID_SIZE = 16
MAX_SEQ = 2**63 - 1  # what the store's INTEGER column holds
MAX_TIME_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the last time a clock can show


def message_id(frame: bytes) -> WireId:
    """A message's id on both sides: the hash of its ciphertext, known before decryption."""
    return WireId(hashlib.sha256(frame).digest()[:MSG_ID_SIZE])


class PayloadError(ValueError):
    """A decrypted payload that is not one of ours."""


@dataclass(frozen=True, slots=True)
class Intro:
    relay_url: str
    fallbacks: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Welcome:
    mailbox: bytes
    relay_url: str
    name: str
    fallbacks: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Move:
    """Write to this mailbox on these relays from now on (the sender changed relays)."""

    mailbox: bytes
    relay_url: str
    fallbacks: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Chat:
    seq: int
    sent_at: int
    body: str


@dataclass(frozen=True, slots=True)
class Receipt:
    read: bool
    ids: tuple[bytes, ...]


Payload = Intro | Welcome | Move | Chat | Receipt


def encode(payload: Payload) -> bytes:
    match payload:
        case Intro(relay_url, _):
            data: dict[str, Any] = {"k": "intro", "relay": relay_url}
        case Welcome(mailbox, relay_url, name, _):
            data = {"k": "welcome", "mb": mailbox, "relay": relay_url, "name": name}
        case Move(mailbox, relay_url, _):
            data = {"k": "move", "mb": mailbox, "relay": relay_url}
        case Chat(seq, sent_at, body):
            data = {"k": "msg", "seq": seq, "ts": sent_at, "body": body}
        case Receipt(read, ids):
            data = {"k": "rcpt", "read": read, "ids": list(ids)}
    if isinstance(payload, (Intro, Welcome, Move)) and payload.fallbacks:
        data["fb"] = list(payload.fallbacks)
    packed: bytes = msgpack.packb(data, use_bin_type=True)
    return packed


def _field(data: dict[Any, Any], key: str, kind: type) -> Any:
    value = data.get(key)
    if type(value) is not kind:
        raise PayloadError(f"field {key!r} missing or mistyped")
    return value


def _ranged(data: dict[Any, Any], key: str, low: int, high: int) -> int:
    value: int = _field(data, key, int)
    if not low <= value <= high:
        raise PayloadError(f"field {key!r} out of range")
    return value


def _relays(data: dict[Any, Any]) -> tuple[str, tuple[str, ...]]:
    """The relay and its fallbacks (`fb`, optional): one to three distinct relay URLs."""
    url = _field(data, "relay", str)
    extra = data.get("fb", [])
    if type(extra) is not list or len(extra) > MAX_FALLBACKS:
        raise PayloadError(f"field 'fb' is a list of at most {MAX_FALLBACKS} relay URLs")
    fallbacks = tuple(extra)
    if not all(type(u) is str for u in fallbacks) or not valid_relays((url, *fallbacks)):
        raise PayloadError("field 'relay' or 'fb' is not a relay URL, or names one twice")
    return url, fallbacks


def _mailbox(data: dict[Any, Any]) -> bytes:
    mailbox: bytes = _field(data, "mb", bytes)
    if len(mailbox) != 32:
        raise PayloadError("mailbox id is 32 bytes")
    return mailbox


def decode(raw: bytes) -> Payload:
    """The payload in `raw`, every field checked for type and range; else `PayloadError`."""
    try:
        data = msgpack.unpackb(
            raw,
            raw=False,
            strict_map_key=True,
            max_str_len=MAX_MESSAGE_CHARS * 4,
            max_bin_len=MSG_ID_SIZE * 2,
            max_array_len=MAX_RECEIPT_IDS,
            max_map_len=16,
            max_ext_len=0,
        )
    except Exception:  # msgpack raises several types for bad bytes
        raise PayloadError("not a payload") from None
    if type(data) is not dict:
        raise PayloadError("not a payload")
    kind = data.get("k")
    if kind == "intro":
        return Intro(*_relays(data))
    if kind == "welcome":
        mailbox = _mailbox(data)
        name = _field(data, "name", str)
        if not valid_name(name, allow_empty=True):
            raise PayloadError("field 'name' is not a display name")
        relay, fallbacks = _relays(data)
        return Welcome(mailbox, relay, name, fallbacks)
    if kind == "move":
        return Move(_mailbox(data), *_relays(data))
    if kind == "msg":
        body = _field(data, "body", str)
        if len(body) > MAX_MESSAGE_CHARS:
            raise PayloadError("message too long")
        return Chat(_ranged(data, "seq", 1, MAX_SEQ), _ranged(data, "ts", 0, MAX_TIME_MS), body)
    if kind == "rcpt":
        ids = _field(data, "ids", list)
        if len(ids) > MAX_RECEIPT_IDS or any(
            type(i) is not bytes or len(i) != MSG_ID_SIZE for i in ids
        ):
            raise PayloadError("receipt ids malformed")
        return Receipt(_field(data, "read", bool), tuple(ids))
    raise PayloadError("unknown payload kind")
