"""Reconnecting a restored profile (app/core/rejoin.py), on a live relay on 127.0.0.1.

Each side of a channel gives the other a prekey for it alone; a rejoin sealed to it under
the contact's own identity key re-opens that contact's channels. The attacker here holds
every frame on the wire and, worse than any relay, the prekey itself: without the contact's
identity key nothing changes.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from app.core import payload as pl
from app.core.backup import restore_profile
from app.core.engine import Engine
from app.core.events import ContactChanged, FrameRejected, Rejection, RequestAdded
from app.core.profile import open_profile, profile_paths
from app.crypto.card import Card
from app.crypto.handshake import initiate, rejoin_prekey
from app.crypto.passphrase import INSECURE_FAST_PARAMS as FAST
from app.net.events import Delivered
from tests.core.engines import PASS, befriend, eventually, make
from tests.core.test_live_relay import Person, introduce, people
from tests.core.test_requests import snapshot


async def prekeys_given(a: Person, to_b: int, b: Person, to_a: int) -> None:
    """Both sides hold the other's prekey, and nothing of theirs waits to go."""

    async def given() -> bool:
        mine = await a.engine.store.read(lambda r: r.rejoin.theirs(to_b))
        theirs = await b.engine.store.read(lambda r: r.rejoin.theirs(to_a))
        waiting = await a.engine.pending_outbox() + await b.engine.pending_outbox()
        return mine is not None and theirs is not None and waiting == 0

    await eventually(given)


async def rejoin_frame(
    who: Person, holder: Person, receiver: Person, to_receiver: int, prekey: bytes
) -> tuple[bytes, bytes]:
    """A rejoin under `who`'s identity to `receiver`, sealed to `prekey`, addressed to the
    mailbox `holder` writes to for `receiver`: (mailbox id, frame)."""
    (dest,) = await holder.engine.store.read(lambda r: r.mailboxes.list_theirs(to_receiver))
    card = Card(receiver.engine.identity.public, prekey, dest.relay_url, dest.id)
    session = initiate(who.engine.identity, card, name="Bob", reply_mailbox=os.urandom(32))
    _, frame = session.encrypt(pl.encode(pl.Intro(dest.relay_url, ())))
    return dest.id, frame


def test_prekeys_go_both_ways_and_are_renewed_with_the_channel(tmp_path: Path) -> None:
    async def body() -> None:
        async with people(tmp_path, "Alice", "Bob") as (alice, bob):
            to_bob, to_alice = await introduce(alice, bob)
            await prekeys_given(alice, to_bob, bob, to_alice)
            ours = await alice.engine.store.read(lambda r: r.rejoin.ours(to_bob))
            assert ours is not None
            assert len(ours) == 32
            given = await bob.engine.store.read(lambda r: r.rejoin.theirs(to_alice))
            assert given is not None
            assert given != ours  # Bob holds the public half only

    asyncio.run(body())


def test_a_rejoin_needs_the_contacts_identity_key_not_only_the_prekey(tmp_path: Path) -> None:
    async def body() -> None:
        async with people(tmp_path, "Alice", "Bob", "Mallory") as (alice, bob, mallory):
            to_bob, to_alice = await introduce(alice, bob)
            await prekeys_given(alice, to_bob, bob, to_alice)
            before = await snapshot(alice.engine, to_bob)
            prekey = await bob.engine.store.read(lambda r: r.rejoin.theirs(to_alice))
            assert prekey is not None
            url = bob.engine.relay_url

            # Mallory holds the prekey and the mailbox, but seals under her own key.
            mailbox, forged = await rejoin_frame(mallory, bob, alice, to_alice, prekey)
            await alice.engine.receive(Delivered(url, mailbox, forged))
            # Bob's own key, to a prekey Alice never gave: not a rejoin either.
            _, stranger = await rejoin_frame(bob, bob, alice, to_alice, rejoin_prekey()[1])
            await alice.engine.receive(Delivered(url, mailbox, stranger))
            # Each byte of a genuine one flipped in turn (a sample): refused.
            _, genuine = await rejoin_frame(bob, bob, alice, to_alice, prekey)
            for i in range(0, len(genuine), max(1, len(genuine) // 40)):
                bad = bytearray(genuine)
                bad[i] ^= 0x01
                await alice.engine.receive(Delivered(url, mailbox, bytes(bad)))

            assert await snapshot(alice.engine, to_bob) == before
            assert not any(isinstance(e, RequestAdded) for e in alice.events)
            kinds = {e.kind for e in alice.events if isinstance(e, FrameRejected)}
            assert kinds <= {Rejection.HANDSHAKE, Rejection.FORGED, Rejection.MALFORMED}
            assert Rejection.HANDSHAKE in kinds  # Mallory's: opened, and refused for her key
            assert await alice.engine.store.read(lambda r: r.rejoin.ours(to_bob)) is not None

    asyncio.run(body())


async def bob_whose_contact_is_gone(tmp_path: Path) -> tuple[Engine, int]:
    """Bob's engine, and the id of his contact Alice, whose own engine is closed."""
    alice, bob = await make(tmp_path / "alice", "Alice"), await make(tmp_path / "bob", "Bob")
    try:
        return bob, (await befriend(alice, bob))[1].id
    finally:
        await alice.close()


def test_a_restored_contact_whose_prekey_no_handshake_can_use_is_left_for_its_card(
    tmp_path: Path,
) -> None:
    async def body() -> None:
        bob, to_alice = await bob_whose_contact_is_gone(tmp_path)

        def owed(r):  # type: ignore[no-untyped-def]
            r.sessions.delete(to_alice)
            r.rejoin.set_theirs(to_alice, bytes(32))  # a low-order point: no DH with it
            r.conn.execute("UPDATE contacts SET rejoin_due = 1 WHERE id = ?", (to_alice,))

        await bob.store.run(owed)
        await bob.close()
        reopened = await Engine.open(await open_profile(profile_paths(str(tmp_path / "bob")), PASS))
        try:
            assert await reopened.store.read(lambda r: r.rejoin.due()) == []
            assert await reopened.store.read(lambda r: r.rejoin.theirs(to_alice)) is None
            assert (await reopened.contact(to_alice)).display_name == "Alice"
        finally:
            await reopened.close()

    asyncio.run(body())


def test_a_restored_profile_opens_at_once_with_no_relay_in_reach(tmp_path: Path) -> None:
    """The fresh handshakes a restore owes are made as the profile opens, but nothing waits on
    the network there: a relay that accepts connections and never answers holds nothing up."""

    async def body() -> None:
        silent = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
        url = f"ws://127.0.0.1:{silent.sockets[0].getsockname()[1]}"
        bob, to_alice = await bob_whose_contact_is_gone(tmp_path)

        def restored(r):  # type: ignore[no-untyped-def]
            for box in r.mailboxes.list_ours(contact_id=to_alice):
                r.mailboxes.delete_ours(box.id)
            r.sessions.delete(to_alice)
            r.rejoin.set_theirs(to_alice, rejoin_prekey()[1])
            r.conn.execute("UPDATE contacts SET rejoin_due = 1 WHERE id = ?", (to_alice,))
            r.conn.execute("UPDATE their_mailboxes SET relay_url = ?", (url,))

        await bob.store.run(restored)
        await bob.close()
        try:
            opened = await open_profile(profile_paths(str(tmp_path / "bob")), PASS)
            reopened = await asyncio.wait_for(Engine.open(opened), 5)
            try:
                contact = await reopened.contact(to_alice)
                assert contact.awaiting_welcome
                assert await reopened.store.read(lambda r: r.sessions.load(to_alice)) is not None
                assert await reopened.store.read(lambda r: r.rejoin.due()) == []
                assert await reopened.pending_outbox() >= 1  # the introduction, to go at start
            finally:
                await reopened.close()
        finally:
            silent.close()

    asyncio.run(body())


def test_a_genuine_rejoin_replayed_after_it_was_taken_changes_nothing(tmp_path: Path) -> None:
    """The relay saw the restored profile's rejoin go by; sent again, to the mailbox it came
    to or to the contact's new one, it is refused: its prekey was used once, then forgotten."""

    async def body() -> None:
        async with people(tmp_path, "Alice", "Bob") as (alice, bob):
            to_bob, to_alice = await introduce(alice, bob)
            await prekeys_given(alice, to_bob, bob, to_alice)
            file = tmp_path / "bob.backup"
            await bob.engine.backup(file, "backup passphrase")
            target = profile_paths(str(tmp_path / "bob2"))
            await restore_profile(target, file, "backup passphrase", PASS, params=FAST)
            again = await Engine.open(await open_profile(target, PASS))
            try:
                (intro,) = [
                    i
                    for i in await again.store.read(lambda r: r.outbox.due(2**62))
                    if i.contact_id == to_alice
                ]
                changed = asyncio.Event()
                alice.engine.subscribe(
                    lambda e: (
                        changed.set()
                        if isinstance(e, ContactChanged) and e.contact.id == to_bob
                        else None
                    )
                )
                await again.start()
                await asyncio.wait_for(changed.wait(), 20)

                async def settled() -> bool:  # new prekeys given both ways, nothing waiting
                    mine = await alice.engine.store.read(lambda r: r.rejoin.theirs(to_bob))
                    theirs = await again.store.read(lambda r: r.rejoin.theirs(to_alice))
                    waiting = await alice.engine.pending_outbox() + await again.pending_outbox()
                    return mine is not None and theirs is not None and waiting == 0

                await eventually(settled)
                before = await snapshot(alice.engine, to_bob)
                (new_box,) = await alice.engine.store.read(
                    lambda r: r.mailboxes.list_ours(contact_id=to_bob)
                )
                url = alice.engine.relay_url
                for mailbox in (intro.mailbox_id, new_box.id):
                    await alice.engine.receive(Delivered(url, mailbox, intro.ciphertext))
                assert await snapshot(alice.engine, to_bob) == before
                assert not any(isinstance(e, RequestAdded) for e in alice.events)
            finally:
                await again.close()

    asyncio.run(body())
