"""A contact's face: a symmetric pattern drawn from their identity key, so two contacts with
the same name look different, and a contact looks the same every time and on every device.
A group's picture is drawn the same way from its id, but square with rounded corners and
with a badge of two people in its corner, so a group is never taken for a person.

The pattern only helps the eye; comparing safety numbers is what proves a key.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

from PySide6.QtCore import QPointF, QRect, QRectF, Qt
from PySide6.QtGui import QColor, QIcon, QImage, QPainter, QPainterPath, QPen, QPixmap

GRID = 5  # cells a side; the right two columns mirror the left two
DOMAIN = b"anonchat identicon\0"  # so the picture tells nothing about other uses of a hash


@lru_cache(maxsize=1024)
def identicon(key: bytes, size: int) -> QImage:
    """A round `size`×`size` picture of `key`; the same key always gives the same pixels."""
    return _pattern(key, size, group=False)


@lru_cache(maxsize=256)
def group_identicon(group_id: bytes, size: int) -> QImage:
    """A group's `size`×`size` picture: its id's pattern on a rounded square, with two
    people in a badge at its bottom right."""
    image = _pattern(group_id, size, group=True)
    p = QPainter(image)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    badge = size * 0.46
    box = QRectF(size - badge, size - badge, badge, badge)
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(QColor("white"))
    p.drawEllipse(box)
    p.setBrush(GROUP_INK)
    p.drawEllipse(box.adjusted(badge * 0.08, badge * 0.08, -badge * 0.08, -badge * 0.08))
    p.setBrush(QColor("white"))
    p.drawPath(people(box.adjusted(badge * 0.2, badge * 0.2, -badge * 0.2, -badge * 0.16)))
    p.end()
    return image


GROUP_INK = QColor("#1f6fd8")  # the badge of a group's picture (the app's accent)


def people(box: QRectF) -> QPainterPath:
    """Two people side by side (heads and shoulders) filling `box`: a group's mark."""
    path = QPainterPath()
    w, h = box.width(), box.height()
    for cx, scale in ((0.34, 0.9), (0.66, 1.0)):
        x = box.left() + w * cx
        head = h * 0.22 * scale
        path.addEllipse(QPointF(x, box.top() + h * 0.3), head, head)
        shoulders = QRectF(x - w * 0.26 * scale, box.top() + h * 0.58, w * 0.52 * scale, h * 0.8)
        body = QPainterPath()
        body.moveTo(shoulders.left(), box.bottom())
        body.arcTo(shoulders, 180, -180)
        body.closeSubpath()
        path = path.united(body)
    return path


def new_group_icon() -> QIcon:
    """The New group button's icon: a group's badge (two people) with a plus beside it."""
    icon = QIcon()
    for size in (16, 24, 32, 48, 64):
        pixmap = QPixmap(size, size)
        pixmap.fill(Qt.GlobalColor.transparent)
        p = QPainter(pixmap)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        badge = QRectF(0, size * 0.22, size * 0.78, size * 0.78)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(GROUP_INK)
        p.drawEllipse(badge)
        p.setBrush(QColor("white"))
        inner = badge.width() * 0.2
        p.drawPath(people(badge.adjusted(inner, inner, -inner, -inner * 0.8)))
        p.setPen(
            QPen(GROUP_INK, max(1.5, size / 10), Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap)
        )
        arm, centre = size * 0.14, QPointF(size * 0.82, size * 0.18)
        p.drawLine(QPointF(centre.x() - arm, centre.y()), QPointF(centre.x() + arm, centre.y()))
        p.drawLine(QPointF(centre.x(), centre.y() - arm), QPointF(centre.x(), centre.y() + arm))
        p.end()
        icon.addPixmap(pixmap)
    return icon


def _pattern(key: bytes, size: int, *, group: bool) -> QImage:
    digest = hashlib.sha256(DOMAIN + key).digest()
    hue = int.from_bytes(digest[0:2], "big") % 360
    ink = QColor.fromHsl(hue, 140 + digest[2] % 90, 95 + digest[3] % 50)
    ground = QColor.fromHsl((hue + 20 + digest[4] % 40) % 360, 90 + digest[5] % 60, 222)
    bits = int.from_bytes(digest[6:10], "big")
    half = (GRID + 1) // 2
    cells = [
        (col, row) for col in range(half) for row in range(GRID) if bits >> (col * GRID + row) & 1
    ]
    if not cells:
        cells = [(half - 1, GRID // 2)]

    image = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
    image.fill(Qt.GlobalColor.transparent)
    p = QPainter(image)
    p.setRenderHint(QPainter.RenderHint.Antialiasing)
    p.setPen(Qt.PenStyle.NoPen)
    p.setBrush(ground)
    if group:
        p.drawRoundedRect(QRectF(0, 0, size, size), size * 0.24, size * 0.24)
    else:
        p.drawEllipse(QRectF(0, 0, size, size))
    p.setRenderHint(QPainter.RenderHint.Antialiasing, False)  # cells meet without seams

    def edge(i: int) -> int:  # a margin of 1.5 cells keeps the grid's corners in the circle
        return round((i * 2 + 3) * size / ((GRID + 3) * 2))

    for col, row in cells:
        for x in {col, GRID - 1 - col}:
            p.fillRect(
                QRect(edge(x), edge(row), edge(x + 1) - edge(x), edge(row + 1) - edge(row)), ink
            )
    p.end()
    return image
