"""Settings ▸ Backups: a backup file now, and the schedule of backups into a folder.

"Back up now" takes the backup's passphrase twice (or the scheduled backups' one), then
asks where to write the file (named as the scheduled ones are) and runs the engine's backup
with a progress bar; the engine reads and writes off the loop, so the window goes on
meanwhile. The schedule has its own button:
the engine refuses what cannot run (a schedule that is on needs a folder and a passphrase)
and then stores nothing. Its passphrase is never shown, only whether one is set. "Last
backup" follows the engine's BackupFinished events, which the window connects to
`on_finished`.

Closing Settings while a backup runs only hides the dialog: the backup goes on, its outcome
is said through `said` (the window's status bar), and then the dialog goes.
"""

from __future__ import annotations

from pathlib import Path

import shiboken6
from PySide6.QtCore import QEvent, QObject, QStandardPaths, Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.core.backup import (
    DEFAULT_KEEP,
    MAX_KEEP,
    RETRY_AFTER_MS,
    BackupEvery,
    BackupSchedule,
    Written,
    scheduled_name,
)
from app.core.engine import Engine
from app.core.errors import StoreError, UserError
from app.core.events import BackupFinished
from app.core.profile import ProfilePaths, now_ms
from app.domain.files import size_words
from app.ui.aio import spawn
from app.ui.strength import MIN_PASSPHRASE, passphrase_hint
from app.ui.text import local_time, safe_text, sentence
from app.ui.theme import note_label

PROGRESS_STEPS = 1000  # the bar counts thousandths: a byte count overflows its int
EVERY_LABELS = {
    BackupEvery.OFF: "Off",
    BackupEvery.DAILY: "Every day",
    BackupEvery.WEEKLY: "Every week",
}
BACKUP_FILTER = "AnonChat backups (*.backup);;All files (*)"


def when_words(ms: int) -> str:
    return local_time(ms).strftime("%d %b %Y, %H:%M")


def default_name(directory: Path | None, at_ms: int) -> str:
    """A manual backup's name, as a scheduled one of this profile would be named."""
    return scheduled_name(ProfilePaths(directory or Path("profile")), at_ms)


def _password_field(name: str) -> QLineEdit:
    field = QLineEdit()
    field.setEchoMode(QLineEdit.EchoMode.Password)
    field.setAccessibleName(name)
    return field


class BackupsPage(QWidget):
    """The Backups tab. `directory`: the profile's folder, whose name the backups' names
    carry (None: "profile")."""

    said = Signal(str)  # a backup's outcome once Settings was closed under it

    def __init__(
        self, engine: Engine, directory: Path | None = None, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self._engine = engine
        self._directory = directory
        self.saver: QFileDialog | None = None  # the last "Back up now" file chooser
        self.folder_chooser: QFileDialog | None = None  # the last schedule folder chooser
        self.backing_up = False
        self._holder: QWidget | None = None  # the window kept alive while a backup runs
        self._close_after = False  # it was closed meanwhile: close it once the backup ends
        self._last_at: int | None = None

        # -- back up now ---------------------------------------------------------------
        self.now_pass = _password_field("Backup passphrase")
        self.now_repeat = _password_field("Repeat backup passphrase")
        self.now_hint = QLabel()
        self.now_hint.setAccessibleName("Backup passphrase strength")
        self.now_hint.hide()  # until something is typed
        self.use_scheduled = QCheckBox("Use the scheduled backups' &passphrase")
        self.use_scheduled.setAccessibleName("Use the scheduled backups' passphrase")
        self.use_scheduled.hide()  # until the schedule has one
        self.use_scheduled.toggled.connect(self._use_scheduled)
        self.include_files = QCheckBox("Include &files")
        self.include_files.setAccessibleName("Include files")
        self.include_files.setChecked(True)
        self.include_files.setToolTip(
            "Leave this off for a smaller backup: the messages about files stay, their "
            "contents do not."
        )
        self.progress = QProgressBar()
        self.progress.setRange(0, PROGRESS_STEPS)
        self.progress.setAccessibleName("Backup progress")
        self.progress.hide()
        self.now_result = note_label()
        self.now_result.setAccessibleName("Backup result")
        self.now_error = note_label(error=True)
        self.back_up_button = QPushButton("&Back up now…")
        self.back_up_button.setAccessibleName("Back up now")
        self.back_up_button.clicked.connect(self.choose_file)
        now_note = note_label()
        now_note.setText(
            "A backup holds your identity, contacts, messages and settings, sealed under its "
            "own passphrase. Without that passphrase it cannot be restored."
        )
        now_note.show()
        now_box = QGroupBox("Back up now")
        now_form = QFormLayout(now_box)
        now_form.addRow(now_note)
        now_form.addRow("", self.use_scheduled)
        now_form.addRow("Passphrase", self.now_pass)
        now_form.addRow("Repeat", self.now_repeat)
        now_form.addRow("", self.now_hint)
        now_form.addRow("", self.include_files)
        now_form.addRow(self.progress)
        now_form.addRow(self.now_result)
        now_form.addRow(self.now_error)
        now_form.addRow(_right(self.back_up_button))
        for field in (self.now_pass, self.now_repeat):
            field.textChanged.connect(self._update_now_hint)

        # -- the schedule --------------------------------------------------------------
        self.folder = QLineEdit()
        self.folder.setAccessibleName("Backup folder")
        self.folder.setPlaceholderText("A folder, or a USB stick")
        self.folder_button = QPushButton("C&hoose…")
        self.folder_button.setAccessibleName("Choose the backup folder")
        self.folder_button.clicked.connect(self.choose_folder)
        folder_row = QHBoxLayout()
        folder_row.setContentsMargins(0, 0, 0, 0)
        folder_row.addWidget(self.folder, 1)
        folder_row.addWidget(self.folder_button)
        self.every = QComboBox()
        self.every.setAccessibleName("Back up")
        for every, label in EVERY_LABELS.items():
            self.every.addItem(label, every.value)
        self.keep = QSpinBox()
        self.keep.setRange(1, MAX_KEEP)
        self.keep.setValue(DEFAULT_KEEP)
        self.keep.setSuffix(" backups")
        self.keep.setAccessibleName("Keep the newest")
        for field in self.keep.findChildren(QLineEdit):  # the box's own text field
            field.setAccessibleName(self.keep.accessibleName())
        self.pass_state = QLabel()
        self.pass_state.setWordWrap(True)
        self.pass_state.setAccessibleName("Scheduled backups' passphrase")
        self.sched_pass = _password_field("New passphrase for scheduled backups")
        self.sched_repeat = _password_field("Repeat passphrase for scheduled backups")
        self.sched_hint = QLabel()
        self.sched_hint.setAccessibleName("Scheduled passphrase strength")
        self.sched_hint.hide()
        for field in (self.sched_pass, self.sched_repeat):
            field.textChanged.connect(self._update_sched_hint)
        self.last_backup = QLabel()
        self.last_backup.setWordWrap(True)
        self.last_backup.setTextFormat(Qt.TextFormat.PlainText)
        self.last_backup.setAccessibleName("Last backup")
        self.last_error = note_label(error=True)
        self.last_error.setAccessibleName("Last backup error")
        self.schedule_result = note_label()
        self.schedule_result.setAccessibleName("Schedule result")
        self.schedule_error = note_label(error=True)
        self.save_schedule_button = QPushButton("Sa&ve schedule")
        self.save_schedule_button.setAccessibleName("Save the backup schedule")
        self.save_schedule_button.clicked.connect(
            lambda: spawn(self.save_schedule(), "saving the backup schedule")
        )
        self.schedule_box = QGroupBox("Scheduled backups")
        self.schedule_box.setEnabled(False)  # until the schedule is read
        schedule_form = QFormLayout(self.schedule_box)
        schedule_form.addRow("Folder", folder_row)
        schedule_form.addRow("Back up", self.every)
        schedule_form.addRow("Keep the newest", self.keep)
        schedule_form.addRow("Passphrase", self.pass_state)
        schedule_form.addRow("New passphrase", self.sched_pass)
        schedule_form.addRow("Repeat", self.sched_repeat)
        schedule_form.addRow("", self.sched_hint)
        schedule_form.addRow(self.last_backup)
        schedule_form.addRow(self.last_error)
        schedule_form.addRow(self.schedule_result)
        schedule_form.addRow(self.schedule_error)
        schedule_form.addRow(_right(self.save_schedule_button))

        layout = QVBoxLayout(self)
        layout.addWidget(now_box)
        layout.addWidget(self.schedule_box)
        layout.addStretch(1)
        self._show_last(None, "")
        self.loaded = spawn(self.load(), "reading the backup schedule")

    # -- the schedule ----------------------------------------------------------------------

    async def load(self) -> BackupSchedule | None:
        """Show the schedule as the engine has it."""
        try:
            schedule = await self._engine.backup_schedule()
        except (UserError, StoreError) as exc:
            if shiboken6.isValid(self):
                self._say_error(self.schedule_error, exc)
            return None
        if shiboken6.isValid(self):
            self._show_schedule(schedule)
            self.schedule_box.setEnabled(True)
        return schedule

    def _show_schedule(self, schedule: BackupSchedule) -> None:
        self.folder.setText(schedule.folder)
        self.every.setCurrentIndex(max(0, self.every.findData(schedule.every.value)))
        self.keep.setValue(schedule.keep)
        if schedule.has_passphrase and self.use_scheduled.isHidden():
            self.use_scheduled.show()
            self.use_scheduled.setChecked(True)
        if schedule.has_passphrase:
            self.pass_state.setText("Set (never shown). Type a new one to change it.")
            self.sched_pass.setPlaceholderText("Unchanged")
        else:
            self.pass_state.setText("None yet: scheduled backups need one.")
            self.sched_pass.setPlaceholderText("")
        self._show_last(schedule.last_backup_at, schedule.last_error)

    def _show_last(self, at: int | None, error: str) -> None:
        self._last_at = at
        self.last_backup.setText(
            "Last scheduled backup: " + ("none yet" if at is None else when_words(at))
        )
        if error:
            minutes = RETRY_AFTER_MS // 60_000
            self.last_error.setText(
                f"The last attempt failed: {sentence(error)} "
                f"It is tried again every {minutes} minutes while backups are on."
            )
        self.last_error.setVisible(bool(error))

    def on_finished(self, event: BackupFinished) -> None:
        """A scheduled backup was written or failed (the engine's BackupFinished)."""
        if event.error:
            self._show_last(self._last_at, event.error)
        else:
            self._show_last(event.at, "")

    def _update_sched_hint(self) -> None:
        _show_hint(self.sched_hint, self.sched_pass, self.sched_repeat)

    def choose_folder(self) -> QFileDialog:
        """The folder chooser (a USB stick); what is chosen goes into the folder field."""
        chooser = QFileDialog(self, "Folder for scheduled backups", self.folder.text())
        chooser.setFileMode(QFileDialog.FileMode.Directory)
        chooser.setOption(QFileDialog.Option.ShowDirsOnly, True)
        chooser.setAccessibleName("Choose the backup folder")
        chooser.fileSelected.connect(self.folder.setText)
        chooser.open()
        self.folder_chooser = chooser
        return chooser

    async def save_schedule(self) -> BackupSchedule | None:
        """Store the schedule as the page shows it; None (the reason shown, nothing
        stored) when the engine refuses it."""
        self.schedule_error.hide()
        self.schedule_result.hide()
        new = self.sched_pass.text()
        if new != self.sched_repeat.text():
            self.schedule_error.setText("The two passphrases differ.")
            self.schedule_error.show()
            return None
        self.save_schedule_button.setEnabled(False)
        try:
            schedule = await self._engine.set_backup_schedule(
                folder=self.folder.text().strip(),
                every=BackupEvery(self.every.currentData()),
                keep=self.keep.value(),
                passphrase=new or None,
            )
        except (UserError, StoreError) as exc:
            if shiboken6.isValid(self):
                self._say_error(self.schedule_error, exc)
            return None
        finally:
            if shiboken6.isValid(self):
                self.save_schedule_button.setEnabled(True)
        if not shiboken6.isValid(self):
            return schedule
        self.sched_pass.clear()
        self.sched_repeat.clear()
        self._show_schedule(schedule)
        if schedule.every is BackupEvery.OFF:
            said = "Saved. Scheduled backups are off."
        else:
            said = (
                f"Saved. A backup {EVERY_LABELS[schedule.every].lower()} into "
                f"{safe_text(schedule.folder)}, the newest {schedule.keep} kept."
            )
        self.schedule_result.setText(said)
        self.schedule_result.show()
        return schedule

    # -- back up now -----------------------------------------------------------------------

    def _update_now_hint(self) -> None:
        _show_hint(self.now_hint, self.now_pass, self.now_repeat)

    def _use_scheduled(self, on: bool) -> None:
        for field in (self.now_pass, self.now_repeat):
            field.setEnabled(not on)
        self.now_error.hide()

    def _scheduled_passphrase(self) -> bool:
        return self.use_scheduled.isVisibleTo(self) and self.use_scheduled.isChecked()

    def _now_problem(self) -> str | None:
        if self._scheduled_passphrase():
            return None
        if len(self.now_pass.text()) < MIN_PASSPHRASE:
            return f"The backup passphrase needs at least {MIN_PASSPHRASE} characters."
        if self.now_pass.text() != self.now_repeat.text():
            return "The two passphrases differ."
        return None

    def _check_now(self) -> bool:
        self.now_error.hide()
        problem = self._now_problem()
        if problem is not None:
            self.now_error.setText(problem)
            self.now_error.show()
            return False
        return True

    def choose_file(self) -> QFileDialog | None:
        """Once the passphrase is right, ask where to write the backup (the scheduled
        backups' folder first, else the documents folder); the backup starts when a file is
        chosen. None when there is a problem to fix first (said under the fields)."""
        if self.backing_up or not self._check_now():
            return None
        self.now_result.hide()
        home = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.DocumentsLocation)
        folder = Path(self.folder.text().strip() or home or Path.home())
        start = str(folder / default_name(self._directory, now_ms()))
        saver = QFileDialog(self, "Back up to", start, BACKUP_FILTER)
        saver.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        saver.setFileMode(QFileDialog.FileMode.AnyFile)
        saver.setDefaultSuffix("backup")
        saver.setAccessibleName("Back up to")
        saver.selectFile(start)
        saver.fileSelected.connect(self.back_up_to)
        saver.open()
        self.saver = saver
        return saver

    def back_up_to(self, path: str) -> None:
        spawn(self.back_up(Path(path)), "backing up")

    async def back_up(self, path: Path) -> Written | None:
        """Back the profile up to `path` under the passphrase typed; the file written, or
        None (the reason shown, nothing else changed)."""
        if self.backing_up or not self._check_now():
            return None
        self.backing_up = True
        self.now_result.hide()
        self.progress.setRange(0, 0)  # busy, until the first report (after Argon2id)
        self.progress.show()
        self.back_up_button.setEnabled(False)
        self.back_up_button.setText("Backing up…")
        scheduled = self._scheduled_passphrase()
        for field in (self.now_pass, self.now_repeat, self.include_files, self.use_scheduled):
            field.setEnabled(False)
        self._hold()
        try:
            written = await self._engine.backup(
                path,
                None if scheduled else self.now_pass.text(),
                include_files=self.include_files.isChecked(),
                progress=self._progress,
            )
        except (UserError, StoreError) as exc:
            if shiboken6.isValid(self):
                self._say_error(self.now_error, exc)
                self.progress.hide()
                self._done(f"The backup failed: {sentence(str(exc))}")
            return None
        except BaseException:
            if shiboken6.isValid(self):
                self._done("")
            raise
        if not shiboken6.isValid(self):
            return written
        self.progress.setRange(0, PROGRESS_STEPS)
        self.progress.setValue(PROGRESS_STEPS)
        self.now_pass.clear()
        self.now_repeat.clear()
        said = f"Backed up to {safe_text(str(written.path))} ({size_words(written.size)})."
        self.now_result.setText(said)
        self.now_result.show()
        self._done(said)
        return written

    def _progress(self, done: int, total: int) -> None:
        if not shiboken6.isValid(self.progress):  # Settings went meanwhile
            return
        step = PROGRESS_STEPS if total <= 0 else min(PROGRESS_STEPS, done * PROGRESS_STEPS // total)
        self.progress.setRange(0, PROGRESS_STEPS)
        self.progress.setValue(step)

    def _hold(self) -> None:
        """Keep Settings alive while the backup runs: closed meanwhile, it is only hidden."""
        self._holder = self.window()
        self._close_after = False
        self._holder.installEventFilter(self)

    def _done(self, said: str) -> None:
        """The backup ended: fields back, and Settings closed if it was closed meanwhile
        (saying `said` in the window, since the page can no longer show it)."""
        self.backing_up = False
        self.back_up_button.setEnabled(True)
        self.back_up_button.setText("&Back up now…")
        for field in (self.include_files, self.use_scheduled):
            field.setEnabled(True)
        self._use_scheduled(self._scheduled_passphrase())
        holder, self._holder = self._holder, None
        if holder is None:
            return
        holder.removeEventFilter(self)
        if self._close_after:
            self._close_after = False
            if said:
                self.said.emit(said)
            holder.close()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self._holder and event.type() == QEvent.Type.Close:
            event.ignore()
            self._close_after = True
            self._holder.hide()
            return True
        return False

    def _say_error(self, label: QLabel, exc: Exception) -> None:
        label.setText(sentence(str(exc)))
        label.show()


def _show_hint(hint: QLabel, passphrase: QLineEdit, repeat: QLineEdit) -> None:
    text = passphrase_hint(passphrase.text(), repeat.text())
    hint.setText(text)
    hint.setVisible(bool(text))


def _right(button: QPushButton) -> QHBoxLayout:
    row = QHBoxLayout()
    row.addStretch(1)
    row.addWidget(button)
    return row
