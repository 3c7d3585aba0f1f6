"""Typed store errors: each says what went wrong in words a user can act on, and nothing more."""

from __future__ import annotations


class StoreError(Exception):
    """Base of every error the store raises on purpose."""


class ProfileNotFound(StoreError):
    """No profile exists at that location."""


class ProfileExists(StoreError):
    """A profile already exists where a new one was to be created."""


class WrongPassphrase(StoreError):
    """The passphrase (or remembered key) does not open this profile."""

    def __init__(self) -> None:
        super().__init__("wrong passphrase: the profile could not be unlocked")


class CorruptHeader(StoreError):
    """The key header file beside the database is missing or damaged."""


class CorruptDatabase(StoreError):
    """The database file is damaged or truncated."""


class SchemaTooNew(StoreError):
    """The database was written by a newer version of AnonChat."""


class StoreClosed(StoreError):
    """The store was closed; no more work is accepted."""


class NotFound(StoreError):
    """A row the caller named does not exist."""


class MailboxInUse(StoreError):
    """A mailbox id that already belongs to us or to another contact: never reassigned."""
