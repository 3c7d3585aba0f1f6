"""Painting a contact's row: identicon with an online dot, name, last message, unread badge."""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRect, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFontMetrics, QPainter, QPalette
from PySide6.QtWidgets import QStyle, QStyledItemDelegate, QStyleOptionViewItem

from app.domain.contacts import ContactState, ContactSummary
from app.domain.messages import Direction, describe
from app.ui.bubble_parts import PAD, elided
from app.ui.delegates import ACCENT, WARN
from app.ui.identicon import identicon
from app.ui.models import SummaryRole, is_notice
from app.ui.text import preview, safe_text

Index = QModelIndex | QPersistentModelIndex
ONLINE = QColor("#2ecc71")


def badge_rect(fm: QFontMetrics, label: str, right: int, top: int) -> QRect:
    """An unread badge ending at `right`: a circle for one digit, a pill for more."""
    h = fm.height()
    w = h if len(label) == 1 else max(h, fm.horizontalAdvance(label) + h // 2 + 4)
    return QRect(right - w, top, w, h)


class ContactDelegate(QStyledItemDelegate):
    """The contact's identicon with an online dot, name with a verified mark, last-message
    preview and unread badge; a selected row draws everything in the highlight's text colour."""

    def sizeHint(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        fm = QFontMetrics(option.font)
        return QSize(200, fm.height() * 2 + PAD * 3)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        s: ContactSummary | None = index.data(SummaryRole)
        if s is None:
            return
        rect: QRect = option.rect
        palette: QPalette = option.palette
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        ground = palette.color(
            QPalette.ColorRole.Highlight if selected else QPalette.ColorRole.Base
        )
        if selected:
            painter.fillRect(rect, ground)
        text_color = palette.color(
            QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text
        )
        quiet = text_color if selected else palette.color(QPalette.ColorRole.PlaceholderText)
        fm = QFontMetrics(painter.font())
        face = fm.height() * 2 + PAD
        avatar = QRect(rect.left() + PAD, rect.top() + PAD, face, face)
        ratio = painter.device().devicePixelRatioF()  # drawn sharp on a high-density screen
        painter.drawImage(avatar, identicon(s.contact.identity_keys, round(face * ratio)))
        dot = max(8, face // 4)
        ring = QRectF(avatar.right() - dot + 1.5, avatar.bottom() - dot + 1.5, dot + 2, dot + 2)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(ground)
        painter.drawEllipse(ring)
        painter.setBrush(ONLINE if s.online else palette.color(QPalette.ColorRole.Mid))
        painter.drawEllipse(ring.adjusted(1.5, 1.5, -1.5, -1.5))

        badge_w = 0
        if s.unread:
            label = str(s.unread) if s.unread < 1000 else "999+"
            badge = badge_rect(fm, label, rect.right() - PAD, rect.top() + PAD)
            badge_w = badge.width()
            painter.setBrush(text_color if selected else ACCENT)
            radius = badge.height() / 2
            painter.drawRoundedRect(QRectF(badge), radius, radius)
            painter.setPen(ground if selected else QColor("white"))
            painter.drawText(badge, Qt.AlignmentFlag.AlignCenter, label)

        font = painter.font()
        font.setBold(True)
        painter.setFont(font)
        name = safe_text(s.contact.display_name) + (" ✔" if s.contact.verified else "")
        left = avatar.right() + PAD + 1
        name_rect = QRect(
            left, rect.top() + PAD, rect.right() - left - badge_w - PAD * 2, fm.height()
        )
        painter.setPen(text_color)
        painter.drawText(
            name_rect,
            Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
            elided(QFontMetrics(font), name, name_rect.width()),
        )
        font.setBold(False)
        painter.setFont(font)
        if s.contact.state is ContactState.ENDED:
            line = "Blocked" if s.contact.blocked else "Deleted"
            color = text_color if selected else WARN
        elif not s.established:
            line, color = "Waiting for them to come online…", quiet
        elif s.last is not None:
            mine = s.last.direction is Direction.OUTGOING and not is_notice(s.last)
            text = describe(s.last, s.contact.display_name)
            line, color = ("You: " if mine else "") + preview(text), quiet
        else:
            line, color = "No messages yet", quiet
        sub = QRect(
            left, rect.top() + PAD * 2 + fm.height(), rect.right() - left - PAD, fm.height()
        )
        painter.setPen(color)
        painter.drawText(
            sub,
            Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
            elided(fm, line, sub.width()),
        )
        painter.restore()
