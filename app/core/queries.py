"""What the front ends read: a contact, the contact list's rows, a conversation's pages,
search, and what waits in the outbox. Nothing here changes anything."""

from __future__ import annotations

from app.core.context import Context
from app.core.errors import UnknownContact, UserError
from app.core.messaging import contact_or_none
from app.core.routing import Routing
from app.domain.contacts import LISTED, Contact, ContactKind, ContactState, ContactSummary
from app.domain.messages import Message, SearchHit
from app.store.errors import NotFound
from app.store.repos import Repos

SEARCH_LIMIT = 50


class Queries:
    def __init__(self, ctx: Context, routing: Routing) -> None:
        self._ctx = ctx
        self._routing = routing

    async def contact(self, contact_id: int) -> Contact:
        found = await self._ctx.store.read(lambda r: contact_or_none(r, contact_id))
        if found is None:
            raise UnknownContact("no such contact")
        return found

    async def find_contact(self, query: str) -> Contact:
        """A contact (not a request) by exact name (case-insensitive), id, or unique prefix."""
        return await self._find(query, (ContactState.CONTACT, ContactState.ENDED), "contact")

    async def find_request(self, query: str) -> Contact:
        """A pending message request, found the same way."""
        return await self._find(query, (ContactState.REQUEST,), "request")

    async def find_anyone(self, query: str) -> Contact:
        """A contact or a request, found the same way."""
        return await self._find(query, tuple(ContactState), "contact or request")

    async def _find(self, query: str, states: tuple[ContactState, ...], what: str) -> Contact:
        rows = await self._ctx.store.read(lambda r: r.contacts.all(*states))
        wanted = query.strip().casefold()
        exact = [c for c in rows if c.display_name.casefold() == wanted or str(c.id) == wanted]
        if len(exact) == 1:
            return exact[0]
        prefix = [c for c in rows if c.display_name.casefold().startswith(wanted)]
        if len(prefix) == 1 and wanted:
            return prefix[0]
        if not exact and not prefix:
            raise UnknownContact(f"no {what} matches {query!r}")
        raise UnknownContact(f"{query!r} matches several; use the id")

    async def summaries(self) -> list[ContactSummary]:
        """Every contact list row (contacts and ended ones, not requests)."""

        online = self._routing.online()  # read here, on the loop, not on the store's thread

        def load(r: Repos) -> list[ContactSummary]:
            unread = r.messages.unread_counts()
            return [
                _summarize(r, c, unread.get(c.id, 0), c.id in online)
                for c in r.contacts.all(ContactState.CONTACT, ContactState.ENDED, kinds=LISTED)
                if c.kind is not ContactKind.GROUP or r.groups.listed(c.id)
            ]

        return await self._ctx.store.read(load)

    async def summary(self, contact_id: int) -> ContactSummary | None:
        """One contact list row, re-read after an event about that contact; None when it is
        not on the list (gone, or a request)."""

        online = self._routing.is_online(contact_id)

        def load(r: Repos) -> ContactSummary | None:
            c = contact_or_none(r, contact_id)
            if c is None or c.state is ContactState.REQUEST or c.kind not in LISTED:
                return None
            if c.kind is ContactKind.GROUP and not r.groups.listed(c.id):
                return None
            return _summarize(r, c, r.messages.unread_count(c.id), online)

        return await self._ctx.store.read(load)

    async def messages(
        self, contact_id: int, limit: int = 50, before: int | None = None
    ) -> list[Message]:
        """Newest first, `before` a message row id (the paging cursor)."""
        return await self._ctx.store.read(lambda r: r.messages.page(contact_id, limit, before))

    async def message(self, message_row: int) -> Message:
        """One message, as a conversation shows it."""
        try:
            return await self._ctx.store.read(lambda r: r.messages.get(message_row))
        except NotFound:
            raise UserError(f"no message {message_row}") from None

    async def search(self, text: str, contact_id: int | None = None) -> list[SearchHit]:
        return await self._ctx.store.read(lambda r: r.search(text, SEARCH_LIMIT, contact_id))

    async def pending_outbox(self, contact_id: int | None = None) -> int:
        if contact_id is None:
            return await self._ctx.store.read(lambda r: r.outbox.count())
        return await self._ctx.store.read(lambda r: len(r.outbox.for_contact(contact_id)))


def _summarize(r: Repos, c: Contact, unread: int, online: bool) -> ContactSummary:
    page = r.messages.page(c.id, 1)
    established = not r.outbox.has_handshake_controls(c.id) and bool(r.mailboxes.list_theirs(c.id))
    return ContactSummary(c, unread, page[0] if page else None, online, established)
