"""Reading QR codes from a live camera and from a region of the screen.

Camera frames arrive on the GUI thread through a QVideoSink; each frame is shown as the
preview, and at most one at a time (and at most a few per second) is copied to grayscale and
decoded by zxing-cpp on a QThreadPool worker, so the window keeps painting. The worker's
answer comes back through a queued signal. A frame with no code is simply the next attempt;
a code that is not an AnonChat code is reported once, plainly.

No picture is decoded or converted before its size is known to be within MAX_IMAGE_PIXELS:
encoded bytes (a pasted or dropped picture) by the size their header gives, a camera frame by
its size before it becomes an image, a screen region by its rectangle.
"""

from __future__ import annotations

import time

import shiboken6
from PySide6.QtCore import (
    QBuffer,
    QByteArray,
    QIODevice,
    QObject,
    QPoint,
    QRect,
    QRunnable,
    QSize,
    Qt,
    QThreadPool,
    Signal,
)
from PySide6.QtGui import (
    QColor,
    QGuiApplication,
    QImage,
    QImageReader,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPixmap,
)
from PySide6.QtMultimedia import (
    QCamera,
    QMediaCaptureSession,
    QMediaDevices,
    QVideoFrame,
    QVideoSink,
)
from PySide6.QtWidgets import QLabel, QRubberBand, QWidget

from app.core.qr import (
    MAX_IMAGE_PIXELS,
    QrError,
    check_byte_size,
    check_dimensions,
    decode_image,
)

MIN_INTERVAL_S = 0.2  # at most five decodes a second
MAX_SIDE = 1280  # frames are scaled down to this before decoding


class _Answer(QObject):
    """Lives on the GUI thread; a worker's emit is queued to it."""

    done = Signal(int, str, str)  # generation, text, error


class _DecodeTask(QRunnable):
    def __init__(self, image: QImage, generation: int, answer: _Answer) -> None:
        super().__init__()
        self._image = image
        self._generation = generation
        self._answer = answer

    def run(self) -> None:
        try:
            text, error = decode_image(self._image), ""
        except QrError as exc:
            text, error = "", str(exc)
        except Exception as exc:  # a worker must not die silently on a bad frame
            text, error = "", f"the image could not be read ({type(exc).__name__})"
        self._answer.done.emit(self._generation, text, error)


def read_image(data: QByteArray | bytes) -> QImage:
    """Encoded picture bytes (PNG, JPEG, ...) as an image; QrError "too large" over
    MAX_IMAGE_BYTES or when the header gives more than MAX_IMAGE_PIXELS, before any pixel is
    decoded, and "not a readable image" when the header gives no size."""
    data = QByteArray(data)
    check_byte_size(data.size())
    buffer = QBuffer()
    buffer.setData(data)
    buffer.open(QIODevice.OpenModeFlag.ReadOnly)
    reader = QImageReader(buffer)
    size = reader.size()  # from the header
    if not size.isValid():
        raise QrError("not a readable image")
    check_dimensions(size.width(), size.height())
    image = reader.read()
    if image.isNull():
        raise QrError(f"not a readable image ({reader.errorString()})")
    return image


def decode_picture(image: QImage) -> str:
    """The AnonChat payload in a decoded picture of any format (zxing-cpp reads neither 1-bit
    nor indexed ones, as a PNG of a code often is), refused as too large by its size before it
    is converted to grayscale."""
    check_dimensions(image.width(), image.height())
    return decode_image(image.convertToFormat(QImage.Format.Format_Grayscale8))


def decode_bytes(data: QByteArray | bytes) -> str:
    """The AnonChat payload in encoded picture bytes, bounded as `read_image` says."""
    return decode_picture(read_image(data))


def encoded_image_format(formats: list[str]) -> str | None:
    """The first of a clipboard's or a drop's formats that is a picture Qt can read from its
    bytes (so its size is checked before decoding), if any."""
    readable = {bytes(m.data()).decode("ascii") for m in QImageReader.supportedMimeTypes()}
    return next((f for f in formats if f.startswith("image/") and f in readable), None)


def grayscale_for_decoding(image: QImage) -> QImage:
    if max(image.width(), image.height()) > MAX_SIDE:
        image = image.scaled(
            MAX_SIDE,
            MAX_SIDE,
            Qt.AspectRatioMode.KeepAspectRatio,
            Qt.TransformationMode.SmoothTransformation,
        )
    return image.convertToFormat(QImage.Format.Format_Grayscale8)


class FrameDecoder(QObject):
    """Decodes images off the GUI thread, one at a time; the latest result wins."""

    found = Signal(str)
    not_ours = Signal(str)  # a QR code that is not an AnonChat code (said once)

    def __init__(self, parent: QObject | None = None, pool: QThreadPool | None = None) -> None:
        super().__init__(parent)
        self._pool = pool or QThreadPool.globalInstance()
        self._answer = _Answer(self)
        self._answer.done.connect(self._done)
        self._busy = False
        self._last = 0.0
        self._generation = 0
        self._warned = False
        self.decoded = 0  # frames handed to a worker, for tests and diagnostics
        self.skipped = 0

    def offer(self, image: QImage, force: bool = False) -> bool:
        """Decode `image` unless a decode is running or one ran a moment ago."""
        now = time.monotonic()
        if (
            image.isNull()
            or self._busy
            or (not force and now - self._last < MIN_INTERVAL_S)
            or image.width() * image.height() > MAX_IMAGE_PIXELS  # before it is scaled
        ):
            self.skipped += 1
            return False
        self._busy = True
        self._last = now
        self.decoded += 1
        task = _DecodeTask(grayscale_for_decoding(image), self._generation, self._answer)
        task.setAutoDelete(True)
        self._pool.start(task)
        return True

    def reset(self) -> None:
        self._generation += 1
        self._busy = False
        self._warned = False

    def _done(self, generation: int, text: str, error: str) -> None:
        if generation != self._generation:
            return
        self._busy = False
        if text:
            self.found.emit(text)
        elif error and "not an AnonChat code" in error and not self._warned:
            self._warned = True
            self.not_ours.emit(error)


class CameraScanner(QObject):
    """The first camera through a capture session into a sink; frames become a preview and
    decode attempts. `handle_frame` is the whole pipeline after the camera."""

    found = Signal(str)
    problem = Signal(str)
    running_changed = Signal(bool)

    def __init__(self, preview: QLabel, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.preview = preview
        self.session: QMediaCaptureSession | None = None  # made on first start: loading
        self.sink: QVideoSink | None = None  # the media backend takes a moment
        self.camera: QCamera | None = None
        self.decoder = FrameDecoder(self)
        self.decoder.found.connect(self._found)
        self.decoder.not_ours.connect(self.problem)
        self.frames = 0
        self.refused = 0  # frames over the pixel cap, never made into an image

    @property
    def running(self) -> bool:
        return self.camera is not None and self.camera.isActive()

    def start(self) -> bool:
        devices = QMediaDevices.videoInputs()
        if not devices:
            self.problem.emit("No camera was found. Open a picture of the code instead.")
            return False
        self.decoder.reset()
        self.refused = 0
        if self.session is None or self.sink is None:
            self.session = QMediaCaptureSession(self)
            self.sink = QVideoSink(self)
            self.session.setVideoSink(self.sink)
            self.sink.videoFrameChanged.connect(self.handle_frame)
        self.camera = QCamera(devices[0], self)
        self.camera.errorOccurred.connect(self._camera_error)
        self.session.setCamera(self.camera)
        self.camera.start()
        self.running_changed.emit(True)
        return True

    def stop(self) -> None:
        if self.camera is not None:
            self.camera.stop()
            if self.session is not None:
                self.session.setCamera(None)  # type: ignore[arg-type]
            self.camera.deleteLater()
            self.camera = None
            self.running_changed.emit(False)
        self.decoder.reset()

    def _camera_error(self, _error: QCamera.Error, text: str) -> None:
        self.problem.emit(f"The camera stopped: {text or 'unknown error'}.")
        self.stop()

    def handle_frame(self, frame: QVideoFrame) -> None:
        if not shiboken6.isValid(self.preview):
            return  # a frame late for a dialog that closed on the code it found
        try:
            check_dimensions(frame.width(), frame.height())
        except QrError as exc:  # said once, before the frame is converted to an image
            self.refused += 1
            if self.refused == 1:
                self.problem.emit(f"The camera stopped: {exc}.")
                self.stop()
            return
        image = frame.toImage()
        if image.isNull():
            return
        self.frames += 1
        size: QSize = self.preview.size()
        self.preview.setPixmap(
            QPixmap.fromImage(image).scaled(
                size, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.FastTransformation
            )
        )
        self.decoder.offer(image)

    def _found(self, text: str) -> None:
        self.stop()
        self.found.emit(text)


class RegionSelector(QWidget):
    """A full-screen picture of the desktop; drag a rectangle around the code (Enter takes
    the whole screen, Escape cancels)."""

    chosen = Signal(QImage)
    refused = Signal(str)  # a region over the pixel cap, refused before it is copied
    cancelled = Signal()

    def __init__(self, shot: QPixmap, parent: QWidget | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Window | Qt.WindowType.FramelessWindowHint)
        self.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.setAccessibleName("Select the region with the code")
        self.setCursor(Qt.CursorShape.CrossCursor)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.shot = shot
        self.resize(shot.deviceIndependentSize().toSize())
        self.band = QRubberBand(QRubberBand.Shape.Rectangle, self)
        self._origin = QPoint()

    @classmethod
    def grab_desktop(cls) -> QPixmap:
        screen = QGuiApplication.primaryScreen()
        return screen.grabWindow(0) if screen is not None else QPixmap()

    def paintEvent(self, event: QPaintEvent) -> None:
        p = QPainter(self)
        p.drawPixmap(self.rect(), self.shot)
        p.fillRect(self.rect(), QColor(0, 0, 0, 70))
        p.setPen(QColor("white"))
        p.drawText(
            self.rect().adjusted(0, 16, 0, 0),
            Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop,
            "Drag around the QR code · Enter: whole screen · Escape: cancel",
        )
        p.end()

    def mousePressEvent(self, e: QMouseEvent) -> None:
        self._origin = e.position().toPoint()
        self.band.setGeometry(QRect(self._origin, QSize()))
        self.band.show()

    def mouseMoveEvent(self, e: QMouseEvent) -> None:
        self.band.setGeometry(QRect(self._origin, e.position().toPoint()).normalized())

    def mouseReleaseEvent(self, e: QMouseEvent) -> None:
        area = QRect(self._origin, e.position().toPoint()).normalized()
        self.band.hide()
        if area.width() < 8 or area.height() < 8:
            return
        self.choose(area)

    def choose(self, area: QRect) -> None:
        ratio = self.shot.devicePixelRatio()
        scaled = QRect(
            int(area.x() * ratio),
            int(area.y() * ratio),
            int(area.width() * ratio),
            int(area.height() * ratio),
        ).intersected(self.shot.rect())
        try:
            check_dimensions(scaled.width(), scaled.height())
        except QrError as exc:
            self.refused.emit(str(exc))
        else:
            self.chosen.emit(self.shot.copy(scaled).toImage())
        self.close()

    def keyPressEvent(self, e: QKeyEvent) -> None:
        if e.key() == Qt.Key.Key_Escape:
            self.cancelled.emit()
            self.close()
        elif e.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self.choose(self.rect())
        else:
            super().keyPressEvent(e)
