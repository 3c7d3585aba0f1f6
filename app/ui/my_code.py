"""My code: what to show a friend so they can reach us, as a QR code and as text.

By default a one-time code, which works for one contact; once someone uses it the engine
makes the next one, and the dialog shows that when a message request comes in. Asked for,
the long-lived address instead: the same for everyone, made on request, changed or deleted
here. The QR image, the text, Copy and Save always follow what is shown; the text box grows
to hold the whole code at any width. Non-modal, like the other dialogs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import shiboken6
from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QResizeEvent, QTextOption
from PySide6.QtWidgets import (
    QButtonGroup,
    QDialog,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QRadioButton,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)

from app.core.engine import Engine
from app.core.errors import StoreError, UserError
from app.core.qr import make_png
from app.ui.aio import spawn
from app.ui.contact_menu import ConfirmDialog
from app.ui.dialogs import qr_pixmap
from app.ui.text import sentence
from app.ui.theme import note_label

ONE_TIME_NOTE = (
    "Show this to a friend, or send them the text. It works for one contact: once someone "
    "uses it, a new one is made for the next. It holds no secret."
)
ADDRESS_NOTE = (
    "Your address stays the same for everyone you give it to. Anyone who has it can ask to "
    "talk to you and can see when you are online, until you change or delete it."
)
NO_ADDRESS_NOTE = "You have no address. Make one to give out a code that does not change."
GONE_NOTE = (
    "Anyone who has it can no longer ask to talk to you or see when you are online. Your "
    "contacts stay as they are."
)


PNG_NAME = "anonchat-code.png"


class CardText(QTextEdit):
    """The code as text, read-only and selectable, broken anywhere (a code has no spaces)
    and always as tall as the whole of it at the width it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.setReadOnly(True)
        self.setAcceptRichText(False)
        self.setTextInteractionFlags(
            Qt.TextInteractionFlag.TextSelectableByMouse
            | Qt.TextInteractionFlag.TextSelectableByKeyboard
        )
        self.setWordWrapMode(QTextOption.WrapMode.WrapAnywhere)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.document().contentsChanged.connect(self._fit)
        self._fit()

    def resizeEvent(self, e: QResizeEvent) -> None:
        super().resizeEvent(e)
        self._fit()

    def _fit(self) -> None:
        doc = self.document()
        doc.setTextWidth(self.viewport().width())
        height = math.ceil(doc.size().height()) + 2 * self.frameWidth()
        if height != self.height():
            self.setFixedHeight(height)


class MyCodeDialog(QDialog):
    """Our one-time code or our address, as a QR code and as text to copy."""

    def __init__(self, engine: Engine, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("My code")
        self._engine = engine
        self.one_time = QRadioButton("&One-time code")
        self.one_time.setAccessibleName("Show a one-time code")
        self.address = QRadioButton("My &address")
        self.address.setAccessibleName("Show my address")
        kinds = QButtonGroup(self)
        kinds.addButton(self.one_time)
        kinds.addButton(self.address)
        self.one_time.setChecked(True)
        self.one_time.toggled.connect(self._kind_changed)
        self.about = QLabel(ONE_TIME_NOTE)
        self.about.setWordWrap(True)
        self.about.setTextFormat(Qt.TextFormat.PlainText)
        self.about.setAccessibleName("About this code")
        self.qr = QLabel("Loading…")
        self.qr.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.qr.setAccessibleName("My code as a QR code")
        self.text = CardText()
        self.text.setAccessibleName("My code as text")
        self.copy_button = QPushButton("&Copy text")
        self.copy_button.setAccessibleName("Copy my code as text")
        self.copy_button.clicked.connect(self.copy)
        self.save_button = QPushButton("&Save QR as PNG…")
        self.save_button.setAccessibleName("Save my code as a PNG image")
        self.save_button.clicked.connect(self.ask_save_png)
        self.copied = QLabel()
        self.make_button = QPushButton("&Make my address")
        self.make_button.setAccessibleName("Make my address")
        self.make_button.clicked.connect(lambda: spawn(self.show_code(make=True), "an address"))
        self.change_button = QPushButton("C&hange address…")
        self.change_button.setAccessibleName("Change address")
        self.change_button.clicked.connect(self.confirm_change)
        self.delete_button = QPushButton("&Delete address…")
        self.delete_button.setAccessibleName("Delete address")
        self.delete_button.clicked.connect(self.confirm_delete)
        self.note = note_label()
        self.note.setAccessibleName("Result")
        self.error = note_label(error=True)
        close = QPushButton("Close")
        close.setAccessibleName("Close")
        close.clicked.connect(self.close)

        kind_row = QHBoxLayout()
        kind_row.addWidget(self.one_time)
        kind_row.addWidget(self.address)
        kind_row.addStretch(1)
        copy_row = QHBoxLayout()
        copy_row.addWidget(self.copy_button)
        copy_row.addWidget(self.save_button)
        copy_row.addWidget(self.copied, 1)
        address_row = QHBoxLayout()
        address_row.addWidget(self.make_button)
        address_row.addWidget(self.change_button)
        address_row.addWidget(self.delete_button)
        address_row.addStretch(1)
        address_row.addWidget(close)
        layout = QVBoxLayout(self)
        layout.addLayout(kind_row)
        layout.addWidget(self.about)
        layout.addWidget(self.qr)
        layout.addWidget(self.text)
        layout.addLayout(copy_row)
        layout.addWidget(self.note)
        layout.addWidget(self.error)
        layout.addLayout(address_row)

        self.card = ""  # what the QR image and the text show; "" while loading or none
        self.confirmation: ConfirmDialog | None = None
        self._loads = 0  # the latest read; an older one that ends later is dropped
        self._show("")
        spawn(self.show_code(), "showing my code")

    @property
    def showing_address(self) -> bool:
        return self.address.isChecked()

    def _kind_changed(self) -> None:
        self.note.hide()
        self._show("")
        spawn(self.show_code(), "showing my code")

    async def show_code(self, make: bool = False) -> None:
        """Read the code of the kind chosen and show it; the address only if there is one,
        or `make` asks for it (the engine makes it on first ask)."""
        self._loads += 1
        load, address = self._loads, self.showing_address
        self.error.hide()
        try:
            if address and not make and not await self._engine.has_address():
                card = ""
            else:
                card = await self._engine.card(address=address)
        except (UserError, StoreError) as exc:
            self._failed(exc)
            return
        if shiboken6.isValid(self) and load == self._loads:
            self._show(card, loaded=True)

    def code_maybe_used(self) -> None:
        """Someone started a handshake: if it was with the one-time code shown, the engine
        has made the next one, which is shown instead."""
        if shiboken6.isValid(self) and self.isVisible() and not self.showing_address:
            spawn(self._renew(self.card), "renewing my code")

    async def _renew(self, shown: str) -> None:
        await self.show_code()
        if shiboken6.isValid(self) and shown and self.card and self.card != shown:
            self._say("Your code was used, so this is a new one for the next contact.")

    def confirm_change(self) -> ConfirmDialog:
        return self._confirm(
            "Change your address?",
            "Your address changes, and the one you gave out stops working. " + GONE_NOTE,
            "C&hange address",
            self.change_address,
        )

    def confirm_delete(self) -> ConfirmDialog:
        return self._confirm(
            "Delete your address?",
            "Your address stops working, and you have none until you make a new one. " + GONE_NOTE,
            "&Delete address",
            self.delete_address,
        )

    async def change_address(self) -> None:
        self._loads += 1
        try:
            card = await self._engine.rotate_address()
        except (UserError, StoreError) as exc:
            self._failed(exc)
            return
        if shiboken6.isValid(self):
            self.address.setChecked(True)
            self._show(card, loaded=True)
            self._say("Your address is changed. The old one no longer works.")

    async def delete_address(self) -> None:
        self._loads += 1
        try:
            await self._engine.delete_address()
        except (UserError, StoreError) as exc:
            self._failed(exc)
            return
        if shiboken6.isValid(self):
            self._show("", loaded=True)
            self._say("Your address is deleted. It no longer works.")

    def copy(self) -> None:
        if self.card:
            QGuiApplication.clipboard().setText(self.card)
            self.copied.setText("Copied.")

    def ask_save_png(self) -> None:
        """Ask where to save the QR image shown, then save it there."""
        if not self.card:
            return
        start = str(Path.home() / PNG_NAME)
        path, _ = QFileDialog.getSaveFileName(self, "Save the QR code", start, "PNG images (*.png)")
        if path:
            self.save_png(Path(path))

    def save_png(self, path: Path) -> Path | None:
        """Write the code shown as a QR code PNG to `path` (".png" added when it has no
        suffix); the path written, or None (the reason shown) when it could not be."""
        if not self.card:
            return None
        if not path.suffix:
            path = path.with_suffix(".png")
        self.error.hide()
        try:
            make_png(self.card, path)
        except OSError as exc:
            self.error.setText(f"Could not save the image: {exc.strerror or exc}.")
            self.error.show()
            return None
        self._say(f"Saved the QR code to {path}.")
        return path

    def _confirm(
        self, title: str, text: str, action: str, then: Callable[[], Coroutine[Any, Any, None]]
    ) -> ConfirmDialog:
        dialog = ConfirmDialog(title, text, action, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.confirmed.connect(lambda _: spawn(then(), title))
        self.confirmation = dialog
        dialog.show()
        return dialog

    def _show(self, card: str, loaded: bool = False) -> None:
        """Show `card` (or, with none, that it is loading or that there is no address), and
        the buttons that fit what is shown."""
        address = self.showing_address
        self.card = card
        self.copied.clear()
        if card:
            self.qr.setPixmap(qr_pixmap(card))
            self.text.setPlainText(card)
        else:
            self.qr.clear()
            self.qr.setText("Loading…" if not loaded else "")
            self.text.clear()
        missing = address and loaded and not card
        self.about.setText(
            NO_ADDRESS_NOTE + " " + ADDRESS_NOTE
            if missing
            else ADDRESS_NOTE
            if address
            else ONE_TIME_NOTE
        )
        self.qr.setVisible(not missing)
        self.text.setVisible(not missing)
        self.copy_button.setVisible(not missing)
        self.copy_button.setEnabled(bool(card))
        self.save_button.setVisible(not missing)
        self.save_button.setEnabled(bool(card))
        self.make_button.setVisible(missing)
        self.change_button.setVisible(address and bool(card))
        self.delete_button.setVisible(address and bool(card))

    def _say(self, text: str) -> None:
        self.note.setText(text)
        self.note.show()

    def _failed(self, exc: Exception) -> None:
        if shiboken6.isValid(self):
            self.error.setText(sentence(str(exc)))
            self.error.show()
