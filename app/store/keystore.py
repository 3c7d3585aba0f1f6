"""'Remember on this computer': the raw database key in the OS keyring, when there is one.

Every failure (no backend, locked or refusing keyring) is reported as a result with a reason a
user can read, never raised: forgetting to remember is not an error, it means asking for the
passphrase next time. The keyring entry's account name is a hash of the profile directory, so
it does not name the profile.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import keyring
import keyring.errors

from .paths import ProfilePaths

SERVICE = "anonchat"
NO_BACKEND = "no system keyring is available here; the passphrase will be asked at each start"
REFUSED = "the system keyring refused the request; the passphrase will be asked at each start"


@dataclass(frozen=True, slots=True)
class KeyringStatus:
    ok: bool
    reason: str = ""


def available() -> bool:
    """Whether an OS keyring backend exists at all (not whether it will agree)."""
    try:
        from keyring.backends import fail

        return not isinstance(keyring.get_keyring(), fail.Keyring)
    except Exception:  # a broken backend configuration means no keyring
        return False


def account(p: ProfilePaths) -> str:
    return hashlib.sha256(str(p.directory).encode("utf-8")).hexdigest()[:32]


def remember(p: ProfilePaths, key: bytes) -> KeyringStatus:
    try:
        keyring.set_password(SERVICE, account(p), key.hex())
    except keyring.errors.NoKeyringError:
        return KeyringStatus(False, NO_BACKEND)
    except keyring.errors.KeyringError:
        return KeyringStatus(False, REFUSED)
    return KeyringStatus(True)


def recall(p: ProfilePaths) -> bytes | None:
    """The remembered key, or None (none stored, no backend, or an unreadable entry)."""
    try:
        value = keyring.get_password(SERVICE, account(p))
    except keyring.errors.KeyringError:
        return None
    if value is None:
        return None
    try:
        key = bytes.fromhex(value)
    except ValueError:
        return None
    return key if len(key) == 32 else None


def forget(p: ProfilePaths) -> KeyringStatus:
    try:
        keyring.delete_password(SERVICE, account(p))
    except keyring.errors.PasswordDeleteError:
        return KeyringStatus(True)
    except keyring.errors.NoKeyringError:
        return KeyringStatus(False, NO_BACKEND)
    except keyring.errors.KeyringError:
        return KeyringStatus(False, REFUSED)
    return KeyringStatus(True)
