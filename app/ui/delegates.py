"""Painting contact rows and message bubbles; colours come from the palette so both themes work."""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, QRect, QSize, Qt
from PySide6.QtGui import QColor, QFontMetrics, QPainter, QPalette
from PySide6.QtWidgets import QAbstractItemView, QStyle, QStyledItemDelegate, QStyleOptionViewItem

from app.domain.contacts import ContactState, ContactSummary
from app.domain.messages import Direction, Message, Status
from app.ui.models import HighlightRole, MessageRole, SummaryRole, bubble_text
from app.ui.text import clock, preview, rebalance, safe_text
from app.ui.theme import ERROR_COLOR

Index = QModelIndex | QPersistentModelIndex
PAD = 8
SIZE_CACHE = 5_000
LONG_WORD = 30
ONLINE = QColor("#2ecc71")
ACCENT = QColor("#2f80ed")
WARN = QColor("#e67e22")
TICKS = {
    Status.QUEUED: "🕓",
    Status.SENT: "✓",
    Status.DELIVERED: "✓✓",
    Status.READ: "✓✓",
    Status.FAILED: "! not sent · Ctrl+R to retry",
}
STATUS_WORDS = {
    Status.QUEUED: "waiting to send",
    Status.SENT: "sent",
    Status.DELIVERED: "delivered",
    Status.READ: "read",
    Status.FAILED: "not sent",
}


def elided(fm: QFontMetrics, text: str, width: int) -> str:
    """`text` cut to `width` with an ellipsis, its isolates still closed."""
    return rebalance(fm.elidedText(text, Qt.TextElideMode.ElideRight, width))


def wrap_flags(body: str) -> int:
    """Break lines between words; inside a word only when one is too long for a bubble."""
    if any(len(word) > LONG_WORD for word in body.split()):
        return int(Qt.TextFlag.TextWordWrap | Qt.TextFlag.TextWrapAnywhere)
    return int(Qt.TextFlag.TextWordWrap)


class ContactDelegate(QStyledItemDelegate):
    """Name with a verified mark, last-message preview, online dot and unread badge."""

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
        if selected:
            painter.fillRect(rect, palette.color(QPalette.ColorRole.Highlight))
        text_color = palette.color(
            QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text
        )
        fm = QFontMetrics(painter.font())
        dot = 10
        cx, cy = rect.left() + PAD, rect.top() + PAD + (fm.height() - dot) // 2
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(ONLINE if s.online else palette.color(QPalette.ColorRole.Mid))
        painter.drawEllipse(cx, cy, dot, dot)

        badge_w = 0
        if s.unread:
            label = str(s.unread) if s.unread < 1000 else "999+"
            badge_w = max(fm.horizontalAdvance(label) + 10, fm.height())
            badge = QRect(rect.right() - PAD - badge_w, rect.top() + PAD, badge_w, fm.height())
            painter.setBrush(ACCENT)
            painter.drawRoundedRect(badge, fm.height() / 2, fm.height() / 2)
            painter.setPen(QColor("white"))
            painter.drawText(badge, Qt.AlignmentFlag.AlignCenter, label)

        font = painter.font()
        font.setBold(True)
        painter.setFont(font)
        name = safe_text(s.contact.display_name) + (" ✔" if s.contact.verified else "")
        left = cx + dot + PAD
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
            line, color = ("Blocked" if s.contact.blocked else "Deleted"), WARN
        elif not s.established:
            line, color = (
                "Waiting for them to come online…",
                palette.color(QPalette.ColorRole.PlaceholderText),
            )
        elif s.last is not None:
            mine = s.last.direction is Direction.OUTGOING
            line = ("You: " if mine else "") + preview(s.last.body)
            color = (
                palette.color(QPalette.ColorRole.PlaceholderText) if not selected else text_color
            )
        else:
            line, color = "No messages yet", palette.color(QPalette.ColorRole.PlaceholderText)
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


class BubbleDelegate(QStyledItemDelegate):
    """A rounded bubble per message, ours on the right; time and status tick under the text."""

    def __init__(self, view: QAbstractItemView) -> None:
        super().__init__(view)
        self._view = view
        self._sizes: dict[tuple[int, Status, int, str], QSize] = {}

    def _text_width(self) -> int:
        return max(120, int(self._view.viewport().width() * 0.7) - PAD * 4)

    def _layout(self, fm: QFontMetrics, body: str, m: Message) -> tuple[QRect, str]:
        text = fm.boundingRect(QRect(0, 0, self._text_width(), 1_000_000), wrap_flags(body), body)
        foot = clock(m.sent_at)
        if m.direction is Direction.OUTGOING:
            foot += "  " + TICKS[m.status]
        width = max(text.width(), fm.horizontalAdvance(foot)) + PAD * 2
        height = text.height() + fm.height() + PAD * 2
        return QRect(0, 0, width, height), foot

    def sizeHint(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        """Measured once per message, status and width: a relayout of a long list would
        otherwise measure every bubble's text again."""
        m: Message | None = index.data(MessageRole)
        if m is None:
            return QSize(0, 0)
        key = (m.id, m.status, self._text_width(), option.font.key())
        size = self._sizes.get(key)
        if size is None:
            if len(self._sizes) > SIZE_CACHE:
                self._sizes.clear()
            fm = QFontMetrics(option.font)
            bubble, _ = self._layout(fm, bubble_text(m), m)
            size = self._sizes[key] = QSize(bubble.width(), bubble.height() + PAD)
        return size

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        m: Message | None = index.data(MessageRole)
        if m is None:
            return
        rect: QRect = option.rect
        palette: QPalette = option.palette
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        fm = QFontMetrics(painter.font())
        body = bubble_text(m)
        bubble, foot = self._layout(fm, body, m)
        mine = m.direction is Direction.OUTGOING
        x = rect.right() - PAD - bubble.width() if mine else rect.left() + PAD
        bubble.moveTo(x, rect.top() + PAD // 2)
        fill = ACCENT if mine else palette.color(QPalette.ColorRole.AlternateBase)
        ink = QColor("white") if mine else palette.color(QPalette.ColorRole.Text)
        if m.status is Status.FAILED:
            fill = QColor(ERROR_COLOR)
        painter.setPen(Qt.PenStyle.NoPen)
        if index.data(HighlightRole):  # the message a search jumped to
            painter.setBrush(palette.color(QPalette.ColorRole.Highlight).lighter(130))
            painter.drawRoundedRect(bubble.adjusted(-4, -3, 4, 3), 13, 13)
        painter.setBrush(fill)
        painter.drawRoundedRect(bubble, 10, 10)
        if option.state & QStyle.StateFlag.State_HasFocus or (
            option.state & QStyle.StateFlag.State_Selected
        ):  # the message keyboard actions apply to
            painter.setPen(palette.color(QPalette.ColorRole.Highlight))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRoundedRect(bubble.adjusted(-2, -2, 2, 2), 11, 11)
            painter.setPen(Qt.PenStyle.NoPen)
        painter.setPen(ink)
        inner = bubble.adjusted(PAD, PAD, -PAD, -PAD - fm.height())
        painter.drawText(inner, wrap_flags(body), body)
        footer = QRect(inner.left(), inner.bottom(), inner.width(), fm.height())
        painter.drawText(footer, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, foot)
        painter.restore()
