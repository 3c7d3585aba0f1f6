"""The app icon, drawn with QPainter so it needs no file: a speech bubble with a keyhole.
The tray variant carries the unread count in a badge."""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QColor, QFont, QIcon, QLinearGradient, QPainter, QPainterPath, QPixmap

SIZES = (16, 24, 32, 48, 64, 128, 256)
BLUE_TOP = QColor("#4a9bff")
BLUE_BOTTOM = QColor("#1f5fd1")
BADGE = QColor("#e5484d")


def draw_icon(size: int, unread: int = 0) -> QPixmap:
    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.GlobalColor.transparent)
    p = QPainter(pixmap)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    s = float(size)
    gradient = QLinearGradient(0, 0, 0, s)
    gradient.setColorAt(0, BLUE_TOP)
    gradient.setColorAt(1, BLUE_BOTTOM)
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(gradient)
    p.drawRoundedRect(QRectF(0, 0, s, s), s * 0.22, s * 0.22)

    bubble = QPainterPath()
    body = QRectF(s * 0.18, s * 0.2, s * 0.64, s * 0.48)
    bubble.addRoundedRect(body, s * 0.12, s * 0.12)
    tail = QPainterPath()
    tail.moveTo(QPointF(s * 0.3, s * 0.62))
    tail.lineTo(QPointF(s * 0.26, s * 0.82))
    tail.lineTo(QPointF(s * 0.46, s * 0.66))
    tail.closeSubpath()
    p.setBrush(QColor("white"))
    p.drawPath(bubble.united(tail))

    p.setBrush(BLUE_BOTTOM)  # a keyhole: the message is for the recipient only
    centre = QPointF(s * 0.5, s * 0.39)
    p.drawEllipse(centre, s * 0.07, s * 0.07)
    stem = QPainterPath()
    stem.moveTo(QPointF(s * 0.47, s * 0.41))
    stem.lineTo(QPointF(s * 0.53, s * 0.41))
    stem.lineTo(QPointF(s * 0.55, s * 0.55))
    stem.lineTo(QPointF(s * 0.45, s * 0.55))
    stem.closeSubpath()
    p.drawPath(stem)

    if unread > 0:
        label = str(unread) if unread < 100 else "99+"
        d = s * (0.56 if len(label) < 3 else 0.66)
        badge = QRectF(s - d, 0, d, s * 0.56)
        p.setBrush(BADGE)
        p.drawRoundedRect(badge, badge.height() / 2, badge.height() / 2)
        font = QFont()
        font.setBold(True)
        font.setPixelSize(max(6, int(badge.height() * (0.7 if len(label) < 3 else 0.55))))
        p.setFont(font)
        p.setPen(QColor("white"))
        p.drawText(badge, Qt.AlignmentFlag.AlignCenter, label)
    p.end()
    return pixmap


def app_icon(unread: int = 0) -> QIcon:
    icon = QIcon()
    for size in SIZES:
        icon.addPixmap(draw_icon(size, unread))
    return icon
