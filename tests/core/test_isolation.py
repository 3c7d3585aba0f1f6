"""Which connection carries which mailbox, seen from a real relay: the card's mailbox apart
from the contacts' (card-apart, per-contact), each contact on a connection of its own
(per-contact), and no connection over the relay's subscription limit (all three), with 500
contacts."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from app.core.engine import Engine
from app.core.events import MessageAdded, PresenceChanged
from app.core.profile import create_profile, profile_paths
from app.core.routing import CONTACTS_PER_CONNECTION, Isolation
from app.crypto.mailbox import MailboxKey
from app.crypto.passphrase import INSECURE_FAST_PARAMS
from app.domain.contacts import ContactState
from app.store.records import MailboxPurpose, OurMailbox, TheirMailbox
from app.store.repos import Repos
from relay.server import RelayConfig, serve_relay
from tests.core.engines import PASS
from tests.core.test_live_relay import introduce, people

CONTACTS = 500


async def engine_with_contacts(path: Path, url: str, n: int) -> tuple[Engine, dict[bytes, int]]:
    """A profile with n established-looking contacts (their rows and mailboxes written
    directly), and our mailbox id -> contact id for each."""
    opened = await create_profile(profile_paths(str(path)), PASS, "Me", url, INSECURE_FAST_PARAMS)
    boxes = [MailboxKey.generate() for _ in range(n)]

    def unit(r: Repos) -> dict[bytes, int]:
        ours = {}
        for i, box in enumerate(boxes):
            cid = r.contacts.add(f"C{i}", os.urandom(64), 1, state=ContactState.CONTACT).id
            r.mailboxes.add_ours(
                OurMailbox(box.id, box.to_bytes(), url, MailboxPurpose.CONTACT, cid, 1)
            )
            r.mailboxes.add_theirs(TheirMailbox(os.urandom(32), url, cid, 1))
            ours[box.id] = cid
        return ours

    ours = await opened.store.run(unit)
    return await Engine.open(opened), ours


@pytest.mark.parametrize("isolation", list(Isolation))
def test_each_isolation_puts_the_mailboxes_where_it_says(
    tmp_path: Path, isolation: Isolation
) -> None:
    async def body() -> None:
        relay = await serve_relay(RelayConfig(host="127.0.0.1", port=0))  # its default limits
        url = relay.url.rstrip("/")
        engine, ours = await engine_with_contacts(tmp_path / "me", url, CONTACTS)
        try:
            assert await engine.set_isolation(isolation.value) is isolation
            invitations = await engine.store.read(
                lambda r: r.mailboxes.list_ours(purpose=MailboxPurpose.INVITATION)
            )
            card = {b.id for b in invitations}
            await engine.start()
            for _ in range(600):
                subscribed = [set(c.subscriptions) for c in list(relay.relay.connections)]
                if sum(len(s) for s in subscribed) == CONTACTS + len(card):
                    break
                await asyncio.sleep(0.05)
            subscribed = [s for s in subscribed if s]
            assert set().union(*subscribed) == set(ours) | card  # everything, once
            assert sum(len(s) for s in subscribed) == CONTACTS + len(card)
            assert max(len(s) for s in subscribed) <= CONTACTS_PER_CONNECTION
            with_card = [s for s in subscribed if s & card]
            per = CONTACTS_PER_CONNECTION
            if isolation is Isolation.SHARED:  # the card rides with the first contacts
                assert len(with_card) == 1
                assert len(with_card[0]) == per - 4 + len(card)
                assert len(subscribed) == 1 + -(-(CONTACTS - (per - 4)) // per)
            else:
                assert with_card == [card]  # the card's connection carries nothing else
            if isolation is Isolation.CARD_APART:
                assert len(subscribed) == 1 + -(-CONTACTS // per)
            if isolation is Isolation.PER_CONTACT:
                assert len(subscribed) == CONTACTS + 1
                assert all(len(s) == 1 for s in subscribed)
        finally:
            await engine.close()
            await relay.close()

    asyncio.run(body())


@pytest.mark.parametrize("isolation", list(Isolation))
def test_a_conversation_goes_both_ways_under_each_isolation(
    tmp_path: Path, isolation: Isolation
) -> None:
    async def body() -> None:
        async with people(tmp_path, "Alice", "Bob", isolation=isolation) as (alice, bob):
            to_bob, to_alice = await introduce(alice, bob)
            await alice.until(PresenceChanged, lambda e: e.online)  # type: ignore[attr-defined]
            await alice.engine.send(to_bob, "over my own connection")
            await bob.until(MessageAdded, lambda e: e.message.body == "over my own connection")  # type: ignore[attr-defined]
            await bob.engine.send(to_alice, "and back")
            await alice.until(MessageAdded, lambda e: e.message.body == "and back")  # type: ignore[attr-defined]
            assert alice.engine.isolation() is isolation

    asyncio.run(body())
