"""Settings ▸ Passphrase: the duress passphrase, set or cleared.

Entered at unlock instead of the passphrase, it wipes the profile and opens a new, empty one
(app/core/profile.py). Whether one is set is kept nowhere this section could read (the key
header looks the same either way), so it offers both buttons and says only what it just did.
"""

from __future__ import annotations

from PySide6.QtWidgets import QFormLayout, QHBoxLayout, QLabel, QLineEdit, QPushButton, QWidget

from app.core.engine import Engine
from app.core.errors import StoreError, UserError
from app.ui.aio import spawn
from app.ui.strength import MIN_PASSPHRASE, passphrase_hint
from app.ui.text import sentence
from app.ui.theme import note_label

ABOUT = (
    "A second passphrase for when someone makes you unlock AnonChat. Entered instead of your "
    "passphrase, it destroys this profile and opens an empty one under your name and relays, "
    "as if nothing happened; from then on it is that profile's passphrase. It takes your name "
    "and relays as they are when you set it: set it again after changing them. AnonChat never "
    "shows whether one is set."
)


class DuressSection(QWidget):
    """Set or clear; what was done is said here only (not in the window's status line)."""

    def __init__(self, engine: Engine, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._engine = engine
        about = QLabel(ABOUT)
        about.setWordWrap(True)
        about.setAccessibleName("About the duress passphrase")
        self.passphrase = QLineEdit()
        self.repeat = QLineEdit()
        for field, label in (
            (self.passphrase, "Duress passphrase"),
            (self.repeat, "Repeat duress passphrase"),
        ):
            field.setEchoMode(QLineEdit.EchoMode.Password)
            field.setAccessibleName(label)
        self.hint = QLabel()
        self.hint.setAccessibleName("Duress passphrase strength")
        self.passphrase.textChanged.connect(self._update_hint)
        self.repeat.textChanged.connect(self._update_hint)
        self.set_button = QPushButton("Set &duress passphrase")
        self.set_button.setAccessibleName("Set duress passphrase")
        self.set_button.clicked.connect(lambda: spawn(self.set_duress(), "setting it"))
        self.clear_button = QPushButton("C&lear it")
        self.clear_button.setAccessibleName("Clear the duress passphrase")
        self.clear_button.clicked.connect(lambda: spawn(self.clear_duress(), "clearing it"))
        self.result = note_label()
        self.result.setAccessibleName("Duress passphrase result")
        self.error = note_label(error=True)
        self.error.setAccessibleName("Duress passphrase error")
        buttons = QHBoxLayout()
        buttons.addWidget(self.set_button)
        buttons.addWidget(self.clear_button)
        buttons.addStretch(1)
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow(QLabel("<b>Duress passphrase</b>"))
        form.addRow(about)
        form.addRow("Du&ress", self.passphrase)
        form.addRow("Repea&t", self.repeat)
        form.addRow("", self.hint)
        form.addRow("", self.error)
        form.addRow("", self.result)
        form.addRow("", buttons)

    def _update_hint(self) -> None:
        self.hint.setText(passphrase_hint(self.passphrase.text(), self.repeat.text()))

    def _busy(self, busy: bool) -> None:
        for widget in (self.set_button, self.clear_button, self.passphrase, self.repeat):
            widget.setEnabled(not busy)
        if busy:
            self.error.hide()
            self.result.hide()

    def _done(self, text: str) -> None:
        self.result.setText(text)
        self.result.show()

    async def set_duress(self) -> bool:
        """Set what is typed; True when it took (the reason is shown when not)."""
        chosen = self.passphrase.text()
        problem = None
        if len(chosen) < MIN_PASSPHRASE:
            problem = f"The duress passphrase needs at least {MIN_PASSPHRASE} characters."
        elif chosen != self.repeat.text():
            problem = "The two duress passphrases differ."
        if problem is not None:
            self.error.setText(problem)
            self.error.show()
            return False
        self._busy(True)
        try:
            await self._engine.set_duress(chosen)
        except (UserError, StoreError) as exc:
            self.error.setText(sentence(str(exc)))
            self.error.show()
            return False
        finally:
            self._busy(False)
        self.passphrase.clear()
        self.repeat.clear()
        self._done("The duress passphrase is set.")
        return True

    async def clear_duress(self) -> bool:
        self._busy(True)
        try:
            await self._engine.clear_duress()
        except (UserError, StoreError) as exc:
            self.error.setText(sentence(str(exc)))
            self.error.show()
            return False
        finally:
            self._busy(False)
        self._done("There is no duress passphrase now.")
        return True
