"""A card's text and a picture of one are bounded before they are read: text over
MAX_CARD_CHARS, a file over MAX_IMAGE_BYTES and a picture whose header claims more than
MAX_IMAGE_PIXELS are each refused as "too large", whatever reads them (the card parser, the
engine, the file reader, `anonchat-cli add`), and nothing changes."""

from __future__ import annotations

import asyncio
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from PIL import Image

from app.core.errors import UserError
from app.core.qr import (
    MAX_IMAGE_BYTES,
    MAX_IMAGE_PIXELS,
    QrError,
    decode_file,
    decode_image,
    make_png,
)
from app.crypto.card import MAX_CARD_CHARS, Card
from app.crypto.errors import CardError
from app.crypto.handshake import Invitation
from app.crypto.identity import Identity
from tests.core.engines import make, rows

ROOT = Path(__file__).resolve().parents[2]


def largest_card() -> str:
    """A card with every field at its longest: three 200-byte relay URLs, a 64-byte name."""
    first, *fallbacks = ("wss://" + c * 194 for c in "rst")
    invitation = Invitation.generate()
    return invitation.card(
        Identity.generate(), first, "n" * 64, fallbacks=tuple(fallbacks)
    ).encode()


def png_claiming(width: int, height: int) -> bytes:
    """A valid PNG of a few dozen bytes whose IHDR (correct CRC) claims width×height 8-bit
    gray pixels: only decoding it would cost anything."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def jpeg_claiming(width: int, height: int) -> bytes:
    """The start of a baseline JPEG whose frame header claims width×height gray pixels."""
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    sos = b"\xff\xda" + struct.pack(">HB", 8, 1) + b"\x01\x00\x00\x3f\x00"
    return b"\xff\xd8" + sof + sos + bytes(64) + b"\xff\xd9"


def test_the_largest_card_is_far_below_the_cap() -> None:
    card = largest_card()
    assert len(card) == 1294
    assert 12 * len(card) <= MAX_CARD_CHARS
    spaced = card + " " * (MAX_CARD_CHARS - len(card))  # a code wrapped in whitespace still reads
    assert Card.parse(spaced) == Card.parse(card)


def test_card_text_over_the_cap_is_too_large() -> None:
    card = largest_card()
    for text in (card + " " * (MAX_CARD_CHARS + 1 - len(card)), "anonchat:" + "A" * 10**7):
        with pytest.raises(CardError, match=f"too large: {len(text)} characters, at most 16384"):
            Card.parse(text)


def test_the_engine_refuses_an_oversize_card_and_adds_nothing(tmp_path: Path) -> None:
    async def body() -> None:
        me = await make(tmp_path / "me", "Me")
        try:
            huge = "anonchat:" + "A" * 10**7
            with pytest.raises(UserError, match="too large"):
                await me.preview_card(huge)
            with pytest.raises(UserError, match=r"too large.*at most 16384"):
                await me.add_contact(huge)
            assert await rows(me) == []
        finally:
            await me.close()

    asyncio.run(body())


@pytest.mark.parametrize(
    ("name", "data", "words"),
    [
        ("claims-400-mpx.png", png_claiming(20_000, 20_000), "too large: at most 64 megapixels"),
        ("claims-81-mpx.png", png_claiming(9_000, 9_000), "too large: 9000×9000 pixels"),
        ("claims-65-mpx.png", png_claiming(8_125, 8_000), "too large: 8125×8000 pixels"),
        ("claims-65-mpx.jpg", jpeg_claiming(8_125, 8_000), "too large: 8125×8000 pixels"),
    ],
)
def test_a_file_whose_header_claims_too_many_pixels_is_too_large(
    tmp_path: Path, name: str, data: bytes, words: str
) -> None:
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(QrError, match=words) as refused:
        decode_file(path)
    assert "at most 64 megapixels" in str(refused.value)


def test_a_file_over_the_byte_cap_is_too_large_unread(tmp_path: Path) -> None:
    path = tmp_path / "huge.png"
    with path.open("wb") as f:  # sparse: no disk is used, and the size is read, not the bytes
        f.write(make_png("anonchat:AAAA"))
        f.truncate(MAX_IMAGE_BYTES + 1)
    with pytest.raises(QrError, match=r"too large: 64\.0 MB, at most 64 MB"):
        decode_file(path)


def test_a_decoded_picture_over_the_cap_is_too_large() -> None:
    side = int(MAX_IMAGE_PIXELS**0.5) + 1  # just over: 64 MB of gray
    with pytest.raises(QrError, match=f"too large: {side}×{side} pixels, at most 64 megapixels"):
        decode_image(Image.new("L", (side, side), 255))


def test_a_normal_card_picture_still_reads(tmp_path: Path) -> None:
    card = largest_card()
    path = tmp_path / "card.png"
    make_png(card, path)
    assert decode_file(path) == card


def cli(profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT), ANONCHAT_PASSPHRASE="correct horse")
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "--profile", str(profile), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def files_of(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name != "lock"
    }


def test_anonchat_cli_add_refuses_oversize_cards_and_pictures(tmp_path: Path) -> None:
    profile = tmp_path / "me"
    made = cli(profile, "init", "--name", "Me", "--relay", "ws://127.0.0.1:9")
    assert made.returncode == 0, made.stderr
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_claiming(20_000, 20_000))
    big = tmp_path / "big.png"
    with big.open("wb") as f:
        f.truncate(MAX_IMAGE_BYTES + 1)
    before = files_of(profile)
    for args, words in (
        (("add", "anonchat:" + "A" * 100_000), "too large: 100009 characters, at most 16384"),
        (("add", "--qr-image", str(bomb)), "too large: at most 64 megapixels"),
        (("add", "--qr-image", str(big)), "too large: 64.0 MB, at most 64 MB"),
    ):
        done = cli(profile, *args)
        assert done.returncode == 1, done
        assert done.stdout == ""
        assert done.stderr.startswith("anonchat-cli: "), done.stderr
        assert words in done.stderr, done.stderr
        assert len(done.stderr.splitlines()) == 1, done.stderr
    assert files_of(profile) == before
    listed = cli(profile, "--json", "contacts")
    assert listed.returncode == 0, listed
    assert listed.stdout.strip() == "[]"
