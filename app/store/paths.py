"""Where a profile lives on disk, and the few careful file operations the store needs.

A profile directory is private to the user (0700) and every file in it 0600. The header file is
replaced atomically (write a temporary file, fsync, rename, fsync the directory), so a crash
leaves either the old header or the new one, never a mix.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

APP_NAME = "anonchat"
DB_NAME = "store.db"
HEADER_NAME = "store.hdr"
LOCK_NAME = "lock"  # held while a process has the profile open (app/core/profile.py)
_SIDE_FILES = ("-wal", "-shm", "-journal")


@dataclass(frozen=True, slots=True)
class ProfilePaths:
    """The files of one profile."""

    directory: Path

    @property
    def database(self) -> Path:
        return self.directory / DB_NAME

    @property
    def header(self) -> Path:
        return self.directory / HEADER_NAME

    @property
    def lock(self) -> Path:
        return self.directory / LOCK_NAME

    def all_files(self) -> list[Path]:
        """Database, its WAL/SHM/journal, and the header, where they exist."""
        names = [self.database, self.header]
        names += [self.directory / (DB_NAME + s) for s in _SIDE_FILES]
        return [p for p in names if p.exists()]


def looks_like_path(profile: str) -> bool:
    """A --profile value naming a directory rather than a profile name."""
    return (
        os.sep in profile
        or (os.altsep is not None and os.altsep in profile)
        or (profile.startswith(("~", ".")))
    )


def resolve_profile(profile: str, data_dir: Path | None = None) -> ProfilePaths:
    """Map a --profile value to its directory: a path as given, a name under the data dir."""
    if not profile or profile.strip() != profile or "\x00" in profile:
        raise ValueError("invalid profile name")
    if looks_like_path(profile):
        return ProfilePaths(Path(profile).expanduser().resolve())
    if profile in (".", "..") or not all(c.isalnum() or c in "-_" for c in profile):
        raise ValueError("a profile name may hold letters, digits, '-' and '_' only")
    base = data_dir if data_dir is not None else Path(platformdirs.user_data_dir(APP_NAME, False))
    return ProfilePaths(base / profile)


def ensure_private_dir(directory: Path) -> None:
    """Create the profile directory (and parents) and make it 0700."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)


def create_private_file(path: Path) -> None:
    """Create an empty 0600 file (SQLite gives its WAL/SHM the database file's mode)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)


def tighten(paths: ProfilePaths) -> None:
    """Force 0600 on every profile file, in case something loosened them."""
    for p in paths.all_files():
        with contextlib.suppress(OSError):
            os.chmod(p, 0o600)


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Replace path with data so that a crash leaves the old or the new content."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    fsync_dir(path.parent)
