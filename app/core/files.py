"""Files and pictures: offered inside the ratchet, then streamed piece by piece, resumably.

Sending a file seals it into the profile (app/store/blobs.py) under a fresh file key and sends
a `file` message (payload.Offer: id, name, size, type, SHA-256, key, thumbnail) like any
other. The pieces never enter the ratchet or the outbox: while both sides are online the
receiver asks for the pieces it lacks, a window at a time, and the sender streams them to the
receiver's mailbox (app/crypto/filecrypt.py has the frames). The relay sees frames and their
sizes, nothing more, and keeps nothing.

The receiver writes each piece, checked, where it belongs in its own copy at rest and
records it as held only once it is flushed to disk, in the store, so a crash, a restart of
either side or of the relay costs at most the pieces in flight: the transfer goes on from
what is held. When every piece is there the whole file is unsealed once more and its SHA-256
compared with the offer's; only then is it COMPLETE. A piece that fails its check is dropped
and asked for again; a sender that sends more than it offered, a file that does not match
its hash or a sender that stops answering leave the transfer FAILED (Retry).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import mimetypes
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path

import platformdirs

from app.core import payload as pl
from app.core.context import Context
from app.core.errors import UnknownContact, UserError
from app.core.events import (
    ContactRemoved,
    Event,
    MessageChanged,
    MessagesRemoved,
    PresenceChanged,
)
from app.core.messaging import Messaging, check_can_send
from app.core.profile import SETTING_AUTO_DOWNLOAD
from app.core.routing import Routing
from app.core.transfers import Transfers
from app.crypto.filecrypt import (
    FILE_ID_SIZE,
    FileKeys,
    is_file_frame,
)
from app.crypto.ratchet import Session
from app.domain.contacts import Contact
from app.domain.files import (
    MAX_FILE_BYTES,
    MAX_FILE_NAME_CHARS,
    MAX_THUMBNAIL_BYTES,
    FileInfo,
    FileRow,
    FileState,
    safe_file_name,
)
from app.domain.messages import (
    MAX_MESSAGE_CHARS,
    Direction,
    Message,
    MessageRow,
    WireId,
)
from app.store.blobs import BlobError, Blobs
from app.store.errors import NotFound
from app.store.files import NewFile, Transfer
from app.store.records import OurMailbox, TheirMailbox
from app.store.repos import Repos

log = logging.getLogger(__name__)

MAX_INLINE_BYTES = 64 * 1024 * 1024  # the largest picture read into memory to show
OPEN_DIR = "open"  # under the user's runtime folder: copies opened with another application


def _guess_mime(name: str) -> str:
    guessed, _ = mimetypes.guess_type(name, strict=False)
    return (
        guessed
        if guessed is not None and pl.MIME.fullmatch(guessed)
        else "application/octet-stream"
    )


class Files:
    """Sending, receiving, keeping and handing out files. `start()` after the routing is up,
    `close()` before it goes down."""

    def __init__(
        self,
        ctx: Context,
        routing: Routing,
        messaging: Messaging,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ctx = ctx
        self._routing = routing
        self._messaging = messaging
        self._clock = clock
        self.blobs = Blobs(ctx.store.paths.directory)
        self.transfers = Transfers(ctx, routing, self.blobs, clock=clock)
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeping = False
        self._closed = False
        self._opened: list[Path] = []

    # -- lifecycle -------------------------------------------------------------------------

    async def sweep(self) -> int:
        """Delete files at rest that no message holds any more (see Blobs.sweep)."""
        keep = await self._ctx.store.read(lambda r: r.files.disk_names())
        gone = await asyncio.to_thread(self.blobs.sweep, keep)
        self.transfers.forget(keep)
        return gone

    async def start(self) -> None:
        """Take up what was under way: files of ours not yet received, downloads wanted."""
        await self.sweep()
        for t in await self._ctx.store.read(lambda r: r.files.unfinished()):
            if t.info.direction is Direction.OUTGOING:
                self.transfers.serve(t)
            else:
                self.transfers.fetch(t)

    async def close(self) -> None:
        self._closed = True
        await self.transfers.close()
        for path in self._opened:  # each copy, then its folder
            with contextlib.suppress(OSError):
                path.rmdir() if path.is_dir() else path.unlink()
        self._opened.clear()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def on_event(self, event: Event) -> None:
        """Messages went away: so do their files (soon, in one sweep). A contact came
        online: a download waiting for them asks now."""
        if isinstance(event, PresenceChanged) and event.online:
            self.transfers.presence(event.contact_id)
        gone = isinstance(event, (MessagesRemoved, ContactRemoved)) or (
            isinstance(event, MessageChanged) and event.message.deleted
        )
        if gone and not self._sweeping and not self._closed:
            self._sweeping = True
            task = asyncio.get_running_loop().create_task(self._sweep_soon())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _sweep_soon(self) -> None:
        await asyncio.sleep(0)
        self._sweeping = False
        try:
            await self.sweep()
        except Exception:
            log.exception("deleting files no message holds failed")

    # -- settings ------------------------------------------------------------------------------

    def auto_download(self) -> int:
        """Files up to this many MB are fetched as soon as they are offered (0: none)."""
        return self._ctx.settings.auto_download_mb

    async def set_auto_download(self, megabytes: int) -> None:
        if not 0 <= megabytes <= MAX_FILE_BYTES // 1_000_000 + 1:
            raise UserError("the automatic download limit is between 0 and 2,148 MB")
        await self._ctx.store.run(lambda r: r.settings.set(SETTING_AUTO_DOWNLOAD, str(megabytes)))
        self._ctx.settings.auto_download_mb = megabytes

    # -- sending -------------------------------------------------------------------------------

    async def send_file(
        self,
        contact_id: int,
        source: Path | str | bytes,
        *,
        name: str | None = None,
        mime: str | None = None,
        caption: str = "",
        thumbnail: bytes = b"",
        reply_to: int | None = None,
    ) -> Message:
        """Seal a file (a path, or bytes such as a pasted picture) into the profile and send
        its offer; the pieces follow when the contact asks. `thumbnail`: a small picture (at
        most 16 KB) for images."""
        if isinstance(source, (str, Path)):
            path = Path(source)
            try:
                size = await asyncio.to_thread(_readable_size, path)
            except OSError as exc:
                raise UserError(f"{path.name}: {exc.strerror or 'cannot be read'}") from None
            name = name or path.name
            data: Path | bytes = path
        else:
            size, data = len(source), source
            name = name or "picture"
        if size > MAX_FILE_BYTES:
            raise UserError("a file can be at most 2 GiB")
        name = name.strip()
        if not name or len(name) > MAX_FILE_NAME_CHARS:
            raise UserError(f"a file name has 1 to {MAX_FILE_NAME_CHARS} characters")
        if len(thumbnail) > MAX_THUMBNAIL_BYTES:
            raise UserError("a thumbnail is at most 16 KB")
        if len(caption) > MAX_MESSAGE_CHARS:  # (said before sealing a file for nothing)
            raise UserError(f"a caption holds at most {MAX_MESSAGE_CHARS} characters")
        mime = mime or _guess_mime(name)
        if not pl.MIME.fullmatch(mime):
            raise UserError("not a media type")
        check_can_send(await self._ctx.store.read(lambda r: _contact(r, contact_id)))
        file_id, file_key = os.urandom(FILE_ID_SIZE), os.urandom(32)
        disk_name = self.blobs.new_name()

        def keys_for(n: int) -> FileKeys:
            return FileKeys.derive(file_key, file_id, n)

        try:
            size, digest = await asyncio.to_thread(self.blobs.seal, disk_name, data, keys_for)
        except BlobError as exc:
            raise UserError(str(exc)) from None
        except OSError as exc:
            raise UserError(f"{name}: {exc.strerror or 'cannot be read'}") from None
        offer = pl.Offer(file_id, name, size, mime, digest, file_key, thumbnail)
        record = NewFile(
            contact_id,
            Direction.OUTGOING,
            file_id,
            name,
            size,
            mime,
            digest,
            file_key,
            thumbnail,
            disk_name,
            FileState.QUEUED,
        )
        try:
            message = await self._messaging.send(
                contact_id,
                caption,
                reply_to,
                offer=offer,
                attach=lambda r, row: r.files.add(row, record),
            )
        except BaseException:
            self.blobs.remove(disk_name)
            raise
        assert message.file is not None
        # Served before anything else runs: the outbox may send the offer at the next await,
        # and the contact's first ask must find the file.
        self.transfers.serve(Transfer(message.file, file_id, file_key, disk_name, b""))
        return message

    # -- receiving the offer (inbound, under the lock) ---------------------------------------

    async def take_offer(
        self,
        contact_id: int,
        session: Session,
        mid: WireId,
        chat: pl.Chat,
        theirs: list[TheirMailbox],
        via: bytes | None,
    ) -> list[OurMailbox]:
        """Store a file message with its file's row; fetch it at once when it is within the
        automatic-download limit and the contact's quota."""
        offer = chat.file
        assert offer is not None
        ctx = self._ctx
        quota = ctx.settings.quota_mb * 1_000_000
        limit = ctx.settings.auto_download_mb * 1_000_000

        def held(r: Repos) -> int:
            return r.messages.incoming_bytes(contact_id) + r.files.held_bytes(contact_id)

        used = await ctx.store.read(held)
        fetch = offer.size <= limit and used + offer.size <= quota
        record = NewFile(
            contact_id,
            Direction.INCOMING,
            offer.file_id,
            offer.name,
            offer.size,
            offer.mime,
            offer.sha256,
            offer.key,
            offer.thumbnail,
            self.blobs.new_name(),
            FileState.QUEUED if fetch else FileState.OFFERED,
        )
        rows: list[FileRow] = []

        def attach(r: Repos, row: MessageRow) -> None:
            try:
                rows.append(r.files.add(row, record))
            except Exception as exc:  # the same file offered twice: keep the message only
                if "UNIQUE" not in str(exc):
                    raise

        retired = await self._messaging.take_chat(
            contact_id, session, mid, chat, theirs, via, attach=attach
        )
        if fetch and rows:
            self.transfers.fetch(await ctx.store.read(lambda r: r.files.transfer(rows[0])))
        return retired

    # -- what a person does with a file ---------------------------------------------------------

    async def list(self, contact_id: int | None = None) -> list[FileInfo]:
        return await self._ctx.store.read(lambda r: r.files.all(contact_id))

    async def get(self, row: int) -> FileInfo:
        try:
            return await self._ctx.store.read(lambda r: r.files.get(row))
        except NotFound:
            raise UserError("no such file") from None

    async def download(self, row: int) -> FileInfo:
        """Fetch (or fetch again, after a failure or a cancel) a file offered to us."""
        t = await self._transfer(row)
        info = t.info
        if info.direction is Direction.OUTGOING:
            return await self.retry(row)
        if info.state is FileState.COMPLETE:
            return info
        if info.state in (FileState.QUEUED, FileState.TRANSFERRING) and self.transfers.downloading(
            row
        ):
            return info
        await self._ctx.store.run(lambda r: r.files.set_state(row, FileState.QUEUED))
        t = await self._transfer(row)
        self.transfers.fetch(t)
        self.transfers.changed(t.info)
        return t.info

    async def retry(self, row: int) -> FileInfo:
        """Incoming: download again. Ours, cancelled: offer its pieces again."""
        info = (await self._transfer(row)).info
        if info.direction is Direction.INCOMING:
            return await self.download(row)
        if info.state is FileState.CANCELLED:
            await self._ctx.store.run(lambda r: r.files.set_state(row, FileState.QUEUED))
            t = await self._transfer(row)
            self.transfers.serve(t)
            self.transfers.changed(t.info)
            return t.info
        return info

    async def cancel(self, row: int) -> FileInfo:
        """Stop a transfer: ours is no longer sent, theirs no longer fetched (what arrived is
        kept, so a retry goes on from there)."""
        t = await self._transfer(row)
        if t.info.state in (FileState.COMPLETE, FileState.CANCELLED):
            return t.info
        await self.transfers.cancel(t)
        await self._ctx.store.run(lambda r: r.files.set_state(row, FileState.CANCELLED))
        info = await self.get(row)
        self.transfers.changed(info)
        return info

    async def save(self, row: int, dest: Path | str) -> Path:
        """Write the file, unsealed, to `dest` (a file, or a folder to put it in under its
        name); written beside it first and renamed when whole and its hash matches."""
        t = await self._transfer(row)
        info = t.info
        if not info.available:
            raise UserError("the file has not arrived yet")
        target = Path(dest)
        if await asyncio.to_thread(target.is_dir):
            target = target / safe_file_name(info.name)
        keys = FileKeys.derive(t.file_key, t.file_id, info.size)

        def write() -> None:
            tmp = target.with_name(f".{target.name}.{os.getpid()}.partial")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                with os.fdopen(fd, "wb") as out:
                    digest = self.blobs.unseal(t.disk_name, keys, info.size, out)
                    out.flush()
                    os.fsync(out.fileno())
                if digest != info.sha256:
                    raise BlobError("the file does not match what was offered")
                os.replace(tmp, target)
            except BaseException:
                with contextlib.suppress(OSError):
                    tmp.unlink()
                raise

        try:
            await asyncio.to_thread(write)
        except BlobError as exc:
            raise UserError(str(exc)) from None
        except OSError as exc:
            raise UserError(f"{target}: {exc.strerror or 'cannot be written'}") from None
        return target

    async def read(self, row: int, limit: int = MAX_INLINE_BYTES) -> bytes:
        """The whole file in memory (a picture to show), unsealed and checked."""
        t = await self._transfer(row)
        info = t.info
        if not info.available:
            raise UserError("the file has not arrived yet")
        if info.size > limit:
            raise UserError("the file is too large to show")
        keys = FileKeys.derive(t.file_key, t.file_id, info.size)

        def load() -> bytes:
            out = io.BytesIO()
            digest = self.blobs.unseal(t.disk_name, keys, info.size, out)
            if digest != info.sha256:
                raise BlobError("the file does not match what was offered")
            return out.getvalue()

        try:
            return await asyncio.to_thread(load)
        except BlobError as exc:
            raise UserError(str(exc)) from None

    async def open_copy(self, row: int) -> Path:
        """An unsealed copy to open with another application, in this user's private runtime
        folder (in memory on Linux), deleted when the profile closes."""
        info = await self.get(row)
        base = runtime_dir() / OPEN_DIR
        folder = base / os.urandom(8).hex()

        def make() -> None:
            base.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(base, 0o700)
            folder.mkdir(mode=0o700)

        await asyncio.to_thread(make)
        target = await self.save(row, folder / safe_file_name(info.name))
        self._opened.extend([target, folder])
        self._opened.sort(key=lambda p: len(p.parts), reverse=True)  # files before folders
        return target

    async def _transfer(self, row: int) -> Transfer:
        try:
            return await self._ctx.store.read(lambda r: r.files.transfer(row))
        except NotFound:
            raise UserError("no such file") from None


def runtime_dir() -> Path:
    """This user's private runtime folder, where a file is unsealed to be opened: on Linux
    $XDG_RUNTIME_DIR (a memory file system only its user can enter), never a shared or disk
    temporary folder; elsewhere the platform's per-user runtime folder."""
    if platform.system() == "Linux":
        found = os.environ.get("XDG_RUNTIME_DIR", "")
        if not found or not os.path.isabs(found) or not os.path.isdir(found):
            raise UserError(
                "this session has no private runtime folder to open files from: use Save as"
            )
        return Path(found) / "anonchat"
    return Path(platformdirs.user_runtime_dir("anonchat", False))


def _readable_size(path: Path) -> int:
    if not path.is_file():
        raise OSError(0, "not a file that can be read")
    with open(path, "rb"):
        return path.stat().st_size


def _contact(r: Repos, contact_id: int) -> Contact:
    try:
        return r.contacts.get(contact_id)
    except NotFound:
        raise UnknownContact("no such contact") from None


__all__ = ["Files", "is_file_frame"]
