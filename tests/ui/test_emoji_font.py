"""The bundled colour emoji font: registered at start, and what Qt draws an emoji with."""

from __future__ import annotations

from PySide6.QtGui import QColor, QFontDatabase, QImage, QPainter
from PySide6.QtWidgets import QApplication

from app.ui.theme import EMOJI_FAMILY, EMOJI_FONT, Theme, apply_theme, setup_application


def coloured_pixels(image: QImage) -> int:
    """Pixels whose channels differ a lot: colour, not black, white or grey."""
    count = 0
    for y in range(image.height()):
        for x in range(image.width()):
            c = image.pixelColor(x, y)
            if max(c.red(), c.green(), c.blue()) - min(c.red(), c.green(), c.blue()) > 60:
                count += 1
    return count


def draw(app: QApplication, text: str) -> QImage:
    image = QImage(64, 64, QImage.Format.Format_ARGB32)
    image.fill(QColor("white"))
    painter = QPainter(image)
    font = app.font()
    font.setPixelSize(40)
    painter.setFont(font)
    painter.setPen(QColor("black"))
    painter.drawText(4, 48, text)
    painter.end()
    return image


def test_the_font_ships_with_its_licence() -> None:
    assert EMOJI_FONT.stat().st_size > 1_000_000
    licence = (EMOJI_FONT.parent / "OFL.txt").read_text()
    assert "SIL OPEN FONT LICENSE Version 1.1" in licence
    assert "Copyright 2013-2017 Google Inc." in licence


def test_an_emoji_is_drawn_in_colour_with_the_app_font(qapp: QApplication) -> None:
    setup_application(qapp)
    try:
        assert EMOJI_FAMILY in QFontDatabase.families()
        image = draw(qapp, "😀")
        assert coloured_pixels(image) > 200  # the yellow face, not a box outline
        assert coloured_pixels(draw(qapp, "A")) == 0  # plain text stays plain
    finally:
        qapp.setQuitOnLastWindowClosed(False)
        apply_theme(qapp, Theme.SYSTEM)


def test_registering_twice_adds_the_font_once(qapp: QApplication) -> None:
    from app.ui.theme import add_emoji_font

    assert add_emoji_font(qapp)
    assert add_emoji_font(qapp)
    assert QFontDatabase.families().count(EMOJI_FAMILY) == 1
