"""First start (create a profile) and later starts (unlock it).

Both pages await the store, whose Argon2id derivation runs on the store's own thread, so the
window keeps painting while the key is derived. Each page emits `opened` with the unlocked
profile (the wizard as an `Engine`, not yet started, its proxy set; the unlock page as
`Opened`); nothing else leaves them. The wizard also offers to restore a profile from a
backup instead (app/ui/restore.py), and hands its engine on in the same way.

The unlock screen is drawn before anything in the profile can be read, so its look comes
from a small file beside the encrypted store (`UnlockLook`): the theme always, the display
name only when the user asks for it in Settings (it is then readable by anyone with the
disk, which is why it is off unless chosen).

The engine is what checks a proxy URL, so the wizard checks it once the profile is made:
refused, the page keeps the new profile's engine, says why under the field and only asks
for a proxy it accepts (or none) before going on. Nothing connects before that.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.core.engine import Engine
from app.core.errors import StoreError, UserError, WrongPassphrase
from app.core.profile import (
    DEFAULT_RELAY,
    NO_KEYRING,
    Opened,
    ProfilePaths,
    RelayMode,
    create_profile,
    keyring_available,
    open_profile,
)
from app.crypto.passphrase import DEFAULT_PARAMS, KdfParams
from app.ui.a11y import name_controls
from app.ui.aio import spawn
from app.ui.connection import ProxyChoice
from app.ui.relay_choice import RelayChoice
from app.ui.restore import RestoreDialog
from app.ui.strength import MIN_PASSPHRASE as MIN_PASSPHRASE
from app.ui.strength import passphrase_hint
from app.ui.strength import strength as strength
from app.ui.text import safe_text, sentence
from app.ui.theme import Theme, note_label

log = logging.getLogger(__name__)
LOOK_FILE = "unlock.json"  # beside the store: what the unlock screen shows before unlocking
MAX_LOOK_BYTES = 4096


@dataclass(frozen=True, slots=True)
class UnlockLook:
    """What the unlock screen may know before the profile is open: the theme, and the
    display name when the user chose to show it there (None: not shown, not stored)."""

    theme: Theme = Theme.SYSTEM
    name: str | None = None


def read_look(directory: Path) -> UnlockLook:
    """The look stored beside the profile; the default when there is none or it is damaged."""
    try:
        with (directory / LOOK_FILE).open("rb") as f:
            raw = json.loads(f.read(MAX_LOOK_BYTES))
        theme = Theme(raw.get("theme", Theme.SYSTEM.value))
        name = raw.get("name")
    except (OSError, ValueError, AttributeError):
        return UnlockLook()
    return UnlockLook(theme, name if isinstance(name, str) and name.strip() else None)


def write_look(directory: Path, look: UnlockLook) -> bool:
    """Store the look for the next unlock (0600, replaced whole); False when it could not be."""
    if not directory.is_dir():
        return False
    data: dict[str, str] = {"theme": look.theme.value}
    if look.name:
        data["name"] = look.name
    target = directory / LOOK_FILE
    temporary = directory / (LOOK_FILE + ".new")
    try:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f)
        os.replace(temporary, target)
    except OSError as exc:
        log.warning("the unlock screen's look was not stored: %s", type(exc).__name__)
        return False
    return True


class _GatePage(QWidget):
    """What the wizard and the unlock screen share: an error line, and a busy state that ends
    with the error shown when opening the profile fails."""

    error: QLabel

    def _set_busy(self, busy: bool) -> None:
        raise NotImplementedError

    def _show_error(self, text: str) -> None:
        self.error.setText(text)
        self.error.show()

    def _failed(self, text: str) -> None:
        self._set_busy(False)
        self._show_error(text)

    def tell(self, text: str) -> None:
        """A line for the user where errors show (what a panic wipe could not delete)."""
        self._show_error(text)


class WizardPage(_GatePage):
    """Display name, passphrase twice with a strength hint, how people reach you (the relay),
    and whether to connect through a proxy."""

    opened = Signal(object)  # Engine

    def __init__(
        self,
        paths: ProfilePaths,
        relay_url: str | None = None,
        params: KdfParams | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._paths = paths
        self._params = params
        title = QLabel("<h2>Welcome to AnonChat</h2>")
        intro = QLabel(
            "Everything you keep here stays on this computer, encrypted with your passphrase. "
            "There is no account and no way to recover a forgotten passphrase."
        )
        intro.setWordWrap(True)
        self.name = QLineEdit()
        self.name.setPlaceholderText("How contacts will see you")
        self.name.setAccessibleName("Display name")
        self.name.setMaxLength(64)
        self.passphrase = QLineEdit()
        self.passphrase.setEchoMode(QLineEdit.EchoMode.Password)
        self.passphrase.setAccessibleName("Passphrase")
        self.repeat = QLineEdit()
        self.repeat.setEchoMode(QLineEdit.EchoMode.Password)
        self.repeat.setAccessibleName("Repeat passphrase")
        self.hint = QLabel()
        self.hint.setAccessibleName("Passphrase strength")
        if relay_url and relay_url.rstrip("/") != DEFAULT_RELAY:
            self.choice = RelayChoice(RelayMode.URL, relay_url)
        else:
            self.choice = RelayChoice(RelayMode.LOCAL)
        self.custom, self.relay = self.choice.custom, self.choice.relay  # "the relay at"
        self.proxy = ProxyChoice()
        self.proxy.url.returnPressed.connect(self._submit)
        self.engine: Engine | None = None  # the profile made, held while its proxy is refused
        self.error = note_label(error=True)
        self.create_button = QPushButton("Create profile")
        self.create_button.setDefault(True)
        self.create_button.setAccessibleName("Create profile")
        self.restore_button = QPushButton("Restore from a &backup…")
        self.restore_button.setAccessibleName("Restore from a backup")
        self.restore_button.clicked.connect(self.show_restore)
        self.restore_dialog: RestoreDialog | None = None

        form = QFormLayout()
        form.addRow("Display name", self.name)
        form.addRow("Passphrase", self.passphrase)
        form.addRow("Repeat", self.repeat)
        form.addRow("", self.hint)
        form.addRow("Who can reach you", self.choice)
        form.addRow("", self.proxy)
        layout = QVBoxLayout(self)
        layout.addWidget(title)
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addWidget(self.error)
        layout.addStretch(1)
        buttons = QHBoxLayout()
        buttons.addWidget(self.restore_button)
        buttons.addStretch(1)
        buttons.addWidget(self.create_button)
        layout.addLayout(buttons)

        self.passphrase.textChanged.connect(self._update_hint)
        self.repeat.textChanged.connect(self._update_hint)
        self.create_button.clicked.connect(self._submit)
        for field in (self.name, self.passphrase, self.repeat, self.choice.relay):
            field.returnPressed.connect(self._submit)
        name_controls(self)

    def _update_hint(self) -> None:
        self.hint.setText(passphrase_hint(self.passphrase.text(), self.repeat.text()))

    def _problem(self) -> str | None:
        if not self.name.text().strip():
            return "Enter a display name."
        if len(self.passphrase.text()) < MIN_PASSPHRASE:
            return f"The passphrase needs at least {MIN_PASSPHRASE} characters."
        if self.passphrase.text() != self.repeat.text():
            return "The two passphrases differ."
        return None

    def _submit(self) -> None:
        if not self.create_button.isEnabled():
            return
        self.proxy.error.hide()
        if not self.proxy.filled():
            return
        if self.engine is not None:  # made already: only the proxy is left to settle
            self._set_busy(True)
            spawn(self._hand_over(self.engine), "setting the proxy")
            return
        problem = self._problem()
        if problem is not None:
            self._show_error(problem)
            return
        chosen = self.choice.chosen()  # when None, the choice says why under it
        if chosen is None:
            self.error.hide()
            return
        self._set_busy(True)
        spawn(self._create(*chosen), "creating a profile")

    async def _create(self, mode: RelayMode, relay: str) -> None:
        params = self._params or DEFAULT_PARAMS
        try:
            opened = await create_profile(
                self._paths,
                self.passphrase.text(),
                self.name.text(),
                relay,
                params,
                relay_mode=mode,
            )
        except (UserError, StoreError) as exc:
            self._failed(sentence(str(exc)))
            return
        except BaseException:
            self._set_busy(False)
            raise
        try:
            engine = await Engine.open(opened)
        except BaseException:
            await opened.store.close()
            opened.lock.release()
            self._set_busy(False)
            raise
        self.engine = engine
        await self._hand_over(engine)

    async def _hand_over(self, engine: Engine) -> None:
        """Set the proxy asked for, then hand the engine on; a refused proxy stays here."""
        proxy = self.proxy.chosen()
        try:
            if proxy is not None:  # a new profile connects directly until told otherwise
                await engine.set_proxy(proxy)
        except UserError as exc:
            self._set_busy(False)
            self.proxy.show_error(sentence(str(exc)))
            self._show_error(
                "Your profile is made. Correct the proxy address, or clear the box to "
                "connect directly, then continue."
            )
            return
        except BaseException:
            self._set_busy(False)
            raise
        self.engine = None
        self.choice.stop()
        self.opened.emit(engine)

    def show_restore(self) -> RestoreDialog:
        """A profile from a backup instead of a new one (app/ui/restore.py); its engine goes
        on as a new profile's does."""
        if self.restore_dialog is None:
            self.restore_dialog = RestoreDialog(self._paths, self._params, self)
            self.restore_dialog.opened.connect(self._restored)
        self.restore_dialog.show()
        self.restore_dialog.raise_()
        return self.restore_dialog

    def _restored(self, engine: Engine) -> None:
        self.choice.stop()
        self.opened.emit(engine)

    async def discard(self) -> None:
        """Close the engine of a profile made here and never handed on (the page closed
        while its proxy was refused)."""
        engine, self.engine = self.engine, None
        if engine is not None:
            await engine.close()

    def _set_busy(self, busy: bool) -> None:
        made = self.engine is not None
        for field in (self.name, self.passphrase, self.repeat):
            field.setEnabled(not made)
        self.choice.set_enabled(not busy and not made)
        self.create_button.setEnabled(not busy)
        self.restore_button.setEnabled(not busy and not made)
        if busy:
            self.create_button.setText("Setting the proxy…" if made else "Creating your keys…")
            self.error.hide()
        else:
            self.create_button.setText("Continue" if made else "Create profile")
        self.create_button.setAccessibleName("Continue" if made else "Create profile")


class UnlockPage(_GatePage):
    """The passphrase prompt of an existing profile, with "remember on this computer", in
    the profile's theme and under its name when the user chose to show it (`look`; the
    launcher applies its theme before showing the page).

    `remember` is read by the launcher once the profile is open: checked, the key goes to the
    OS keyring and later starts skip this page. Without a keyring the box is disabled and a
    line says why.
    """

    opened = Signal(object)  # Opened

    def __init__(
        self, paths: ProfilePaths, notice: str = "", parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self._paths = paths
        self.look = read_look(paths.directory)
        name = self.look.name
        self.title = QLabel(f"Unlock {safe_text(name)}’s profile" if name else "Unlock AnonChat")
        self.title.setTextFormat(Qt.TextFormat.PlainText)  # the name is the user's own text
        self.title.setWordWrap(True)
        self.title.setAccessibleName("Profile name" if name else "Title")
        font = QFont(self.title.font())
        font.setPointSizeF(font.pointSizeF() * 1.5)
        font.setBold(True)
        self.title.setFont(font)
        where = QLabel(f"Profile: {paths.directory.name}")
        where.setTextFormat(Qt.TextFormat.PlainText)
        where.setWordWrap(True)
        where.setAccessibleName("Profile")
        self.passphrase = QLineEdit()
        self.passphrase.setEchoMode(QLineEdit.EchoMode.Password)
        self.passphrase.setAccessibleName("Passphrase")
        self.passphrase.setPlaceholderText("Passphrase")
        self.remember = QCheckBox("&Remember on this computer")
        self.remember.setAccessibleName("Remember on this computer")
        self.remember.setToolTip(
            "Keep the key in the system keyring so AnonChat opens without the passphrase. "
            "Anyone who can use this computer account can then read your messages."
        )
        self.keyring_note = QLabel()
        self.keyring_note.setWordWrap(True)
        self.keyring_note.setAccessibleName("Keyring")
        self.keyring_note.hide()
        self.error = note_label(error=True)
        self.unlock = QPushButton("&Unlock")
        self.unlock.setDefault(True)
        self.unlock.setAccessibleName("Unlock")
        layout = QVBoxLayout(self)
        layout.addStretch(1)
        layout.addWidget(self.title)
        layout.addWidget(where)
        layout.addWidget(self.passphrase)
        layout.addWidget(self.remember)
        layout.addWidget(self.keyring_note)
        layout.addWidget(self.error)
        layout.addWidget(self.unlock, alignment=Qt.AlignmentFlag.AlignRight)
        layout.addStretch(2)
        self.unlock.clicked.connect(self._submit)
        self.passphrase.returnPressed.connect(self._submit)
        self.passphrase.setFocus()
        name_controls(self)
        if notice:
            self._show_error(notice)
        self._check_keyring()

    def _check_keyring(self) -> None:
        # On this thread on purpose: the check imports keyring backends, which load native
        # libraries; doing that on a worker while Qt loads its own plugins can deadlock.
        if keyring_available():
            return
        self.remember.setChecked(False)
        self.remember.setEnabled(False)
        self.keyring_note.setText(sentence(NO_KEYRING))
        self.keyring_note.show()

    def _submit(self) -> None:
        if not self.unlock.isEnabled():
            return
        if not self.passphrase.text():
            self._show_error("Enter your passphrase.")
            return
        self._set_busy(True)
        spawn(self._open(self.passphrase.text()), "unlocking a profile")

    async def _open(self, passphrase: str) -> None:
        try:
            opened: Opened = await open_profile(self._paths, passphrase)
        except WrongPassphrase:
            self._failed("Wrong passphrase. Check it and try again.")
            self.passphrase.selectAll()
            self.passphrase.setFocus()
            return
        except (UserError, StoreError) as exc:
            self._failed(sentence(str(exc)))
            return
        except BaseException:
            self._set_busy(False)
            raise
        if not (self._paths.directory / LOOK_FILE).exists():  # made anew (duress passphrase)
            write_look(self._paths.directory, self.look)
        self.opened.emit(opened)

    def _set_busy(self, busy: bool) -> None:
        self.unlock.setEnabled(not busy)
        self.passphrase.setEnabled(not busy)
        self.unlock.setText("Unlocking…" if busy else "&Unlock")
        if busy:
            self.error.hide()
