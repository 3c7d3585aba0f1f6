"""A backup file's encryption: a header, then the plaintext sealed in chunks (docs/backup.md).

The file is a msgpack stream of `bin` objects. The first holds the header (itself a msgpack
map: format, version, Argon2id parameters and salt, chunk size, nonce prefix, passphrase
check); each later one is an AES-256-GCM chunk of at most `chunk_size` plaintext bytes. The
key comes from Argon2id of the backup passphrase, then HKDF-SHA256 with the SHA-256 of the
header bytes as salt, so changing a byte of the header changes the key. The check (an HMAC
of the Argon2id output) tells a wrong passphrase from a damaged file; it lets a guesser test
a passphrase no faster than the first chunk's tag would. Each chunk's nonce is
`prefix(7) || counter(4) || last(1)` (the STREAM construction): chunks cannot be dropped,
reordered or repeated, the file cannot be cut short before its last chunk, and nothing may
follow that one.

Sans-I/O: `BackupWriter` turns plaintext into file bytes, `BackupReader` file bytes into
plaintext; the caller reads and writes the file. Argon2id runs when a writer is made and when
a reader meets the header, so both belong off the event loop.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgpack
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from app.crypto.errors import RemoteProtocolError
from app.crypto.passphrase import SALT_LEN, HeaderError, KdfParams, argon2id, normalize
from app.crypto.primitives import KEY_SIZE, TAG_SIZE, hkdf

FORMAT = "anonchat-backup"
VERSION = 1
KDF_ARGON2ID = "argon2id"
LABEL_BACKUP = b"anonchat/backup/v1"
LABEL_CHECK = b"anonchat/backup-check/v1"
CHECK_SIZE = 16
CHUNK_SIZE = 64 * 1024  # plaintext bytes per chunk, the most a header may name
PREFIX_SIZE = 7
MAX_CHUNKS = 2**32  # the counter is four bytes
MAX_HEADER = 1024  # the header's bytes; a real one is about 150
READ_SIZE = 64 * 1024  # what `BackupReader.feed` takes in at once
_COUNTER = struct.Struct(">IB")
_HEADER_KEYS = frozenset(
    {
        "format",
        "version",
        "kdf",
        "memory_kib",
        "iterations",
        "lanes",
        "salt",
        "chunk_size",
        "nonce_prefix",
        "check",
    }
)


class BackupError(RemoteProtocolError):
    """The file is not a backup this version can read, or it was cut, damaged or altered;
    the message says which, for the person restoring."""


class WrongBackupPassphrase(BackupError):
    """The passphrase does not give the header's check value."""

    def __init__(self) -> None:
        super().__init__("wrong backup passphrase")


@dataclass(frozen=True, slots=True)
class Header:
    """What a reader needs before it can open a chunk. Its bytes are bound into the key."""

    params: KdfParams
    salt: bytes
    chunk_size: int
    nonce_prefix: bytes
    check: bytes  # passphrase_check of the Argon2id output

    def __post_init__(self) -> None:
        if not 16 <= len(self.salt) <= 64:
            raise BackupError("the backup's salt has an impossible length")
        if not 1 <= self.chunk_size <= CHUNK_SIZE:
            raise BackupError("the backup's chunk size is out of range")
        if len(self.nonce_prefix) != PREFIX_SIZE:
            raise BackupError("the backup's nonce prefix has the wrong length")
        if len(self.check) != CHECK_SIZE:
            raise BackupError("the backup's passphrase check has the wrong length")

    def to_bytes(self) -> bytes:
        """The header's msgpack map (keys in this order; a reader does not care)."""
        data: bytes = msgpack.packb(
            {
                "format": FORMAT,
                "version": VERSION,
                "kdf": KDF_ARGON2ID,
                "memory_kib": self.params.memory_kib,
                "iterations": self.params.iterations,
                "lanes": self.params.lanes,
                "salt": self.salt,
                "chunk_size": self.chunk_size,
                "nonce_prefix": self.nonce_prefix,
                "check": self.check,
            },
            use_bin_type=True,
        )
        return data

    @classmethod
    def from_bytes(cls, data: bytes) -> Header:
        """Parse and bound a header; BackupError says what is wrong with it."""
        try:
            fields = msgpack.unpackb(
                data, raw=False, strict_map_key=True, max_str_len=64, max_bin_len=64
            )
        except Exception:  # msgpack raises several types for bad bytes
            raise BackupError("not an AnonChat backup file") from None
        if not isinstance(fields, dict) or fields.get("format") != FORMAT:
            raise BackupError("not an AnonChat backup file")
        version = fields.get("version")
        if version != VERSION or type(version) is not int:
            raise BackupError(
                f"this backup has format version {version!r}; this version of AnonChat reads "
                f"version {VERSION} (a newer AnonChat made it?)"
            )
        if set(fields) != _HEADER_KEYS or fields["kdf"] != KDF_ARGON2ID:
            raise BackupError("the backup's header is malformed")
        numbers = ("memory_kib", "iterations", "lanes", "chunk_size")
        if any(type(fields[k]) is not int for k in numbers):
            raise BackupError("the backup's header is malformed")
        if not all(isinstance(fields[k], bytes) for k in ("salt", "nonce_prefix", "check")):
            raise BackupError("the backup's header is malformed")
        try:
            params = KdfParams(fields["memory_kib"], fields["iterations"], fields["lanes"])
        except HeaderError:
            raise BackupError("the backup's key derivation parameters are out of range") from None
        return cls(
            params,
            fields["salt"],
            fields["chunk_size"],
            fields["nonce_prefix"],
            fields["check"],
        )


def stretch(passphrase: str, params: KdfParams, salt: bytes) -> bytes:
    """Argon2id of the passphrase. Slow by design."""
    return argon2id(normalize(passphrase), salt, params, KEY_SIZE)


def passphrase_check(stretched: bytes) -> bytes:
    return hmac.digest(stretched, LABEL_CHECK, "sha256")[:CHECK_SIZE]


def chunk_key(stretched: bytes, header_bytes: bytes) -> bytes:
    """The key of every chunk: bound to the header's exact bytes."""
    return hkdf(stretched, hashlib.sha256(header_bytes).digest(), LABEL_BACKUP, KEY_SIZE)


def chunk_nonce(prefix: bytes, counter: int, last: bool) -> bytes:
    if not 0 <= counter < MAX_CHUNKS:
        raise BackupError("a backup has at most 2**32 chunks")
    return prefix + _COUNTER.pack(counter, 1 if last else 0)


def _bin(data: bytes) -> bytes:
    packed: bytes = msgpack.packb(data, use_bin_type=True)
    return packed


class BackupWriter:
    """Plaintext in, file bytes out: `head()` first, then `write()` as often as needed, then
    `finish()` once. Holds at most one chunk of plaintext."""

    def __init__(
        self,
        passphrase: str,
        params: KdfParams,
        *,
        chunk_size: int = CHUNK_SIZE,
        randbytes: Callable[[int], bytes] = os.urandom,
    ) -> None:
        salt, prefix = randbytes(SALT_LEN), randbytes(PREFIX_SIZE)
        stretched = stretch(passphrase, params, salt)
        self.header = Header(params, salt, chunk_size, prefix, passphrase_check(stretched))
        self._head = self.header.to_bytes()
        self._aead = AESGCM(chunk_key(stretched, self._head))
        self._buffer = bytearray()
        self._counter = 0
        self._finished = False

    def head(self) -> bytes:
        """The file's first bytes: the header as a `bin` object."""
        return _bin(self._head)

    def _seal(self, plaintext: bytes, last: bool) -> bytes:
        nonce = chunk_nonce(self.header.nonce_prefix, self._counter, last)
        self._counter += 1
        return _bin(self._aead.encrypt(nonce, plaintext, None))

    def write(self, data: bytes) -> bytes:
        """The file bytes of every chunk this fills (b"" while one is filling)."""
        if self._finished:
            raise ValueError("the backup stream is finished")
        self._buffer += data
        size = self.header.chunk_size
        out = []
        start = 0
        # Strictly more than a chunk: the last chunk is never empty unless the stream is.
        while len(self._buffer) - start > size:
            out.append(self._seal(bytes(self._buffer[start : start + size]), last=False))
            start += size
        del self._buffer[:start]
        return b"".join(out)

    def finish(self) -> bytes:
        """The last chunk (flagged as last)."""
        if self._finished:
            raise ValueError("the backup stream is finished")
        self._finished = True
        last = self._seal(bytes(self._buffer), last=True)
        self._buffer.clear()
        return last


class BackupReader:
    """File bytes in, plaintext out: `feed()` as the file is read, then `finish()` at its
    end, which refuses a file cut short. Raises BackupError (WrongBackupPassphrase when the
    passphrase does not give the header's check) and never returns plaintext that did not
    authenticate."""

    def __init__(self, passphrase: str) -> None:
        self._passphrase = passphrase
        self._unpacker = msgpack.Unpacker(
            raw=False,
            use_list=True,
            max_bin_len=CHUNK_SIZE + TAG_SIZE,
            max_str_len=0,
            max_array_len=0,
            max_map_len=0,
            max_ext_len=0,
            max_buffer_size=4 * (CHUNK_SIZE + TAG_SIZE) + READ_SIZE,
        )
        self._fed = 0
        self._whole = 0
        self.header: Header | None = None
        self._aead: AESGCM | None = None
        self._counter = 0
        self.finished = False  # the last chunk opened

    def feed(self, data: bytes) -> bytes:
        """The plaintext of every chunk these bytes complete."""
        out: list[bytes] = []
        view = memoryview(data)
        for start in range(0, len(view), READ_SIZE):
            piece = view[start : start + READ_SIZE]
            self._unpacker.feed(piece)
            self._fed += len(piece)
            for obj in self._objects():
                out.append(self._take(obj))
        return b"".join(out)

    def _objects(self) -> list[Any]:
        found = []
        try:
            for obj in self._unpacker:
                found.append(obj)
                # Where the last whole object ends (a partial one after it moves tell()).
                self._whole = self._unpacker.tell()
        except Exception:  # msgpack raises several types for bad bytes
            if self.header is None:
                raise BackupError("not an AnonChat backup file") from None
            raise BackupError("the backup file is damaged or was altered") from None
        return found

    def _take(self, obj: Any) -> bytes:
        if self.header is None:
            if not isinstance(obj, bytes) or len(obj) > MAX_HEADER:
                raise BackupError("not an AnonChat backup file")
            header = Header.from_bytes(obj)
            stretched = stretch(self._passphrase, header.params, header.salt)
            if not hmac.compare_digest(passphrase_check(stretched), header.check):
                raise WrongBackupPassphrase()
            self._aead = AESGCM(chunk_key(stretched, obj))
            self.header = header
            return b""
        if self.finished:
            raise BackupError("the backup file goes on after its end (something was added)")
        if not isinstance(obj, bytes) or len(obj) > self.header.chunk_size + TAG_SIZE:
            raise BackupError("the backup file is damaged or was altered")
        assert self._aead is not None
        prefix = self.header.nonce_prefix
        for last in (False, True):
            try:
                plain = self._aead.decrypt(chunk_nonce(prefix, self._counter, last), obj, None)
            except InvalidTag:
                continue
            self._counter += 1
            self.finished = last
            return plain
        raise BackupError("the backup file is damaged or was altered")

    def finish(self) -> None:
        """The file has ended: it must have ended exactly after its last chunk."""
        if self.header is None:
            raise BackupError("not an AnonChat backup file (it is empty or cut short)")
        if self.finished and self._whole != self._fed:
            raise BackupError("the backup file goes on after its end (something was added)")
        if not self.finished:
            raise BackupError("the backup file is truncated")
