"""What a person does with contacts and message requests: accept, block, delete, rename,
verify.

A request is a contacts row in state REQUEST: someone we did not know started a handshake.
Its messages are stored and acknowledged as delivered while it waits; accepting makes them
the start of the conversation. Accepting it as a contact's new key moves the request into
that contact (the old key goes to the key history, the verified mark is cleared). Nothing
here is reachable by a peer: only the user's own choices end or block a contact.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.core.context import Context
from app.core.errors import UnknownContact, UserError
from app.core.events import ContactAdded, ContactChanged, ContactRemoved, RequestRemoved
from app.core.handshakes import forget_channels
from app.core.messaging import contact_or_none
from app.core.profile import MUTED_PREFIX, check_display_name
from app.core.routing import Routing
from app.crypto.errors import VerificationError
from app.crypto.identity import PublicIdentity
from app.crypto.names import name_key
from app.crypto.safety import (
    check_verification,
    format_safety_number,
    safety_number,
    verification_payload,
)
from app.domain.contacts import Contact, ContactState, RequestSummary
from app.store.records import OurMailbox
from app.store.repos import Repos


@dataclass(frozen=True, slots=True)
class ProfileStatus:
    """Counts for `anonchat-cli status`: contacts, requests, outbox, dropped frames."""

    contacts: int
    requests: int
    outbox: int
    rejected: dict[str, int]


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


def _ended_of(r: Repos, request: Contact) -> Contact | None:
    """A contact of the same key that was deleted with its history kept."""
    return next(
        (c for c in r.contacts.all(ContactState.ENDED) if c.identity_keys == request.identity_keys),
        None,
    )


def _their_identity(contact: Contact) -> PublicIdentity:
    return PublicIdentity(contact.identity_keys[:32], contact.identity_keys[32:])


class Contacts:
    def __init__(self, ctx: Context, routing: Routing) -> None:
        self._ctx = ctx
        self._routing = routing

    async def _get(self, contact_id: int, *states: ContactState) -> Contact:
        found = await self._ctx.store.read(lambda r: contact_or_none(r, contact_id))
        if found is None or found.state not in states:
            what = "request" if states == (ContactState.REQUEST,) else "contact"
            raise UnknownContact(f"no such {what}")
        return found

    async def _forget(self, contact_id: int, old: list[OurMailbox]) -> None:
        """After a transaction forgot a contact's channels: unsubscribe, unwatch, uncache."""
        await self._routing.drop_mailboxes(old)
        await self._routing.forget_contact(contact_id)

    # -- requests ------------------------------------------------------------------------

    async def requests(self) -> list[RequestSummary]:
        """Message requests waiting, oldest first, each with its first message."""

        def load(r: Repos) -> list[RequestSummary]:
            rows = r.contacts.all()
            out = []
            for request in (c for c in rows if c.state is ContactState.REQUEST):
                first = r.messages.first(request.id)
                count = r.messages.count(request.id)
                out.append(RequestSummary(request, first, count, _same_name(rows, request)))
            return out

        return await self._ctx.store.read(load)

    async def accept_request(self, request_id: int, as_new_key_of: int | None = None) -> Contact:
        """The request becomes a contact, or (as_new_key_of) the new key of an existing one."""
        ctx = self._ctx
        async with ctx.lock:
            request = await self._get(request_id, ContactState.REQUEST)
            now = ctx.clock()
            if as_new_key_of is None:
                ended = await ctx.store.read(lambda r: _ended_of(r, request))
                target = ended.id if ended is not None else None
            else:
                contact = await self._get(as_new_key_of, ContactState.CONTACT, ContactState.ENDED)
                if name_key(contact.display_name) != name_key(request.display_name):
                    raise UserError(
                        f"the request is from {request.display_name!r}, not"
                        f" {contact.display_name!r}: only a request under a contact's own name"
                        " can be their new key"
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

            contact, old = await ctx.store.run(unit)
        await self._forget(request.id, old)
        if target is not None:  # the request's mailboxes are the contact's now
            await self._routing.forget_contact(target)
            await self._routing.relisten_contact(target)
        await self._routing.watch_contact(contact.id)
        ctx.emit(RequestRemoved(request.id))
        ctx.emit(ContactAdded(contact) if target is None else ContactChanged(contact))
        return contact

    async def delete_request(self, request_id: int) -> None:
        await self._get(request_id, ContactState.REQUEST)
        await self._delete(request_id)
        self._ctx.emit(RequestRemoved(request_id))

    # -- contacts ------------------------------------------------------------------------

    async def block(self, contact_id: int) -> Contact:
        """Block a request or a contact by its key: their channels are forgotten and later
        handshakes from that key are dropped without a word. A blocked request is deleted; a
        blocked contact keeps its history, ended."""
        ctx = self._ctx
        async with ctx.lock:
            contact = await self._get(contact_id, *ContactState)
            now = ctx.clock()

            def unit(r: Repos) -> tuple[Contact | None, list[OurMailbox]]:
                r.contacts.block(contact.identity_keys, now)
                if contact.state is ContactState.REQUEST:
                    old = r.mailboxes.list_ours(contact_id=contact_id)
                    r.contacts.delete(contact_id)
                    return None, old
                old = forget_channels(r, contact_id)
                r.contacts.set_state(contact_id, ContactState.ENDED)
                return r.contacts.get(contact_id), old

            blocked, old = await ctx.store.run(unit)
        await self._forget(contact_id, old)
        if blocked is None:
            ctx.emit(RequestRemoved(contact_id))
            return contact
        ctx.emit(ContactChanged(blocked))
        return blocked

    async def delete_contact(self, contact_id: int, keep_history: bool = False) -> None:
        """Forget a contact's channels (unsubscribed, mailboxes gone); with its history, or
        the history kept and the contact ended."""
        ctx = self._ctx
        contact = await self._get(contact_id, ContactState.CONTACT, ContactState.ENDED)
        if not keep_history:
            await self._delete(contact_id)
            ctx.emit(ContactRemoved(contact_id))
            return
        async with ctx.lock:

            def unit(r: Repos) -> tuple[Contact, list[OurMailbox]]:
                old = forget_channels(r, contact_id)
                r.contacts.set_state(contact_id, ContactState.ENDED)
                return r.contacts.get(contact_id), old

            ended, old = await ctx.store.run(unit)
        await self._forget(contact.id, old)
        ctx.emit(ContactChanged(ended))

    async def _delete(self, contact_id: int) -> None:
        async with self._ctx.lock:

            def unit(r: Repos) -> list[OurMailbox]:
                old = r.mailboxes.list_ours(contact_id=contact_id)
                r.contacts.delete(contact_id)
                r.settings.delete(f"{MUTED_PREFIX}{contact_id}")
                return old

            old = await self._ctx.store.run(unit)
        self._ctx.settings.muted.discard(contact_id)
        await self._forget(contact_id, old)

    async def mute(self, contact_id: int, muted: bool = True) -> Contact:
        """Silence (or not) a contact's notifications: their messages still arrive and count
        as unread; a front end shows no notification for them."""
        contact = await self._get(contact_id, *ContactState)
        key = f"{MUTED_PREFIX}{contact_id}"

        def unit(r: Repos) -> None:
            if muted:
                r.settings.set(key, "1")
            else:
                r.settings.delete(key)

        await self._ctx.store.run(unit)
        if muted:
            self._ctx.settings.muted.add(contact_id)
        else:
            self._ctx.settings.muted.discard(contact_id)
        self._ctx.emit(ContactChanged(contact))
        return contact

    def is_muted(self, contact_id: int) -> bool:
        return contact_id in self._ctx.settings.muted

    async def rename(self, contact_id: int, name: str) -> Contact:
        name = check_display_name(name)
        await self._get(contact_id, *ContactState)

        def unit(r: Repos) -> Contact:
            r.contacts.rename(contact_id, name)
            return r.contacts.get(contact_id)

        contact = await self._ctx.store.run(unit)
        self._ctx.emit(ContactChanged(contact))
        return contact

    # -- verification --------------------------------------------------------------------

    async def safety_number(self, contact_id: int) -> str:
        """60 digits in 12 groups of 5, the same on both sides."""
        contact = await self._get(contact_id, *ContactState)
        number = safety_number(self._ctx.identity.public, _their_identity(contact))
        return format_safety_number(number)

    async def verification_code(self, contact_id: int) -> str:
        """What our "verify" QR code shows to this contact."""
        contact = await self._get(contact_id, *ContactState)
        return verification_payload(self._ctx.identity.public, _their_identity(contact))

    async def verify(self, contact_id: int, evidence: str) -> Contact:
        """Mark verified from the safety number typed in or the peer's scanned code."""
        ctx = self._ctx
        contact = await self._get(contact_id, *ContactState)
        ours, theirs = ctx.identity.public, _their_identity(contact)
        if evidence.strip().lower().startswith("anonchat-verify:"):
            try:
                match = check_verification(evidence, ours, theirs)
            except VerificationError as exc:
                raise UserError(f"not a verification code: {exc}") from None
        else:
            digits = "".join(ch for ch in evidence if not ch.isspace())
            match = digits == safety_number(ours, theirs)
        if not match:
            raise UserError(
                f"the safety number does not match {contact.display_name}'s; not verified"
            )

        def unit(r: Repos) -> Contact:
            r.contacts.set_verified(contact_id, True)
            return r.contacts.get(contact_id)

        contact = await ctx.store.run(unit)
        ctx.emit(ContactChanged(contact))
        return contact

    async def status(self) -> ProfileStatus:
        """Counts for `anonchat-cli status`: contacts, requests, outbox, dropped frames."""
        ctx = self._ctx

        def load(r: Repos) -> tuple[int, int, int]:
            live = r.contacts.count(ContactState.CONTACT) + r.contacts.count(ContactState.ENDED)
            return live, r.contacts.count(ContactState.REQUEST), r.outbox.count()

        live, waiting, outbox = await ctx.store.read(load)
        return ProfileStatus(live, waiting, outbox, await ctx.rejections.totals(ctx.store))
