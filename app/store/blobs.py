"""Files at rest: each one its sealed pieces laid end to end in the profile's files folder.

Blocking calls, run off the event loop. Plaintext never touches this folder: a file being
sent is sealed as it is read, a file received is written piece by piece as it arrived
(sealed), and reading one back unseals it piece by piece into what the caller chose (a file
the user named, or memory). Which names are in use is the database's to say (`sweep`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from app.crypto.errors import DecryptError
from app.crypto.filecrypt import (
    CHUNK_SIZE,
    FileKeys,
    chunk_count,
    chunk_length,
    sealed_offset,
)
from app.crypto.primitives import TAG_SIZE

from .paths import ensure_private_dir, fsync_dir

FILES_DIR = "files"


class BlobError(OSError):
    """A file at rest is missing, short, or does not unseal."""


class Blobs:
    """The files folder of one profile."""

    def __init__(self, profile_dir: Path) -> None:
        self.directory = profile_dir / FILES_DIR

    def ensure(self) -> None:
        ensure_private_dir(self.directory)

    @staticmethod
    def new_name() -> str:
        return secrets.token_hex(16)

    def path(self, disk_name: str) -> Path:
        if len(disk_name) != 32 or not all(c in "0123456789abcdef" for c in disk_name):
            raise ValueError("not a file name of ours")
        return self.directory / disk_name

    # -- a file of ours -------------------------------------------------------------------

    def seal(
        self, disk_name: str, source: Path | bytes, keys_for: Callable[[int], FileKeys]
    ) -> tuple[int, bytes]:
        """Seal `source` (a file, or bytes) into a new file at rest; returns its size and
        SHA-256. `keys_for(size)` gives the keys (the pieces are bound to their number).
        Nothing is left behind when it fails."""
        self.ensure()
        dest = self.path(disk_name)
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with contextlib.ExitStack() as stack:
                if isinstance(source, bytes):
                    size, read = len(source), _bytes_reader(source)
                else:
                    handle = stack.enter_context(open(source, "rb"))
                    size, read = os.fstat(handle.fileno()).st_size, handle.read
                keys = keys_for(size)
                digest = hashlib.sha256()
                for index in range(keys.count):
                    piece = read(chunk_length(size, index))
                    if len(piece) != chunk_length(size, index):
                        raise BlobError("the file changed while it was read")
                    digest.update(piece)
                    _write_all(fd, keys.seal_chunk(index, piece))
                if read(1):
                    raise BlobError("the file changed while it was read")
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            dest.unlink(missing_ok=True)
            raise
        os.close(fd)
        fsync_dir(self.directory)
        return size, digest.digest()

    def read_piece(self, disk_name: str, size: int, index: int) -> bytes:
        """Sealed piece `index` as it rests."""
        want = chunk_length(size, index) + TAG_SIZE
        with open(self.path(disk_name), "rb") as handle:
            handle.seek(sealed_offset(index))
            data = handle.read(want)
        if len(data) != want:
            raise BlobError("a file at rest is shorter than it should be")
        return data

    def read_pieces(self, disk_name: str, size: int, indexes: list[int]) -> list[bytes]:
        with open(self.path(disk_name), "rb") as handle:
            out = []
            for index in indexes:
                want = chunk_length(size, index) + TAG_SIZE
                handle.seek(sealed_offset(index))
                data = handle.read(want)
                if len(data) != want:
                    raise BlobError("a file at rest is shorter than it should be")
                out.append(data)
        return out

    # -- a file coming in -----------------------------------------------------------------

    def open_for_pieces(self, disk_name: str) -> int:
        """A descriptor to write arriving pieces through (`write_piece`, then `flush`)."""
        self.ensure()
        return os.open(self.path(disk_name), os.O_RDWR | os.O_CREAT, 0o600)

    @staticmethod
    def write_piece(fd: int, index: int, sealed: bytes) -> None:
        view = memoryview(sealed)
        offset = sealed_offset(index)
        while view:
            written = os.pwrite(fd, view, offset)
            view, offset = view[written:], offset + written

    @staticmethod
    def write_pieces(fd: int, pieces: dict[int, bytes]) -> None:
        """Write sealed pieces where they belong, then flush them to disk."""
        for index, sealed in pieces.items():
            Blobs.write_piece(fd, index, sealed)
        os.fsync(fd)

    # -- reading one back -----------------------------------------------------------------

    def unseal(self, disk_name: str, keys: FileKeys, size: int, out: BinaryIO | None) -> bytes:
        """Unseal every piece in order into `out` (None: only check); returns the SHA-256
        of the plaintext. BlobError when a piece is missing or fails its check."""
        digest = hashlib.sha256()
        try:
            handle = open(self.path(disk_name), "rb")  # noqa: SIM115
        except FileNotFoundError:
            raise BlobError("the file is not here") from None
        with handle:
            for index in range(chunk_count(size)):
                want = chunk_length(size, index) + TAG_SIZE
                sealed = handle.read(want)
                if len(sealed) != want:
                    raise BlobError("the file is shorter than it should be")
                try:
                    piece = keys.open_chunk(index, sealed)
                except DecryptError:
                    raise BlobError("a piece of the file does not unseal") from None
                digest.update(piece)
                if out is not None:
                    out.write(piece)
        return digest.digest()

    def remove(self, disk_name: str) -> None:
        with contextlib.suppress(FileNotFoundError, ValueError):
            self.path(disk_name).unlink()

    def sweep(self, keep: set[str]) -> int:
        """Delete every file at rest whose name the database no longer holds (its message
        was deleted, or a send was cut off before it was stored); returns how many."""
        if not self.directory.is_dir():
            return 0
        gone = 0
        for entry in os.scandir(self.directory):
            if entry.name not in keep:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    gone += 1
        return gone


def _bytes_reader(data: bytes) -> Callable[[int], bytes]:
    view = memoryview(data)
    pos = 0

    def read(n: int) -> bytes:
        nonlocal pos
        piece = bytes(view[pos : pos + n])
        pos += len(piece)
        return piece

    return read


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


__all__ = ["CHUNK_SIZE", "FILES_DIR", "BlobError", "Blobs"]
