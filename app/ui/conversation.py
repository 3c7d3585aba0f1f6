"""One open conversation: header (with the disappearing-messages timer), state banner or
request bar, the lazy message list and the composer (with the message being answered or
edited above it, and the button that attaches files). A message request opens here too,
read-only: never marked read, nothing sent. A message's actions (reply, react, edit, delete,
and a file's) come from the list's context menu. Files dropped anywhere on the conversation,
or files and pictures pasted into the composer, are sent (app/ui/file_actions.py).

A group's conversation opens here as well: its picture, name and members' count in the
header with a Members button (app/ui/groups.py), each member's message under their name,
ours with how many members have it. A group takes text and replies only (no files,
reactions, edits, deletion for everyone or timer in this version). An invitation opens with
Join and Decline above it; a group we left, or were removed from, stays readable with a line
saying so in the composer's place."""

from __future__ import annotations

import dataclasses
from collections.abc import Coroutine
from typing import Any

from PySide6.QtCore import QPoint, Qt, QTimer, Signal
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent, QKeySequence, QPixmap
from PySide6.QtWidgets import (
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.core.engine import Engine
from app.core.errors import UserError
from app.domain.contacts import Contact, ContactState
from app.domain.files import FileInfo, FileState
from app.domain.groups import Group, GroupState
from app.domain.messages import MAX_MESSAGE_CHARS, Direction, Message, Status
from app.ui.aio import spawn
from app.ui.answer_bar import AnswerBar
from app.ui.attachments import Outgoing, from_mime, holds_attachment
from app.ui.chatview import NOT_FILES, ChatView, Composer
from app.ui.contact_menu import ConfirmDialog
from app.ui.delegates import BubbleDelegate
from app.ui.emoji_picker import EmojiPicker
from app.ui.file_actions import FileActions
from app.ui.groups import members_line, picture
from app.ui.identicon import identicon
from app.ui.models import MAX_LIVE_ROWS, ConversationModel
from app.ui.requests import InviteBar, RequestBar
from app.ui.text import safe_text, sentence
from app.ui.theme import note_label
from app.ui.timer_menu import TimerMenu, timer_label

WRITE_HINT = "Write a message (Enter sends, Shift+Enter: new line)"
NO_GROUP_FILES = "Files and pictures cannot be sent to a group yet."
HIGHLIGHT_MS = 4000
TICK_MS = 30_000  # how often the time left on disappearing messages is drawn again


class ConversationPanel(QWidget):
    """Shows one contact's conversation; `contact` is None when nothing is open."""

    safety_requested = Signal(int)  # contact id
    members_requested = Signal(int)  # a group's row: show its members
    said = Signal(str)  # what a file action did, for the status bar

    def __init__(self, engine: Engine, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._engine = engine
        self.contact: Contact | None = None
        self.model: ConversationModel | None = None
        self.same_name_as: Contact | None = None  # a request's namesake among the contacts
        self.group: Group | None = None  # the open group (None for a person, or not read yet)
        self._online = False

        self.title = QLabel()
        self.title.setTextFormat(Qt.TextFormat.PlainText)
        font = self.title.font()
        font.setPointSizeF(font.pointSizeF() * 1.2)
        font.setBold(True)
        self.title.setFont(font)
        self.subtitle = QLabel()
        self.avatar = QLabel()
        self.avatar.setAccessibleName("Contact picture")
        self.safety_button = QPushButton("Safety &number")
        self.safety_button.setAccessibleName("Show safety number")
        self.safety_button.setToolTip("Compare or scan to verify (Ctrl+I)")
        self.safety_button.setShortcut(QKeySequence("Ctrl+I"))
        self.safety_button.clicked.connect(self._request_safety)
        self.timer_button = QToolButton()
        self.timer_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.timer_button.setAccessibleName("Disappearing messages")
        self.timer_button.setToolTip("Disappearing messages: how long messages stay")
        self.timer_menu: TimerMenu | None = None
        self.members_button = QPushButton("&Members")
        self.members_button.setAccessibleName("Group members")
        self.members_button.setToolTip("Who is in the group; admins add and remove members")
        self.members_button.clicked.connect(self._request_members)
        self.members_button.hide()
        header = QHBoxLayout()
        header.addWidget(self.avatar)
        names = QVBoxLayout()
        names.addWidget(self.title)
        names.addWidget(self.subtitle)
        header.addLayout(names, 1)
        header.addWidget(self.timer_button)
        header.addWidget(self.safety_button)
        header.addWidget(self.members_button)

        self.banner = QFrame()
        self.banner.setObjectName("stateBanner")
        self.banner.setStyleSheet(
            "#stateBanner { background: #e67e22; border-radius: 6px; }"
            "#stateBanner QLabel { color: white; }"
        )
        self.banner_text = QLabel()
        self.banner_text.setWordWrap(True)
        self.banner_text.setTextFormat(Qt.TextFormat.PlainText)
        banner_layout = QHBoxLayout(self.banner)
        banner_layout.addWidget(self.banner_text, 1)
        self.banner.hide()
        self.request_bar = RequestBar()
        self.invite_bar = InviteBar()

        self.view = ChatView()
        self.delegate = BubbleDelegate(self.view)
        self.view.setItemDelegate(self.delegate)
        self.delegate.quote_clicked.connect(lambda row: spawn(self.jump_to(row), "going to it"))
        self.view.retry_requested.connect(self.retry)
        self.view.reply_requested.connect(self.start_reply)
        self.view.edit_requested.connect(self.start_edit)
        self.view.react_requested.connect(self.pick_reaction)
        self.view.delete_requested.connect(self.ask_delete)
        self.picker: EmojiPicker | None = None
        self.confirm: ConfirmDialog | None = None
        self.ticker = QTimer(self)
        self.ticker.setInterval(TICK_MS)
        self.ticker.timeout.connect(self.view.viewport().update)
        self.composer = Composer()
        self.composer.setPlaceholderText(WRITE_HINT)
        self.composer.setAccessibleName("Message")
        self.composer.setFixedHeight(self.composer.fontMetrics().height() * 4)
        self.composer.submitted.connect(self.send)
        self.composer.refused.connect(self._show_error)
        self.answer_bar = AnswerBar(self.composer)
        self.send_button = QPushButton("Send")
        self.send_button.setAccessibleName("Send message")
        self.send_button.clicked.connect(self.send)
        self.files = FileActions(engine, self)
        self.files.failed.connect(self._show_error)
        self.files.said.connect(self.said)
        self.delegate.pictures.load = engine.read_file
        self.delegate.pictures.loaded.connect(self._picture_loaded)
        self.delegate.file_clicked.connect(self.file_action)
        self.view.file_requested.connect(self.file_action)
        self.composer.attached.connect(self.send_items)
        self.attach_button = QToolButton()
        self.attach_button.setText("📎")
        self.attach_button.setAccessibleName("Send files")
        self.attach_button.setToolTip("Send files or pictures (Ctrl+U); or drop them here")
        self.attach_button.setShortcut(QKeySequence("Ctrl+U"))
        self.attach_button.clicked.connect(self.attach)
        self.setAcceptDrops(True)
        self.error = note_label(error=True)
        self.title.setAccessibleName("Contact")
        self.subtitle.setAccessibleName("Contact status")
        self.banner_text.setAccessibleName("Conversation ended")
        self.read_only = QLabel()
        self.read_only.setObjectName("readOnly")
        self.read_only.setWordWrap(True)
        self.read_only.setTextFormat(Qt.TextFormat.PlainText)
        self.read_only.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.read_only.setAccessibleName("Cannot write here")
        self.read_only.hide()
        self.compose_row = QWidget()
        compose = QHBoxLayout(self.compose_row)
        compose.setContentsMargins(0, 0, 0, 0)
        compose.addWidget(self.attach_button, alignment=Qt.AlignmentFlag.AlignBottom)
        compose.addWidget(self.composer, 1)
        column = QVBoxLayout()
        column.addStretch(1)
        column.addWidget(self.composer.counter, alignment=Qt.AlignmentFlag.AlignRight)
        column.addWidget(self.send_button)
        compose.addLayout(column)

        layout = QVBoxLayout(self)
        layout.addLayout(header)
        layout.addWidget(self.banner)
        layout.addWidget(self.request_bar)
        layout.addWidget(self.invite_bar)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.error)
        layout.addWidget(self.answer_bar)
        layout.addWidget(self.compose_row)
        layout.addWidget(self.read_only)

    async def open(self, contact: Contact, same_name_as: Contact | None = None) -> None:
        """Show `contact`'s conversation (or request): the newest page first, older pages on
        scrolling up; a contact's is marked read, a request's never is."""
        self.contact = contact
        self.same_name_as = same_name_as
        self.group = None
        self.model = model = ConversationModel(
            self._engine, contact.id, parent=self, group=contact.is_group
        )
        model.contact_name = self.delegate.contact_name = safe_text(contact.display_name)
        model.online = self._online
        self.answer_bar.cancel()
        self.view.paging = False
        self.view.group = contact.is_group
        self.view.show_conversation(self.model)
        self.composer.clear()
        self.error.hide()
        self.update_contact(contact)
        self.ticker.stop()
        if contact.is_group:
            try:
                group = await self._engine.group(contact.id)
            except UserError:  # gone meanwhile (an invitation declined elsewhere)
                return
            if self.model is not model:
                return
            self.update_group(group)
        await self.model.load_first_page()
        self.view.scrollToBottom()
        if self.model is not model:
            return  # another conversation was opened meanwhile
        for row in range(model.rowCount()):  # the first page: a few dozen rows
            self._tick(model.message(row))
        self.view.paging = True
        if contact.state is not ContactState.REQUEST and not self.invited():
            await self._engine.mark_read(contact.id)

    def close_conversation(self) -> None:
        """Nothing open any more (the contact or request is gone)."""
        self.contact = None
        self.model = None
        self.same_name_as = None
        self.group = None
        self.view.clear()
        self.composer.clear()
        self.answer_bar.cancel()
        self.ticker.stop()
        self.error.hide()
        self.banner.hide()
        self.request_bar.hide()
        self.invite_bar.hide()

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
        QTimer.singleShot(HIGHLIGHT_MS, self, lambda: self._unmark(model, message_row))
        return True

    def _unmark(self, model: ConversationModel, message_row: int) -> None:
        if model.highlighted == message_row:
            model.set_highlight(None)

    def update_contact(self, contact: Contact) -> None:
        if self.contact is None or contact.id != self.contact.id:
            return
        self.contact = contact
        if contact.is_group:
            self._show_group()
            return
        self.members_button.hide()
        self.invite_bar.hide()
        self.safety_button.show()
        self.attach_button.show()
        self.compose_row.show()
        self.read_only.hide()
        name = safe_text(contact.display_name)
        face = self.title.fontMetrics().height() * 2
        ratio = self.devicePixelRatioF()
        picture = QPixmap.fromImage(identicon(contact.identity_keys, round(face * ratio)))
        picture.setDevicePixelRatio(ratio)
        self.avatar.setPixmap(picture)
        self.title.setText(name + ("  ✔" if contact.verified else ""))
        self._show_subtitle()
        ended = contact.state is ContactState.ENDED
        if ended and contact.blocked:
            self.banner_text.setText(
                f"You blocked {name}: nothing they send reaches you, and you cannot write to "
                "them. Scan their code again to unblock them."
            )
        elif ended:
            self.banner_text.setText(
                f"You deleted {name} and kept the conversation. Scan their code again to "
                "write to them."
            )
        self.banner.setVisible(ended)
        if contact.state is ContactState.REQUEST:
            self.request_bar.show_request(contact, self.same_name_as)
        else:
            self.request_bar.hide()
        writable = contact.state is ContactState.CONTACT
        self.composer.setEnabled(writable)
        self.send_button.setEnabled(writable)
        self.attach_button.setEnabled(writable)
        self.view.writable = writable
        self.timer_button.setVisible(writable or bool(contact.timer_s))
        self.timer_button.setEnabled(writable)
        self.timer_button.setText(f"⏱ {timer_label(contact.timer_s)}")
        if self.timer_menu is None or self.timer_menu.current != contact.timer_s:
            if self.timer_menu is not None:
                self.timer_menu.deleteLater()
            self.timer_menu = TimerMenu(contact.timer_s, self)
            self.timer_menu.chosen.connect(self.set_timer)
            self.timer_button.setMenu(self.timer_menu)
        if self.model is not None:
            self.model.contact_name = self.delegate.contact_name = name
        self._tick()
        self.composer.setPlaceholderText(
            WRITE_HINT
            if writable
            else "Accept the request to write to them"
            if contact.state is ContactState.REQUEST
            else "You cannot write to them"
        )

    def update_group(self, group: Group) -> None:
        """The open group as it is now: its name, members and where we stand in it."""
        if self.contact is None or group.id != self.contact.id:
            return
        self.group = group
        if group.name != self.contact.display_name:  # a rename, ahead of its ContactChanged
            self.contact = dataclasses.replace(self.contact, display_name=group.name)
        self._show_group()

    def _show_group(self) -> None:
        """The header, bars and composer of the open group (`self.group` once it is read)."""
        contact, group = self.contact, self.group
        if contact is None:
            return
        name = safe_text(contact.display_name)
        face = self.title.fontMetrics().height() * 2
        self.avatar.setPixmap(picture(contact.identity_keys, face, self.devicePixelRatioF(), True))
        self.title.setText(name)
        self.subtitle.setText("Group" if group is None else f"Group · {members_line(group)}")
        self.banner.hide()
        self.request_bar.hide()
        self.safety_button.hide()
        self.timer_button.hide()
        self.attach_button.hide()
        self.members_button.setVisible(group is not None)
        state = None if group is None else group.state
        if group is not None and state is GroupState.INVITED:
            self.invite_bar.show_invite(group)
        else:
            self.invite_bar.hide()
        writable = state is GroupState.JOINED
        why = None if group is None else group.why_not_writable()
        gone = state in (GroupState.LEFT, GroupState.REMOVED)
        if gone and why is not None:
            self.answer_bar.cancel()
            self.read_only.setText(f"{sentence(why)} Its messages stay here, read-only.")
        self.compose_row.setVisible(not gone)
        self.read_only.setVisible(gone)
        self.composer.setEnabled(writable)
        self.send_button.setEnabled(writable)
        self.view.writable = writable
        self.view.group = True
        if self.model is not None:
            self.model.contact_name = self.delegate.contact_name = name
        self.composer.setPlaceholderText(
            WRITE_HINT
            if writable
            else "Join the group to write to it"
            if state is GroupState.INVITED
            else "You cannot write to this group"
        )

    def invited(self) -> bool:
        """The open conversation is an invitation to a group (not joined: never read)."""
        return self.group is not None and self.group.state is GroupState.INVITED

    def _request_members(self) -> None:
        if self.contact is not None and self.contact.is_group:
            self.members_requested.emit(self.contact.id)

    def set_same_name_as(self, contact: Contact | None) -> None:
        """The request's namesake changed (renamed, deleted, added)."""
        if self.contact is not None and self.contact.state is ContactState.REQUEST:
            self.same_name_as = contact
            self.request_bar.show_request(self.contact, contact)

    def set_online(self, online: bool) -> None:
        self._online = online
        self._show_subtitle()
        if self.delegate.contact_online != online:  # a file waiting for them says so
            self.delegate.contact_online = online
            if self.model is not None:
                self.model.online = online
            self.view.viewport().update()

    def _show_subtitle(self) -> None:
        contact = self.contact
        if contact is None or contact.is_group:  # a group's says who is in it, not who is on
            return
        verified = "Verified" if contact.verified else "Not verified"
        if contact.state is ContactState.REQUEST:
            where = "Message request"
        elif contact.state is ContactState.ENDED:
            where = "Blocked" if contact.blocked else "Deleted"
        else:
            where = "Online" if self._online else "Offline"
        self.subtitle.setText(f"{where} · {verified}")

    def add_message(self, message: Message) -> None:
        if self.model is not None:
            self.model.append(message)
            if self.model.rowCount() > MAX_LIVE_ROWS and self.view.at_bottom():
                self.model.trim_front()
        self._tick(message)

    def change_message(self, message: Message) -> None:
        """A message edited, deleted for everyone or reacted to (ours or theirs)."""
        if self.model is not None:
            self.model.change(message)
        if not message.is_text:  # deleted meanwhile: nothing left to answer or edit
            self.answer_bar.drop({message.id})

    def remove_messages(self, contact_id: int, message_rows: tuple[int, ...]) -> None:
        """Messages deleted for us, or disappeared."""
        if self.model is not None and self.model.contact_id == contact_id:
            self.model.remove(message_rows)
        self.answer_bar.drop(set(message_rows))

    # -- files ---------------------------------------------------------------------------

    def attach(self) -> QFileDialog | None:
        """Choose files to send (the attach button, Ctrl+U)."""
        if self.contact is None or not self.composer.isEnabled():
            return None
        if self.contact.is_group:
            self._show_error(NO_GROUP_FILES)
            return None
        return self.files.choose(self.send_items)

    def send_items(self, items: list[Outgoing]) -> None:
        """Send files or a picture (chosen, pasted or dropped); the first answers the message
        being replied to."""
        if self.contact is None or not self.composer.isEnabled() or not items:
            return
        if self.contact.is_group:
            self._show_error(NO_GROUP_FILES)
            return
        replying = self.answer_bar.replying
        if replying is not None:
            self.answer_bar.take()
        self.files.send(self.contact.id, items, None if replying is None else replying.id)

    def _takes_files(self) -> bool:
        return self.composer.isEnabled() and not (self.contact and self.contact.is_group)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if self._takes_files() and holds_attachment(event.mimeData()):
            event.acceptProposedAction()

    def dragMoveEvent(self, event: QDragMoveEvent) -> None:
        if self._takes_files() and holds_attachment(event.mimeData()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        if not self._takes_files() or not holds_attachment(event.mimeData()):
            return
        items = from_mime(event.mimeData())
        if items:
            self.send_items(items)
        else:
            self._show_error(NOT_FILES)
        event.acceptProposedAction()

    def file_action(self, file_row: int, what: str) -> None:
        """One of a shown file's actions (file_bubble.OPEN, SAVE, DOWNLOAD, CANCEL, RETRY)."""
        message = None if self.model is None else self.model.message_with_file(file_row)
        if message is not None and message.file is not None:
            self.files.act(message.file, what)

    def change_file(self, info: FileInfo, rate: float) -> None:
        """A file moved on or changed state (the engine's FileChanged)."""
        if info.state is FileState.COMPLETE:
            self.delegate.pictures.forget(info.id)  # a picture just whole: read it now
        if self.model is not None:
            self.model.set_file(info, rate)

    def _picture_loaded(self, file_row: int) -> None:
        message = None if self.model is None else self.model.message_with_file(file_row)
        if self.model is not None and message is not None and message.file is not None:
            self.model.set_file(message.file, self.model.rates.get(message.id, 0.0), moved=True)

    def _tick(self, message: Message | None = None) -> None:
        """Draw the time left again now and then once anything here disappears: the timer is
        on, or a message shown has one (checked as each arrives, never by scanning the
        list, which a burst of arrivals would make slow). It runs until another conversation
        opens."""
        timed = self.contact is not None and bool(self.contact.timer_s)
        if (timed or (message is not None and message.timer_s)) and not self.ticker.isActive():
            self.ticker.start()

    # -- a message's actions ---------------------------------------------------------------

    def _message(self, message_row: int) -> Message | None:
        model = self.model
        row = None if model is None else model.row_of(message_row)
        return None if model is None or row is None else model.message(row)

    def start_reply(self, message_row: int) -> None:
        """The next message sent answers this one (shown above the composer)."""
        message = self._message(message_row)
        if message is not None and self.view.group:
            self.answer_bar.reply(message, safe_text(message.author or "Someone"))
        elif message is not None:
            self.answer_bar.reply(message, self.delegate.contact_name)

    def start_edit(self, message_row: int) -> None:
        """The composer holds our message's text; sending changes it."""
        message = self._message(message_row)
        if message is not None and message.direction is Direction.OUTGOING:
            self.answer_bar.edit(message)

    def pick_reaction(self, message_row: int, at: QPoint) -> None:
        message = self._message(message_row)
        if message is None:
            return
        mine = next((r.emoji for r in message.reactions if r.from_me), "")
        self.picker = EmojiPicker(mine, self)
        self.picker.picked.connect(lambda emoji: self._act(self._engine.react(message_row, emoji)))
        self.picker.popup_at(at)

    def ask_delete(self, message_row: int, for_everyone: bool) -> None:
        """Deleting cannot be undone: asked first (Cancel is the default)."""
        if for_everyone:
            text = (
                "Delete this message for everyone? It disappears from this conversation on "
                "both sides; your contact sees that a message was deleted."
            )
        else:
            text = "Delete this message from this computer? Your contact still has it."
        self.confirm = ConfirmDialog("Delete message", text, "&Delete", self)
        self.confirm.confirmed.connect(
            lambda _: self._act(self._engine.delete_message(message_row, for_everyone))
        )
        self.confirm.show()

    def set_timer(self, seconds: int) -> None:
        if self.contact is not None:
            self._act(self._engine.set_timer(self.contact.id, seconds))

    def _act(self, action: Coroutine[Any, Any, object]) -> None:
        """Run an action on a message; what changes comes back as the engine's events, a
        refusal is said in the error line."""

        async def run() -> None:
            try:
                await action
            except UserError as exc:
                self._show_error(sentence(str(exc)))
                return
            self.error.hide()

        spawn(run(), "acting on a message")

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
        replying, editing = self.answer_bar.take()
        self.composer.clear()
        spawn(self._send(self.contact.id, text, replying, editing), "sending a message")

    async def _send(
        self, contact_id: int, text: str, replying: Message | None, editing: Message | None
    ) -> None:
        """The sent message reaches the list the way every message does: as the engine's
        MessageAdded event, which the window hands to `add_message` (an edit, as
        MessageChanged)."""
        try:
            if editing is not None:
                await self._engine.edit(editing.id, text)
            else:
                quoted = None if replying is None else replying.id
                await self._engine.send(contact_id, text, quoted)
        except UserError as exc:
            self.composer.setPlainText(text)
            if editing is not None:
                self.start_edit(editing.id)
                self.composer.setPlainText(text)
            elif replying is not None:
                self.start_reply(replying.id)
            self._show_error(sentence(str(exc)))
            return
        self.error.hide()

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
