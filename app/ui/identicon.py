"""A contact's face: a symmetric pattern drawn from their identity key, so two contacts with
the same name look different, and a contact looks the same every time and on every device.

The pattern only helps the eye; comparing safety numbers is what proves a key.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

from PySide6.QtCore import QRect, QRectF, Qt
from PySide6.QtGui import QColor, QImage, QPainter

GRID = 5  # cells a side; the right two columns mirror the left two
DOMAIN = b"anonchat identicon\0"  # so the picture tells nothing about other uses of a hash


@lru_cache(maxsize=1024)
def identicon(key: bytes, size: int) -> QImage:
    """A round `size`×`size` picture of `key`; the same key always gives the same pixels."""
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
