"""The reaction picker: a popup of emoji buttons (the usual quick reactions first), each named
for screen readers, and "Remove" when the user already reacted. Keyboard: arrows move, Enter
picks, Escape closes."""

from __future__ import annotations

import unicodedata

from PySide6.QtCore import QPoint, Qt, Signal
from PySide6.QtGui import QFont, QKeyEvent
from PySide6.QtWidgets import QFrame, QGridLayout, QPushButton, QVBoxLayout, QWidget

QUICK = ("👍", "❤️", "😂", "😮", "😢", "🙏", "🎉", "👎")
MORE = (
    "😀", "😊", "😍", "🥰", "😘", "😉", "😎", "🤔",
    "😅", "🤣", "🙂", "🙃", "😇", "🥳", "😴", "🤯",
    "😡", "😱", "😬", "🙄", "😏", "🤗", "🤝", "👏",
    "🙌", "💪", "👌", "✌️", "🤞", "👋", "🫶", "👀",
    "🔥", "✨", "💯", "✅", "❌", "⚠️", "❓", "❗",
    "💔", "💙", "💚", "💛", "🌹", "☕", "🍕", "🎂",
)  # fmt: skip
COLUMNS = 8


def emoji_name(emoji: str) -> str:
    """What a screen reader says for an emoji: its Unicode name, in lower case."""
    names = [unicodedata.name(ch, "") for ch in emoji if unicodedata.category(ch) != "Mn"]
    return " ".join(n.lower() for n in names if n) or "emoji"


class EmojiPicker(QFrame):
    """Pops up at a point; `picked` carries the emoji, or "" for "Remove my reaction"."""

    picked = Signal(str)

    def __init__(self, current: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent, Qt.WindowType.Popup)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setAccessibleName("Pick a reaction")
        self.buttons: list[QPushButton] = []
        layout = QVBoxLayout(self)
        grid = QGridLayout()
        grid.setSpacing(2)
        font = QFont(self.font())
        font.setPointSizeF(font.pointSizeF() * 1.5)
        for i, emoji in enumerate((*QUICK, *MORE)):
            button = QPushButton(emoji)
            button.setFont(font)
            button.setFlat(emoji != current)
            button.setCheckable(True)
            button.setChecked(emoji == current)
            button.setAccessibleName(emoji_name(emoji))
            button.setToolTip(emoji_name(emoji))
            button.setFixedSize(
                button.fontMetrics().height() + 14, button.fontMetrics().height() + 10
            )
            button.clicked.connect(lambda _=False, e=emoji: self._pick(e))
            grid.addWidget(button, i // COLUMNS, i % COLUMNS)
            self.buttons.append(button)
        layout.addLayout(grid)
        self.remove: QPushButton | None = None
        if current:
            self.remove = QPushButton(f"Remove my reaction {current}")
            self.remove.clicked.connect(lambda: self._pick(""))
            layout.addWidget(self.remove)

    def popup_at(self, at: QPoint) -> None:
        self.adjustSize()
        self.move(at)
        self.show()
        self.buttons[0].setFocus()

    def _pick(self, emoji: str) -> None:
        self.picked.emit(emoji)
        self.close()

    def keyPressEvent(self, e: QKeyEvent) -> None:
        focused = self.focusWidget()
        if focused in self.buttons:
            i = self.buttons.index(focused)
            step = {
                Qt.Key.Key_Left: -1,
                Qt.Key.Key_Right: 1,
                Qt.Key.Key_Up: -COLUMNS,
                Qt.Key.Key_Down: COLUMNS,
            }.get(Qt.Key(e.key()))
            if step is not None:
                self.buttons[max(0, min(len(self.buttons) - 1, i + step))].setFocus()
                return
            if e.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
                self._pick(self.buttons[i].text())
                return
        super().keyPressEvent(e)
