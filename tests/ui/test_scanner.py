"""The scanner's pipeline after the camera, fed with frames made from a PNG of a real card
(there is no webcam here), and the screen-region picker fed with a picture of a desktop."""

from __future__ import annotations

import asyncio
from pathlib import Path

from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPixmap
from PySide6.QtMultimedia import QVideoFrame
from PySide6.QtTest import QTest

from app.core.qr import make_png
from app.ui.scanner import FrameDecoder
from tests.ui.conftest import me_and_a_peer, until


def card_image(card: str, tmp_path: Path) -> QImage:
    png = tmp_path / "card.png"
    make_png(card, png)
    image = QImage(str(png))
    assert not image.isNull()
    return image


def on_a_desk(code: QImage, width: int = 1280, height: int = 720) -> QImage:
    """The code held up somewhere in a camera picture."""
    frame = QImage(width, height, QImage.Format.Format_RGB32)
    frame.fill(QColor("#6d6258"))
    p = QPainter(frame)
    p.drawImage(QPoint(width // 3, height // 6), code)
    p.end()
    return frame


def test_camera_frames_with_a_card_fill_in_the_contact(run, tmp_path: Path) -> None:
    async def body() -> None:
        async with me_and_a_peer(tmp_path) as (window, card):
            dialog = window.show_add_contact()
            scanner = dialog.scanner

            # Frames without a code: shown as the preview, decoded now and then, nothing found.
            blank = QImage(640, 480, QImage.Format.Format_RGB32)
            blank.fill(QColor("gray"))
            for _ in range(20):
                scanner.handle_frame(QVideoFrame(blank))
                await asyncio.sleep(0.02)
            assert scanner.frames == 20
            assert 1 <= scanner.decoder.decoded < 20  # throttled: the GUI thread is never queued up
            assert not scanner.preview.pixmap().isNull()
            assert dialog.text.toPlainText() == ""
            assert not dialog.error.isVisible()

            # Then the friend holds up their code.
            frame = QVideoFrame(on_a_desk(card_image(card, tmp_path)))
            for _ in range(100):
                scanner.handle_frame(frame)
                await asyncio.sleep(0.03)
                if dialog.text.toPlainText():
                    break
            assert dialog.text.toPlainText() == card
            await until(lambda: "Peer" in dialog.whose.text(), what="whose code")
            assert dialog.add_button.isEnabled()
            QTest.mouseClick(dialog.add_button, Qt.MouseButton.LeftButton)
            await until(lambda: window.contacts.rowCount() == 1, what="the new contact")

    run(body())


def test_decoder_says_once_when_a_code_is_not_ours(run, tmp_path: Path) -> None:
    async def body() -> None:
        decoder = FrameDecoder()
        said: list[str] = []
        decoder.not_ours.connect(said.append)
        other = QImage()
        other.loadFromData(make_png("https://example.org/"), "PNG")
        for _ in range(3):
            decoder.offer(other, force=True)
            await until(lambda: not decoder._busy, what="decoded")
        assert len(said) == 1
        assert "not an AnonChat code" in said[0]

    run(body())


def test_own_code_and_screen_region(run, tmp_path: Path) -> None:
    async def body() -> None:
        async with me_and_a_peer(tmp_path) as (window, card):
            dialog = window.show_add_contact()
            dialog.text.setPlainText(await window.engine.card())
            await until(lambda: dialog.error.isVisible(), what="own-code error")
            assert "your own code" in dialog.error.text()
            assert not dialog.add_button.isEnabled()
            dialog.text.clear()

            desktop = QPixmap.fromImage(on_a_desk(card_image(card, tmp_path), 1000, 700))
            selector = dialog.select_region(desktop)
            await asyncio.sleep(0.05)
            start = QPoint(1000 // 3 - 20, 700 // 6 - 20)
            QTest.mousePress(selector, Qt.MouseButton.LeftButton, pos=start)
            QTest.mouseMove(selector, QPoint(990, 690))
            QTest.mouseRelease(selector, Qt.MouseButton.LeftButton, pos=QPoint(990, 690))
            await until(lambda: dialog.text.toPlainText() == card, what="the code from the screen")
            assert dialog.add_button.isEnabled()

            # The keyboard path: Enter takes the whole screen, Escape cancels.
            dialog.text.clear()
            selector = dialog.select_region(desktop)
            QTest.keyClick(selector, Qt.Key.Key_Return)
            await until(lambda: dialog.text.toPlainText() == card, what="whole screen")
            dialog.close()

    run(body())
