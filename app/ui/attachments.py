"""What becomes a file message: files chosen, dropped or pasted, and pictures pasted or dropped
as images, each made ready to send with its thumbnail.

A pasted picture is sent from memory (its PNG bytes), never written to disk in clear. Its
thumbnail, a JPEG of at most MAX_THUMBNAIL_BYTES, is made here with Qt and goes with the offer,
so the other side shows it at once. No picture is decoded before its size is known to be within
MAX_IMAGE_PIXELS (app/core/qr.py): a file or encoded bytes by the size their header gives, a
decoded image by its dimensions; over the cap it is still sent, without a thumbnail.
"""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QMimeData, Qt
from PySide6.QtGui import QColor, QImage, QImageReader, QImageWriter, QPainter, QPixmap

from app.core.qr import MAX_IMAGE_BYTES, QrError, check_byte_size, check_dimensions
from app.domain.files import MAX_THUMBNAIL_BYTES
from app.ui.pictures import fitted
from app.ui.scanner import encoded_image_format

THUMBNAIL_SIDE = 320  # the largest side a thumbnail starts at; smaller if it must be
LOWEST_QUALITY = 30  # below this a thumbnail shrinks instead of losing more quality
PASTED_NAME = "Pasted picture.png"


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One thing to send: a file on disk, or bytes (a pasted picture) with its name and type;
    `image`: the decoded picture when there is one already (pasted as an image)."""

    source: Path | bytes
    name: str | None = None
    mime: str | None = None
    image: QImage | None = None


def make_thumbnail(image: QImage, limit: int = MAX_THUMBNAIL_BYTES) -> bytes:
    """A JPEG of `image` at most `limit` bytes: scaled to THUMBNAIL_SIDE, the quality lowered
    until it fits, then smaller still if it must be; b"" for an empty image."""
    if image.isNull() or image.width() < 1 or image.height() < 1:
        return b""
    side = THUMBNAIL_SIDE
    while side >= 16:
        scaled = image.scaled(
            fitted(image.size(), side),
            Qt.AspectRatioMode.IgnoreAspectRatio,
            Qt.TransformationMode.SmoothTransformation,
        )
        flat = QImage(scaled.size(), QImage.Format.Format_RGB32)  # JPEG has no transparency
        flat.fill(QColor("white"))
        painter = QPainter(flat)
        painter.drawImage(0, 0, scaled)
        painter.end()
        for quality in range(80, LOWEST_QUALITY - 1, -10):
            data = encode(flat, "JPEG", quality)
            if 0 < len(data) <= limit:
                return data
        side = side * 3 // 4
    return b""


def encode(image: QImage, fmt: str = "PNG", quality: int = -1) -> bytes:
    """`image` encoded in memory (a pasted picture is never written to disk)."""
    buffer = QBuffer()
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    writer = QImageWriter(buffer, QByteArray(fmt.encode("ascii")))
    writer.setQuality(quality)
    if not writer.write(image):
        return b""
    buffer.close()
    return bytes(buffer.data().data())


def _scaled_read(reader: QImageReader) -> QImage:
    """The picture a reader holds, decoded at thumbnail size where the format allows; QrError
    when its header claims more than MAX_IMAGE_PIXELS or gives no size."""
    size = reader.size()
    if not size.isValid():
        raise QrError("not a readable image")
    check_dimensions(size.width(), size.height())
    reader.setScaledSize(fitted(size, THUMBNAIL_SIDE))
    image = reader.read()
    if image.isNull():
        raise QrError("not a readable image")
    return image


def thumbnail_of(item: Outgoing) -> bytes:
    """The thumbnail to send with `item` (b"" when it is no picture Qt reads, or too large
    to decode): blocking, run it off the GUI thread."""
    try:
        if item.image is not None:
            check_dimensions(item.image.width(), item.image.height())
            return make_thumbnail(item.image)
        if not is_picture(item):
            return b""
        if isinstance(item.source, bytes):
            check_byte_size(len(item.source))
            buffer = QBuffer()
            buffer.setData(QByteArray(item.source))
            buffer.open(QIODevice.OpenModeFlag.ReadOnly)
            return make_thumbnail(_scaled_read(QImageReader(buffer)))
        if item.source.stat().st_size > MAX_IMAGE_BYTES:
            return b""
        return make_thumbnail(_scaled_read(QImageReader(str(item.source))))
    except (QrError, OSError):
        return b""


def is_picture(item: Outgoing) -> bool:
    if item.image is not None:
        return True
    mime = item.mime
    if mime is None and isinstance(item.source, Path):
        mime, _ = mimetypes.guess_type(item.source.name, strict=False)
    return mime is not None and mime.startswith("image/")


def pasted_png(item: Outgoing) -> Outgoing:
    """A pasted or dropped decoded image as PNG bytes to send (blocking: run off the GUI
    thread); refused with QrError over MAX_IMAGE_PIXELS before it is encoded."""
    if item.image is None or not isinstance(item.source, bytes) or item.source:
        return item
    check_dimensions(item.image.width(), item.image.height())
    return Outgoing(encode(item.image), item.name or PASTED_NAME, "image/png", item.image)


def from_mime(data: QMimeData) -> list[Outgoing]:
    """What pasted or dropped data sends, read now (the data may go once the event is over):
    local files, else (when it holds no text to write) a picture, as its encoded bytes when it
    has some, else as the image; [] when it is text to write."""
    files = [Path(u.toLocalFile()) for u in data.urls() if u.isLocalFile()]
    if files:
        return [Outgoing(path) for path in files if path.is_file()]
    if data.hasText() and data.text().strip():
        return []
    fmt = encoded_image_format(data.formats())
    if fmt is not None:
        raw = bytes(data.data(fmt).data())
        ext = mimetypes.guess_extension(fmt) or ""
        return [Outgoing(raw, "Pasted picture" + ext, fmt)]
    if data.hasImage():
        picture = data.imageData()
        if isinstance(picture, QPixmap):
            picture = picture.toImage()
        if isinstance(picture, QImage) and not picture.isNull():
            return [Outgoing(b"", PASTED_NAME, "image/png", picture)]
    return []


def holds_attachment(data: QMimeData) -> bool:
    """Whether pasted or dropped data would be sent as files or a picture (not written)."""
    if any(u.isLocalFile() for u in data.urls()):
        return True
    if data.hasText() and data.text().strip():
        return False
    return data.hasImage() or encoded_image_format(data.formats()) is not None
