"""Profile-level use-cases on a real SQCipher profile, no network needed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from app.core.engine import Engine
from app.core.errors import UserError
from app.core.profile import open_profile, profile_paths
from app.crypto.card import Card
from app.domain.messages import Direction, Status
from tests.core.engines import PASS, RELAY, make


def test_preview_names_the_card_and_refuses_garbage(tmp_path: Path) -> None:
    async def body() -> None:
        alice, bob = await make(tmp_path / "a", "Alice"), await make(tmp_path / "b", "Bob")
        try:
            preview = await alice.preview_card(await bob.card())
            assert (preview.name, preview.relay_url, preview.is_self) == ("Bob", RELAY, False)
            assert preview.known is None
            assert (await alice.preview_card(await alice.card())).is_self
            with pytest.raises(UserError, match="not a valid AnonChat code"):
                await alice.preview_card("anonchat:AAAA")
            contact = await alice.add_contact(await bob.card())
            known = (await alice.preview_card(await bob.card())).known
            assert known is not None
            assert known.id == contact.id
        finally:
            await alice.close()
            await bob.close()

    asyncio.run(body())


def test_name_and_relay_changes_reach_the_card(tmp_path: Path) -> None:
    async def body() -> None:
        alice = await make(tmp_path / "a", "Alice")
        try:
            before = Card.parse(await alice.card())
            await alice.set_display_name("Alice B")
            with pytest.raises(UserError, match=r"could not reach ws://127\.0\.0\.1:10"):
                await alice.set_relay_url("ws://127.0.0.1:10")  # tested first: nobody there
            assert alice.relays == (before.relay_url,)
            assert Card.parse(await alice.card()).mailbox == before.mailbox
            await alice.set_relay_url("ws://127.0.0.1:10", test=False)
            after = Card.parse(await alice.card())
            assert (after.name, after.relay_url) == ("Alice B", "ws://127.0.0.1:10")
            assert after.mailbox != before.mailbox
            assert after.identity == before.identity
            with pytest.raises(UserError):
                await alice.set_relay_url("http://example")
            with pytest.raises(UserError):
                await alice.set_display_name("   ")
            assert Card.parse(await alice.card()) == after
        finally:
            await alice.close()

    asyncio.run(body())


def test_change_passphrase_checks_the_old_one(tmp_path: Path) -> None:
    async def body() -> None:
        alice = await make(tmp_path / "a", "Alice")
        with pytest.raises(UserError, match="current passphrase is wrong"):
            await alice.change_passphrase("not it at all", "second passphrase")
        with pytest.raises(UserError, match="at least"):
            await alice.change_passphrase(PASS, "short")
        await alice.change_passphrase(PASS, "second passphrase")
        await alice.close()
        reopened = await open_profile(profile_paths(str(tmp_path / "a")), "second passphrase")
        engine = await Engine.open(reopened)
        assert engine.name == "Alice"
        await engine.close()

    asyncio.run(body())


def test_remember_key_reports_a_missing_keyring(tmp_path: Path) -> None:
    async def body() -> None:
        alice = await make(tmp_path / "a", "Alice")
        try:
            reason = await alice.remember_key(True)
            if alice.keyring_available():
                assert reason is None
                assert await alice.remember_key(False) is None
            else:
                assert reason is not None
                assert "keyring" in reason
        finally:
            await alice.close()

    asyncio.run(body())


def test_retry_requeues_a_failed_message_with_a_new_ciphertext(tmp_path: Path) -> None:
    async def body() -> None:
        alice, bob = await make(tmp_path / "a", "Alice"), await make(tmp_path / "b", "Bob")
        try:
            contact = await alice.add_contact(await bob.card())
            sent = await alice.send(contact.id, "hello")
            with pytest.raises(UserError, match="only a message that failed"):
                await alice.retry(sent.id)
            outbox = await alice.store.read(lambda r: r.outbox.for_contact(contact.id))
            item = next(i for i in outbox if i.message_row == sent.id)
            await alice.store.run(lambda r: r.outbox.fail(item.id))
            again = await alice.retry(sent.id)
            assert again.status is Status.QUEUED
            assert again.direction is Direction.OUTGOING
            assert again.msg_id != sent.msg_id
            assert again.body == "hello"
            outbox = await alice.store.read(lambda r: r.outbox.for_contact(contact.id))
            resent = [i for i in outbox if i.message_row == sent.id]
            assert len(resent) == 1
            assert resent[0].ciphertext != item.ciphertext
        finally:
            await alice.close()
            await bob.close()

    asyncio.run(body())
