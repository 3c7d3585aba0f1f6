"""Add contact and Safety number, and the QR image of a code. Non-modal: opened with show(),
never exec(), so the asyncio loop keeps running; image decoding runs off the GUI thread.

Whatever is pasted, dropped or opened is bounded before it is read: a code's text by its length
(MAX_CODE_CHARS), a picture by its size (app/core/qr.py and app/ui/scanner.py); over the cap it
is refused at once as too large and nothing is filled in."""

from __future__ import annotations

from pathlib import Path

import shiboken6
from PySide6.QtCore import QByteArray, QMimeData, Qt, Signal
from PySide6.QtGui import (
    QCloseEvent,
    QDragEnterEvent,
    QDropEvent,
    QGuiApplication,
    QImage,
    QKeySequence,
    QPixmap,
)
from PySide6.QtWidgets import (
    QDialog,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.core.engine import Engine
from app.core.errors import UserError
from app.core.qr import QrError, check_dimensions, decode_file, make_png
from app.crypto.card import MAX_CARD_CHARS
from app.domain.contacts import CardPreview, Contact, ContactState
from app.ui.aio import off_thread, spawn
from app.ui.scanner import (
    CameraScanner,
    RegionSelector,
    decode_bytes,
    decode_picture,
    encoded_image_format,
)
from app.ui.text import safe_text, sentence
from app.ui.theme import note_label

IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.bmp *.gif *.webp)"
MAX_CODE_CHARS = MAX_CARD_CHARS  # a card or a verification code as text (either is < 700)


def too_long(length: int) -> str | None:
    """Why text of this length cannot be a code, or None when it may be one."""
    if length <= MAX_CODE_CHARS:
        return None
    return f"This is too large to be a code: {length} characters, at most {MAX_CODE_CHARS}."


class CodeEdit(QPlainTextEdit):
    """The code as text. A paste or drop into it of more text than a code can be is refused
    (said through `refused`) before it is inserted."""

    refused = Signal(str)

    def insertFromMimeData(self, source: QMimeData) -> None:
        if source.hasText() and (why := too_long(len(source.text()))):
            self.refused.emit(why)
            return
        super().insertFromMimeData(source)


def qr_pixmap(text: str, scale: int = 6) -> QPixmap:
    pixmap = QPixmap()
    pixmap.loadFromData(make_png(text, scale=scale), "PNG")
    return pixmap


def whose_code(seen: CardPreview) -> str:
    """Whose code it is, and what adding it does (as the engine does it): nothing for a
    contact or someone whose request waits, a reconnection for someone deleted or blocked."""
    known = seen.known
    if known is None:
        name = safe_text(seen.name) if seen.name else "someone who gave no name"
        return f"This is the code of {name} (relay {safe_text(seen.relay_url)})."
    name = safe_text(known.display_name)
    if known.state is ContactState.CONTACT:
        return f"This is the code of {name}, who is already a contact."
    if known.state is ContactState.REQUEST:
        return (
            f"This is the code of {name}, who has already asked to talk to you: accept their "
            "message request instead."
        )
    ended = "blocked" if known.blocked else "deleted"
    return f"This is the code of {name}, whom you {ended}. Adding them reconnects you" + (
        " and unblocks them." if known.blocked else "."
    )


class AddContactDialog(QDialog):
    """Scan a code with the camera, or read it from a region of the screen, an image file, a
    dropped image, the clipboard or pasted text; see whose it is before adding."""

    added = Signal(object)  # Contact

    def __init__(self, engine: Engine, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Scan a code")
        self.setAcceptDrops(True)
        self._engine = engine
        self.found: CardPreview | None = None  # a code that can be added
        intro = QLabel(
            "Hold their QR code up to the camera, select it on the screen, open or drop a "
            "picture of it, or paste their code as text."
        )
        intro.setWordWrap(True)
        self.text = CodeEdit()
        self.text.refused.connect(self._show_error)
        self.text.setPlaceholderText("anonchat:…")
        self.text.setAccessibleName("Their code")
        self.text.setFixedHeight(self.text.fontMetrics().height() * 5)
        self.text.textChanged.connect(self._parse)
        self.preview = QLabel()
        self.preview.setAccessibleName("Camera preview")
        self.preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.preview.setMinimumSize(320, 240)
        self.preview.hide()
        self.scanner = CameraScanner(self.preview, self)
        self.scanner.found.connect(self._scanned)
        self.scanner.problem.connect(self._show_error)
        self.scanner.running_changed.connect(self._camera_state)
        self.camera_button = QPushButton("&Camera")
        self.camera_button.setToolTip("Scan the code with the camera (Ctrl+K)")
        self.camera_button.setShortcut(QKeySequence("Ctrl+K"))
        self.camera_button.clicked.connect(self.toggle_camera)
        self.screen_button = QPushButton("&Screen region…")
        self.screen_button.setToolTip("Select the code somewhere on the screen")
        self.screen_button.clicked.connect(self.pick_screen_region)
        self.open_image = QPushButton("&Open image…")
        self.open_image.setShortcut(QKeySequence.StandardKey.Open)
        self.open_image.clicked.connect(self._choose_file)
        self.paste = QPushButton("&Paste")
        self.paste.setToolTip("Read a code or a picture from the clipboard (Ctrl+Shift+V)")
        self.paste.setShortcut(QKeySequence("Ctrl+Shift+V"))
        self.paste.clicked.connect(self.paste_clipboard)
        for button, name in (
            (self.camera_button, "Scan with the camera"),
            (self.screen_button, "Scan a region of the screen"),
            (self.open_image, "Open a picture of a code"),
            (self.paste, "Paste from the clipboard"),
        ):
            button.setAccessibleName(name)
        self.region: RegionSelector | None = None
        self.whose = QLabel()
        self.whose.setWordWrap(True)
        self.whose.setTextFormat(Qt.TextFormat.PlainText)
        self.whose.setAccessibleName("Whose code")
        self.error = note_label(error=True)
        self.add_button = QPushButton("&Add contact")
        self.add_button.setAccessibleName("Add contact")
        self.add_button.setEnabled(False)
        self.add_button.setDefault(True)
        self.add_button.clicked.connect(self._add)
        cancel = QPushButton("Cancel")
        cancel.setAccessibleName("Cancel")
        cancel.clicked.connect(self.close)
        sources = QHBoxLayout()
        sources.addWidget(self.camera_button)
        sources.addWidget(self.screen_button)
        sources.addWidget(self.open_image)
        sources.addWidget(self.paste)
        sources.addStretch(1)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(cancel)
        buttons.addWidget(self.add_button)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(sources)
        layout.addWidget(self.preview, 1)
        layout.addWidget(self.text)
        layout.addWidget(self.whose)
        layout.addWidget(self.error)
        layout.addLayout(buttons)

    # -- sources -------------------------------------------------------------------------

    def _too_long(self) -> bool:
        """Whether the text box holds more than a code can be (then said), read without
        copying its text."""
        why = too_long(self.text.document().characterCount() - 1)  # less the final separator
        if why:
            self._show_error(why)
        return why is not None

    def _take_text(self, text: str) -> None:
        """Pasted or dropped text into the box, unless it is longer than a code can be."""
        why = too_long(len(text))
        if why:
            self._show_error(why)
        else:
            self.text.setPlainText(text.strip())

    def _parse(self) -> None:
        """The engine reads the code (the one card parser) and says whose it is."""
        self.found = None
        self.add_button.setEnabled(False)
        self.error.hide()
        self.whose.clear()
        if self._too_long():
            return
        raw = self.text.toPlainText().strip()
        if raw:
            spawn(self._preview(raw), "reading whose code this is")

    async def _preview(self, raw: str) -> None:
        try:
            seen = await self._engine.preview_card(raw)
        except UserError as exc:
            if shiboken6.isValid(self) and self.text.toPlainText().strip() == raw:
                self._show_error(sentence(str(exc)))
            return
        if not shiboken6.isValid(self) or self.text.toPlainText().strip() != raw:
            return  # closed, or the text changed meanwhile
        if seen.is_self:
            self._show_error("This is your own code. Scan your friend's code instead.")
            return
        self.whose.setText(whose_code(seen))
        if seen.known is None or seen.known.state is ContactState.ENDED:
            self.found = seen
            self.add_button.setEnabled(True)

    # -- camera and screen ---------------------------------------------------------------

    def toggle_camera(self) -> None:
        if self.scanner.running:
            self.scanner.stop()
        else:
            self.error.hide()
            self.scanner.start()

    def _camera_state(self, running: bool) -> None:
        self.preview.setVisible(running)
        self.camera_button.setText("Stop &camera" if running else "&Camera")

    def _scanned(self, text: str) -> None:
        self.preview.hide()
        self.text.setPlainText(text)

    def pick_screen_region(self) -> RegionSelector:
        shot = RegionSelector.grab_desktop()
        return self.select_region(shot)

    def select_region(self, shot: QPixmap) -> RegionSelector:
        selector = RegionSelector(shot)
        selector.chosen.connect(lambda image: spawn(self.load_image(image), "reading the screen"))
        selector.refused.connect(lambda why: self._show_error(sentence(why)))
        selector.show()
        selector.activateWindow()
        selector.setFocus()
        self.region = selector
        return selector

    def closeEvent(self, event: QCloseEvent) -> None:
        self.scanner.stop()
        super().closeEvent(event)

    def _choose_file(self) -> None:
        chooser = QFileDialog(self, "Open a picture of a QR code", "", IMAGE_FILTER)
        chooser.setFileMode(QFileDialog.FileMode.ExistingFile)
        chooser.fileSelected.connect(lambda path: spawn(self.load_file(Path(path)), "reading"))
        chooser.open()

    async def load_file(self, path: Path) -> None:
        try:
            text = await off_thread(decode_file, path)
        except QrError as exc:
            self._show_error(sentence(str(exc)))
            return
        self.text.setPlainText(text)

    async def load_image(self, image: QImage) -> None:
        """A decoded picture (the screen, a pasted or dropped image): refused as too large by
        its size before it is copied, converted or scanned."""
        try:
            check_dimensions(image.width(), image.height())
            text = await off_thread(decode_picture, image)
        except QrError as exc:
            self._show_error(sentence(str(exc)))
            return
        self.text.setPlainText(text)

    async def load_bytes(self, data: QByteArray) -> None:
        """An encoded picture (pasted or dropped): its size is read from its header and checked
        before it is decoded, off the GUI thread."""
        try:
            text = await off_thread(decode_bytes, data)
        except QrError as exc:
            self._show_error(sentence(str(exc)))
            return
        self.text.setPlainText(text)

    def _take_picture(self, data: QMimeData, what: str) -> bool:
        """The picture in pasted or dropped data, read from its encoded bytes when it has some
        (a platform clipboard decodes `imageData()` with no cap of ours), else the decoded
        image; False when it holds no picture."""
        fmt = encoded_image_format(data.formats())
        if fmt is not None:
            spawn(self.load_bytes(data.data(fmt)), what)
            return True
        if not data.hasImage():
            return False
        picture = data.imageData()
        if isinstance(picture, QPixmap):
            try:
                check_dimensions(picture.width(), picture.height())
            except QrError as exc:
                self._show_error(sentence(str(exc)))
                return True
            picture = picture.toImage()
        if not isinstance(picture, QImage):
            return False
        spawn(self.load_image(picture), what)
        return True

    def paste_clipboard(self) -> None:
        data = QGuiApplication.clipboard().mimeData()
        if data is not None and self._take_picture(data, "reading the clipboard"):
            return
        if data is not None and data.hasText() and (text := data.text()).strip():
            self._take_text(text)
        else:
            self._show_error("The clipboard holds neither a code nor a picture.")

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        data = event.mimeData()
        if (
            data.hasUrls()
            or data.hasImage()
            or data.hasText()
            or encoded_image_format(data.formats()) is not None
        ):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        data = event.mimeData()
        local = [u.toLocalFile() for u in data.urls() if u.isLocalFile()]
        if local:
            spawn(self.load_file(Path(local[0])), "reading a dropped file")
        elif self._take_picture(data, "reading a dropped image"):
            pass
        elif data.hasText():
            self._take_text(data.text())
        else:
            return
        event.acceptProposedAction()

    # -- adding --------------------------------------------------------------------------

    def _add(self) -> None:
        if self.found is None:
            return
        self.add_button.setEnabled(False)
        spawn(self._do_add(self.text.toPlainText().strip()), "adding a contact")

    async def _do_add(self, text: str) -> None:
        try:
            contact = await self._engine.add_contact(text)
        except UserError as exc:
            self._show_error(sentence(str(exc)))
            self.add_button.setEnabled(self.found is not None)
            return
        self.added.emit(contact)
        self.close()

    def _show_error(self, text: str) -> None:
        self.error.setText(text)
        self.error.show()


class VerifyScanDialog(AddContactDialog):
    """The same scanner, reading a contact's verification code instead of a card."""

    scanned = Signal(str)

    def __init__(self, engine: Engine, name: str, parent: QWidget | None = None) -> None:
        super().__init__(engine, parent)
        self.setWindowTitle(f"Scan {safe_text(name)}'s verification code")
        self.add_button.hide()
        self.text.setPlaceholderText("anonchat-verify:…")

    def _parse(self) -> None:
        self.error.hide()
        self.whose.clear()
        if self._too_long():
            return
        raw = self.text.toPlainText().strip()
        if not raw:
            return
        if not raw.lower().startswith("anonchat-verify:"):
            self._show_error(
                "This is not a verification code. Ask them to open the safety number "
                "of your conversation and show its code."
            )
            return
        self.scanned.emit(raw)
        self.close()


class SafetyDialog(QDialog):
    """The safety number, our verification QR code, and the two ways to mark verified."""

    verified = Signal(object)  # Contact

    def __init__(self, engine: Engine, contact: Contact, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        name = safe_text(contact.display_name)
        self.setWindowTitle(f"Safety number with {name}")
        self._engine = engine
        self.contact = contact
        self.number = QLabel("…")
        self.number.setAccessibleName("Safety number")
        self.number.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        font = self.number.font()
        font.setFamily("monospace")
        font.setPointSizeF(font.pointSizeF() * 1.3)
        self.number.setFont(font)
        self.number.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.qr = QLabel()
        self.qr.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.qr.setAccessibleName("Our verification code")
        explain = QLabel(
            f"Compare these numbers with {name}'s, in person or on a call, "
            f"or let them scan the code below. If they match, no one is in between."
        )
        explain.setWordWrap(True)
        explain.setTextFormat(Qt.TextFormat.PlainText)
        self.state = QLabel()
        self.state.setWordWrap(True)
        self.state.setTextFormat(Qt.TextFormat.PlainText)
        self.error = note_label(error=True)
        self.mark = QPushButton("&Mark as verified")
        self.mark.setAccessibleName("Mark as verified")
        self.mark.setToolTip("Only when the numbers on both screens are the same")
        self.mark.clicked.connect(self._mark)
        self.scan = QPushButton("&Scan their code…")
        self.scan.setAccessibleName("Scan their verification code")
        self.scan.setToolTip("Scan their verification code: camera, screen, picture or text")
        self.scan.clicked.connect(self.open_scanner)
        close = QPushButton("Close")
        close.setAccessibleName("Close")
        close.clicked.connect(self.close)
        buttons = QHBoxLayout()
        buttons.addWidget(self.scan)
        buttons.addWidget(self.mark)
        buttons.addStretch(1)
        buttons.addWidget(close)
        layout = QVBoxLayout(self)
        layout.addWidget(explain)
        layout.addWidget(self.number)
        layout.addWidget(self.qr)
        layout.addWidget(self.state)
        layout.addWidget(self.error)
        layout.addLayout(buttons)
        self._digits = ""
        self.scanner: VerifyScanDialog | None = None
        self._show_state(contact)
        spawn(self._load(), "showing a safety number")

    async def _load(self) -> None:
        digits = await self._engine.safety_number(self.contact.id)
        code = await self._engine.verification_code(self.contact.id)
        if not shiboken6.isValid(self):
            return  # closed meanwhile
        self._digits = digits
        groups = self._digits.split()
        rows = [" ".join(groups[i : i + 4]) for i in range(0, len(groups), 4)]
        self.number.setText("\n".join(rows))
        self.qr.setPixmap(qr_pixmap(code, scale=4))

    def _show_state(self, contact: Contact) -> None:
        self.contact = contact
        name = safe_text(contact.display_name)
        if contact.verified:
            self.state.setText(f"✔ {name} is verified.")
        else:
            self.state.setText(f"{name} is not verified yet.")
        self.mark.setEnabled(not contact.verified)

    def _mark(self) -> None:
        if self._digits:
            spawn(self._verify(self._digits), "verifying a contact")

    def open_scanner(self) -> VerifyScanDialog:
        scanner = VerifyScanDialog(self._engine, self.contact.display_name, self)
        scanner.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        scanner.scanned.connect(lambda code: spawn(self._verify(code), "verifying a contact"))
        scanner.show()
        scanner.activateWindow()
        self.scanner = scanner
        return scanner

    async def _verify(self, evidence: str) -> None:
        try:
            contact = await self._engine.verify(self.contact.id, evidence)
        except UserError as exc:
            self._show_error(sentence(str(exc)))
            return
        self.error.hide()
        self._show_state(contact)
        self.verified.emit(contact)

    def _show_error(self, text: str) -> None:
        self.error.setText(text)
        self.error.show()
