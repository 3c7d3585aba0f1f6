"""Contacts and message requests, and what a list or a scanned card shows of them."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from .messages import Message


class ContactState(StrEnum):
    """A contact we talk to; a request from someone we do not know yet (kept apart until
    accepted); or ended: deleted with its history kept, or blocked."""

    CONTACT = "contact"
    REQUEST = "request"
    ENDED = "ended"


class ContactKind(StrEnum):
    """What a row is: a person (a contact or a request), someone we talk to only because we
    share a group with them (no contact list shows them), or a group's conversation."""

    PERSON = "person"
    MEMBER = "member"
    GROUP = "group"


TALKED_TO = (ContactKind.PERSON, ContactKind.MEMBER)
"""The rows with a session and mailboxes of their own."""
LISTED = (ContactKind.PERSON, ContactKind.GROUP)
"""The rows a conversation list shows (a group once joined or left, not while invited)."""


@dataclass(frozen=True, slots=True)
class Contact:
    id: int
    display_name: str
    identity_keys: bytes
    verified: bool
    created_at: int
    state: ContactState = ContactState.CONTACT
    awaiting_welcome: bool = False
    blocked: bool = False
    timer_s: int = 0  # the conversation's disappearing-messages timer (0: off)
    kind: ContactKind = ContactKind.PERSON

    @property
    def is_group(self) -> bool:
        return self.kind is ContactKind.GROUP

    def why_not_writable(self) -> str | None:
        """Why nothing can be sent to them, or None. Only the user's own choices stop a send:
        a request not yet accepted, a contact deleted (history kept) or blocked. A group is
        written to through its members (`Groups.send`): text and replies only."""
        if self.kind is ContactKind.GROUP:
            return "a group takes text messages and replies (no files, edits or reactions yet)"
        if self.state is ContactState.REQUEST:
            return f"accept {self.display_name}'s request before writing to them"
        if self.state is ContactState.ENDED:
            what = "blocked" if self.blocked else "deleted"
            return f"you {what} {self.display_name}; add their code again to write to them"
        return None


@dataclass(frozen=True, slots=True)
class ContactSummary:
    """What a contact list row shows."""

    contact: Contact
    unread: int
    last: Message | None
    online: bool
    established: bool


@dataclass(frozen=True, slots=True)
class RequestSummary:
    """A request as the list shows it: who, their first message, and the contact whose name
    theirs matches (a different key: the plain warning)."""

    request: Contact
    first_message: Message | None
    messages: int
    same_name_as: Contact | None


@dataclass(frozen=True, slots=True)
class CardPreview:
    """Whose code a scanned card is, shown before anything is added."""

    name: str
    relay_url: str
    is_self: bool
    known: Contact | None
