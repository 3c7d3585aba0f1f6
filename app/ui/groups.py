"""Groups in the window (docs/groups.md): the New group dialog, the contact picker it shares
with Add members, and the group's members dialog (opened from the conversation's header):
who is in it, who are its admins, who is verified; admins add, remove and promote members and
rename the group, and anyone leaves it.

Every dialog is non-modal (show(), never exec()) so the asyncio loop keeps running. The
engine decides what is allowed; a refusal is said inside the dialog. What changes afterwards
reaches the window as engine events (GroupChanged, ContactChanged), like any other change.
"""

from __future__ import annotations

from collections.abc import Coroutine, Sequence
from typing import Any

import shiboken6
from PySide6.QtCore import (
    QModelIndex,
    QPersistentModelIndex,
    QRect,
    QRectF,
    QSize,
    Qt,
    Signal,
)
from PySide6.QtGui import (
    QFontMetrics,
    QIcon,
    QMouseEvent,
    QPainter,
    QPalette,
    QPixmap,
    QStandardItem,
    QStandardItemModel,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QVBoxLayout,
    QWidget,
)

from app.core.engine import Engine
from app.core.errors import UserError
from app.domain.contacts import Contact, ContactKind, ContactState
from app.domain.groups import MAX_GROUP_MEMBERS, Group, GroupMember, GroupState
from app.ui.aio import spawn
from app.ui.bubble_parts import PAD, elided
from app.ui.contact_menu import ConfirmDialog, leave_words
from app.ui.delegates import ACCENT
from app.ui.identicon import group_identicon, identicon
from app.ui.text import safe_text, sentence
from app.ui.theme import action_row, note_label

Index = QModelIndex | QPersistentModelIndex
MAX_OTHERS = MAX_GROUP_MEMBERS - 1  # whom one may invite: the group holds us too
ContactRole = Qt.ItemDataRole.UserRole + 20
MemberRole = Qt.ItemDataRole.UserRole + 21
LIMIT_WORDS = f"A group has at most {MAX_GROUP_MEMBERS} members: you and up to {MAX_OTHERS} others."


def picture(key: bytes, size: int, ratio: float, group: bool = False) -> QPixmap:
    """A key's identicon (or a group's picture) as a pixmap, sharp on a dense screen."""
    drawn = (group_identicon if group else identicon)(key, round(size * ratio))
    pixmap = QPixmap.fromImage(drawn)
    pixmap.setDevicePixelRatio(ratio)
    return pixmap


def members_line(group: Group) -> str:
    """The members' count under a group's name: "3 members", and where we stand if we are
    not in it any more."""
    count = len(group.members)
    words = f"{count} member{'s' if count != 1 else ''}"
    if group.state is GroupState.LEFT:
        return f"{words} · you left"
    if group.state is GroupState.REMOVED:
        return f"{words} · you were removed"
    if group.state is GroupState.INVITED:
        return f"{words} · invited by {safe_text(group.invited_by) or 'an admin'}"
    return words


class TickList(QListWidget):
    """A list of boxes to tick where a click anywhere on a row ticks it, not only on its box
    (Space ticks the current row, as in any list)."""

    def mouseReleaseEvent(self, e: QMouseEvent) -> None:
        item = self.itemAt(e.position().toPoint())
        before = None if item is None else item.checkState()
        super().mouseReleaseEvent(e)  # a click on the box itself ticks it here
        if (
            item is not None
            and e.button() == Qt.MouseButton.LeftButton
            and item.flags() & Qt.ItemFlag.ItemIsEnabled
            and item.checkState() == before
        ):
            ticked = before is Qt.CheckState.Checked
            item.setCheckState(Qt.CheckState.Unchecked if ticked else Qt.CheckState.Checked)


class ContactPicker(QWidget):
    """Contacts to choose, each with a box to tick, found by typing part of a name; at most
    `limit` ticked (one more is refused and `refused` says why)."""

    changed = Signal()  # the choice changed
    refused = Signal(str)

    def __init__(self, limit: int = MAX_OTHERS, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.limit = limit
        self.search = QLineEdit()
        self.search.setPlaceholderText("Search contacts")
        self.search.setAccessibleName("Search contacts")
        self.search.setClearButtonEnabled(True)
        self.search.textChanged.connect(self._filter)
        self.list = TickList()
        self.list.setAccessibleName("Contacts to choose")
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.list.itemChanged.connect(self._ticked)
        self.count = QLabel()
        self.count.setAccessibleName("Chosen")
        self.empty = QLabel("No contacts to choose from.")
        self.empty.setWordWrap(True)
        self.empty.hide()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.search)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.empty)
        layout.addWidget(self.count)
        self._show_count()

    def set_contacts(self, rows: Sequence[tuple[Contact, str]]) -> None:
        """The contacts offered: each with "" when it can be chosen, else why not."""
        self.list.blockSignals(True)
        self.list.clear()
        size = self.fontMetrics().height() * 2
        ratio = self.devicePixelRatioF()
        for contact, why_not in rows:
            name = safe_text(contact.display_name)
            item = QListWidgetItem(f"{name} — {why_not}" if why_not else name)
            item.setIcon(QIcon(picture(contact.identity_keys, size, ratio)))
            item.setData(ContactRole, contact.id)
            flags = Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsUserCheckable
            item.setFlags(flags | Qt.ItemFlag.ItemIsEnabled if not why_not else flags)
            item.setCheckState(Qt.CheckState.Unchecked)
            self.list.addItem(item)
        self.list.setIconSize(QSize(size, size))
        self.list.blockSignals(False)
        self.empty.setVisible(not rows)
        self._filter(self.search.text())
        self._show_count()

    def _items(self) -> list[QListWidgetItem]:
        return [self.list.item(i) for i in range(self.list.count())]

    def chosen(self) -> list[int]:
        """The contacts ticked, in the list's order."""
        return [
            int(item.data(ContactRole))
            for item in self._items()
            if item.checkState() is Qt.CheckState.Checked
        ]

    def set_chosen(self, contact_id: int, chosen: bool = True) -> bool:
        """Tick (or untick) a contact as a click would; False if it is not offered, cannot be
        chosen, or the limit is reached."""
        for item in self._items():
            if item.data(ContactRole) == contact_id and item.flags() & Qt.ItemFlag.ItemIsEnabled:
                item.setCheckState(Qt.CheckState.Checked if chosen else Qt.CheckState.Unchecked)
                return (item.checkState() is Qt.CheckState.Checked) == chosen
        return False

    def _ticked(self, item: QListWidgetItem) -> None:
        if item.checkState() is Qt.CheckState.Checked and len(self.chosen()) > self.limit:
            self.list.blockSignals(True)
            item.setCheckState(Qt.CheckState.Unchecked)
            self.list.blockSignals(False)
            self.refused.emit(
                f"You can choose at most {self.limit} "
                f"{'contact' if self.limit == 1 else 'contacts'} here. {LIMIT_WORDS}"
            )
        self._show_count()
        self.changed.emit()

    def _filter(self, text: str) -> None:
        wanted = text.strip().casefold()
        for item in self._items():
            item.setHidden(bool(wanted) and wanted not in item.text().casefold())

    def _show_count(self) -> None:
        self.count.setText(f"{len(self.chosen())} chosen · at most {self.limit}")


async def invitable_contacts(engine: Engine, exclude: set[bytes]) -> list[tuple[Contact, str]]:
    """Our contacts (people we can write to), except the keys in `exclude`, by name; each
    with why it cannot be chosen yet ("" when it can)."""
    rows = [
        (s.contact, "" if s.established else "waiting for the handshake")
        for s in await engine.summaries()
        if s.contact.kind is ContactKind.PERSON
        and s.contact.state is ContactState.CONTACT
        and s.contact.identity_keys not in exclude
    ]
    return sorted(rows, key=lambda r: (r[0].display_name.casefold(), r[0].id))


class NewGroupDialog(QDialog):
    """A name and the contacts invited; Create makes the group with us as its admin."""

    created = Signal(object)  # Group

    def __init__(self, engine: Engine, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("New group")
        self._engine = engine
        self.intro = intro = QLabel(
            f"Name the group and choose who is in it. {LIMIT_WORDS} Each one is invited "
            "and joins when they accept; everyone in the group sees its name and who is in it."
        )
        intro.setWordWrap(True)
        intro.setTextFormat(Qt.TextFormat.PlainText)
        self.name = QLineEdit()
        self.name.setPlaceholderText("Group name")
        self.name.setAccessibleName("Group name")
        self.name.setMaxLength(64)
        self.name.textChanged.connect(self._update)
        form = QFormLayout()
        form.addRow("Group &name", self.name)
        self.picker = ContactPicker(MAX_OTHERS)
        self.picker.changed.connect(self._update)
        self.picker.refused.connect(self._show_error)
        self.error = note_label(error=True)
        self.create_button, buttons = action_row(
            self, "&Create group", "Create group", self._create, enabled=False
        )
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addWidget(QLabel("Members"))
        layout.addWidget(self.picker, 1)
        layout.addWidget(self.error)
        layout.addLayout(buttons)
        self.resize(440, 520)
        self._busy = False
        self.loaded = spawn(self.load(), "listing contacts for a group")

    async def load(self) -> None:
        rows = await invitable_contacts(self._engine, set())
        if shiboken6.isValid(self):
            self.picker.set_contacts(rows)

    def _update(self) -> None:
        self.error.hide()
        ready = bool(self.name.text().strip()) and bool(self.picker.chosen())
        self.create_button.setEnabled(ready and not self._busy)

    def _create(self) -> None:
        if not self.create_button.isEnabled():
            return
        spawn(self.submit(self.name.text(), self.picker.chosen()), "creating a group")

    async def submit(self, name: str, contact_ids: list[int]) -> Group | None:
        """Create the group; None (and the engine's reason shown) when it is refused."""
        self._busy = True
        self._update()
        try:
            group = await self._engine.create_group(name, contact_ids)
        except UserError as exc:
            self._busy = False
            self._update()
            self._show_error(sentence(str(exc)))
            return None
        self.created.emit(group)
        self.close()
        return group

    def _show_error(self, text: str) -> None:
        self.error.setText(text)
        self.error.show()


class AddMembersDialog(QDialog):
    """Contacts who are not in the group yet, to add (an admin's)."""

    def __init__(self, engine: Engine, group: Group, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._engine = engine
        self.group = group
        name = safe_text(group.name)
        self.setWindowTitle(f"Add members to {name}")
        room = MAX_GROUP_MEMBERS - len(group.members)
        intro = QLabel(
            f"Choose contacts to add to {name}. They are invited and join when they accept. "
            f"{LIMIT_WORDS} There is room for {room} more."
        )
        intro.setWordWrap(True)
        intro.setTextFormat(Qt.TextFormat.PlainText)
        self.picker = ContactPicker(max(0, room))
        self.picker.changed.connect(self._update)
        self.picker.refused.connect(self._show_error)
        self.error = note_label(error=True)
        self.add, buttons = action_row(
            self, "&Add", "Add the chosen contacts", self._add, enabled=False
        )
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addWidget(self.picker, 1)
        layout.addWidget(self.error)
        layout.addLayout(buttons)
        self.resize(420, 460)
        self.loaded = spawn(self.load(), "listing contacts to add")

    async def load(self) -> None:
        members = {m.keys for m in self.group.members}
        rows = await invitable_contacts(self._engine, members)
        if shiboken6.isValid(self):
            self.picker.set_contacts(rows)

    def _update(self) -> None:
        self.error.hide()
        self.add.setEnabled(bool(self.picker.chosen()))

    def _add(self) -> None:
        if self.picker.chosen():
            spawn(self.submit(self.picker.chosen()), "adding members")

    async def submit(self, contact_ids: list[int]) -> bool:
        """Add them one by one; stops at the first refusal, said here."""
        self.add.setEnabled(False)
        for contact_id in contact_ids:
            try:
                await self._engine.add_member(self.group.id, contact_id)
            except UserError as exc:
                self._show_error(sentence(str(exc)))
                self.add.setEnabled(True)
                return False
        self.close()
        return True

    def _show_error(self, text: str) -> None:
        self.error.setText(text)
        self.error.show()


def member_badges(member: GroupMember) -> list[str]:
    """What the members list says of a member besides their name."""
    badges = []
    if member.is_me:
        badges.append("You")
    if member.admin:
        badges.append("Admin")
    if member.verified:
        badges.append("✔ Verified")
    if not member.joined:
        badges.append("Invited")
    return badges


def member_item(member: GroupMember) -> QStandardItem:
    name = safe_text(member.name)
    item = QStandardItem(name)
    item.setFlags(
        Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemNeverHasChildren
    )
    item.setData(member, MemberRole)
    said = ", ".join([name, *(b.replace("✔ ", "").lower() for b in member_badges(member))])
    item.setData(said, Qt.ItemDataRole.AccessibleTextRole)
    item.setData(said, Qt.ItemDataRole.ToolTipRole)
    return item


class MemberDelegate(QStyledItemDelegate):
    """A member's identicon, name, and badges: you, admin, verified, invited."""

    def sizeHint(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        return QSize(200, QFontMetrics(option.font).height() * 2 + PAD)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        member: GroupMember | None = index.data(MemberRole)
        if member is None:
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
        fm = QFontMetrics(painter.font())
        face = fm.height() + PAD
        top = rect.top() + (rect.height() - face) // 2
        ratio = painter.device().devicePixelRatioF()
        painter.drawImage(
            QRect(rect.left() + PAD, top, face, face), identicon(member.keys, round(face * ratio))
        )
        x = rect.left() + PAD * 2 + face
        pills = []
        for badge in member_badges(member):
            width = fm.horizontalAdvance(badge) + PAD * 2
            pills.append((badge, width))
        room = rect.right() - x - PAD - sum(w + PAD // 2 for _, w in pills)
        font = painter.font()
        font.setBold(True)
        painter.setFont(font)
        name = elided(QFontMetrics(font), safe_text(member.name), max(room, face))
        painter.setPen(ink)
        line = QRect(x, rect.top(), max(room, face), rect.height())
        painter.drawText(line, Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter, name)
        x += QFontMetrics(font).horizontalAdvance(name) + PAD
        font.setBold(False)
        painter.setFont(font)
        for badge, width in pills:
            pill = QRect(
                x, rect.top() + (rect.height() - fm.height() - 2) // 2, width, fm.height() + 2
            )
            strong = badge == "Admin"
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(ACCENT if strong else palette.color(QPalette.ColorRole.AlternateBase))
            painter.drawRoundedRect(QRectF(pill), pill.height() / 2, pill.height() / 2)
            painter.setPen(Qt.GlobalColor.white if strong else ink)
            painter.drawText(pill, Qt.AlignmentFlag.AlignCenter, badge)
            x += width + PAD // 2
        painter.restore()


class GroupDialog(QDialog):
    """A group's name and members. Admins rename it, add contacts, remove members and make
    them admins; anyone leaves it (asked once first)."""

    said = Signal(str)  # what an action did, for the status bar

    def __init__(self, engine: Engine, group: Group, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._engine = engine
        self.group = group
        self.avatar = QLabel()
        self.avatar.setAccessibleName("Group picture")
        self.title = QLabel()
        self.title.setTextFormat(Qt.TextFormat.PlainText)
        font = self.title.font()
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 1.2)
        self.title.setFont(font)
        self.title.setAccessibleName("Group name")
        self.subtitle = QLabel()
        self.subtitle.setTextFormat(Qt.TextFormat.PlainText)
        self.subtitle.setAccessibleName("Members count")
        names = QVBoxLayout()
        names.addWidget(self.title)
        names.addWidget(self.subtitle)
        header = QHBoxLayout()
        header.addWidget(self.avatar)
        header.addLayout(names, 1)
        self.name = QLineEdit()
        self.name.setAccessibleName("New group name")
        self.name.setMaxLength(64)
        self.rename = QPushButton("Re&name")
        self.rename.setAccessibleName("Rename the group")
        self.rename.setToolTip("Everyone in the group sees the new name")
        self.rename.clicked.connect(self._rename)
        self.name.returnPressed.connect(self._rename)
        self.rename_row = QWidget()
        rename = QHBoxLayout(self.rename_row)
        rename.setContentsMargins(0, 0, 0, 0)
        label = QLabel("&Name")
        label.setBuddy(self.name)
        rename.addWidget(label)
        rename.addWidget(self.name, 1)
        rename.addWidget(self.rename)
        self.model = QStandardItemModel(self)
        self.list = QListView()
        self.list.setModel(self.model)
        self.list.setItemDelegate(MemberDelegate(self.list))
        self.list.setAccessibleName("Members")
        self.list.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.list.setUniformItemSizes(True)
        self.list.selectionModel().currentChanged.connect(lambda *_: self._show_actions())
        self.add = QPushButton("&Add members…")
        self.add.setAccessibleName("Add members")
        self.add.clicked.connect(self.add_members)
        self.promote = QPushButton("Make a&dmin")
        self.promote.setAccessibleName("Make the chosen member an admin")
        self.promote.clicked.connect(self._promote)
        self.remove = QPushButton("&Remove…")
        self.remove.setAccessibleName("Remove the chosen member")
        self.remove.clicked.connect(self._ask_remove)
        self.admin_row = QWidget()
        admin = QHBoxLayout(self.admin_row)
        admin.setContentsMargins(0, 0, 0, 0)
        admin.addWidget(self.add)
        admin.addWidget(self.promote)
        admin.addWidget(self.remove)
        admin.addStretch(1)
        self.note = QLabel()
        self.note.setWordWrap(True)
        self.note.setTextFormat(Qt.TextFormat.PlainText)
        self.note.setAccessibleName("Your place in the group")
        self.error = note_label(error=True)
        self.leave = QPushButton("&Leave group…")
        self.leave.setAccessibleName("Leave the group")
        self.leave.clicked.connect(self.ask_leave)
        close = QPushButton("Close")
        close.setAccessibleName("Close")
        close.clicked.connect(self.close)
        buttons = QHBoxLayout()
        buttons.addWidget(self.leave)
        buttons.addStretch(1)
        buttons.addWidget(close)
        layout = QVBoxLayout(self)
        layout.addLayout(header)
        layout.addWidget(self.rename_row)
        layout.addWidget(self.list, 1)
        layout.addWidget(self.admin_row)
        layout.addWidget(self.note)
        layout.addWidget(self.error)
        layout.addLayout(buttons)
        self.confirm: ConfirmDialog | None = None
        self.adding: AddMembersDialog | None = None
        self.resize(440, 520)
        self.set_group(group)

    def set_group(self, group: Group) -> None:
        """The group as it is now (a GroupChanged event, or our own change)."""
        if group.id != self.group.id:
            return
        current = self.current_member()
        self.group = group
        name = safe_text(group.name)
        self.setWindowTitle(f"{name} — members")
        face = self.title.fontMetrics().height() * 2
        self.avatar.setPixmap(picture(group.group_id, face, self.devicePixelRatioF(), True))
        self.title.setText(name)
        self.subtitle.setText(members_line(group))
        if not self.name.hasFocus():
            self.name.setText(group.name)
        admin = group.am_admin
        self.rename_row.setVisible(admin)
        self.admin_row.setVisible(admin)
        self.model.clear()
        for member in group.members:
            self.model.appendRow(member_item(member))
        if current is not None:
            row = next((i for i, m in enumerate(group.members) if m.keys == current.keys), None)
            if row is not None:
                self.list.setCurrentIndex(self.model.index(row, 0))
        joined = group.state is GroupState.JOINED
        self.leave.setVisible(joined)
        why = group.why_not_writable()
        if why is not None:
            self.note.setText(sentence(why))
        elif admin:
            self.note.setText("You are an admin: you can add and remove members.")
        else:
            self.note.setText("Only admins can add or remove members and rename the group.")
        self._show_actions()

    def member_row(self, name: str) -> int | None:
        return next((i for i, m in enumerate(self.group.members) if m.name == name), None)

    def current_member(self) -> GroupMember | None:
        index = self.list.currentIndex()
        member = index.data(MemberRole) if index.isValid() else None
        return member if isinstance(member, GroupMember) else None

    def select(self, name: str) -> GroupMember | None:
        """Make the member called `name` the one the buttons act on."""
        row = self.member_row(name)
        if row is None:
            return None
        self.list.setCurrentIndex(self.model.index(row, 0))
        return self.group.members[row]

    def _show_actions(self) -> None:
        member = self.current_member()
        other = member is not None and not member.is_me
        self.promote.setEnabled(other and member is not None and not member.admin)
        self.remove.setEnabled(other)

    def _rename(self) -> None:
        name = self.name.text()
        if name.strip() and name != self.group.name and self.group.am_admin:
            spawn(self._act(self._engine.rename_group(self.group.id, name), "Renamed"), "rename")

    def _promote(self) -> None:
        member = self.current_member()
        if member is not None and not member.is_me:
            who = safe_text(member.name)
            spawn(
                self._act(
                    self._engine.promote_member(self.group.id, member.keys), f"{who} is an admin"
                ),
                "making a member an admin",
            )

    def _ask_remove(self) -> ConfirmDialog | None:
        member = self.current_member()
        if member is None or member.is_me:
            return None
        return self.ask_remove(member)

    def ask_remove(self, member: GroupMember) -> ConfirmDialog:
        who, name = safe_text(member.name), safe_text(self.group.name)
        self.confirm = ConfirmDialog(
            f"Remove {who}?",
            f"{who} is removed from {name}: nothing written in the group reaches them any "
            "more. Everyone in the group sees that you removed them.",
            "&Remove",
            self,
        )
        self.confirm.confirmed.connect(
            lambda _: spawn(
                self._act(
                    self._engine.remove_member(self.group.id, member.keys),
                    f"Removed {who} from {name}",
                ),
                "removing a member",
            )
        )
        self.confirm.show()
        return self.confirm

    def ask_leave(self) -> ConfirmDialog:
        name = safe_text(self.group.name)
        self.confirm = ConfirmDialog(f"Leave {name}?", leave_words(self.group), "&Leave", self)
        self.confirm.confirmed.connect(
            lambda _: spawn(
                self._act(self._engine.leave_group(self.group.id), f"You left {name}"),
                "leaving a group",
            )
        )
        self.confirm.show()
        return self.confirm

    def add_members(self) -> AddMembersDialog:
        self.adding = AddMembersDialog(self._engine, self.group, self)
        self.adding.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.adding.show()
        return self.adding

    async def _act(self, action: Coroutine[Any, Any, Group], done: str) -> bool:
        """Run one of the engine's group actions; the group it returns is shown at once (its
        GroupChanged follows), a refusal is said here."""
        try:
            group = await action
        except UserError as exc:
            if shiboken6.isValid(self):
                self.error.setText(sentence(str(exc)))
                self.error.show()
            return False
        if shiboken6.isValid(self):
            self.error.hide()
            self.set_group(group)
            self.said.emit(done + ".")
        return True
