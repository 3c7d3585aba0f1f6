"""Byte layout of ratchet message headers and the handshake's first-message wrapper.

The header travels in clear but is part of the AEAD's associated data, so any change to it
fails authentication. Layouts are drawn in docs/crypto.md.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import NamedTuple

from app.crypto.errors import MalformedMessage
from app.crypto.primitives import KEY_SIZE, TAG_SIZE

WIRE_VERSION = 1
TYPE_MESSAGE = 1
TYPE_INIT = 2
TYPE_CHUNK = 3  # a piece of a file, sealed under the file's key (app/crypto/filecrypt.py)
TYPE_FILE_CONTROL = 4  # asking for pieces, or saying a transfer ended

FLAG_KEM_PK = 0x01
FLAG_KEM_SIG = 0x02
FLAG_KEM_CT = 0x04
_KNOWN_FLAGS = FLAG_KEM_PK | FLAG_KEM_SIG | FLAG_KEM_CT

KEM_PK_SIZE = 1184
KEM_CT_SIZE = 1088
SIG_SIZE = 64

_FIXED = struct.Struct(">BBB32sII")
FIXED_SIZE = _FIXED.size  # 43
_MESSAGE_PREFIX = bytes((WIRE_VERSION, TYPE_MESSAGE))


class Header(NamedTuple):
    """A parsed header; `raw` is the exact bytes authenticated as associated data.

    A NamedTuple rather than a frozen dataclass: it is built for every message received.
    """

    dh: bytes
    pn: int
    n: int
    kem_pk: bytes
    kem_sig: bytes
    kem_ct: bytes
    raw: bytes


def encode_header(
    dh: bytes, pn: int, n: int, kem_pk: bytes, kem_sig: bytes, kem_ct: bytes
) -> bytes:
    flags = (
        (FLAG_KEM_PK if kem_pk else 0)
        | (FLAG_KEM_SIG if kem_sig else 0)
        | (FLAG_KEM_CT if kem_ct else 0)
    )
    return _FIXED.pack(WIRE_VERSION, TYPE_MESSAGE, flags, dh, pn, n) + kem_pk + kem_sig + kem_ct


def split_message(frame: bytes) -> tuple[Header, bytes]:
    """(header, ciphertext) of a TYPE_MESSAGE frame, or `MalformedMessage`."""
    if len(frame) < FIXED_SIZE + TAG_SIZE or frame[:2] != _MESSAGE_PREFIX:
        raise MalformedMessage("not a message frame")
    _, _, flags, dh, pn, n = _FIXED.unpack_from(frame)
    if not flags:
        return Header(dh, pn, n, b"", b"", b"", frame[:FIXED_SIZE]), frame[FIXED_SIZE:]
    if flags & ~_KNOWN_FLAGS or (flags & FLAG_KEM_SIG and not flags & FLAG_KEM_PK):
        raise MalformedMessage("unknown header flags")
    pos = FIXED_SIZE
    fields: list[bytes] = []
    for flag, size in (
        (FLAG_KEM_PK, KEM_PK_SIZE),
        (FLAG_KEM_SIG, SIG_SIZE),
        (FLAG_KEM_CT, KEM_CT_SIZE),
    ):
        if flags & flag:
            fields.append(frame[pos : pos + size])
            pos += size
        else:
            fields.append(b"")
    if len(frame) < pos + TAG_SIZE:
        raise MalformedMessage("truncated")
    header = Header(dh, pn, n, fields[0], fields[1], fields[2], frame[:pos])
    return header, frame[pos:]


@dataclass(frozen=True, slots=True)
class InitFrame:
    """The initiator's wrapper: its ephemeral key, the sealed introduction, the message."""

    ephemeral: bytes
    sealed: bytes
    message: bytes


def init_prefix(ephemeral: bytes, sealed: bytes) -> bytes:
    return bytes((WIRE_VERSION, TYPE_INIT)) + ephemeral + struct.pack(">I", len(sealed)) + sealed


def split_init(frame: bytes) -> InitFrame:
    """Parse a TYPE_INIT frame, or raise `MalformedMessage`."""
    head = 2 + KEY_SIZE + 4
    if len(frame) < head or frame[0] != WIRE_VERSION or frame[1] != TYPE_INIT:
        raise MalformedMessage("not an init frame")
    (size,) = struct.unpack_from(">I", frame, 2 + KEY_SIZE)
    if len(frame) < head + size:
        raise MalformedMessage("truncated")
    return InitFrame(frame[2 : 2 + KEY_SIZE], frame[head : head + size], frame[head + size :])


def frame_type(frame: bytes) -> int:
    """TYPE_MESSAGE or TYPE_INIT; `MalformedMessage` for anything else."""
    if len(frame) < 2 or frame[0] != WIRE_VERSION or frame[1] not in (TYPE_MESSAGE, TYPE_INIT):
        raise MalformedMessage("unknown frame version or type")
    return frame[1]
