"""Fixtures for the store tests: throwaway profiles with a cheap Argon2id."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import keyring
import keyring.backend
import keyring.backends.fail
import keyring.errors
import pytest

from app.crypto.passphrase import INSECURE_FAST_PARAMS
from app.store import vault
from app.store.paths import ProfilePaths
from app.store.repos import Repos

FAST = INSECURE_FAST_PARAMS
PASS = "correct horse battery staple"


@pytest.fixture
def profile(tmp_path: Path) -> ProfilePaths:
    return ProfilePaths(tmp_path / "profile")


@pytest.fixture
def repos(profile: ProfilePaths) -> Iterator[Repos]:
    opened = vault.create(profile, PASS, FAST)
    try:
        yield Repos(opened.conn)
    finally:
        opened.conn.close()


def snapshot(directory: Path) -> dict[str, str]:
    """Name -> SHA-256 of every file under directory: 'nothing changed' means equal snapshots."""
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


class MemoryKeyring(keyring.backend.KeyringBackend):
    """An in-process keyring backend, standing in for an OS keyring this machine lacks."""

    # Below the 'fail' backend, so keyring never picks it on its own; tests install it.
    priority = -1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.items.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.items[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        try:
            del self.items[(service, username)]
        except KeyError:
            raise keyring.errors.PasswordDeleteError("not found") from None


@pytest.fixture
def no_keyring() -> Iterator[None]:
    """The situation on a machine without any OS keyring (this one)."""
    previous = keyring.get_keyring()
    keyring.set_keyring(keyring.backends.fail.Keyring())
    try:
        yield
    finally:
        keyring.set_keyring(previous)


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    try:
        yield backend
    finally:
        keyring.set_keyring(previous)
