"""The AnonChat wire format, defined once: the relay speaks it and the app imports it.

Every WebSocket message is one binary frame holding one msgpack map, the envelope: ``v`` (the
protocol version), ``t`` (the frame type) and, where a reply is expected, ``rid`` (a request id
the reply echoes), next to the typed fields of that frame type. docs/protocol.md is the full
specification; this module and relay.frames are its only implementation.

Mailbox proofs live here because both sides must build the same bytes: the relay verifies a
subscribe with them, the app's crypto core signs with them.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable
from dataclasses import fields, replace
from typing import Any, Final

import msgpack

from relay.frames import (
    CHALLENGE_SIZE,
    CLIENT_FRAMES,
    FRAME_TYPES,
    MAILBOX_ID_SIZE,
    MAILBOX_KEY_SIZE,
    MAX_REQUEST_ID,
    RELAY_FRAMES,
    SIGNATURE_SIZE,
    Deliver,
    Error,
    ErrorCode,
    Frame,
    Goodbye,
    Hello,
    Limits,
    LocalProtocolError,
    Ok,
    Ping,
    Pong,
    Presence,
    ProtocolError,
    RemoteProtocolError,
    Send,
    SendFields,
    Sent,
    Subscribe,
    Unsubscribe,
    Unwatch,
    Watch,
    Watching,
    WireError,
    bad_field,
    send_fields_ok,
)

__all__ = [
    "CHALLENGE_SIZE",
    "CLIENT_FRAMES",
    "DEFAULT_MAX_FRAME_SIZE",
    "FRAME_TYPES",
    "MAILBOX_ID_LABEL",
    "MAILBOX_ID_SIZE",
    "MAILBOX_KEY_SIZE",
    "MAX_REQUEST_ID",
    "PROTOCOL_VERSION",
    "RELAY_FRAMES",
    "SIGNATURE_SIZE",
    "SUBSCRIBE_LABEL",
    "SUPPORTED_VERSIONS",
    "Deliver",
    "Error",
    "ErrorCode",
    "Frame",
    "Goodbye",
    "Hello",
    "Limits",
    "LocalProtocolError",
    "Ok",
    "Ping",
    "Pong",
    "Presence",
    "ProtocolError",
    "RemoteProtocolError",
    "Send",
    "SendFields",
    "Sent",
    "Subscribe",
    "Unsubscribe",
    "Unwatch",
    "Watch",
    "Watching",
    "WireError",
    "decode",
    "decode_fast",
    "encode",
    "encode_deliver",
    "encode_sent",
    "mailbox_id",
    "min_frame_size",
    "request_id_of",
    "send_fields_ok",
    "subscribe_signed_bytes",
]

MAILBOX_ID_LABEL = b"anonchat/mailbox/v1\x00"
SUBSCRIBE_LABEL = b"anonchat/subscribe/v1\x00"
PROTOCOL_VERSION: Final = 1
SUPPORTED_VERSIONS: Final = (1,)
DEFAULT_MAX_FRAME_SIZE: Final = 64 * 1024


def mailbox_id(public_key: bytes) -> bytes:
    """A mailbox id: SHA-256 over a label and the raw 32-byte Ed25519 mailbox public key."""
    if len(public_key) != MAILBOX_KEY_SIZE:
        raise ValueError("a mailbox public key is 32 bytes")
    return hashlib.sha256(MAILBOX_ID_LABEL + public_key).digest()


def subscribe_signed_bytes(challenge: bytes, mailbox: bytes) -> bytes:
    """The exact bytes a subscriber signs with the mailbox key: label, challenge, mailbox id."""
    if len(challenge) != CHALLENGE_SIZE or len(mailbox) != MAILBOX_ID_SIZE:
        raise ValueError("challenge and mailbox id are 32 bytes each")
    return SUBSCRIBE_LABEL + challenge + mailbox


_BY_TYPE: Final[dict[str, type[Frame]]] = {cls.TYPE: cls for cls in FRAME_TYPES}
# (python attribute, envelope key) per frame type, in the order encode() writes them.
_KEYS: Final[dict[type[Frame], tuple[tuple[str, str], ...]]] = {
    cls: tuple((f.name, "rid" if f.name == "request_id" else f.name) for f in fields(cls))
    for cls in FRAME_TYPES
}
_LIMIT_KEYS: Final = tuple(f.name for f in fields(Limits))


# ---------------------------------------------------------------------------------------------
# Encoding and decoding.


def _to_wire(value: Any) -> Any:
    if isinstance(value, Limits):
        return {name: getattr(value, name) for name in _LIMIT_KEYS}
    if isinstance(value, tuple):
        return list(value)
    return value


def encode(frame: Frame) -> bytes:
    """One frame to the bytes of one binary WebSocket message."""
    cls = type(frame)
    keys = _KEYS.get(cls)
    if keys is None:
        raise LocalProtocolError(ErrorCode.UNKNOWN_TYPE, f"not a frame: {cls.__name__}")
    envelope: dict[str, Any] = {"v": PROTOCOL_VERSION, "t": cls.TYPE}
    for attr, key in keys:
        envelope[key] = _to_wire(getattr(frame, attr))
    packed: bytes = msgpack.packb(envelope, use_bin_type=True)
    return packed


# The relay's deliveries and `sent` replies are most of what it writes: the constant part of
# each envelope is packed once, each call packs only the values, by msgpack, in the order
# msgpack.packb gives a dict's keys. One Packer serves every thread: pack() on an int or a bytes
# runs no Python code, so it holds the GIL from start to end.
_PACK: Final = msgpack.Packer(use_bin_type=True).pack


def _head(kind: str, *keys: str) -> bytes:
    """A map of ``v``, ``t`` = ``kind`` and ``keys``, packed up to the first key's value."""
    parts = [msgpack.Packer().pack_map_header(2 + len(keys))]
    parts += [_PACK(part) for part in ("v", PROTOCOL_VERSION, "t", kind, keys[0])]
    return b"".join(parts)


_DELIVER_HEAD: Final = _head("deliver", "mailbox", "payload")
_PAYLOAD_KEY: Final = _PACK("payload")
_SENT_HEAD: Final = _head("sent", "rid", "delivered")
_DELIVERED_KEY: Final = _PACK("delivered")


def encode_deliver(mailbox: bytes, payload: bytes) -> bytes:
    """``encode(Deliver(mailbox, payload))`` without building the frame, for the relay's hot
    path: both come from a send that decoded, so they are checked already."""
    return b"".join((_DELIVER_HEAD, _PACK(mailbox), _PAYLOAD_KEY, _PACK(payload)))


def encode_sent(request_id: int, delivered: int) -> bytes:
    """``encode(Sent(request_id, delivered))`` without building the frame (the hot path's)."""
    return b"".join((_SENT_HEAD, _PACK(request_id), _DELIVERED_KEY, _PACK(delivered)))


def _unpack(data: bytes | bytearray | memoryview, max_size: int) -> Any:
    with contextlib.suppress(Exception):  # classified below: any failure is the peer's fault
        return msgpack.unpackb(data, raw=False, strict_map_key=True, use_list=True)
    data = bytes(data)
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=True, max_buffer_size=max(max_size, 1))
    try:
        unpacker.feed(data)
        unpacker.unpack()
    except msgpack.OutOfData:
        raise WireError(ErrorCode.TRUNCATED, "the frame ends inside a value") from None
    except Exception:  # msgpack raises several types for bad bytes
        raise WireError(ErrorCode.MALFORMED, "not a msgpack value") from None
    raise WireError(ErrorCode.MALFORMED, "bytes after the envelope")


def _limits_from(value: Any) -> Limits:
    if type(value) is not dict:
        raise bad_field("limits", "must be a map")
    missing = [k for k in _LIMIT_KEYS if k not in value]
    if missing:
        raise bad_field("limits", f"lacks {missing[0]}")
    return Limits(**{k: value[k] for k in _LIMIT_KEYS})


_CONVERT: Final[dict[str, Callable[[Any], Any]]] = {
    "versions": lambda v: tuple(v) if type(v) is list else v,
    "mailboxes": lambda v: tuple(v) if type(v) is list else v,
    "online": lambda v: tuple(v) if type(v) is list else v,
    "limits": _limits_from,
}


def decode(data: bytes, max_size: int = DEFAULT_MAX_FRAME_SIZE) -> Frame:
    """The frame in one binary WebSocket message; any bad input raises :class:`WireError`.

    Keys the frame type does not define are ignored, so a later minor addition does not break
    an older reader; missing or mistyped keys are malformed.
    """
    read = decode_fast(data, max_size)
    return Send(*read) if isinstance(read, tuple) else read


def decode_fast(data: bytes, max_size: int = DEFAULT_MAX_FRAME_SIZE) -> SendFields | Frame:
    """As :func:`decode`, but a well-formed send comes back as its fields (request id,
    mailbox, payload), checked by the very rules `Send` checks, without building the frame:
    the relay's hot path. Every other frame, and every bad input, as `decode` does."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise WireError(ErrorCode.MALFORMED, "a frame is binary")
    if len(data) > max_size:
        raise WireError(ErrorCode.TOO_LARGE, f"frame over {max_size} bytes")
    envelope = _unpack(data, max_size)
    if type(envelope) is not dict:
        raise WireError(ErrorCode.MALFORMED, "the envelope is a map")
    version = envelope.get("v")
    if type(version) is not int:
        raise WireError(ErrorCode.MALFORMED, "v must be an integer")
    if version not in SUPPORTED_VERSIONS:
        raise WireError(ErrorCode.UNSUPPORTED_VERSION, f"version {version}")
    kind = envelope.get("t")
    if kind == "send":
        given: tuple[Any, Any, Any] = (
            envelope.get("rid"),
            envelope.get("mailbox"),
            envelope.get("payload"),
        )
        if send_fields_ok(*given):
            return given
    if type(kind) is not str:
        raise WireError(ErrorCode.MALFORMED, "t must be a string")
    cls = _BY_TYPE.get(kind)
    if cls is None:
        raise WireError(ErrorCode.UNKNOWN_TYPE, "unknown frame type")
    values: dict[str, Any] = {}
    try:
        for attr, key in _KEYS[cls]:
            if key not in envelope:
                raise bad_field(key, f"is missing from {kind}")
            value = envelope[key]
            convert = _CONVERT.get(key)
            values[attr] = value if convert is None else convert(value)
        return cls(**values)
    except LocalProtocolError as exc:
        raise WireError(ErrorCode.MALFORMED, exc.detail) from None


def request_id_of(data: bytes) -> int | None:
    """Best-effort ``rid`` of a frame that failed to decode, so its error reply can name it."""
    try:
        envelope = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception:  # unreadable bytes have no request id
        return None
    if type(envelope) is dict:
        rid = envelope.get("rid")
        if type(rid) is int and 0 <= rid <= MAX_REQUEST_ID:
            return rid
    return None


# ---------------------------------------------------------------------------------------------
# The least frame limit the protocol can run on.


def _largest_fixed_frames(limits: Limits) -> tuple[Frame, ...]:
    """One frame of every type at its largest without a payload: the largest request id and
    count, 64-character codes, one mailbox id per array, and the hello announcing ``limits``."""
    rid = MAX_REQUEST_ID
    box = bytes(MAILBOX_ID_SIZE)
    code = "x" * 64
    return (
        Hello(SUPPORTED_VERSIONS, bytes(CHALLENGE_SIZE), limits),
        Subscribe(rid, box, bytes(MAILBOX_KEY_SIZE), bytes(SIGNATURE_SIZE)),
        Unsubscribe(rid, box),
        Send(rid, box, b""),
        Sent(rid, MAX_REQUEST_ID),
        Deliver(box, b""),
        Watch(rid, (box,)),
        Watching(rid, (box,)),
        Unwatch(rid, (box,)),
        Presence(box, False),
        Ok(rid),
        Error(rid, code),
        Ping(rid),
        Pong(rid),
        Goodbye(code),
    )


def min_frame_size(limits: Limits) -> tuple[int, str]:
    """The smallest ``max_frame_size`` the protocol works with next to these other limits, and
    the frame type that sets it.

    Every frame type must fit with its fixed fields at their largest, the hello among them; the
    hello carries ``max_frame_size`` itself, whose msgpack width grows with the value, so the
    answer is the least size that still fits the hello announcing it.
    """
    size = 0
    while True:
        frames = _largest_fixed_frames(replace(limits, max_frame_size=size))
        sizes = [(len(encode(frame)), frame.TYPE) for frame in frames]
        need, kind = max(sizes, key=lambda pair: pair[0])
        if need <= size:
            return size, kind
        size = need
