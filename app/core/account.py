"""Profile-level use-cases: settings a person changes, the keyring, retrying a failed message.

Functions of the engine (its methods delegate here), kept apart so the engine module stays
about messaging.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.core import contacts
from app.core import payload as pl
from app.core.errors import UserError
from app.core.events import MessageStatusChanged
from app.core.profile import SETTING_RELAY, check_display_name, check_relay_url
from app.crypto.card import Card
from app.crypto.errors import CardError
from app.crypto.handshake import Invitation
from app.crypto.ratchet import Session
from app.domain.contacts import CardPreview
from app.domain.messages import Direction, Message, Status
from app.store.errors import WrongPassphrase
from app.store.records import MailboxPurpose, NewOutbox, OurMailbox, OutboxKind
from app.store.repos import Repos

if TYPE_CHECKING:
    from app.core.engine import Engine

MIN_PASSPHRASE = 8


async def preview_card(engine: Engine, text: str) -> CardPreview:
    try:
        card = Card.parse(text)
    except CardError as exc:
        raise UserError(f"not a valid AnonChat code: {exc}") from None
    keys = card.identity.to_bytes()
    contacts = await engine.store.read(lambda r: r.contacts.all())
    known = next((c for c in contacts if c.identity_keys == keys), None)
    is_self = keys == engine.identity.public.to_bytes()
    return CardPreview(card.name, card.relay_url, is_self, known)


async def set_display_name(engine: Engine, name: str) -> None:
    name = check_display_name(name)
    await engine.store.run(lambda r: r.profile.set_display_name(name))
    engine.name = name


async def set_relay_url(engine: Engine, url: str) -> None:
    """Publish a new card on another relay; existing contacts keep their mailboxes."""
    url = check_relay_url(url.strip())
    if url == engine.relay_url:
        return
    invitation = Invitation.generate()
    now = engine._now()

    def unit(r: Repos) -> None:
        r.settings.set(SETTING_RELAY, url)
        r.mailboxes.add_ours(
            OurMailbox(
                invitation.mailbox.id,
                invitation.to_bytes(),
                url,
                MailboxPurpose.INVITATION,
                None,
                now,
            )
        )

    await engine.store.run(unit)
    engine.relay_url = url
    if engine._started:
        await engine._listen(url, invitation.mailbox)


async def change_passphrase(engine: Engine, old: str, new: str) -> None:
    if len(new) < MIN_PASSPHRASE:
        raise UserError(f"the new passphrase needs at least {MIN_PASSPHRASE} characters")
    try:
        await engine.store.change_passphrase(old, new)
    except WrongPassphrase:
        raise UserError("the current passphrase is wrong; nothing was changed") from None


FRONT_END_PREFIX = "ui."


def _front_end_key(key: str) -> str:
    if not key.startswith(FRONT_END_PREFIX) or len(key) > 64:
        raise ValueError("front-end preferences live under 'ui.' and are short")
    return key


async def preferences(engine: Engine) -> dict[str, str]:
    """A front end's own choices (theme, notifications), kept in the encrypted profile."""
    stored = await engine.store.read(lambda r: r.settings.all())
    return {k: v for k, v in stored.items() if k.startswith(FRONT_END_PREFIX)}


async def set_preferences(engine: Engine, values: dict[str, str]) -> None:
    """Store several front-end preferences in one transaction."""
    checked = {_front_end_key(k): v for k, v in values.items()}

    def unit(r: Repos) -> None:
        for key, value in checked.items():
            r.settings.set(key, value)

    await engine.store.run(unit)


async def remember_key(engine: Engine, enabled: bool) -> str | None:
    """Keep (or drop) the key in the OS keyring; None when done, else why not."""
    status = await (engine.store.remember() if enabled else engine.store.forget())
    return None if status.ok else status.reason


async def retry(engine: Engine, message_row: int) -> Message:
    """Send a failed message again under the current session (a fresh ciphertext)."""
    async with engine._mutex:
        message = await engine.store.read(lambda r: r.messages.get(message_row))
        if message.direction is not Direction.OUTGOING or message.status is not Status.FAILED:
            raise UserError("only a message that failed can be sent again")
        contact = await engine.contact(message.contact_id)
        contacts.check_can_send(contact)
        cid = contact.id
        dest = await engine._destination(cid)
        blob = await engine.store.read(lambda r: r.sessions.load(cid))
        if blob is None:
            raise UserError("no session with this contact")
        chat = pl.Chat(message.sender_seq, message.sent_at, message.body)
        session, frame = Session.from_bytes(blob).encrypt(pl.encode(chat))
        now = engine._now()
        row = NewOutbox(cid, OutboxKind.MESSAGE, dest.id, dest.relay_url, frame, now, now)
        mid = pl.message_id(frame)

        def unit(r: Repos) -> Message:
            r.messages.requeue(message_row, mid, session.to_bytes(), row, now)
            return r.messages.get(message_row)

        updated = await engine.store.run(unit)
    engine._emit(MessageStatusChanged(cid, message_row, Status.QUEUED))
    engine._wake.set()
    return updated
