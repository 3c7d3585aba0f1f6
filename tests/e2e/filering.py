"""A keyring backend kept in a JSON file named by ANONCHAT_TEST_KEYRING, so a CLI process the
tests start has a keyring (PYTHON_KEYRING_BACKEND=tests.e2e.filering.FileKeyring) whose
entries the test can read: the keyring API as a desktop's, without a desktop."""

from __future__ import annotations

import json
import os
from pathlib import Path

import keyring.backend
import keyring.errors
from jaraco.classes import properties

BACKEND = "tests.e2e.filering.FileKeyring"


class FileKeyring(keyring.backend.KeyringBackend):
    @properties.classproperty
    def priority(cls) -> float:
        """Viable only where ANONCHAT_TEST_KEYRING names its file: the test process imports
        this module too, and keyring there looks at every backend class it knows."""
        if "ANONCHAT_TEST_KEYRING" not in os.environ:
            raise RuntimeError("no ANONCHAT_TEST_KEYRING")
        return 1.0

    @property
    def _path(self) -> Path:
        return Path(os.environ["ANONCHAT_TEST_KEYRING"])

    def _items(self) -> dict[str, str]:
        try:
            items: dict[str, str] = json.loads(self._path.read_text())
        except FileNotFoundError:
            return {}
        return items

    def _save(self, items: dict[str, str]) -> None:
        self._path.write_text(json.dumps(items))

    def get_password(self, service: str, username: str) -> str | None:
        return self._items().get(f"{service}/{username}")

    def set_password(self, service: str, username: str, password: str) -> None:
        items = self._items()
        items[f"{service}/{username}"] = password
        self._save(items)

    def delete_password(self, service: str, username: str) -> None:
        items = self._items()
        if items.pop(f"{service}/{username}", None) is None:
            raise keyring.errors.PasswordDeleteError("not found")
        self._save(items)
