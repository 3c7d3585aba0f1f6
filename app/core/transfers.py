"""Files moving: the pieces of ours a contact asks for, streamed; theirs asked for, checked,
written and recorded.

The receiver asks for up to WINDOW pieces it lacks, and for more when half of them came; the
sender reads the sealed pieces from its copy at rest and hands them to the relay connection
(a lane of its own, so messages are not held up behind a file). Both kinds of frame go to the
other side's mailbox for the contact and are handled as they arrive (app/core/inbound.py):
a piece costs a lookup of its transfer tag, one AEAD check and a write. A piece is recorded
as held only once it is flushed to disk, in the same order (write, fsync, then the store), so
a crash costs at most the pieces in flight and those not yet flushed.

An ask carries a number that only grows (the receiver's clock in ms times 16, plus one each
time) and its time: the sender ignores one that is not newer than the last or more than
ASK_MAX_AGE_MS off its clock, so a relay replaying asks gets at most one window sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any

import msgpack

from app.core.context import Context
from app.core.events import FileChanged, Rejection
from app.core.routing import Routing
from app.crypto.errors import DecryptError, MalformedMessage
from app.crypto.filecrypt import CHUNK_SIZE, FileKeys, chunk_length, split_file_frame
from app.crypto.primitives import TAG_SIZE
from app.domain.files import FileInfo, FileRow, FileState
from app.domain.messages import Direction
from app.net.errors import NetError, PayloadTooLarge
from app.store.blobs import BlobError, Blobs
from app.store.errors import NotFound
from app.store.files import Transfer
from app.store.records import TheirMailbox
from app.store.repos import Repos

log = logging.getLogger(__name__)

WINDOW = 32  # pieces asked for at once (about 2 MB) at most
ASK_MORE_AT = WINDOW // 2  # ask for the next pieces when this few are still on their way
SEND_BATCH = 16  # pieces read and handed to the relay connection at once
FLUSH_PIECES = 8  # pieces written before they are flushed and recorded as held
FLUSH_S = 0.5  # ...or this long after the first of them
STALL_S = 8.0  # nothing of what was asked came for this long: ask again
MAX_STALLS = 6  # asked again this many times in a row while the sender is online: failed
OFFLINE_POLL_S = 2.0  # an ask nobody got while the sender seems online: wait this long
OFFLINE_WAIT_S = 15.0  # an ask nobody got: ask again when the sender is back, or after this
ASK_MAX_AGE_MS = 10 * 60 * 1000  # an ask older than this (a replay) is ignored
MAX_ASKED = 4 * WINDOW  # pieces one ask may name
PROGRESS_S = 0.25  # progress events per transfer at most this often
MAX_INLINE_BYTES = 64 * 1024 * 1024  # the largest picture read into memory to show
OPEN_DIR = "open"  # under the user's runtime folder: copies opened with another application
FILES_LANE = "+files"  # pieces travel on a connection of their own (per lane)
LANE_IDLE_S = 30.0  # a transfer connection unused this long is closed


@dataclass(slots=True)
class _Speed:
    """Bytes a second over the last few seconds."""

    samples: list[tuple[float, int]] = field(default_factory=list)

    def add(self, now: float, total: int) -> float:
        self.samples.append((now, total))
        while len(self.samples) > 2 and now - self.samples[0][0] > 3.0:
            self.samples.pop(0)
        first_t, first_n = self.samples[0]
        return (total - first_n) / (now - first_t) if now > first_t else 0.0


@dataclass(slots=True)
class _Upload:
    """A file of ours that its receiver may ask pieces of."""

    row: FileRow
    contact_id: int
    keys: FileKeys
    disk_name: str
    size: int
    sent_bytes: int
    received_bytes: int
    state: FileState
    last_ask: int = 0
    wanted: dict[int, None] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None
    speed: _Speed = field(default_factory=_Speed)
    told_at: float = 0.0
    error: str = ""


@dataclass(slots=True)
class _Download:
    """A file coming in: what is held, written, asked for."""

    row: FileRow
    contact_id: int
    keys: FileKeys
    disk_name: str
    size: int
    sha256: bytes
    held: bytearray
    received: int
    fd: int = -1
    todo: deque[int] = field(default_factory=deque)  # pieces not held nor asked for
    asked: dict[int, float] = field(default_factory=dict)  # piece -> when
    unflushed: dict[int, bytes] = field(default_factory=dict)  # checked, not yet on disk
    first_unflushed: float = 0.0
    ask_seq: int = 0
    woken: asyncio.Event = field(default_factory=asyncio.Event)
    failure: str = ""  # set by a frame: the transfer fails with this
    stopped_by_sender: bool = False
    halted: str = ""  # a local failure (a full disk): failed, what is held kept
    task: asyncio.Task[None] | None = None
    speed: _Speed = field(default_factory=_Speed)
    told_at: float = 0.0

    held_count: int = 0
    flushing: asyncio.Task[None] | None = None
    gone: bool = False  # the file's row was deleted

    def held_bytes(self) -> int:
        """The plaintext bytes of the pieces recorded as held."""
        count = self.keys.count
        if not self.has(count - 1):
            return self.held_count * CHUNK_SIZE
        return (self.held_count - 1) * CHUNK_SIZE + chunk_length(self.size, count - 1)

    def has(self, index: int) -> bool:
        return bool(self.held[index >> 3] & (1 << (index & 7)))

    def mark(self, index: int) -> None:
        if not self.has(index):
            self.held[index >> 3] |= 1 << (index & 7)
            self.held_count += 1

    def next_wanted(self, n: int) -> list[int]:
        """Up to `n` pieces to ask for next (those that arrived meanwhile are skipped)."""
        out: list[int] = []
        while self.todo and len(out) < n:
            index = self.todo.popleft()
            if not self.has(index) and index not in self.asked and index not in self.unflushed:
                out.append(index)
        if not out and not self.asked and not self.unflushed and self.held_count < self.keys.count:
            self.todo.extend(i for i in range(self.keys.count) if not self.has(i))
            return self.next_wanted(n) if self.todo else []
        return out

    def ask_again(self, index: int) -> None:
        if self.asked.pop(index, None) is not None:
            self.todo.appendleft(index)


def _bitmap(count: int, held: bytes) -> bytearray:
    size = (count + 7) // 8
    return bytearray(held[:size].ljust(size, b"\x00"))


class Transfers:
    """The pieces of files moving, both ways, for one profile (see the module's words)."""

    def __init__(
        self,
        ctx: Context,
        routing: Routing,
        blobs: Blobs,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ctx = ctx
        self._routing = routing
        self.blobs = blobs
        self._clock = clock
        self._uploads: dict[bytes, _Upload] = {}  # transfer tag -> upload
        self._downloads: dict[bytes, _Download] = {}
        self._tasks: set[asyncio.Task[object]] = set()
        self._online: dict[int, asyncio.Event] = {}
        self._lanes: dict[tuple[str, str], float] = {}  # (relay, lane) -> last used
        self._closed = False
        self.budget_failed: Callable[[bytes], object] = lambda _mailbox: None

    def _lane(self, dest: TheirMailbox, contact_id: int) -> tuple[str, str]:
        """The relay and the connection a transfer with this contact goes through: beside
        the contact's own (so messages do not wait behind a file), closed when idle."""
        routing = self._routing
        url = routing.route((dest.relay_url, dest.id), contact_id)
        key = (url, routing.lane(contact_id) + FILES_LANE)
        now = self._clock()
        if key not in self._lanes:
            asyncio.get_running_loop().call_later(LANE_IDLE_S, self._idle, key)
        self._lanes[key] = now
        return key

    def _idle(self, key: tuple[str, str]) -> None:
        """Close a transfer connection nothing used for LANE_IDLE_S (or look again later)."""
        left = self._lanes.get(key, 0.0) + LANE_IDLE_S - self._clock()
        if self._closed:
            return
        if left > 0:
            asyncio.get_running_loop().call_later(left, self._idle, key)
            return
        del self._lanes[key]
        self._spawn(self._routing.pool.release(*key))

    def forget(self, keep: set[str]) -> None:
        """Stop moving files whose rows are gone (their messages were deleted)."""
        for tag, up in list(self._uploads.items()):
            if up.disk_name not in keep:
                self.forget_upload(tag)
        for tag, down in list(self._downloads.items()):
            if down.disk_name not in keep:
                self.stop_download(tag)

    def presence(self, contact_id: int) -> None:
        """The contact came online: a download waiting for them asks now."""
        waiting = self._online.get(contact_id)
        if waiting is not None:
            waiting.set()

    async def cancel(self, t: Transfer) -> None:
        """Stop moving this file: ours is no longer sent, theirs no longer fetched (what
        arrived is flushed and kept, so a retry goes on from there)."""
        keys = FileKeys.derive(t.file_key, t.file_id, t.info.size)
        if t.info.direction is Direction.OUTGOING:
            up = self._uploads.get(keys.tag)
            if up is not None:
                up.wanted.clear()
                up.state = FileState.CANCELLED
                await self._record_upload(up)
            return
        down = self._downloads.get(keys.tag)
        if down is not None:
            stop = {"q": self._ask_number(down), "ts": self._ctx.clock(), "stop": True}
            await self.control(down.contact_id, keys, True, stop)
            if down.task is not None:
                down.task.cancel()
            await self._settled(down)
            with contextlib.suppress(Exception):
                await self.flush(down)
            self.stop_download(keys.tag)

    async def close(self) -> None:
        """Stop every transfer; what arrived is flushed and recorded, what was sent counted."""
        self._closed = True
        for tag, down in list(self._downloads.items()):
            if down.task is not None:
                down.task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await down.task
            await self._settled(down)
            with contextlib.suppress(Exception):
                await self.flush(down)
            self.stop_download(tag)
        for up in self._uploads.values():
            if up.task is not None:
                up.task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await up.task
            await self._record_upload(up)
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def serve(self, t: Transfer) -> None:
        info = t.info
        keys = FileKeys.derive(t.file_key, t.file_id, info.size)
        self._uploads[keys.tag] = _Upload(
            info.id,
            info.contact_id,
            keys,
            t.disk_name,
            info.size,
            info.sent_bytes,
            info.received_bytes,
            info.state,
        )

    def forget_upload(self, tag: bytes) -> None:
        up = self._uploads.pop(tag, None)
        if up is not None and up.task is not None:
            up.task.cancel()

    def downloading(self, row: int) -> bool:
        return any(d.row == row and d.task is not None for d in self._downloads.values())

    def _spawn(self, coro: Coroutine[Any, Any, object]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- frames ------------------------------------------------------------------------------

    def on_frame(self, mailbox: bytes, contact_id: int, frame: bytes) -> None:
        """A piece or a control message on one of our contact mailboxes (inbound hands
        them over as they arrive: each costs a lookup, one check and a write)."""
        try:
            tag, chunk = split_file_frame(frame)
        except MalformedMessage as exc:
            self._reject(mailbox, f"a file frame that is not one ({exc})", Rejection.MALFORMED)
            return
        if chunk is not None:
            down = self._downloads.get(tag)
            if down is None or down.contact_id != contact_id:
                self._reject(mailbox, "a piece of no file we fetch", Rejection.FORGED)
                return
            self._piece(mailbox, down, chunk.index, chunk.sealed)
            return
        up = self._uploads.get(tag)
        if up is not None and up.contact_id == contact_id:
            self._asked(mailbox, up, frame)
            return
        down = self._downloads.get(tag)
        if down is not None and down.contact_id == contact_id:
            self._told(mailbox, down, frame)
            return
        self._reject(mailbox, "a file message for no file of ours", Rejection.FORGED)

    def _reject(self, mailbox: bytes, reason: str, kind: Rejection) -> None:
        self.budget_failed(mailbox)
        self._ctx.reject(reason, kind)

    def _piece(self, mailbox: bytes, down: _Download, index: int, sealed: bytes) -> None:
        try:
            plain = down.keys.open_chunk(index, sealed)
        except DecryptError:
            down.ask_again(index)
            self._reject(mailbox, "a piece of a file failed its check", Rejection.FORGED)
            down.woken.set()
            return
        if index >= down.keys.count or len(plain) != chunk_length(down.size, index):
            down.failure = "the sender sent more than it offered"
            down.woken.set()
            return
        if down.has(index) or index in down.unflushed or down.fd < 0:
            return  # a copy (asked again meanwhile)
        down.asked.pop(index, None)
        if not down.unflushed:
            down.first_unflushed = self._clock()
        down.unflushed[index] = sealed  # written off the event loop, with the next flush
        down.received += len(plain)
        down.woken.set()

    def _asked(self, mailbox: bytes, up: _Upload, frame: bytes) -> None:
        ask = self._open_control(mailbox, up.keys, True, frame)
        if ask is None:
            return
        q, stamp = ask.get("q"), ask.get("ts", 0)
        if type(q) is not int or type(stamp) is not int:
            self._reject(mailbox, "a file message that is not one", Rejection.PAYLOAD)
            return
        if q <= up.last_ask or abs(self._ctx.clock() - stamp) > ASK_MAX_AGE_MS:
            return  # a replay, or one overtaken by a newer ask
        up.last_ask = q
        if ask.get("stop"):
            up.wanted.clear()
            return
        have = ask.get("have", 0)
        if type(have) is int and 0 <= have <= up.size:
            up.received_bytes = max(up.received_bytes, have)
        if ask.get("done"):
            up.wanted.clear()
            up.received_bytes = up.size
            up.state = FileState.COMPLETE
            self._spawn(self._record_upload(up))
            self._uploads.pop(up.keys.tag, None)
            return
        if up.state is FileState.CANCELLED:
            self._spawn(self.control(up.contact_id, up.keys, False, {"stop": "cancelled"}))
            return
        wanted = ask.get("w", [])
        if type(wanted) is not list or len(wanted) > MAX_ASKED:
            return
        for index in wanted:
            if type(index) is int and 0 <= index < up.keys.count:
                up.wanted[index] = None
        if up.wanted and (up.task is None or up.task.done()):
            up.task = asyncio.get_running_loop().create_task(self._stream(up))

    def _open_control(
        self, mailbox: bytes, keys: FileKeys, asking: bool, frame: bytes
    ) -> dict[Any, Any] | None:
        """A control message's map, or None (rejected and counted) when it does not open or
        is not a map."""
        try:
            body = msgpack.unpackb(keys.open_control(asking, frame), raw=False)
        except DecryptError:
            self._reject(mailbox, "a file message failed its check", Rejection.FORGED)
            return None
        except Exception:  # msgpack raises several types for bad bytes
            body = None
        if not isinstance(body, dict):
            self._reject(mailbox, "a file message that is not one", Rejection.PAYLOAD)
            return None
        return body

    def _told(self, mailbox: bytes, down: _Download, frame: bytes) -> None:
        told = self._open_control(mailbox, down.keys, False, frame)
        if told is not None and told.get("stop"):
            down.stopped_by_sender = True
            down.woken.set()

    # -- streaming ours ------------------------------------------------------------------------

    async def _stream(self, up: _Upload) -> None:
        """Send the pieces asked for, a batch at a time, until none are wanted or the
        receiver is no longer there."""
        theirs = await self._ctx.store.read(lambda r: r.mailboxes.list_theirs(up.contact_id))
        if not theirs:
            up.wanted.clear()
            return
        dest = theirs[0]
        if up.state is not FileState.TRANSFERRING:
            up.state = FileState.TRANSFERRING
            await self._record_upload(up)
        while up.wanted:
            await self._send_wanted(up, dest)
            await self._record_upload(up)  # asks that came meanwhile are sent on

    async def _send_wanted(self, up: _Upload, dest: TheirMailbox) -> None:
        routing = self._routing
        while up.wanted:
            batch = list(up.wanted)[:SEND_BATCH]
            try:
                pieces = await asyncio.to_thread(
                    self.blobs.read_pieces, up.disk_name, up.size, batch
                )
            except (OSError, ValueError):
                log.error("a file of ours could not be read back")
                up.wanted.clear()
                up.state = FileState.FAILED
                up.error = "the file is no longer readable in this profile"
                return
            url, lane = self._lane(dest, up.contact_id)
            results = await asyncio.gather(
                *(
                    routing.pool.send(url, dest.id, up.keys.chunk_frame(i, p), lane=lane)
                    for i, p in zip(batch, pieces, strict=True)
                ),
                return_exceptions=True,
            )
            gone = False
            for index, piece, result in zip(batch, pieces, results, strict=True):
                if isinstance(result, PayloadTooLarge):
                    up.wanted.clear()
                    up.state = FileState.FAILED
                    up.error = "the relay does not take frames large enough for files"
                    return
                if isinstance(result, BaseException) or result == 0:
                    gone = True
                    continue
                up.wanted.pop(index, None)
                up.sent_bytes += len(piece) - TAG_SIZE
            if gone:  # the receiver left, or the relay: it asks again when it is back
                up.wanted.clear()
            self._progress(up, up.sent_bytes)

    async def _record_upload(self, up: _Upload) -> None:
        def unit(r: Repos) -> None:
            r.files.progress(up.row, up.sent_bytes, up.received_bytes)
            r.files.set_state(up.row, up.state, up.error)

        try:
            await self._ctx.store.run(unit)
            info = await self._ctx.store.read(lambda r: r.files.get(up.row))
        except NotFound:
            return
        except Exception:
            log.exception("recording a file's progress failed")
            return
        self.changed(info)

    def _progress(self, moving: _Upload | _Download, total: int) -> None:
        """Tell the front ends how far a transfer came, PROGRESS_S apart at most."""
        now = self._clock()
        rate = moving.speed.add(now, total)
        if now - moving.told_at < PROGRESS_S:
            return
        moving.told_at = now
        self._spawn(self._tell_progress(moving.row, rate))

    async def _tell_progress(self, row: FileRow, rate: float) -> None:
        with contextlib.suppress(NotFound):
            info = await self._ctx.store.read(lambda r: r.files.get(row))
            self.changed(info, rate)

    # -- fetching theirs -----------------------------------------------------------------------

    def fetch(self, t: Transfer) -> None:
        if self._closed:
            return
        info = t.info
        keys = FileKeys.derive(t.file_key, t.file_id, info.size)
        if keys.tag in self._downloads:
            return
        down = _Download(
            info.id,
            info.contact_id,
            keys,
            t.disk_name,
            info.size,
            info.sha256,
            _bitmap(keys.count, t.held),
            info.received_bytes,
        )
        down.held_count = sum(1 for i in range(keys.count) if down.has(i))
        down.todo.extend(i for i in range(keys.count) if not down.has(i))
        self._downloads[keys.tag] = down
        down.task = asyncio.get_running_loop().create_task(self._run_download(down))

    def stop_download(self, tag: bytes) -> None:
        down = self._downloads.pop(tag, None)
        if down is None:
            return
        if down.task is not None and down.task is not asyncio.current_task():
            down.task.cancel()
        if down.fd >= 0:
            fd, down.fd = down.fd, -1
            with contextlib.suppress(OSError):
                os.fsync(fd)
            os.close(fd)

    async def _run_download(self, down: _Download) -> None:
        try:
            await self._download(down)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("a download failed unexpectedly")
            await self._finish(down, FileState.FAILED, "the download stopped unexpectedly")

    async def _download(self, down: _Download) -> None:
        ctx, routing = self._ctx, self._routing
        down.fd = await asyncio.to_thread(self.blobs.open_for_pieces, down.disk_name)
        stalls, state = 0, FileState.QUEUED
        while True:
            down.woken.clear()  # what arrives from here on wakes the wait below
            if down.failure:
                await self._finish(down, FileState.FAILED, down.failure, start_over=True)
                return
            if down.stopped_by_sender or down.halted:
                why = down.halted or "the sender cancelled it"
                await self._finish(down, FileState.FAILED, why)
                return
            if down.gone:
                self.stop_download(down.keys.tag)
                return
            due = down.unflushed and (
                len(down.unflushed) >= FLUSH_PIECES
                or self._clock() - down.first_unflushed >= FLUSH_S
                or not down.asked
            )
            if due and (down.flushing is None or down.flushing.done()):
                # Off the way of the next ask: the pieces keep coming while this one syncs.
                down.flushing = asyncio.get_running_loop().create_task(self._flush_then_wake(down))
            if down.held_count == down.keys.count:
                await self._complete(down)
                return
            room = len(down.asked) <= ASK_MORE_AT and len(down.unflushed) < WINDOW
            want = down.next_wanted(WINDOW - len(down.asked)) if room else []
            if want:
                ask = {"q": self._ask_number(down), "ts": ctx.clock(), "w": want}
                reached = await self.control(
                    down.contact_id, down.keys, True, ask | {"have": down.received}
                )
                if not reached:  # the sender is not online: wait for them
                    down.todo.extendleft(reversed(want))
                    if state is not FileState.QUEUED:
                        state = FileState.QUEUED
                        await self._set_state(down, state)
                    await self._wait_online(down.contact_id)
                    stalls = 0
                    continue
                now = self._clock()
                for index in want:
                    down.asked[index] = now
                if state is not FileState.TRANSFERRING:
                    state = FileState.TRANSFERRING
                    await self._set_state(down, state)
            timeout = FLUSH_S if down.unflushed else STALL_S
            try:
                async with asyncio.timeout(timeout):
                    await down.woken.wait()
                stalls = 0
            except TimeoutError:
                if down.unflushed:
                    continue
                for index in sorted(down.asked, reverse=True):  # nothing came: ask again
                    down.ask_again(index)
                if routing.is_online(down.contact_id):
                    stalls += 1
                if stalls >= MAX_STALLS:
                    await self._finish(down, FileState.FAILED, "the sender stopped sending")
                    return
            self._progress(down, down.received)

    def _ask_number(self, down: _Download) -> int:
        # Increasing across restarts too: the time in ms, then one more each ask.
        down.ask_seq = max(down.ask_seq, self._ctx.clock() * 16)
        down.ask_seq += 1
        return down.ask_seq

    async def _wait_online(self, contact_id: int) -> None:
        """Until the contact comes online (or OFFLINE_WAIT_S, then the caller asks anyway:
        presence can be missed)."""
        waiting = self._online.setdefault(contact_id, asyncio.Event())
        waiting.clear()
        if self._routing.is_online(contact_id):
            await asyncio.sleep(OFFLINE_POLL_S)  # online, yet nobody got the ask: a moment
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(OFFLINE_WAIT_S):
                await waiting.wait()

    async def control(
        self, contact_id: int, keys: FileKeys, asking: bool, body: Mapping[str, object]
    ) -> bool:
        """Send a control message to the contact's mailbox; whether anyone got it."""
        ctx, routing = self._ctx, self._routing
        theirs = await ctx.store.read(lambda r: r.mailboxes.list_theirs(contact_id))
        if not theirs:
            return False
        dest = theirs[0]
        frame = keys.control_frame(asking, msgpack.packb(body, use_bin_type=True))
        url, lane = self._lane(dest, contact_id)
        try:
            reached = await routing.pool.send(url, dest.id, frame, lane=lane)
        except NetError:
            return False
        return reached > 0

    async def _flush_then_wake(self, down: _Download) -> None:
        try:
            if not await self.flush(down):
                down.gone = True
        except Exception:
            log.exception("recording the pieces of a file that arrived failed")
        down.woken.set()

    async def flush(self, down: _Download, state: FileState = FileState.TRANSFERRING) -> bool:
        """Flush the pieces written to disk, then record them as held (never the other way
        round); False when the file's row is gone (its message was deleted)."""
        if not down.unflushed or down.fd < 0:
            return True
        batch = dict(down.unflushed)
        try:
            await asyncio.to_thread(Blobs.write_pieces, down.fd, batch)
        except OSError as exc:
            down.halted = f"the file could not be written ({exc.strerror or 'disk error'})"
            return True
        for index in batch:
            down.mark(index)
            del down.unflushed[index]
        if down.unflushed:
            down.first_unflushed = self._clock()
        held, received = bytes(down.held), down.held_bytes()
        return bool(
            await self._ctx.store.run(lambda r: r.files.hold(down.row, held, received, state))
        )

    async def _settled(self, down: _Download) -> None:
        """Wait for a flush under way (before the descriptor is closed)."""
        if down.flushing is not None and not down.flushing.done():
            with contextlib.suppress(Exception):
                await asyncio.shield(down.flushing)

    async def _set_state(self, down: _Download, state: FileState) -> None:
        await self._ctx.store.run(lambda r: r.files.set_state(down.row, state))
        with contextlib.suppress(NotFound):
            self.changed(await self._ctx.store.read(lambda r: r.files.get(down.row)))

    async def _complete(self, down: _Download) -> None:
        """Every piece is here: the whole file must match the offer's hash."""
        try:
            digest = await asyncio.to_thread(
                self.blobs.unseal, down.disk_name, down.keys, down.size, None
            )
        except BlobError as exc:
            await self._finish(down, FileState.FAILED, str(exc), start_over=True)
            return
        if digest != down.sha256:
            await self._finish(
                down, FileState.FAILED, "the file does not match what was offered", start_over=True
            )
            return
        done = {"q": self._ask_number(down), "ts": self._ctx.clock(), "done": True}
        await self.control(down.contact_id, down.keys, True, done | {"have": down.size})
        await self._finish(down, FileState.COMPLETE, "")

    async def _finish(
        self, down: _Download, state: FileState, error: str, *, start_over: bool = False
    ) -> None:
        await self._settled(down)
        self.stop_download(down.keys.tag)
        row = down.row

        def unit(r: Repos) -> bool:
            done = r.files.set_state(row, state, error, reset=start_over)
            if done and state is FileState.COMPLETE:
                r.files.hold(row, bytes(down.held), down.size, state)
            return done

        if not await self._ctx.store.run(unit):
            return
        if start_over:
            self.blobs.remove(down.disk_name)
        with contextlib.suppress(NotFound):
            self.changed(await self._ctx.store.read(lambda r: r.files.get(row)))

    def changed(self, info: FileInfo, rate: float = 0.0) -> None:
        self._ctx.emit(FileChanged(info, rate))
