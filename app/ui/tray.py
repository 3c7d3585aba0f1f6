"""The system tray: an icon with the unread count, notifications, show/hide and quit.

Where the desktop has no tray (or no notification service) everything here still runs and
keeps its state, so the window never depends on it; `available` says which case this is.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import QMenu, QSystemTrayIcon, QWidget

from app.ui.icons import app_icon
from app.ui.text import preview, safe_text

NO_TAGS = str.maketrans("<>", "‹›")


class Tray(QObject):
    show_requested = Signal()
    quit_requested = Signal()
    notification_clicked = Signal(int)  # contact id of the last notification

    def __init__(self, parent: QWidget) -> None:
        super().__init__(parent)
        self.icon = QSystemTrayIcon(app_icon(), self)
        self.unread = 0
        self.last_notification: tuple[str, str] | None = None
        self._last_contact: int | None = None
        self.menu = QMenu(parent)
        self.show_action = QAction("&Show AnonChat", self)
        self.show_action.triggered.connect(self.show_requested)
        self.quit_action = QAction("&Quit", self)
        self.quit_action.triggered.connect(self.quit_requested)
        self.menu.addAction(self.show_action)
        self.menu.addSeparator()
        self.menu.addAction(self.quit_action)
        self.icon.setContextMenu(self.menu)
        self.icon.activated.connect(self._activated)
        self.icon.messageClicked.connect(self._clicked)
        self.set_unread(0)
        if self.available:
            self.icon.show()

    @property
    def available(self) -> bool:
        return QSystemTrayIcon.isSystemTrayAvailable()

    def set_unread(self, count: int) -> None:
        if count == self.unread and not self.icon.icon().isNull():
            return
        self.unread = count
        self.icon.setIcon(app_icon(count))
        self.icon.setToolTip(f"AnonChat · {count} unread" if count else "AnonChat")

    def notify(
        self, contact_id: int, name: str, body: str, with_text: bool, request: bool = False
    ) -> None:
        """A new-message notification; without `with_text` only the sender is named. The
        name and body are a peer's: both are made safe to show, and since notification
        servers may read tags in them (links, images), angle brackets become look-alikes."""
        title = f"{'Message request' if request else 'Message'} from {safe_text(name)}"
        text = preview(body, 120) if with_text else "New message"
        title, text = (t.translate(NO_TAGS) for t in (title, text))
        self.last_notification = (title, text)
        self._last_contact = contact_id
        if self.available and QSystemTrayIcon.supportsMessages():
            self.icon.showMessage(title, text, app_icon(), 8000)

    def _activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason in (
            QSystemTrayIcon.ActivationReason.Trigger,
            QSystemTrayIcon.ActivationReason.DoubleClick,
        ):
            self.show_requested.emit()

    def _clicked(self) -> None:
        self.show_requested.emit()
        if self._last_contact is not None:
            self.notification_clicked.emit(self._last_contact)

    def hide(self) -> None:
        self.icon.hide()
