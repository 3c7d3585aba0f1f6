"""Pictures in bubbles: a file's thumbnail, decoded at once from its few kilobytes, and the
whole picture once it is here, read from the engine (never from a plaintext file) and
decoded off the GUI thread at the size it is shown.

No picture is decoded before its size is read from its header: a thumbnail is at most
MAX_THUMBNAIL_PIXELS (it is a few kilobytes of a small image; a larger claim is a lie), a whole
picture at most MAX_IMAGE_PIXELS, as every picture the window reads (app/core/qr.py).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QObject, QSize, Qt, Signal
from PySide6.QtGui import QImage, QImageReader

from app.core.errors import UserError
from app.core.qr import MAX_IMAGE_BYTES, QrError, check_dimensions
from app.domain.files import FileInfo
from app.ui.aio import off_thread, spawn

MAX_THUMBNAIL_PIXELS = 1_000_000
PICTURE_SIDE = 280  # the largest side of a picture in a bubble, in device-independent pixels
SHOWN_SIDE = PICTURE_SIDE * 2  # decoded this large: sharp on a high-density screen
KEPT = 64  # pictures kept decoded; a conversation scrolled far back decodes again

Loader = Callable[[int, int], Awaitable[bytes]]  # (file row, at most so many bytes)


def _reader(data: bytes | QByteArray) -> tuple[QImageReader, QBuffer]:
    buffer = QBuffer()
    buffer.setData(QByteArray(data))
    buffer.open(QIODevice.OpenModeFlag.ReadOnly)
    return QImageReader(buffer), buffer  # the buffer lives as long as the reader is used


def decode_thumbnail(data: bytes) -> QImage | None:
    """A thumbnail's image, or None when it is not one (unreadable, or claiming a size no
    thumbnail has)."""
    if not data:
        return None
    reader, _buffer = _reader(data)
    size = reader.size()
    if not size.isValid() or size.width() * size.height() > MAX_THUMBNAIL_PIXELS:
        return None
    image = reader.read()
    return None if image.isNull() else image


def fitted(size: QSize, side: int) -> QSize:
    """`size` scaled to fit a square of `side`, never larger than it is."""
    if size.width() <= side and size.height() <= side:
        return QSize(size)
    return size.scaled(side, side, Qt.AspectRatioMode.KeepAspectRatio)


def decode_shown(data: bytes, side: int = SHOWN_SIDE) -> QImage:
    """A whole picture decoded at the size it is shown (JPEG decodes straight to it); QrError
    when it is not a picture or its header claims more than MAX_IMAGE_PIXELS."""
    reader, _buffer = _reader(data)
    size = reader.size()
    if not size.isValid():
        raise QrError("not a readable image")
    check_dimensions(size.width(), size.height())
    reader.setScaledSize(fitted(size, side))
    image = reader.read()
    if image.isNull():
        raise QrError("not a readable image")
    return image


class Pictures(QObject):
    """Decoded thumbnails and pictures by file row; `loaded` says a picture is ready to draw
    (its bubble may change size)."""

    loaded = Signal(int)  # file row

    def __init__(self, load: Loader | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.load = load
        self._thumbs: OrderedDict[int, QImage | None] = OrderedDict()
        self._shown: OrderedDict[int, QImage] = OrderedDict()
        self._asked: set[int] = set()  # loading, or failed to (shown as its thumbnail)

    def thumbnail(self, info: FileInfo) -> QImage | None:
        if info.id not in self._thumbs:
            self._thumbs[info.id] = decode_thumbnail(info.thumbnail)
            while len(self._thumbs) > KEPT * 4:
                self._thumbs.popitem(last=False)
        return self._thumbs[info.id]

    def picture(self, info: FileInfo) -> QImage | None:
        """The whole picture when it is decoded; asks for it once it is here."""
        image = self._shown.get(info.id)
        if image is not None:
            self._shown.move_to_end(info.id)
            return image
        if (
            self.load is not None
            and info.is_image
            and info.available
            and info.size <= MAX_IMAGE_BYTES
            and info.id not in self._asked
        ):
            self._asked.add(info.id)
            spawn(self._fetch(info.id, self.load), "showing a picture")
        return None

    def shown(self, info: FileInfo) -> QImage | None:
        """What a picture's bubble is sized by: the whole picture if it is decoded already,
        else its thumbnail (never asks for the picture: a layout of every row must not)."""
        return self._shown.get(info.id) or self.thumbnail(info)

    def best(self, info: FileInfo) -> QImage | None:
        """What to draw for a picture now: the whole of it, else its thumbnail."""
        return self.picture(info) or self.thumbnail(info)

    async def _fetch(self, row: int, load: Loader) -> None:
        try:
            data = await load(row, MAX_IMAGE_BYTES)
            image = await off_thread(decode_shown, data)
        except (UserError, QrError):
            return  # stays its thumbnail; asked again only when the window opens again
        self._shown[row] = image
        while len(self._shown) > KEPT:
            gone, _ = self._shown.popitem(last=False)
            self._asked.discard(gone)
        self.loaded.emit(row)

    def forget(self, row: int) -> None:
        """A file whose state changed: a picture that failed may be read again."""
        if row not in self._shown:
            self._asked.discard(row)
