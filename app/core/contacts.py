"""What a person does with contacts and message requests: accept, block, delete, rename.

A request is a contacts row in state REQUEST: someone we did not know started a handshake.
Its messages are stored and acknowledged as delivered while it waits; accepting makes them
the start of the conversation. Accepting it as a contact's new key moves the request into
that contact (the old key goes to the key history, the verified mark is cleared). Nothing
here is reachable by a peer: only the user's own choices end or block a contact.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.core.errors import SendingBlocked, UnknownContact, UserError
from app.core.events import ContactAdded, ContactChanged, ContactRemoved, RequestRemoved
from app.core.handshakes import forget_channels
from app.core.profile import check_display_name
from app.crypto.names import name_key
from app.domain.contacts import Contact, ContactState, RequestSummary
from app.store.errors import NotFound
from app.store.records import OurMailbox
from app.store.repos import Repos

if TYPE_CHECKING:
    from app.core.engine import Engine


@dataclass(frozen=True, slots=True)
class Status:
    contacts: int
    requests: int
    outbox: int
    rejected: dict[str, int]


def check_can_send(contact: Contact) -> None:
    """Only the user's own choices stop a send: a request not accepted, a contact ended."""
    if contact.state is ContactState.REQUEST:
        raise SendingBlocked(f"accept {contact.display_name}'s request before writing to them")
    if contact.state is ContactState.ENDED:
        what = "blocked" if contact.blocked else "deleted"
        raise SendingBlocked(
            f"you {what} {contact.display_name}; add their code again to write to them"
        )


def _same_name(rows: list[Contact], request: Contact) -> Contact | None:
    wanted = name_key(request.display_name)
    return next(
        (
            c
            for c in rows
            if c.state is not ContactState.REQUEST
            and c.identity_keys != request.identity_keys
            and name_key(c.display_name) == wanted
        ),
        None,
    )


async def requests(engine: Engine) -> list[RequestSummary]:
    def load(r: Repos) -> list[RequestSummary]:
        rows = r.contacts.all()
        out = []
        for request in (c for c in rows if c.state is ContactState.REQUEST):
            first = r.messages.first(request.id)
            count = r.messages.count(request.id)
            out.append(RequestSummary(request, first, count, _same_name(rows, request)))
        return out

    return await engine.store.read(load)


async def _get(engine: Engine, contact_id: int, *states: ContactState) -> Contact:
    try:
        found = await engine.store.read(lambda r: r.contacts.get(contact_id))
    except NotFound:
        found = None
    if found is None or found.state not in states:
        what = "request" if states == (ContactState.REQUEST,) else "contact"
        raise UnknownContact(f"no such {what}")
    return found


async def accept_request(
    engine: Engine, request_id: int, as_new_key_of: int | None = None
) -> Contact:
    """The request becomes a contact, or (as_new_key_of) the new key of an existing one."""
    async with engine._mutex:
        request = await _get(engine, request_id, ContactState.REQUEST)
        now = engine._now()
        if as_new_key_of is None:
            ended = await engine.store.read(lambda r: _ended_of(r, request))
            target = ended.id if ended is not None else None
        else:
            contact = await _get(engine, as_new_key_of, ContactState.CONTACT, ContactState.ENDED)
            if name_key(contact.display_name) != name_key(request.display_name):
                raise UserError(
                    f"the request is from {request.display_name!r}, not {contact.display_name!r}:"
                    " only a request under a contact's own name can be their new key"
                )
            target = contact.id

        def unit(r: Repos) -> tuple[Contact, list[OurMailbox]]:
            if target is None:
                r.contacts.set_state(request.id, ContactState.CONTACT)
                return r.contacts.get(request.id), []
            old = forget_channels(r, target)
            r.contacts.replace_keys(target, request.identity_keys, now)
            r.merge_contact(request.id, target)
            r.contacts.set_state(target, ContactState.CONTACT)
            return r.contacts.get(target), old

        contact, old = await engine.store.run(unit)
    await engine.drop_mailboxes(old)
    await engine.forget_contact(request.id)
    if target is not None:
        await engine.forget_contact(target)
    await engine._watch_contact(contact.id)
    engine._emit(RequestRemoved(request.id))
    engine._emit(ContactAdded(contact) if target is None else ContactChanged(contact))
    return contact


def _ended_of(r: Repos, request: Contact) -> Contact | None:
    """A contact of the same key that was deleted with its history kept."""
    return next(
        (c for c in r.contacts.all(ContactState.ENDED) if c.identity_keys == request.identity_keys),
        None,
    )


async def block(engine: Engine, contact_id: int) -> Contact:
    """Block a request or a contact by its key: their channels are forgotten and later
    handshakes from that key are dropped without a word. A blocked request is deleted; a
    blocked contact keeps its history, ended."""
    async with engine._mutex:
        contact = await _get(engine, contact_id, *ContactState)
        now = engine._now()

        def unit(r: Repos) -> tuple[Contact | None, list[OurMailbox]]:
            r.contacts.block(contact.identity_keys, now)
            if contact.state is ContactState.REQUEST:
                old = r.mailboxes.list_ours(contact_id=contact_id)
                r.contacts.delete(contact_id)
                return None, old
            old = forget_channels(r, contact_id)
            r.contacts.set_state(contact_id, ContactState.ENDED)
            return r.contacts.get(contact_id), old

        blocked, old = await engine.store.run(unit)
    await engine.drop_mailboxes(old)
    await engine.forget_contact(contact_id)
    if blocked is None:
        engine._emit(RequestRemoved(contact_id))
        return contact
    engine._emit(ContactChanged(blocked))
    return blocked


async def delete_request(engine: Engine, request_id: int) -> None:
    await _get(engine, request_id, ContactState.REQUEST)
    await _delete(engine, request_id)
    engine._emit(RequestRemoved(request_id))


async def delete_contact(engine: Engine, contact_id: int, keep_history: bool) -> None:
    """Forget a contact's channels (unsubscribed, mailboxes gone); with its history, or the
    history kept and the contact ended."""
    contact = await _get(engine, contact_id, ContactState.CONTACT, ContactState.ENDED)
    if not keep_history:
        await _delete(engine, contact_id)
        engine._emit(ContactRemoved(contact_id))
        return
    async with engine._mutex:

        def unit(r: Repos) -> tuple[Contact, list[OurMailbox]]:
            old = forget_channels(r, contact_id)
            r.contacts.set_state(contact_id, ContactState.ENDED)
            return r.contacts.get(contact_id), old

        ended, old = await engine.store.run(unit)
    await engine.drop_mailboxes(old)
    await engine.forget_contact(contact.id)
    engine._emit(ContactChanged(ended))


async def _delete(engine: Engine, contact_id: int) -> None:
    async with engine._mutex:

        def unit(r: Repos) -> list[OurMailbox]:
            old = r.mailboxes.list_ours(contact_id=contact_id)
            r.contacts.delete(contact_id)
            return old

        old = await engine.store.run(unit)
    await engine.drop_mailboxes(old)
    await engine.forget_contact(contact_id)


async def rename(engine: Engine, contact_id: int, name: str) -> Contact:
    name = check_display_name(name)
    await _get(engine, contact_id, *ContactState)

    def unit(r: Repos) -> Contact:
        r.contacts.rename(contact_id, name)
        return r.contacts.get(contact_id)

    contact = await engine.store.run(unit)
    engine._emit(ContactChanged(contact))
    return contact


async def status(engine: Engine) -> Status:
    def load(r: Repos) -> tuple[int, int, int]:
        live = r.contacts.count(ContactState.CONTACT) + r.contacts.count(ContactState.ENDED)
        return live, r.contacts.count(ContactState.REQUEST), r.outbox.count()

    live, waiting, outbox = await engine.store.read(load)
    return Status(live, waiting, outbox, await engine.rejections())
