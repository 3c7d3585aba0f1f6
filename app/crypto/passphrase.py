"""Passphrase -> raw database key (Argon2id), and the plaintext key-header format.

The header sits beside the encrypted database and holds only what is needed to re-derive the
key and read the pages: Argon2id parameters and salts, and the HMAC SQLCipher checks each page
with. It has one "key slot" normally and two while a passphrase change is in flight (old and
new), so a crash between re-keying the database and rewriting the header still leaves a slot
that matches the database. A version 3 header also always carries a duress field of fixed
size (`DuressField`, sealed or read by duress.py): random bytes unless a duress passphrase is
set, and the same length and look either way. Everything here is pure: no file I/O,
randomness injectable.
"""

from __future__ import annotations

import enum
import hashlib
import os
import struct
import threading
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

KEY_LEN = 32
SALT_LEN = 16
MAGIC_V1 = b"ANCKDF01"  # no HMAC byte: the page HMAC is SHA-512 (profiles made before v2)
MAGIC_V2 = b"ANCKDF02"  # no duress field (profiles made before v3; upgraded when unlocked)
MAGIC = b"ANCKDF03"
_ALG_ARGON2ID = 1
_SLOT = struct.Struct(">BIIB")  # algorithm, memory KiB, iterations, lanes
_DIGEST_LEN = 32
# Bounds a header may ask for: a hostile or damaged header must not make us allocate 64 GiB.
MAX_MEMORY_KIB = 4 * 1024 * 1024
MAX_ITERATIONS = 64
MAX_LANES = 64
MAX_SLOTS = 2
VERIFIER_LEN = 32
# The duress field's sealed part: a 1,536-byte padded plaintext and its 16-byte GCM tag.
DURESS_SEALED_LEN = 1552


class PassphraseError(ValueError):
    """The passphrase itself is unusable (empty)."""


class HeaderError(ValueError):
    """The header bytes are not a well-formed key header."""


@dataclass(frozen=True, slots=True)
class KdfParams:
    """Argon2id cost parameters (RFC 9106 names)."""

    memory_kib: int
    iterations: int
    lanes: int

    def __post_init__(self) -> None:
        if not 8 * self.lanes <= self.memory_kib <= MAX_MEMORY_KIB:
            raise HeaderError("argon2id memory out of range")
        if not 1 <= self.iterations <= MAX_ITERATIONS:
            raise HeaderError("argon2id iterations out of range")
        if not 1 <= self.lanes <= MAX_LANES:
            raise HeaderError("argon2id lanes out of range")


# Tuned so one derivation takes about half a second on a 2-core desktop-class machine.
DEFAULT_PARAMS = KdfParams(memory_kib=256 * 1024, iterations=4, lanes=4)
# For tests and scripted throwaway profiles only: fast, and weak.
INSECURE_FAST_PARAMS = KdfParams(memory_kib=64, iterations=1, lanes=1)


class PageHmac(enum.IntEnum):
    """The HMAC that authenticates each encrypted database page (SQLCipher's setting).

    SHA-256 for new profiles: as strong a MAC here, and faster than SHA-512 on
    processors with SHA extensions, which matters because every page written is MACed."""

    SHA512 = 1
    SHA256 = 2


@dataclass(frozen=True, slots=True)
class KeySlot:
    """One way to derive the database key: parameters and salt."""

    params: KdfParams
    salt: bytes

    def __post_init__(self) -> None:
        if not 16 <= len(self.salt) <= 64:
            raise HeaderError("salt length out of range")


@dataclass(frozen=True, slots=True)
class DuressField:
    """Where a duress passphrase would be: its Argon2id parameters and salt, a verifier and a
    sealed blob, all of fixed size. Random bytes (with the profile's parameters) when none
    is set, so the header looks the same whether one is or not."""

    params: KdfParams
    salt: bytes
    verifier: bytes
    sealed: bytes

    def __post_init__(self) -> None:
        if len(self.salt) != SALT_LEN:
            raise HeaderError("duress salt length")
        if len(self.verifier) != VERIFIER_LEN:
            raise HeaderError("duress verifier length")
        if len(self.sealed) != DURESS_SEALED_LEN:
            raise HeaderError("duress field length")

    @property
    def slot(self) -> KeySlot:
        """The derivation a duress passphrase goes through, as a key slot."""
        return KeySlot(self.params, self.salt)


@dataclass(frozen=True, slots=True)
class KeyHeader:
    """The whole header: the current slot first; a second slot only during re-keying. The
    duress field is None only in a header read from a version 1 or 2 file."""

    slots: tuple[KeySlot, ...]
    page_hmac: PageHmac = field(default=PageHmac.SHA256)
    duress: DuressField | None = None

    def __post_init__(self) -> None:
        if not 1 <= len(self.slots) <= MAX_SLOTS:
            raise HeaderError("header must hold one or two key slots")


def new_slot(params: KdfParams, randbytes: Callable[[int], bytes] = os.urandom) -> KeySlot:
    """A fresh slot with a random salt."""
    return KeySlot(params=params, salt=randbytes(SALT_LEN))


def normalize(passphrase: str) -> bytes:
    """NFC-normalised UTF-8, so the same typed passphrase gives the same key on every OS."""
    if not passphrase:
        raise PassphraseError("the passphrase is empty")
    return unicodedata.normalize("NFC", passphrase).encode("utf-8")


# Two Argon2id derivations with several lanes at once in one process never finish (both
# threads wait forever); a scheduled backup's and a passphrase change's could meet. So every
# derivation in the app goes through `argon2id`, one at a time.
_ONE_AT_A_TIME = threading.Lock()


def argon2id(secret: bytes, salt: bytes, params: KdfParams, length: int = KEY_LEN) -> bytes:
    """Argon2id of `secret` (the one way the app runs it: one derivation at a time)."""
    kdf = Argon2id(
        salt=salt,
        length=length,
        iterations=params.iterations,
        lanes=params.lanes,
        memory_cost=params.memory_kib,
    )
    with _ONE_AT_A_TIME:
        return kdf.derive(secret)


def derive_key(passphrase: str, slot: KeySlot) -> bytes:
    """The 256-bit raw SQLCipher key for this passphrase and slot. Slow by design."""
    return argon2id(normalize(passphrase), slot.salt, slot.params)


def _pack_params(p: KdfParams) -> bytes:
    return _SLOT.pack(_ALG_ARGON2ID, p.memory_kib, p.iterations, p.lanes)


def encode_header(header: KeyHeader) -> bytes:
    """Bytes for the header file (always version 3): magic, page HMAC, slots, the duress
    field, then a SHA-256 of all that (damage detector)."""
    if header.duress is None:
        raise HeaderError("a header is written with its duress field")
    body = bytearray(MAGIC)
    body.append(header.page_hmac)
    body.append(len(header.slots))
    for slot in header.slots:
        body += _pack_params(slot.params)
        body.append(len(slot.salt))
        body += slot.salt
    duress = header.duress
    body += _pack_params(duress.params) + duress.salt + duress.verifier + duress.sealed
    return bytes(body) + hashlib.sha256(body).digest()


def _unpack_params(body: bytes, pos: int) -> KdfParams:
    if pos + _SLOT.size > len(body):
        raise HeaderError("key header truncated")
    alg, memory, iterations, lanes = _SLOT.unpack_from(body, pos)
    if alg != _ALG_ARGON2ID:
        raise HeaderError("unknown key derivation algorithm")
    return KdfParams(memory, iterations, lanes)


def decode_header(data: bytes) -> KeyHeader:
    """Parse header bytes (version 1, 2 or 3); any defect is one HeaderError."""
    magics = (MAGIC, MAGIC_V2, MAGIC_V1)
    if len(data) < len(MAGIC) + 1 + _DIGEST_LEN or not data.startswith(magics):
        raise HeaderError("not a key header")
    body, digest = data[:-_DIGEST_LEN], data[-_DIGEST_LEN:]
    if hashlib.sha256(body).digest() != digest:
        raise HeaderError("key header checksum mismatch")
    pos = len(MAGIC)
    page_hmac = PageHmac.SHA512
    if not body.startswith(MAGIC_V1):
        if pos + 2 > len(body):
            raise HeaderError("key header truncated")
        try:
            page_hmac = PageHmac(body[pos])
        except ValueError:
            raise HeaderError("unknown page HMAC") from None
        pos += 1
    count = body[pos]
    pos += 1
    slots: list[KeySlot] = []
    for _ in range(count):
        if pos + _SLOT.size + 1 > len(body):
            raise HeaderError("key header truncated")
        params = _unpack_params(body, pos)
        pos += _SLOT.size
        salt_len = body[pos]
        pos += 1
        if pos + salt_len > len(body):
            raise HeaderError("key header truncated")
        salt = bytes(body[pos : pos + salt_len])
        pos += salt_len
        slots.append(KeySlot(params, salt))
    duress = None
    if body.startswith(MAGIC):
        size = _SLOT.size + SALT_LEN + VERIFIER_LEN + DURESS_SEALED_LEN
        if pos + size > len(body):
            raise HeaderError("key header truncated")
        params = _unpack_params(body, pos)
        pos += _SLOT.size
        salt, pos = bytes(body[pos : pos + SALT_LEN]), pos + SALT_LEN
        verifier, pos = bytes(body[pos : pos + VERIFIER_LEN]), pos + VERIFIER_LEN
        sealed, pos = bytes(body[pos : pos + DURESS_SEALED_LEN]), pos + DURESS_SEALED_LEN
        duress = DuressField(params, salt, verifier, sealed)
    if pos != len(body):
        raise HeaderError("trailing bytes in key header")
    return KeyHeader(tuple(slots), page_hmac, duress)
