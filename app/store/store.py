"""The async face of a profile's store: unlock, units of work, and reads.

Everything runs on the store's single worker thread (see worker.py); callers on the asyncio
(or qasync) loop only await. `run(fn)` executes fn(repos) as one transaction, which is how the
engine composes its own atomic units.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from app.crypto.passphrase import DEFAULT_PARAMS, KdfParams, KeySlot

from . import backup, backup_restore, connection, keystore, vault
from .errors import WrongPassphrase
from .keystore import KeyringStatus
from .paths import ProfilePaths
from .records import Profile
from .repos import Repos
from .tx import atomic
from .worker import Worker

T = TypeVar("T")


class Store:
    """An unlocked profile. Create with `Store.create`, `Store.unlock` or `unlock_remembered`."""

    def __init__(self, paths: ProfilePaths, worker: Worker, unlocked: vault.Unlocked) -> None:
        self.paths = paths
        self._worker = worker
        self._conn = unlocked.conn
        self._key = unlocked.key
        self._repos = Repos(unlocked.conn)
        self._generation = 0

    @property
    def generation(self) -> int:
        """Changes whenever a unit of work (`run`) is started: something read before an
        unchanged generation is still what the store holds (reads and units run in order on
        one thread), so a cache of it may be kept without asking the store again."""
        return self._generation

    @classmethod
    async def _open(cls, paths: ProfilePaths, opener: Callable[[], vault.Unlocked]) -> Store:
        worker = Worker()
        try:
            unlocked = await worker.call(opener)
        except BaseException:
            worker.stop()
            raise
        return cls(paths, worker, unlocked)

    @classmethod
    async def create(
        cls, paths: ProfilePaths, passphrase: str, params: KdfParams = DEFAULT_PARAMS
    ) -> Store:
        return await cls._open(paths, lambda: vault.create(paths, passphrase, params))

    @classmethod
    async def unlock(cls, paths: ProfilePaths, passphrase: str) -> Store:
        """Raises WrongPassphrase, CorruptHeader, CorruptDatabase, SchemaTooNew, ProfileNotFound."""
        return await cls._open(paths, lambda: vault.unlock(paths, passphrase))

    @classmethod
    async def unlock_or_duress(
        cls, paths: ProfilePaths, passphrase: str
    ) -> Store | vault.DuressUnlock:
        """`unlock`, except that the duress passphrase gives back what a new profile starts
        from (nothing is changed yet: the caller wipes and creates)."""
        worker = Worker()
        try:
            opened = await worker.call(lambda: vault.attempt(paths, passphrase))
        except BaseException:
            worker.stop()
            raise
        if isinstance(opened, vault.DuressUnlock):
            worker.stop()
            return opened
        return cls(paths, worker, opened)

    @classmethod
    async def create_with_key(cls, paths: ProfilePaths, slot: KeySlot, key: bytes) -> Store:
        """A new profile under a key already derived for `slot` (the duress passphrase's)."""
        return await cls._open(paths, lambda: vault.create_with_key(paths, slot, key))

    @classmethod
    async def unlock_remembered(cls, paths: ProfilePaths) -> Store | None:
        """Open with the key kept in the OS keyring; None when there is none (or it is stale)."""
        worker = Worker()

        def opener() -> vault.Unlocked | None:
            key = keystore.recall(paths)
            if key is None:
                return None
            try:
                return vault.unlock_with_key(paths, key)
            except WrongPassphrase:
                return None

        try:
            unlocked = await worker.call(opener)
        except BaseException:
            worker.stop()
            raise
        if unlocked is None:
            worker.stop()
            return None
        return cls(paths, worker, unlocked)

    @classmethod
    async def restore(
        cls,
        paths: ProfilePaths,
        source: Path,
        backup_passphrase: str,
        passphrase: str,
        params: KdfParams = DEFAULT_PARAMS,
        progress: backup.Progress | None = None,
    ) -> tuple[Store, backup_restore.Restored]:
        """A new profile at `paths` from a backup file, open (see backup_restore.restore; the caller
        removes the directory when this raises)."""
        worker = Worker()
        try:
            unlocked, restored = await worker.call(
                lambda: backup_restore.restore(
                    paths, source, backup_passphrase, passphrase, params, progress
                )
            )
        except BaseException:
            worker.stop()
            raise
        return cls(paths, worker, unlocked), restored

    async def backup(
        self,
        target: Path,
        passphrase: str,
        params: KdfParams,
        *,
        include_files: bool,
        settings_left_out: tuple[str, ...],
        made_at: int,
        progress: backup.Progress | None = None,
        cancel: threading.Event | None = None,
    ) -> backup.Written:
        """Write a backup file (see backup.write_backup) on a thread of its own, from a
        second connection's snapshot: the store's own work goes on meanwhile."""
        key = self._key
        return await asyncio.to_thread(
            backup.write_backup,
            self.paths,
            key,
            target,
            passphrase,
            params,
            include_files=include_files,
            settings_left_out=settings_left_out,
            made_at=made_at,
            progress=progress,
            cancel=cancel,
        )

    async def remember(self) -> KeyringStatus:
        """Keep the key in the OS keyring; the status says why not when it cannot."""
        key = self._key
        return await self._worker.call(lambda: keystore.remember(self.paths, key))

    async def forget(self) -> KeyringStatus:
        return await self._worker.call(lambda: keystore.forget(self.paths))

    async def set_duress(self, passphrase: str, settings: dict[str, str]) -> None:
        """Make `passphrase` the duress passphrase (see vault.set_duress); DuressRefused when
        it is this profile's own."""
        key = self._key
        await self._worker.call(lambda: vault.set_duress(self.paths, key, passphrase, settings))

    async def clear_duress(self) -> None:
        await self._worker.call(lambda: vault.clear_duress(self.paths))

    async def change_passphrase(
        self, old: str, new: str, params: KdfParams = DEFAULT_PARAMS
    ) -> None:
        """Re-key atomically; a remembered key is replaced by the new one."""

        def job() -> bytes:
            remembered = keystore.recall(self.paths) is not None
            key = vault.change_passphrase(self.paths, self._conn, self._key, old, new, params)
            if remembered:
                keystore.remember(self.paths, key)
            return key

        self._key = await self._worker.call(job)

    async def run(self, fn: Callable[[Repos], T]) -> T:
        """fn(repos) as one transaction on the store thread: all of it or none of it."""
        repos = self._repos
        self._generation += 1

        def job() -> T:
            with atomic(repos.conn):
                return fn(repos)

        return await self._worker.call(job)

    async def read(self, fn: Callable[[Repos], T]) -> T:
        """fn(repos) on the store thread, for reads that need no transaction."""
        repos = self._repos
        return await self._worker.call(lambda: fn(repos))

    async def close(self) -> None:
        """Checkpoint, close the connection (removing WAL/SHM) and end the thread."""
        conn = self._conn

        def job() -> None:
            try:
                connection.checkpoint(conn)
            finally:
                conn.close()

        try:
            await self._worker.call(job)
        finally:
            self._worker.stop()

    async def identity(self) -> Profile | None:
        """The profile's own row, None before it is written."""
        return await self.read(lambda r: r.profile.get())


def profile_files(paths: ProfilePaths) -> list[str]:
    """Names of the files a profile consists of right now (for diagnostics and tests)."""
    return sorted(os.path.basename(p) for p in paths.all_files())
