"""The contact list's context menu and the dialogs behind it: rename, block, delete; for a
group's row: its members, mute, and leave.

The dialogs are non-modal (show(), never exec()) so the asyncio loop keeps running. The
engine decides what a valid name is; its refusal is shown inside the rename dialog. What
changes afterwards reaches the window as engine events, like any other change.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QModelIndex, QObject, QPoint, Qt, Signal
from PySide6.QtGui import QContextMenuEvent, QKeyEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QMenu,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.core.engine import Engine
from app.core.errors import UserError
from app.domain.contacts import Contact
from app.domain.groups import Group, GroupState
from app.ui.aio import spawn
from app.ui.text import safe_text, sentence
from app.ui.theme import action_row, note_label


class ContactListView(QListView):
    """Asks for a row's menu on a right click, the Menu key or Shift+F10 (the current row)."""

    menu_requested = Signal(QModelIndex, QPoint)  # the row, where to show it (global)

    def contextMenuEvent(self, e: QContextMenuEvent) -> None:
        index = self.currentIndex()
        if e.reason() != QContextMenuEvent.Reason.Keyboard:
            index = self.indexAt(e.pos())
        self._ask(index)
        e.accept()

    def keyPressEvent(self, e: QKeyEvent) -> None:
        shifted = bool(e.modifiers() & Qt.KeyboardModifier.ShiftModifier)
        if e.key() == Qt.Key.Key_Menu or (e.key() == Qt.Key.Key_F10 and shifted):
            self._ask(self.currentIndex())
            return
        super().keyPressEvent(e)

    def _ask(self, index: QModelIndex) -> None:
        if index.isValid():
            self.setCurrentIndex(index)
            at = self.viewport().mapToGlobal(self.visualRect(index).center())
            self.menu_requested.emit(index, at)


class ConfirmDialog(QDialog):
    """A question about something that cannot be undone; Cancel is the default answer."""

    confirmed = Signal(bool)  # the option's state (False when there is none)

    def __init__(
        self,
        title: str,
        text: str,
        action: str,
        parent: QWidget | None = None,
        option: str | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle(title)
        self.text = QLabel(text)
        self.text.setWordWrap(True)
        self.text.setTextFormat(Qt.TextFormat.PlainText)
        self.option = QCheckBox(option) if option else None
        self.confirm = QPushButton(action)
        self.confirm.setAccessibleName(action.replace("&", ""))
        self.confirm.clicked.connect(self._confirm)
        cancel = QPushButton("Cancel")
        cancel.setAccessibleName("Cancel")
        cancel.setDefault(True)
        cancel.clicked.connect(self.close)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(cancel)
        buttons.addWidget(self.confirm)
        layout = QVBoxLayout(self)
        layout.addWidget(self.text)
        if self.option is not None:
            self.option.setAccessibleName(option.replace("&", "") if option else "")
            layout.addWidget(self.option)
        layout.addLayout(buttons)

    def _confirm(self) -> None:
        self.confirmed.emit(self.option is not None and self.option.isChecked())
        self.close()


def leave_words(group: Group) -> str:
    """What leaving a group does, asked before it is done (the last admin hands over)."""
    name = safe_text(group.name)
    text = (
        f"Leave {name}? You will no longer receive its messages or be able to write to it. "
        "What it holds now stays here, read-only."
    )
    me = group.me
    others = [m for m in group.members if not m.is_me]
    if me is not None and me.admin and others and not any(m.admin for m in others):
        text += f" You are its only admin: {safe_text(others[0].name)} becomes one."
    return text


class RenameDialog(QDialog):
    """A new name for a contact, shown only to us; a name the engine refuses stays here."""

    renamed = Signal(object)  # Contact

    def __init__(self, engine: Engine, contact: Contact, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._engine = engine
        self.contact = contact
        who = safe_text(contact.display_name)
        self.setWindowTitle(f"Rename {who}")
        intro = QLabel(f"The name you see for {who}. Only you see it; they are not told.")
        intro.setWordWrap(True)
        intro.setTextFormat(Qt.TextFormat.PlainText)
        self.name = QLineEdit(contact.display_name)
        self.name.setAccessibleName("New name")
        self.name.selectAll()
        form = QFormLayout()
        form.addRow("&Name", self.name)
        self.error = note_label(error=True)
        self.name.textEdited.connect(self.error.hide)
        self.save, buttons = action_row(self, "&Save", "Save the name", self._save)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addWidget(self.error)
        layout.addLayout(buttons)

    def _save(self) -> None:
        self.save.setEnabled(False)
        spawn(self.submit(self.name.text()), "renaming a contact")

    async def submit(self, name: str) -> bool:
        """Rename; False (and the engine's reason shown) when the name is refused."""
        try:
            contact = await self._engine.rename(self.contact.id, name)
        except UserError as exc:
            self.error.setText(sentence(str(exc)))
            self.error.show()
            self.save.setEnabled(True)
            self.name.setFocus()
            return False
        self.renamed.emit(contact)
        self.close()
        return True


class ContactActions(QObject):
    """Builds a contact's menu and carries out its entries; `done` gives a status line."""

    safety_requested = Signal(int)  # contact id
    members_requested = Signal(int)  # a group's row
    done = Signal(str)

    def __init__(self, engine: Engine, keep: Callable[[QWidget], None], parent: QWidget) -> None:
        super().__init__(parent)
        self._engine = engine
        self._keep = keep  # shows a dialog and keeps it alive (the window's)
        self._parent = parent
        self.menu: QMenu | None = None  # the last menu shown, for tests

    def show_menu(self, contact: Contact, at: QPoint, group: Group | None = None) -> QMenu:
        if contact.is_group:
            return self._group_menu(contact, at, group)
        menu = QMenu(self._parent)
        menu.setAccessibleName(f"Actions for {safe_text(contact.display_name)}")
        menu.addAction("&Rename…").triggered.connect(lambda: self.rename(contact))
        menu.addAction("Safety &number").triggered.connect(
            lambda: self.safety_requested.emit(contact.id)
        )
        muted = self._engine.is_muted(contact.id)
        mute = menu.addAction("Un&mute notifications" if muted else "&Mute notifications")
        mute.triggered.connect(lambda: spawn(self._mute(contact, not muted), "muting a contact"))
        menu.addSeparator()
        block = menu.addAction("&Block…")
        block.setEnabled(not contact.blocked)
        block.triggered.connect(lambda: self.confirm_block(contact))
        menu.addAction("&Delete…").triggered.connect(lambda: self.confirm_delete(contact))
        self.menu = menu
        menu.popup(at)
        return menu

    def _group_menu(self, contact: Contact, at: QPoint, group: Group | None) -> QMenu:
        """A group's row: its members, mute, leave (while we are in it)."""
        menu = QMenu(self._parent)
        menu.setAccessibleName(f"Actions for {safe_text(contact.display_name)}")
        menu.addAction("&Members…").triggered.connect(
            lambda: self.members_requested.emit(contact.id)
        )
        muted = self._engine.is_muted(contact.id)
        mute = menu.addAction("Un&mute notifications" if muted else "&Mute notifications")
        mute.triggered.connect(lambda: spawn(self._mute(contact, not muted), "muting a group"))
        if group is not None and group.state is GroupState.JOINED:
            menu.addSeparator()
            menu.addAction("&Leave group…").triggered.connect(lambda: self.confirm_leave(group))
        self.menu = menu
        menu.popup(at)
        return menu

    def confirm_leave(self, group: Group) -> ConfirmDialog:
        name = safe_text(group.name)
        dialog = ConfirmDialog(f"Leave {name}?", leave_words(group), "&Leave", self._parent)
        dialog.confirmed.connect(lambda _: spawn(self._leave(group), "leaving a group"))
        self._keep(dialog)
        return dialog

    async def _leave(self, group: Group) -> None:
        try:
            await self._engine.leave_group(group.id)
        except UserError as exc:
            self.done.emit(sentence(str(exc)))
            return
        self.done.emit(f"You left {safe_text(group.name)}.")

    async def _mute(self, contact: Contact, muted: bool) -> None:
        await self._engine.mute(contact.id, muted)
        who = safe_text(contact.display_name)
        self.done.emit(
            f"{who} is muted: their messages arrive without a notification."
            if muted
            else f"Notifications from {who} are back on."
        )

    def rename(self, contact: Contact) -> RenameDialog:
        dialog = RenameDialog(self._engine, contact, self._parent)
        dialog.renamed.connect(
            lambda c: self.done.emit(
                f"Renamed {safe_text(contact.display_name)} to {safe_text(c.display_name)}."
            )
        )
        self._keep(dialog)
        return dialog

    def confirm_block(self, contact: Contact) -> ConfirmDialog:
        who = safe_text(contact.display_name)
        dialog = ConfirmDialog(
            f"Block {who}?",
            f"{who} can no longer reach you: whatever they send is dropped, and they are not "
            "told. The conversation stays here, read-only. Scanning their code again unblocks "
            "them.",
            "&Block",
            self._parent,
        )
        dialog.confirmed.connect(lambda _: spawn(self._block(contact), "blocking a contact"))
        self._keep(dialog)
        return dialog

    def confirm_delete(self, contact: Contact) -> ConfirmDialog:
        who = safe_text(contact.display_name)
        dialog = ConfirmDialog(
            f"Delete {who}?",
            f"{who} can no longer write to you until you add each other again. Without the "
            "conversation kept, every message with them is deleted from this device.",
            "&Delete",
            self._parent,
            option="&Keep the conversation",
        )
        dialog.confirmed.connect(
            lambda keep: spawn(self._delete(contact, keep), "deleting a contact")
        )
        self._keep(dialog)
        return dialog

    async def _block(self, contact: Contact) -> None:
        try:
            await self._engine.block(contact.id)
        except UserError as exc:
            self.done.emit(sentence(str(exc)))
            return
        self.done.emit(f"Blocked {safe_text(contact.display_name)}.")

    async def _delete(self, contact: Contact, keep_history: bool) -> None:
        try:
            await self._engine.delete_contact(contact.id, keep_history=keep_history)
        except UserError as exc:
            self.done.emit(sentence(str(exc)))
            return
        kept = " The conversation is kept." if keep_history else ""
        self.done.emit(f"Deleted {safe_text(contact.display_name)}.{kept}")
