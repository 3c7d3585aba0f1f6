"""Qt models over the engine: a conversation that pages lazily (the contact list's is in
app/ui/contact_model.py).

The conversation model holds only the pages it has loaded (oldest first); `fetchMore` asks
the engine for the page before its oldest row. Item views call `fetchMore` when they reach
the bottom, which is the wrong end for a chat, so views show it through `TopPagingProxy` and
ask for older pages themselves when scrolled to the top.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any

from PySide6.QtCore import (
    QAbstractListModel,
    QIdentityProxyModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
)

from app.core.engine import Engine
from app.core.errors import UserError
from app.domain.files import FileInfo
from app.domain.groups import Delivery
from app.domain.messages import Direction, Message, MessageKind, Status
from app.domain.messages import describe as describe_message
from app.ui.aio import spawn
from app.ui.file_bubble import file_said
from app.ui.text import local_time, preview, safe_text

PAGE_SIZE = 50
SummaryRole = Qt.ItemDataRole.UserRole + 1
MessageRole = Qt.ItemDataRole.UserRole + 2
HighlightRole = Qt.ItemDataRole.UserRole + 4
ExpandedRole = Qt.ItemDataRole.UserRole + 6  # a long message shown whole
BubbleRole = Qt.ItemDataRole.UserRole + 7  # (message, its day, ExpandedRole, GroupRole)
RateRole = Qt.ItemDataRole.UserRole + 8  # how fast its file moves now, bytes a second
FileRole = Qt.ItemDataRole.UserRole + 9  # changed with a file's state: its bubble's size may
GroupRole = Qt.ItemDataRole.UserRole + 10  # a group's row: GroupLine (None elsewhere)
COLLAPSE_CHARS = 1000  # a longer message shows this much until "Read more"
QUOTE_CHARS = 300  # what a reply shows of the message it quotes
COLLAPSE_LINES = 20  # and so many lines
MAX_JUMP_PAGE = 1000
MAX_LIVE_ROWS = 600  # rows kept while following new messages at the bottom
Index = QModelIndex | QPersistentModelIndex


def bubble_text(m: Message, name: str = "They") -> str:
    """What a bubble draws (and DisplayRole gives): the body with hidden characters shown as
    symbols, each line isolated; for a notice or a deleted message, what it stands for
    (`name`: the contact's, for who set a timer); a file's caption ("" for none)."""
    if m.kind is not MessageKind.TEXT or m.deleted:
        return safe_text(describe_message(m, name))
    return safe_text(m.body, lines=True) if m.body else ""


def is_notice(m: Message) -> bool:
    """A line about the conversation (a timer set, something this version cannot show),
    drawn centred without a bubble."""
    return m.kind is not MessageKind.TEXT


def is_long(m: Message) -> bool:
    """Whether a bubble shows the message cut short until the reader asks for the rest."""
    if not m.is_text:
        return False
    return len(m.body) > COLLAPSE_CHARS or m.body.count("\n") >= COLLAPSE_LINES


def time_left(m: Message, now_ms: int) -> str | None:
    """How long until a disappearing message goes ("4m", "2h", "3d"), or None; a received
    one not read yet shows its whole timer."""
    if m.expires_at is None:
        return short_span(m.timer_s) if m.timer_s and m.kind is MessageKind.TEXT else None
    return short_span(max(0, (m.expires_at - now_ms) // 1000))


def short_span(seconds: int) -> str:
    for unit, size in (("w", 604_800), ("d", 86_400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def collapsed_text(m: Message) -> str:
    """The start of a long message, cut at a space near the limit, made safe like the whole."""
    lines = m.body.split("\n")[:COLLAPSE_LINES]
    cut = "\n".join(lines)[:COLLAPSE_CHARS]
    space = cut.rfind(" ", COLLAPSE_CHARS * 9 // 10)
    if space > 0:
        cut = cut[:space]
    return safe_text(cut.rstrip() + "…", lines=True)


@lru_cache(maxsize=8192)
def local_day(ms: int) -> date:
    """The local day a message was sent on (asked for every row at every relayout)."""
    return local_time(ms).date()


def day_label(day: date, today: date) -> str:
    """What a separator above the first message of a day says."""
    if day == today:
        return "Today"
    if day == today - timedelta(days=1):
        return "Yesterday"
    return f"{day:%A} {day.day} {day:%B %Y}"


def stamp(ms: int, now: datetime | None = None) -> str:
    """A time in a tooltip: the hour today, the whole date before that."""
    when = local_time(ms)
    if when.date() == (now or datetime.now()).date():
        return f"{when:%H:%M}"
    return f"{when:%a} {when.day} {when:%b %Y %H:%M}"


@dataclass(frozen=True, slots=True)
class GroupLine:
    """What a group conversation adds to a bubble: the author of a member's message (their
    name made safe, and their keys for the picture), how many members have our message, and
    whose message a reply quotes."""

    author: str = ""  # a member's message: who wrote it ("" for ours)
    keys: bytes = b""  # their identity keys (their identicon)
    receipt: str = ""  # ours: "delivered to 1 of 2" ("" until it is known)
    quoted: str = ""  # a reply to a member's message: that member's name ("" if unknown)


def receipt_words(deliveries: list[Delivery] | None) -> str:
    """How far our group message got: "delivered to 1 of 2" ("" when nobody else is in)."""
    if not deliveries:
        return ""
    return f"delivered to {sum(d.delivered for d in deliveries)} of {len(deliveries)}"


def receipt_tip(deliveries: list[Delivery]) -> str:
    """Who has our group message and who does not yet, a line each, for its tooltip."""
    have = [safe_text(d.member.name) for d in deliveries if d.delivered]
    waiting = [safe_text(d.member.name) for d in deliveries if not d.delivered]
    lines = []
    if have:
        lines.append("Delivered to " + ", ".join(have))
    if waiting:
        lines.append("Not yet delivered to " + ", ".join(waiting))
    return "\n".join(lines)


def said(
    m: Message,
    name: str = "They",
    online: bool = False,
    rate: float = 0.0,
    group: GroupLine | None = None,
) -> str:
    """A bubble read out by a screen reader: who, how far it got, the quote it answers, its
    file and where it stands, its text, and whether it was edited, what reactions it has and
    when it disappears. In a group (`group`), who wrote it and how many members have ours."""
    if is_notice(m):
        return bubble_text(m, name)
    shown = bubble_text(m, name)
    if m.file is not None and not m.deleted:
        shown = file_said(m.file, name, online, rate) + (f". {shown}" if shown else "")
    if m.direction is Direction.INCOMING:
        text = f"{group.author or 'Someone'}: {shown}" if group else f"Received: {shown}"
    else:
        state: str = "not sent, Control+R sends it again" if m.status is Status.FAILED else m.status
        if group is not None and group.receipt and m.status is not Status.FAILED:
            state = group.receipt
        text = f"You ({state}): {shown}"
    quoted = quote_text(m, name if group is None else group.quoted or "a member")
    if quoted is not None:
        who, said_there = quoted
        text = f"In reply to {who or 'a message'}: {said_there}. {text}"
    if m.edited_at is not None:
        text += " (edited)"
    if m.reactions:
        text += ". Reactions: " + ", ".join(
            f"{'you' if r.from_me else name} {r.emoji}" for r in m.reactions
        )
    if m.expires_at is not None:
        text += ". Disappears in " + (time_left(m, local_now_ms()) or "")
    return text


def quote_text(m: Message, name: str) -> tuple[str, str] | None:
    """Whose message a reply quotes and how it starts, as we have it now ("" and a word
    for it when we do not have it); None for a message that is no reply."""
    if m.reply_to is None:
        return None
    if m.quote is None:
        return "", "The original message is not here"
    who = "You" if m.quote.direction is Direction.OUTGOING else name
    said = "This message was deleted" if m.quote.deleted else preview(m.quote.body)
    if not m.quote.deleted and not m.quote.body:  # only a file message has no text
        kind = "Picture" if m.quote.is_image else "File"
        said = f"{kind}: {preview(m.quote.file_name)}" if m.quote.file_name else "A file"
    return who, said


def local_now_ms() -> int:
    return int(datetime.now().timestamp() * 1000)


STATUS_TIPS = {
    Status.QUEUED: "Waiting to send",
    Status.SENT: "Sent to the relay, not yet delivered",
    Status.DELIVERED: "Delivered",
    Status.READ: "Read",
    Status.FAILED: "Not sent · Ctrl+R to retry",
}


def status_tip(m: Message) -> str:
    """A bubble's tooltip: when it was written and how far it got, or when it arrived."""
    if m.direction is Direction.INCOMING:
        tip = f"Sent {stamp(m.sent_at)}"
        if m.received_at is not None:
            tip += f" · Received {stamp(m.received_at)}"
        return tip
    written = "Sent" if m.status in (Status.SENT, Status.DELIVERED, Status.READ) else "Written"
    tip = f"{written} {stamp(m.sent_at)}"
    if m.status in (Status.DELIVERED, Status.READ) and m.delivered_at is not None:
        tip += f" · Delivered {stamp(m.delivered_at)}"
        if m.status is Status.READ and m.read_at is not None:
            tip += f" · Read {stamp(m.read_at)}"
        return tip
    return f"{tip} · {STATUS_TIPS[m.status]}"


def message_tip(m: Message) -> str:
    """The tooltip with what the conversation added: an edit, a disappearing time."""
    tip = status_tip(m)
    if m.edited_at is not None:
        tip += f" · Edited {stamp(m.edited_at)}"
    if m.expires_at is not None:
        tip += f" · Disappears {stamp(m.expires_at)}"
    elif m.timer_s and m.kind is MessageKind.TEXT:
        tip += " · Disappears once read"
    return tip


class ConversationModel(QAbstractListModel):
    """The loaded pages of one conversation, oldest first; new messages append at the end."""

    def __init__(
        self,
        engine: Engine,
        contact_id: int,
        page_size: int = PAGE_SIZE,
        parent: QObject | None = None,
        *,
        group: bool = False,
    ) -> None:
        super().__init__(parent)
        self._engine = engine
        self.contact_id = contact_id
        self.group = group  # a group's conversation: authors, and deliveries per member
        self._page = page_size
        self._rows: list[Message] = []
        self._ids: set[int] = set()
        self._early: list[Message] = []  # arrived before the first page
        self._ready = False
        self._more = True
        self._loading = False
        self.queries = 0  # engine page queries made, for tests and diagnostics
        self.highlighted: int | None = None  # a message row shown marked (a search hit)
        self.expanded: set[int] = set()  # long messages the reader opened, by message row
        self.contact_name = "They"  # who set a timer, who reacted, in the contact's rows
        self.online = False  # the contact: a file waiting for them says so
        self.rates: dict[int, float] = {}  # how fast each moving file goes, by message row
        self.receipts: dict[int, list[Delivery]] = {}  # a group: our messages' copies
        self.authors: dict[int, str] = {}  # a group: members' messages' authors, by row
        self._asking: set[int] = set()  # quoted messages whose author is being read

    # -- loading -------------------------------------------------------------------------

    async def load_first_page(self) -> None:
        self._loading = True
        try:
            page = await self._engine.messages(self.contact_id, self._page)
        finally:
            self._loading = False
        self.queries += 1
        page.reverse()
        self._more = len(page) == self._page
        rows = page + [m for m in self._early if m.id not in {p.id for p in page}]
        self._early = []
        self.beginResetModel()
        self._rows = rows
        self._ids = {m.id for m in rows}
        self.endResetModel()
        self._ready = True
        self._arrived(rows)

    def canFetchMore(self, parent: Index = QModelIndex()) -> bool:  # noqa: B008
        return not parent.isValid() and self._ready and self._more and not self._loading

    def fetchMore(self, parent: Index = QModelIndex()) -> None:  # noqa: B008
        if not self.canFetchMore(parent):
            return
        self._loading = True
        spawn(self._load_older(), "loading older messages")

    async def _load_older(self) -> None:
        try:
            before = self._rows[0].id if self._rows else None
            page = await self._engine.messages(self.contact_id, self._page, before)
            self.queries += 1
        finally:
            self._loading = False
        page.reverse()
        self._more = len(page) == self._page
        page = [m for m in page if m.id not in self._ids]
        if page:
            self.beginInsertRows(QModelIndex(), 0, len(page) - 1)
            self._rows[:0] = page
            self._ids.update(m.id for m in page)
            self.endInsertRows()
            self._arrived(page)

    async def load_until(self, message_row: int) -> int | None:
        """Page back until `message_row` is loaded; its model row, or None if not found.

        Pages grow (50, 100, 200 … 1000) so a hit far back costs few queries.
        """
        size = self._page
        while (row := self.row_of(message_row)) is None:
            if not self._more or (self._rows and self._rows[0].id < message_row):
                return None
            before = self._rows[0].id if self._rows else None
            self._loading = True
            try:
                page = await self._engine.messages(self.contact_id, size, before)
                self.queries += 1
            finally:
                self._loading = False
            self._more = len(page) == size
            page.reverse()
            page = [m for m in page if m.id not in self._ids]
            if page:
                self.beginInsertRows(QModelIndex(), 0, len(page) - 1)
                self._rows[:0] = page
                self._ids.update(m.id for m in page)
                self.endInsertRows()
                self._arrived(page)
            size = min(size * 2, MAX_JUMP_PAGE)
        return row

    def set_highlight(self, message_row: int | None) -> None:
        rows = [r for r in (self.highlighted, message_row) if r is not None]
        self.highlighted = message_row
        for mrow in rows:
            i = self.row_of(mrow)
            if i is not None:
                idx = self.index(i)
                self.dataChanged.emit(idx, idx, [HighlightRole])

    # -- live updates --------------------------------------------------------------------

    def append(self, message: Message) -> None:
        if message.contact_id != self.contact_id or message.id in self._ids:
            return
        if not self._ready:
            self._early.append(message)
            return
        n = len(self._rows)
        self.beginInsertRows(QModelIndex(), n, n)
        self._rows.append(message)
        self._ids.add(message.id)
        self.endInsertRows()
        self._arrived([message])

    def trim_front(self, keep: int = MAX_LIVE_ROWS // 2) -> int:
        """Forget all but the newest `keep` rows (the reader is at the bottom); scrolling up
        loads them again. Keeps the window's memory flat however much arrives."""
        drop = len(self._rows) - keep
        if drop <= 0 or self._loading:
            return 0
        if self.highlighted is not None and any(
            m.id == self.highlighted for m in self._rows[:drop]
        ):
            return 0
        self.beginRemoveRows(QModelIndex(), 0, drop - 1)
        gone = self._rows[:drop]
        del self._rows[:drop]
        self._ids.difference_update(m.id for m in gone)
        self.endRemoveRows()
        self._more = True
        return drop

    # -- a group's authors and deliveries ---------------------------------------------------

    def _arrived(self, rows: list[Message]) -> None:
        """Rows just loaded or appended: in a group, who wrote each member's message, how far
        each of ours got (asked of the engine), and the authors of messages quoted that are
        not loaded."""
        if not self.group:
            return
        for m in rows:
            if m.direction is Direction.INCOMING and m.author_keys is not None:
                self.authors[m.id] = m.author or "Someone"
        ours: list[int] = [
            m.id for m in rows if m.direction is Direction.OUTGOING and not is_notice(m)
        ]
        if ours:
            spawn(self.load_receipts(ours), "reading a group message's deliveries")
        unknown = {
            m.quote.id
            for m in rows
            if m.quote is not None
            and m.quote.direction is Direction.INCOMING
            and m.quote.id not in self.authors
            and m.quote.id not in self._asking
        }
        if unknown:
            self._asking |= unknown
            spawn(self._read_authors(sorted(unknown)), "reading who wrote a quoted message")

    async def load_receipts(self, message_rows: list[int]) -> None:
        """Read again which members have these messages of ours (each a row shown here)."""
        for message_row in message_rows:
            try:
                deliveries = await self._engine.deliveries(message_row)
            except UserError:  # deleted meanwhile
                continue
            self.receipts[message_row] = deliveries
            i = self.row_of(message_row)
            if i is not None:
                idx = self.index(i)
                self.dataChanged.emit(idx, idx, [GroupRole, Qt.ItemDataRole.ToolTipRole])

    async def _read_authors(self, message_rows: list[int]) -> None:
        for message_row in message_rows:
            try:
                quoted = await self._engine.message(message_row)
            except UserError:
                continue
            self.authors[message_row] = quoted.author or "Someone"
        for i, m in enumerate(self._rows):
            if m.quote is not None and m.quote.id in message_rows:
                idx = self.index(i)
                self.dataChanged.emit(idx, idx, [GroupRole])

    def group_line(self, m: Message) -> GroupLine | None:
        """What a group's bubble adds (None outside a group, and for a notice)."""
        if not self.group or is_notice(m):
            return None
        quoted = ""
        if m.quote is not None and m.quote.direction is Direction.INCOMING:
            quoted = safe_text(self.authors.get(m.quote.id, ""))
        if m.direction is Direction.INCOMING:
            return GroupLine(safe_text(m.author or "Someone"), m.author_keys or b"", "", quoted)
        return GroupLine("", b"", receipt_words(self.receipts.get(m.id)), quoted)

    def set_status(self, message_row: int, status: Status) -> None:
        if self.group and message_row in self._ids:  # one more member may have it
            spawn(self.load_receipts([message_row]), "reading a group message's deliveries")
        for i in range(len(self._rows) - 1, -1, -1):
            m = self._rows[i]
            if m.id != message_row:
                continue
            if not m.status.may_become(status):
                return
            now = local_now_ms()  # the store noted the receipt's time just now
            delivered = m.delivered_at
            if status in (Status.DELIVERED, Status.READ) and delivered is None:
                delivered = now
            read = m.read_at if m.read_at is not None or status is not Status.READ else now
            self._rows[i] = replace(m, status=status, delivered_at=delivered, read_at=read)
            idx = self.index(i)
            self.dataChanged.emit(idx, idx, [MessageRole])
            return

    def change(self, message: Message) -> None:
        """A loaded message as it is now (edited, deleted for everyone, reacted to)."""
        i = self.row_of(message.id) if message.contact_id == self.contact_id else None
        if i is None:
            return
        self._rows[i] = message
        idx = self.index(i)
        self.dataChanged.emit(idx, idx, [MessageRole])
        self._requote(message)

    def set_file(self, info: FileInfo, rate: float = 0.0, moved: bool = False) -> None:
        """A loaded message's file as it is now, and how fast it moves (`moved`: what its
        bubble shows changed size, as when its picture is decoded)."""
        i = self.row_of(info.message_id) if info.contact_id == self.contact_id else None
        if i is None:
            return
        m = self._rows[i]
        if rate > 0:
            self.rates[m.id] = rate
        else:
            self.rates.pop(m.id, None)
        moved = moved or m.file is None or m.file.state is not info.state
        self._rows[i] = replace(m, file=info)
        idx = self.index(i)
        self.dataChanged.emit(idx, idx, [MessageRole, FileRole] if moved else [MessageRole])

    def message_with_file(self, file_row: int) -> Message | None:
        return next((m for m in self._rows if m.file is not None and m.file.id == file_row), None)

    def _requote(self, message: Message) -> None:
        """Replies quoting `message` show it as it is now."""
        for i, m in enumerate(self._rows):
            q = m.quote
            if q is not None and q.id == message.id:
                body = "" if message.deleted else message.body[:QUOTE_CHARS]
                self._rows[i] = replace(m, quote=replace(q, body=body, deleted=message.deleted))
                idx = self.index(i)
                self.dataChanged.emit(idx, idx, [MessageRole])

    def remove(self, message_rows: tuple[int, ...]) -> None:
        """Loaded messages deleted for us, or run out: their rows go (and quotes of them)."""
        gone = set(message_rows) & self._ids
        for i in range(len(self._rows) - 1, -1, -1):
            if self._rows[i].id in gone:
                self.beginRemoveRows(QModelIndex(), i, i)
                del self._rows[i]
                self.endRemoveRows()
        self._ids -= gone
        self.expanded -= gone
        for i, m in enumerate(self._rows):
            if m.quote is not None and m.quote.id in message_rows:
                self._rows[i] = replace(m, quote=None)
                idx = self.index(i)
                self.dataChanged.emit(idx, idx, [MessageRole])

    def set_expanded(self, message_row: int, expanded: bool) -> None:
        """Show a long message whole, or cut short again."""
        if expanded:
            self.expanded.add(message_row)
        else:
            self.expanded.discard(message_row)
        i = self.row_of(message_row)
        if i is not None:
            idx = self.index(i)
            self.dataChanged.emit(idx, idx, [ExpandedRole])

    # -- the model API -------------------------------------------------------------------

    def message(self, row: int) -> Message:
        return self._rows[row]

    def row_of(self, message_row: int) -> int | None:
        return next((i for i, m in enumerate(self._rows) if m.id == message_row), None)

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._rows):
            return None
        m = self._rows[index.row()]
        if role == BubbleRole:  # what a bubble's size depends on, asked at every relayout
            group = self.group_line(m) if self.group else None
            return m, self._day_starting(index.row()), m.id in self.expanded, group
        if role == Qt.ItemDataRole.DisplayRole:
            return bubble_text(m, self.contact_name)
        if role == MessageRole:
            return m
        if role == HighlightRole:
            return m.id == self.highlighted
        if role == ExpandedRole:
            return m.id in self.expanded
        if role == RateRole:
            return self.rates.get(m.id, 0.0)
        if role == GroupRole:
            return self.group_line(m)
        if role == Qt.ItemDataRole.ToolTipRole:
            if is_notice(m):
                return None
            tip = message_tip(m)
            if self.group and m.direction is Direction.OUTGOING and self.receipts.get(m.id):
                tip += "\n" + receipt_tip(self.receipts[m.id])
            return tip
        if role == Qt.ItemDataRole.AccessibleTextRole:
            day = self._day_starting(index.row())  # the separator, read out
            rate = self.rates.get(m.id, 0.0)
            spoken = said(m, self.contact_name, self.online, rate, self.group_line(m))
            return spoken if day is None else f"{day}. {spoken}"
        return None

    def _day_starting(self, row: int) -> str | None:
        """The separator above `row`: its day's name if the row before is another day's."""
        day = local_day(self._rows[row].sent_at)
        if row > 0 and local_day(self._rows[row - 1].sent_at) == day:
            return None
        return day_label(day, datetime.now().date())

    def setData(self, index: Index, value: Any, role: int = Qt.ItemDataRole.EditRole) -> bool:
        """Only whether a long message is shown whole can be set (its "Read more")."""
        if role != ExpandedRole or not index.isValid() or not 0 <= index.row() < len(self._rows):
            return False
        self.set_expanded(self._rows[index.row()].id, bool(value))
        return True


class TopPagingProxy(QIdentityProxyModel):
    """Hides `canFetchMore` from the view, which would fetch at the bottom; see the module."""

    def canFetchMore(self, parent: Index = QModelIndex()) -> bool:  # noqa: B008
        return False
