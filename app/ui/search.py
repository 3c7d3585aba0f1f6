"""Search over all history: a box, a list of hits with highlighted snippets, a jump signal.

Typing waits a moment before asking the engine (FTS5 through the store's thread), and an
answer that arrives after newer typing is dropped, so the list always matches the box. A
search that finds nothing says so in the list's place.
"""

from __future__ import annotations

import html
from typing import Any

from PySide6.QtCore import (
    QAbstractListModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    QRectF,
    QSize,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import (
    QAbstractTextDocumentLayout,
    QKeyEvent,
    QPainter,
    QPaintEvent,
    QPalette,
    QTextDocument,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QLineEdit,
    QListView,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QWidget,
)

from app.core.engine import Engine
from app.domain.messages import Direction, SearchHit
from app.ui.aio import spawn
from app.ui.text import clock, isolate, one_line, safe_text, visible

Index = QModelIndex | QPersistentModelIndex
HitRole = Qt.ItemDataRole.UserRole + 3
DELAY_MS = 250
QUOTED_CHARS = 40  # how much of the search text the "no messages match" line repeats
MARK_START, MARK_END = "\x02", "\x03"


def snippet_html(snippet: str, marked: bool = True) -> str:
    """The store's snippet, isolated, hidden characters shown, escaped, and its marks as bold
    text. A body holding the mark characters itself cannot be told apart from the marks:
    then (`marked` False) no mark is taken, every one is shown as a symbol."""
    if not marked:
        return html.escape(safe_text(one_line(snippet)))
    out: list[str] = []
    bold = False
    for i, piece in enumerate(one_line(snippet).split(MARK_START)):
        inside, _, rest = piece.partition(MARK_END) if i else ("", "", piece)
        for text, strong in ((inside, True), (rest, False)):
            text = html.escape(visible(text.replace(MARK_END, "")))
            if text and strong != bold:
                out.append("<b>" if strong else "</b>")
                bold = strong
            out.append(text)
    if bold:
        out.append("</b>")
    return isolate("".join(out))


def snippet_plain(snippet: str, marked: bool = True) -> str:
    if marked:
        snippet = snippet.replace(MARK_START, "").replace(MARK_END, "")
    return safe_text(one_line(snippet))


def has_marks(hit: SearchHit) -> bool:
    """Whether the store's marks in the hit's snippet are its own (see `snippet_html`)."""
    return MARK_START not in hit.message.body and MARK_END not in hit.message.body


class SearchResultsModel(QAbstractListModel):
    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._hits: list[SearchHit] = []
        self._names: dict[int, str] = {}

    def set_hits(self, hits: list[SearchHit], names: dict[int, str]) -> None:
        self.beginResetModel()
        self._hits = hits
        self._names = names
        self.endResetModel()

    def hit(self, row: int) -> SearchHit:
        return self._hits[row]

    def name(self, contact_id: int) -> str:
        return self._names.get(contact_id, "")

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._hits)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._hits):
            return None
        hit = self._hits[index.row()]
        if role == HitRole:
            return hit
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.AccessibleTextRole):
            who = safe_text(self.name(hit.message.contact_id))
            mine = "you" if hit.message.direction is Direction.OUTGOING else who
            text = snippet_plain(hit.snippet, has_marks(hit))
            return f"{who}, {clock(hit.message.sent_at)}, {mine}: {text}"
        return None


class HitDelegate(QStyledItemDelegate):
    """Contact and time on the first line, the snippet with the matched words in bold below."""

    def _doc(self, option: QStyleOptionViewItem, hit: SearchHit, name: str) -> QTextDocument:
        doc = QTextDocument()
        doc.setDefaultFont(option.font)
        doc.setDocumentMargin(6)
        doc.setTextWidth(max(120, option.rect.width()))
        you = "You: " if hit.message.direction is Direction.OUTGOING else ""
        doc.setHtml(
            f"<b>{html.escape(safe_text(name))}</b> &nbsp;"
            f"<small>{clock(hit.message.sent_at)}</small>"
            f"<br>{you}{snippet_html(hit.snippet, has_marks(hit))}"
        )
        return doc

    def sizeHint(self, option: QStyleOptionViewItem, index: Index) -> QSize:
        hit: SearchHit | None = index.data(HitRole)
        model = index.model()
        if hit is None or not isinstance(model, SearchResultsModel):
            return QSize(0, 0)
        doc = self._doc(option, hit, model.name(hit.message.contact_id))
        return QSize(int(doc.idealWidth()), int(doc.size().height()))

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: Index) -> None:
        hit: SearchHit | None = index.data(HitRole)
        model = index.model()
        if hit is None or not isinstance(model, SearchResultsModel):
            return
        selected = bool(option.state & QStyle.StateFlag.State_Selected)
        painter.save()
        if selected:
            painter.fillRect(option.rect, option.palette.color(QPalette.ColorRole.Highlight))
        doc = self._doc(option, hit, model.name(hit.message.contact_id))
        context = QAbstractTextDocumentLayout.PaintContext()
        role = QPalette.ColorRole.HighlightedText if selected else QPalette.ColorRole.Text
        context.palette.setColor(QPalette.ColorRole.Text, option.palette.color(role))
        painter.translate(option.rect.topLeft())
        context.clip = QRectF(0, 0, option.rect.width(), option.rect.height())
        doc.documentLayout().draw(painter, context)
        painter.restore()


def no_hits_text(query: str) -> str:
    """What the list says when nothing matches `query` (shortened, hidden characters shown)."""
    text = one_line(query).strip()
    if len(text) > QUOTED_CHARS:
        text = text[: QUOTED_CHARS - 1] + "…"
    return f"No messages match “{safe_text(text)}”"


class ResultsView(QListView):
    """The hits; with none, `empty_text` drawn in their place (wrapped, centred)."""

    def __init__(self) -> None:
        super().__init__()
        self.empty_text = ""

    def set_empty_text(self, text: str) -> None:
        self.empty_text = text
        self.viewport().update()

    def paintEvent(self, e: QPaintEvent) -> None:
        super().paintEvent(e)
        model = self.model()
        if not self.empty_text or (model is not None and model.rowCount()):
            return
        painter = QPainter(self.viewport())
        painter.setPen(self.palette().color(QPalette.ColorRole.PlaceholderText))
        area = self.viewport().rect().adjusted(12, 24, -12, -12)
        flags = Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop
        painter.drawText(area, int(flags) | int(Qt.TextFlag.TextWordWrap), self.empty_text)
        painter.end()


class SearchBox(QLineEdit):
    """Down moves into the results, Escape clears the search."""

    down = Signal()

    def keyPressEvent(self, e: QKeyEvent) -> None:
        if e.key() == Qt.Key.Key_Down:
            self.down.emit()
            return
        if e.key() == Qt.Key.Key_Escape and self.text():
            self.clear()
            return
        super().keyPressEvent(e)


class SearchPanel(QObject):
    """Wires the box to the engine and the results list; `chosen` carries the hit picked."""

    chosen = Signal(object)  # SearchHit
    active_changed = Signal(bool)  # results shown instead of the contact list

    def __init__(self, engine: Engine, parent: QWidget) -> None:
        super().__init__(parent)
        self._engine = engine
        self.box = SearchBox()
        self.box.setPlaceholderText("Search all messages (Ctrl+F)")
        self.box.setAccessibleName("Search messages")
        self.box.setClearButtonEnabled(True)
        self.model = SearchResultsModel(self)
        self.results = ResultsView()
        self.results.setModel(self.model)
        self.results.setItemDelegate(HitDelegate(self.results))
        self.results.setAccessibleName("Search results")
        self.results.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.results.setWordWrap(True)
        self.results.activated.connect(self._activated)
        self.results.clicked.connect(self._activated)
        self._generation = 0
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(DELAY_MS)
        self._timer.timeout.connect(self._run)
        self.box.textChanged.connect(self._typed)
        self.box.returnPressed.connect(self._enter)
        self.box.down.connect(self._into_results)
        self.searches = 0  # searches done (results shown, or overtaken), for tests

    @property
    def active(self) -> bool:
        return bool(self.box.text().strip())

    def _typed(self, text: str) -> None:
        self._generation += 1
        self.results.set_empty_text("")  # said again once this text is searched
        if not text.strip():
            self._timer.stop()
            self.model.set_hits([], {})
            self.active_changed.emit(False)
            return
        self.active_changed.emit(True)
        self._timer.start()

    def _run(self) -> None:
        spawn(self.search_now(), "searching")

    async def search_now(self) -> list[SearchHit]:
        """Search for the box's text at once (typing calls this after a pause)."""
        self._timer.stop()
        generation = self._generation
        text = self.box.text()
        hits = await self._engine.search(text)
        if generation != self._generation:
            self.searches += 1
            return hits  # the box changed meanwhile; a newer search follows
        names = {s.contact.id: s.contact.display_name for s in await self._engine.summaries()}
        names.update({r.request.id: r.request.display_name for r in await self._engine.requests()})
        self.model.set_hits(hits, names)
        empty = "" if hits else no_hits_text(text)
        self.results.set_empty_text(empty)
        self.results.setAccessibleDescription(f"{len(hits)} messages found" if hits else empty)
        if hits:
            self.results.setCurrentIndex(self.model.index(0))
        self.searches += 1  # counted once its results are shown
        return hits

    def _enter(self) -> None:
        if self._timer.isActive():
            spawn(self._enter_after_search(), "searching")
        elif self.model.rowCount():
            self._activated(self.model.index(0))

    async def _enter_after_search(self) -> None:
        if await self.search_now():
            self._activated(self.model.index(0))

    def _into_results(self) -> None:
        if self.model.rowCount():
            self.results.setFocus()
            self.results.setCurrentIndex(self.model.index(0))

    def _activated(self, index: QModelIndex) -> None:
        if index.isValid():
            self.chosen.emit(self.model.hit(index.row()))
