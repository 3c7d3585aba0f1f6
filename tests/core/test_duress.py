"""The duress passphrase through the engine and `open_profile`, on real SQLCipher profiles:
it wipes the profile and opens a new, empty one with the name, relays and settings kept;
cleared, it is a wrong passphrase; it may not be the passphrase, nor become it; a passphrase
change keeps it; and every unlock attempt costs the same Argon2id work."""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
import struct
from pathlib import Path

import pytest

from app.core import profile as profile_module
from app.core.engine import Engine
from app.core.errors import ProfileBusy, StoreError, UserError, WrongPassphrase
from app.core.profile import RelayMode, open_profile, profile_paths
from app.crypto.passphrase import (
    INSECURE_FAST_PARAMS,
    MAGIC,
    MAGIC_V2,
    KdfParams,
    decode_header,
    encode_header,
)
from app.store import vault
from tests.core.engines import PASS, make

DURESS = "duress passphrase"
FALLBACK = "ws://127.0.0.1:11"


def profile_files(directory: Path) -> dict[str, tuple[int, int]]:
    """Each file of the profile by name: (inode, size)."""
    return {
        str(p.relative_to(directory)): (p.stat().st_ino, p.stat().st_size)
        for p in directory.rglob("*")
        if p.is_file()
    }


async def prepared(path: Path) -> tuple[Engine, bytes]:
    """Alice, with a contact, a file at rest, a proxy, a fallback relay, a theme and a
    duress passphrase set; her identity key."""
    alice, bob = await make(path, "Alice"), await make(path.parent / "bob", "Bob")
    try:
        await alice.add_contact(await bob.card())
    finally:
        await bob.close()
    await alice.set_relays([alice.relay_url, FALLBACK], RelayMode.URL, test=False)
    await alice.set_proxy("socks5h://127.0.0.1:9050")
    await alice.set_preferences({"ui.theme": "dark"})
    await alice.set_duress(DURESS)
    return alice, alice.identity.public.to_bytes()


def test_the_duress_passphrase_wipes_and_opens_an_empty_profile(tmp_path: Path) -> None:
    async def body() -> None:
        path = tmp_path / "alice"
        alice, identity = await prepared(path)
        blobs = path / "files"
        blobs.mkdir(mode=0o700, exist_ok=True)
        (blobs / ("cd" * 16)).write_bytes(os.urandom(4096))
        old_header = (path / "store.hdr").read_bytes()
        await alice.close()
        before = profile_files(path)

        engine = await Engine.open(await open_profile(profile_paths(str(path)), DURESS))
        try:
            assert engine.identity.public.to_bytes() != identity
            assert await engine.summaries() == []
            assert await engine.requests() == []
            assert engine.name == "Alice"
            assert engine.relays == ("ws://127.0.0.1:9", FALLBACK)
            assert engine.relay_mode is RelayMode.URL
            assert engine.proxy() == "socks5h://127.0.0.1:9050"
            assert (await engine.preferences())["ui.theme"] == "dark"
            assert await engine.card()  # a first invitation, as a new profile has
            after = profile_files(path)
            assert "files/" + "cd" * 16 not in after
            assert after["store.db"] != before["store.db"]
            header = decode_header((path / "store.hdr").read_bytes())
            old = decode_header(old_header).duress
            assert old is not None
            assert header.slots[0].salt == old.salt  # the duress key is the new database's
            assert header.duress != old  # and a fresh, random duress field
            assert len(encode_header(header)) == len(old_header)
        finally:
            await engine.close()
        # The old passphrase opens nothing now; the duress one is the new profile's own.
        with pytest.raises(WrongPassphrase):
            await open_profile(profile_paths(str(path)), PASS)
        again = await Engine.open(await open_profile(profile_paths(str(path)), DURESS))
        assert again.identity.public.to_bytes() == engine.identity.public.to_bytes()
        await again.close()

    asyncio.run(body())


def test_a_cleared_duress_passphrase_is_a_wrong_one(tmp_path: Path) -> None:
    async def body() -> None:
        path = tmp_path / "alice"
        alice, identity = await prepared(path)
        await alice.clear_duress()
        await alice.close()
        with pytest.raises(WrongPassphrase):
            await open_profile(profile_paths(str(path)), DURESS)
        engine = await Engine.open(await open_profile(profile_paths(str(path)), PASS))
        assert engine.identity.public.to_bytes() == identity
        assert len(await engine.summaries()) == 1
        await engine.close()

    asyncio.run(body())


def test_the_duress_passphrase_cannot_be_the_passphrase(tmp_path: Path) -> None:
    async def body() -> None:
        path = tmp_path / "alice"
        alice = await make(path, "Alice")
        header = (path / "store.hdr").read_bytes()
        with pytest.raises(StoreError, match="must differ from the passphrase"):
            await alice.set_duress(PASS)
        with pytest.raises(UserError, match="at least 8"):
            await alice.set_duress("short")
        assert (path / "store.hdr").read_bytes() == header
        await alice.set_duress(DURESS)
        with pytest.raises(StoreError, match="is the duress passphrase"):
            await alice.store.change_passphrase(PASS, DURESS, INSECURE_FAST_PARAMS)
        await alice.close()
        engine = await Engine.open(await open_profile(profile_paths(str(path)), PASS))
        await engine.close()

    asyncio.run(body())


def test_a_passphrase_change_keeps_the_duress_passphrase(tmp_path: Path) -> None:
    async def body() -> None:
        path = tmp_path / "alice"
        alice, identity = await prepared(path)
        field = decode_header((path / "store.hdr").read_bytes()).duress
        # The engine's own change takes the default parameters; these profiles use the cheap
        # ones, which the store is given here so that they stay the same.
        await alice.store.change_passphrase(PASS, "second passphrase", INSECURE_FAST_PARAMS)
        assert decode_header((path / "store.hdr").read_bytes()).duress == field
        await alice.close()
        engine = await Engine.open(await open_profile(profile_paths(str(path)), DURESS))
        assert engine.identity.public.to_bytes() != identity
        assert await engine.summaries() == []
        await engine.close()

    asyncio.run(body())


def test_new_argon2id_parameters_clear_the_duress_passphrase(tmp_path: Path) -> None:
    """A duress passphrase cannot follow a change of parameters (it would have to be
    derived again): the field becomes random with the new ones, and the duress passphrase
    a wrong one."""

    async def body() -> None:
        path = tmp_path / "alice"
        alice, identity = await prepared(path)
        cheaper = KdfParams(32, 1, 1)
        await alice.store.change_passphrase(PASS, "second passphrase", cheaper)
        header = decode_header((path / "store.hdr").read_bytes())
        assert header.duress is not None
        assert header.duress.params == header.slots[0].params == cheaper
        await alice.close()
        with pytest.raises(WrongPassphrase):
            await open_profile(profile_paths(str(path)), DURESS)
        engine = await Engine.open(
            await open_profile(profile_paths(str(path)), "second passphrase")
        )
        assert engine.identity.public.to_bytes() == identity
        await engine.close()

    asyncio.run(body())


@pytest.fixture
def derivations(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many Argon2id derivations each unlock attempt made (and with what memory)."""
    made: list[int] = []
    real = vault.derive_key

    def counted(passphrase: str, slot: vault.KeySlot) -> bytes:
        made.append(slot.params.memory_kib)
        return real(passphrase, slot)

    monkeypatch.setattr(vault, "derive_key", counted)
    return made


def test_every_unlock_attempt_costs_the_same_argon2id_work(
    tmp_path: Path, derivations: list[int]
) -> None:
    """Right, wrong or duress passphrase, a duress passphrase set or not: two derivations
    with the profile's own parameters, then at most a quick check of the database's first
    page. (Time is measured by bench/duress.py, never here.)"""

    async def attempt(path: Path, passphrase: str) -> list[int]:
        derivations.clear()
        try:
            opened = await open_profile(profile_paths(str(path)), passphrase)
        except WrongPassphrase:
            pass
        else:
            await (await Engine.open(opened)).close()
        return list(derivations)

    async def body() -> None:
        unset, with_duress = tmp_path / "unset", tmp_path / "set"
        await (await make(unset, "Ann")).close()
        alice = await make(with_duress, "Alice")
        await alice.set_duress(DURESS)
        await alice.close()
        counts = [
            await attempt(unset, PASS),
            await attempt(unset, "a wrong passphrase"),
            await attempt(with_duress, "a wrong passphrase"),
            await attempt(with_duress, PASS),
            await attempt(with_duress, DURESS),
        ]
        assert all(c == counts[0] for c in counts), counts
        assert len(counts[0]) == 2

    asyncio.run(body())


def test_a_profile_open_elsewhere_is_busy_and_kept(tmp_path: Path) -> None:
    """The duress passphrase on a profile another process holds says what the passphrase
    would say (busy) and wipes nothing."""

    async def body() -> None:
        path = tmp_path / "alice"
        alice, identity = await prepared(path)
        await alice.close()
        fd = os.open(path / "lock", os.O_RDWR)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as another process would hold it
        try:
            with pytest.raises(ProfileBusy):
                await open_profile(profile_paths(str(path)), PASS)
            with pytest.raises(ProfileBusy):
                await open_profile(profile_paths(str(path)), DURESS)
        finally:
            os.close(fd)
        engine = await Engine.open(await open_profile(profile_paths(str(path)), PASS))
        assert engine.identity.public.to_bytes() == identity
        await engine.close()

    asyncio.run(body())


def test_a_version_2_header_gains_its_duress_field_when_unlocked(tmp_path: Path) -> None:
    async def body() -> None:
        path = tmp_path / "alice"
        await (await make(path, "Alice")).close()
        header = decode_header((path / "store.hdr").read_bytes())
        body = MAGIC_V2 + bytes([header.page_hmac, 1])
        slot = header.slots[0]
        p = slot.params
        body += struct.pack(">BIIB", 1, p.memory_kib, p.iterations, p.lanes)
        body += bytes([len(slot.salt)]) + slot.salt
        (path / "store.hdr").write_bytes(body + hashlib.sha256(body).digest())
        engine = await Engine.open(await open_profile(profile_paths(str(path)), PASS))
        raw = (path / "store.hdr").read_bytes()
        assert raw.startswith(MAGIC)
        assert decode_header(raw).slots == header.slots
        await engine.set_duress(DURESS)
        await engine.close()
        again = await Engine.open(await open_profile(profile_paths(str(path)), DURESS))
        assert await again.summaries() == []
        await again.close()

    asyncio.run(body())


def test_what_the_duress_passphrase_keeps(tmp_path: Path) -> None:
    """The name, the relays and the connection settings, and short front-end preferences
    (four at most); nothing else of the settings."""
    stored = {
        "relay_url": "ws://a:1",
        "fallback_relays": "ws://b:2",
        "relay_mode": "url",
        "proxy": "",
        "isolation": "shared",
        "contact_quota_mb": "64",
        "address_mailbox": "00" * 32,
        "ui.a": "1",
        "ui.b": "2",
        "ui.c": "3",
        "ui.d": "4",
        "ui.e": "5",
        "ui.long": "x" * 17,
    }
    kept = profile_module.duress_settings("Alice", stored)
    assert kept == {
        "name": "Alice",
        "relay_url": "ws://a:1",
        "fallback_relays": "ws://b:2",
        "relay_mode": "url",
        "proxy": "",
        "isolation": "shared",
        "ui.a": "1",
        "ui.b": "2",
        "ui.c": "3",
        "ui.d": "4",
    }
