"""Settings: who you are to contacts, where you are reached, how you connect, privacy, looks,
passphrase.

Changes apply with "Save", which closes the dialog once every change took (the window then
says what was saved); "Cancel" closes it applying nothing. A failure is said next to the
form, keeps the dialog open and leaves the rest as it was. The relay is applied first: the
engine tests a new one (connect, hello, a round trip) before it moves any contact there, so
a relay it cannot reach saves nothing, and its reason is shown under the field. The proxy
comes next, so a proxy the engine refuses saves nothing else either. The proxy and the
isolation apply when the profile is next opened, and the window says so. The passphrase
change has its own button: it re-encrypts the key, which takes a moment. So do backups, on
their own page (app/ui/backups.py): a backup now, and the schedule's own "Save schedule".
"""

from __future__ import annotations

from pathlib import Path

import shiboken6
from PySide6.QtCore import QSize, Signal
from PySide6.QtGui import QResizeEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from app.core.engine import Engine
from app.core.errors import StoreError, UserError
from app.core.profile import RelayMode, check_relay_url
from app.core.routing import Isolation, isolation_for
from app.domain.files import MAX_FILE_BYTES
from app.ui.aio import spawn
from app.ui.backups import BackupsPage
from app.ui.connection import (
    ISOLATION_DEFAULT_NOTE,
    NEXT_OPEN_NOTE,
    ProxyChoice,
    chosen_isolation,
    isolation_box,
)
from app.ui.duress import DuressSection
from app.ui.embedded_relay import OWN_MODES, ProfileRelay, same_relay, use_relays
from app.ui.onboarding import MIN_PASSPHRASE, UnlockLook, read_look, strength, write_look
from app.ui.prefs import Prefs, save_prefs
from app.ui.relay_choice import RelayChoice
from app.ui.text import sentence
from app.ui.theme import LABELS, Theme, note_label

MAX_FALLBACKS = 2
SHOW_NAME_NOTE = (
    "The unlock screen is shown before your profile is decrypted, so your name is then kept "
    "unencrypted beside it: anyone who can read this computer's disk can read it."
)
TESTING = "Testing the relay…"


class SettingsDialog(QDialog):
    saved = Signal(object)  # Prefs
    relay_notice = Signal(str)  # where the profile's own relay had to go, and why
    said = Signal(str)  # what Save did, for the window to say once the dialog is closed

    def __init__(
        self,
        engine: Engine,
        prefs: Prefs,
        remembered: bool = False,
        parent: QWidget | None = None,
        *,
        own_relay: ProfileRelay | None = None,
        look_dir: Path | None = None,
    ) -> None:
        """`look_dir`: the profile's directory, where the unlock screen's look is kept
        (None: the choice to show the name there is not offered)."""
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self._look_dir = look_dir
        self._engine = engine
        self._prefs = prefs
        self._remembered = remembered
        self._own_relay = own_relay

        self.name = QLineEdit(engine.name)
        self.name.setMaxLength(64)
        self.name.setAccessibleName("Display name")
        self.receipts = QCheckBox("Send &read receipts")
        self.receipts.setChecked(engine.read_receipts)
        self.notifications = QCheckBox("Show &notifications for new messages")
        self.notifications.setChecked(prefs.notifications)
        self.previews = QCheckBox("Show message &text in notifications")
        self.previews.setChecked(prefs.previews)
        self.previews.setEnabled(prefs.notifications)
        self.notifications.toggled.connect(self.previews.setEnabled)
        self.remember = QCheckBox("Re&member on this computer (no passphrase at start)")
        self.remember.setChecked(remembered)
        self.keyring_note = note_label()
        if not engine.keyring_available():
            self.remember.setEnabled(False)
            self.keyring_note.setText(
                "There is no system keyring here, so the passphrase is asked at each start."
            )
            self.keyring_note.show()
        self.show_name = QCheckBox("S&how my name on the unlock screen")
        self.show_name.setChecked(look_dir is not None and read_look(look_dir).name is not None)
        self.show_name.setVisible(look_dir is not None)
        show_name_note = note_label()
        show_name_note.setText(SHOW_NAME_NOTE)
        show_name_note.setVisible(look_dir is not None)
        self.auto_download = QSpinBox()
        self.auto_download.setRange(0, MAX_FILE_BYTES // 1_000_000)
        self.auto_download.setSuffix(" MB")
        self.auto_download.setSpecialValueText("Never")
        self.auto_download.setValue(engine.auto_download())
        self.auto_download.setAccessibleName("Download files automatically up to, in MB")
        for field in self.auto_download.findChildren(QLineEdit):  # the box's own text field
            field.setAccessibleName(self.auto_download.accessibleName())
        self.auto_download.setToolTip(
            "Files up to this size are downloaded as they arrive; larger ones wait for "
            "Download. 0: never."
        )
        self.theme = QComboBox()
        self.theme.setAccessibleName("Theme")
        for theme in Theme:
            self.theme.addItem(LABELS[theme], theme.value)
        self.theme.setCurrentIndex(list(Theme).index(prefs.theme))
        boxes = (self.receipts, self.notifications, self.previews, self.remember, self.show_name)
        for box in boxes:
            box.setAccessibleName(box.text().replace("&", ""))

        general = QWidget()
        form = QFormLayout(general)
        form.addRow("Display &name", self.name)
        form.addRow("&Theme", self.theme)
        form.addRow("&Download files automatically up to", self.auto_download)
        form.addRow("", self.receipts)
        form.addRow("", self.notifications)
        form.addRow("", self.previews)
        form.addRow("", self.remember)
        form.addRow("", self.keyring_note)
        form.addRow("", self.show_name)
        form.addRow("", show_name_note)

        self.proxy = ProxyChoice(engine.proxy())
        current = engine.isolation()
        # The engine tells the isolation in force, not whether it was chosen: one that is
        # what the default gives for this proxy setting is shown as the default.
        self._isolation: Isolation | None = (
            None if current is isolation_for("", engine.proxy()) else current
        )
        self.isolation = isolation_box(self._isolation)
        isolation_note = note_label()
        isolation_note.setText(ISOLATION_DEFAULT_NOTE)
        isolation_note.show()
        next_open = note_label()
        next_open.setText(NEXT_OPEN_NOTE)
        next_open.show()
        self.connection_result = note_label()
        self.connection = QWidget()
        connection_form = QFormLayout(self.connection)
        connection_form.addRow(self.proxy)
        connection_form.addRow("C&onnections", self.isolation)
        connection_form.addRow("", isolation_note)
        connection_form.addRow("", next_open)
        connection_form.addRow("", self.connection_result)

        self.in_use = QLabel()
        self.in_use.setWordWrap(True)
        self.in_use.setAccessibleName("Relay in use")
        self.choice = RelayChoice(engine.relay_mode, engine.relay_url)
        self.fallbacks = QPlainTextEdit("\n".join(engine.relays[1:]))
        self.fallbacks.setAccessibleName("Fallback relays")
        self.fallbacks.setPlaceholderText("ws://host:port")
        self.fallbacks.setTabChangesFocus(True)
        self.fallbacks.setFixedHeight(3 * self.fallbacks.fontMetrics().lineSpacing() + 12)
        fallbacks_note = QLabel(
            f"Up to {MAX_FALLBACKS} more relays, one per line: contacts reach you there while "
            "the first cannot be reached."
        )
        fallbacks_note.setWordWrap(True)
        self.fallbacks_error = note_label(error=True)
        self.fallbacks_error.setAccessibleName("Fallback relays error")
        self.relay_result = note_label()
        self.relay_result.setAccessibleName("Relay result")
        self.relay_page = QWidget()
        relay_form = QFormLayout(self.relay_page)
        relay_form.addRow(self.in_use)
        relay_form.addRow(self.choice)
        relay_form.addRow("&Fallback relays", self.fallbacks)
        relay_form.addRow("", fallbacks_note)
        relay_form.addRow("", self.fallbacks_error)
        relay_form.addRow(self.relay_result)
        self._show_in_use()

        self.old_pass = QLineEdit()
        self.new_pass = QLineEdit()
        self.repeat_pass = QLineEdit()
        for field, label in (
            (self.old_pass, "Current passphrase"),
            (self.new_pass, "New passphrase"),
            (self.repeat_pass, "Repeat new passphrase"),
        ):
            field.setEchoMode(QLineEdit.EchoMode.Password)
            field.setAccessibleName(label)
        self.pass_hint = QLabel()
        self.new_pass.textChanged.connect(lambda t: self.pass_hint.setText(strength(t)[1]))
        self.change_pass = QPushButton("&Change passphrase")
        self.change_pass.setAccessibleName("Change passphrase")
        self.change_pass.clicked.connect(self._change_passphrase)
        self.pass_result = note_label()
        self.pass_error = note_label(error=True)
        self.passphrase = QWidget()
        pass_form = QFormLayout(self.passphrase)
        pass_form.addRow("C&urrent", self.old_pass)
        pass_form.addRow("N&ew", self.new_pass)
        pass_form.addRow("Re&peat", self.repeat_pass)
        pass_form.addRow("", self.pass_hint)
        pass_form.addRow("", self.pass_error)
        pass_form.addRow("", self.pass_result)
        pass_form.addRow("", self.change_pass)
        self.duress = DuressSection(engine)  # the passphrase that wipes (app/ui/duress.py)
        pass_form.addRow(self.duress)

        self.error = note_label(error=True)
        self.save_button = QPushButton("&Save")
        self.save_button.setDefault(True)
        self.save_button.setAccessibleName("Save settings")
        self.save_button.clicked.connect(self._save)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setAccessibleName("Cancel settings")
        self.cancel_button.clicked.connect(self.close)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.save_button)

        self.tabs = QTabWidget()
        self.tabs.setAccessibleName("Settings pages")
        self.tabs.addTab(general, "General")
        self.tabs.addTab(self.relay_page, "Relay")
        self.tabs.addTab(self.connection, "Connection")
        self.tabs.addTab(self.passphrase, "Passphrase")
        self.backups = BackupsPage(engine, look_dir)
        self.backups.said.connect(self.said)
        self.tabs.addTab(self.backups, "Backups")
        layout = QVBoxLayout(self)
        layout.addWidget(self.tabs)
        layout.addWidget(self.error)
        layout.addLayout(buttons)
        self.busy = False

    def _height_for(self, width: int) -> int:
        """How tall the dialog must be at `width` for every wrapped line of every page to
        show (Qt's minimum size of a window ignores text that wraps)."""
        layout = self.layout()
        return layout.totalHeightForWidth(width) if layout is not None else 0

    def minimumSizeHint(self) -> QSize:
        hint = super().minimumSizeHint()
        return QSize(hint.width(), max(hint.height(), self._height_for(hint.width())))

    def resizeEvent(self, e: QResizeEvent) -> None:
        super().resizeEvent(e)
        layout = self.layout()
        if layout is not None:  # narrower: taller, so no line of text is cut
            least = max(layout.totalMinimumSize().height(), self._height_for(self.width()))
            if least != self.minimumHeight():
                self.setMinimumHeight(least)

    def chosen_prefs(self) -> Prefs:
        return Prefs(
            Theme(self.theme.currentData()),
            self.notifications.isChecked(),
            self.previews.isChecked(),
        )

    def _save(self) -> None:
        if not self.busy:
            self.busy = True
            self.save_button.setEnabled(False)
            spawn(self.save_and_close(), "saving settings")

    async def save_and_close(self) -> bool:
        """What Save does: apply every change, and close once all of them took."""
        if not await self.save():
            return False
        if shiboken6.isValid(self):
            self.close()
        return True

    async def save(self) -> bool:
        """Apply every change; True when all of them took (the dialog stays open)."""
        self.error.hide()
        self.proxy.error.hide()
        self.connection_result.hide()
        engine = self._engine
        relays_before = engine.relays
        try:
            notice = await self._save_relays()
            if notice is None:
                return False
            if not await self._save_connection():
                return False
            if self.name.text().strip() != engine.name:
                await engine.set_display_name(self.name.text())
            if self.auto_download.value() != engine.auto_download():
                await engine.set_auto_download(self.auto_download.value())
            if self.receipts.isChecked() != engine.read_receipts:
                await engine.set_read_receipts(self.receipts.isChecked())
            if self.remember.isEnabled() and self.remember.isChecked() != self._remembered:
                reason = await engine.remember_key(self.remember.isChecked())
                if reason is not None:
                    raise UserError(reason)
                self._remembered = self.remember.isChecked()
            prefs = self.chosen_prefs()
            await save_prefs(engine, prefs)
            if self._look_dir is not None:
                name = engine.name if self.show_name.isChecked() else None
                write_look(self._look_dir, UnlockLook(prefs.theme, name))
        except (UserError, StoreError) as exc:
            self.error.setText(sentence(str(exc)))
            self.error.show()
            return False
        finally:
            self.busy = False
            self.save_button.setEnabled(True)
        self._prefs = prefs
        self.saved.emit(prefs)
        said = ["Settings saved."]
        if engine.relays != relays_before:
            said.append(f"People now reach you at {engine.relay_url}.")
        if self.connection_result.isVisibleTo(self):
            said.append("The new connection settings apply when the profile is next opened.")
        self.said.emit(" ".join(said))
        if notice:
            self.relay_notice.emit(notice)
        return True

    def _show_in_use(self) -> None:
        engine = self._engine
        text = f"In use now: {engine.relay_url}"
        if len(engine.relays) > 1:
            text += f" (fallbacks: {', '.join(engine.relays[1:])})"
        self.in_use.setText(text)

    def _chosen_fallbacks(self) -> list[str] | None:
        """The fallback relays as typed, checked; None (the reason shown) when one is not
        a relay URL or there are too many."""
        self.fallbacks_error.hide()
        urls = [line.strip() for line in self.fallbacks.toPlainText().splitlines()]
        urls = [u for u in urls if u]
        problem = None
        if len(urls) > MAX_FALLBACKS:
            problem = f"At most {MAX_FALLBACKS} fallback relays."
        else:
            try:
                for url in urls:
                    check_relay_url(url)
            except UserError as exc:
                problem = sentence(str(exc))
        if problem is not None:
            self.fallbacks_error.setText(problem)
            self.fallbacks_error.show()
            return None
        return urls

    async def _save_relays(self) -> str | None:
        """Move to the relays chosen, once the engine has tested them; what to tell the user
        about the profile's own relay ("" for nothing), or None (nothing changed, the reason
        shown under the field) when the choice is incomplete or the engine refuses it."""
        engine = self._engine
        self.relay_result.hide()
        chosen = self.choice.chosen()
        fallbacks = self._chosen_fallbacks()
        if chosen is None or fallbacks is None:
            self.tabs.setCurrentWidget(self.relay_page)
            return None
        mode, url = chosen
        kept = mode is engine.relay_mode and (
            mode in OWN_MODES or same_relay(url, engine.relay_url)
        )
        if kept and fallbacks == list(engine.relays[1:]):
            return ""
        self.relay_result.setText(TESTING)
        self.relay_result.show()
        self.choice.set_enabled(False)
        self.fallbacks.setEnabled(False)
        notice = ""
        try:
            if kept or mode is RelayMode.URL:
                await use_relays(engine, [engine.relay_url if kept else url, *fallbacks], mode)
                if not kept and self._own_relay is not None:
                    await self._own_relay.leave()
            elif self._own_relay is None:
                raise UserError("this window cannot run a relay of its own")
            else:
                notice = await self._own_relay.apply(engine, mode, url, fallbacks)
        except (UserError, OSError) as exc:
            self.relay_result.hide()
            text = sentence(str(exc))
            if any(f in str(exc) for f in fallbacks):
                self.fallbacks_error.setText(text)
                self.fallbacks_error.show()
            else:
                self.choice.show_error(text)
            self.tabs.setCurrentWidget(self.relay_page)
            return None
        finally:
            self.choice.set_enabled(True)
            self.fallbacks.setEnabled(True)
        self._show_in_use()
        self.relay_result.setText(f"Saved. People now reach you at {engine.relay_url}.")
        return notice

    async def _save_connection(self) -> bool:
        """The proxy, then the isolation; False (and nothing stored) when the engine refuses
        the proxy."""
        engine = self._engine
        if not self.proxy.filled():
            self.tabs.setCurrentWidget(self.connection)
            return False
        wanted = self.proxy.chosen()
        proxy_changed = (wanted or "") != engine.proxy()
        if proxy_changed:
            try:
                stored = await engine.set_proxy(wanted)
            except UserError as exc:
                self.proxy.show_error(sentence(str(exc)))
                self.tabs.setCurrentWidget(self.connection)
                return False
            self.proxy.use.setChecked(bool(stored))
            if stored:
                self.proxy.url.setText(stored)
        isolation = chosen_isolation(self.isolation)
        # "Default" follows the proxy: said again when the proxy changes, so what is stored
        # is what the dialog shows.
        isolation_changed = isolation != self._isolation or (isolation is None and proxy_changed)
        if isolation_changed:
            await engine.set_isolation(isolation.value if isolation else None)
            self._isolation = isolation
        if proxy_changed or isolation_changed:
            self.connection_result.setText(
                "Saved. The new connection settings apply when the profile is next opened."
            )
            self.connection_result.show()
        return True

    def _change_passphrase(self) -> None:
        spawn(self.change_passphrase(), "changing the passphrase")

    async def change_passphrase(self) -> bool:
        self.pass_error.hide()
        self.pass_result.hide()
        new = self.new_pass.text()
        problem = None
        if len(new) < MIN_PASSPHRASE:
            problem = f"The new passphrase needs at least {MIN_PASSPHRASE} characters."
        elif new != self.repeat_pass.text():
            problem = "The two new passphrases differ."
        if problem is not None:
            self.pass_error.setText(problem)
            self.pass_error.show()
            return False
        self.change_pass.setEnabled(False)
        self.change_pass.setText("Changing…")
        try:
            await self._engine.change_passphrase(self.old_pass.text(), new)
        except (UserError, StoreError) as exc:
            self.pass_error.setText(sentence(str(exc)))
            self.pass_error.show()
            return False
        finally:
            self.change_pass.setEnabled(True)
            self.change_pass.setText("&Change passphrase")
        for field in (self.old_pass, self.new_pass, self.repeat_pass):
            field.clear()
        self.pass_result.setText("The passphrase is changed. Use the new one from now on.")
        self.pass_result.show()
        return True
