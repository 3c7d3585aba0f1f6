"""Painting a contact's row: identicon with an online dot, name, last message, unread badge;
a group's row: its picture (square, with two people in its corner), name, and its last
message with who wrote it."""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRect, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFontMetrics, QPainter, QPalette
from PySide6.QtWidgets import QStyle, QStyledItemDelegate, QStyleOptionViewItem

from app.domain.contacts import ContactState, ContactSummary
from app.domain.messages import Direction, describe
from app.ui.bubble_parts import PAD, elided
from app.ui.delegates import ACCENT, WARN
from app.ui.identicon import group_identicon, identicon
from app.ui.models import SummaryRole, is_notice
from app.ui.text import preview, safe_text

Index = QModelIndex | QPersistentModelIndex
ONLINE = QColor("#2ecc71")


def badge_rect(fm: QFontMetrics, label: str, right: int, top: int) -> QRect:
    """An unread badge ending at `right`: a circle for one digit, a pill for more."""
    h = fm.height()
    w = h if len(label) == 1 else max(h, fm.horizontalAdvance(label) + h // 2 + 4)
    return QRect(right - w, top, w, h)


def last_line(s: ContactSummary) -> str:
    """The row's second line: the last message, "You: " before ours and, in a group, its
    author's name before a member's."""
    if s.last is None:
        return "No messages yet"
    notice = is_notice(s.last)
    text = preview(describe(s.last, s.contact.display_name))
    if s.last.direction is Direction.OUTGOING and not notice:
        return "You: " + text
    if s.contact.is_group and s.last.author and not notice:
        return f"{preview(s.last.author, 30)}: {text}"
    return text


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
        group = s.contact.is_group
        draw = group_identicon if group else identicon
        painter.drawImage(avatar, draw(s.contact.identity_keys, round(face * ratio)))
        painter.setPen(Qt.PenStyle.NoPen)
        if not group:  # a group is not online or offline: its members are
            dot = max(8, face // 4)
            ring = QRectF(avatar.right() - dot + 1.5, avatar.bottom() - dot + 1.5, dot + 2, dot + 2)
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
        if group:
            line, color = last_line(s), quiet
        elif s.contact.state is ContactState.ENDED:
            line = "Blocked" if s.contact.blocked else "Deleted"
            color = text_color if selected else WARN
        elif not s.established:
            line, color = "Waiting for them to come online…", quiet
        else:
            line, color = last_line(s), quiet
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
