"""The line above the composer while a message is answered or edited: which one, and a way
out (✕, or Escape in the composer). It holds the composer's text for an edit."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QToolButton, QWidget

from app.domain.messages import Direction, Message, describe
from app.ui.chatview import Composer
from app.ui.text import preview


class AnswerBar(QFrame):
    """`replying`: the message the next one sent answers; `editing`: the message of ours the
    composer's text replaces. At most one of them at a time."""

    def __init__(self, composer: Composer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("answerBar")
        self._composer = composer
        self.replying: Message | None = None
        self.editing: Message | None = None
        self.text = QLabel()
        self.text.setTextFormat(Qt.TextFormat.PlainText)
        self.text.setWordWrap(True)
        self.text.setAccessibleName("Answering")
        cancel = QToolButton()
        cancel.setText("✕")
        cancel.setAccessibleName("Cancel reply or edit")
        cancel.setToolTip("Cancel (Esc)")
        cancel.clicked.connect(self.cancel)
        row = QHBoxLayout(self)
        row.setContentsMargins(4, 2, 4, 2)
        row.addWidget(self.text, 1)
        row.addWidget(cancel)
        composer.escaped.connect(self.cancel)
        self.hide()

    def reply(self, message: Message, name: str) -> None:
        """The next message answers `message` (`name`: the contact's, made safe)."""
        if self.editing is not None:
            self._composer.clear()
        self.replying, self.editing = message, None
        who = "yourself" if message.direction is Direction.OUTGOING else name
        self.text.setText(f"Replying to {who}: {preview(describe(message))}")
        self.show()
        self._composer.setFocus()

    def edit(self, message: Message) -> None:
        """The composer holds our message's text; sending changes it."""
        self.replying, self.editing = None, message
        self.text.setText(f"Editing your message: {preview(message.body)}")
        self.show()
        self._composer.setPlainText(message.body)
        self._composer.moveCursor(self._composer.textCursor().MoveOperation.End)
        self._composer.setFocus()

    def cancel(self) -> None:
        if self.editing is not None:
            self._composer.clear()
        self.take()

    def take(self) -> tuple[Message | None, Message | None]:
        """What the message being sent answers or edits; the bar is done with it."""
        held = self.replying, self.editing
        self.replying = self.editing = None
        self.hide()
        return held

    def drop(self, message_rows: set[int]) -> None:
        """These messages went (or can no longer be answered): nothing to answer or edit."""
        if any(m is not None and m.id in message_rows for m in (self.replying, self.editing)):
            self.cancel()
