"""Errors the engine raises for a person to read: each says what went wrong in one line."""

from __future__ import annotations

# What goes wrong opening or re-keying a profile, for the front ends to tell a person.
from app.store.errors import StoreError, WrongPassphrase

__all__ = [
    "ProfileBusy",
    "SendingBlocked",
    "StoreError",
    "UnknownContact",
    "UserError",
    "WrongPassphrase",
]


class UserError(Exception):
    """Something the user asked for cannot be done; the message says why, nothing changed."""


class ProfileBusy(UserError):
    """Another AnonChat process has this profile open."""


class UnknownContact(UserError):
    pass


class SendingBlocked(UserError):
    """Sending to this contact is not possible: a request not accepted, or a contact ended."""
