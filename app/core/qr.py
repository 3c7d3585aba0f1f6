"""QR codes: segno draws them, zxing-cpp reads them (files, camera frames, screenshots).

Reading returns the first AnonChat payload found; an image with no code, or with codes that
are not ours, is a `QrError` that says which.
"""

from __future__ import annotations

import io
from pathlib import Path

import segno
import zxingcpp
from PIL import Image, UnidentifiedImageError

MAX_IMAGE_PIXELS = 40_000_000
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


def decode_image(image: object) -> str:
    """The AnonChat payload in a PIL image, a grayscale buffer or a QImage."""
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


def decode_file(path: Path) -> str:
    """The AnonChat payload in a PNG or JPEG file."""
    try:
        with Image.open(path) as img:
            if img.width * img.height > MAX_IMAGE_PIXELS:
                raise QrError("the image is too large")
            img.load()
            return decode_image(img.convert("L"))
    except FileNotFoundError:
        raise QrError(f"no such file: {path}") from None
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
        raise QrError(f"not a readable image: {path}") from None
