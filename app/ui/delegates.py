"""Painting message bubbles; colours come from the palette so both themes work."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

from PySide6.QtCore import (
    QAbstractItemModel,
    QEvent,
    QModelIndex,
    QPersistentModelIndex,
    QPoint,
    QRect,
    QRectF,
    QSize,
    Qt,
    Signal,
)
from PySide6.QtGui import QColor, QFontMetrics, QHelpEvent, QMouseEvent, QPainter, QPalette
from PySide6.QtWidgets import (
    QAbstractItemView,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QToolTip,
)

from app.domain.messages import Direction, Message, Status
from app.ui.bubble_parts import PAD, elided, paint_day, paint_quote, paint_reactions
from app.ui.file_bubble import (
    FileBlock,
    enter_action,
    file_block,
    link_for,
    link_rect,
    paint_file,
    state_words,
)
from app.ui.icons import draw_status, status_width
from app.ui.identicon import DOMAIN, identicon
from app.ui.models import (
    BubbleRole,
    ExpandedRole,
    GroupLine,
    HighlightRole,
    MessageRole,
    RateRole,
    bubble_text,
    collapsed_text,
    is_long,
    is_notice,
    local_now_ms,
    quote_text,
    time_left,
)
from app.ui.pictures import Pictures
from app.ui.text import clock
from app.ui.theme import ERROR_COLOR

Index = QModelIndex | QPersistentModelIndex
SIZE_CACHE = 5_000
LONG_WORD = 30
ACCENT = QColor("#1f6fd8")  # white text on it: 4.9:1 (WCAG AA)
WARN = QColor("#e67e22")
FAILED_WORDS = "not sent · Ctrl+R to retry"
READ_MORE = "Read more"
READ_LESS = "Show less"


def wrap_flags(body: str) -> int:
    """Break lines between words; inside a word only when one is too long for a bubble."""
    if any(len(word) > LONG_WORD for word in body.split()):
        return int(Qt.TextFlag.TextWordWrap | Qt.TextFlag.TextWrapAnywhere)
    return int(Qt.TextFlag.TextWordWrap)


@dataclass(frozen=True, slots=True)
class Bubble:
    """Where a row's parts go, relative to the row's top left (the bubble's left at 0)."""

    day: str | None  # the separator's label, above the bubble
    body: str  # the text drawn: whole, or the start of a long message
    more: str | None  # "Read more" / "Show less" under a long message's text
    foot: str  # the time (and why a message was not sent, edited, the time left)
    mark: int  # the status mark's width, 0 for a message we received
    top: int  # the bubble's top
    size: QSize  # the bubble's size
    text_height: int
    quote: tuple[str, str] | None = None  # whose message a reply quotes, and its start
    reactions: str = ""  # the emoji under the bubble
    notice: bool = False  # a line about the conversation: centred, no bubble
    quiet: bool = False  # a deleted message: its text says so, in italics
    file: FileBlock | None = None  # a file or picture, above the caption
    author: str = ""  # a group member's message: their name, above the bubble
    author_keys: bytes = b""  # and their keys, whose picture is drawn beside the name
    receipt: str = ""  # our group message: how many members have it (in the foot)


@lru_cache(maxsize=512)
def author_color(keys: bytes, dark: bool) -> QColor:
    """An author's name in the hue of their picture, light on a dark theme, dark on a light
    one (readable on either ground)."""
    digest = hashlib.sha256(DOMAIN + keys).digest()
    hue = int.from_bytes(digest[0:2], "big") % 360
    return QColor.fromHsl(hue, 150, 175 if dark else 85)


Row = tuple[Message, str | None, bool, GroupLine | None]


def bubble_row(index: Index) -> Row | None:
    """A row's message, the day separator above it, whether it is shown whole and, in a
    group, its author and deliveries; a model other than the conversation's gives the
    message alone (no separator, cut short, no group)."""
    row: Row | None = index.data(BubbleRole)
    if row is not None:
        return row
    m: Message | None = index.data(MessageRole)
    return None if m is None else (m, None, False, None)


class BubbleDelegate(QStyledItemDelegate):
    """A rounded bubble per message, ours on the right, with the time and a drawn status mark
    under the text; a day separator above the first message of each day; a long message cut
    short with "Read more" under it; a reply's quote at its top (a click goes there), its
    reactions under it, "edited" and the time left beside the time; a notice centred; a file
    or picture above its caption (app/ui/file_bubble.py), a click on it opens it, on its
    state line's link downloads, cancels or retries it."""

    quote_clicked = Signal(int)  # the message row a reply quotes
    file_clicked = Signal(int, str)  # a file row, and what to do (file_bubble.OPEN, ...)

    def __init__(self, view: QAbstractItemView) -> None:
        super().__init__(view)
        self._view = view
        self._sizes: dict[tuple[object, ...], QSize] = {}
        self.contact_name = "They"  # whose messages a quote or a notice names
        self.contact_online = False  # a file waiting for the contact says so
        self.pictures = Pictures(parent=self)  # the panel gives it the engine's reader

    def _text_width(self) -> int:
        return max(120, int(self._view.viewport().width() * 0.7) - PAD * 4)

    def _layout(
        self,
        fm: QFontMetrics,
        m: Message,
        day: str | None,
        expanded: bool,
        group: GroupLine | None = None,
    ) -> Bubble:
        top = (fm.height() + PAD * 2 if day else 0) + PAD // 2
        author = group.author if group is not None else ""
        if author and not is_notice(m):  # a member's name above their bubble
            top += self._author_height(fm)
        if is_notice(m):
            body = bubble_text(m, self.contact_name)
            bound = QRect(0, 0, self._text_width(), 1_000_000)
            text = fm.boundingRect(bound, wrap_flags(body), body)
            size = QSize(text.width() + PAD * 4, text.height() + PAD)
            return Bubble(day, body, None, "", 0, top, size, text.height(), notice=True)
        long = is_long(m)
        whole = expanded or not long
        body = bubble_text(m, self.contact_name) if whole else collapsed_text(m)
        more = (READ_LESS if expanded else READ_MORE) if long else None
        text = fm.boundingRect(QRect(0, 0, self._text_width(), 1_000_000), wrap_flags(body), body)
        block = None
        if m.file is not None and not m.deleted:
            shown = self.pictures.shown(m.file) if m.file.is_image else None
            block = file_block(fm, m.file, self._text_width(), shown)
            if not body:  # no caption: the file alone above the time
                text = QRect()
        foot = clock(m.sent_at)
        if m.edited_at is not None:
            foot = "edited  " + foot
        left = time_left(m, local_now_ms())
        if left is not None:
            foot = f"⏱ {left}  " + foot
        mark = 0
        receipt = group.receipt if group is not None else ""
        if m.direction is Direction.OUTGOING and not m.deleted:
            if m.status is Status.FAILED:
                foot += "  " + FAILED_WORDS
            elif receipt:
                foot = f"{receipt}  {foot}"
            mark = status_width(fm.height()) + PAD // 2
        quote = quote_text(m, self.contact_name if group is None else group.quoted or "A member")
        quote_w = 0
        if quote is not None:
            widest = max(fm.horizontalAdvance(x) for x in quote) + PAD * 2
            quote_w = min(self._text_width(), widest)
        width = max(
            text.width(),
            fm.horizontalAdvance(foot) + mark,
            fm.horizontalAdvance(more) if more else 0,
            quote_w,
            block.size.width() if block is not None else 0,
        )
        lines = 2 if more else 1
        height = text.height() + fm.height() * lines + PAD * 2
        if quote is not None:
            height += self._quote_height(fm) + PAD // 2
        if block is not None:
            height += block.size.height() + PAD // 2
        reactions = "  ".join(r.emoji for r in m.reactions)
        size = QSize(width + PAD * 2, height)
        return Bubble(
            day,
            body,
            more,
            foot,
            mark,
            top,
            size,
            text.height(),
            quote,
            reactions,
            quiet=m.deleted,
            file=block,
            author=author,
            author_keys=group.keys if group is not None else b"",
            receipt=receipt,
        )

    @staticmethod
    def _quote_height(fm: QFontMetrics) -> int:
        return fm.height() * 2 + PAD // 2

    @staticmethod
    def _author_height(fm: QFontMetrics) -> int:
        return fm.height() + PAD // 2

    def sizeHint(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        """Measured once per message, status, width, day and length shown: a relayout of a
        long list would otherwise measure every bubble's text again."""
        row = bubble_row(index)
        if row is None:
            return QSize(0, 0)
        m, day, expanded, group = row
        left = time_left(m, local_now_ms())
        picture = None
        if m.file is not None and m.file.is_image:
            drawn = self.pictures.shown(m.file)
            picture = None if drawn is None else (drawn.width(), drawn.height())
        key = (
            m,
            left,
            self._text_width(),
            option.font.key(),
            day,
            expanded,
            self.contact_name,
            picture,
            group,
        )
        size = self._sizes.get(key)
        if size is None:
            if len(self._sizes) > SIZE_CACHE:
                self._sizes.clear()
            b = self._layout(QFontMetrics(option.font), m, day, expanded, group)
            extra = QFontMetrics(option.font).height() + 2 if b.reactions else 0
            size = self._sizes[key] = QSize(
                b.size.width(), b.top + b.size.height() + PAD // 2 + extra
            )
        return size

    def _place(
        self, fm: QFontMetrics, rect: QRect, index: Index
    ) -> tuple[Message, Bubble, QRect] | None:
        """The row's message and layout, and where its bubble goes in a row drawn at `rect`."""
        row = bubble_row(index)
        if row is None:
            return None
        m, day, expanded, group = row
        b = self._layout(fm, m, day, expanded, group)
        mine = m.direction is Direction.OUTGOING
        x = rect.right() - PAD - b.size.width() if mine else rect.left() + PAD
        if b.notice:
            x = rect.left() + (rect.width() - b.size.width()) // 2
        return m, b, QRect(x, rect.top() + b.top, b.size.width(), b.size.height())

    def layout_of(self, option: QStyleOptionViewItem, index: Index) -> Bubble | None:
        """What the row is drawn with: its text, foot, author line (for tests and tools)."""
        placed = self._place(QFontMetrics(option.font), option.rect, index)
        return None if placed is None else placed[1]

    def bubble_rect(self, option: QStyleOptionViewItem, index: Index) -> QRect | None:
        """Where the bubble of the row at `option.rect` is drawn."""
        placed = self._place(QFontMetrics(option.font), option.rect, index)
        return None if placed is None else placed[2]

    def quote_rect(self, option: QStyleOptionViewItem, index: Index) -> QRect | None:
        """The quote at the top of a reply's bubble (a click goes to the message), or None."""
        fm = QFontMetrics(option.font)
        placed = self._place(fm, option.rect, index)
        if placed is None or placed[1].quote is None:
            return None
        bubble = placed[2]
        return QRect(
            bubble.left() + PAD,
            bubble.top() + PAD,
            bubble.width() - PAD * 2,
            self._quote_height(fm),
        )

    def file_origin(
        self, option: QStyleOptionViewItem, index: Index
    ) -> tuple[Message, FileBlock, QPoint] | None:
        """A file message's file block and where its top left is drawn, or None."""
        fm = QFontMetrics(option.font)
        placed = self._place(fm, option.rect, index)
        if placed is None:
            return None
        m, b, bubble = placed
        if b.file is None:
            return None
        top = bubble.top() + PAD
        if b.quote is not None:
            top += self._quote_height(fm) + PAD // 2
        return m, b.file, QPoint(bubble.left() + PAD, top)

    def media_rect(self, option: QStyleOptionViewItem, index: Index) -> QRect | None:
        """Where a file message's picture (or file icon, name and size) is drawn, or None."""
        found = self.file_origin(option, index)
        return None if found is None else found[1].media.translated(found[2])

    def file_link_rect(self, option: QStyleOptionViewItem, index: Index) -> QRect | None:
        """The Download, Cancel or Retry link on a file's state line, or None."""
        found = self.file_origin(option, index)
        if found is None or found[0].file is None:
            return None
        link = link_for(found[0].file)
        if link is None or found[1].line < 0:
            return None
        return link_rect(QFontMetrics(option.font), found[2], found[1], link)

    def more_rect(self, option: QStyleOptionViewItem, index: Index) -> QRect | None:
        """The "Read more" (or "Show less") line of a long message's bubble, or None."""
        fm = QFontMetrics(option.font)
        placed = self._place(fm, option.rect, index)
        if placed is None or placed[1].more is None:
            return None
        _, b, bubble = placed
        top = bubble.top() + PAD + b.text_height
        if b.quote is not None:
            top += self._quote_height(fm) + PAD // 2
        if b.file is not None:
            top += b.file.size.height() + PAD // 2
        return QRect(bubble.left(), top, bubble.width(), fm.height())

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        rect: QRect = option.rect
        fm = QFontMetrics(painter.font())
        placed = self._place(fm, rect, index)
        if placed is None:
            return
        m, b, bubble = placed
        palette: QPalette = option.palette
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        if b.day:
            paint_day(painter, fm, palette, rect, b.day)
        if b.notice:
            self._paint_notice(painter, palette, bubble, b, option)
            painter.restore()
            return
        if b.author:
            self._paint_author(painter, fm, palette, bubble, b)
        mine = m.direction is Direction.OUTGOING
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
        inner = bubble.adjusted(PAD, PAD, -PAD, -PAD)
        top = inner.top()
        if b.quote is not None:
            box = QRect(inner.left(), top, inner.width(), self._quote_height(fm))
            paint_quote(painter, fm, box, b.quote, ink)
            top += box.height() + PAD // 2
        if b.file is not None and m.file is not None:
            rate = float(index.data(RateRole) or 0.0)
            words = state_words(m.file, self.contact_name, self.contact_online, rate)
            image = self.pictures.best(m.file) if m.file.is_image else None
            paint_file(painter, fm, QPoint(inner.left(), top), b.file, m.file, words, ink, image)
            top += b.file.size.height() + PAD // 2
        font = painter.font()
        font.setItalic(b.quiet)
        painter.setFont(font)
        painter.drawText(
            QRect(inner.left(), top, inner.width(), b.text_height),
            wrap_flags(b.body),
            b.body,
        )
        font.setItalic(False)
        painter.setFont(font)
        line = top + b.text_height
        if b.more:
            font = painter.font()
            font.setUnderline(True)
            font.setBold(True)
            painter.setFont(font)
            painter.drawText(
                QRect(inner.left(), line, inner.width(), fm.height()),
                Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                b.more,
            )
            font.setUnderline(False)
            font.setBold(False)
            painter.setFont(font)
            line += fm.height()
        footer = QRect(inner.left(), line, inner.width() - b.mark, fm.height())
        painter.drawText(
            footer, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter, b.foot
        )
        if b.mark:
            width = status_width(fm.height())
            tick = QRectF(inner.right() + 1 - width, line, width, fm.height())
            draw_status(painter, tick, m.status, ink)
        if b.reactions:
            paint_reactions(painter, fm, palette, bubble, b.reactions, mine)
        painter.restore()

    def _paint_author(
        self, painter: QPainter, fm: QFontMetrics, palette: QPalette, bubble: QRect, b: Bubble
    ) -> None:
        """A group member's picture and name on the line above their bubble."""
        face = fm.height()
        top = bubble.top() - self._author_height(fm)
        ratio = painter.device().devicePixelRatioF()
        picture = identicon(b.author_keys, round(face * ratio))
        painter.drawImage(QRect(bubble.left(), top, face, face), picture)
        font = painter.font()
        font.setBold(True)
        painter.setFont(font)
        dark = palette.color(QPalette.ColorRole.Base).lightness() < 128
        painter.setPen(author_color(b.author_keys, dark))
        left = bubble.left() + face + PAD // 2
        box = QRect(left, top, self._text_width(), face)
        painter.drawText(
            box,
            Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
            elided(QFontMetrics(font), b.author, box.width()),
        )
        font.setBold(False)
        painter.setFont(font)

    def _paint_notice(
        self,
        painter: QPainter,
        palette: QPalette,
        box: QRect,
        b: Bubble,
        option: QStyleOptionViewItem,
    ) -> None:
        """A line about the conversation, centred and quiet, in a faint pill."""
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(palette.color(QPalette.ColorRole.AlternateBase))
        painter.drawRoundedRect(QRectF(box), 8, 8)
        if option.state & QStyle.StateFlag.State_HasFocus or (
            option.state & QStyle.StateFlag.State_Selected
        ):
            painter.setPen(palette.color(QPalette.ColorRole.Highlight))
            painter.setBrush(Qt.BrushStyle.NoBrush)
            painter.drawRoundedRect(QRectF(box.adjusted(-2, -2, 2, 2)), 9, 9)
        font = painter.font()
        font.setItalic(True)
        painter.setFont(font)
        painter.setPen(palette.color(QPalette.ColorRole.PlaceholderText))
        painter.drawText(box, int(Qt.AlignmentFlag.AlignCenter) | wrap_flags(b.body), b.body)

    def helpEvent(
        self,
        event: QHelpEvent,
        view: QAbstractItemView,
        option: QStyleOptionViewItem,
        index: Index,
    ) -> bool:
        """A tooltip over a bubble (not the space beside it): when it was sent and how far
        it got."""
        if event.type() != QEvent.Type.ToolTip or not index.isValid():
            return super().helpEvent(event, view, option, index)
        bubble = self.bubble_rect(option, index)
        tip = index.data(Qt.ItemDataRole.ToolTipRole)
        if bubble is None or not tip or not bubble.contains(event.pos()):
            QToolTip.hideText()
            return True
        QToolTip.showText(event.globalPos(), str(tip), view.viewport(), bubble)
        return True

    def editorEvent(
        self,
        event: QEvent,
        model: QAbstractItemModel,
        option: QStyleOptionViewItem,
        index: Index,
    ) -> bool:
        """A click on "Read more" shows the whole message; on "Show less", its start again;
        on a reply's quote, goes to the message quoted."""
        if (
            isinstance(event, QMouseEvent)
            and event.type() == QEvent.Type.MouseButtonRelease
            and event.button() == Qt.MouseButton.LeftButton
        ):
            at = event.position().toPoint()
            quote = self.quote_rect(option, index)
            m: Message | None = index.data(MessageRole)
            if quote is not None and m is not None and quote.contains(at):
                if m.quote is not None:
                    self.quote_clicked.emit(m.quote.id)
                return True
            if m is not None and m.file is not None and self._file_click(option, index, at):
                return True
            more = self.more_rect(option, index)
            if more is not None and more.contains(event.position().toPoint()):
                model.setData(index, not index.data(ExpandedRole), ExpandedRole)
                return True
        return False

    def _file_click(self, option: QStyleOptionViewItem, index: Index, at: QPoint) -> bool:
        """A click on a file's link does what it says; on the file or picture, what Enter
        does (open it, or download it)."""
        m: Message | None = index.data(MessageRole)
        if m is None or m.file is None or m.deleted:
            return False
        link = self.file_link_rect(option, index)
        action = link_for(m.file)
        if link is not None and action is not None and link.contains(at):
            self.file_clicked.emit(m.file.id, action)
            return True
        media = self.media_rect(option, index)
        action = enter_action(m.file)
        if media is not None and action is not None and media.contains(at):
            self.file_clicked.emit(m.file.id, action)
            return True
        return False
