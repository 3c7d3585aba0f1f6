"""The pieces of a file and a transfer's control messages (app/crypto/filecrypt.py), held to
what docs/messages.md promises, against an attacker who sees and changes every frame: a
piece opens only under its file's key, at its own place, in its own file of its own length;
a control message only in the direction it was sealed for."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.crypto.errors import DecryptError, MalformedMessage
from app.crypto.filecrypt import (
    CHUNK_HEAD_SIZE,
    CHUNK_SIZE,
    MAX_FILE_SIZE,
    SEALED_CHUNK,
    FileKeys,
    chunk_count,
    chunk_length,
    is_file_frame,
    sealed_offset,
    sealed_size,
    split_file_frame,
)

KEY, FILE_ID = bytes(range(32)), bytes(range(16))
keys32 = st.binary(min_size=32, max_size=32)
ids16 = st.binary(min_size=16, max_size=16)
sizes = st.integers(0, MAX_FILE_SIZE)


@given(sizes)
def test_pieces_cover_the_file_exactly(size: int) -> None:
    count = chunk_count(size)
    lengths = [chunk_length(size, i) for i in (0, count - 1)]
    assert (count - 1) * CHUNK_SIZE + lengths[-1] == size
    assert all(0 <= n <= CHUNK_SIZE for n in lengths)
    assert count == 1 or lengths[0] == CHUNK_SIZE
    assert sealed_size(size) == size + count * 16
    assert sealed_offset(count - 1) + lengths[-1] + 16 == sealed_size(size)


def test_sizes_out_of_range_are_refused() -> None:
    for size in (-1, MAX_FILE_SIZE + 1):
        with pytest.raises(ValueError):
            chunk_count(size)
    with pytest.raises(ValueError):
        chunk_length(10, 1)


@settings(max_examples=60)
@given(keys32, ids16, st.integers(1, 5 * CHUNK_SIZE), st.data())
def test_a_piece_opens_only_where_it_belongs(
    key: bytes, file_id: bytes, size: int, data: st.DataObject
) -> None:
    keys = FileKeys.derive(key, file_id, size)
    index = data.draw(st.integers(0, keys.count - 1))
    piece = os.urandom(chunk_length(size, index))
    sealed = keys.seal_chunk(index, piece)
    assert len(sealed) == len(piece) + 16
    assert keys.open_chunk(index, sealed) == piece
    frame = keys.chunk_frame(index, sealed)
    assert is_file_frame(frame)
    assert len(frame) <= CHUNK_HEAD_SIZE + SEALED_CHUNK
    tag, chunk = split_file_frame(frame)
    assert tag == keys.tag
    assert chunk is not None
    assert (chunk.index, chunk.sealed) == (index, sealed)
    # Any flipped bit, another place, another file, another length, another key: refused.
    bit = data.draw(st.integers(0, len(sealed) * 8 - 1))
    spoiled = bytearray(sealed)
    spoiled[bit // 8] ^= 1 << (bit % 8)
    other_id = bytes([file_id[0] ^ 1]) + file_id[1:]
    attempts = [
        (keys, index, bytes(spoiled)),
        (keys, index + 1, sealed),
        (FileKeys.derive(key, other_id, size), index, sealed),
        (FileKeys.derive(key, file_id, size + CHUNK_SIZE), index, sealed),
        (FileKeys.derive(bytes(32) if key != bytes(32) else KEY, file_id, size), index, sealed),
        (keys, index, sealed[:-1]),
    ]
    for other, at, blob in attempts:
        with pytest.raises(DecryptError):
            other.open_chunk(at, blob)


@given(keys32, ids16, st.binary(max_size=300), st.booleans())
def test_a_control_message_opens_only_in_its_own_direction(
    key: bytes, file_id: bytes, body: bytes, asking: bool
) -> None:
    keys = FileKeys.derive(key, file_id, 1000)
    frame = keys.control_frame(asking, body)
    assert is_file_frame(frame)
    tag, chunk = split_file_frame(frame)
    assert tag == keys.tag
    assert chunk is None
    assert keys.open_control(asking, frame) == body
    with pytest.raises(DecryptError):
        keys.open_control(not asking, frame)  # a reflected ask is not an answer
    with pytest.raises(DecryptError):
        keys.open_control(asking, frame[:-1] + bytes([frame[-1] ^ 0x80]))
    other = FileKeys.derive(key, bytes([file_id[0] ^ 1]) + file_id[1:], 1000)
    with pytest.raises(DecryptError):
        other.open_control(asking, frame)


def test_the_tag_names_the_transfer_not_the_file() -> None:
    # Neither the file id nor the key appears in a frame: only the tag derived from both.
    keys = FileKeys.derive(KEY, FILE_ID, 100)
    frame = keys.chunk_frame(0, keys.seal_chunk(0, b"x" * 100))
    assert FILE_ID not in frame
    assert KEY not in frame
    assert keys.tag in frame
    assert FileKeys.derive(KEY, FILE_ID, 100).tag == keys.tag
    assert FileKeys.derive(os.urandom(32), FILE_ID, 100).tag != keys.tag


@given(st.binary(max_size=200))
def test_any_bytes_split_to_a_frame_or_a_clear_refusal(frame: bytes) -> None:
    try:
        tag, chunk = split_file_frame(frame)
    except MalformedMessage:
        return
    assert is_file_frame(frame)
    assert len(tag) == 16
    assert chunk is None or chunk.sealed == frame[CHUNK_HEAD_SIZE:]


def test_a_frame_longer_than_a_piece_is_malformed() -> None:
    keys = FileKeys.derive(KEY, FILE_ID, 100)
    with pytest.raises(MalformedMessage):
        split_file_frame(keys.chunk_frame(0, bytes(SEALED_CHUNK + 1)))
    with pytest.raises(ValueError):
        keys.seal_chunk(0, bytes(CHUNK_SIZE + 1))
    with pytest.raises(ValueError):
        FileKeys.derive(KEY[:31], FILE_ID, 1)


def test_the_layout_is_the_documented_one() -> None:
    # docs/messages.md, "Files": another client must cut and frame files exactly so.
    assert CHUNK_SIZE == 61_440
    assert MAX_FILE_SIZE == 2**31
    keys = FileKeys.derive(KEY, FILE_ID, MAX_FILE_SIZE)
    piece = keys.chunk_frame(7, keys.seal_chunk(7, bytes(CHUNK_SIZE)))
    assert len(piece) == 2 + 16 + 4 + CHUNK_SIZE + 16 == 61_478
    assert piece[:2] == b"\x01\x03"
    assert piece[2:18] == keys.tag
    assert piece[18:22] == (7).to_bytes(4, "big")
    control = keys.control_frame(True, b"body")
    assert len(control) == 2 + 16 + 12 + 4 + 16
    assert control[:2] == b"\x01\x04"
    assert control[2:18] == keys.tag
    nonce = control[18:30]
    assert keys.ask.decrypt(nonce, control[30:], b"anonchat/file-ask/v1\x00" + keys.tag) == b"body"


def test_a_full_piece_fits_a_relay_frame() -> None:
    from relay import wire

    keys = FileKeys.derive(KEY, FILE_ID, MAX_FILE_SIZE)
    piece = keys.chunk_frame(keys.count - 2, keys.seal_chunk(keys.count - 2, bytes(CHUNK_SIZE)))
    send = wire.encode(wire.Send(wire.MAX_REQUEST_ID, bytes(32), piece))
    assert len(send) <= wire.DEFAULT_MAX_FRAME_SIZE


def test_only_file_frames_are_file_frames() -> None:
    for frame in (b"", b"\x01", b"\x01\x01" + bytes(60), b"\x01\x02" + bytes(60), b"\x02\x03"):
        assert not is_file_frame(frame)
    assert is_file_frame(b"\x01\x03")
    assert is_file_frame(b"\x01\x04")


def test_piece_numbers_stop_at_32_bits() -> None:
    keys = FileKeys.derive(KEY, FILE_ID, 100)
    last = 2**32 - 1
    assert keys.open_chunk(last, keys.seal_chunk(last, b"x")) == b"x"
    for index in (-1, 2**32):
        with pytest.raises(ValueError):
            keys.seal_chunk(index, b"x")
        with pytest.raises(DecryptError):
            keys.open_chunk(index, bytes(17))


def test_frames_at_their_shortest() -> None:
    keys = FileKeys.derive(KEY, FILE_ID, 0)
    empty = keys.chunk_frame(0, keys.seal_chunk(0, b""))
    assert len(empty) == CHUNK_HEAD_SIZE + 16
    _tag, chunk = split_file_frame(empty)
    assert chunk is not None
    assert keys.open_chunk(0, chunk.sealed) == b""
    with pytest.raises(MalformedMessage):
        split_file_frame(empty[:-1])
    control = keys.control_frame(False, b"")
    assert split_file_frame(control) == (keys.tag, None)
    assert keys.open_control(False, control) == b""
    with pytest.raises(MalformedMessage):
        split_file_frame(control[:-1])
    for short in (control[:-1], control[:20], b"\x01\x03" + control[2:]):
        with pytest.raises(DecryptError):
            keys.open_control(False, short)
