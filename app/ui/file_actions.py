"""What a person does with files in a conversation: choose files to send (or send what was
pasted or dropped), open one with the system's application, save one where they choose,
download, cancel or retry a transfer. Each goes to the engine; what changes comes back as
its events, a refusal is said through `failed`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QObject, QStandardPaths, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QFileDialog, QWidget

from app.core.engine import Engine
from app.core.errors import UserError
from app.core.qr import QrError
from app.domain.files import FileInfo, safe_file_name
from app.ui.aio import off_thread, spawn
from app.ui.attachments import Outgoing, pasted_png, thumbnail_of
from app.ui.file_bubble import CANCEL, DOWNLOAD, OPEN, RETRY, SAVE
from app.ui.text import safe_text, sentence


class FileActions(QObject):
    """The file actions of one conversation panel (`parent`: where the choosers open)."""

    failed = Signal(str)  # a sentence to show in the panel's error line
    said = Signal(str)  # what was done, for the status bar
    sending_done = Signal()  # a batch of files was handed to the engine (sent or refused)

    def __init__(self, engine: Engine, parent: QWidget) -> None:
        super().__init__(parent)
        self._engine = engine
        self._parent = parent
        self.open_url: Callable[[QUrl], bool] = QDesktopServices.openUrl
        self.chooser: QFileDialog | None = None  # the last "Attach" chooser opened
        self.saver: QFileDialog | None = None  # the last "Save as" chooser opened

    # -- sending ---------------------------------------------------------------------------

    def choose(self, send: Callable[[list[Outgoing]], None]) -> QFileDialog:
        """The chooser of files to send (several at once); `send` gets what was chosen."""
        chooser = QFileDialog(self._parent, "Send files")
        chooser.setFileMode(QFileDialog.FileMode.ExistingFiles)
        chooser.setAccessibleName("Choose files to send")
        chooser.filesSelected.connect(lambda paths: send([Outgoing(Path(p)) for p in paths]))
        chooser.open()
        self.chooser = chooser
        return chooser

    def send(self, contact_id: int, items: list[Outgoing], reply_to: int | None = None) -> None:
        spawn(self.send_now(contact_id, items, reply_to), "sending files")

    async def send_now(
        self, contact_id: int, items: list[Outgoing], reply_to: int | None = None
    ) -> int:
        """Send each item as a file message (the first answers `reply_to`), a picture with its
        thumbnail; how many went. A refusal stops the rest and is said."""
        sent = 0
        try:
            for item in items:
                try:
                    ready = await off_thread(pasted_png, item)
                except QrError as exc:
                    raise UserError(str(exc)) from None
                thumbnail = await off_thread(thumbnail_of, ready)
                await self._engine.send_file(
                    contact_id,
                    ready.source,
                    name=ready.name,
                    mime=ready.mime,
                    thumbnail=thumbnail,
                    reply_to=reply_to if sent == 0 else None,
                )
                sent += 1
        except UserError as exc:
            self.failed.emit(sentence(str(exc)))
        finally:
            self.sending_done.emit()
        return sent

    # -- a file's actions ------------------------------------------------------------------

    def act(self, info: FileInfo, what: str) -> None:
        """Do one of a file's actions (file_bubble.OPEN, SAVE, DOWNLOAD, CANCEL, RETRY)."""
        if what == SAVE:
            self.ask_save(info)
        elif what == OPEN:
            spawn(self.open(info.id), "opening a file")
        elif what in (DOWNLOAD, CANCEL, RETRY):
            call = {
                DOWNLOAD: self._engine.download,
                CANCEL: self._engine.cancel_file,
                RETRY: self._engine.retry_file,
            }[what]
            spawn(self._run(call, info.id), f"{what} a file")

    async def _run(self, call: Callable[[int], object], row: int) -> None:
        try:
            await call(row)  # type: ignore[misc]
        except UserError as exc:
            self.failed.emit(sentence(str(exc)))

    async def open(self, row: int) -> bool:
        """Open a copy (in the user's private runtime folder) with the system's application."""
        try:
            path = await self._engine.open_file(row)
        except UserError as exc:
            self.failed.emit(sentence(str(exc)))
            return False
        if not self.open_url(QUrl.fromLocalFile(str(path))):
            self.failed.emit("No application on this computer opens this file.")
            return False
        return True

    def ask_save(self, info: FileInfo) -> QFileDialog:
        """ "Save as…": a chooser that starts in the downloads folder, under the file's name
        made safe; the file is written where it is pointed."""
        folder = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.DownloadLocation)
        start = str(Path(folder or Path.home()) / safe_file_name(info.name))
        saver = QFileDialog(self._parent, "Save file as", start)
        saver.setAcceptMode(QFileDialog.AcceptMode.AcceptSave)
        saver.setFileMode(QFileDialog.FileMode.AnyFile)
        saver.setAccessibleName("Save file as")
        saver.selectFile(start)
        saver.fileSelected.connect(
            lambda path: spawn(self.save(info.id, Path(path)), "saving a file")
        )
        saver.open()
        self.saver = saver
        return saver

    async def save(self, row: int, dest: Path) -> Path | None:
        try:
            path = await self._engine.save_file(row, dest)
        except UserError as exc:
            self.failed.emit(sentence(str(exc)))
            return None
        self.said.emit(f"Saved {safe_text(path.name)} in {safe_text(str(path.parent))}.")
        return path
