"""The main window: contacts on the left, the open conversation on the right, status below."""

from __future__ import annotations

import shiboken6
from PySide6.QtCore import QEvent, QItemSelection, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QLabel,
    QListView,
    QMainWindow,
    QSplitter,
    QStackedWidget,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from app.core.engine import Engine
from app.core.events import ConnectionChanged, ConnectionState
from app.store.records import Contact, Direction, Message, SearchHit, Status
from app.ui.a11y import name_controls
from app.ui.aio import spawn
from app.ui.bridge import EngineBridge
from app.ui.conversation import ConversationPanel
from app.ui.delegates import ContactDelegate
from app.ui.dialogs import AddContactDialog, MyCodeDialog, SafetyDialog
from app.ui.models import ContactListModel
from app.ui.prefs import Prefs, load_prefs
from app.ui.search import SearchPanel
from app.ui.settings import SettingsDialog
from app.ui.theme import apply_theme
from app.ui.tray import Tray

MARK_READ_DELAY_MS = 300


class MainWindow(QMainWindow):
    closed = Signal()

    def __init__(
        self, engine: Engine, embedded_relay: str | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.engine = engine
        self.embedded_relay = embedded_relay
        self.bridge = EngineBridge(engine, self)
        self.setWindowTitle(f"AnonChat — {engine.name}")
        self.resize(980, 680)

        toolbar = QToolBar("Main")
        toolbar.setMovable(False)
        self.addToolBar(toolbar)
        self.my_code_action = QAction("My code", self)
        self.my_code_action.setShortcut(QKeySequence("Ctrl+M"))
        self.my_code_action.triggered.connect(self.show_my_code)
        self.add_action = QAction("Scan a code", self)
        self.add_action.setShortcut(QKeySequence("Ctrl+N"))
        self.add_action.triggered.connect(self.show_add_contact)
        self.settings_action = QAction("Settings", self)
        self.settings_action.setShortcuts(
            [QKeySequence("Ctrl+,"), QKeySequence(QKeySequence.StandardKey.Preferences)]
        )
        self.settings_action.triggered.connect(self.show_settings)
        self.quit_action = QAction("Quit", self)
        self.quit_action.setShortcut(QKeySequence("Ctrl+Q"))
        self.quit_action.triggered.connect(self.close)
        toolbar.addAction(self.my_code_action)
        toolbar.addAction(self.add_action)
        toolbar.addAction(self.settings_action)
        self.addAction(self.quit_action)
        self.contacts_focus = QAction("Contacts", self)
        self.contacts_focus.setShortcut(QKeySequence("Ctrl+1"))
        self.contacts_focus.triggered.connect(self.focus_contacts)
        self.addAction(self.contacts_focus)
        for action in toolbar.actions():
            button = toolbar.widgetForAction(action)
            if button is not None:
                button.setAccessibleName(action.text())
                button.setToolTip(f"{action.text()} ({action.shortcut().toString()})")

        self.contacts = ContactListModel(self)
        self.contact_list = QListView()
        self.contact_list.setModel(self.contacts)
        self.contact_list.setItemDelegate(ContactDelegate(self.contact_list))
        self.contact_list.setAccessibleName("Contacts")
        self.contact_list.setMinimumWidth(240)
        self.contact_list.selectionModel().selectionChanged.connect(self._selected)

        self.panel = ConversationPanel(engine)
        self.panel.safety_requested.connect(self.show_safety)
        self.empty = QLabel(
            "No conversation open.\n\nShare “My code” with a friend, or add theirs with "
            "“Scan a code”. Once they come online you can write to each other."
        )
        self.empty.setWordWrap(True)
        self.empty.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.right = QStackedWidget()
        self.right.addWidget(self.empty)
        self.right.addWidget(self.panel)

        self.search = SearchPanel(engine, self)
        self.search.chosen.connect(lambda hit: spawn(self.show_hit(hit), "showing a search hit"))
        self.search.active_changed.connect(self._search_active)
        self.left_stack = QStackedWidget()
        self.left_stack.addWidget(self.contact_list)
        self.left_stack.addWidget(self.search.results)
        self.find_action = QAction("Search", self)
        self.find_action.setShortcut(QKeySequence.StandardKey.Find)
        self.find_action.triggered.connect(self.focus_search)
        self.addAction(self.find_action)

        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(self.search.box)
        left_layout.addWidget(self.left_stack)
        splitter = QSplitter()
        splitter.addWidget(left)
        splitter.addWidget(self.right)
        splitter.setStretchFactor(1, 1)
        self.setCentralWidget(splitter)

        self.connection = QLabel("Connecting…")
        self.connection.setAccessibleName("Connection status")
        self.statusBar().addPermanentWidget(self.connection)
        self._conn: ConnectionChanged | None = None
        self._retry_at = 0.0
        self._tick = QTimer(self)
        self._tick.setInterval(1000)
        self._tick.timeout.connect(self._show_connection)

        self._refresh_pending = False
        self.detached = False
        self._to_mark: set[int] = set()
        self._mark_timer = QTimer(self)
        self._mark_timer.setSingleShot(True)
        self._mark_timer.setInterval(MARK_READ_DELAY_MS)
        self._mark_timer.timeout.connect(self._mark_pending)
        self._dialogs: list[QWidget] = []
        self.prefs = Prefs()
        self.remembered = False  # the key is in the OS keyring (set by the launcher)
        self.tray = Tray(self)
        self.tray.show_requested.connect(self.bring_back)
        self.tray.quit_requested.connect(self.close)
        self.tray.notification_clicked.connect(self._open_by_id)
        b = self.bridge
        b.connection_changed.connect(self._on_connection)
        b.contacts_dirty.connect(self.refresh_contacts)
        b.contact_changed.connect(self._on_contact)
        b.presence_changed.connect(self._on_presence)
        b.message_added.connect(self._on_message)
        b.message_status_changed.connect(
            lambda cid, row, status: self.panel.set_status(cid, row, Status(status))
        )
        b.frame_rejected.connect(
            lambda reason: self.statusBar().showMessage(f"Dropped a message: {reason}", 8000)
        )

        self.empty.setAccessibleName("No conversation open")
        name_controls(self)

    async def load(self) -> None:
        """Fill the contact list and apply the profile's preferences; call before showing."""
        self.prefs = await load_prefs(self.engine)
        self._apply_theme()
        rows = await self.engine.summaries()
        self.contacts.set_summaries(rows)
        self.tray.set_unread(sum(s.unread for s in rows))
        self._show_connection()

    def _apply_theme(self) -> None:
        app = QApplication.instance()
        if isinstance(app, QApplication):
            apply_theme(app, self.prefs.theme)

    # -- contacts ------------------------------------------------------------------------

    def refresh_contacts(self) -> None:
        """Coalesce bursts of events into one reload of the list."""
        if not self._refresh_pending:
            self._refresh_pending = True
            QTimer.singleShot(50, lambda: spawn(self._refresh(), "refreshing contacts"))

    async def _refresh(self) -> None:
        self._refresh_pending = False
        if self.detached:
            return
        rows = await self.engine.summaries()
        current = self.panel.contact.id if self.panel.contact else None
        blocker = self.contact_list.selectionModel().blockSignals(True)
        self.contacts.set_summaries(rows)
        self.tray.set_unread(sum(s.unread for s in rows))
        if current is not None:
            row = self.contacts.row_of(current)
            if row is not None:
                self.contact_list.setCurrentIndex(self.contacts.index(row))
        self.contact_list.selectionModel().blockSignals(blocker)

    def _selected(self, selected: QItemSelection, _deselected: QItemSelection) -> None:
        indexes = selected.indexes()
        if indexes:
            self.open_contact(self.contacts.summary(indexes[0].row()).contact)

    def open_contact(self, contact: Contact) -> None:
        if self.panel.contact is not None and self.panel.contact.id == contact.id:
            return
        self.right.setCurrentWidget(self.panel)
        row = self.contacts.row_of(contact.id)
        if row is not None:
            selection = self.contact_list.selectionModel()
            blocker = selection.blockSignals(True)  # or the selection opens it a second time
            self.contact_list.setCurrentIndex(self.contacts.index(row))
            selection.blockSignals(blocker)
            self.contact_list.viewport().update()
            self.panel.set_online(self.contacts.summary(row).online)
        spawn(self._open(contact), "opening a conversation")

    async def _open(self, contact: Contact) -> None:
        await self.panel.open(contact)
        self.panel.composer.setFocus()
        self.refresh_contacts()

    def _on_contact(self, contact: Contact) -> None:
        self.panel.update_contact(contact)

    def _on_presence(self, contact_id: int, online: bool) -> None:
        if self.panel.contact is not None and self.panel.contact.id == contact_id:
            self.panel.set_online(online)

    def _on_message(self, message: Message) -> None:
        showing = (
            self.panel.contact is not None
            and self.panel.contact.id == message.contact_id
            and self.right.currentWidget() is self.panel
        )
        if message.direction is Direction.INCOMING:
            seen = showing and self.isVisible() and not self.isMinimized() and self.isActiveWindow()
            if not seen and self.prefs.notifications:
                row = self.contacts.row_of(message.contact_id)
                name = self.contacts.summary(row).contact.display_name if row is not None else ""
                self.tray.notify(
                    message.contact_id, name or "a contact", message.body, self.prefs.previews
                )
        if not showing or self.panel.contact is None:
            return
        self.panel.add_message(message)
        if message.direction is Direction.INCOMING and self.isVisible():
            self._mark_read_soon(message.contact_id)

    def _mark_read_soon(self, contact_id: int) -> None:
        """One read mark (and one receipt) for a burst of arrivals, not one per message."""
        self._to_mark.add(contact_id)
        if not self._mark_timer.isActive():
            self._mark_timer.start()

    def _mark_pending(self) -> None:
        ids, self._to_mark = self._to_mark, set()
        if self.detached:
            return
        for contact_id in ids:
            spawn(self.engine.mark_read(contact_id), "marking read")

    def _open_by_id(self, contact_id: int) -> None:
        row = self.contacts.row_of(contact_id)
        if row is not None:
            self.open_contact(self.contacts.summary(row).contact)

    # -- tray ----------------------------------------------------------------------------

    def bring_back(self) -> None:
        self.showNormal()
        self.raise_()
        self.activateWindow()

    def changeEvent(self, event: QEvent) -> None:
        """Minimised with a tray present, the window leaves the taskbar for the tray."""
        super().changeEvent(event)
        if (
            event.type() == QEvent.Type.WindowStateChange
            and self.isMinimized()
            and self.tray.available
        ):
            QTimer.singleShot(0, self.hide)

    # -- search ------------------------------------------------------------------------

    def focus_contacts(self) -> None:
        self.search.box.clear()
        self.contact_list.setFocus()
        if not self.contact_list.currentIndex().isValid() and self.contacts.rowCount():
            self.contact_list.setCurrentIndex(self.contacts.index(0))

    def focus_search(self) -> None:
        self.search.box.setFocus()
        self.search.box.selectAll()

    def _search_active(self, active: bool) -> None:
        self.left_stack.setCurrentWidget(self.search.results if active else self.contact_list)

    async def show_hit(self, hit: SearchHit) -> bool:
        """Open the hit's conversation and bring its message into view, marked."""
        message = hit.message
        if self.panel.contact is None or self.panel.contact.id != message.contact_id:
            contact = await self.engine.contact(message.contact_id)
            self.right.setCurrentWidget(self.panel)
            row = self.contacts.row_of(contact.id)
            if row is not None:
                blocker = self.contact_list.selectionModel().blockSignals(True)
                self.contact_list.setCurrentIndex(self.contacts.index(row))
                self.contact_list.selectionModel().blockSignals(blocker)
                self.panel.set_online(self.contacts.summary(row).online)
            await self.panel.open(contact)
            self.refresh_contacts()
        found = await self.panel.jump_to(message.id)
        if not found:
            self.statusBar().showMessage("That message is no longer in the conversation.", 6000)
        return found

    # -- dialogs -------------------------------------------------------------------------

    def _keep(self, dialog: QWidget) -> None:
        name_controls(dialog)
        self._dialogs = [d for d in self._dialogs if shiboken6.isValid(d) and d.isVisible()]
        self._dialogs.append(dialog)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        dialog.raise_()
        dialog.activateWindow()

    def show_my_code(self) -> MyCodeDialog:
        dialog = MyCodeDialog(self.engine, self)
        self._keep(dialog)
        return dialog

    def show_add_contact(self) -> AddContactDialog:
        dialog = AddContactDialog(self.engine, self)
        dialog.added.connect(self._added)
        self._keep(dialog)
        return dialog

    def _added(self, contact: Contact) -> None:
        spawn(self._select_new(contact), "showing a new contact")

    async def _select_new(self, contact: Contact) -> None:
        await self._refresh()
        self.open_contact(contact)

    def show_settings(self) -> SettingsDialog:
        dialog = SettingsDialog(self.engine, self.prefs, self.remembered, self)
        dialog.saved.connect(self._settings_saved)
        self._keep(dialog)
        return dialog

    def _settings_saved(self, prefs: Prefs) -> None:
        self.prefs = prefs
        self._apply_theme()
        self.setWindowTitle(f"AnonChat — {self.engine.name}")
        self._show_connection()
        self.statusBar().showMessage("Settings saved.", 4000)

    def show_safety(self, contact_id: int) -> SafetyDialog | None:
        contact = self.panel.contact
        if contact is None or contact.id != contact_id:
            return None
        dialog = SafetyDialog(self.engine, contact, self)
        dialog.verified.connect(self._on_contact)
        self._keep(dialog)
        return dialog

    # -- connection status ---------------------------------------------------------------

    def _on_connection(self, event: ConnectionChanged) -> None:
        self._conn = event
        if event.state is ConnectionState.BACKING_OFF and event.retry_in is not None:
            self._retry_at = event.retry_in
            self._tick.start()
        else:
            self._tick.stop()
        self._show_connection()

    def _show_connection(self) -> None:
        if self._conn is None:  # opened after the engine connected: ask where it stands
            states = self.engine.connection_states()
            url = self.engine.relay_url
            if url in states:
                self._conn = ConnectionChanged(url, states[url])
        event = self._conn
        where = event.url if event else self.engine.relay_url
        if self.embedded_relay is not None:
            where = f"embedded relay at {self.embedded_relay}"
        if event is None or event.state is ConnectionState.CONNECTING:
            text = f"Connecting to {where}…"
        elif event.state is ConnectionState.ONLINE:
            text = f"Online · {where}"
        elif event.state is ConnectionState.BACKING_OFF:
            seconds = max(0, round(self._retry_at))
            self._retry_at -= 1
            text = f"Relay unreachable · retrying in {seconds} s · {where}"
        else:
            text = f"Offline · {where}"
        self.connection.setText(text)

    def detach(self) -> None:
        """Stop talking to the engine (it is about to close): no more events or queries."""
        self.detached = True
        self.bridge.detach()
        self._tick.stop()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.tray.hide()
        self.detach()
        for dialog in self._dialogs:
            if shiboken6.isValid(dialog):  # a closed dialog deleted itself
                dialog.close()
        self._dialogs = []
        self.closed.emit()
        super().closeEvent(event)
