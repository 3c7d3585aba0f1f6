"""QR codes as a camera or a screenshot delivers them: rotated, small, noisy, JPEG, skewed."""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest
from PIL import Image, ImageFilter

from app.core.qr import QrError, decode_file, decode_image, make_png, qr_version
from app.crypto.card import Card
from app.crypto.handshake import Invitation
from app.crypto.identity import Identity

CARD = (
    Invitation.generate()
    .card(Identity.generate(), "ws://192.168.1.20:8765", "Alice Example")
    .encode()
)


def code_image(scale: int = 6) -> Image.Image:
    return Image.open(io.BytesIO(make_png(CARD, scale=scale))).convert("L")


def on_desk(img: Image.Image, angle: float, size: int) -> Image.Image:
    """The code turned and shrunk on a grey background, as a photo would frame it."""
    turned = img.rotate(angle, expand=True, fillcolor=255)
    turned.thumbnail((size, size))
    desk = Image.new("L", (size + 120, size + 80), 170)
    desk.paste(turned, (60, 40))
    return desk


def noisy(img: Image.Image, amount: int, seed: int = 7) -> Image.Image:
    rng = random.Random(seed)
    pixels = bytes(max(0, min(255, p + rng.randint(-amount, amount))) for p in img.tobytes())
    return Image.frombytes("L", img.size, pixels)


def as_jpeg(img: Image.Image, quality: int) -> Image.Image:
    out = io.BytesIO()
    img.save(out, "JPEG", quality=quality)
    return Image.open(io.BytesIO(out.getvalue()))


def test_a_typical_card_fits_a_version_10_code_at_level_m() -> None:
    assert len(CARD) <= 300
    assert qr_version(CARD) <= 10


@pytest.mark.parametrize("angle", [0, 17, 90, 180, 243])
def test_rotated(angle: float) -> None:
    assert decode_image(on_desk(code_image(), angle, 400)) == CARD


def test_small_blurred_noisy_jpeg() -> None:
    img = on_desk(code_image(), 8, 260).filter(ImageFilter.GaussianBlur(0.8))
    img = as_jpeg(noisy(img, 40), quality=35)
    assert Card.parse(decode_image(img)) == Card.parse(CARD)


def test_skewed_like_a_photo_taken_at_an_angle() -> None:
    img = on_desk(code_image(), 0, 420)
    w, h = img.size
    skewed = img.transform(
        (w, h),
        Image.Transform.PERSPECTIVE,
        (1.0, 0.12, -20, 0.04, 1.0, -10, 0.0003, 0.0002),
        fillcolor=170,
    )
    assert decode_image(skewed) == CARD


def test_files_png_and_jpeg(tmp_path: Path) -> None:
    png, jpg = tmp_path / "code.png", tmp_path / "code.jpg"
    make_png(CARD, png)
    code_image().save(jpg, "JPEG", quality=80)
    assert decode_file(png) == CARD
    assert decode_file(jpg) == CARD


def test_what_is_not_a_usable_code(tmp_path: Path) -> None:
    blank = tmp_path / "blank.png"
    Image.new("L", (300, 300), 255).save(blank)
    with pytest.raises(QrError, match="no QR code"):
        decode_file(blank)
    other = tmp_path / "other.png"
    make_png("https://example.org/not-a-card", other)
    with pytest.raises(QrError, match="not an AnonChat code"):
        decode_file(other)
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    with pytest.raises(QrError, match="not a readable image"):
        decode_file(garbage)
    with pytest.raises(QrError, match="no such file"):
        decode_file(tmp_path / "missing.png")
