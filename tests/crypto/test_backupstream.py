"""The backup file's encryption (app/crypto/backupstream.py, docs/backup.md): any plaintext
comes back whatever the chunk size and however it is written and read; any change to the
file (a flipped byte, a cut, chunks swapped, dropped or repeated, bytes added) is refused
as a whole; the layout is the one docs/backup.md gives, checked by rebuilding it here."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

import msgpack
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from hypothesis import given, settings
from hypothesis import strategies as st

from app.crypto.backupstream import (
    CHUNK_SIZE,
    BackupError,
    BackupReader,
    BackupWriter,
    Header,
    WrongBackupPassphrase,
)
from app.crypto.passphrase import INSECURE_FAST_PARAMS, MAX_MEMORY_KIB

PASS = "backup passphrase"
FAST = INSECURE_FAST_PARAMS


def seal(
    data: bytes, chunk_size: int = 64, cuts: list[int] | None = None, passphrase: str = PASS
) -> bytes:
    writer = BackupWriter(passphrase, FAST, chunk_size=chunk_size)
    out = [writer.head()]
    start = 0
    for cut in sorted(cuts or []):
        out.append(writer.write(data[start:cut]))
        start = max(start, cut)
    out.append(writer.write(data[start:]))
    out.append(writer.finish())
    return b"".join(out)


def open_all(file: bytes, step: int = 4096, passphrase: str = PASS) -> bytes:
    reader = BackupReader(passphrase)
    plain = b"".join(reader.feed(file[i : i + step]) for i in range(0, len(file), step))
    reader.finish()
    return plain


def _unpack(file: bytes) -> list[bytes]:
    unpacker = msgpack.Unpacker(raw=False)
    unpacker.feed(file)
    return list(unpacker)


def pack(parts: list[bytes]) -> bytes:
    return b"".join(msgpack.packb(p, use_bin_type=True) for p in parts)


DATA = bytes(range(256)) * 5  # 1,280 bytes: 20 chunks of 64 and the last
FILE = seal(DATA)


@settings(max_examples=60, deadline=None)
@given(
    data=st.binary(max_size=3000),
    chunk_size=st.integers(1, 700),
    cuts=st.lists(st.integers(0, 3000), max_size=8),
    step=st.integers(1, 5000),
)
def test_any_plaintext_comes_back_whatever_the_chunking(
    data: bytes, chunk_size: int, cuts: list[int], step: int
) -> None:
    file = seal(data, chunk_size, cuts)
    assert open_all(file, step) == data
    chunks = _unpack(file)[1:]
    assert all(len(c) <= chunk_size + 16 for c in chunks)
    assert len(chunks) == max(1, -(-len(data) // chunk_size))


def test_the_largest_chunks_round_trip() -> None:
    data = bytes(3 * CHUNK_SIZE + 5)
    file = seal(data, CHUNK_SIZE)
    assert [len(c) for c in _unpack(file)[1:]] == [CHUNK_SIZE + 16] * 3 + [5 + 16]
    assert open_all(file, 1000) == data


def refused(file: bytes) -> BackupError:
    with pytest.raises(BackupError) as caught:
        open_all(file, 97)
    return caught.value


@settings(max_examples=200, deadline=None)
@given(where=st.integers(0, len(FILE) - 1), mask=st.integers(1, 255))
def test_any_flipped_byte_is_refused(where: int, mask: int) -> None:
    changed = bytearray(FILE)
    changed[where] ^= mask
    refused(bytes(changed))


@settings(max_examples=200, deadline=None)
@given(cut=st.integers(0, len(FILE) - 1))
def test_a_file_cut_anywhere_is_refused(cut: int) -> None:
    error = refused(FILE[:cut])
    assert "truncated" in str(error) or "not an AnonChat backup" in str(error)


def test_a_cut_at_a_chunk_boundary_says_truncated() -> None:
    parts = _unpack(FILE)
    for keep in range(1, len(parts)):
        assert "truncated" in str(refused(pack(parts[:keep])))


@settings(max_examples=100, deadline=None)
@given(extra=st.binary(min_size=1, max_size=200))
def test_bytes_added_at_the_end_are_refused(extra: bytes) -> None:
    refused(FILE + extra)


def test_a_chunk_after_the_last_is_refused() -> None:
    parts = _unpack(FILE)
    for extra in (parts[-1], parts[1], b""):
        assert "after its end" in str(refused(pack([*parts, extra])))


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_chunks_swapped_dropped_or_repeated_are_refused(data: st.DataObject) -> None:
    parts = _unpack(FILE)
    chunks = parts[1:]
    i = data.draw(st.integers(0, len(chunks) - 1))
    j = data.draw(st.integers(0, len(chunks) - 1).filter(lambda x: x != i))
    swapped = list(chunks)
    swapped[i], swapped[j] = swapped[j], swapped[i]
    dropped = chunks[:i] + chunks[i + 1 :]
    repeated = chunks[: i + 1] + chunks[i:]
    for changed in (swapped, dropped, repeated):
        refused(pack([parts[0], *changed]))


def test_a_wrong_passphrase_is_told_apart() -> None:
    with pytest.raises(WrongBackupPassphrase):
        open_all(FILE, passphrase="another passphrase")


def test_a_file_of_another_backup_does_not_mix() -> None:
    """The same plaintext and passphrase sealed twice share no key: a chunk of one does not
    open in the other, nor under the other's header."""
    other = _unpack(seal(DATA))
    parts = _unpack(FILE)
    assert "damaged" in str(refused(pack([parts[0], other[1], *parts[2:]])))
    assert "damaged" in str(refused(pack([*parts[:3], other[3], *parts[4:]])))
    assert "damaged" in str(refused(pack([other[0], *parts[1:]])))


def test_a_damaged_first_chunk_is_not_a_wrong_passphrase() -> None:
    parts = _unpack(FILE)
    first = bytearray(parts[1])
    first[3] ^= 1
    error = refused(pack([parts[0], bytes(first), *parts[2:]]))
    assert not isinstance(error, WrongBackupPassphrase)
    assert "damaged or was altered" in str(error)


def header_bytes(**changes: object) -> bytes:
    fields: dict[str, object] = {
        "format": "anonchat-backup",
        "version": 1,
        "kdf": "argon2id",
        "memory_kib": 64,
        "iterations": 1,
        "lanes": 1,
        "salt": bytes(16),
        "chunk_size": 64,
        "nonce_prefix": bytes(7),
        "check": bytes(16),
    }
    fields.update(changes)
    return msgpack.packb({k: v for k, v in fields.items() if v is not None}, use_bin_type=True)


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"version": 2}, "format version 2"),
        ({"format": "something-else"}, "not an AnonChat backup"),
        ({"memory_kib": MAX_MEMORY_KIB + 1}, "out of range"),
        ({"iterations": 10_000}, "out of range"),
        ({"lanes": 0}, "out of range"),
        ({"chunk_size": CHUNK_SIZE + 1}, "chunk size"),
        ({"chunk_size": 0}, "chunk size"),
        ({"salt": bytes(4)}, "salt"),
        ({"nonce_prefix": bytes(8)}, "nonce prefix"),
        ({"check": bytes(15)}, "passphrase check"),
        ({"kdf": "scrypt"}, "malformed"),
        ({"lanes": None}, "malformed"),
        ({"extra": 1}, "malformed"),
        ({"iterations": "1"}, "malformed"),
    ],
)
def test_a_header_out_of_bounds_is_refused_before_any_key_is_derived(
    changes: dict[str, object], says: str
) -> None:
    head = header_bytes(**changes)
    with pytest.raises(BackupError, match=says):
        Header.from_bytes(head)
    assert says in str(refused(pack([head, bytes(32)])))


@pytest.mark.parametrize(
    "start", [b"", b"hello", msgpack.packb({"format": "anonchat-backup"}), bytes(2000)]
)
def test_what_is_not_a_backup_says_so(start: bytes) -> None:
    assert "not an AnonChat backup" in str(refused(start))


def test_the_layout_is_the_documented_one() -> None:
    """Rebuilt from docs/backup.md alone: the header bin, its check (HMAC-SHA256 of the
    Argon2id output over "anonchat/backup-check/v1", 16 bytes), the key (HKDF-SHA256 of the
    Argon2id output with the header's SHA-256 as salt and "anonchat/backup/v1" as info), and
    each chunk's nonce prefix || counter (4, big-endian) || last (1)."""
    parts = _unpack(FILE)
    head = parts[0]
    fields = msgpack.unpackb(head, raw=False)
    assert fields["format"] == "anonchat-backup"
    assert fields["version"] == 1
    assert (fields["memory_kib"], fields["iterations"], fields["lanes"]) == (64, 1, 1)
    assert len(fields["salt"]) == 16
    assert len(fields["nonce_prefix"]) == 7
    assert fields["chunk_size"] == 64
    slow = Argon2id(salt=fields["salt"], length=32, iterations=1, lanes=1, memory_cost=64).derive(
        PASS.encode()
    )
    assert fields["check"] == hmac.digest(slow, b"anonchat/backup-check/v1", "sha256")[:16]
    assert sorted(fields) == sorted(
        [
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
        ]
    )
    prk = hmac.digest(hashlib.sha256(head).digest(), slow, "sha256")
    key = hmac.digest(prk, b"anonchat/backup/v1\x01", "sha256")
    aead = AESGCM(key)
    plain = b""
    chunks = parts[1:]
    for n, chunk in enumerate(chunks):
        last = n == len(chunks) - 1
        nonce = fields["nonce_prefix"] + n.to_bytes(4, "big") + bytes((last,))
        plain += aead.decrypt(nonce, chunk, None)
    assert plain == DATA


def test_the_writer_refuses_to_go_on_after_finishing() -> None:
    writer = BackupWriter(PASS, FAST)
    writer.finish()
    calls: list[Callable[[], object]] = [lambda: writer.write(b"x"), writer.finish]
    for call in calls:
        with pytest.raises(ValueError, match="finished"):
            call()
