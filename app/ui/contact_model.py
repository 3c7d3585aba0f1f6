"""The contact list's model: one row per contact, most recent conversation first."""

from __future__ import annotations

from bisect import bisect_left

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QStandardItem, QStandardItemModel

from app.domain.contacts import ContactState, ContactSummary
from app.domain.messages import describe as describe_message
from app.ui.models import SummaryRole
from app.ui.text import preview, safe_text


def list_order(s: ContactSummary) -> tuple[int, int]:
    """The contact list's order: the latest conversation first (a contact with none by when
    it was added), then by id; no two rows share a place."""
    return -(s.last.sent_at if s.last else s.contact.created_at), s.contact.id


def describe(s: ContactSummary) -> str:
    """A contact row read out (screen readers) or shown as its tooltip."""
    parts = [safe_text(s.contact.display_name)]
    if s.contact.is_group:
        parts.append("group")
    if s.unread:
        parts.append(f"{s.unread} unread")
    if not s.contact.is_group:
        parts.append("online" if s.online else "offline")
    if s.contact.verified:
        parts.append("verified")
    if s.contact.state is ContactState.ENDED:
        parts.append("blocked" if s.contact.blocked else "deleted")
    if not s.established and not s.contact.is_group:
        parts.append("waiting for the handshake")
    if s.last is not None:
        said = preview(describe_message(s.last, s.contact.display_name), 40)
        if s.contact.is_group and s.last.author:
            said = f"{safe_text(s.last.author)}: {said}"
        parts.append(f"last: {said}")
    return ", ".join(parts)


ROW_FLAGS = (
    Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemNeverHasChildren
)


class ContactListModel(QStandardItemModel):
    """One row per contact, most recent conversation first.

    Filled once with `set_summaries`; after that each change is one contact's row put in its
    place (`put`) or taken out (`remove`), so an event costs the same with 5 contacts or 500:
    rows are found by bisecting the order, and the unread total is kept as rows change.

    The rows are Qt's own items, not a Python `rowCount`/`data`: a list view lays out every
    row again after any change, asking the model for each row's index, and asked in Python
    that would make each change cost in proportion to the list. A row that changes place is
    taken out and put back, so whoever shows a selected contact marks its row again (the
    window does after every change).
    """

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._rows: list[ContactSummary] = []  # in the order of the items
        self._by_id: dict[int, ContactSummary] = {}
        self.unread = 0  # over all rows

    def set_summaries(self, rows: list[ContactSummary]) -> None:
        rows = sorted(rows, key=list_order)
        self.clear()
        self._rows = rows
        self._by_id = {s.contact.id: s for s in rows}
        self.unread = sum(s.unread for s in rows)
        if rows:
            self.invisibleRootItem().appendRows([contact_item(s) for s in rows])

    def put(self, summary: ContactSummary) -> int:
        """Add or update one contact's row, in the place the order gives it; its row."""
        old = self._by_id.get(summary.contact.id)
        self._by_id[summary.contact.id] = summary
        self.unread += summary.unread - (old.unread if old else 0)
        found = bisect_left(self._rows, list_order(summary), key=list_order)
        if old is None:
            self._rows.insert(found, summary)
            self.insertRow(found, contact_item(summary))
            return found
        row = bisect_left(self._rows, list_order(old), key=list_order)
        to = found - 1 if found > row else found  # its place once out of its old one
        if to == row:
            self._rows[row] = summary
            self.setItem(row, contact_item(summary))
            return row
        del self._rows[row]
        self.takeRow(row)
        self._rows.insert(to, summary)
        self.insertRow(to, contact_item(summary))
        return to

    def remove(self, contact_id: int) -> None:
        """Take a contact's row out (gone, or a request again); nothing if it has none."""
        row = self.row_of(contact_id)
        if row is None:
            return
        gone = self._rows.pop(row)
        del self._by_id[contact_id]
        self.unread -= gone.unread
        self.removeRow(row)

    def summary(self, row: int) -> ContactSummary:
        return self._rows[row]

    def row_of(self, contact_id: int) -> int | None:
        s = self._by_id.get(contact_id)
        return None if s is None else bisect_left(self._rows, list_order(s), key=list_order)


def contact_item(s: ContactSummary) -> QStandardItem:
    item = QStandardItem(safe_text(s.contact.display_name))
    item.setFlags(ROW_FLAGS)
    item.setData(s, SummaryRole)
    described = describe(s)
    item.setData(described, Qt.ItemDataRole.AccessibleTextRole)
    item.setData(described, Qt.ItemDataRole.ToolTipRole)
    return item
