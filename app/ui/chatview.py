"""The message list of a conversation, and the composer under it.

The list keeps the reader's place when older pages load, follows new messages at the bottom,
and acts on the current message from the keyboard.
"""

from __future__ import annotations

from PySide6.QtCore import QMimeData, QModelIndex, QPoint, Qt, QTimer, Signal
from PySide6.QtGui import QGuiApplication, QKeyEvent, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QLabel,
    QListView,
    QMenu,
    QPlainTextEdit,
    QWidget,
)

from app.domain.messages import (
    DELETE_FOR_EVERYONE_MS,
    MAX_MESSAGE_CHARS,
    Direction,
    Message,
    Status,
)
from app.ui.attachments import from_mime, holds_attachment
from app.ui.file_bubble import CANCEL, DOWNLOAD, OPEN, RETRY, SAVE, actions_for, enter_action
from app.ui.models import (
    ConversationModel,
    ExpandedRole,
    FileRole,
    GroupRole,
    TopPagingProxy,
    is_long,
    local_now_ms,
)
from app.ui.theme import ERROR_COLOR

COUNT_FROM = MAX_MESSAGE_CHARS * 9 // 10  # the counter shows from this many characters on
NOT_FILES = "Only files can be sent (not folders)."
FILE_ACTIONS = {
    OPEN: "&Open",
    SAVE: "&Save as…",
    DOWNLOAD: "Do&wnload",
    CANCEL: "Cancel &transfer",
    RETRY: "Re&try transfer",
}


def too_long(pasted: int, total: int) -> str:
    """Why a paste was refused: it alone, or with what is written, is more than a message
    holds."""
    if pasted > MAX_MESSAGE_CHARS:
        return f"That text is {pasted:,} characters; a message holds at most {MAX_MESSAGE_CHARS:,}."
    return (
        f"With that text the message would be {total:,} characters; a message holds at most "
        f"{MAX_MESSAGE_CHARS:,}."
    )


class Composer(QPlainTextEdit):
    """Enter sends, Shift+Enter starts a new line, Escape leaves a reply or an edit. A paste
    or drop that would make the message longer than one may be is refused whole (`refused`
    says why); near the limit `counter` shows how long the message is, in the error colour
    once past it. Files or a picture pasted or dropped are not written in: `attached` hands
    them over to be sent."""

    submitted = Signal()
    refused = Signal(str)
    escaped = Signal()  # Escape: leave a reply or an edit
    attached = Signal(list)  # list[Outgoing]: files or a picture pasted or dropped

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.counter = QLabel()
        self.counter.setAccessibleName("Message length")
        self.counter.hide()
        self.textChanged.connect(self._count)

    def _count(self) -> None:
        n = len(self.toPlainText())
        self.counter.setVisible(n >= COUNT_FROM)
        if n < COUNT_FROM:
            return
        self.counter.setText(f"{n:,} / {MAX_MESSAGE_CHARS:,}")
        self.counter.setStyleSheet(f"color: {ERROR_COLOR};" if n > MAX_MESSAGE_CHARS else "")

    def canInsertFromMimeData(self, source: QMimeData) -> bool:
        return holds_attachment(source) or super().canInsertFromMimeData(source)

    def insertFromMimeData(self, source: QMimeData) -> None:
        if holds_attachment(source):
            items = from_mime(source)
            if items:
                self.attached.emit(items)
            else:
                self.refused.emit(NOT_FILES)
            return
        pasted = len(source.text()) if source.hasText() else 0
        total = len(self.toPlainText()) - len(self.textCursor().selectedText()) + pasted
        if pasted and total > MAX_MESSAGE_CHARS:
            self.refused.emit(too_long(pasted, total))
            return
        super().insertFromMimeData(source)

    def keyPressEvent(self, e: QKeyEvent) -> None:
        if e.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and not (
            e.modifiers() & Qt.KeyboardModifier.ShiftModifier
        ):
            self.submitted.emit()
            return
        if e.key() == Qt.Key.Key_Escape:
            self.escaped.emit()
            return
        super().keyPressEvent(e)


def can_retry(message: Message) -> bool:
    return message.direction is Direction.OUTGOING and message.status is Status.FAILED


def can_answer(message: Message) -> bool:
    """A message that can be replied to or reacted to: a text, not deleted, not failed."""
    return message.is_text and message.status is not Status.FAILED


def can_edit(message: Message) -> bool:
    """Ours, a text (a file's caption is sent with it, once)."""
    return message.direction is Direction.OUTGOING and can_answer(message) and not message.file


def can_delete_for_everyone(message: Message, now_ms: int) -> bool:
    """Ours (a text or a file), within the time a deletion for everyone is allowed."""
    return (
        message.direction is Direction.OUTGOING
        and can_answer(message)
        and now_ms - message.sent_at <= DELETE_FOR_EVERYONE_MS
    )


class ChatView(QListView):
    """Keeps the reader's place when older pages load, and follows new messages at the bottom.

    Arrow keys move between messages; the context menu (right click, the Menu key or
    Shift+F10) acts on the current one: reply, react, edit, copy, delete (for me, or ours for
    everyone), or send a failed one again (also Ctrl+R); Enter or Space shows a long one whole
    (or its start again). A file's own actions (open, save as, download, cancel, retry) are
    in the same menu; Enter opens a file that is here, or downloads one that is not, and
    Ctrl+R retries a transfer that failed or was cancelled. In a group (`group`) the menu
    offers reply, copy and delete for me only: a group takes no reactions or edits yet.
    """

    file_requested = Signal(int, str)  # a file row, and what to do (file_bubble.OPEN, ...)

    retry_requested = Signal(int)  # message row
    reply_requested = Signal(int)  # message row
    edit_requested = Signal(int)  # message row
    react_requested = Signal(int, QPoint)  # message row, where to show the picker (global)
    delete_requested = Signal(int, bool)  # message row, for everyone

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setResizeMode(QListView.ResizeMode.Adjust)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setWordWrap(True)
        self.setAccessibleName("Messages")
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.customContextMenuRequested.connect(self._menu_at)
        self.menu: QMenu | None = None
        self._source: ConversationModel | None = None
        self._from_bottom: int | None = None
        self._stick = True
        self.paging = False  # older pages load on reaching the top once the first is shown
        self.writable = True  # replies, reactions, edits: only to a contact we can write to
        self.group = False  # a group takes replies; no reactions, edits or deletion for all
        bar = self.verticalScrollBar()
        bar.valueChanged.connect(self._scrolled)
        bar.rangeChanged.connect(self._range_changed)

    def current_message(self) -> Message | None:
        index = self.currentIndex()
        if not index.isValid() or self._source is None:
            return None
        return self._source.message(index.row())

    def keyPressEvent(self, e: QKeyEvent) -> None:
        if e.matches(QKeySequence.StandardKey.Copy):
            self.copy_current()
            return
        if e.key() == Qt.Key.Key_R and e.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.retry_current()
            return
        if e.key() == Qt.Key.Key_F10 and e.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            self._menu_at(self.visualRect(self.currentIndex()).center())
            return
        if e.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.file_current():
            return
        if e.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter, Qt.Key.Key_Space) and (
            self.toggle_current()
        ):
            return
        super().keyPressEvent(e)

    def toggle_current(self) -> bool:
        """Show the current message whole, or cut short again; False if it is not long."""
        message = self.current_message()
        if message is None or not is_long(message):
            return False
        index = self.currentIndex()
        self.model().setData(index, not index.data(ExpandedRole), ExpandedRole)
        return True

    def file_current(self) -> bool:
        """Open the current message's file, or download it; False if there is nothing to."""
        message = self.current_message()
        if message is None or message.file is None or message.deleted:
            return False
        action = enter_action(message.file)
        if action is None:
            return False
        self.file_requested.emit(message.file.id, action)
        return True

    def copy_current(self) -> None:
        message = self.current_message()
        if message is not None and message.is_text and message.body:
            QGuiApplication.clipboard().setText(message.body)

    def retry_current(self) -> bool:
        message = self.current_message()
        if message is None:
            return False
        if can_retry(message):
            self.retry_requested.emit(message.id)
            return True
        if message.file is not None and RETRY in actions_for(message.file):
            self.file_requested.emit(message.file.id, RETRY)
            return True
        return False

    def _menu_at(self, pos: QPoint) -> None:
        index = self.indexAt(pos) if pos != QPoint() else self.currentIndex()
        if not index.isValid():
            index = self.currentIndex()
        if not index.isValid():
            return
        self.setCurrentIndex(index)
        message = self.current_message()
        if message is None:
            return
        menu = QMenu(self)
        menu.setAccessibleName("Message actions")
        at = self.viewport().mapToGlobal(pos)
        row = message.id
        if can_retry(message):
            retry = menu.addAction("Send &again")
            retry.setShortcut(QKeySequence("Ctrl+R"))
            retry.triggered.connect(self.retry_current)
        if message.file is not None and not message.deleted:
            file_row = message.file.id
            for what in actions_for(message.file):
                act = menu.addAction(FILE_ACTIONS[what])
                if what == RETRY:
                    act.setShortcut(QKeySequence("Ctrl+R"))
                act.triggered.connect(
                    lambda _=False, what=what: self.file_requested.emit(file_row, what)
                )
            menu.addSeparator()
        if self.writable and can_answer(message):
            menu.addAction("&Reply").triggered.connect(lambda: self.reply_requested.emit(row))
        if self.writable and can_answer(message) and not self.group:
            react = menu.addAction("Re&act…")
            react.triggered.connect(lambda: self.react_requested.emit(row, at))
        if self.writable and can_edit(message) and not self.group:
            menu.addAction("&Edit").triggered.connect(lambda: self.edit_requested.emit(row))
        if message.is_text and message.body:
            copy = menu.addAction("&Copy text")
            copy.setShortcut(QKeySequence.StandardKey.Copy)
            copy.triggered.connect(self.copy_current)
        menu.addSeparator()
        mine = menu.addAction("&Delete for me…")
        mine.triggered.connect(lambda: self.delete_requested.emit(row, False))
        if self.writable and not self.group and can_delete_for_everyone(message, local_now_ms()):
            everyone = menu.addAction("Delete for &everyone…")
            everyone.triggered.connect(lambda: self.delete_requested.emit(row, True))
        self.menu = menu
        menu.popup(at)

    def clear(self) -> None:
        self._source = None
        self.setModel(None)

    def show_conversation(self, model: ConversationModel) -> None:
        self._source = model
        proxy = TopPagingProxy(self)
        proxy.setSourceModel(model)
        self.setModel(proxy)
        self._stick = True
        model.rowsAboutToBeInserted.connect(self._before_insert)
        model.dataChanged.connect(self._changed)

    def _changed(self, first: QModelIndex, last: QModelIndex, roles: list[int]) -> None:
        if ExpandedRole in roles or FileRole in roles or GroupRole in roles:  # height changed
            self.scheduleDelayedItemsLayout()

    def at_bottom(self) -> bool:
        return self._stick

    def reveal(self, row: int) -> None:
        """Scroll a row to the middle, now and once more after pending layouts settle."""
        self._stick = False
        self._from_bottom = None

        def centre() -> None:
            model = self.model()
            if model is not None and 0 <= row < model.rowCount():
                self.scrollTo(model.index(row, 0), QAbstractItemView.ScrollHint.PositionAtCenter)

        centre()
        QTimer.singleShot(0, centre)

    def _before_insert(self, parent: QModelIndex, first: int, last: int) -> None:
        bar = self.verticalScrollBar()
        self._stick = bar.value() >= bar.maximum() - 4
        if first == 0 and self._source is not None and self._source.rowCount() > 0:
            self._from_bottom = bar.maximum() - bar.value()

    def _range_changed(self, low: int, high: int) -> None:
        bar = self.verticalScrollBar()
        if self._from_bottom is not None:
            bar.setValue(high - self._from_bottom)
            self._from_bottom = None
        elif self._stick:
            bar.setValue(high)

    def _scrolled(self, value: int) -> None:
        bar = self.verticalScrollBar()
        self._stick = value >= bar.maximum() - 4
        if (
            self.paging
            and value == bar.minimum()
            and self._source is not None
            and bar.maximum() > 0
        ):
            self._source.fetchMore(QModelIndex())
