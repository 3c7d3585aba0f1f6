"""Creating, unlocking and re-keying profiles; every failure typed and changing nothing."""

from __future__ import annotations

import asyncio
import hashlib
import os
import stat
import struct
from dataclasses import replace
from pathlib import Path

import pytest

from app.crypto.passphrase import (
    MAGIC_V1,
    PageHmac,
    decode_header,
    derive_key,
    encode_header,
    new_slot,
)
from app.store import connection, keystore, migrations, paths, vault
from app.store.errors import (
    CorruptDatabase,
    CorruptHeader,
    ProfileExists,
    ProfileNotFound,
    SchemaTooNew,
    WrongPassphrase,
)
from app.store.paths import ProfilePaths
from app.store.repos import Repos
from app.store.store import Store

from .conftest import FAST, PASS, MemoryKeyring, snapshot


def make(profile: ProfilePaths) -> None:
    opened = vault.create(profile, PASS, FAST)
    Repos(opened.conn).settings.set("theme", "dark")
    opened.conn.close()


def test_create_then_unlock_and_permissions(profile: ProfilePaths) -> None:
    make(profile)
    assert stat.S_IMODE(profile.directory.stat().st_mode) == 0o700
    opened = vault.unlock(profile, PASS)
    for p in profile.all_files():  # includes the live WAL and SHM
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p.name
    assert Repos(opened.conn).settings.get("theme") == "dark"
    assert opened.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert opened.conn.execute("PRAGMA secure_delete").fetchone()[0] == 1
    assert opened.conn.execute("PRAGMA temp_store").fetchone()[0] == 2
    assert migrations.schema_version(opened.conn) == migrations.LATEST
    opened.conn.close()
    with pytest.raises(ProfileExists):
        vault.create(profile, PASS, FAST)


def test_wrong_passphrase_is_silent_and_changes_nothing(
    profile: ProfilePaths, capfd: pytest.CaptureFixture[str]
) -> None:
    make(profile)
    before = snapshot(profile.directory)
    capfd.readouterr()
    with pytest.raises(WrongPassphrase, match="wrong passphrase"):
        vault.unlock(profile, "not it")
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")
    assert snapshot(profile.directory) == before


def test_corrupt_header(profile: ProfilePaths) -> None:
    make(profile)
    raw = bytearray(profile.header.read_bytes())
    raw[12] ^= 0x40
    profile.header.write_bytes(bytes(raw))
    before = snapshot(profile.directory)
    with pytest.raises(CorruptHeader):
        vault.unlock(profile, PASS)
    assert snapshot(profile.directory) == before
    profile.header.unlink()
    with pytest.raises(CorruptHeader):
        vault.unlock(profile, PASS)


def test_truncated_database(profile: ProfilePaths) -> None:
    opened = vault.create(profile, PASS, FAST)
    r = Repos(opened.conn)
    for i in range(300):
        r.settings.set(f"k{i}", "v" * 200)
    opened.conn.close()
    size = profile.database.stat().st_size
    with open(profile.database, "r+b") as f:
        f.truncate(size // 2)
    before = snapshot(profile.directory)
    with pytest.raises(CorruptDatabase):
        vault.unlock(profile, PASS)
    assert snapshot(profile.directory) == before
    profile.database.write_bytes(b"")
    with pytest.raises(CorruptDatabase):
        vault.unlock(profile, PASS)


def test_newer_schema_refused(profile: ProfilePaths) -> None:
    opened = vault.create(profile, PASS, FAST)
    opened.conn.execute(f"PRAGMA user_version = {migrations.LATEST + 1}")
    opened.conn.close()
    before = snapshot(profile.directory)
    with pytest.raises(SchemaTooNew):
        vault.unlock(profile, PASS)
    assert snapshot(profile.directory) == before


def test_missing_profile(profile: ProfilePaths) -> None:
    with pytest.raises(ProfileNotFound):
        vault.unlock(profile, PASS)
    assert not profile.directory.exists()


def test_change_passphrase(profile: ProfilePaths) -> None:
    opened = vault.create(profile, PASS, FAST)
    Repos(opened.conn).settings.set("x", "1")
    with pytest.raises(WrongPassphrase):
        vault.change_passphrase(profile, opened.conn, opened.key, "bad", "new", FAST)
    steps: list[str] = []
    new_key = vault.change_passphrase(
        profile, opened.conn, opened.key, PASS, "new one", FAST, on_step=steps.append
    )
    assert steps == ["derived", "header-both", "rekeyed", "checkpointed", "header-new"]
    assert new_key != opened.key
    Repos(opened.conn).settings.set("y", "2")
    opened.conn.close()
    assert len(decode_header(profile.header.read_bytes()).slots) == 1
    with pytest.raises(WrongPassphrase):
        vault.unlock(profile, PASS)
    again = vault.unlock(profile, "new one")
    assert Repos(again.conn).settings.all() == {"x": "1", "y": "2"}
    assert connection.integrity_problems(again.conn) == []
    again.conn.close()


def test_two_slot_header_finishes_on_unlock(profile: ProfilePaths) -> None:
    """A crash between re-key and header rewrite: either slot may match; unlock tidies up."""
    make(profile)
    header = decode_header(profile.header.read_bytes())
    stale = new_slot(FAST)
    paths.atomic_write(profile.header, encode_header(replace(header, slots=(stale, *header.slots))))
    opened = vault.unlock(profile, PASS)
    opened.conn.close()
    assert decode_header(profile.header.read_bytes()) == header  # the duress field kept


def test_pages_carry_the_hmac_the_header_names(profile: ProfilePaths) -> None:
    make(profile)
    header = decode_header(profile.header.read_bytes())
    assert header.page_hmac is PageHmac.SHA256
    key = derive_key(PASS, header.slots[0])
    with pytest.raises(WrongPassphrase):  # the right key, the wrong page HMAC: unreadable
        connection.open_keyed(profile.database, key, PageHmac.SHA512)
    connection.open_keyed(profile.database, key, PageHmac.SHA256).close()


def test_profile_from_before_the_page_hmac_setting(profile: ProfilePaths) -> None:
    """A version-1 header (no HMAC byte) over SHA-512 pages opens, survives a passphrase
    change, and keeps its SHA-512 pages."""
    slot = new_slot(FAST)
    key = derive_key(PASS, slot)
    paths.ensure_private_dir(profile.directory)
    paths.create_private_file(profile.database)
    conn = connection.open_keyed(profile.database, key, PageHmac.SHA512)
    connection.prepare(conn)
    Repos(conn).settings.set("old", "yes")
    conn.close()
    p = slot.params
    body = MAGIC_V1 + bytes([1]) + struct.pack(">BIIB", 1, p.memory_kib, p.iterations, p.lanes)
    body += bytes([len(slot.salt)]) + slot.salt
    profile.header.write_bytes(body + hashlib.sha256(body).digest())

    opened = vault.unlock(profile, PASS)
    assert Repos(opened.conn).settings.get("old") == "yes"
    vault.change_passphrase(profile, opened.conn, opened.key, PASS, "newer", FAST)
    opened.conn.close()
    header = decode_header(profile.header.read_bytes())
    assert header.page_hmac is PageHmac.SHA512
    again = vault.unlock(profile, "newer")
    assert Repos(again.conn).settings.get("old") == "yes"
    assert connection.integrity_problems(again.conn) == []
    again.conn.close()


def test_profile_resolution(tmp_path: Path) -> None:
    assert paths.resolve_profile("work", tmp_path).directory == tmp_path / "work"
    assert paths.resolve_profile(str(tmp_path / "x")).directory == tmp_path / "x"
    assert "anonchat" in str(paths.resolve_profile("default").directory)
    for bad in ("", " a", "a b", "a\x00", "a:b"):
        with pytest.raises(ValueError):
            paths.resolve_profile(bad, tmp_path)


@pytest.mark.usefixtures("no_keyring")
def test_keyring_fallback_without_backend(profile: ProfilePaths) -> None:
    """No OS keyring here: remembering reports why, recalling finds nothing, nothing raises."""
    make(profile)
    status = keystore.remember(profile, os.urandom(32))
    assert not status.ok
    assert status.reason == keystore.NO_BACKEND
    assert keystore.recall(profile) is None
    assert asyncio.run(Store.unlock_remembered(profile)) is None


def test_keyring_with_backend(profile: ProfilePaths, memory_keyring: MemoryKeyring) -> None:
    async def scenario() -> None:
        store = await Store.create(profile, PASS, FAST)
        assert (await store.remember()).ok
        assert len(memory_keyring.items) == 1
        (stored,) = memory_keyring.items.values()
        assert PASS not in stored
        await store.close()

        again = await Store.unlock_remembered(profile)
        assert again is not None
        await again.change_passphrase(PASS, "rotated", FAST)
        await again.close()
        # The keyring followed the re-key.
        third = await Store.unlock_remembered(profile)
        assert third is not None
        assert (await third.forget()).ok
        await third.close()
        assert memory_keyring.items == {}
        assert await Store.unlock_remembered(profile) is None
        fourth = await Store.unlock(profile, "rotated")
        await fourth.close()

    asyncio.run(scenario())


def test_store_runs_off_the_loop(profile: ProfilePaths) -> None:
    """The loop keeps ticking while the store unlocks and works on its own thread."""

    async def scenario() -> None:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.001)

        task = asyncio.create_task(ticker())
        store = await Store.create(profile, PASS, FAST)
        with pytest.raises(WrongPassphrase):
            await Store.unlock(profile, "nope")
        await store.run(lambda r: r.settings.set("a", "b"))
        with pytest.raises(RuntimeError):
            await store.run(lambda r: (r.settings.set("a", "c"), _boom()))
        assert await store.read(lambda r: r.settings.get("a")) == "b"
        await store.close()
        task.cancel()
        assert ticks > 0

    asyncio.run(scenario())


def _boom() -> None:
    raise RuntimeError("rolled back")


def test_the_raw_key_is_in_no_repr_and_no_log(
    profile: ProfilePaths, caplog: pytest.LogCaptureFixture
) -> None:
    """Whatever holds the database key prints without it, and opening logs none of it."""
    caplog.set_level("DEBUG")

    async def scenario() -> None:
        store = await Store.create(profile, PASS, FAST)
        key = vault.unlock(profile, PASS)
        try:
            shown = [repr(key), str(key), repr(store), str(store)]
            for form in (key.key.hex(), key.key.hex().upper(), repr(key.key)[2:-1]):
                for text in [*shown, caplog.text]:
                    assert form not in text
            assert "key=" not in repr(key)
        finally:
            key.conn.close()
            await store.close()

    asyncio.run(scenario())
