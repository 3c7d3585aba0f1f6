"""Panic wipe on real SQLCipher profiles: nothing of the profile left, the keyring entry gone,
the key header destroyed (overwritten, then unlinked) before anything else, and every step
tried even when one fails."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest

from app.store import keystore, paths, vault, wipe
from app.store.blobs import FILES_DIR
from app.store.errors import CorruptHeader, ProfileNotFound
from app.store.paths import ProfilePaths
from app.store.repos import Repos

from .conftest import FAST, PASS, MemoryKeyring


def everything_under(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


def full_profile(profile: ProfilePaths) -> vault.Unlocked:
    """A profile as one in use looks: WAL and SHM beside the database (left open), a file at
    rest, the lock file, the API socket's and the unlock screen's files, a remembered key."""
    opened = vault.create(profile, PASS, FAST)
    Repos(opened.conn).settings.set("x", "1")  # the WAL and SHM exist while it is open
    (profile.directory / FILES_DIR).mkdir(mode=0o700)
    (profile.directory / FILES_DIR / ("ab" * 16)).write_bytes(os.urandom(1000))
    for name in ("lock", "api.sock", "unlock.json"):
        (profile.directory / name).write_bytes(b"")
    assert keystore.remember(profile, opened.key).ok
    return opened


def test_nothing_of_the_profile_is_left(
    tmp_path: Path, profile: ProfilePaths, memory_keyring: MemoryKeyring
) -> None:
    opened = full_profile(profile)
    beside = tmp_path / "other"  # whatever else the parent holds stays
    beside.write_text("not ours")
    assert {"store.db-wal", "store.db-shm"} <= set(os.listdir(profile.directory))
    try:
        wipe.wipe_profile(profile)
    finally:
        opened.conn.close()
    assert everything_under(tmp_path) == ["other"]
    assert memory_keyring.items == {}
    assert keystore.recall(profile) is None


def test_the_header_is_overwritten_and_gone_before_the_database_is_touched(
    profile: ProfilePaths, monkeypatch: pytest.MonkeyPatch, memory_keyring: MemoryKeyring
) -> None:
    """The database's unlink fails: the wipe says so, and by then the header was already
    overwritten with other bytes of its length and unlinked, so the database left behind
    cannot be opened even with the passphrase."""
    vault.create(profile, PASS, FAST).conn.close()
    original = profile.header.read_bytes()
    seen: list[tuple[str, bytes | None]] = []
    real_unlink = os.unlink

    def unlink(path: str | Path, *args: object, **kwargs: object) -> None:
        name = os.path.basename(path)
        at_unlink = Path(path).read_bytes() if name == paths.HEADER_NAME else None
        seen.append((name, at_unlink))
        if name == paths.DB_NAME:
            raise PermissionError(13, "Permission denied")
        real_unlink(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "unlink", unlink)
    with pytest.raises(wipe.WipeIncomplete, match=r"store\.db") as raised:
        wipe.wipe_profile(profile)
    assert str(profile.directory) not in str(raised.value)
    monkeypatch.undo()

    names = [name for name, _ in seen]
    assert names[0] == paths.HEADER_NAME
    assert names.index(paths.HEADER_NAME) < names.index(paths.DB_NAME)
    overwritten = seen[0][1]
    assert overwritten is not None
    assert len(overwritten) == len(original)
    assert overwritten != original
    assert not profile.header.exists()
    assert profile.database.exists()  # only what failed is left
    with pytest.raises(CorruptHeader):
        vault.unlock(profile, PASS)


def test_a_missing_or_already_wiped_profile_is_not_an_error(
    tmp_path: Path, profile: ProfilePaths, memory_keyring: MemoryKeyring
) -> None:
    wipe.wipe_profile(ProfilePaths(tmp_path / "never"))
    vault.create(profile, PASS, FAST).conn.close()
    wipe.wipe_profile(profile)
    wipe.wipe_profile(profile)
    assert everything_under(tmp_path) == []
    with pytest.raises(ProfileNotFound):
        vault.unlock(profile, PASS)


def test_what_a_wipe_left_goes_at_the_next(
    tmp_path: Path, profile: ProfilePaths, memory_keyring: MemoryKeyring
) -> None:
    """Header and database gone, the lock and the files folder left (a wipe cut short): the
    next wipe takes the rest."""
    opened = full_profile(profile)
    opened.conn.close()
    wipe.destroy_header(profile)
    profile.database.unlink()
    wipe.wipe_profile(profile)
    assert everything_under(tmp_path) == []


def test_a_folder_that_is_no_profile_keeps_what_is_not_ours(tmp_path: Path) -> None:
    """--profile naming a folder of the user's: only a profile's own names would go."""
    folder = tmp_path / "documents"
    folder.mkdir()
    (folder / "letter.txt").write_text("mine")
    wipe.wipe_profile(ProfilePaths(folder))
    assert everything_under(tmp_path) == ["documents", "documents/letter.txt"]


def test_the_lock_held_elsewhere_does_not_stop_a_wipe(
    tmp_path: Path, profile: ProfilePaths, no_keyring: None
) -> None:
    """Another holder of the lock (as another process would): the wipe goes ahead, and a
    keyring that does not exist is nothing left to delete."""
    vault.create(profile, PASS, FAST).conn.close()
    fd = os.open(profile.lock, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    try:
        wipe.wipe_profile(profile)
    finally:
        os.close(fd)
    assert everything_under(tmp_path) == []


def test_a_profile_made_in_the_home_folder_takes_only_its_own_files_with_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, no_keyring: None
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    profile = ProfilePaths(home)
    vault.create(profile, PASS, FAST).conn.close()
    (home / "letter.txt").write_text("mine")
    wipe.wipe_profile(profile)
    assert everything_under(tmp_path) == ["home", "home/letter.txt"]
