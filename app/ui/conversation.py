"""One open conversation: header, key-change banner, the lazy message list and the composer."""

from __future__ import annotations

from PySide6.QtCore import QModelIndex, QPoint, Qt, QTimer, Signal
from PySide6.QtGui import QGuiApplication, QKeyEvent, QKeySequence
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QHBoxLayout,
    QLabel,
    QListView,
    QMenu,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.core.engine import Engine
from app.core.errors import UserError
from app.store.records import Contact, ContactState, Direction, Message, Status
from app.ui.aio import spawn
from app.ui.delegates import BubbleDelegate
from app.ui.models import MAX_LIVE_ROWS, ConversationModel, TopPagingProxy
from app.ui.text import sentence
from app.ui.theme import note_label

MAX_MESSAGE_CHARS = 4000
HIGHLIGHT_MS = 4000


class Composer(QPlainTextEdit):
    """Enter sends, Shift+Enter starts a new line."""

    submitted = Signal()

    def keyPressEvent(self, e: QKeyEvent) -> None:
        if e.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and not (
            e.modifiers() & Qt.KeyboardModifier.ShiftModifier
        ):
            self.submitted.emit()
            return
        super().keyPressEvent(e)


def can_retry(message: Message) -> bool:
    return message.direction is Direction.OUTGOING and message.status is Status.FAILED


class ChatView(QListView):
    """Keeps the reader's place when older pages load, and follows new messages at the bottom.

    Arrow keys move between messages; the context menu (right click, the Menu key or
    Shift+F10) and Ctrl+R act on the current one: copy it, or send a failed one again.
    """

    retry_requested = Signal(int)  # message row

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
        super().keyPressEvent(e)

    def copy_current(self) -> None:
        message = self.current_message()
        if message is not None:
            QGuiApplication.clipboard().setText(message.body)

    def retry_current(self) -> bool:
        message = self.current_message()
        if message is None or not can_retry(message):
            return False
        self.retry_requested.emit(message.id)
        return True

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
        if can_retry(message):
            retry = menu.addAction("Send &again")
            retry.setShortcut(QKeySequence("Ctrl+R"))
            retry.triggered.connect(self.retry_current)
        copy = menu.addAction("&Copy text")
        copy.setShortcut(QKeySequence.StandardKey.Copy)
        copy.triggered.connect(self.copy_current)
        self.menu = menu
        menu.popup(self.viewport().mapToGlobal(pos))

    def show_conversation(self, model: ConversationModel) -> None:
        self._source = model
        proxy = TopPagingProxy(self)
        proxy.setSourceModel(model)
        self.setModel(proxy)
        self._stick = True
        model.rowsAboutToBeInserted.connect(self._before_insert)

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


class ConversationPanel(QWidget):
    """Shows one contact's conversation; `contact` is None when nothing is open."""

    safety_requested = Signal(int)  # contact id

    def __init__(self, engine: Engine, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._engine = engine
        self.contact: Contact | None = None
        self.model: ConversationModel | None = None

        self.title = QLabel()
        self.title.setTextFormat(Qt.TextFormat.PlainText)
        font = self.title.font()
        font.setPointSizeF(font.pointSizeF() * 1.2)
        font.setBold(True)
        self.title.setFont(font)
        self.subtitle = QLabel()
        self.safety_button = QPushButton("Safety &number")
        self.safety_button.setAccessibleName("Show safety number")
        self.safety_button.setToolTip("Compare or scan to verify (Ctrl+I)")
        self.safety_button.setShortcut(QKeySequence("Ctrl+I"))
        self.safety_button.clicked.connect(self._request_safety)
        header = QHBoxLayout()
        names = QVBoxLayout()
        names.addWidget(self.title)
        names.addWidget(self.subtitle)
        header.addLayout(names, 1)
        header.addWidget(self.safety_button)

        self.banner = QFrame()
        self.banner.setObjectName("stateBanner")
        self.banner.setStyleSheet(
            "#stateBanner { background: #e67e22; border-radius: 6px; }"
            "#stateBanner QLabel { color: white; }"
        )
        self.banner_text = QLabel()
        self.banner_text.setWordWrap(True)
        banner_layout = QHBoxLayout(self.banner)
        banner_layout.addWidget(self.banner_text, 1)
        self.banner.hide()

        self.view = ChatView()
        self.view.setItemDelegate(BubbleDelegate(self.view))
        self.view.retry_requested.connect(self.retry)
        self.composer = Composer()
        self.composer.setPlaceholderText("Write a message (Enter sends, Shift+Enter: new line)")
        self.composer.setAccessibleName("Message")
        self.composer.setFixedHeight(self.composer.fontMetrics().height() * 4)
        self.composer.submitted.connect(self.send)
        self.send_button = QPushButton("Send")
        self.send_button.setAccessibleName("Send message")
        self.send_button.clicked.connect(self.send)
        self.error = note_label(error=True)
        self.title.setAccessibleName("Contact")
        self.subtitle.setAccessibleName("Contact status")
        self.banner_text.setAccessibleName("Safety number changed")
        compose = QHBoxLayout()
        compose.addWidget(self.composer, 1)
        compose.addWidget(self.send_button, alignment=Qt.AlignmentFlag.AlignBottom)

        layout = QVBoxLayout(self)
        layout.addLayout(header)
        layout.addWidget(self.banner)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.error)
        layout.addLayout(compose)

    async def open(self, contact: Contact) -> None:
        """Show `contact`'s conversation: the newest page first, older pages on scrolling up."""
        self.contact = contact
        self.model = ConversationModel(self._engine, contact.id, parent=self)
        self.view.paging = False
        self.view.show_conversation(self.model)
        self.composer.clear()
        self.error.hide()
        self.update_contact(contact)
        await self.model.load_first_page()
        self.view.scrollToBottom()
        self.view.paging = True
        await self._engine.mark_read(contact.id)

    async def jump_to(self, message_row: int) -> bool:
        """Page back to a message, scroll it to the middle and mark it for a few seconds."""
        model = self.model
        if model is None:
            return False
        row = await model.load_until(message_row)
        if row is None or model is not self.model:
            return False
        self.view.reveal(row)
        model.set_highlight(message_row)
        QTimer.singleShot(HIGHLIGHT_MS, lambda: self._unmark(model, message_row))
        return True

    def _unmark(self, model: ConversationModel, message_row: int) -> None:
        if model.highlighted == message_row:
            model.set_highlight(None)

    def update_contact(self, contact: Contact) -> None:
        if self.contact is None or contact.id != self.contact.id:
            return
        self.contact = contact
        self.title.setText(contact.display_name + ("  ✔" if contact.verified else ""))
        self.subtitle.setText("Verified" if contact.verified else "Not verified")
        ended = contact.state is not ContactState.CONTACT
        if contact.state is ContactState.REQUEST:
            self.banner_text.setText(
                f"{contact.display_name} is not in your contacts yet. Accept their request to "
                "write to them."
            )
        elif ended:
            what = "blocked" if contact.blocked else "deleted"
            self.banner_text.setText(
                f"You {what} {contact.display_name}. Add their code again to write to them."
            )
        self.banner.setVisible(ended)
        self.composer.setEnabled(not ended)
        self.send_button.setEnabled(not ended)

    def set_online(self, online: bool) -> None:
        if self.contact is None:
            return
        verified = "Verified" if self.contact.verified else "Not verified"
        self.subtitle.setText(f"{'Online' if online else 'Offline'} · {verified}")

    def add_message(self, message: Message) -> None:
        if self.model is not None:
            self.model.append(message)
            if self.model.rowCount() > MAX_LIVE_ROWS and self.view.at_bottom():
                self.model.trim_front()

    def set_status(self, contact_id: int, message_row: int, status: Status) -> None:
        if self.model is not None and self.model.contact_id == contact_id:
            self.model.set_status(message_row, status)

    def send(self) -> None:
        text = self.composer.toPlainText().strip()
        if self.contact is None or not text or not self.composer.isEnabled():
            return
        if len(text) > MAX_MESSAGE_CHARS:
            self._show_error(f"A message holds at most {MAX_MESSAGE_CHARS} characters.")
            return
        self.composer.clear()
        spawn(self._send(self.contact.id, text), "sending a message")

    async def _send(self, contact_id: int, text: str) -> None:
        try:
            message = await self._engine.send(contact_id, text)
        except UserError as exc:
            self.composer.setPlainText(text)
            self._show_error(sentence(str(exc)))
            return
        self.error.hide()
        self.add_message(message)

    def retry(self, message_row: int) -> None:
        spawn(self._retry(message_row), "sending a message again")

    async def _retry(self, message_row: int) -> None:
        try:
            message = await self._engine.retry(message_row)
        except UserError as exc:
            self._show_error(sentence(str(exc)))
            return
        self.error.hide()
        self.set_status(message.contact_id, message.id, message.status)

    def _request_safety(self) -> None:
        if self.contact is not None:
            self.safety_requested.emit(self.contact.id)

    def _show_error(self, text: str) -> None:
        self.error.setText(text)
        self.error.show()
