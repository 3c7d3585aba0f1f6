"""Files in pieces: each piece sealed under the file's own key, bound to its place.

A file is cut into CHUNK_SIZE pieces (the last may be shorter, an empty file is one empty
piece). Piece `i` is sealed with AES-256-GCM under the file's chunk key, with `i` as its nonce
and the file id, `i` and the number of pieces as associated data: a piece cannot be moved to
another place or file, and the number of pieces (hence where the file ends) is fixed by the
offer. Sealed pieces laid end to end are also how a file rests on disk, on both sides, so
sending one is a read and receiving one a check and a write.

The offer (inside the ratchet) carries the file key; from it come the chunk key, a key for
each direction of the transfer's control messages, and the 16-byte tag that names the
transfer on the wire. Frames (docs/messages.md):

    chunk:   01 03 | tag (16) | index (u32) | sealed piece
    control: 01 04 | tag (16) | nonce (12)  | sealed msgpack map

Pure: no I/O here.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from app.crypto.errors import DecryptError, MalformedMessage
from app.crypto.header import TYPE_CHUNK, TYPE_FILE_CONTROL, WIRE_VERSION
from app.crypto.primitives import KEY_SIZE, TAG_SIZE, hkdf

CHUNK_SIZE = 60 * 1024  # fits, sealed and framed, under a relay's 64 KiB frame limit
SEALED_CHUNK = CHUNK_SIZE + TAG_SIZE
MAX_FILE_SIZE = 2 * 1024**3
FILE_ID_SIZE = 16
TRANSFER_TAG_SIZE = 16
NONCE_SIZE = 12

LABEL_FILE = b"anonchat/file/v1"
LABEL_CHUNK = b"anonchat/file-chunk/v1\x00"
LABEL_ASK = b"anonchat/file-ask/v1\x00"
LABEL_TELL = b"anonchat/file-tell/v1\x00"

_CHUNK_HEAD = struct.Struct(">BB16sI")
CHUNK_HEAD_SIZE = _CHUNK_HEAD.size  # 22
_CONTROL_HEAD = 2 + TRANSFER_TAG_SIZE + NONCE_SIZE
CHUNK_PREFIX = bytes((WIRE_VERSION, TYPE_CHUNK))
CONTROL_PREFIX = bytes((WIRE_VERSION, TYPE_FILE_CONTROL))


def chunk_count(size: int) -> int:
    """How many pieces a file of `size` bytes has (at least one)."""
    if not 0 <= size <= MAX_FILE_SIZE:
        raise ValueError("a file has 0 to 2 GiB")
    return max(1, -(-size // CHUNK_SIZE))


def chunk_length(size: int, index: int) -> int:
    """The plaintext length of piece `index` of a file of `size` bytes."""
    count = chunk_count(size)
    if not 0 <= index < count:
        raise ValueError("no such piece")
    return CHUNK_SIZE if index < count - 1 else size - (count - 1) * CHUNK_SIZE


def sealed_offset(index: int) -> int:
    """Where sealed piece `index` starts in a file at rest."""
    return index * SEALED_CHUNK


def sealed_size(size: int) -> int:
    """The size at rest of a file of `size` bytes (every piece with its tag)."""
    return size + chunk_count(size) * TAG_SIZE


def is_file_frame(frame: bytes) -> bool:
    return frame[:2] in (CHUNK_PREFIX, CONTROL_PREFIX)


@dataclass(frozen=True, slots=True)
class FileKeys:
    """What one file key gives: the chunk key, one control key each way, the transfer tag."""

    file_id: bytes
    count: int
    chunk: AESGCM
    ask: AESGCM  # receiver to sender
    tell: AESGCM  # sender to receiver
    tag: bytes

    @classmethod
    def derive(cls, file_key: bytes, file_id: bytes, size: int) -> FileKeys:
        if len(file_key) != KEY_SIZE or len(file_id) != FILE_ID_SIZE:
            raise ValueError("a file key is 32 bytes and a file id 16")
        out = hkdf(file_key, file_id, LABEL_FILE, 3 * KEY_SIZE + TRANSFER_TAG_SIZE)
        return cls(
            file_id,
            chunk_count(size),
            AESGCM(out[:KEY_SIZE]),
            AESGCM(out[KEY_SIZE : 2 * KEY_SIZE]),
            AESGCM(out[2 * KEY_SIZE : 3 * KEY_SIZE]),
            out[3 * KEY_SIZE :],
        )

    def _chunk_ad(self, index: int) -> bytes:
        return LABEL_CHUNK + self.file_id + struct.pack(">II", index, self.count)

    def seal_chunk(self, index: int, data: bytes) -> bytes:
        """Piece `index` sealed (an index past the end seals too: the receiver must be able
        to tell a sender that sends more than it offered from a forger)."""
        if not 0 <= index < 2**32 or len(data) > CHUNK_SIZE:
            raise ValueError("no such piece")
        return self.chunk.encrypt(index.to_bytes(NONCE_SIZE, "big"), data, self._chunk_ad(index))

    def open_chunk(self, index: int, sealed: bytes) -> bytes:
        """The piece's plaintext, or DecryptError (wrong key, place, file or bytes)."""
        if not 0 <= index < 2**32:
            raise DecryptError("no such piece")
        try:
            return self.chunk.decrypt(
                index.to_bytes(NONCE_SIZE, "big"), sealed, self._chunk_ad(index)
            )
        except InvalidTag:
            raise DecryptError("a piece failed its check") from None

    def chunk_frame(self, index: int, sealed: bytes) -> bytes:
        return _CHUNK_HEAD.pack(WIRE_VERSION, TYPE_CHUNK, self.tag, index) + sealed

    def control_frame(self, asking: bool, body: bytes, nonce: bytes | None = None) -> bytes:
        """A sealed control message: `asking` from the receiver, otherwise from the sender."""
        nonce = os.urandom(NONCE_SIZE) if nonce is None else nonce
        key, label = (self.ask, LABEL_ASK) if asking else (self.tell, LABEL_TELL)
        return CONTROL_PREFIX + self.tag + nonce + key.encrypt(nonce, body, label + self.tag)

    def open_control(self, asking: bool, frame: bytes) -> bytes:
        """The body of a control frame sealed the given way, or DecryptError."""
        if len(frame) < _CONTROL_HEAD + TAG_SIZE or frame[:2] != CONTROL_PREFIX:
            raise DecryptError("not a control frame")
        key, label = (self.ask, LABEL_ASK) if asking else (self.tell, LABEL_TELL)
        nonce = frame[2 + TRANSFER_TAG_SIZE : _CONTROL_HEAD]
        try:
            return key.decrypt(nonce, frame[_CONTROL_HEAD:], label + self.tag)
        except InvalidTag:
            raise DecryptError("a control message failed its check") from None


@dataclass(frozen=True, slots=True)
class ChunkFrame:
    tag: bytes
    index: int
    sealed: bytes


def split_file_frame(frame: bytes) -> tuple[bytes, ChunkFrame | None]:
    """(tag, the chunk) of a chunk frame, (tag, None) of a control frame, or
    MalformedMessage."""
    if frame[:2] == CHUNK_PREFIX and len(frame) >= CHUNK_HEAD_SIZE + TAG_SIZE:
        if len(frame) > CHUNK_HEAD_SIZE + SEALED_CHUNK:
            raise MalformedMessage("a piece larger than a piece")
        _, _, tag, index = _CHUNK_HEAD.unpack_from(frame)
        return tag, ChunkFrame(tag, index, frame[CHUNK_HEAD_SIZE:])
    if frame[:2] == CONTROL_PREFIX and len(frame) >= _CONTROL_HEAD + TAG_SIZE:
        return frame[2 : 2 + TRANSFER_TAG_SIZE], None
    raise MalformedMessage("not a file frame")
