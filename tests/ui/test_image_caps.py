"""Every way a picture or a code's text reaches the add-contact dialog refuses one that is too
large at once, saying so and its limit, and fills in nothing: the file chooser, paste (encoded
bytes, a decoded image, text, Ctrl+V into the box), drop (a file, bytes, an image, text), the
screen region and camera frames. The oversize pictures are a few dozen bytes whose header
claims 400 megapixels, or images just over the cap that are never filled; normal ones still
read."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QByteArray, QMimeData, QPoint, QPointF, QRect, QSize, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QGuiApplication, QImage, QPixmap
from PySide6.QtMultimedia import QVideoFrame, QVideoFrameFormat
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QFileDialog

from app.core.qr import MAX_IMAGE_PIXELS, make_png
from app.ui.aio import spawn
from app.ui.dialogs import MAX_CODE_CHARS, AddContactDialog
from app.ui.scanner import FrameDecoder, RegionSelector
from app.ui.window import MainWindow
from tests.core.test_card_caps import png_claiming
from tests.ui.conftest import me_and_a_peer, until

OVER = int(MAX_IMAGE_PIXELS**0.5) + 1  # a square just over the cap: 64 MB of gray, unfilled


def over_the_cap() -> QImage:
    image = QImage(OVER, OVER, QImage.Format.Format_Grayscale8)  # allocated, never written
    assert not image.isNull()
    return image


def mime(
    png: bytes | None = None, image: QImage | None = None, text: str | None = None
) -> QMimeData:
    data = QMimeData()
    if png is not None:
        data.setData("image/png", QByteArray(png))
    if image is not None:
        data.setImageData(image)
    if text is not None:
        data.setText(text)
    return data


def paste(dialog: AddContactDialog, data: QMimeData) -> None:
    QGuiApplication.clipboard().setMimeData(data)
    QTest.mouseClick(dialog.paste, Qt.MouseButton.LeftButton)


def drop(dialog: AddContactDialog, data: QMimeData) -> None:
    """`data` dragged over the dialog and dropped, as Qt delivers a drop from another app."""
    action, left, none = (
        Qt.DropAction.CopyAction,
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    enter = QDragEnterEvent(QPoint(20, 20), action, data, left, none)
    assert QApplication.sendEvent(dialog, enter)
    assert enter.isAccepted()
    QApplication.sendEvent(dialog, QDropEvent(QPointF(20, 20), action, data, left, none))


def choose_file(dialog: AddContactDialog, path: Path) -> None:
    """Open image…, then pick the file in the chooser it opened."""
    QTest.mouseClick(dialog.open_image, Qt.MouseButton.LeftButton)
    chooser = dialog.findChildren(QFileDialog)[-1]
    chooser.selectFile(str(path))
    chooser.accept()


async def refused(
    window: MainWindow, dialog: AddContactDialog, act: Callable[[], object], limit: str
) -> None:
    """`act` is refused as too large, with the limit said, and nothing is filled in."""
    dialog.error.hide()
    act()
    await until(lambda: dialog.error.isVisibleTo(dialog), what="the refusal")
    said = dialog.error.text()
    assert "too large" in said, said
    assert limit in said, said
    assert dialog.text.toPlainText() == ""
    assert not dialog.add_button.isEnabled()
    assert window.contacts.rowCount() == 0


def test_each_way_in_refuses_what_is_too_large(run, tmp_path: Path) -> None:
    async def body() -> None:
        async with me_and_a_peer(tmp_path) as (window, _card):
            dialog = window.show_add_contact()
            bomb = png_claiming(20_000, 20_000)  # 400 megapixels claimed, 68 bytes
            bomb_file = tmp_path / "bomb.png"
            bomb_file.write_bytes(bomb)
            big_file = tmp_path / "big.png"
            with big_file.open("wb") as f:  # sparse: over the byte cap, no disk used
                f.truncate(64 * 2**20 + 1)
            long_text = "anonchat:" + "A" * (MAX_CODE_CHARS * 8)
            pixels, megapixels, chars = "20000×20000", "at most 64 megapixels", "at most 16384"

            # The file chooser, and a dropped file.
            await refused(window, dialog, lambda: choose_file(dialog, bomb_file), megapixels)
            await refused(window, dialog, lambda: choose_file(dialog, big_file), "at most 64 MB")
            file_urls = QMimeData()
            file_urls.setUrls([QUrl.fromLocalFile(str(bomb_file))])
            await refused(window, dialog, lambda: drop(dialog, file_urls), megapixels)

            # Encoded bytes, pasted or dropped: the header's size, before decoding.
            await refused(window, dialog, lambda: paste(dialog, mime(png=bomb)), pixels)
            await refused(window, dialog, lambda: drop(dialog, mime(png=bomb)), pixels)

            # A picture already decoded, pasted or dropped: its size, before it is copied.
            over = f"{OVER}×{OVER} pixels, at most 64 megapixels"
            await refused(window, dialog, lambda: paste(dialog, mime(image=over_the_cap())), over)
            await refused(window, dialog, lambda: drop(dialog, mime(image=over_the_cap())), over)

            # Text longer than a code can be: pasted, dropped, or Ctrl+V into the box.
            await refused(window, dialog, lambda: paste(dialog, mime(text=long_text)), chars)
            await refused(window, dialog, lambda: drop(dialog, mime(text=long_text)), chars)
            QGuiApplication.clipboard().setText(long_text)
            dialog.text.setFocus()
            await refused(window, dialog, dialog.text.paste, chars)
            assert dialog.text.document().characterCount() == 1  # nothing was inserted

            # The screen: a region over the cap is refused before it is copied, and a
            # screenshot over the cap that reaches the dialog is refused before decoding.
            shot = QPixmap(OVER, OVER)  # never filled or shown
            selector = RegionSelector(shot)
            said: list[str] = []
            chosen: list[QImage] = []
            selector.refused.connect(said.append)
            selector.chosen.connect(chosen.append)
            selector.choose(QRect(0, 0, OVER, OVER))
            assert chosen == []
            assert len(said) == 1
            assert "too large" in said[0]
            assert megapixels in said[0]
            await refused(
                window, dialog, lambda: spawn(dialog.load_image(over_the_cap()), "screen"), over
            )

            # Camera frames: a frame over the cap is refused before it becomes an image, and
            # the camera stops; the decoder refuses such an image before scaling it.
            frame = QVideoFrame(
                QVideoFrameFormat(QSize(OVER, OVER), QVideoFrameFormat.PixelFormat.Format_Y8)
            )
            scanner = dialog.scanner
            await refused(window, dialog, lambda: scanner.handle_frame(frame), over)
            scanner.handle_frame(frame)  # said once
            assert (scanner.frames, scanner.refused, scanner.decoder.decoded) == (0, 2, 0)
            decoder = FrameDecoder()
            assert not decoder.offer(over_the_cap(), force=True)
            assert (decoder.decoded, decoder.skipped) == (0, 1)

            assert await window.engine.summaries() == []
            dialog.close()
            QGuiApplication.clipboard().clear()

    run(body())


def test_a_code_or_its_picture_of_normal_size_still_reads(run, tmp_path: Path) -> None:
    async def body() -> None:
        async with me_and_a_peer(tmp_path) as (window, card):
            dialog = window.show_add_contact()
            png = make_png(card)
            picture = QImage()
            assert picture.loadFromData(png, "PNG")
            png_file = tmp_path / "card.png"
            png_file.write_bytes(png)
            file_urls = QMimeData()
            file_urls.setUrls([QUrl.fromLocalFile(str(png_file))])

            for i, act in enumerate(
                (
                    lambda: paste(dialog, mime(png=png)),
                    lambda: paste(dialog, mime(image=picture)),
                    lambda: paste(dialog, mime(text=f"  {card}\n")),
                    lambda: drop(dialog, file_urls),
                    lambda: drop(dialog, mime(png=png)),
                    lambda: drop(dialog, mime(image=picture)),
                    lambda: drop(dialog, mime(text=card)),
                    lambda: choose_file(dialog, png_file),
                )
            ):
                dialog.text.clear()
                act()
                await until(lambda: dialog.text.toPlainText() == card, what=f"the code read {i}")
                await until(lambda: dialog.add_button.isEnabled(), what="whose code")
                assert not dialog.error.isVisibleTo(dialog)

            dialog.text.clear()
            QGuiApplication.clipboard().setText(card)
            dialog.text.setFocus()
            dialog.text.paste()
            assert dialog.text.toPlainText() == card
            await until(lambda: dialog.add_button.isEnabled(), what="whose code")
            QTest.mouseClick(dialog.add_button, Qt.MouseButton.LeftButton)
            await until(lambda: window.contacts.rowCount() == 1, what="the new contact")
            QGuiApplication.clipboard().clear()

    run(body())
