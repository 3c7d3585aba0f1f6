"""Files between two real engines through a live relay on 127.0.0.1 (real SQLCipher profiles,
real files at rest): offered, fetched, resumed, checked; and what a relay or a sender that
misbehaves can and cannot do to a transfer."""

from __future__ import annotations

import asyncio
import hashlib
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
import pytest

import app.core.transfers as transfers_module
from app.core.engine import Engine
from app.core.errors import UserError
from app.core.events import Event, FileChanged, MessageAdded, PresenceChanged
from app.core.profile import open_profile, profile_paths
from app.crypto.filecrypt import (
    CHUNK_SIZE,
    FileKeys,
    chunk_count,
    is_file_frame,
    split_file_frame,
)
from app.domain.files import FileInfo, FileState
from app.domain.messages import Direction, describe
from app.net import events as net
from tests.core.engines import PASS
from tests.core.test_live_relay import Person, introduce, people

MARKER = b"PLAINTEXT-MARKER-7d3f"


def content(size: int) -> bytes:
    """Bytes that are easy to find on disk if they were ever written in clear."""
    return (MARKER * (size // len(MARKER) + 1))[:size]


async def ready(tmp_path: Path, alice: Person, bob: Person) -> tuple[int, int]:
    to_bob, to_alice = await introduce(alice, bob)
    await alice.until(PresenceChanged, lambda e: e.contact_id == to_bob and e.online)  # type: ignore[attr-defined]
    await bob.until(PresenceChanged, lambda e: e.contact_id == to_alice and e.online)  # type: ignore[attr-defined]
    return to_bob, to_alice


async def finished(person: Person, direction: Direction, seconds: float = 30.0) -> FileInfo:
    event = await person.until(
        FileChanged,
        lambda e: e.file.direction is direction and e.file.state.finished,  # type: ignore[attr-defined]
        seconds,
    )
    return event.file  # type: ignore[attr-defined,no-any-return]


def offered_to(person: Person) -> FileInfo:
    for event in person.events:
        if isinstance(event, MessageAdded) and event.message.file is not None:
            return event.message.file
    raise AssertionError("no file was offered")


def tap_sends(
    engine: Engine, change: Callable[[bytes], bytes | None], delay: float = 0.0
) -> list[bytes]:
    """Every file frame the engine sends passes through `change` (None: not sent), `delay`
    seconds late (a slow link); returns the list of file frames as they went out."""
    pool = engine._routing.pool
    real = pool.send
    seen: list[bytes] = []

    async def send(url: str, mailbox: bytes, payload: bytes, **kw: Any) -> int:
        if is_file_frame(payload):
            await asyncio.sleep(delay)
            changed = change(payload)
            if changed is None:
                return 1  # swallowed on the way, as a relay could
            payload = changed
            seen.append(payload)
        return await real(url, mailbox, payload, **kw)

    pool.send = send  # type: ignore[method-assign]
    return seen


def every_file_under(directory: Path) -> list[Path]:
    return [p for p in directory.rglob("*") if p.is_file()]


def run(body: Callable[[], Any]) -> None:
    asyncio.run(body())


def test_a_file_goes_across_sealed_at_rest_on_both_sides(tmp_path: Path) -> None:
    data = content(3 * CHUNK_SIZE + 1234)

    async def body() -> None:
        async with people(tmp_path, "Alice", "Bob") as (alice, bob):
            to_bob, _ = await ready(tmp_path, alice, bob)
            sent = await alice.engine.send_file(to_bob, data, name="notes.txt", caption="read")
            assert sent.file is not None
            assert sent.body == "read"
            assert describe(sent) == "File: notes.txt \u2014 read"
            theirs = await finished(bob, Direction.INCOMING)
            assert theirs.state is FileState.COMPLETE
            assert theirs.received_bytes == len(data)
            assert theirs.name == "notes.txt"
            assert theirs.mime == "text/plain"
            assert theirs.sha256 == hashlib.sha256(data).digest()
            ours = await finished(alice, Direction.OUTGOING)
            assert ours.state is FileState.COMPLETE
            assert ours.received_bytes == len(data)
            assert ours.sent_bytes == len(data)  # every piece once
            saved = await bob.engine.save_file(theirs.id, tmp_path / "out")
            assert saved.read_bytes() == data
            assert await bob.engine.read_file(theirs.id) == data
            assert await alice.engine.read_file(ours.id) == data
            # Neither profile holds the plaintext anywhere; the files at rest are private.
            for who in ("alice", "bob"):
                for path in every_file_under(tmp_path / who):
                    assert MARKER not in path.read_bytes(), path
                for path in every_file_under(tmp_path / who / "files"):
                    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    run(body)


def test_a_file_over_the_automatic_limit_waits_for_download(tmp_path: Path) -> None:
    data = os.urandom(2 * CHUNK_SIZE)

    async def body() -> None:
        async with people(tmp_path, "Alice", "Bob") as (alice, bob):
            to_bob, _ = await ready(tmp_path, alice, bob)
            await bob.engine.set_auto_download(0)
            assert bob.engine.auto_download() == 0
            await alice.engine.send_file(to_bob, data, name="big.bin")
            await bob.until(MessageAdded)
            await asyncio.sleep(0.3)
            offer = offered_to(bob)
            assert (await bob.engine.file(offer.id)).state is FileState.OFFERED
            assert (await alice.engine.files())[0].sent_bytes == 0  # nothing moved unasked
            with pytest.raises(UserError, match="not arrived"):
                await bob.engine.save_file(offer.id, tmp_path / "early")
            await bob.engine.download(offer.id)
            done = await finished(bob, Direction.INCOMING)
            assert done.state is FileState.COMPLETE
            assert (await bob.engine.read_file(done.id)) == data

    run(body)


def test_flipped_bits_are_refused_and_the_piece_is_fetched_again(tmp_path: Path) -> None:
    data = os.urandom(6 * CHUNK_SIZE)

    async def body() -> None:
        async with people(tmp_path, "Alice", "Bob") as (alice, bob):
            to_bob, _ = await ready(tmp_path, alice, bob)
            flipped: list[int] = []

            def flip(frame: bytes) -> bytes:
                _, chunk = split_file_frame(frame)
                if chunk is not None and chunk.index in (0, 5) and chunk.index not in flipped:
                    flipped.append(chunk.index)
                    spoiled = bytearray(frame)
                    spoiled[-100] ^= 0x04
                    return bytes(spoiled)
                return frame

            tap_sends(alice.engine, flip)
            before = bob.engine._ctx.rejections.total
            await alice.engine.send_file(to_bob, data, name="photo.raw")
            done = await finished(bob, Direction.INCOMING)
            assert done.state is FileState.COMPLETE, done.error
            assert sorted(flipped) == [0, 5]
            assert bob.engine._ctx.rejections.total - before == 2
            assert await bob.engine.read_file(done.id) == data
            ours = (await alice.engine.files())[0]
            assert ours.sent_bytes == len(data) + 2 * CHUNK_SIZE  # the two pieces again

    run(body)


def test_a_sender_that_sends_more_than_it_offered_fails_the_transfer(tmp_path: Path) -> None:
    data = os.urandom(2 * CHUNK_SIZE + 10)

    async def body() -> None:
        async with people(tmp_path, "Alice", "Bob") as (alice, bob):
            to_bob, _ = await ready(tmp_path, alice, bob)
            keys: list[FileKeys] = []

            def more(frame: bytes) -> bytes:
                _, chunk = split_file_frame(frame)
                if chunk is not None and chunk.index == 2 and keys:
                    # The last piece, sealed by the real sender, but longer than offered.
                    return keys[0].chunk_frame(2, keys[0].seal_chunk(2, os.urandom(500)))
                return frame

            tap_sends(alice.engine, more)
            real_serve = alice.engine._files.transfers.serve

            def serve(t: Any) -> None:
                keys.append(FileKeys.derive(t.file_key, t.file_id, t.info.size))
                real_serve(t)

            alice.engine._files.transfers.serve = serve  # type: ignore[method-assign]
            await alice.engine.send_file(to_bob, data, name="x.bin")
            failed = await finished(bob, Direction.INCOMING)
            assert failed.state is FileState.FAILED
            assert failed.error == "the sender sent more than it offered"
            assert failed.received_bytes == 0  # what it held is dropped: it starts over
            with pytest.raises(UserError):
                await bob.engine.read_file(failed.id)

    run(body)


def test_a_file_that_does_not_match_its_hash_is_never_complete(tmp_path: Path) -> None:
    data = os.urandom(CHUNK_SIZE + 7)

    async def body() -> None:
        async with people(tmp_path, "Alice", "Bob") as (alice, bob):
            to_bob, _ = await ready(tmp_path, alice, bob)
            blobs = alice.engine._files.blobs
            real_seal = blobs.seal

            def lying_seal(*args: Any) -> tuple[int, bytes]:
                size, _ = real_seal(*args)
                return size, hashlib.sha256(b"something else").digest()

            blobs.seal = lying_seal  # type: ignore[method-assign]
            await alice.engine.send_file(to_bob, data, name="x.bin")
            failed = await finished(bob, Direction.INCOMING)
            assert failed.state is FileState.FAILED
            assert failed.error == "the file does not match what was offered"
            assert failed.received_bytes == 0
            assert every_file_under(tmp_path / "bob" / "files") == []  # not kept
            with pytest.raises(UserError):
                await bob.engine.save_file(failed.id, tmp_path / "out")
            assert not (tmp_path / "out").exists()

    run(body)


def test_a_sender_that_stops_sending_leaves_a_clear_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transfers_module, "STALL_S", 0.3)
    monkeypatch.setattr(transfers_module, "MAX_STALLS", 3)
    data = os.urandom(4 * CHUNK_SIZE)

    async def body() -> None:
        async with people(tmp_path, "Alice", "Bob") as (alice, bob):
            to_bob, _ = await ready(tmp_path, alice, bob)
            sent: list[int] = []
            silent = [True]

            def stall(frame: bytes) -> bytes | None:
                _, chunk = split_file_frame(frame)
                if chunk is None:
                    return frame
                if silent[0] and len(sent) >= 2:
                    return None  # two pieces, then silence
                sent.append(chunk.index)
                return frame

            tap_sends(alice.engine, stall)
            await alice.engine.send_file(to_bob, data, name="x.bin")
            failed = await finished(bob, Direction.INCOMING)
            assert failed.state is FileState.FAILED
            assert failed.error == "the sender stopped sending"
            assert failed.received_bytes == 2 * CHUNK_SIZE  # what came is kept...
            silent[0] = False  # the sender works again
            bob.events.clear()
            await bob.engine.retry_file(failed.id)
            done = await finished(bob, Direction.INCOMING)
            assert done.state is FileState.COMPLETE
            assert await bob.engine.read_file(done.id) == data
            # ...and the retry fetched only the rest.
            assert sorted(sent) == [0, 1, 2, 3]

    run(body)


def test_a_download_cut_off_by_a_restart_goes_on_from_what_was_held(tmp_path: Path) -> None:
    data = os.urandom(200 * CHUNK_SIZE)  # 12 MB
    count = chunk_count(len(data))

    async def body() -> None:
        async with people(tmp_path, "Alice", "Bob") as (alice, bob):
            to_bob, _ = await ready(tmp_path, alice, bob)
            await bob.engine.set_auto_download(100)
            pieces: list[int] = []

            def count_pieces(frame: bytes) -> bytes:
                _, chunk = split_file_frame(frame)
                if chunk is not None:
                    pieces.append(chunk.index)
                return frame

            tap_sends(alice.engine, count_pieces, delay=0.05)
            await alice.engine.send_file(to_bob, data, name="x.bin")
            await bob.until(
                FileChanged,
                lambda e: e.file.received_bytes >= 30 * CHUNK_SIZE,  # type: ignore[attr-defined]
            )
            await bob.engine.close()  # mid-transfer
            held = [e.file for e in bob.events if isinstance(e, FileChanged)][-1]
            assert 0 < held.received_bytes < len(data)
            opened = await open_profile(profile_paths(str(tmp_path / "bob")), PASS)
            engine = await Engine.open(opened)
            again = Person(engine)
            engine.subscribe(again.events.append)
            await engine.start()
            try:
                done = await finished(again, Direction.INCOMING)
                assert done.state is FileState.COMPLETE
                assert await engine.read_file(done.id) == data
            finally:
                await engine.close()
            # Resumed, not restarted: at most a window or two more than the file.
            assert len(pieces) <= count + 2 * transfers_module.WINDOW
            assert set(pieces) == set(range(count))

    run(body)


def test_cancel_then_retry_goes_on_where_it_stopped(tmp_path: Path) -> None:
    data = os.urandom(100 * CHUNK_SIZE)

    async def body() -> None:
        async with people(tmp_path, "Alice", "Bob") as (alice, bob):
            to_bob, _ = await ready(tmp_path, alice, bob)
            tap_sends(alice.engine, lambda frame: frame, delay=0.05)
            await alice.engine.send_file(to_bob, data, name="x.bin")
            offer = (await bob.until(MessageAdded)).message.file  # type: ignore[attr-defined]
            await bob.until(
                FileChanged,
                lambda e: e.file.received_bytes >= 20 * CHUNK_SIZE,  # type: ignore[attr-defined]
            )
            cancelled = await bob.engine.cancel_file(offer.id)
            assert cancelled.state is FileState.CANCELLED
            await asyncio.sleep(0.5)
            kept = (await bob.engine.file(offer.id)).received_bytes
            assert 20 * CHUNK_SIZE <= kept < len(data)
            bob.events.clear()
            await bob.engine.retry_file(offer.id)
            done = await finished(bob, Direction.INCOMING, 60)
            assert done.state is FileState.COMPLETE
            ours = (await alice.engine.files())[0]
            assert ours.sent_bytes < len(data) + 40 * CHUNK_SIZE

    run(body)


def test_a_sender_that_cancels_is_said_so(tmp_path: Path) -> None:
    async def body() -> None:
        async with people(tmp_path, "Alice", "Bob") as (alice, bob):
            to_bob, _ = await ready(tmp_path, alice, bob)
            await bob.engine.set_auto_download(0)
            sent = await alice.engine.send_file(to_bob, os.urandom(1000), name="x.bin")
            assert sent.file is not None
            await alice.engine.cancel_file(sent.file.id)
            offer = (await bob.until(MessageAdded)).message.file  # type: ignore[attr-defined]
            await bob.engine.download(offer.id)
            failed = await finished(bob, Direction.INCOMING)
            assert failed.state is FileState.FAILED
            assert failed.error == "the sender cancelled it"
            assert (await alice.engine.files())[0].sent_bytes == 0

    run(body)


def test_deleting_the_message_deletes_its_file_on_both_sides(tmp_path: Path) -> None:
    async def body() -> None:
        async with people(tmp_path, "Alice", "Bob") as (alice, bob):
            to_bob, _ = await ready(tmp_path, alice, bob)
            first = await alice.engine.send_file(to_bob, os.urandom(5000), name="a.bin")
            await finished(bob, Direction.INCOMING)
            bob.events.clear()
            second = await alice.engine.send_file(to_bob, os.urandom(5000), name="b.bin")
            theirs = await finished(bob, Direction.INCOMING)
            assert len(every_file_under(tmp_path / "alice" / "files")) == 2
            assert len(every_file_under(tmp_path / "bob" / "files")) == 2
            # Bob deletes the second for himself: its file goes, the first stays.
            await bob.engine.delete_message(theirs.message_id)
            await asyncio.sleep(0.3)
            assert len(every_file_under(tmp_path / "bob" / "files")) == 1
            assert [f.name for f in await bob.engine.files()] == ["a.bin"]
            # Alice deletes the first for everyone: gone on both sides.
            await alice.engine.delete_message(first.id, for_everyone=True)
            await asyncio.sleep(1.0)
            assert [f.name for f in await alice.engine.files()] == ["b.bin"]
            assert len(every_file_under(tmp_path / "alice" / "files")) == 1
            assert await bob.engine.files() == []
            assert every_file_under(tmp_path / "bob" / "files") == []
            assert second.file is not None

    run(body)


def test_forged_and_replayed_file_frames_change_nothing(tmp_path: Path) -> None:
    async def body() -> None:
        async with people(tmp_path, "Alice", "Bob") as (alice, bob):
            to_bob, to_alice = await ready(tmp_path, alice, bob)
            asks: list[tuple[bytes, bytes]] = []
            pool = bob.engine._routing.pool
            real = pool.send

            async def keep(url: str, mailbox: bytes, payload: bytes, **kw: Any) -> int:
                if is_file_frame(payload) and split_file_frame(payload)[1] is None:
                    asks.append((mailbox, payload))
                return await real(url, mailbox, payload, **kw)

            pool.send = keep  # type: ignore[method-assign]
            data = os.urandom(3 * CHUNK_SIZE)
            await alice.engine.send_file(to_bob, data, name="x.bin")
            await finished(bob, Direction.INCOMING)
            ours = await finished(alice, Direction.OUTGOING)
            assert asks
            mailbox = asks[0][0]
            relay = alice.engine.relay_url
            # A relay replays Bob's asks: nothing is sent again.
            for _, frame in asks:
                await alice.engine.receive(net.Delivered(relay, mailbox, frame))
            await asyncio.sleep(0.3)
            assert (await alice.engine.files())[0].sent_bytes == ours.sent_bytes
            before = alice.engine._ctx.rejections.total
            # Frames it makes up, or spoils, are refused and counted.
            tag = split_file_frame(asks[0][1])[0]
            forged = [
                asks[0][1][:-1] + bytes([asks[0][1][-1] ^ 1]),
                b"\x01\x04" + os.urandom(60),
                b"\x01\x03" + tag + os.urandom(4 + 100),
                b"\x01\x03" + os.urandom(16),
            ]
            for frame in forged:
                await alice.engine.receive(net.Delivered(relay, mailbox, frame))
            assert alice.engine._ctx.rejections.total - before == len(forged)
            assert (await alice.engine.files())[0].sent_bytes == ours.sent_bytes
            assert to_alice

    run(body)


def test_bad_files_are_refused_before_anything_is_stored(tmp_path: Path) -> None:
    async def body() -> None:
        async with people(tmp_path, "Alice", "Bob") as (alice, bob):
            to_bob, _ = await ready(tmp_path, alice, bob)
            with pytest.raises(UserError, match=r"cannot be read|not a file"):
                await alice.engine.send_file(to_bob, tmp_path / "missing.bin")
            with pytest.raises(UserError):
                await alice.engine.send_file(to_bob, tmp_path)  # a folder
            with pytest.raises(UserError, match="thumbnail"):
                await alice.engine.send_file(to_bob, b"x", name="a", thumbnail=b"t" * 20_000)
            with pytest.raises(UserError, match="name"):
                await alice.engine.send_file(to_bob, b"x", name="n" * 300)
            with pytest.raises(UserError, match="no such contact"):
                await alice.engine.send_file(999, b"x", name="a")
            assert await alice.engine.files() == []
            assert every_file_under(tmp_path / "alice" / "files") == []
            assert (await alice.engine.messages(to_bob, 10)) == []

    run(body)


def events_of(person: Person, kind: type) -> list[Event]:
    return [e for e in person.events if isinstance(e, kind)]


def test_pieces_ride_a_connection_of_their_own_closed_when_idle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transfers_module, "LANE_IDLE_S", 0.5)

    async def body() -> None:
        async with people(tmp_path, "Alice", "Bob") as (alice, bob):
            to_bob, _ = await ready(tmp_path, alice, bob)
            url = alice.engine.relay_url
            before = alice.engine._routing.pool.lanes(url)
            await alice.engine.send_file(to_bob, os.urandom(3 * CHUNK_SIZE), name="x.bin")
            await finished(bob, Direction.INCOMING)
            during = alice.engine._routing.pool.lanes(url)
            assert {lane for lane in during - before if lane.endswith("+files")}
            await asyncio.sleep(1.5)
            assert alice.engine._routing.pool.lanes(url) == before
            assert not any(lane.endswith("+files") for lane in bob.engine._routing.pool.lanes(url))

    run(body)


def test_open_unseals_into_the_private_runtime_folder_only_until_closing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    data = content(5000)

    async def body() -> None:
        async with people(tmp_path, "Alice", "Bob") as (alice, bob):
            to_bob, _ = await ready(tmp_path, alice, bob)
            await alice.engine.send_file(to_bob, data, name="../../notes.txt")
            theirs = await finished(bob, Direction.INCOMING)
            monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
            with pytest.raises(UserError, match="Save as"):
                await bob.engine.open_file(theirs.id)  # never a shared temporary folder
            monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
            opened = await bob.engine.open_file(theirs.id)
            assert opened.read_bytes() == data
            assert opened.parent.parent == runtime / "anonchat" / "open"
            assert opened.name == "_.._notes.txt"  # no folders from the sender's name
            assert stat.S_IMODE(opened.stat().st_mode) == 0o600
            assert stat.S_IMODE(opened.parent.stat().st_mode) == 0o700
            await bob.engine.close()
            assert not opened.exists()
            assert not opened.parent.exists()

    run(body)


def test_a_full_disk_fails_the_download_keeping_what_was_held(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(40 * CHUNK_SIZE)
    real_write = transfers_module.Blobs.write_piece
    written: list[int] = []

    def write_piece(fd: int, index: int, sealed: bytes) -> None:
        if len(written) >= 20 and full[0]:
            raise OSError(28, "No space left on device")
        written.append(index)
        real_write(fd, index, sealed)

    full = [True]
    monkeypatch.setattr(transfers_module.Blobs, "write_piece", staticmethod(write_piece))

    async def body() -> None:
        async with people(tmp_path, "Alice", "Bob") as (alice, bob):
            to_bob, _ = await ready(tmp_path, alice, bob)
            tap_sends(alice.engine, lambda frame: frame, delay=0.01)
            await alice.engine.send_file(to_bob, data, name="x.bin")
            failed = await finished(bob, Direction.INCOMING)
            assert failed.state is FileState.FAILED
            assert failed.error == "the file could not be written (No space left on device)"
            assert 0 < failed.received_bytes <= 20 * CHUNK_SIZE
            full[0] = False  # room again
            bob.events.clear()
            await bob.engine.retry_file(failed.id)
            done = await finished(bob, Direction.INCOMING)
            assert done.state is FileState.COMPLETE
            assert await bob.engine.read_file(done.id) == data

    run(body)


def test_asks_out_of_order_or_out_of_time_move_nothing(tmp_path: Path) -> None:
    """What a relay can do with every ask it has seen (and a peer's key, to make the asks a
    relay could only replay): one out of time or with a number already used sends nothing."""

    async def body() -> None:
        async with people(tmp_path, "Alice", "Bob") as (alice, bob):
            to_bob, _ = await ready(tmp_path, alice, bob)
            await bob.engine.set_auto_download(0)  # Bob asks nothing by himself
            sent = await alice.engine.send_file(to_bob, os.urandom(3 * CHUNK_SIZE), name="x")
            assert sent.file is not None
            await bob.until(MessageAdded)
            (up,) = alice.engine._files.transfers._uploads.values()
            keys = up.keys
            ours = await alice.engine._ctx.store.read(lambda r: r.mailboxes.list_ours())
            box = next(b.id for b in ours if b.contact_id == to_bob)
            now = alice.engine._ctx.clock()
            relay = alice.engine.relay_url

            async def ask(body: dict[str, object]) -> int:
                frame = keys.control_frame(True, msgpack.packb(body))
                await alice.engine.receive(net.Delivered(relay, box, frame))
                await asyncio.sleep(0.3)
                return (await alice.engine.file(sent.file.id)).sent_bytes  # type: ignore[union-attr]

            stale = now - 11 * 60 * 1000
            assert await ask({"q": 10, "ts": stale, "w": [0]}) == 0  # too old
            assert await ask({"q": 10, "ts": now + 11 * 60 * 1000, "w": [0]}) == 0  # too new
            assert await ask({"q": 20, "ts": now, "w": [0]}) == CHUNK_SIZE
            assert await ask({"q": 20, "ts": now, "w": [1]}) == CHUNK_SIZE  # replayed number
            assert await ask({"q": 19, "ts": now, "w": [1]}) == CHUNK_SIZE  # an older one
            assert await ask({"q": 30, "ts": now, "w": [1, 2]}) == 3 * CHUNK_SIZE

    run(body)


def test_the_numbers_docs_messages_md_gives() -> None:
    t = transfers_module
    assert (t.WINDOW, t.ASK_MORE_AT, t.MAX_ASKED) == (32, 16, 128)
    assert (t.STALL_S, t.MAX_STALLS) == (8.0, 6)
    assert t.ASK_MAX_AGE_MS == 10 * 60 * 1000
    assert t.LANE_IDLE_S == 30.0
    assert t.FILES_LANE == "+files"


def test_a_file_past_the_contacts_quota_waits_for_download(tmp_path: Path) -> None:
    async def body() -> None:
        async with people(tmp_path, "Alice", "Bob") as (alice, bob):
            to_bob, _ = await ready(tmp_path, alice, bob)
            assert bob.engine.auto_download() == 25  # the default
            await bob.engine.set_quota(1)
            await alice.engine.send_file(to_bob, os.urandom(1_100_000), name="big.bin")
            await bob.until(MessageAdded)
            offer = offered_to(bob)
            await asyncio.sleep(0.3)
            assert (await bob.engine.file(offer.id)).state is FileState.OFFERED
            await alice.engine.send_file(to_bob, os.urandom(10_000), name="small.bin")
            small = await finished(bob, Direction.INCOMING)
            assert (small.name, small.state) == ("small.bin", FileState.COMPLETE)

    run(body)
