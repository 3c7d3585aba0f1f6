"""The app icon, drawn with QPainter so it needs no file: a speech bubble with a keyhole.
The tray variant carries the unread count in a badge. Also the marks a bubble shows for how
far a message got, drawn as paths so they look the same with every font."""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import (
    QColor,
    QFont,
    QIcon,
    QLinearGradient,
    QPainter,
    QPainterPath,
    QPen,
    QPixmap,
)

from app.domain.messages import Status

SIZES = (16, 24, 32, 48, 64, 128, 256)
BLUE_TOP = QColor("#4a9bff")
BLUE_BOTTOM = QColor("#1f5fd1")
BADGE = QColor("#e5484d")
READ_COLOR = QColor("#8ff0b4")  # read ticks: mint, unlike the paler delivered ones on a bubble
DELIVERED_ALPHA = 150  # delivered ticks: the bubble's ink, faded
STATUS_WIDTH = 1.4  # a status mark's width, in line heights (two ticks side by side)


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


def status_width(line_height: int) -> int:
    return round(line_height * STATUS_WIDTH)


def _tick(left: float, top: float, size: float) -> QPainterPath:
    path = QPainterPath()
    path.moveTo(QPointF(left, top + size * 0.55))
    path.lineTo(QPointF(left + size * 0.32, top + size * 0.88))
    path.lineTo(QPointF(left + size * 0.95, top + size * 0.15))
    return path


def draw_status(p: QPainter, box: QRectF, status: Status, ink: QColor) -> None:
    """How far an outgoing message got, right-aligned in `box` (one line high): a clock while
    queued, one tick once sent, two faded ticks delivered, two bold mint ticks read, an alert
    mark when it failed."""
    p.save()
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    h = box.height()
    size = h * 0.78
    top = box.top() + (h - size) / 2
    right = box.right()
    pen = QPen(ink, max(1.3, h / 10))
    pen.setCapStyle(Qt.PenCapStyle.RoundCap)
    pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
    p.setBrush(Qt.BrushStyle.NoBrush)
    if status in (Status.QUEUED, Status.FAILED):
        centre = QPointF(right - size / 2 - 1, top + size / 2)
        radius = size / 2
        if status is Status.QUEUED:
            p.setPen(pen)
            p.drawEllipse(centre, radius, radius)
            hands = QPainterPath(QPointF(centre.x(), centre.y() - radius * 0.62))
            hands.lineTo(centre)
            hands.lineTo(QPointF(centre.x() + radius * 0.5, centre.y() + radius * 0.2))
            p.drawPath(hands)
        else:
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(ink)  # a filled disc with the "!" cut out of it
            disc = QPainterPath()
            disc.addEllipse(centre, radius, radius)
            mark = QPainterPath()
            bar = radius * 0.22
            mark.addRoundedRect(
                QRectF(centre.x() - bar, centre.y() - radius * 0.62, bar * 2, radius * 0.8),
                bar,
                bar,
            )
            mark.addEllipse(QPointF(centre.x(), centre.y() + radius * 0.48), bar * 1.1, bar * 1.1)
            p.drawPath(disc.subtracted(mark))
        p.restore()
        return
    if status is Status.SENT:
        p.setPen(pen)
        p.drawPath(_tick(right - size - 1, top, size))
        p.restore()
        return
    if status is Status.READ:
        pen.setColor(READ_COLOR)
        pen.setWidthF(pen.widthF() * 1.5)
    else:
        faded = QColor(ink)
        faded.setAlpha(DELIVERED_ALPHA)
        pen.setColor(faded)
    p.setPen(pen)
    shift = size * 0.5
    p.drawPath(_tick(right - size - shift - 1, top, size))
    p.drawPath(_tick(right - size - 1, top, size))
    p.restore()
