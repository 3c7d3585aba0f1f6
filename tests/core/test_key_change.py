"""A known contact's handshake under a new identity key, on the responder's side: held,
flagged, sending blocked, then applied in one step when the user accepts it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from app.core.errors import SendingBlocked
from app.core.events import Event, KeyChanged
from tests.core.engines import carry, make


def test_new_key_from_a_handshake_is_held_until_accepted(tmp_path: Path) -> None:
    async def body() -> None:
        alice = await make(tmp_path / "alice", "Alice")
        bob = await make(tmp_path / "bob", "Bob")
        bob2 = await make(tmp_path / "bob2", "Bob")
        events: list[Event] = []
        alice.subscribe(events.append)
        try:
            await bob.add_contact(await alice.card())
            await carry(bob, alice)
            (contact,) = await alice.store.read(lambda r: r.contacts.all())
            assert contact.identity_keys == bob.identity.public.to_bytes()
            await alice.verify(contact.id, await alice.safety_number(contact.id))

            await bob2.add_contact(await alice.card())
            await carry(bob2, alice)
            (flagged,) = await alice.store.read(lambda r: r.contacts.all())
            assert flagged.key_change_pending
            assert flagged.identity_keys == bob.identity.public.to_bytes()
            assert flagged.pending_keys == bob2.identity.public.to_bytes()
            assert any(isinstance(e, KeyChanged) for e in events)
            with pytest.raises(SendingBlocked):
                await alice.send(contact.id, "hello?")

            accepted = await alice.accept_key_change(contact.id)
            assert not accepted.key_change_pending
            assert not accepted.verified
            assert accepted.identity_keys == bob2.identity.public.to_bytes()
            history = await alice.store.read(lambda r: r.contacts.key_history(contact.id))
            assert [h.identity_keys for h in history] == [bob.identity.public.to_bytes()]
            outbox = await alice.store.read(lambda r: r.outbox.for_contact(contact.id))
            bob2_box = (await bob2.store.read(lambda r: r.mailboxes.list_ours()))[-1]
            assert [i.mailbox_id for i in outbox] == [bob2_box.id]  # the welcome, to bob2
            sent = await alice.send(contact.id, "hello again")
            assert sent.body == "hello again"
        finally:
            for engine in (alice, bob, bob2):
                await engine.close()

    asyncio.run(body())
