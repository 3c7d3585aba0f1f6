"""Marking conversations read as messages arrive in the open one: a burst of arrivals costs
one read mark (and one receipt to the peer), not one per message."""

from __future__ import annotations

from PySide6.QtCore import QObject, QTimer

from app.core.engine import Engine
from app.ui.aio import spawn

MARK_READ_DELAY_MS = 300


class ReadMarks(QObject):
    def __init__(
        self, engine: Engine, delay_ms: int = MARK_READ_DELAY_MS, parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self._engine = engine
        self._ids: set[int] = set()
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(delay_ms)
        self._timer.timeout.connect(self._mark)
        self.stopped = False

    def soon(self, contact_id: int) -> None:
        """Mark this contact's conversation read after the delay (never call for a request:
        a request's messages stay unread until it is accepted)."""
        self._ids.add(contact_id)
        if not self._timer.isActive():
            self._timer.start()

    def stop(self) -> None:
        """The engine is about to close: mark nothing more."""
        self.stopped = True
        self._timer.stop()

    def _mark(self) -> None:
        ids, self._ids = self._ids, set()
        if self.stopped:
            return
        for contact_id in ids:
            spawn(self._engine.mark_read(contact_id), "marking read")
