"""The backplane's names and messages (docs/protocol.md §12.2 and §12.3): channel names keyed
from the cluster key, and the msgpack messages relays publish to each other. Pure functions,
the same on every relay of a cluster; relay/backplane.py moves them through Redis.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

import msgpack

from relay.frames import MAILBOX_ID_SIZE

BACKPLANE_VERSION: Final = 1
NODE_SIZE: Final = 16
KEY_LABEL: Final = b"anonchat/backplane/v1\x00"
CHANNEL_PREFIX: Final = b"anonchat:v1:"


class BackplaneError(Exception):
    """A backplane message that is not one of ours: ignored and counted, never a crash."""


def cluster_key(url: str, secret: bytes | None = None) -> bytes:
    """The key that hashes mailbox ids into channel names; equal on every relay of a cluster.

    From the shared secret when one is given. Otherwise from the credentials in the Redis URL
    (never its host, which may be spelt differently on each relay): that hides mailbox ids only
    from those who do not know the URL, which the Redis operator does.
    """
    if secret:
        material = b"secret\x00" + secret
    else:
        parts = urlsplit(url)
        material = b"url\x00" + f"{parts.username or ''}:{parts.password or ''}".encode()
    return hmac.new(KEY_LABEL, material, hashlib.sha256).digest()


def tag(key: bytes, kind: bytes, mailbox: bytes) -> bytes:
    """The keyed hash, in hex, that stands for ``mailbox`` in the names of its channels."""
    if len(mailbox) != MAILBOX_ID_SIZE:
        raise ValueError("a mailbox id is 32 bytes")
    return hmac.digest(key, kind + b"\x00" + mailbox, "sha256").hex().encode()


def mailbox_channel(key: bytes, mailbox: bytes) -> bytes:
    """Where sends to ``mailbox`` are published: ``anonchat:v1:m:`` and 64 hex digits."""
    return CHANNEL_PREFIX + b"m:" + tag(key, b"mailbox", mailbox)


def presence_channel(key: bytes, mailbox: bytes) -> bytes:
    """Where relays say they started or stopped holding ``mailbox``: ``anonchat:v1:p:``..."""
    return CHANNEL_PREFIX + b"p:" + tag(key, b"presence", mailbox)


def control_channel(key: bytes) -> bytes:
    """Every relay's standing subscription, where a relay says hello when it links up."""
    return CHANNEL_PREFIX + b"c:" + hmac.new(key, b"control", hashlib.sha256).hexdigest().encode()


def node_channel(key: bytes, node: bytes) -> bytes:
    """Relay ``node``'s own channel: hellos and acknowledgements for it, and its heartbeat
    (other relays count its subscribers)."""
    tag = hmac.new(key, b"node\x00" + node, hashlib.sha256).hexdigest().encode()
    return CHANNEL_PREFIX + b"n:" + tag


@dataclass(frozen=True, slots=True)
class Payload:
    """A send, published on the mailbox channel by the relay ``origin``."""

    origin: bytes
    payload: bytes


@dataclass(frozen=True, slots=True)
class Holding:
    """Relay ``origin`` now holds the mailbox (``online``) or not; ``seq`` numbers its
    announcements, so the relays that acknowledge one name it."""

    origin: bytes
    online: bool
    seq: int


@dataclass(frozen=True, slots=True)
class Ack:
    """On the announcer's node channel: relay ``origin`` passes sends on since holding ``seq``."""

    origin: bytes
    seq: int


@dataclass(frozen=True, slots=True)
class Hello:
    """Relay ``origin`` is linked: on the control channel when it links up, and on the
    newcomer's node channel from each relay that heard it."""

    origin: bytes


Message = Payload | Holding | Ack | Hello
MAX_SEQ: Final = 2**63 - 1


def payload_head(origin: bytes) -> bytes:
    """What every Payload of ``origin`` starts with: the map, then ``v``, ``k``, ``o``, ``p``."""
    return b"\x84\xa1v\x01\xa1k\xa1d\xa1o\xc4\x10" + origin + b"\xa1p"


def encode_payload(head: bytes, payload: bytes) -> bytes:
    """A Payload's bytes from its head (:func:`payload_head`): msgpack's own, built without
    a dict, since every cross-relay send makes one."""
    size = len(payload)
    if size < 0x100:
        return head + b"\xc4" + bytes((size,)) + payload
    if size < 0x10000:
        return head + b"\xc5" + size.to_bytes(2, "big") + payload
    return head + b"\xc6" + size.to_bytes(4, "big") + payload


def encode_message(message: Message) -> bytes:
    """One backplane message: a msgpack map ``v``, ``k`` (``d``, ``p``, ``a`` or ``n``),
    ``o``, then the kind's fields."""
    if isinstance(message, Payload):
        return encode_payload(payload_head(message.origin), message.payload)
    body: dict[str, Any] = {"v": BACKPLANE_VERSION}
    if isinstance(message, Holding):
        body.update(k="p", o=message.origin, on=message.online, s=message.seq)
    elif isinstance(message, Ack):
        body.update(k="a", o=message.origin, s=message.seq)
    else:
        body.update(k="n", o=message.origin)
    packed: bytes = msgpack.packb(body, use_bin_type=True)
    return packed


def _seq(body: dict[Any, Any]) -> int:
    seq = body.get("s")
    if type(seq) is not int or not 0 <= seq <= MAX_SEQ:
        raise BackplaneError("bad sequence number")
    return seq


def decode_message(data: Any) -> Message:
    """The message in ``data``; anything else raises :class:`BackplaneError`."""
    if type(data) is not bytes:
        raise BackplaneError("not bytes")
    try:
        body = msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception:  # msgpack raises several types for bad bytes
        raise BackplaneError("not msgpack") from None
    if type(body) is not dict or body.get("v") != BACKPLANE_VERSION:
        raise BackplaneError("not a version 1 map")
    origin = body.get("o")
    if type(origin) is not bytes or len(origin) != NODE_SIZE:
        raise BackplaneError("bad origin")
    kind = body.get("k")
    if kind == "d" and type(body.get("p")) is bytes:
        return Payload(origin, body["p"])
    if kind == "p" and type(body.get("on")) is bool:
        return Holding(origin, body["on"], _seq(body))
    if kind == "a":
        return Ack(origin, _seq(body))
    if kind == "n":
        return Hello(origin)
    raise BackplaneError("unknown kind or bad fields")
