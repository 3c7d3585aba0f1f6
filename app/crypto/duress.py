"""The duress passphrase's field in the key header: made, recognised and opened.

A duress passphrase goes through Argon2id with the field's own salt and the profile's
parameters, like the passphrase itself, giving a key K. The field holds
`verifier = HKDF(K, "duress-verify")` and the settings a fresh profile starts from (display
name, relays, connection settings), AES-256-GCM sealed under `HKDF(K, "duress-seal")` and
padded to a fixed size. With no duress passphrase set the field is random bytes of the same
sizes: a verifier and a GCM ciphertext look like random bytes, so nothing in the header says
whether one is set. K is also the new profile's database key (its slot is the field's salt
and parameters), so entering the duress passphrase costs no Argon2id beyond what every
unlock attempt already pays. Pure: no I/O, randomness injectable.
"""

from __future__ import annotations

import hmac
import os
import struct
from collections.abc import Callable, Mapping

from app.crypto.passphrase import (
    DURESS_SEALED_LEN,
    KEY_LEN,
    SALT_LEN,
    VERIFIER_LEN,
    DuressField,
    KdfParams,
    KeySlot,
)
from app.crypto.primitives import TAG_SIZE, hkdf, open_sealed, seal

LABEL_VERIFY = b"anonchat/duress-verify/v1"
LABEL_SEAL = b"anonchat/duress-seal/v1"
CAPACITY = DURESS_SEALED_LEN - TAG_SIZE  # the padded plaintext: 1,536 bytes
_FORMAT = 1
_VALUE_LEN = struct.Struct(">H")


class DuressError(ValueError):
    """Settings too large for the field, or a sealed field that is not ours."""


def random_field(params: KdfParams, randbytes: Callable[[int], bytes] = os.urandom) -> DuressField:
    """The field of a profile with no duress passphrase: random, of the fixed sizes."""
    return DuressField(
        params, randbytes(SALT_LEN), randbytes(VERIFIER_LEN), randbytes(DURESS_SEALED_LEN)
    )


def new_duress_slot(params: KdfParams, randbytes: Callable[[int], bytes] = os.urandom) -> KeySlot:
    """Where a new duress passphrase is derived: the profile's parameters, a fresh salt."""
    return KeySlot(params, randbytes(SALT_LEN))


def _verifier(key: bytes) -> bytes:
    return hkdf(key, b"", LABEL_VERIFY, VERIFIER_LEN)


def _seal_key(key: bytes) -> bytes:
    return hkdf(key, b"", LABEL_SEAL, KEY_LEN)


def sealed_field(key: bytes, slot: KeySlot, settings: Mapping[str, str]) -> DuressField:
    """The field for a duress passphrase whose Argon2id key under `slot` is `key`, holding
    `settings`. Each slot has a fresh salt, so each seal key is used once."""
    if len(key) != KEY_LEN:
        raise ValueError("a duress key is 32 bytes")
    sealed = seal(_seal_key(key), _encode(settings), slot.salt)
    return DuressField(slot.params, slot.salt, _verifier(key), sealed)


def matches(duress: DuressField, key: bytes) -> bool:
    """Whether `key` (a passphrase's Argon2id key under the field's slot) is the duress one."""
    return hmac.compare_digest(_verifier(key), duress.verifier)


def open_field(duress: DuressField, key: bytes) -> dict[str, str]:
    """The settings sealed in the field for `key`; DuressError when they do not open."""
    plain = open_sealed(_seal_key(key), duress.sealed, duress.salt)
    if plain is None:
        raise DuressError("the duress field does not open with this key")
    return _decode(plain)


def _encode(settings: Mapping[str, str]) -> bytes:
    """version(1) || count(1) || (key length(1) || key || value length(2) || value)* ||
    zeros up to CAPACITY, UTF-8 throughout."""
    if len(settings) > 255:
        raise DuressError("too many settings for the duress field")
    out = bytearray((_FORMAT, len(settings)))
    for name, value in settings.items():
        raw_name, raw_value = name.encode("utf-8"), value.encode("utf-8")
        if not 0 < len(raw_name) <= 255 or len(raw_value) > 0xFFFF:
            raise DuressError("a setting too long for the duress field")
        out += bytes((len(raw_name),)) + raw_name + _VALUE_LEN.pack(len(raw_value)) + raw_value
    if len(out) > CAPACITY:
        raise DuressError(f"the settings take {len(out)} bytes; the duress field holds {CAPACITY}")
    return bytes(out) + bytes(CAPACITY - len(out))


def _decode(plain: bytes) -> dict[str, str]:
    if len(plain) != CAPACITY or plain[0] != _FORMAT:
        raise DuressError("unknown duress field format")
    count, pos = plain[1], 2
    settings: dict[str, str] = {}
    try:
        for _ in range(count):
            size = plain[pos]
            name = plain[pos + 1 : pos + 1 + size].decode("utf-8")
            pos += 1 + size
            (size,) = _VALUE_LEN.unpack_from(plain, pos)
            value = plain[pos + 2 : pos + 2 + size]
            if len(value) != size:
                raise DuressError("duress field truncated")
            settings[name] = value.decode("utf-8")
            pos += 2 + size
    except (IndexError, struct.error, UnicodeDecodeError):
        raise DuressError("damaged duress field") from None
    if len(settings) != count or any(plain[pos:]):
        raise DuressError("damaged duress field")
    return settings
