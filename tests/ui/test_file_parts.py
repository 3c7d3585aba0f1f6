"""The parts of files in the window on their own: the words a transfer is shown with, the
thumbnail made for a picture (at most 16 KB, whatever the picture), what pasted or dropped
data sends, and the pixel caps: a picture whose header claims too many pixels gets no
thumbnail and is never decoded, a thumbnail claiming more than a thumbnail has is not drawn,
and a pasted image over the cap is refused in the window, saying so."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

import pytest
from PySide6.QtCore import QByteArray, QMimeData, Qt, QUrl
from PySide6.QtGui import QColor, QGuiApplication, QImage
from PySide6.QtTest import QTest

from app.core.qr import QrError
from app.domain.files import MAX_THUMBNAIL_BYTES, FileInfo, FileRow, FileState
from app.domain.messages import Direction, MessageRow
from app.ui.attachments import (
    THUMBNAIL_SIDE,
    Outgoing,
    from_mime,
    holds_attachment,
    make_thumbnail,
    thumbnail_of,
)
from app.ui.file_bubble import (
    CANCEL,
    DOWNLOAD,
    OPEN,
    RETRY,
    SAVE,
    actions_for,
    enter_action,
    eta_words,
    link_for,
    state_words,
)
from app.ui.pictures import decode_shown, decode_thumbnail
from tests.core.test_card_caps import png_claiming
from tests.ui.conftest import me_and_a_peer, until
from tests.ui.test_image_caps import over_the_cap

INFO = FileInfo(
    FileRow(1),
    MessageRow(2),
    3,
    Direction.INCOMING,
    "plan.pdf",
    4_000_000,
    "application/pdf",
    b"\0" * 32,
    FileState.TRANSFERRING,
    1_000_000,
    0,
)


def test_the_words_of_each_state_and_the_action_it_offers() -> None:
    moving = state_words(INFO, "Bob", True, 500_000)
    assert moving == "1.0 MB of 4.0 MB · 500 KB/s · 6 s left"
    assert state_words(INFO, "Bob", True) == "1.0 MB of 4.0 MB"  # no speed yet: no guess
    queued = replace(INFO, state=FileState.QUEUED)
    assert state_words(queued, "Bob", False) == "Waiting for Bob to come online"
    ours = replace(queued, direction=Direction.OUTGOING)
    assert state_words(ours, "Bob", False) == "Waiting for Bob to come online"
    assert state_words(ours, "Bob", True) == "Waiting for Bob to download it"
    failed = replace(INFO, state=FileState.FAILED, error="the sender stopped sending")
    assert state_words(failed, "Bob", True) == "Failed: the sender stopped sending"
    offered = replace(INFO, state=FileState.OFFERED)
    assert state_words(offered, "Bob", True) == "4.0 MB, not downloaded"
    assert [link_for(i) for i in (INFO, queued, failed, offered)] == [
        CANCEL,
        CANCEL,
        RETRY,
        DOWNLOAD,
    ]
    done = replace(INFO, state=FileState.COMPLETE)
    assert link_for(done) is None
    assert [enter_action(i) for i in (INFO, failed, offered, done, ours)] == [
        None,
        RETRY,
        DOWNLOAD,
        OPEN,
        OPEN,
    ]
    assert actions_for(done) == [OPEN, SAVE]
    assert actions_for(ours) == [OPEN, SAVE, CANCEL]
    assert actions_for(failed) == [RETRY]
    assert [eta_words(s) for s in (0.2, 59, 61, 3 * 3600 + 120, 200_000)] == [
        "1 s left",
        "59 s left",
        "1 min left",
        "3 h 2 min left",
        "more than a day left",
    ]


def noisy(width: int, height: int) -> QImage:
    """A picture JPEG cannot squeeze much: every pixel different, half transparent."""
    image = QImage(width, height, QImage.Format.Format_ARGB32)
    for y in range(height):
        for x in range(width):
            image.setPixelColor(x, y, QColor((x * 97) % 256, (y * 57) % 256, (x * y) % 256, 128))
    return image


def test_a_thumbnail_is_a_small_jpeg_whatever_the_picture(qapp: object) -> None:
    thumb = make_thumbnail(noisy(900, 600))
    assert 0 < len(thumb) <= MAX_THUMBNAIL_BYTES
    assert thumb[:2] == b"\xff\xd8"  # a JPEG
    image = QImage.fromData(thumb)
    assert max(image.width(), image.height()) <= THUMBNAIL_SIDE
    assert abs(image.width() / image.height() - 1.5) < 0.05
    tight = make_thumbnail(noisy(900, 600), limit=3000)  # shrinks to fit a smaller limit
    assert 0 < len(tight) <= 3000
    assert make_thumbnail(QImage()) == b""


def test_pictures_over_the_cap_are_never_decoded(qapp: object, tmp_path: Path) -> None:
    huge = png_claiming(20_000, 20_000)  # 400 megapixels, in a few dozen bytes
    claimed = tmp_path / "huge.png"
    claimed.write_bytes(huge)
    started = time.monotonic()
    assert thumbnail_of(Outgoing(claimed)) == b""
    assert thumbnail_of(Outgoing(huge, "huge.png", "image/png")) == b""
    assert time.monotonic() - started < 1  # refused by the header, never decoded
    assert decode_thumbnail(png_claiming(2000, 2000)) is None  # no thumbnail is that large
    assert decode_thumbnail(b"not a picture") is None
    with pytest.raises(QrError, match="too large"):
        decode_shown(huge)
    ok = tmp_path / "ok.png"
    assert noisy(40, 30).save(str(ok))
    assert thumbnail_of(Outgoing(ok))  # a normal one still gets its thumbnail
    assert thumbnail_of(Outgoing(tmp_path / "notes.txt")) == b""  # not a picture


def test_what_pasted_or_dropped_data_sends(qapp: object, tmp_path: Path) -> None:
    path = tmp_path / "a.txt"
    path.write_text("a")
    files = QMimeData()
    files.setUrls([QUrl.fromLocalFile(str(path))])
    files.setText(str(path))
    assert holds_attachment(files)
    assert from_mime(files) == [Outgoing(path)]

    png = QMimeData()
    png.setData("image/png", QByteArray(b"\x89PNG..."))
    (item,) = from_mime(png)
    assert (item.source, item.name, item.mime) == (b"\x89PNG...", "Pasted picture.png", "image/png")

    image = QMimeData()
    image.setImageData(noisy(8, 8))
    (item,) = from_mime(image)
    assert item.image is not None
    assert item.image.size().width() == 8

    words = QMimeData()  # text with a picture of it (as office programs copy): written
    words.setText("quarterly numbers")
    words.setImageData(noisy(8, 8))
    assert not holds_attachment(words)
    assert from_mime(words) == []


def test_a_pasted_picture_over_the_cap_is_refused_in_the_window(run, tmp_path: Path) -> None:
    async def body() -> None:
        async with me_and_a_peer(tmp_path) as (window, card):
            contact = await window.engine.add_contact(card)
            window.open_contact(contact)
            panel = window.panel
            await until(lambda: panel.model is not None, what="the conversation")
            QGuiApplication.clipboard().setImage(over_the_cap())
            panel.composer.setFocus()
            QTest.keyClick(panel.composer, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
            await until(lambda: panel.error.isVisibleTo(window), what="the refusal")
            assert "too large" in panel.error.text()
            assert "64 megapixels" in panel.error.text()
            assert await window.engine.files() == []
            QGuiApplication.clipboard().clear()

    run(body())
