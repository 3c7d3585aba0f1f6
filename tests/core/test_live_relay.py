"""Engines on a live relay on 127.0.0.1 (the real server, in this process): here nothing
moves unless the engine itself subscribes, watches, unsubscribes and wakes its outbox, so
these tests see what the others cannot: the handshake going by itself, and a blocked,
deleted or pushed-out person's mailbox really closing at the relay."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from app.core import handshakes
from app.core.engine import Engine
from app.core.events import (
    ContactChanged,
    Event,
    MessageAdded,
    PresenceChanged,
    RequestAdded,
)
from app.core.profile import create_profile, open_profile, profile_paths
from app.core.routing import Isolation
from app.crypto.passphrase import INSECURE_FAST_PARAMS
from relay.server import RelayConfig, RelayHandle, serve_relay
from tests.core.engines import PASS


@dataclass
class Person:
    engine: Engine
    events: list[Event] = field(default_factory=list)
    relay: RelayHandle | None = None  # the relay people() started, if it did

    async def until(
        self, kind: type, test: Callable[[Event], bool] = lambda e: True, seconds: float = 30.0
    ) -> Event:
        """The first event of this kind that passes the test, waiting up to `seconds` for it."""
        for _ in range(int(seconds / 0.05)):
            for event in self.events:
                if isinstance(event, kind) and test(event):
                    return event
            await asyncio.sleep(0.05)
        raise AssertionError(f"{self.engine.name} never got {kind.__name__}: {self.events[-8:]}")

    def presence(self, contact_id: int) -> list[bool]:
        return [
            e.online
            for e in self.events
            if isinstance(e, PresenceChanged) and e.contact_id == contact_id
        ]


@contextlib.asynccontextmanager
async def people(
    tmp_path: Path,
    *names: str,
    isolation: Isolation | None = None,
    relay_url: str | None = None,
    proxy: str | None = None,
    reopen: bool = False,
) -> AsyncIterator[list[Person]]:
    """Profiles named `names`, started, on a relay of their own (or on `relay_url`), made
    anew (or, with `reopen`, the ones made before), closed at the end."""
    relay = None if relay_url else await serve_relay(RelayConfig(host="127.0.0.1", port=0))
    url = relay_url or (relay.url.rstrip("/") if relay else "")
    made: list[Person] = []
    try:
        for name in names:
            paths = profile_paths(str(tmp_path / name.lower()))
            if reopen:
                opened = await open_profile(paths, PASS)
            else:
                short = name.rstrip("0123456789")
                opened = await create_profile(paths, PASS, short, url, INSECURE_FAST_PARAMS)
            engine = await Engine.open(opened)
            if isolation is not None:
                await engine.set_isolation(isolation.value)
            if proxy is not None and not reopen:
                await engine.set_proxy(proxy)
            person = Person(engine, relay=relay)
            engine.subscribe(person.events.append)
            await engine.start()
            made.append(person)
        yield made
    finally:
        for person in made:
            await person.engine.close()
        if relay is not None:
            await relay.close()


async def introduce(asker: Person, asked: Person, card: str | None = None) -> tuple[int, int]:
    """`asker` scans `asked`'s card (or the one given); `asked` accepts: (asker's contact id,
    asked's)."""
    mine = await asker.engine.add_contact(card or await asked.engine.card())
    request = await asked.until(
        RequestAdded, lambda e: e.request.identity_keys == asker.engine.identity.public.to_bytes()
    )  # type: ignore[attr-defined]
    theirs = await asked.engine.accept_request(request.request.id)  # type: ignore[attr-defined]
    await asker.until(
        ContactChanged, lambda e: e.contact.id == mine.id and not e.contact.awaiting_welcome
    )  # type: ignore[attr-defined]
    return mine.id, theirs.id


def test_the_handshake_and_the_first_messages_go_by_themselves(tmp_path: Path) -> None:
    async def body() -> None:
        async with people(tmp_path, "Alice", "Bob") as (alice, bob):
            to_bob, to_alice = await introduce(alice, bob)
            await alice.until(PresenceChanged, lambda e: e.online)  # type: ignore[attr-defined]
            await alice.engine.send(to_bob, "hello over the relay")
            await bob.until(MessageAdded, lambda e: e.message.body == "hello over the relay")  # type: ignore[attr-defined]
            await bob.engine.send(to_alice, "and back")
            await alice.until(MessageAdded, lambda e: e.message.body == "and back")  # type: ignore[attr-defined]

    asyncio.run(body())


@pytest.mark.parametrize("how", ["block", "delete", "delete-keeping-history"])
def test_ending_a_contact_closes_our_mailbox_at_the_relay(tmp_path: Path, how: str) -> None:
    async def body() -> None:
        async with people(tmp_path, "Alice", "Bob") as (alice, bob):
            to_bob, to_alice = await introduce(alice, bob)
            await bob.until(PresenceChanged, lambda e: e.contact_id == to_alice and e.online)  # type: ignore[attr-defined]
            if how == "block":
                await alice.engine.block(to_bob)
            else:
                await alice.engine.delete_contact(to_bob, keep_history=how != "delete")
            # Bob watches the mailbox Alice read him on: the relay tells him it closed.
            await bob.until(PresenceChanged, lambda e: e.contact_id == to_alice and not e.online)  # type: ignore[attr-defined]
            # And Alice hears nothing more of Bob's mailbox (she no longer watches it).
            before = len(alice.presence(to_bob))
            await bob.engine.close()
            await asyncio.sleep(0.5)
            assert len(alice.presence(to_bob)) == before

    asyncio.run(body())


def test_a_request_pushed_out_by_a_newer_one_closes_its_mailbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(handshakes, "MAX_REQUESTS", 1)

    async def body() -> None:
        async with people(tmp_path, "Alice", "Stranger1", "Stranger2") as (alice, one, two):
            to_alice = (await one.engine.add_contact(await alice.engine.card())).id
            await alice.until(RequestAdded)
            await one.until(PresenceChanged, lambda e: e.contact_id == to_alice and e.online)  # type: ignore[attr-defined]
            await two.engine.add_contact(await alice.engine.card())
            await alice.until(
                RequestAdded,
                lambda e: e.request.identity_keys == two.engine.identity.public.to_bytes(),
            )  # type: ignore[attr-defined]
            await one.until(PresenceChanged, lambda e: e.contact_id == to_alice and not e.online)  # type: ignore[attr-defined]
            assert [s.request.identity_keys for s in await alice.engine.requests()] == [
                two.engine.identity.public.to_bytes()
            ]

    asyncio.run(body())


def test_a_contacts_new_key_replaces_the_old_one_at_the_relay_too(tmp_path: Path) -> None:
    async def body() -> None:
        async with people(tmp_path, "Alice", "Bob", "Bob2") as (alice, bob, bob2):
            to_alice, _ = await introduce(bob, alice)  # Alice is the one who accepts here
            to_bob = (await alice.engine.summaries())[0].contact.id
            await alice.until(PresenceChanged, lambda e: e.contact_id == to_bob and e.online)  # type: ignore[attr-defined]
            await bob.until(PresenceChanged, lambda e: e.contact_id == to_alice and e.online)  # type: ignore[attr-defined]
            await bob2.engine.add_contact(await alice.engine.card())
            request = await alice.until(
                RequestAdded,
                lambda e: e.request.identity_keys == bob2.engine.identity.public.to_bytes(),
            )  # type: ignore[attr-defined]
            alice.events.clear()
            await alice.engine.accept_request(request.request.id, as_new_key_of=to_bob)  # type: ignore[attr-defined]
            # The old key's channel is closed at the relay: old Bob sees Alice's mailbox go.
            await bob.until(PresenceChanged, lambda e: e.contact_id == to_alice and not e.online)  # type: ignore[attr-defined]
            # Alice watches the new key's mailbox for that contact, and no longer the old one.
            await alice.until(PresenceChanged, lambda e: e.contact_id == to_bob and e.online)  # type: ignore[attr-defined]
            await bob.engine.close()
            await asyncio.sleep(0.5)
            assert False not in alice.presence(to_bob)

    asyncio.run(body())


def test_a_contact_that_starts_over_is_watched_on_its_new_mailbox(tmp_path: Path) -> None:
    async def body() -> None:
        async with people(tmp_path, "Alice", "Bob") as (alice, bob):
            to_bob, to_alice = await introduce(alice, bob)
            # Bob lost his session and adds Alice again under the same key: Alice renews
            # the contact's channels as the responder, with no request to accept.
            await alice.engine.delete_contact(to_bob, keep_history=False)
            alice.events.clear()  # the new row may take the old one's id: only new events count
            to_bob = (await alice.engine.add_contact(await bob.engine.card())).id
            await alice.until(
                ContactChanged, lambda e: e.contact.id == to_bob and not e.contact.awaiting_welcome
            )  # type: ignore[attr-defined]
            await bob.engine.delete_contact(to_alice, keep_history=False)
            bob.events.clear()
            bob_again = await bob.engine.add_contact(await alice.engine.card())
            await bob.until(
                ContactChanged,
                lambda e: e.contact.id == bob_again.id and not e.contact.awaiting_welcome,
            )  # type: ignore[attr-defined]
            alice.events.clear()
            await bob.engine.close()
            await alice.until(PresenceChanged, lambda e: e.contact_id == to_bob and not e.online)  # type: ignore[attr-defined]

    asyncio.run(body())
