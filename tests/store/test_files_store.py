"""Files in the store: the row beside its message (gone with it), the bitmap of pieces held,
what is taken up again after a restart; and files at rest: sealed, read back piece by piece,
refused when short or spoiled, swept when no row names them."""

from __future__ import annotations

import hashlib
import io
import os
import stat
from pathlib import Path

import pytest
import sqlcipher3
from hypothesis import given, settings
from hypothesis import strategies as st

from app.crypto.filecrypt import CHUNK_SIZE, FileKeys, chunk_count, sealed_offset, sealed_size
from app.domain.files import FileState
from app.domain.messages import Direction, Status
from app.store import migrations
from app.store.blobs import BlobError, Blobs
from app.store.errors import NotFound
from app.store.files import NewFile
from app.store.records import NewMessage
from app.store.repos import Repos

KEY, FILE_ID = os.urandom(32), os.urandom(16)


def fresh() -> Repos:
    conn = sqlcipher3.connect(":memory:", isolation_level=None)
    migrations.configure(conn)
    migrations.migrate(conn)
    return Repos(conn)


def with_file(r: Repos, direction: Direction, n: int = 1, size: int = 1000) -> tuple[int, int]:
    contact = r.contacts.add(f"c{n}", b"K%d" % n, 1).id
    stored = r.messages.insert(
        NewMessage(contact, direction, b"m%d" % n, n, "", n, n, Status.DELIVERED)
    )
    assert stored.message_row is not None
    row = r.files.add(
        stored.message_row,
        NewFile(
            contact,
            direction,
            os.urandom(16),
            "a.bin",
            size,
            "application/octet-stream",
            bytes(32),
            bytes(32),
            b"thumb",
            Blobs.new_name(),
            FileState.QUEUED,
        ),
    )
    return stored.message_row, row


def test_a_file_row_goes_with_its_message() -> None:
    r = fresh()
    message, row = with_file(r, Direction.INCOMING)
    assert r.messages.get(message).file == r.files.get(row)
    assert r.files.get(row).thumbnail == b"thumb"
    r.conversation.delete([message])
    with pytest.raises(NotFound):
        r.files.get(row)
    assert r.files.disk_names() == set()


def test_deleting_for_everyone_takes_the_file_and_keeps_the_row() -> None:
    r = fresh()
    message, _row = with_file(r, Direction.INCOMING)
    assert r.conversation.delete_for_everyone(message)
    assert r.messages.get(message).deleted
    assert r.messages.get(message).file is None
    assert r.files.all() == []


def test_held_pieces_state_and_reset() -> None:
    r = fresh()
    _, row = with_file(r, Direction.INCOMING, size=3 * CHUNK_SIZE)
    assert r.files.hold(row, b"\x05", 2 * CHUNK_SIZE, FileState.TRANSFERRING)
    t = r.files.transfer(row)
    assert t.held == b"\x05"
    assert t.info.received_bytes == 2 * CHUNK_SIZE
    assert t.info.state is FileState.TRANSFERRING
    assert r.files.set_state(row, FileState.FAILED, "why")
    assert r.files.get(row).error == "why"
    assert r.files.transfer(row).held == b"\x05"  # kept unless reset
    assert r.files.set_state(row, FileState.FAILED, "again", reset=True)
    assert r.files.transfer(row).held == b""
    assert r.files.get(row).received_bytes == 0
    assert not r.files.set_state(999, FileState.QUEUED)
    assert not r.files.hold(999, b"", 0, FileState.QUEUED)


def test_what_is_taken_up_again_after_a_restart() -> None:
    r = fresh()
    rows = {}
    for n, (direction, state) in enumerate(
        [
            (Direction.INCOMING, FileState.OFFERED),
            (Direction.INCOMING, FileState.QUEUED),
            (Direction.INCOMING, FileState.TRANSFERRING),
            (Direction.INCOMING, FileState.COMPLETE),
            (Direction.INCOMING, FileState.FAILED),
            (Direction.INCOMING, FileState.CANCELLED),
            (Direction.OUTGOING, FileState.QUEUED),
            (Direction.OUTGOING, FileState.TRANSFERRING),
            (Direction.OUTGOING, FileState.COMPLETE),
            (Direction.OUTGOING, FileState.FAILED),
            (Direction.OUTGOING, FileState.CANCELLED),
        ]
    ):
        _, row = with_file(r, direction, n)
        r.files.set_state(row, state)
        rows[row] = (direction, state)
    again = {t.info.id for t in r.files.unfinished()}
    assert again == {
        row
        for row, (direction, state) in rows.items()
        if (direction is Direction.INCOMING and state in (FileState.QUEUED, FileState.TRANSFERRING))
        or (direction is Direction.OUTGOING and state is not FileState.COMPLETE)
    }


def test_outgoing_progress_never_goes_back_and_quota_counts_what_is_fetched() -> None:
    r = fresh()
    _, row = with_file(r, Direction.OUTGOING, size=5000)
    r.files.progress(row, 3000, 2000)
    r.files.progress(row, 4000, 1000)
    info = r.files.get(row)
    assert (info.sent_bytes, info.received_bytes) == (4000, 2000)
    contact = info.contact_id
    assert r.files.held_bytes(contact) == 0  # ours do not count
    _, theirs = with_file(r, Direction.INCOMING, 2, size=7000)
    c2 = r.files.get(theirs).contact_id
    assert r.files.held_bytes(c2) == 7000  # queued: counted
    r.files.set_state(theirs, FileState.OFFERED)
    assert r.files.held_bytes(c2) == 0
    assert r.files.all(c2) == [r.files.get(theirs)]


def seal(tmp_path: Path, data: bytes) -> tuple[Blobs, str, FileKeys, bytes]:
    blobs = Blobs(tmp_path)
    name = blobs.new_name()
    keys: list[FileKeys] = []

    def keys_for(size: int) -> FileKeys:
        keys.append(FileKeys.derive(KEY, FILE_ID, size))
        return keys[0]

    size, digest = blobs.seal(name, data, keys_for)
    assert size == len(data)
    return blobs, name, keys[0], digest


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 3 * CHUNK_SIZE + 5))
def test_a_file_at_rest_is_its_sealed_pieces(
    tmp_path_factory: pytest.TempPathFactory, size: int
) -> None:
    tmp_path = tmp_path_factory.mktemp("blobs")
    data = os.urandom(size)
    blobs, name, keys, digest = seal(tmp_path, data)
    assert digest == hashlib.sha256(data).digest()
    path = blobs.path(name)
    assert path.stat().st_size == sealed_size(size)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(blobs.directory.stat().st_mode) == 0o700
    out = io.BytesIO()
    assert blobs.unseal(name, keys, size, out) == digest
    assert out.getvalue() == data
    count = chunk_count(size)
    pieces = blobs.read_pieces(name, size, list(range(count)))
    assert pieces == [blobs.read_piece(name, size, i) for i in range(count)]
    backwards = list(reversed(range(count)))
    assert blobs.read_pieces(name, size, backwards) == [pieces[i] for i in backwards]
    assert b"".join(pieces) == path.read_bytes()
    # Written back piece by piece, in any order, the file is the same.
    other = Blobs(tmp_path / "other")
    fd = other.open_for_pieces(name)
    Blobs.write_pieces(fd, {i: pieces[i] for i in reversed(range(count))})
    os.close(fd)
    assert other.path(name).read_bytes() == path.read_bytes()


def test_a_short_or_spoiled_file_at_rest_is_refused(tmp_path: Path) -> None:
    data = os.urandom(2 * CHUNK_SIZE + 3)
    blobs, name, keys, _ = seal(tmp_path, data)
    path = blobs.path(name)
    whole = path.read_bytes()
    path.write_bytes(whole[:-1])
    with pytest.raises(BlobError, match="shorter"):
        blobs.unseal(name, keys, len(data), None)
    with pytest.raises(BlobError, match="shorter"):
        blobs.read_piece(name, len(data), 2)
    with pytest.raises(BlobError, match="shorter"):
        blobs.read_pieces(name, len(data), [0, 2])
    spoiled = bytearray(whole)
    spoiled[sealed_offset(1) + 5] ^= 1
    path.write_bytes(bytes(spoiled))
    with pytest.raises(BlobError, match="does not unseal"):
        blobs.unseal(name, keys, len(data), None)
    path.unlink()
    with pytest.raises(BlobError, match="not here"):
        blobs.unseal(name, keys, len(data), None)


def test_a_file_that_changes_while_it_is_sealed_leaves_nothing(tmp_path: Path) -> None:
    source = tmp_path / "grows.bin"
    source.write_bytes(b"x" * 100)
    blobs = Blobs(tmp_path / "profile")

    def keys_for(size: int) -> FileKeys:
        with open(source, "ab") as handle:  # it grows after its size was taken
            handle.write(b"more")
        return FileKeys.derive(KEY, FILE_ID, size)

    with pytest.raises(BlobError, match="changed"):
        blobs.seal(blobs.new_name(), source, keys_for)
    assert list(blobs.directory.iterdir()) == []


def test_the_sweep_deletes_only_what_no_row_names(tmp_path: Path) -> None:
    blobs = Blobs(tmp_path)
    assert blobs.sweep(set()) == 0  # no folder yet
    names = [seal(tmp_path, os.urandom(10))[1] for _ in range(3)]
    (blobs.directory / "stray.part").write_bytes(b"x")
    assert blobs.sweep({names[0]}) == 3
    assert sorted(p.name for p in blobs.directory.iterdir()) == [names[0]]
    blobs.remove(names[0])
    blobs.remove(names[0])  # already gone: nothing happens
    blobs.remove("../../etc/passwd")  # not one of ours: nothing happens
    with pytest.raises(ValueError):
        blobs.path("../x")
    assert list(blobs.directory.iterdir()) == []


def test_every_field_reads_back_as_written() -> None:
    r = fresh()
    for n in range(3):  # rows of other tables first, so no two ids below are equal
        with_file(r, Direction.OUTGOING, 10 + n)
    r.contacts.add("eve", b"KE", 1)
    r.contacts.add("fay", b"KF", 1)
    contact = r.contacts.add("dora", b"KD", 1).id
    for n in range(5):
        r.messages.insert(
            NewMessage(contact, Direction.INCOMING, b"x%d" % n, n, "", 0, 0, Status.DELIVERED)
        )
    stored = r.messages.insert(
        NewMessage(contact, Direction.INCOMING, b"file", 9, "caption", 5, 6, Status.DELIVERED)
    )
    assert stored.message_row is not None
    record = NewFile(
        contact,
        Direction.INCOMING,
        b"I" * 16,
        "photo.png",
        123_456,
        "image/png",
        b"H" * 32,
        b"K" * 32,
        b"T" * 50,
        "ab" * 16,
        FileState.OFFERED,
    )
    row = r.files.add(stored.message_row, record)
    assert len({row, stored.message_row, contact}) == 3
    info = r.files.get(row)
    assert info.id == row
    assert info.message_id == stored.message_row
    assert info.contact_id == contact
    assert info.direction is Direction.INCOMING
    assert (info.name, info.size, info.mime) == ("photo.png", 123_456, "image/png")
    assert info.sha256 == b"H" * 32
    assert info.state is FileState.OFFERED
    assert (info.received_bytes, info.sent_bytes, info.error) == (0, 0, "")
    assert info.thumbnail == b"T" * 50
    assert info.is_image
    t = r.files.transfer(row)
    assert t.info == info
    assert (t.file_id, t.file_key, t.disk_name, t.held) == (b"I" * 16, b"K" * 32, "ab" * 16, b"")
    assert r.files.for_messages([]) == {}
    assert r.files.for_messages([stored.message_row]) == {stored.message_row: info}
    assert "ab" * 16 in r.files.disk_names()
    assert r.files.all(contact) == [info]
    assert len(r.files.all()) == 4
    with pytest.raises(NotFound):
        r.files.transfer(row + 100)
    with pytest.raises(NotFound):
        r.files.get(row + 100)
    # The same file offered twice by one contact is one row.
    with pytest.raises(sqlcipher3.IntegrityError):
        r.files.add(stored.message_row, record)


def test_a_seal_that_fails_leaves_nothing_behind(tmp_path: Path) -> None:
    blobs = Blobs(tmp_path)

    def refuse(size: int) -> FileKeys:
        raise RuntimeError("no keys")

    with pytest.raises(FileNotFoundError):
        blobs.seal(
            blobs.new_name(), tmp_path / "missing", lambda n: FileKeys.derive(KEY, FILE_ID, n)
        )
    with pytest.raises(RuntimeError):
        blobs.seal(blobs.new_name(), b"data", refuse)
    assert list(blobs.directory.iterdir()) == []
    name = blobs.new_name()
    blobs.seal(name, b"once", lambda n: FileKeys.derive(KEY, FILE_ID, n))
    with pytest.raises(FileExistsError):  # never over a file at rest
        blobs.seal(name, b"twice", lambda n: FileKeys.derive(KEY, FILE_ID, n))
    assert [p.name for p in blobs.directory.iterdir()] == [name]


def test_names_and_modes_of_files_coming_in(tmp_path: Path) -> None:
    blobs = Blobs(tmp_path)
    for bad in ("A" * 32, "a" * 31, "a" * 33, "g" * 32, "../" + "a" * 29):
        with pytest.raises(ValueError):
            blobs.path(bad)
    name = blobs.new_name()
    assert len(name) == 32
    assert blobs.path(name) == blobs.directory / name
    fd = blobs.open_for_pieces(name)
    os.close(fd)
    assert stat.S_IMODE(blobs.path(name).stat().st_mode) == 0o600
    assert stat.S_IMODE(blobs.directory.stat().st_mode) == 0o700


def test_a_file_that_shrinks_while_it_is_sealed_leaves_nothing(tmp_path: Path) -> None:
    source = tmp_path / "shrinks.bin"
    source.write_bytes(b"x" * 100)
    blobs = Blobs(tmp_path / "profile")

    def keys_for(size: int) -> FileKeys:
        source.write_bytes(b"x" * 50)  # cut short after its size was taken
        return FileKeys.derive(KEY, FILE_ID, size)

    with pytest.raises(BlobError, match="changed"):
        blobs.seal(blobs.new_name(), source, keys_for)
    assert list(blobs.directory.iterdir()) == []


def test_file_records_are_frozen() -> None:
    import dataclasses

    record = NewFile(1, Direction.INCOMING, b"", "", 0, "", b"", b"", b"", "", FileState.QUEUED)
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.name = "other"  # type: ignore[misc]
    r = fresh()
    _, row = with_file(r, Direction.INCOMING)
    with pytest.raises(dataclasses.FrozenInstanceError):
        r.files.transfer(row).held = b"\xff"  # type: ignore[misc]
