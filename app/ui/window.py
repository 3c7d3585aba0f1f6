"""The main window: message requests (and group invitations) and conversations with contacts
and groups on the left, the open conversation (or request) on the right, status below. The
toolbar's menu holds Quit and Panic wipe (Ctrl+Shift+Delete, asked once; the launcher then
wipes the profile and shows the first-start wizard)."""

from __future__ import annotations

import asyncio
import dataclasses

import shiboken6
from PySide6.QtCore import QEvent, QItemSelection, QModelIndex, QPoint, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QMessageBox,
    QPushButton,
    QSplitter,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.core.engine import Engine
from app.core.errors import UserError
from app.core.events import ContactLimited, Limit
from app.core.profile import ProfilePaths
from app.domain.contacts import Contact, ContactState
from app.domain.groups import Group, GroupState
from app.domain.messages import Direction, Message, SearchHit, Status, describe
from app.ui.a11y import name_controls
from app.ui.aio import spawn
from app.ui.bridge import EngineBridge
from app.ui.contact_delegate import ContactDelegate
from app.ui.contact_menu import ContactActions, ContactListView
from app.ui.contact_model import ContactListModel
from app.ui.conversation import ConversationPanel
from app.ui.dialogs import AddContactDialog, SafetyDialog
from app.ui.embedded_relay import ProfileRelay
from app.ui.groups import GroupDialog, NewGroupDialog
from app.ui.identicon import new_group_icon
from app.ui.my_code import MyCodeDialog
from app.ui.onboarding import UnlockLook, read_look, write_look
from app.ui.prefs import Prefs, load_prefs
from app.ui.readmarks import ReadMarks
from app.ui.request_flow import RequestFlow
from app.ui.requests import RequestsSection
from app.ui.search import SearchPanel
from app.ui.selection import mark_row, unheard
from app.ui.settings import SettingsDialog
from app.ui.shortcuts import action, toolbar, toolbar_menu
from app.ui.status import ConnectionLabel
from app.ui.text import safe_text
from app.ui.theme import apply_theme
from app.ui.tray import Tray

RELAY_NOTICE_MS = 60_000
REFRESH_MS = 50  # the events about one contact within this long cost one read of its row


class MainWindow(QMainWindow):
    closed = Signal()
    wipe_requested = Signal()  # the panic wipe, confirmed

    def __init__(
        self,
        engine: Engine,
        embedded_relay: str | None = None,
        parent: QWidget | None = None,
        *,
        own_relay: ProfileRelay | None = None,
        paths: ProfilePaths | None = None,
    ) -> None:
        """`paths`: the profile's files, where the unlock screen's look is kept up to date
        (None keeps none, as for the demo's throwaway profiles)."""
        super().__init__(parent)
        self.engine = engine
        self.paths = paths
        self.embedded_relay = embedded_relay
        self.own_relay = own_relay  # runs the profile's relay when Settings switch to one
        self.bridge = EngineBridge(engine, self)
        self.setWindowTitle(f"AnonChat — {engine.name}")
        self.resize(980, 680)

        self.my_code_action = action(self, "My code", ["Ctrl+M"], self.show_my_code)
        self.add_action = action(self, "Scan a code", ["Ctrl+N"], self.show_add_contact)
        self.new_group_action = action(self, "New group", ["Ctrl+G"], self.show_new_group)
        self.settings_action = action(
            self,
            "Settings",
            ["Ctrl+,", QKeySequence(QKeySequence.StandardKey.Preferences)],
            self.show_settings,
        )
        bar = toolbar(
            self,
            [self.my_code_action, self.add_action, self.new_group_action, self.settings_action],
        )
        self.quit_action = action(self, "Quit", ["Ctrl+Q"], self.close)
        self.wipe_action = action(self, "Panic wipe…", ["Ctrl+Shift+Del"], self.confirm_wipe)
        self.wipe_action.setEnabled(paths is not None)  # the demo's profiles are not wiped
        self.wipe_box: QMessageBox | None = None
        self.menu_button = toolbar_menu(bar, "Menu", [self.wipe_action, self.quit_action])
        self.contacts_focus = action(self, "Contacts", ["Ctrl+1"], self.focus_contacts)
        self.requests_focus = action(self, "Message requests", ["Ctrl+2"], self.focus_requests)
        self.find_action = action(
            self, "Search", [QKeySequence(QKeySequence.StandardKey.Find)], self.focus_search
        )

        self.contacts = ContactListModel(self)
        self.contact_list = ContactListView()
        self.contact_list.setModel(self.contacts)
        self.contact_list.setItemDelegate(ContactDelegate(self.contact_list))
        self.contact_list.setAccessibleName("Contacts")
        self.contact_list.setMinimumWidth(240)
        self.contact_list.setUniformItemSizes(True)  # every row is as tall: no per-row layout
        self.contact_list.selectionModel().selectionChanged.connect(self._selected)
        self.contact_actions = ContactActions(engine, self._keep, self)
        self.contact_actions.safety_requested.connect(self.show_safety)
        self.contact_actions.members_requested.connect(self.show_members)
        self.contact_actions.done.connect(self.say)
        self.contact_list.menu_requested.connect(self._contact_menu)
        self.requests = RequestsSection(engine)

        self.panel = ConversationPanel(engine)
        self.panel.safety_requested.connect(self.show_safety)
        self.panel.members_requested.connect(self.show_members)
        self.panel.said.connect(self.say)
        self.request_flow = RequestFlow(self)
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

        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        self.new_group_button = QToolButton()  # beside the list: the way Signal shows it
        self.new_group_button.setIcon(new_group_icon())
        self.new_group_button.setAutoRaise(True)
        self.new_group_button.setAccessibleName("New group")
        self.new_group_button.setToolTip("New group (Ctrl+G)")
        self.new_group_button.clicked.connect(self.new_group_action.trigger)
        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(self.search.box, 1)
        top.addWidget(self.new_group_button)
        left_layout.addLayout(top)
        left_layout.addWidget(self.requests)
        left_layout.addWidget(self.left_stack, 1)
        splitter = QSplitter()
        splitter.addWidget(left)
        splitter.addWidget(self.right)
        splitter.setStretchFactor(1, 1)
        self.setCentralWidget(splitter)

        self.connection = ConnectionLabel(engine, embedded_relay)
        self.statusBar().addPermanentWidget(self.connection)

        self._dirty: set[int] = set()  # contacts whose rows are to be read again
        self._refresh_pending = False
        self._list_lock = asyncio.Lock()  # one read-and-update of the list at a time
        self.detached = False
        self.read_marks = ReadMarks(engine, parent=self)
        self._dialogs: list[QWidget] = []
        self.groups: dict[int, Group] = {}  # the groups we are, were or are invited in, by row
        self.prefs = Prefs()
        self.remembered = False  # the key is in the OS keyring (set by the launcher)
        self.tray = Tray(self)
        self.tray.show_requested.connect(self.bring_back)
        self.tray.quit_requested.connect(self.close)
        self.tray.notification_clicked.connect(self._open_by_id)
        b = self.bridge
        b.connection_changed.connect(self.connection.on_event)
        b.contact_dirty.connect(self.refresh_contact)
        b.contact_dirty.connect(lambda _: self.requests.refresh())  # a namesake may have changed
        b.requests_dirty.connect(self.requests.refresh)
        b.request_added.connect(self.request_flow.on_added)
        b.request_removed.connect(self.request_flow.on_removed)
        b.contact_removed.connect(self._on_contact_removed)
        b.contact_changed.connect(self._on_contact)
        b.presence_changed.connect(self._on_presence)
        b.message_added.connect(self._on_message)
        b.message_status_changed.connect(
            lambda cid, row, status: self.panel.set_status(cid, row, Status(status))
        )
        b.message_changed.connect(self.panel.change_message)
        b.messages_removed.connect(self.panel.remove_messages)
        b.file_changed.connect(self.panel.change_file)
        b.frame_rejected.connect(lambda why: self.say(f"Dropped a message: {safe_text(why)}"))
        b.contact_limited.connect(self._on_limited)
        b.group_changed.connect(self._on_group)

        self.empty.setAccessibleName("No conversation open")
        name_controls(self)

    async def load(self) -> None:
        """Fill the contact list and apply the profile's preferences; call before showing."""
        self.prefs = await load_prefs(self.engine)
        self._apply_theme()
        if self.paths is not None:  # the theme, and the name if shown, as they are now
            shown = read_look(self.paths.directory).name is not None
            name = self.engine.name if shown else None
            write_look(self.paths.directory, UnlockLook(self.prefs.theme, name))
        for group in await self.engine.groups():
            self.groups.setdefault(group.id, group)
        await self.reload_contacts()
        await self.requests.reload()
        self.connection.refresh()

    def _apply_theme(self) -> None:
        app = QApplication.instance()
        if isinstance(app, QApplication):
            apply_theme(app, self.prefs.theme)

    # -- contacts ------------------------------------------------------------------------

    def refresh_contact(self, contact_id: int) -> None:
        """Read this contact's row again soon: a burst of events costs one read per contact."""
        self._dirty.add(contact_id)
        if not self._refresh_pending:
            self._refresh_pending = True
            QTimer.singleShot(  # with self as context: never after the window is gone
                REFRESH_MS, self, lambda: spawn(self._refresh_dirty(), "refreshing contacts")
            )

    async def _refresh_dirty(self) -> None:
        self._refresh_pending = False
        ids, self._dirty = self._dirty, set()
        for contact_id in sorted(ids):
            await self.reload_contact(contact_id)

    async def reload_contact(self, contact_id: int) -> None:
        """Read one contact's row now and put it in its place, or take it out when the
        contact is no longer on the list."""
        async with self._list_lock:
            if self.detached:
                return
            summary = await self.engine.summary(contact_id)
            if summary is not None and summary.unread and self.reading(contact_id):
                # Open before the user's eyes: read as it arrives, the badge never grows.
                self.read_marks.soon(contact_id)
                summary = dataclasses.replace(summary, unread=0)
            with unheard(self.contact_list):
                if summary is None:
                    self.contacts.remove(contact_id)
                else:
                    self.contacts.put(summary)
            self._list_changed()

    async def reload_contacts(self) -> None:
        """Read the whole list again (at startup; events change single rows)."""
        async with self._list_lock:
            if self.detached:
                return
            rows = await self.engine.summaries()
            with unheard(self.contact_list):
                self.contacts.set_summaries(rows)
            self._list_changed()

    def _list_changed(self) -> None:
        self.tray.set_unread(self.contacts.unread)
        shown = self.panel.contact
        self.select_contact(shown.id if shown is not None and self.showing(shown.id) else None)

    def _selected(self, selected: QItemSelection, _deselected: QItemSelection) -> None:
        indexes = selected.indexes()
        if indexes:
            self.open_contact(self.contacts.summary(indexes[0].row()).contact)

    def showing(self, contact_id: int, state: ContactState | None = None) -> bool:
        shown = self.panel.contact
        return (
            shown is not None
            and shown.id == contact_id
            and (state is None or shown.state is state)
            and self.right.currentWidget() is self.panel
        )

    def select_contact(self, contact_id: int | None) -> None:
        """Mark the open contact's row (None: no row) without opening it a second time."""
        row = None if contact_id is None else self.contacts.row_of(contact_id)
        mark_row(self.contact_list, row)
        if row is not None:
            self.panel.set_online(self.contacts.summary(row).online)

    def open_contact(self, contact: Contact) -> None:
        if self.showing(contact.id, contact.state):
            return
        self.right.setCurrentWidget(self.panel)
        self.requests.select(None)
        self.select_contact(contact.id)
        spawn(self._open(contact), "opening a conversation")

    async def _open(self, contact: Contact) -> None:
        await self.panel.open(contact)
        self.panel.composer.setFocus()
        self.refresh_contact(contact.id)  # read now: no unread any more

    def _on_contact(self, contact: Contact) -> None:
        self.panel.update_contact(contact)
        if contact.state is ContactState.REQUEST:
            self.requests.refresh()

    def _on_contact_removed(self, contact_id: int) -> None:
        self.groups.pop(contact_id, None)
        if self.showing(contact_id):
            self.show_empty()

    def _contact_menu(self, index: QModelIndex, at: QPoint) -> None:
        contact = self.contacts.summary(index.row()).contact
        self.contact_actions.show_menu(contact, at, self.groups.get(contact.id))

    def _on_group(self, group: Group) -> None:
        """A group is new or changed: the open conversation, its members dialog, and the
        invitations among the requests follow; being removed is said."""
        before = self.groups.get(group.id)
        self.groups[group.id] = group
        self.panel.update_group(group)
        for dialog in self._dialogs:
            if isinstance(dialog, GroupDialog) and shiboken6.isValid(dialog):
                dialog.set_group(group)
        invited = self.requests.invite_of(group.id) is not None
        if group.state is GroupState.INVITED or invited:
            self.requests.refresh(force=True)
        if group.state is GroupState.INVITED and before is None and self.prefs.notifications:
            who = group.invited_by or "An admin"
            text = f"{who} invited you to the group {group.name}"
            self.tray.notify(group.id, who, text, self.prefs.previews, request=True)
        if group.state is GroupState.REMOVED and (
            before is None or before.state is not group.state
        ):
            self.say(f"You were removed from {safe_text(group.name)}.", 15_000)

    def show_empty(self) -> None:
        """Nothing open: the right side explains what to do."""
        self.panel.close_conversation()
        self.right.setCurrentWidget(self.empty)
        self.select_contact(None)
        self.requests.select(None)

    def show_panel(self) -> None:
        self.right.setCurrentWidget(self.panel)

    def say(self, text: str, ms: int = 8000) -> None:
        """A line in the status bar."""
        self.statusBar().showMessage(text, ms)

    def say_relay_notice(self, text: str) -> None:
        """Where the profile's own relay had to go, and why: said for longer."""
        self.say(text, RELAY_NOTICE_MS)

    def _on_presence(self, contact_id: int, online: bool) -> None:
        if self.showing(contact_id):
            self.panel.set_online(online)

    def looked_at(self) -> bool:
        """The window is where the user looks: shown, not minimised, the active one."""
        return self.isVisible() and not self.isMinimized() and self.isActiveWindow()

    def reading(self, contact_id: int) -> bool:
        """This contact's conversation is open before the user's eyes, so what arrives in it
        is read (a request's messages never are: they stay unread until it is accepted)."""
        return (
            self.showing(contact_id, ContactState.CONTACT)
            and not self.panel.invited()
            and self.looked_at()
        )

    def _on_message(self, message: Message) -> None:
        showing = self.showing(message.contact_id)
        incoming = message.direction is Direction.INCOMING
        if incoming:
            seen = showing and self.looked_at()
            muted = self.engine.is_muted(message.contact_id)
            if not seen and self.prefs.notifications and not muted:
                self._notify(message)
        if not showing or self.panel.contact is None:
            return
        self.panel.add_message(message)
        if incoming and self.reading(message.contact_id):
            self.read_marks.soon(message.contact_id)

    def _came_back(self) -> None:
        """The window is active again: what arrived in the open conversation meanwhile is
        read now."""
        contact = self.panel.contact
        if contact is None or not self.reading(contact.id):
            return
        row = self.contacts.row_of(contact.id)
        if row is not None and self.contacts.summary(row).unread:
            self.refresh_contact(contact.id)

    def _on_limited(self, event: ContactLimited) -> None:
        """A contact's messages are being left out for now: say who and why, once."""
        row = self.contacts.row_of(event.contact_id)
        name = self.contacts.summary(row).contact.display_name if row is not None else ""
        who = safe_text(name) or "A contact"
        if event.limit is Limit.QUOTA:
            text = (
                f"{who}'s messages fill the {event.quota_bytes // 1_000_000} MB kept per "
                "contact: new ones wait on their side until there is room."
            )
        else:
            text = (
                f"{who} is sending faster than AnonChat takes in: their messages arrive "
                "slowly. You can mute them from the contact menu."
            )
        self.say(text, 15_000)

    def _notify(self, message: Message) -> None:
        row = self.contacts.row_of(message.contact_id)
        if row is not None:
            name, request = self.contacts.summary(row).contact.display_name, False
            if message.author:  # a member's message in a group
                name = f"{message.author} in {name}"
        elif (invite := self.requests.invite_of(message.contact_id)) is not None:
            name, request = f"{message.author or 'Someone'} in {invite.name}", True
        else:
            name = self.request_flow.name_of(message.contact_id) or ""
            request = bool(name)
        text = describe(message, name or "They")
        self.tray.notify(
            message.contact_id, name or "a contact", text, self.prefs.previews, request
        )

    def _open_by_id(self, contact_id: int) -> None:
        row = self.contacts.row_of(contact_id)
        if row is not None:
            self.open_contact(self.contacts.summary(row).contact)
        elif (summary := self.requests.summary_of(contact_id)) is not None:
            self.request_flow.open(summary)
        elif (invite := self.requests.invite_of(contact_id)) is not None:
            self.request_flow.open_invite(invite)

    # -- tray ----------------------------------------------------------------------------

    def bring_back(self) -> None:
        self.showNormal()
        self.raise_()
        self.activateWindow()

    def changeEvent(self, event: QEvent) -> None:
        """Minimised with a tray present, the window leaves the taskbar for the tray; made
        active again, the open conversation is read."""
        super().changeEvent(event)
        if event.type() == QEvent.Type.ActivationChange and self.isActiveWindow():
            self._came_back()
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
            self.contact_list.setCurrentIndex(self.contacts.index(0, 0))

    def focus_requests(self) -> None:
        if self.requests.isVisible():
            self.requests.list.setFocus()
            if not self.requests.list.currentIndex().isValid():
                self.requests.list.setCurrentIndex(self.requests.model.index(0))

    def focus_search(self) -> None:
        self.search.box.setFocus()
        self.search.box.selectAll()

    def _search_active(self, active: bool) -> None:
        self.left_stack.setCurrentWidget(self.search.results if active else self.contact_list)
        self.requests.set_suppressed(active)

    async def show_hit(self, hit: SearchHit) -> bool:
        """Open the hit's conversation and bring its message into view, marked."""
        message = hit.message
        if self.panel.contact is None or self.panel.contact.id != message.contact_id:
            try:
                contact = await self.engine.contact(message.contact_id)
            except UserError:  # deleted since the search ran
                self.say("That conversation is no longer here.", 6000)
                return False
            self.right.setCurrentWidget(self.panel)
            summary = self.requests.summary_of(contact.id)
            self.requests.select(contact.id)
            self.select_contact(contact.id)
            await self.panel.open(contact, summary.same_name_as if summary else None)
            self.refresh_contact(contact.id)
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
        self.bridge.request_added.connect(dialog.code_maybe_used)
        self._keep(dialog)
        return dialog

    def show_add_contact(self) -> AddContactDialog:
        dialog = AddContactDialog(self.engine, self)
        dialog.added.connect(self._added)
        self._keep(dialog)
        return dialog

    def show_new_group(self) -> NewGroupDialog:
        dialog = NewGroupDialog(self.engine, self)
        dialog.created.connect(lambda group: spawn(self._group_made(group), "opening a group"))
        self._keep(dialog)
        return dialog

    async def _group_made(self, group: Group) -> None:
        self.groups[group.id] = group
        contact = await self.engine.contact(group.id)
        await self._select_new(contact)
        self.say(f"Created {safe_text(group.name)}: each member joins once they accept.")

    def show_members(self, group_row: int) -> GroupDialog | None:
        """A group's members dialog (the one already open for it, raised)."""
        for dialog in self._dialogs:
            if (
                isinstance(dialog, GroupDialog)
                and shiboken6.isValid(dialog)
                and dialog.isVisible()
                and dialog.group.id == group_row
            ):
                dialog.raise_()
                dialog.activateWindow()
                return dialog
        group = self.groups.get(group_row)
        shown = self.panel.group
        if shown is not None and shown.id == group_row:
            group = shown
        if group is None:
            return None
        dialog = GroupDialog(self.engine, group, self)
        dialog.said.connect(self.say)
        self._keep(dialog)
        return dialog

    def _added(self, contact: Contact) -> None:
        spawn(self._select_new(contact), "showing a new contact")

    async def _select_new(self, contact: Contact) -> None:
        await self.reload_contact(contact.id)
        self.open_contact(contact)

    def show_settings(self) -> SettingsDialog:
        dialog = SettingsDialog(
            self.engine,
            self.prefs,
            self.remembered,
            self,
            own_relay=self.own_relay,
            look_dir=None if self.paths is None else self.paths.directory,
        )
        dialog.saved.connect(self._settings_saved)
        dialog.said.connect(self.say)
        dialog.relay_notice.connect(self.say_relay_notice)
        self.bridge.backup_finished.connect(dialog.backups.on_finished)
        self._keep(dialog)
        return dialog

    def confirm_wipe(self) -> QMessageBox | None:
        """Panic wipe, asked once (Cancel is the default: Enter alone wipes nothing); the
        launcher does the wipe on `wipe_requested`."""
        if self.paths is None or self.detached:
            return None
        box = self.wipe_box
        if box is not None and shiboken6.isValid(box) and box.isVisible():
            box.raise_()
            box.activateWindow()
            return box
        box = QMessageBox(
            QMessageBox.Icon.Warning,
            "Panic wipe",
            "Destroy this profile now?",
            QMessageBox.StandardButton.NoButton,
            self,
        )
        box.setInformativeText(
            "Your keys, contacts, messages and files on this computer are destroyed at once "
            "and cannot be brought back. Backup files kept elsewhere are not touched. "
            "AnonChat then starts as on its first day."
        )
        wipe = box.addButton("&Wipe everything", QMessageBox.ButtonRole.DestructiveRole)
        cancel = box.addButton(QMessageBox.StandardButton.Cancel)
        wipe.setAccessibleName("Wipe everything")
        cancel.setAccessibleName("Cancel the wipe")
        box.setDefaultButton(cancel)
        box.setEscapeButton(cancel)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.buttonClicked.connect(lambda clicked: self._wipe_answered(clicked is wipe))
        self.wipe_box = box
        box.open()
        return box

    def wipe_button(self) -> QPushButton | None:
        """The confirmation's "Wipe everything", while it is asked."""
        box = self.wipe_box
        if box is None or not shiboken6.isValid(box):
            return None
        found = [
            b for b in box.buttons() if box.buttonRole(b) is QMessageBox.ButtonRole.DestructiveRole
        ]
        return found[0] if found and isinstance(found[0], QPushButton) else None

    def _wipe_answered(self, wipe: bool) -> None:
        self.wipe_box = None
        if wipe and not self.detached:
            self.wipe_requested.emit()

    def _settings_saved(self, prefs: Prefs) -> None:
        self.prefs = prefs
        self._apply_theme()
        self.setWindowTitle(f"AnonChat — {self.engine.name}")
        if self.own_relay is not None:
            self.embedded_relay = self.own_relay.url
            self.connection.set_embedded(self.embedded_relay)
        self.connection.refresh()

    def show_safety(self, contact_id: int) -> SafetyDialog | None:
        """The safety number of the open conversation, or of a contact in the list."""
        contact = self.panel.contact
        if contact is None or contact.id != contact_id:
            row = self.contacts.row_of(contact_id)
            contact = None if row is None else self.contacts.summary(row).contact
        if contact is None:
            return None
        dialog = SafetyDialog(self.engine, contact, self)
        dialog.verified.connect(self._on_contact)
        self._keep(dialog)
        return dialog

    def detach(self) -> None:
        """Stop talking to the engine (it is about to close): no more events or queries."""
        self.detached = True
        self.requests.detached = True
        self.read_marks.stop()
        self.bridge.detach()
        self.connection.stop()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.tray.hide()
        self.detach()
        for dialog in self._dialogs:
            if shiboken6.isValid(dialog):  # a closed dialog deleted itself
                dialog.close()
        self._dialogs = []
        self.closed.emit()
        super().closeEvent(event)
