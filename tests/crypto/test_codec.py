"""The field kinds every layout in docs/crypto.md is made of: big-endian integers, raw bytes,
and byte strings with a 1- or 4-byte length prefix; a reader that says "truncated" for any
shortfall and "trailing bytes" for anything left over, in the caller's error type."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.crypto.codec import Reader, Writer
from app.crypto.errors import CardError, LocalStateError


def test_writer_lays_fields_out_big_endian_in_call_order() -> None:
    data = Writer().u8(0xAB).u32(0x03040506).raw(b"raw").var8(b"v8").var32(b"v32").bytes()
    assert data == (b"\xab" + b"\x03\x04\x05\x06" + b"raw" + b"\x02v8" + b"\x00\x00\x00\x03v32")


def test_an_empty_writer_gives_no_bytes() -> None:
    assert Writer().bytes() == b""
    assert Writer().raw(b"").var8(b"").var32(b"").bytes() == b"\x00" + bytes(4)


def test_var8_takes_255_bytes_and_refuses_256() -> None:
    assert Writer().var8(bytes(255)).bytes() == b"\xff" + bytes(255)
    with pytest.raises(ValueError, match="255"):
        Writer().var8(bytes(256))


def test_var32_prefixes_a_four_byte_length() -> None:
    assert Writer().var32(bytes(256)).bytes() == b"\x00\x00\x01\x00" + bytes(256)


def test_reader_reads_what_the_writer_wrote() -> None:
    reader = Reader(
        b"\xab\x03\x04\x05\x06raw\x02v8\x00\x00\x00\x03v32tail",
        LocalStateError,
    )
    assert reader.u8() == 0xAB
    assert reader.u32() == 0x03040506
    assert reader.raw(3) == b"raw"
    assert reader.var8() == b"v8"
    assert reader.var32() == b"v32"
    assert reader.raw(4) == b"tail"
    reader.end()


def test_each_integer_consumes_exactly_its_width() -> None:
    reader = Reader(bytes(range(1, 7)), LocalStateError)
    assert reader.u8() == 1
    assert reader.u32() == 0x02030405
    assert reader.raw(1) == b"\x06"
    reader.end()


def test_reading_exactly_to_the_end_is_fine_and_a_zero_length_read_is_empty() -> None:
    reader = Reader(b"abc", LocalStateError)
    assert reader.raw(0) == b""
    assert reader.raw(3) == b"abc"
    assert reader.raw(0) == b""
    reader.end()


@pytest.mark.parametrize(
    ("data", "read"),
    [
        (b"", Reader.u8),
        (b"\x01\x02\x03", Reader.u32),
        (b"\x03ab", Reader.var8),
        (b"\x00\x00\x00\x02a", Reader.var32),
        (b"\x00\x00\x01", Reader.var32),
    ],
)
def test_any_shortfall_is_truncated_in_the_callers_error_type(data: bytes, read: object) -> None:
    with pytest.raises(CardError) as info:
        read(Reader(data, CardError))  # type: ignore[operator]
    assert info.value.reason == "truncated"


def test_raw_refuses_more_than_is_left_and_negative_sizes() -> None:
    reader = Reader(b"abc", LocalStateError)
    with pytest.raises(LocalStateError, match=r"^truncated$"):
        reader.raw(4)
    with pytest.raises(LocalStateError, match=r"^truncated$"):
        reader.raw(-1)
    assert reader.raw(3) == b"abc"  # a refused read consumed nothing


def test_end_refuses_trailing_bytes() -> None:
    reader = Reader(b"\x01\x02", CardError)
    reader.u8()
    with pytest.raises(CardError) as info:
        reader.end()
    assert info.value.reason == "trailing bytes"
    reader.u8()
    reader.end()


def test_the_reader_copies_its_input() -> None:
    buffer = bytearray(b"\x01\x02")
    reader = Reader(buffer, LocalStateError)  # type: ignore[arg-type]
    buffer[0] = 9
    assert reader.u8() == 1


def _read_all(
    reader: Reader, fields: list[tuple[str, int | bytes]]
) -> list[tuple[str, int | bytes]]:
    got = [(kind, getattr(reader, kind)()) for kind, _ in fields]
    reader.end()
    return got


@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("u8"), st.integers(0, 2**8 - 1)),
            st.tuples(st.just("u32"), st.integers(0, 2**32 - 1)),
            st.tuples(st.just("var8"), st.binary(max_size=255)),
            st.tuples(st.just("var32"), st.binary(max_size=300)),
        ),
        max_size=8,
    )
)
def test_any_sequence_of_fields_round_trips_and_every_cut_is_truncated(
    fields: list[tuple[str, int | bytes]],
) -> None:
    writer = Writer()
    for kind, value in fields:
        getattr(writer, kind)(value)
    data = writer.bytes()
    assert _read_all(Reader(data, LocalStateError), fields) == fields
    if data:
        with pytest.raises(LocalStateError, match=r"^truncated$"):
            _read_all(Reader(data[:-1], LocalStateError), fields)
