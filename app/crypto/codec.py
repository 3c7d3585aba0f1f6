"""Tiny length-prefixed binary codec shared by cards, handshakes and serialised state.

Every layout in docs/crypto.md is built from these few field kinds, so one reader enforces
"truncated" and "trailing bytes" the same way everywhere and raises the caller's error type.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

_U32 = struct.Struct(">I")


class Writer:
    """Appends fields to a growing buffer."""

    __slots__ = ("_parts",)

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def u8(self, value: int) -> Writer:
        self._parts.append(bytes((value,)))
        return self

    def u32(self, value: int) -> Writer:
        self._parts.append(_U32.pack(value))
        return self

    def raw(self, data: bytes) -> Writer:
        self._parts.append(data)
        return self

    def var8(self, data: bytes) -> Writer:
        """Bytes with a one-byte length prefix (at most 255 bytes)."""
        if len(data) > 0xFF:
            raise ValueError("field longer than 255 bytes")
        self._parts.append(bytes((len(data),)) + data)
        return self

    def var32(self, data: bytes) -> Writer:
        """Bytes with a four-byte big-endian length prefix."""
        self._parts.append(_U32.pack(len(data)) + data)
        return self

    def bytes(self) -> bytes:
        return b"".join(self._parts)


class Reader:
    """Consumes fields from a buffer; any shortfall raises `error(message)`."""

    __slots__ = ("_data", "_error", "_pos")

    def __init__(self, data: bytes, error: Callable[[str], Exception]) -> None:
        self._data = bytes(data)
        self._pos = 0
        self._error = error

    def _take(self, size: int) -> bytes:
        end = self._pos + size
        if size < 0 or end > len(self._data):
            raise self._error("truncated")
        chunk = self._data[self._pos : end]
        self._pos = end
        return chunk

    def u8(self) -> int:
        return self._take(1)[0]

    def u32(self) -> int:
        value: int = _U32.unpack(self._take(4))[0]
        return value

    def raw(self, size: int) -> bytes:
        return self._take(size)

    def var8(self) -> bytes:
        return self._take(self.u8())

    def var32(self) -> bytes:
        return self._take(self.u32())

    def end(self) -> None:
        """Insists the buffer is used up, so no two encodings decode to the same value."""
        if self._pos != len(self._data):
            raise self._error("trailing bytes")
