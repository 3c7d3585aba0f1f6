"""QR codes: segno draws them, zxing-cpp reads them (files, camera frames, screenshots).

Reading returns the first AnonChat payload found; an image with no code, or with codes that
are not ours, is a `QrError` that says which. Every picture is bounded before it is decoded: a
file by its bytes and the size its header gives, a decoded picture by its size, so a picture
over the cap is refused at once as "too large" (the window reads pasted and dropped pictures
the same way, in app/ui/scanner.py).
"""

from __future__ import annotations

import io
from pathlib import Path

import segno
import zxingcpp
from PIL import Image, UnidentifiedImageError

MAX_IMAGE_PIXELS = 64_000_000  # a phone's photo of a code is at most about 50 megapixels
MAX_IMAGE_BYTES = 64 * 1024 * 1024  # read from a file or the clipboard; a photo is ~10-30 MB
PREFIXES = ("anonchat:", "anonchat-verify:")


class QrError(ValueError):
    """No usable code in the image; the message says what was wrong."""


def _for_qr(text: str) -> str:
    """Our payloads uppercased, so the whole code uses the compact alphanumeric mode (the
    parsers take the prefix in any case and the base32 body is uppercase already)."""
    return text.upper() if text.lower().startswith(PREFIXES) else text


def _canonical(text: str) -> str:
    """The payload as our encoders write it: lowercase prefix, uppercase body."""
    for prefix in PREFIXES:
        if text.lower().startswith(prefix):
            return prefix + text[len(prefix) :]
    return text


def make_png(text: str, path: Path | None = None, scale: int = 8) -> bytes:
    """The text as a QR code PNG (alphanumeric mode for our payloads, error correction M)."""
    code = segno.make_qr(_for_qr(text), error="m", boost_error=False)
    out = io.BytesIO()
    code.save(out, kind="png", scale=scale, border=4)
    data = out.getvalue()
    if path is not None:
        path.write_bytes(data)
    return data


def qr_version(text: str) -> int:
    return int(segno.make_qr(_for_qr(text), error="m", boost_error=False).version)


def check_dimensions(width: int, height: int) -> None:
    """QrError "too large" for a picture of more than MAX_IMAGE_PIXELS, before it is decoded."""
    if width * height > MAX_IMAGE_PIXELS:
        raise QrError(
            f"the image is too large: {width}×{height} pixels, at most "
            f"{MAX_IMAGE_PIXELS // 1_000_000} megapixels"
        )


def check_byte_size(size: int) -> None:
    """QrError "too large" for an image file or clipboard picture of more than MAX_IMAGE_BYTES."""
    if size > MAX_IMAGE_BYTES:
        raise QrError(
            f"the image is too large: {size / 2**20:.1f} MB, at most {MAX_IMAGE_BYTES >> 20} MB"
        )


def _dimensions(image: object) -> tuple[int, int] | None:
    """Width and height of a PIL image (attributes), a QImage (methods) or a 2-D buffer."""
    shape = getattr(image, "shape", None)
    if isinstance(shape, tuple) and len(shape) >= 2:
        return int(shape[1]), int(shape[0])
    width, height = getattr(image, "width", None), getattr(image, "height", None)
    if callable(width) and callable(height):
        width, height = width(), height()
    if isinstance(width, int) and isinstance(height, int):
        return width, height
    return None


def decode_image(image: object) -> str:
    """The AnonChat payload in a PIL image, a grayscale buffer or a QImage (refused as too
    large over MAX_IMAGE_PIXELS)."""
    size = _dimensions(image)
    if size is not None:
        check_dimensions(*size)
    try:
        found = zxingcpp.read_barcodes(
            image, formats=zxingcpp.BarcodeFormats(zxingcpp.BarcodeFormat.QRCode)
        )
    except (ValueError, TypeError, RuntimeError) as exc:
        raise QrError(f"the image could not be read ({exc})") from None
    texts = [b.text for b in found if b.valid]
    if not texts:
        raise QrError("no QR code found in the image")
    for text in texts:
        if text.strip().lower().startswith(PREFIXES):
            return _canonical(text.strip())
    raise QrError("the QR code is not an AnonChat code")


def read_image_file(path: Path) -> bytes:
    """The file's bytes, at most MAX_IMAGE_BYTES of them (its size is checked before reading,
    and the read stops one byte past the cap for a file that grows or has no size)."""
    try:
        check_byte_size(path.stat().st_size)
        with path.open("rb") as f:
            data = f.read(MAX_IMAGE_BYTES + 1)
    except FileNotFoundError:
        raise QrError(f"no such file: {path}") from None
    except OSError:
        raise QrError(f"not a readable image: {path}") from None
    check_byte_size(len(data))
    return data


def decode_file(path: Path) -> str:
    """The AnonChat payload in a PNG, JPEG or other picture file; QrError "too large" for a
    file over MAX_IMAGE_BYTES or a picture whose header gives more than MAX_IMAGE_PIXELS,
    before its pixels are decoded."""
    data = read_image_file(path)
    try:
        with Image.open(io.BytesIO(data)) as img:  # reads the header only
            check_dimensions(img.width, img.height)
            img.load()
            return decode_image(img.convert("L"))
    except Image.DecompressionBombError:  # Pillow's own, far higher cap, checked at open
        raise QrError(
            f"the image is too large: at most {MAX_IMAGE_PIXELS // 1_000_000} megapixels"
        ) from None
    except (UnidentifiedImageError, OSError):
        raise QrError(f"not a readable image: {path}") from None
