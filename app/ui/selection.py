"""Changing a list's selection from code. A selection a person makes opens something; one the
window makes to show what is already open must not open it a second time, so it happens with
the selection model's signals blocked."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from PySide6.QtCore import QItemSelectionModel
from PySide6.QtWidgets import QAbstractItemView


@contextlib.contextmanager
def unheard(view: QAbstractItemView) -> Iterator[QItemSelectionModel]:
    """Selection changes inside the block (the model's or the code's) emit nothing; the view
    is repainted afterwards, as it heard nothing either."""
    selection = view.selectionModel()
    blocked = selection.blockSignals(True)
    try:
        yield selection
    finally:
        selection.blockSignals(blocked)
        view.viewport().update()


def mark_row(view: QAbstractItemView, row: int | None) -> None:
    """Make `row` the selected and current one (None: no row is), without anyone hearing."""
    with unheard(view) as selection:
        if row is None:
            selection.clear()
        else:
            view.setCurrentIndex(view.model().index(row, 0))
