"""Choosing a conversation's disappearing-messages timer: off, 5 minutes, 1 hour, 1 day,
1 week, or a custom time (a number and a unit). The menu only says what was chosen; the
conversation panel asks the engine."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtGui import QAction, QActionGroup
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QLabel,
    QMenu,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.domain.messages import MAX_TIMER_S, TIMER_CHOICES, timer_words

UNITS = (("minutes", 60), ("hours", 3600), ("days", 86_400), ("weeks", 604_800))


def timer_label(seconds: int) -> str:
    words = timer_words(seconds)
    return "Off" if words == "off" else words[0].upper() + words[1:]


class TimerMenu(QMenu):
    """The choices, the one in force checked; `chosen` carries the seconds (0: off)."""

    chosen = Signal(int)

    def __init__(self, current: int, parent: QWidget | None = None) -> None:
        super().__init__("Disappearing messages", parent)
        self.current = current
        group = QActionGroup(self)
        for seconds in TIMER_CHOICES:
            action = QAction(timer_label(seconds), self, checkable=True)
            action.setChecked(seconds == current)
            action.triggered.connect(lambda _=False, s=seconds: self.chosen.emit(s))
            group.addAction(action)
            self.addAction(action)
        self.addSeparator()
        custom = "Custom…" if current in TIMER_CHOICES else f"Custom ({timer_words(current)})…"
        self.custom = QAction(custom, self, checkable=True)
        self.custom.setChecked(current not in TIMER_CHOICES)
        self.custom.triggered.connect(self._ask_custom)
        group.addAction(self.custom)
        self.addAction(self.custom)
        self.dialog: CustomTimerDialog | None = None

    def _ask_custom(self) -> None:
        self.dialog = CustomTimerDialog(self.parentWidget())
        self.dialog.chosen.connect(self.chosen)
        self.dialog.show()


class CustomTimerDialog(QDialog):
    """A number and a unit, up to a year; non-modal, like every dialog of the app."""

    chosen = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Disappearing messages")
        layout = QVBoxLayout(self)
        intro = QLabel("Messages disappear this long after they are sent or read:")
        intro.setWordWrap(True)
        layout.addWidget(intro)
        row = QHBoxLayout()
        self.amount = QSpinBox()
        self.amount.setRange(1, 999)
        self.amount.setValue(10)
        self.amount.setAccessibleName("How many")
        self.unit = QComboBox()
        for name, _ in UNITS:
            self.unit.addItem(name)
        self.unit.setAccessibleName("Unit")
        row.addWidget(self.amount)
        row.addWidget(self.unit)
        layout.addLayout(row)
        self.error = QLabel()
        self.error.setWordWrap(True)
        self.error.hide()
        layout.addWidget(self.error)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.apply)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)

    def seconds(self) -> int:
        return self.amount.value() * UNITS[self.unit.currentIndex()][1]

    def apply(self) -> None:
        if self.seconds() > MAX_TIMER_S:
            self.error.setText("The longest timer is one year.")
            self.error.show()
            return
        self.chosen.emit(self.seconds())
        self.accept()
