"""What the main window does with message requests: open one read-only, carry out the
answer chosen in its bar, and follow a request that goes away on its own (pushed out by newer
ones, or answered elsewhere). Invitations to groups the same way: opened read-only with Join
and Decline above them."""

from __future__ import annotations

from typing import Protocol

from PySide6.QtCore import QObject

from app.core.engine import Engine
from app.core.errors import UserError
from app.domain.contacts import Contact, ContactState, RequestSummary
from app.domain.groups import Group
from app.ui.aio import spawn
from app.ui.conversation import ConversationPanel
from app.ui.requests import RequestsSection
from app.ui.text import safe_text, sentence

ACCEPT, AS_KEY, BLOCK, DELETE = "accept", "as-key", "block", "delete"
JOIN, DECLINE = "join", "decline"


class Host(Protocol):
    """The parts of the main window a request flow works with."""

    engine: Engine
    panel: ConversationPanel
    requests: RequestsSection

    def showing(self, contact_id: int, state: ContactState | None = None) -> bool: ...
    def show_panel(self) -> None: ...
    def show_empty(self) -> None: ...
    def select_contact(self, contact_id: int | None) -> None: ...
    def open_contact(self, contact: Contact) -> None: ...
    async def reload_contact(self, contact_id: int) -> None: ...
    def say(self, text: str, ms: int = 8000) -> None: ...


class RequestFlow(QObject):
    def __init__(self, host: Host, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._host = host
        self._answering: set[int] = set()  # requests being answered here
        self._names: dict[int, str] = {}  # for notifications before the list reloads
        host.requests.chosen.connect(self.open)
        host.requests.changed.connect(self._reloaded)
        bar = host.panel.request_bar
        bar.accept_clicked.connect(lambda: self._answer(ACCEPT))
        bar.accept_as_key_clicked.connect(lambda: self._answer(AS_KEY))
        bar.block_clicked.connect(lambda: self._answer(BLOCK))
        bar.delete_clicked.connect(lambda: self._answer(DELETE))
        host.requests.invite_chosen.connect(self.open_invite)
        invite = host.panel.invite_bar
        invite.join_clicked.connect(lambda: self._answer_invite(JOIN))
        invite.decline_clicked.connect(lambda: self._answer_invite(DECLINE))

    def name_of(self, request_id: int) -> str | None:
        summary = self._host.requests.summary_of(request_id)
        return summary.request.display_name if summary else self._names.get(request_id)

    def open(self, summary: RequestSummary) -> None:
        """Show a request's messages, read-only, with what can be done about it."""
        host, request = self._host, summary.request
        host.requests.select(request.id)
        if host.showing(request.id, ContactState.REQUEST):
            return
        host.show_panel()
        host.select_contact(None)
        spawn(host.panel.open(request, summary.same_name_as), "opening a message request")

    def open_invite(self, group: Group) -> None:
        """Show an invitation's group (messages may have come already), read-only, with Join
        and Decline above it."""
        host = self._host
        host.requests.select(group.id)
        if host.showing(group.id) and host.panel.invited():
            return
        host.show_panel()
        host.select_contact(None)
        spawn(self._open_invite(group), "opening a group invitation")

    async def _open_invite(self, group: Group) -> None:
        try:
            contact = await self._host.engine.contact(group.id)
        except UserError:  # declined or gone meanwhile
            self._host.requests.refresh(force=True)
            return
        await self._host.panel.open(contact)

    def _answer_invite(self, action: str) -> None:
        group = self._host.panel.group
        if group is None or not self._host.panel.invited():
            return
        self._host.panel.invite_bar.set_busy(True)
        spawn(self.answer_invite(group, action), "answering a group invitation")

    async def answer_invite(self, group: Group, action: str) -> None:
        """Join (the group moves to the contact list, its conversation stays open and can be
        written to) or decline (the invitation is deleted, nobody is told)."""
        host = self._host
        name = safe_text(group.name)
        try:
            if action == JOIN:
                joined = await host.engine.join_group(group.id)
            else:
                await host.engine.decline_group(group.id)
        except UserError as exc:
            host.panel.invite_bar.set_busy(False)
            host.say(sentence(str(exc)))
            return
        host.requests.refresh(force=True)
        if action == DECLINE:
            if host.showing(group.id):
                host.show_empty()
            host.say(f"Declined the invitation to {name}.")
            return
        host.panel.update_group(joined)
        host.requests.select(None)
        await host.reload_contact(group.id)
        host.select_contact(group.id)
        host.say(f"You joined {name}: you can write to the group now.")

    def on_added(self, request: Contact) -> None:
        self._names[request.id] = request.display_name
        self._host.requests.refresh(force=True)

    def on_removed(self, request_id: int) -> None:
        self._names.pop(request_id, None)
        if request_id not in self._answering and self._host.showing(
            request_id, ContactState.REQUEST
        ):
            spawn(self._gone(request_id), "closing a message request")

    async def _gone(self, request_id: int) -> None:
        host = self._host
        try:
            contact: Contact | None = await host.engine.contact(request_id)
        except UserError:
            contact = None
        if not host.showing(request_id, ContactState.REQUEST):
            return
        if contact is None or contact.state is ContactState.REQUEST:
            host.show_empty()
        else:
            await host.reload_contact(contact.id)
            host.open_contact(contact)

    def _reloaded(self) -> None:
        """The open request's namesake may be another contact now (renamed, deleted)."""
        shown = self._host.panel.contact
        if shown is not None and shown.state is ContactState.REQUEST:
            summary = self._host.requests.summary_of(shown.id)
            if summary is not None:
                self._host.panel.set_same_name_as(summary.same_name_as)

    def _answer(self, action: str) -> None:
        request = self._host.panel.contact
        if request is None or request.state is not ContactState.REQUEST:
            return
        self._host.panel.request_bar.set_busy(True)
        spawn(self.answer(request, action), "answering a message request")

    async def answer(self, request: Contact, action: str) -> None:
        """Accept, accept as the namesake's new key, block or delete; then show where the
        request went: into the contact list (opened as a normal conversation), or away."""
        host = self._host
        namesake = host.panel.same_name_as if action == AS_KEY else None
        if action == AS_KEY and namesake is None:  # the namesake went while the bar showed
            host.panel.request_bar.set_busy(False)
            host.say("No contact has that name any more: accept it as a new contact instead.")
            return
        self._answering.add(request.id)
        contact: Contact | None = None
        try:
            if action in (ACCEPT, AS_KEY):
                target = None if namesake is None else namesake.id
                contact = await host.engine.accept_request(request.id, as_new_key_of=target)
            elif action == BLOCK:
                await host.engine.block(request.id)
            else:
                await host.engine.delete_request(request.id)
        except UserError as exc:
            host.panel.request_bar.set_busy(False)
            host.say(sentence(str(exc)))
            return
        finally:
            self._answering.discard(request.id)
        host.requests.refresh(force=True)
        name = safe_text(request.display_name)
        if contact is None:
            if host.showing(request.id, ContactState.REQUEST):
                host.show_empty()
            host.say(f"Blocked {name}." if action == BLOCK else f"Deleted {name}'s request.")
            return
        await host.reload_contact(contact.id)
        host.open_contact(contact)
        if namesake is None:
            host.say(f"Accepted {name}: you can write to them now.")
        else:
            host.say(
                f"This is {safe_text(namesake.display_name)}'s key now. The verified mark was "
                "cleared: compare the safety number again.",
                20000,
            )
