"""Backups (docs/backup.md): the profile into one encrypted file, now or on a schedule into a
folder the user picked, and a new profile restored from such a file.

A backup holds the identity, contacts, messages, settings and files, never a session: a
restored profile opens fresh channels with its contacts. Making one reads a snapshot on a
connection of its own, on a thread of its own, so the engine goes on meanwhile; the file is
written under a temporary name and renamed into place, so one cut off leaves the previous
backups as they were.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import secrets
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from app.core.account import MIN_PASSPHRASE, invitation_row
from app.core.context import Context
from app.core.errors import UserError
from app.core.events import BackupFinished
from app.core.profile import (
    DEFAULT_RELAY,
    SETTING_ADDRESS,
    SETTING_FALLBACKS,
    SETTING_RELAY,
    now_ms,
)
from app.crypto.backupstream import BackupError
from app.crypto.errors import LocalStateError
from app.crypto.identity import Identity
from app.crypto.passphrase import DEFAULT_PARAMS, KdfParams
from app.store import backup as stored
from app.store.backup import Written as Written  # what a front end shows after a backup
from app.store.backup_restore import Restored as Restored  # what a front end shows after one
from app.store.errors import StoreError
from app.store.paths import ProfilePaths, fsync_dir
from app.store.repos import Repos
from app.store.store import Store

log = logging.getLogger(__name__)

SETTING_PREFIX = "backup."  # the schedule's settings: never in a backup themselves
SETTING_FOLDER = "backup.folder"
SETTING_EVERY = "backup.every"
SETTING_KEEP = "backup.keep"
# The scheduled backups' passphrase, kept in the (encrypted) database.
SETTING_PASSPHRASE = "backup.passphrase"  # noqa: S105 (a setting's name)
SETTING_LAST_AT = "backup.last_at"
SETTING_LAST_ERROR = "backup.last_error"
# Left out of every backup: the schedule (its folder is this computer's) and the long-lived
# address (its mailbox is not backed up; a restored profile makes a new one when asked).
SETTINGS_LEFT_OUT = (SETTING_PREFIX, SETTING_ADDRESS)
DEFAULT_KEEP = 5
MAX_KEEP = 1000
CHECK_EVERY_S = 60.0  # how often the schedule looks whether a backup is due
RETRY_AFTER_MS = 15 * 60 * 1000  # after a failed scheduled backup (a stick not plugged in)
SUFFIX = ".backup"

Progress = Callable[[int, int], None]
"""(bytes done, bytes expected in all), called on the event loop; the total is an estimate
until the last call, where done equals it."""


class BackupEvery(StrEnum):
    OFF = "off"
    DAILY = "daily"
    WEEKLY = "weekly"


INTERVAL_MS = {BackupEvery.DAILY: 24 * 3600 * 1000, BackupEvery.WEEKLY: 7 * 24 * 3600 * 1000}


@dataclass(frozen=True, slots=True)
class BackupSchedule:
    folder: str  # "" when none was chosen
    every: BackupEvery
    keep: int  # the newest this many scheduled backups are kept
    has_passphrase: bool
    last_backup_at: int | None  # ms, the last scheduled backup that was written
    last_error: str  # why the last scheduled backup failed; "" after one that worked


def _label(profile: ProfilePaths) -> str:
    name = "".join(c for c in profile.directory.name if c.isascii() and (c.isalnum() or c in "-_"))
    return name or "profile"


def scheduled_name(profile: ProfilePaths, at_ms: int) -> str:
    """`anonchat-<profile>-<UTC yyyymmdd-hhmmss>.backup`: names that sort by time."""
    stamp = datetime.fromtimestamp(at_ms / 1000, UTC).strftime("%Y%m%d-%H%M%S")
    return f"anonchat-{_label(profile)}-{stamp}{SUFFIX}"


def scheduled_pattern(profile: ProfilePaths) -> re.Pattern[str]:
    """The names of this profile's scheduled backups, and nothing else in the folder."""
    return re.compile(rf"anonchat-{re.escape(_label(profile))}-\d{{8}}-\d{{6}}{re.escape(SUFFIX)}")


def _schedule_of(values: dict[str, str]) -> BackupSchedule:
    every = values.get(SETTING_EVERY, "")
    last = values.get(SETTING_LAST_AT)
    return BackupSchedule(
        folder=values.get(SETTING_FOLDER, ""),
        every=BackupEvery(every) if every in BackupEvery.__members__.values() else BackupEvery.OFF,
        keep=int(values.get(SETTING_KEEP, DEFAULT_KEEP)),
        has_passphrase=bool(values.get(SETTING_PASSPHRASE)),
        last_backup_at=int(last) if last else None,
        last_error=values.get(SETTING_LAST_ERROR, ""),
    )


def _backup_file(path: str | Path) -> Path:
    target = Path(path).expanduser().absolute()
    if target.is_dir():
        raise UserError(f"{target} is a folder: name the backup file to write")
    return target


def _folder(folder: str | Path) -> str:
    if not str(folder):
        return ""
    where = Path(folder).expanduser().absolute()
    if not where.is_dir():
        raise UserError(f"no folder {where}")
    return str(where)


def _restore_source(target: Path, source: str | Path) -> Path:
    """The backup file, once sure the profile's directory is free (its parent is made)."""
    if target.exists() or target.is_symlink():
        raise UserError(f"{target} already exists: a backup is restored into a new profile")
    found = Path(source).expanduser()
    if not found.is_file():
        raise UserError(f"no backup file at {found}")
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    return found


def _check_backup_passphrase(passphrase: str) -> None:
    if len(passphrase) < MIN_PASSPHRASE:
        raise UserError(f"a backup passphrase needs at least {MIN_PASSPHRASE} characters")


def _on_loop(progress: Progress | None) -> stored.Progress | None:
    """A progress callback the backup's thread may call: it runs on the event loop."""
    if progress is None:
        return None
    loop = asyncio.get_running_loop()

    def report(done: int, total: int) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(progress, done, total)

    return report


class Backups:
    """Backups now and on the schedule. `params` is the Argon2id cost new backups are
    sealed under."""

    def __init__(self, ctx: Context, params: KdfParams = DEFAULT_PARAMS) -> None:
        self._ctx = ctx
        self.params = params
        self._lock = asyncio.Lock()  # one backup at a time
        self._cancel = threading.Event()  # set when the profile closes
        self._task: asyncio.Task[None] | None = None
        self._next_try = 0  # after a failure, no scheduled attempt before this (ms)

    async def backup(
        self,
        path: str | Path,
        passphrase: str | None,
        include_files: bool = True,
        progress: Progress | None = None,
    ) -> Written:
        """Back the profile up to `path` (replaced atomically if it exists), sealed under
        `passphrase` (None: the scheduled backups' one); `include_files` False leaves the
        files' bytes out (their messages stay). The engine goes on meanwhile; `progress` is
        told how far it got."""
        if passphrase is None:
            kept = await self._ctx.store.read(lambda r: r.settings.get(SETTING_PASSPHRASE))
            if not kept:
                raise UserError("no passphrase is set for scheduled backups")
            passphrase = kept
        _check_backup_passphrase(passphrase)
        target = await asyncio.to_thread(_backup_file, path)
        if self._cancel.is_set():
            raise UserError("the profile is closing")
        async with self._lock:
            try:
                return await self._ctx.store.backup(
                    target,
                    passphrase,
                    self.params,
                    include_files=include_files,
                    settings_left_out=SETTINGS_LEFT_OUT,
                    made_at=self._ctx.clock(),
                    progress=_on_loop(progress),
                    cancel=self._cancel,
                )
            except stored.BackupCancelled:
                raise UserError("the backup was stopped: the profile is closing") from None

    async def schedule(self) -> BackupSchedule:
        return _schedule_of(await self._ctx.store.read(lambda r: r.settings.all()))

    async def set_schedule(
        self,
        *,
        folder: str | Path | None = None,
        every: BackupEvery | str | None = None,
        keep: int | None = None,
        passphrase: str | None = None,
    ) -> BackupSchedule:
        """Change what is given (None leaves it). A schedule that is on needs a folder that
        exists and a passphrase; the passphrase is kept in the profile's database."""
        current = await self.schedule()
        changes: dict[str, str] = {}
        if folder is not None:
            changes[SETTING_FOLDER] = await asyncio.to_thread(_folder, folder)
        if every is not None:
            try:
                changes[SETTING_EVERY] = BackupEvery(every).value
            except ValueError:
                raise UserError("backups run off, daily or weekly") from None
        if keep is not None:
            if not 1 <= keep <= MAX_KEEP:
                raise UserError(f"keep 1 to {MAX_KEEP} backups")
            changes[SETTING_KEEP] = str(keep)
        if passphrase is not None:
            _check_backup_passphrase(passphrase)
            changes[SETTING_PASSPHRASE] = passphrase
        on = BackupEvery(changes.get(SETTING_EVERY, current.every)) is not BackupEvery.OFF
        if on and not changes.get(SETTING_FOLDER, current.folder):
            raise UserError("scheduled backups need a folder")
        if on and not (passphrase or current.has_passphrase):
            raise UserError("scheduled backups need a backup passphrase")

        def unit(r: Repos) -> None:
            for key, value in changes.items():
                r.settings.set(key, value)

        await self._ctx.store.run(unit)
        self._next_try = 0  # a new folder or passphrase is tried at the next check
        return await self.schedule()

    def start(self) -> None:
        """Check at once, then every CHECK_EVERY_S, whether a scheduled backup is due."""
        if self._task is None and not self._cancel.is_set():
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="anonchat-backups"
            )

    async def close(self) -> None:
        """Stop a backup under way (its temporary file goes) and the schedule."""
        self._cancel.set()
        async with self._lock:  # a backup under way sees the flag within one chunk
            pass
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.run_due()
            except Exception:
                log.exception("the backup schedule failed")
            await asyncio.sleep(CHECK_EVERY_S)

    async def run_due(self) -> Written | None:
        """Make the scheduled backup if one is due; None when none was (or it failed: the
        schedule's `last_error` says why and BackupFinished told the front ends)."""
        now = self._ctx.clock()
        values = await self._ctx.store.read(lambda r: r.settings.all())
        sched = _schedule_of(values)
        passphrase = values.get(SETTING_PASSPHRASE, "")
        if sched.every is BackupEvery.OFF or not sched.folder or not passphrase:
            return None
        if (
            sched.last_backup_at is not None
            and now < sched.last_backup_at + INTERVAL_MS[sched.every]
        ):
            return None
        if now < self._next_try or self._cancel.is_set():
            return None
        profile = self._ctx.store.paths
        folder = Path(sched.folder)
        pattern = scheduled_pattern(profile)

        def ours(name: str) -> bool:
            return pattern.fullmatch(name) is not None

        target = folder / scheduled_name(profile, now)
        try:
            await asyncio.to_thread(stored.sweep_partial, folder, ours)
            written = await self.backup(target, passphrase, True)
            await asyncio.to_thread(stored.prune, folder, ours, sched.keep)
        except (UserError, StoreError, OSError) as exc:
            if self._cancel.is_set():
                return None
            error = str(exc) or "the backup failed"
            self._next_try = now + RETRY_AFTER_MS
            await self._ctx.store.run(lambda r: r.settings.set(SETTING_LAST_ERROR, error))
            self._ctx.emit(BackupFinished(now, "", error))
            return None

        def unit(r: Repos) -> None:
            r.settings.set(SETTING_LAST_AT, str(now))
            r.settings.set(SETTING_LAST_ERROR, "")

        await self._ctx.store.run(unit)
        self._ctx.emit(BackupFinished(now, str(written.path), ""))
        return written


def _restoring(target: Path) -> str:
    """The name a restore into `target` is built under, before its random part."""
    return f".{target.name}.restoring-"


def _sweep_cut_restores(target: Path) -> None:
    """What a restore into `target` that was killed left beside it (encrypted, and never a
    profile): gone before the next one starts."""
    prefix = _restoring(target)
    with contextlib.suppress(OSError):
        for left in target.parent.iterdir():
            if left.name.startswith(prefix) and left.is_dir() and not left.is_symlink():
                shutil.rmtree(left, ignore_errors=True)


async def restore_profile(
    paths: ProfilePaths,
    source: str | Path,
    backup_passphrase: str,
    passphrase: str,
    *,
    params: KdfParams = DEFAULT_PARAMS,
    progress: Progress | None = None,
) -> Restored:
    """A new profile at `paths` (which must not exist) from the backup file `source`, locked
    with `passphrase`. It is built in a temporary folder beside `paths` and renamed into
    place only once the whole file authenticated and loaded: on any failure nothing is left.
    Its contacts reconnect by themselves where they gave us a rejoin prekey (the result
    says how many cannot); requests are dropped, and it gets a fresh one-time code."""
    if not passphrase:
        raise UserError("the passphrase must not be empty")
    if not backup_passphrase:
        raise UserError("the backup passphrase is empty")
    target = paths.directory
    source = await asyncio.to_thread(_restore_source, target, source)
    await asyncio.to_thread(_sweep_cut_restores, target)
    tmp = ProfilePaths(target.parent / f"{_restoring(target)}{secrets.token_hex(4)}")
    store: Store | None = None
    try:
        store, restored = await Store.restore(
            tmp, source, backup_passphrase, passphrase, params, _on_loop(progress)
        )
        await _fresh_code(store)
        await store.close()
        store = None
        os.rename(tmp.directory, target)
        fsync_dir(target.parent)
    except BackupError as exc:
        raise UserError(str(exc)) from None
    except OSError as exc:
        raise UserError(f"cannot restore into {target}: {exc.strerror}") from None
    finally:
        if store is not None:
            await store.close()
        if tmp.directory.exists():
            shutil.rmtree(tmp.directory, ignore_errors=True)
    return restored


async def _fresh_code(store: Store) -> None:
    """Check the identity that came back, and give the profile a one-time code on its relays
    as a new profile gets (the backed-up cards' mailboxes stayed behind)."""
    profile = await store.identity()
    if profile is None:
        raise UserError("the backup holds no identity")
    try:
        Identity.from_bytes(profile.identity)
    except LocalStateError:
        raise UserError("the backup's identity is unreadable") from None
    settings = await store.read(lambda r: r.settings.all())
    relays = (
        settings.get(SETTING_RELAY) or DEFAULT_RELAY,
        *settings.get(SETTING_FALLBACKS, "").split(),
    )
    row = invitation_row(relays, now_ms())
    await store.run(lambda r: r.mailboxes.add_ours(row))
