"""Errors the engine raises for a person to read: each says what went wrong in one line."""

from __future__ import annotations


class UserError(Exception):
    """Something the user asked for cannot be done; the message says why, nothing changed."""


class ProfileBusy(UserError):
    """Another AnonChat process has this profile open."""


class UnknownContact(UserError):
    pass


class SendingBlocked(UserError):
    """Sending to this contact is not possible: a request not accepted, or a contact ended."""
