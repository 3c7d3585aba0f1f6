"""Panic wipe: a profile destroyed on request, whoever holds it open.

The key header goes first: overwritten in place with random bytes of its length, flushed to
the disk, then unlinked. Its salts are what the passphrase needs to become the database key,
so once it is gone the database is noise even to someone who knows the passphrase. Then the
database and its WAL, SHM and journal, the files folder, the keyring entry and the profile
directory itself (its lock file, local API socket and anything else in it).

Nothing here looks at the profile lock: a wipe is a panic button and runs while another
process has the profile open (that process keeps only what it already holds in memory).
Every step is attempted even when one fails, and a wipe of a profile that is not there, or no
longer all there, does what is left and is not an error. Blocking calls, run off the loop.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import keystore
from .blobs import FILES_DIR
from .errors import StoreError
from .paths import DB_NAME, HEADER_NAME, LOCK_NAME, ProfilePaths, fsync_dir

_SIDE_FILES = ("-wal", "-shm", "-journal")
_HEADER_TEMP = ".tmp"  # paths.atomic_write's temporary name beside the header


class WipeIncomplete(StoreError):
    """Part of the profile could not be deleted; the message says which part, never more."""


def _overwrite_and_unlink(path: Path, randbytes: Callable[[int], bytes]) -> None:
    """Overwrite the file in place with random bytes of its length, flush, unlink."""
    try:
        fd = os.open(path, os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return
    try:
        size = os.fstat(fd).st_size
        view = memoryview(randbytes(size))
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def destroy_header(p: ProfilePaths, randbytes: Callable[[int], bytes] = os.urandom) -> None:
    """Make the database unreadable at once: the key header (and a header being replaced)
    overwritten with random bytes, flushed and unlinked. WipeIncomplete when it could not be."""
    try:
        for path in (p.header, p.directory / (HEADER_NAME + _HEADER_TEMP)):
            _overwrite_and_unlink(path, randbytes)
        with contextlib.suppress(FileNotFoundError):
            fsync_dir(p.directory)
    except OSError as exc:
        raise WipeIncomplete(f"the key header could not be destroyed ({exc.strerror})") from None


def _is_profile_directory(directory: Path) -> bool:
    """Whether a directory's whole tree may go: it holds a profile's database, header or
    lock (a profile ever opened keeps its lock file to the end), and it is not a place whose
    other contents are the user's (their home, a root)."""
    names = (DB_NAME, HEADER_NAME, HEADER_NAME + _HEADER_TEMP, LOCK_NAME)
    if not any((directory / name).exists() for name in names):
        return False
    resolved = directory.resolve()
    try:
        home = Path.home().resolve()
    except RuntimeError:  # no home directory to be known
        home = None
    return resolved != home and resolved.parent != resolved


def wipe_profile(p: ProfilePaths, randbytes: Callable[[int], bytes] = os.urandom) -> None:
    """Destroy the profile: header, database and its side files, the files folder, the
    keyring entry, the directory. WipeIncomplete names what is left when a step failed."""
    left: list[str] = []
    whole_directory = _is_profile_directory(p.directory)
    try:
        destroy_header(p, randbytes)
    except WipeIncomplete:
        left.append("the key header")
    for name in (DB_NAME, *(DB_NAME + s for s in _SIDE_FILES)):
        try:
            (p.directory / name).unlink(missing_ok=True)
        except OSError:
            left.append(f"the file {name}")
    if not _remove_tree(p.directory / FILES_DIR):
        left.append(f"the {FILES_DIR} folder")
    status = keystore.forget(p)
    if not status.ok and status.reason != keystore.NO_BACKEND:
        left.append("the keyring entry")
    if whole_directory:
        if not _remove_tree(p.directory):
            left.append("the profile folder")
    else:  # what a profile's folder held, and the folder once empty
        with contextlib.suppress(OSError):
            p.directory.rmdir()
    with contextlib.suppress(OSError):
        fsync_dir(p.directory.parent)
    if left:
        raise WipeIncomplete(
            f"the profile is unreadable, but not all of it was deleted: {', '.join(left)}"
        )


def _remove_tree(directory: Path) -> bool:
    """Delete a directory tree (not following links out of it); True once nothing is left.
    A tree that is not there, or parts of it another wipe removed first, are fine."""
    failed: list[BaseException] = []

    def onerror(_fn: Any, _path: str, info: Any) -> None:
        if not isinstance(info[1], FileNotFoundError):
            failed.append(info[1])

    if directory.is_symlink():
        with contextlib.suppress(FileNotFoundError):
            directory.unlink()
        return True
    shutil.rmtree(directory, onerror=onerror)
    return not failed and not directory.exists()
