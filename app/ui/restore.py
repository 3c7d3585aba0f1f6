"""Restore from a backup, offered on the first-start wizard: the backup file, its backup
passphrase, and the new profile's passphrase (twice, with the wizard's strength hint).

`restore_profile` builds the profile off the loop, with a progress bar here; a wrong
passphrase or a damaged or cut file is said, and nothing is left on disk (the engine sees to
that). Once restored, the dialog says what came back, including the contacts who cannot
reconnect by themselves; "Continue" (or closing the dialog: the profile exists now) opens it
as the unlock screen would, and `opened` hands its engine, not yet started, on as the wizard
hands on a new profile's.
"""

from __future__ import annotations

import shiboken6
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.core.backup import Restored, restore_profile
from app.core.engine import Engine
from app.core.errors import StoreError, UserError
from app.core.profile import ProfilePaths, open_profile
from app.crypto.passphrase import DEFAULT_PARAMS, KdfParams
from app.ui.a11y import name_controls
from app.ui.aio import spawn
from app.ui.strength import MIN_PASSPHRASE, passphrase_hint
from app.ui.text import local_time, sentence
from app.ui.theme import action_row, note_label

PROGRESS_STEPS = 1000  # thousandths: a byte count overflows the bar's int
BACKUP_FILTER = "AnonChat backups (*.backup);;All files (*)"


def counted(n: int, one: str, many: str | None = None) -> str:
    return f"{n:,} {one if n == 1 else (many or one + 's')}"


def summary(restored: Restored) -> str:
    """What came back, in sentences, and what the person has to do about the rest."""
    made = local_time(restored.made_at).strftime("%d %b %Y, %H:%M")
    lines = [
        f"Restored the backup made on {made}: {counted(restored.contacts, 'contact')}, "
        f"{counted(restored.messages, 'message')}, {counted(restored.files, 'file')} and "
        f"{counted(restored.groups, 'group')}."
    ]
    lost = restored.not_reconnected
    if lost:
        lines.append(
            f"{counted(lost, 'contact')} cannot reconnect by themselves: add them again by "
            "their code (scan each other's code as when you first met)."
        )
    if restored.contacts > lost:
        others = "The others" if lost else "Your contacts"
        lines.append(f"{others} reconnect by themselves once they are online.")
    if restored.requests_dropped:
        were = "was" if restored.requests_dropped == 1 else "were"
        lines.append(
            f"{counted(restored.requests_dropped, 'message request')} {were} left out: "
            "there is no way to answer from here."
        )
    if restored.files_left_out:
        were = "was" if restored.files_left_out == 1 else "were"
        lines.append(f"{counted(restored.files_left_out, 'file')} {were} not in the backup.")
    return " ".join(lines)


def _buttons_of(row: QHBoxLayout) -> list[QPushButton]:
    found = []
    for i in range(row.count()):
        item = row.itemAt(i)
        widget = item.widget() if item is not None else None
        if isinstance(widget, QPushButton):
            found.append(widget)
    return found


def _password_field(name: str) -> QLineEdit:
    field = QLineEdit()
    field.setEchoMode(QLineEdit.EchoMode.Password)
    field.setAccessibleName(name)
    return field


class RestoreDialog(QDialog):
    """The restore of a backup into the wizard's new profile (`paths`, which must not exist
    yet); `params`: the Argon2id cost of the new profile's key (None: the default)."""

    opened = Signal(object)  # Engine, not yet started

    def __init__(
        self, paths: ProfilePaths, params: KdfParams | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Restore from a backup")
        self.setWindowModality(Qt.WindowModality.WindowModal)
        self._paths = paths
        self._params = params or DEFAULT_PARAMS
        self.restored: Restored | None = None  # set once the profile is on disk
        self.busy = False
        self._handed_on = False
        self.chooser: QFileDialog | None = None  # the last backup file chooser

        intro = QLabel(
            "Bring a profile back from a backup file: your identity, contacts, messages and "
            "settings. It becomes this computer's profile, locked with a new passphrase."
        )
        intro.setWordWrap(True)
        self.source = QLineEdit()
        self.source.setAccessibleName("Backup file")
        self.source.setPlaceholderText("anonchat-….backup")
        self.choose_button = QPushButton("C&hoose…")
        self.choose_button.setAccessibleName("Choose the backup file")
        self.choose_button.clicked.connect(self.choose_file)
        source_row = QHBoxLayout()
        source_row.setContentsMargins(0, 0, 0, 0)
        source_row.addWidget(self.source, 1)
        source_row.addWidget(self.choose_button)
        self.backup_pass = _password_field("Backup passphrase")
        self.passphrase = _password_field("New passphrase")
        self.repeat = _password_field("Repeat new passphrase")
        self.hint = QLabel()
        self.hint.setAccessibleName("Passphrase strength")
        self.hint.hide()  # until something is typed
        self.passphrase.textChanged.connect(self._update_hint)
        self.repeat.textChanged.connect(self._update_hint)
        self.progress = QProgressBar()
        self.progress.setRange(0, PROGRESS_STEPS)
        self.progress.setAccessibleName("Restore progress")
        self.progress.hide()
        self.error = note_label(error=True)
        self.summary_label = note_label()
        self.summary_label.setAccessibleName("What was restored")
        self.action, buttons = action_row(self, "&Restore", "Restore", self._submit)
        self.cancel = next(b for b in _buttons_of(buttons) if b is not self.action)
        self._fields: tuple[QWidget, ...] = (
            self.source,
            self.choose_button,
            self.backup_pass,
            self.passphrase,
            self.repeat,
        )

        form = QFormLayout()
        form.addRow("Backup file", source_row)
        form.addRow("Backup passphrase", self.backup_pass)
        form.addRow("New passphrase", self.passphrase)
        form.addRow("Repeat", self.repeat)
        form.addRow("", self.hint)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addWidget(self.progress)
        layout.addWidget(self.error)
        layout.addWidget(self.summary_label)
        layout.addStretch(1)
        layout.addLayout(buttons)
        for field in (self.source, self.backup_pass, self.passphrase, self.repeat):
            field.returnPressed.connect(self._submit)
        name_controls(self)
        self.resize(520, 380)

    def _update_hint(self) -> None:
        text = passphrase_hint(self.passphrase.text(), self.repeat.text())
        self.hint.setText(text)
        self.hint.setVisible(bool(text))

    def choose_file(self) -> QFileDialog:
        """The backup file chooser; what is chosen goes into the file field."""
        chooser = QFileDialog(self, "Choose a backup", self.source.text(), BACKUP_FILTER)
        chooser.setFileMode(QFileDialog.FileMode.ExistingFile)
        chooser.setAccessibleName("Choose the backup file")
        chooser.fileSelected.connect(self.source.setText)
        chooser.open()
        self.chooser = chooser
        return chooser

    def _problem(self) -> str | None:
        if not self.source.text().strip():
            return "Choose the backup file."
        if not self.backup_pass.text():
            return "Enter the backup's passphrase."
        if len(self.passphrase.text()) < MIN_PASSPHRASE:
            return f"The new passphrase needs at least {MIN_PASSPHRASE} characters."
        if self.passphrase.text() != self.repeat.text():
            return "The two new passphrases differ."
        return None

    def _submit(self) -> None:
        if self.busy:
            return
        if self.restored is not None:
            spawn(self.open_restored(), "opening the restored profile")
        else:
            spawn(self.restore(), "restoring a backup")

    async def restore(self) -> Restored | None:
        """Restore the backup into the new profile; what came back, or None (the reason
        shown, nothing created)."""
        if self.busy or self.restored is not None:
            return self.restored
        problem = self._problem()
        if problem is not None:
            self._show_error(problem)
            return None
        self._set_busy(True, "Restoring…")
        self.progress.setRange(0, 0)  # busy, until the first report (after Argon2id)
        self.progress.show()
        try:
            restored = await restore_profile(
                self._paths,
                self.source.text().strip(),
                self.backup_pass.text(),
                self.passphrase.text(),
                params=self._params,
                progress=self._progress,
            )
        except (UserError, StoreError) as exc:
            self.progress.hide()
            self._set_busy(False, "&Restore")
            self._show_error(sentence(str(exc)))
            return None
        except BaseException:
            self._set_busy(False, "&Restore")
            raise
        self.restored = restored
        self.progress.setRange(0, PROGRESS_STEPS)
        self.progress.setValue(PROGRESS_STEPS)
        self.backup_pass.clear()
        self.summary_label.setText(summary(restored))
        self.summary_label.show()
        self.cancel.hide()
        self._set_busy(False, "&Continue")
        self.action.setAccessibleName("Continue")
        self.action.setFocus()
        return restored

    async def open_restored(self) -> Engine | None:
        """Open the restored profile and hand its engine on; None (the reason shown) when
        it does not open."""
        if self.busy or self.restored is None or self._handed_on:
            return None
        self._set_busy(True, "Opening…")
        try:
            opened = await open_profile(self._paths, self.passphrase.text())
        except (UserError, StoreError) as exc:
            self._set_busy(False, "&Continue")
            self._show_error(sentence(str(exc)))
            return None
        except BaseException:
            self._set_busy(False, "&Continue")
            raise
        try:
            engine = await Engine.open(opened)
        except BaseException:
            await opened.store.close()
            opened.lock.release()
            self._set_busy(False, "&Continue")
            raise
        self._handed_on = True
        self.busy = False
        self.passphrase.clear()
        self.repeat.clear()
        self.opened.emit(engine)
        self.accept()
        return engine

    def _progress(self, done: int, total: int) -> None:
        if not shiboken6.isValid(self.progress):
            return
        step = PROGRESS_STEPS if total <= 0 else min(PROGRESS_STEPS, done * PROGRESS_STEPS // total)
        self.progress.setRange(0, PROGRESS_STEPS)
        self.progress.setValue(step)

    def _set_busy(self, busy: bool, label: str) -> None:
        self.busy = busy
        made = self.restored is not None
        for field in self._fields:
            field.setEnabled(not busy and not made)
        self.action.setEnabled(not busy)
        self.action.setText(label)
        self.cancel.setEnabled(not busy)
        if busy:
            self.error.hide()

    def _show_error(self, text: str) -> None:
        self.error.setText(text)
        self.error.show()

    def reject(self) -> None:
        """Cancel, Escape and closing the window: not while restoring or opening; once
        restored, they go on into the profile (it exists now, so the wizard cannot make
        another one there)."""
        if self.busy:
            return
        if self.restored is not None and not self._handed_on:
            spawn(self.open_restored(), "opening the restored profile")
            return
        super().reject()
