"""Adding contacts: starting a handshake from a card, answering one, and identity key changes.

The initiator listens on a fresh mailbox it names inside the sealed introduction and writes
to the card's invitation mailbox until the responder's `welcome` names the responder's own
fresh mailbox; from then on each direction has its own random mailbox, unlinkable to the
card. Both the introduction and the welcome stay in the outbox until the peer shows it has
them (any authentic frame back), so either side may be offline or crash in between.

A known contact (same display name) showing up under a different identity key is a key
change: the handshake is held, the contact flagged, and nothing is sent to it until the user
accepts the new key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from app.core import payload as pl
from app.core.errors import UserError
from app.core.events import ContactAdded, ContactChanged, FrameRejected, KeyChanged
from app.core.profile import check_relay_url
from app.crypto.card import Card
from app.crypto.errors import CardError, HandshakeError, ReplayedHandshake
from app.crypto.handshake import Accepted, Invitation, initiate
from app.crypto.mailbox import MailboxKey
from app.crypto.ratchet import Session
from app.store.records import (
    Contact,
    MailboxPurpose,
    NewOutbox,
    OurMailbox,
    OutboxKind,
    PendingHandshake,
    TheirMailbox,
)
from app.store.repos import Repos

if TYPE_CHECKING:
    from app.core.engine import Engine

HELD_FRAME = b"F"  # a held first frame received on our invitation mailbox
HELD_CARD = b"C"  # a held card we scanned ourselves
Prepare = Callable[[Repos], None]


def parse_card(text: str) -> Card:
    try:
        return Card.parse(text)
    except CardError as exc:
        raise UserError(f"not a valid AnonChat code: {exc}") from None


def _name_clash(contacts: list[Contact], name: str, keys: bytes) -> Contact | None:
    wanted = name.strip().casefold()
    if not wanted:
        return None
    return next(
        (c for c in contacts if c.display_name.casefold() == wanted and c.identity_keys != keys),
        None,
    )


def _forget_channels(r: Repos, contact_id: int) -> list[OurMailbox]:
    """Drop a contact's old session, mailboxes and undeliverable outbox; return our old ones."""
    ours = r.mailboxes.list_ours(contact_id=contact_id)
    for box in ours:
        r.mailboxes.delete_ours(box.id)
    for theirs in r.mailboxes.list_theirs(contact_id):
        r.mailboxes.delete_theirs(theirs.id)
    for item in r.outbox.for_contact(contact_id):
        r.outbox.fail(item.id)
    r.sessions.delete(contact_id)
    return ours


# -- initiator ---------------------------------------------------------------------------


async def add_contact(engine: Engine, text: str, name: str | None = None) -> Contact:
    """Start a contact from their card; refuses our own card and known contacts."""
    card = parse_card(text)
    keys = card.identity.to_bytes()
    if keys == engine.identity.public.to_bytes():
        raise UserError("that is your own code")
    display = (name or card.name or "").strip() or "Unnamed"
    if len(display.encode()) > 64 or not display.isprintable():
        raise UserError("a contact name is 1 to 64 bytes of printable text")
    async with engine._mutex:
        contacts = await engine.store.read(lambda r: r.contacts.all())
        known = next((c for c in contacts if c.identity_keys == keys), None)
        if known is not None:
            raise UserError(f"{known.display_name} is already a contact")
        clash = _name_clash(contacts, display, keys)
        if clash is not None:
            held = HELD_CARD + text.strip().encode()
            return await _hold(engine, clash, held, keys, None, hashlib.sha256(held).digest())
        return await _initiate(engine, card, display, None, None)


async def _initiate(
    engine: Engine, card: Card, display: str, contact_id: int | None, prepare: Prepare | None
) -> Contact:
    box = MailboxKey.generate()
    session = initiate(engine.identity, card, name=engine.name, reply_mailbox=box.id)
    session, frame = session.encrypt(pl.encode(pl.Intro(engine.relay_url)))
    now = engine._now()

    def unit(r: Repos) -> tuple[Contact, list[OurMailbox]]:
        if prepare is not None:
            prepare(r)
        old: list[OurMailbox] = []
        if contact_id is None:
            cid = r.contacts.add(display, card.identity.to_bytes(), now).id
        else:
            cid, old = contact_id, _forget_channels(r, contact_id)
        _open_channels(r, engine, cid, box, card.mailbox, card.relay_url, session, frame, now)
        return r.contacts.get(cid), old

    contact, old = await engine.store.run(unit)
    await _after_channels_changed(engine, contact, old, box, new=contact_id is None)
    return contact


def _open_channels(
    r: Repos,
    engine: Engine,
    cid: int,
    mine: MailboxKey,
    their_mailbox: bytes,
    their_relay: str,
    session: Session,
    first_frame: bytes,
    now: int,
) -> None:
    """Both sides of a handshake, in its transaction: our fresh mailbox for this contact, the
    peer's, the session, and our first frame (introduction or welcome) queued for the peer."""
    r.mailboxes.add_ours(
        OurMailbox(mine.id, mine.to_bytes(), engine.relay_url, MailboxPurpose.CONTACT, cid, now)
    )
    r.mailboxes.add_theirs(TheirMailbox(their_mailbox, their_relay, cid, now))
    r.sessions.save(cid, session.to_bytes(), now)
    r.outbox.add(
        NewOutbox(cid, OutboxKind.MESSAGE, their_mailbox, their_relay, first_frame, now, now)
    )


async def _after_channels_changed(
    engine: Engine, contact: Contact, old: list[OurMailbox], box: MailboxKey, *, new: bool
) -> None:
    for gone in old:
        engine._contact_boxes.pop(gone.id, None)
        await engine._pool.unsubscribe(gone.relay_url, gone.id)
    await engine._listen(engine.relay_url, box)
    await engine._watch_contact(contact.id)
    engine._emit(ContactAdded(contact) if new else ContactChanged(contact))
    engine._wake.set()


async def on_welcome(
    engine: Engine, contact_id: int, session: Session, welcome: pl.Welcome
) -> None:
    """The responder's first reply: from now on write to the mailbox it names."""
    try:
        check_relay_url(welcome.relay_url)
    except UserError:
        engine._emit(FrameRejected("a welcome named an invalid relay"))
        return
    now = engine._now()
    ack_session, ack = session.encrypt(pl.encode(pl.Receipt(False, ())))
    dest = TheirMailbox(welcome.mailbox, welcome.relay_url, contact_id, now)

    def unit(r: Repos) -> Contact:
        r.mailboxes.add_theirs(dest)
        r.outbox.drop_handshake_controls(contact_id)
        r.sessions.save(contact_id, ack_session.to_bytes(), now)
        r.outbox.add(
            NewOutbox(contact_id, OutboxKind.RECEIPT, dest.id, dest.relay_url, ack, now, now)
        )
        return r.contacts.get(contact_id)

    contact = await engine.store.run(unit)
    await engine._watch_contact(contact_id)
    engine._emit(ContactChanged(contact))
    engine._wake.set()


# -- responder ---------------------------------------------------------------------------


async def on_invitation_frame(engine: Engine, box: OurMailbox, frame: bytes) -> None:
    """A frame on our card's mailbox: a new handshake, or a later frame of an accepted one."""
    invitation = Invitation.from_bytes(box.private_key)
    try:
        accepted = invitation.accept(engine.identity, frame)
    except ReplayedHandshake as replay:
        rid = replay.replay_id
        link = await engine.store.read(lambda r: r.handshakes.get(rid))
        if link is not None and link.contact_id is not None and not link.state:
            await engine.on_contact_frame(link.contact_id, frame)
        return
    except HandshakeError as exc:
        engine._emit(FrameRejected(f"a handshake failed its check ({exc})"))
        return
    try:
        intro = pl.decode(accepted.plaintext)
        if not isinstance(intro, pl.Intro):
            raise pl.PayloadError("the first message is not an introduction")
        check_relay_url(intro.relay_url)
    except (pl.PayloadError, UserError) as exc:
        engine._emit(FrameRejected(f"a handshake carried no valid introduction ({exc})"))
        return
    peer = accepted.peer
    keys = peer.identity.to_bytes()
    if keys == engine.identity.public.to_bytes():
        engine._emit(FrameRejected("a handshake from our own identity"))
        return
    contacts = await engine.store.read(lambda r: r.contacts.all())
    known = next((c for c in contacts if c.identity_keys == keys), None)
    clash = None if known is not None else _name_clash(contacts, peer.name, keys)
    if clash is not None:
        await _hold(engine, clash, HELD_FRAME + frame, keys, box.id, accepted.replay_id)
        return
    await _accept(engine, box, accepted, intro, known.id if known else None, None)


async def _accept(
    engine: Engine,
    box: OurMailbox,
    accepted: Accepted,
    intro: pl.Intro,
    contact_id: int | None,
    prepare: Prepare | None,
) -> Contact:
    peer = accepted.peer
    mine = MailboxKey.generate()
    session, welcome = accepted.session.encrypt(
        pl.encode(pl.Welcome(mine.id, engine.relay_url, engine.name))
    )
    now = engine._now()
    invitation_row = replace(box, private_key=accepted.invitation.to_bytes())

    def unit(r: Repos) -> tuple[Contact, list[OurMailbox]]:
        if prepare is not None:
            prepare(r)
        old: list[OurMailbox] = []
        if contact_id is None:
            name = peer.name.strip() or "Unnamed"
            cid = r.contacts.add(name, peer.identity.to_bytes(), now).id
        else:
            cid, old = contact_id, _forget_channels(r, contact_id)
        r.mailboxes.delete_ours(box.id)
        r.mailboxes.add_ours(invitation_row)
        r.handshakes.put(PendingHandshake(accepted.replay_id, cid, box.id, b"", now))
        _open_channels(r, engine, cid, mine, peer.mailbox, intro.relay_url, session, welcome, now)
        return r.contacts.get(cid), old

    contact, old = await engine.store.run(unit)
    await _after_channels_changed(engine, contact, old, mine, new=contact_id is None)
    return contact


# -- key changes -------------------------------------------------------------------------


async def _hold(
    engine: Engine,
    contact: Contact,
    held: bytes,
    new_keys: bytes,
    mailbox_id: bytes | None,
    hid: bytes,
) -> Contact:
    """Keep a handshake under a new identity key until the user decides."""
    now = engine._now()

    def unit(r: Repos) -> Contact:
        for old in r.handshakes.pending():
            if old.contact_id == contact.id and old.state:
                r.handshakes.delete(old.id)
        r.contacts.flag_key_change(contact.id, new_keys)
        r.handshakes.put(PendingHandshake(hid, contact.id, mailbox_id, held, now))
        return r.contacts.get(contact.id)

    flagged = await engine.store.run(unit)
    engine._emit(KeyChanged(flagged))
    return flagged


async def accept_key_change(engine: Engine, contact_id: int) -> Contact:
    """The user accepts a contact's new identity key: the held handshake goes ahead."""
    async with engine._mutex:
        contact = await engine.contact(contact_id)
        held = [
            h
            for h in await engine.store.read(lambda r: r.handshakes.pending())
            if h.contact_id == contact_id and h.state
        ]
        if not contact.key_change_pending or not held:
            raise UserError(f"no key change is waiting for {contact.display_name}")
        pending = held[-1]

        def prepare(r: Repos) -> None:
            r.handshakes.delete(pending.id)
            r.contacts.accept_key_change(contact_id, engine._now())

        if pending.state[:1] == HELD_CARD:
            card = parse_card(pending.state[1:].decode())
            return await _initiate(engine, card, contact.display_name, contact_id, prepare)
        box = await engine.store.read(lambda r: r.mailboxes.get_ours(pending.mailbox_id or b""))
        if box is None:
            raise UserError("the invitation this key change came through no longer exists")
        frame = pending.state[1:]
        accepted = Invitation.from_bytes(box.private_key).accept(engine.identity, frame)
        intro = pl.decode(accepted.plaintext)
        assert isinstance(intro, pl.Intro)
        return await _accept(engine, box, accepted, intro, contact_id, prepare)
