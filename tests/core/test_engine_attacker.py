"""A hostile relay against two live engines: real SQLCipher profiles, every mailbox it knows.

The attacker holds both cards and every frame that crossed it, and sends what it builds from
them (tests/crypto/attacker.py) to any mailbox of either person at two moments: while Alice
waits for Bob's welcome (the relay withholds it), and once the conversation is established and
post-quantum. Nothing may change a contact, a session, a mailbox, a message or the outbox; an
exact replay of a message already stored may only make the receiver acknowledge it again.
Plus the fixed regression: the forged welcome that used to reroute Alice's traffic.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from app.core import payload as pl
from app.core.engine import Engine
from app.core.events import (
    ConnectionChanged,
    Event,
    FrameRejected,
    PresenceChanged,
    Rejection,
)
from app.crypto.card import Card
from app.crypto.ratchet import Session
from app.store.records import OutboxKind
from app.store.repos import Repos
from tests.core.engines import deliver, make, own_loop
from tests.crypto.attacker import Attacker, empty_chain_forgery

ALL_KINDS = (OutboxKind.MESSAGE, OutboxKind.RECEIPT)


def state(r: Repos, full: bool) -> tuple[object, ...]:
    """What a frame must not change; without `full`, what not even a replay may change."""
    contacts = r.contacts.all()
    parts: list[object] = [
        contacts,
        [r.mailboxes.list_theirs(c.id) for c in contacts],
        r.mailboxes.list_ours(),
        [r.messages.page(c.id, 10_000) for c in contacts],
        r.handshakes.all(),
    ]
    if full:
        parts += [[r.sessions.load(c.id) for c in contacts], r.outbox.due(2**62, 10_000)]
    return tuple(parts)


@dataclass
class Scene:
    loop: asyncio.AbstractEventLoop
    alice: Engine
    bob: Engine
    attacker: Attacker
    mailboxes: list[tuple[str, bytes]]
    withheld: set[bytes] = field(default_factory=set)
    delivered: set[bytes] = field(default_factory=set)
    events: list[Event] = field(default_factory=list)

    def run(self, coro):  # type: ignore[no-untyped-def]
        return self.loop.run_until_complete(coro)

    async def carry(self, sender: Engine, receiver: Engine) -> None:
        """Deliver what waits in the sender's outbox, the attacker watching."""
        for item in await sender.store.read(lambda r: r.outbox.due(2**62)):
            if item.kind in ALL_KINDS:
                self.attacker.saw([item.ciphertext])
                self.delivered.add(item.ciphertext)
                await deliver(receiver, item.mailbox_id, item.ciphertext)

    async def ours(self, engine: Engine, who: str) -> list[tuple[str, bytes]]:
        boxes = await engine.store.read(lambda r: r.mailboxes.list_ours())
        return [(who, b.id) for b in boxes]


async def _setup(tmp: Path, stage: str, loop: asyncio.AbstractEventLoop) -> Scene:
    alice, bob = await make(tmp / "alice", "Alice"), await make(tmp / "bob", "Bob")
    cards = [Card.parse(await alice.card()), Card.parse(await bob.card())]
    attacker = Attacker(cards, [alice.identity.public, bob.identity.public])
    scene = Scene(loop, alice, bob, attacker, [])
    to_bob = await alice.add_contact(await bob.card())
    await alice.send(to_bob.id, "first, before the welcome")
    await scene.carry(alice, bob)  # Bob now has Alice's request and a welcome queued
    if stage == "awaiting":
        for item in await bob.store.read(lambda r: r.outbox.due(2**62)):
            attacker.saw([item.ciphertext])  # seen, but withheld from Alice
            scene.withheld.add(item.ciphertext)
    else:
        (request,) = await bob.requests()
        to_alice = await bob.accept_request(request.request.id)
        for turn in range(6):
            await scene.carry(bob, alice)
            await alice.send(to_bob.id, f"a{turn}")
            await scene.carry(alice, bob)
            await bob.send(to_alice.id, f"b{turn}")
        await scene.carry(bob, alice)
        await scene.carry(alice, bob)
        for engine, cid in ((alice, to_bob.id), (bob, to_alice.id)):
            blob = await engine.store.read(lambda r, c=cid: r.sessions.load(c))
            assert blob is not None
            assert Session.from_bytes(blob).post_quantum
    scene.mailboxes = await scene.ours(alice, "alice") + await scene.ours(bob, "bob")
    alice.subscribe(scene.events.append)
    bob.subscribe(scene.events.append)
    return scene


@pytest.fixture(scope="module", params=["awaiting", "established"])
def scene(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Scene]:
    with own_loop() as (loop, opened):
        built = loop.run_until_complete(
            _setup(tmp_path_factory.mktemp(request.param), request.param, loop)
        )
        opened += [built.alice, built.bob]
        yield built


def test_nothing_the_relay_builds_changes_either_engine(scene: Scene) -> None:
    @settings(
        max_examples=2500,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(frame=scene.attacker.frames(), target=st.sampled_from(scene.mailboxes))
    def attack(frame: bytes, target: tuple[str, bytes]) -> None:
        assume(frame not in scene.withheld)
        engine = scene.alice if target[0] == "alice" else scene.bob
        replay = frame in scene.delivered

        async def once() -> None:
            before = await engine.store.read(lambda r: state(r, not replay))
            await deliver(engine, target[1], frame)
            after = await engine.store.read(lambda r: state(r, not replay))
            assert after == before

        scene.run(once())

    attack()
    quiet = (FrameRejected, ConnectionChanged, PresenceChanged)  # the relay is unreachable
    assert [e for e in scene.events if not isinstance(e, quiet)] == []


def test_a_forged_welcome_on_the_first_chain_reroutes_nothing(tmp_path: Path) -> None:
    """The regression: the relay used to forge Bob's welcome under the empty chain key and
    point Alice's traffic for Bob at a mailbox and relay of its choosing."""

    async def body() -> None:
        alice, bob = await make(tmp_path / "a", "Alice"), await make(tmp_path / "b", "Bob")
        events: list[Event] = []
        alice.subscribe(events.append)
        try:
            bob_card = Card.parse(await bob.card())
            to_bob = await alice.add_contact(await bob.card())
            (intro,) = await alice.store.read(lambda r: r.outbox.due(2**62))
            (reply_box,) = await alice.store.read(
                lambda r: r.mailboxes.list_ours(contact_id=to_bob.id)
            )
            before = await alice.store.read(lambda r: state(r, True))
            evil = pl.encode(pl.Welcome(b"\x66" * 32, "ws://relay.evil:1", "Bob"))
            for n in (0, 1, 2):
                forged = empty_chain_forgery(
                    alice.identity.public, bob_card, intro.ciphertext, evil, n
                )
                await deliver(alice, reply_box.id, forged)
                chat = pl.encode(pl.Chat(1, 0, "send me your bank details"))
                await deliver(
                    alice,
                    reply_box.id,
                    empty_chain_forgery(alice.identity.public, bob_card, intro.ciphertext, chat, n),
                )
            assert await alice.store.read(lambda r: state(r, True)) == before
            theirs = await alice.store.read(lambda r: r.mailboxes.list_theirs(to_bob.id))
            assert [t.id for t in theirs] == [bob_card.mailbox]
            assert await alice.messages(to_bob.id) == []
            kinds = {e.kind for e in events if isinstance(e, FrameRejected)}
            assert kinds == {Rejection.FORGED}
            assert (await alice.status()).rejected == {"forged": 6}
        finally:
            await alice.close()
            await bob.close()

    asyncio.run(body())
