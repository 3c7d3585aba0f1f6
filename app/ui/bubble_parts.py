"""Parts a bubble is drawn with: a quote, a reaction or day pill, elided text."""

from __future__ import annotations

from PySide6.QtCore import QRect, QRectF, Qt
from PySide6.QtGui import QColor, QFontMetrics, QPainter, QPalette

from app.ui.text import rebalance

PAD = 8


def elided(fm: QFontMetrics, text: str, width: int) -> str:
    """`text` cut to `width` with an ellipsis, its isolates still closed."""
    return rebalance(fm.elidedText(text, Qt.TextElideMode.ElideRight, width))


def draw_pill(
    painter: QPainter,
    pill: QRect,
    palette: QPalette,
    ground: QColor,
    outline: QColor | None,
    text: str,
) -> None:
    """Text centred in a rounded pill (a day separator, a bubble's reactions)."""
    painter.setPen(Qt.PenStyle.NoPen if outline is None else outline)
    painter.setBrush(ground)
    radius = pill.height() / 2
    painter.drawRoundedRect(QRectF(pill), radius, radius)
    painter.setPen(palette.color(QPalette.ColorRole.Text))
    painter.drawText(pill, Qt.AlignmentFlag.AlignCenter, text)


def paint_quote(
    painter: QPainter, fm: QFontMetrics, box: QRect, quote: tuple[str, str], ink: QColor
) -> None:
    """The quoted message in a box with a bar on its left: whose, then its start."""
    painter.save()
    shade = QColor(ink)
    shade.setAlpha(40)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(shade)
    painter.drawRoundedRect(box, 6, 6)
    painter.setBrush(ink)
    painter.drawRect(QRect(box.left(), box.top() + 2, 3, box.height() - 4))
    painter.setPen(ink)
    who, text = quote
    row = QRect(box.left() + PAD, box.top() + PAD // 4, box.width() - PAD * 2, fm.height())
    font = painter.font()
    font.setBold(True)
    painter.setFont(font)
    painter.drawText(row, Qt.AlignmentFlag.AlignLeft, elided(fm, who, row.width()))
    font.setBold(False)
    painter.setFont(font)
    below = row.translated(0, fm.height())
    painter.drawText(below, Qt.AlignmentFlag.AlignLeft, elided(fm, text, row.width()))
    painter.restore()


def paint_reactions(
    painter: QPainter,
    fm: QFontMetrics,
    palette: QPalette,
    bubble: QRect,
    emoji: str,
    mine: bool,
) -> None:
    """The reactions in a pill that hangs under the bubble's corner."""
    width = fm.horizontalAdvance(emoji) + PAD * 2
    x = bubble.right() - width - PAD if mine else bubble.left() + PAD
    pill = QRect(x, bubble.bottom() - 2, width, fm.height() + 4)
    ground = palette.color(QPalette.ColorRole.Base)
    draw_pill(painter, pill, palette, ground, palette.color(QPalette.ColorRole.Mid), emoji)


def paint_day(
    painter: QPainter, fm: QFontMetrics, palette: QPalette, rect: QRect, day: str
) -> None:
    """The day's name in a pill, centred in the band above the bubble."""
    width = fm.horizontalAdvance(day) + PAD * 3
    height = fm.height() + 4
    top = rect.top() + PAD // 2 + (fm.height() + PAD * 2 - height) // 2
    pill = QRect(rect.left() + (rect.width() - width) // 2, top, width, height)
    draw_pill(painter, pill, palette, palette.color(QPalette.ColorRole.AlternateBase), None, day)
