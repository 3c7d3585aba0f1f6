"""Message requests: the section above the contact list, and the bar that answers one.

A request is someone we do not know who started a handshake. Its messages can be read, but
they are never marked read (the sender learns nothing until it is accepted) and nothing can
be written back. The bar offers Accept, Accept as a contact's new key (only when the names
match: someone who lost their device), Block and Delete.

Invitations to groups wait in the same section, in a list of their own under the requests:
who invited us and who is in the group; the bar that answers one offers Join and Decline.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import (
    QAbstractListModel,
    QItemSelection,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QRect,
    QRectF,
    QSize,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QFontMetrics, QPainter, QPaintEvent, QPalette, QPen
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QHBoxLayout,
    QLabel,
    QListView,
    QPushButton,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QVBoxLayout,
    QWidget,
)

from app.core.engine import Engine
from app.domain.contacts import Contact, RequestSummary
from app.domain.groups import Group
from app.domain.messages import describe
from app.ui.aio import spawn
from app.ui.bubble_parts import PAD, elided
from app.ui.delegates import WARN
from app.ui.identicon import group_identicon, identicon
from app.ui.selection import mark_row, unheard
from app.ui.text import preview, safe_text

Index = QModelIndex | QPersistentModelIndex
RequestRole = Qt.ItemDataRole.UserRole + 5
InviteRole = Qt.ItemDataRole.UserRole + 11
SHOWN_ROWS = 3  # rows shown before the list scrolls, so requests never crowd out contacts
REFRESH_MS = 50


def same_name_warning(contact: Contact) -> str:
    return f"Not your contact {safe_text(contact.display_name)}: a different key with the same name"


def first_line(s: RequestSummary) -> str:
    if s.first_message is None:
        return "No message yet"
    return preview(describe(s.first_message, s.request.display_name))


class RequestListModel(QAbstractListModel):
    """One row per waiting request, oldest first (the engine's order)."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._rows: list[RequestSummary] = []

    def set_requests(self, rows: list[RequestSummary]) -> None:
        self.beginResetModel()
        self._rows = list(rows)
        self.endResetModel()

    def summary(self, row: int) -> RequestSummary:
        return self._rows[row]

    def row_of(self, request_id: int) -> int | None:
        return next((i for i, s in enumerate(self._rows) if s.request.id == request_id), None)

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        s = self._rows[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return safe_text(s.request.display_name)
        if role == RequestRole:
            return s
        if role in (Qt.ItemDataRole.AccessibleTextRole, Qt.ItemDataRole.ToolTipRole):
            parts = [safe_text(s.request.display_name), "message request"]
            if s.messages:
                parts.append(f"{s.messages} message{'s' if s.messages != 1 else ''}")
            parts.append(f"first: {first_line(s)}" if s.first_message else first_line(s))
            if s.same_name_as is not None:
                parts.append(same_name_warning(s.same_name_as))
            return ", ".join(parts)
        return None


class RequestDelegate(QStyledItemDelegate):
    """The key's identicon, name and message count, the first message, and the same-name
    warning when there is one."""

    def sizeHint(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        s: RequestSummary | None = index.data(RequestRole)
        lines = 3 if s is not None and s.same_name_as is not None else 2
        return QSize(200, QFontMetrics(option.font).height() * lines + PAD * (lines + 1))

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        s: RequestSummary | None = index.data(RequestRole)
        if s is None:
            return
        rect: QRect = option.rect
        palette: QPalette = option.palette
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        painter.save()
        if selected:
            painter.fillRect(rect, palette.color(QPalette.ColorRole.Highlight))
        ink = palette.color(
            QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text
        )
        quiet = ink if selected else palette.color(QPalette.ColorRole.PlaceholderText)
        fm = QFontMetrics(painter.font())
        face = fm.height() * 2 + PAD  # the key's picture: namesakes differ at a glance
        ratio = painter.device().devicePixelRatioF()
        picture = identicon(s.request.identity_keys, round(face * ratio))
        painter.drawImage(QRect(rect.left() + PAD, rect.top() + PAD, face, face), picture)
        left = rect.left() + PAD * 2 + face
        width = rect.right() - left - PAD
        count = f"{s.messages} messages" if s.messages > 1 else ""
        count_w = fm.horizontalAdvance(count) + PAD if count else 0
        top = rect.top() + PAD
        painter.setPen(quiet)
        painter.drawText(
            QRect(left, top, width, fm.height()),
            Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter,
            count,
        )
        font = painter.font()
        font.setBold(True)
        painter.setFont(font)
        name_rect = QRect(left, top, width - count_w, fm.height())
        painter.setPen(ink)
        painter.drawText(
            name_rect,
            Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
            elided(QFontMetrics(font), safe_text(s.request.display_name), name_rect.width()),
        )
        font.setBold(False)
        painter.setFont(font)
        lines = [(first_line(s), quiet)]
        if s.same_name_as is not None:
            lines.append((same_name_warning(s.same_name_as), ink if selected else WARN))
        for text, color in lines:
            top += fm.height() + PAD
            painter.setPen(color)
            painter.drawText(
                QRect(left, top, width, fm.height()),
                Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
                elided(fm, text, width),
            )
        painter.restore()


def invite_line(group: Group) -> str:
    """Who invited us and who is in the group, on one line."""
    others = [safe_text(m.name) for m in group.members if not m.is_me]
    count = len(group.members)
    who = safe_text(group.invited_by) or "An admin"
    return f"{who} invited you · {count} member{'s' if count != 1 else ''}: " + ", ".join(others)


class InviteListModel(QAbstractListModel):
    """One row per invitation to a group, oldest first (the engine's order)."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._rows: list[Group] = []

    def set_invites(self, rows: list[Group]) -> None:
        self.beginResetModel()
        self._rows = list(rows)
        self.endResetModel()

    def invite(self, row: int) -> Group:
        return self._rows[row]

    def row_of(self, group_row: int) -> int | None:
        return next((i for i, g in enumerate(self._rows) if g.id == group_row), None)

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        g = self._rows[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return safe_text(g.name)
        if role == InviteRole:
            return g
        if role in (Qt.ItemDataRole.AccessibleTextRole, Qt.ItemDataRole.ToolTipRole):
            return f"{safe_text(g.name)}, invitation to a group, {invite_line(g)}"
        return None


class InviteDelegate(QStyledItemDelegate):
    """The group's picture, its name, and who invited us and who is in it."""

    def sizeHint(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        return QSize(200, QFontMetrics(option.font).height() * 2 + PAD * 3)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        g: Group | None = index.data(InviteRole)
        if g is None:
            return
        rect: QRect = option.rect
        palette: QPalette = option.palette
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        if selected:
            painter.fillRect(rect, palette.color(QPalette.ColorRole.Highlight))
        ink = palette.color(
            QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text
        )
        quiet = ink if selected else palette.color(QPalette.ColorRole.PlaceholderText)
        fm = QFontMetrics(painter.font())
        face = fm.height() * 2 + PAD
        ratio = painter.device().devicePixelRatioF()
        picture = group_identicon(g.group_id, round(face * ratio))
        painter.drawImage(QRect(rect.left() + PAD, rect.top() + PAD, face, face), picture)
        left = rect.left() + PAD * 2 + face
        width = rect.right() - left - PAD
        top = rect.top() + PAD
        font = painter.font()
        font.setBold(True)
        painter.setFont(font)
        painter.setPen(ink)
        painter.drawText(
            QRect(left, top, width, fm.height()),
            Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
            elided(QFontMetrics(font), safe_text(g.name), width),
        )
        font.setBold(False)
        painter.setFont(font)
        painter.setPen(quiet)
        painter.drawText(
            QRect(left, top + fm.height() + PAD, width, fm.height()),
            Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter,
            elided(fm, invite_line(g), width),
        )
        painter.restore()


class RequestsSection(QWidget):
    """The "Message requests (N)" header, the requests' list and the group invitations';
    hidden while there are none (or while a search runs).

    Refreshes are coalesced: a burst of messages costs one query. With nothing listed, only
    a new request or invitation (`force`) is worth a query: nothing else can add a row."""

    chosen = Signal(object)  # RequestSummary
    invite_chosen = Signal(object)  # Group (an invitation)
    changed = Signal()  # the lists were reloaded

    def __init__(self, engine: Engine, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._engine = engine
        self.header = QLabel("Message requests (0)")
        self.header.setAccessibleName("Message requests")
        font = self.header.font()
        font.setBold(True)
        self.header.setFont(font)
        self.header.setContentsMargins(PAD, 0, 0, 0)
        self.model = RequestListModel(self)
        self.list = QListView()
        self.list.setModel(self.model)
        self.list.setItemDelegate(RequestDelegate(self.list))
        self.list.setAccessibleName("Message requests")
        self.list.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.list.selectionModel().selectionChanged.connect(self._selected)
        self.invites = InviteListModel(self)
        self.invite_list = QListView()
        self.invite_list.setModel(self.invites)
        self.invite_list.setItemDelegate(InviteDelegate(self.invite_list))
        self.invite_list.setAccessibleName("Group invitations")
        self.invite_list.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.invite_list.selectionModel().selectionChanged.connect(self._invite_selected)
        self.invite_list.hide()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 4, 0, 4)
        layout.addWidget(self.header)
        layout.addWidget(self.list)
        layout.addWidget(self.invite_list)
        self._pending = False
        self._loading = False  # a reload is reading
        self._again = False  # and something changed meanwhile
        self._suppressed = False
        self.detached = False
        self.hide()

    def refresh(self, force: bool = False) -> None:
        """Read the requests again soon. With nothing shown, only a forced refresh reads, unless
        a read is under way: what changed meanwhile may have been read before it changed."""
        if self._loading:
            self._again = True
            return
        if not force and self.model.rowCount() == 0 and self.invites.rowCount() == 0:
            return
        if not self._pending:
            self._pending = True
            QTimer.singleShot(REFRESH_MS, self, lambda: spawn(self.reload(), "refreshing requests"))

    async def reload(self) -> None:
        self._pending = False
        if self.detached:
            return
        self._loading, self._again = True, False
        try:
            rows = await self._engine.requests()
            invites = await self._engine.group_invites()
        finally:
            self._loading = False
        if self._again:
            self.refresh(force=True)
        current = self.current_id()
        with unheard(self.list), unheard(self.invite_list):
            self.model.set_requests(rows)
            self.invites.set_invites(invites)
        self.select(current)
        self.header.setText(f"Message requests ({len(rows) + len(invites)})")
        self.list.setFixedHeight(self._list_height(self.list))
        self.list.setVisible(bool(rows))
        self.invite_list.setFixedHeight(self._list_height(self.invite_list))
        self.invite_list.setVisible(bool(invites))
        self._show()
        self.changed.emit()

    def summary_of(self, request_id: int) -> RequestSummary | None:
        row = self.model.row_of(request_id)
        return None if row is None else self.model.summary(row)

    def invite_of(self, group_row: int) -> Group | None:
        row = self.invites.row_of(group_row)
        return None if row is None else self.invites.invite(row)

    def current_id(self) -> int | None:
        """The request or invitation marked open (its conversation row), or None."""
        index = self.list.currentIndex()
        if index.isValid() and self.list.selectionModel().isSelected(index):
            return self.model.summary(index.row()).request.id
        index = self.invite_list.currentIndex()
        if index.isValid() and self.invite_list.selectionModel().isSelected(index):
            return self.invites.invite(index.row()).id
        return None

    def select(self, request_id: int | None) -> None:
        """Mark a request's or an invitation's row as the one open (None: none is), without
        opening it again."""
        mark_row(self.list, None if request_id is None else self.model.row_of(request_id))
        invite = None if request_id is None else self.invites.row_of(request_id)
        mark_row(self.invite_list, invite)

    def set_suppressed(self, suppressed: bool) -> None:
        self._suppressed = suppressed
        self._show()

    def _show(self) -> None:
        waiting = self.model.rowCount() + self.invites.rowCount()
        self.setVisible(not self._suppressed and waiting > 0)

    @staticmethod
    def _list_height(view: QListView) -> int:
        rows = min(view.model().rowCount(), SHOWN_ROWS)
        height = sum(max(0, view.sizeHintForRow(i)) for i in range(rows))
        return height + view.frameWidth() * 2

    def _selected(self, selected: QItemSelection, _deselected: QItemSelection) -> None:
        indexes = selected.indexes()
        if indexes:
            self.chosen.emit(self.model.summary(indexes[0].row()))

    def _invite_selected(self, selected: QItemSelection, _deselected: QItemSelection) -> None:
        indexes = selected.indexes()
        if indexes:
            self.invite_chosen.emit(self.invites.invite(indexes[0].row()))


class RequestBar(QFrame):
    """What the conversation panel shows above a request: who it is and what to do with it."""

    accept_clicked = Signal()
    accept_as_key_clicked = Signal()
    block_clicked = Signal()
    delete_clicked = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.text = QLabel()
        self.text.setWordWrap(True)
        self.text.setTextFormat(Qt.TextFormat.PlainText)
        self.text.setAccessibleName("Message request")
        self.warning = QLabel()
        # Its own colour only: a style sheet on the bar would pin its children's palette,
        # and their text would stay dark after a switch to the dark theme.
        self.warning.setStyleSheet(f"color: {WARN.name()}; font-weight: bold;")
        self.warning.setWordWrap(True)
        self.warning.setTextFormat(Qt.TextFormat.PlainText)
        self.warning.setAccessibleName("Same name warning")
        self.accept = QPushButton("&Accept")
        self.accept.setAccessibleName("Accept the request")
        self.accept.setToolTip("Add them to your contacts and write to them")
        self.accept_as_key = QPushButton()
        self.block = QPushButton("&Block")
        self.block.setAccessibleName("Block this key")
        self.block.setToolTip("Delete the request; this key can never ask again")
        self.delete = QPushButton("&Delete")
        self.delete.setAccessibleName("Delete the request")
        self.delete.setToolTip("Delete the request; they may ask again")
        self.accept.clicked.connect(self.accept_clicked)
        self.accept_as_key.clicked.connect(self.accept_as_key_clicked)
        self.block.clicked.connect(self.block_clicked)
        self.delete.clicked.connect(self.delete_clicked)
        buttons = QHBoxLayout()
        for button in (self.accept, self.accept_as_key, self.block, self.delete):
            buttons.addWidget(button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.text)
        layout.addWidget(self.warning)
        layout.addLayout(buttons)
        self.hide()

    def paintEvent(self, event: QPaintEvent) -> None:
        """An orange outline: this is not a conversation yet."""
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(QPen(WARN, 1))
        painter.drawRoundedRect(QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5), 6, 6)

    def show_request(self, request: Contact, same_name_as: Contact | None) -> None:
        name = safe_text(request.display_name)
        self.text.setText(
            f"{name} is not in your contacts and wants to talk to you. They will not know "
            "you have read their messages unless you accept."
        )
        self.accept_as_key.setVisible(same_name_as is not None)
        self.warning.setVisible(same_name_as is not None)
        if same_name_as is not None:
            theirs = safe_text(same_name_as.display_name)
            self.warning.setText(
                f"{same_name_warning(same_name_as)}. Accept it as {theirs}'s new key only "
                f"if {theirs} told you, in person or on a call, that their key changed."
            )
            self.accept_as_key.setText(f"Accept as {theirs.replace('&', '&&')}'s new &key")
            self.accept_as_key.setAccessibleName(f"Accept as {theirs}'s new key")
            self.accept_as_key.setToolTip(
                f"Replace {theirs}'s key with this one; the verified mark is cleared"
            )
        self.set_busy(False)
        self.show()

    def set_busy(self, busy: bool) -> None:
        for button in (self.accept, self.accept_as_key, self.block, self.delete):
            button.setEnabled(not busy)


class InviteBar(QFrame):
    """What the conversation panel shows above an invitation to a group: who invited us,
    who is in it, and Join or Decline."""

    join_clicked = Signal()
    decline_clicked = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.text = QLabel()
        self.text.setWordWrap(True)
        self.text.setTextFormat(Qt.TextFormat.PlainText)
        self.text.setAccessibleName("Group invitation")
        self.join = QPushButton("&Join")
        self.join.setAccessibleName("Join the group")
        self.join.setToolTip("Become a member: read and write to the group")
        self.decline = QPushButton("&Decline")
        self.decline.setAccessibleName("Decline the invitation")
        self.decline.setToolTip("Delete the invitation; nobody is told")
        self.join.clicked.connect(self.join_clicked)
        self.decline.clicked.connect(self.decline_clicked)
        buttons = QHBoxLayout()
        buttons.addWidget(self.join)
        buttons.addWidget(self.decline)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.text)
        layout.addLayout(buttons)
        self.hide()

    def paintEvent(self, event: QPaintEvent) -> None:
        """An outline in the accent colour: not a conversation of ours yet."""
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(QPen(self.palette().color(QPalette.ColorRole.Highlight), 1))
        painter.drawRoundedRect(QRectF(self.rect()).adjusted(0.5, 0.5, -0.5, -0.5), 6, 6)

    def show_invite(self, group: Group) -> None:
        name = safe_text(group.name)
        who = safe_text(group.invited_by) or "An admin"
        members = ", ".join(safe_text(m.name) for m in group.members if not m.is_me)
        self.text.setText(
            f"{who} invited you to the group {name}, with {members}. Join to read and write "
            "to it with them; if you decline, the invitation is deleted and nobody is told."
        )
        self.set_busy(False)
        self.show()

    def set_busy(self, busy: bool) -> None:
        for button in (self.join, self.decline):
            button.setEnabled(not busy)
