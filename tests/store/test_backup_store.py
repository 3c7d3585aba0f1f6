"""A profile into a backup file and back, on real SQLCipher files (app/store/backup.py and
backup_restore.py): every table of the allowlist comes back row for row and nothing else
does; what a restored profile cannot keep is settled; an older schema's backup is rebuilt
and migrated, a newer one refused; the file holds no plaintext; the backup reads a snapshot
beside the store's own writes; what no profile keeps is refused even under the right
passphrase; the scheduled folder's pruning touches only its own names."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import msgpack
import pytest

from app.crypto.backupstream import BackupError, BackupWriter, WrongBackupPassphrase
from app.store import backup, backup_restore, connection, migrations, vault
from app.store.blobs import Blobs
from app.store.errors import SchemaTooNew
from app.store.paths import ProfilePaths
from app.store.search import search
from tests.store.conftest import FAST, PASS

BPASS = "backup passphrase"
LEFT_OUT = ("address_mailbox", "backup.")
IDENTITY = b"\x01" + bytes(range(64))
SECRET = "the plaintext nobody may find in a backup file"
BLOB = os.urandom(70_000)  # a file at rest: already sealed bytes, copied as they are
DISK = "ab" * 16
EXCLUDED = (
    "sessions",
    "our_mailboxes",
    "handshake_links",
    "outbox",
    "group_copies",
)


def fill(conn: Any, profile: ProfilePaths) -> None:
    """One row or more in every table, the excluded ones too."""
    k = bytes

    def ins(sql: str, *args: Any) -> None:
        conn.execute(sql, args)

    ins("INSERT INTO profile VALUES (1, ?, 'Alice', 1000)", IDENTITY)
    for key, value in (
        ("relay_url", "ws://127.0.0.1:9"),
        ("muted:1", "1"),
        ("seq:1", "7"),
        ("address_mailbox", "aa" * 32),
        ("backup.folder", "/media/stick"),
        ("backup.passphrase", "scheduled passphrase"),
    ):
        ins("INSERT INTO settings VALUES (?, ?)", key, value)
    contacts = [
        (1, "Bob", k([1]) * 64, 1, "contact", "person", k([0x11]) * 32, k([0x22]) * 32),
        (2, "Carol", k([2]) * 64, 0, "contact", "person", None, None),
        (3, "Dave", k([3]) * 64, 0, "ended", "person", None, None),
        (4, "Friends", k([4]) * 16, 0, "contact", "group", None, None),
        (5, "Erin", k([5]) * 64, 0, "contact", "member", k([0x55]) * 32, k([0x66]) * 32),
    ]
    for cid, name, keys, verified, state, kind, ours, theirs in contacts:
        ins(
            "INSERT INTO contacts (id, display_name, identity_keys, verified, created_at, "
            "state, kind, rejoin_ours, rejoin_theirs, timer_s, timer_at) "
            "VALUES (?, ?, ?, ?, 2000, ?, ?, ?, ?, 60, 5)",
            cid,
            name,
            keys,
            verified,
            state,
            kind,
            ours,
            theirs,
        )
    ins("INSERT INTO contact_key_history VALUES (1, 1, ?, 1500)", k([9]) * 64)
    ins("INSERT INTO blocked_keys VALUES (?, 2500)", k([3]) * 64)
    for cid in (1, 2, 5):
        ins("INSERT INTO their_mailboxes VALUES (?, 'ws://r', ?, 3000, '')", k([cid]) * 32, cid)
    messages = [
        (1, 1, 0, SECRET, "delivered", 0, None),
        (2, 1, 1, "our answer", "read", 1, None),
        (3, 1, 0, "a picture", "delivered", 1, None),
        (4, 4, 1, "to the group", "delivered", 1, k([1]) * 64),
        (5, 3, 0, "from before the block", "delivered", 1, None),
    ]
    for mid, cid, direction, body, status, is_read, author in messages:
        ins(
            "INSERT INTO messages (id, contact_id, direction, msg_id, sender_seq, body, "
            "sent_at, received_at, status, is_read, author_keys) "
            "VALUES (?, ?, ?, ?, ?, ?, 4000, 4001, ?, ?, ?)",
            mid,
            cid,
            direction,
            k([mid]) * 16,
            mid,
            body,
            status,
            is_read,
            author,
        )
    ins("INSERT INTO reactions VALUES (1, 1, '👍', 4100)")
    ins("INSERT INTO received_updates VALUES (1, ?, 4200)", k([7]) * 16)
    ins(
        "INSERT INTO files (id, message_id, contact_id, direction, file_id, name, size, mime, "
        "sha256, file_key, thumbnail, disk_name, state, held, received_bytes) "
        "VALUES (1, 3, 1, 0, ?, 'cat.jpg', 69984, 'image/jpeg', ?, ?, ?, ?, 'complete', ?, "
        "69984)",
        k([8]) * 16,
        k([6]) * 32,
        k([0x77]) * 32,
        b"thumb",
        DISK,
        b"\x03",
    )
    Blobs(profile.directory).ensure()
    (Blobs(profile.directory).path(DISK)).write_bytes(BLOB)
    ins("INSERT INTO groups VALUES (4, ?, 'joined', NULL, NULL, 3, 2)", k([4]) * 16)
    ins(
        "INSERT INTO group_members VALUES (4, ?, 'Bob', 1, 'member', 'code', 1, 1)",
        k([1]) * 64,
    )
    ins("INSERT INTO group_events VALUES (1, 4, ?, 1, x'01', x'02', 1)", k([1]) * 64)
    ins("INSERT INTO group_posts VALUES (4, ?, 1, 4, x'03', x'04')", k([1]) * 64)
    # What stays behind: sessions, mailboxes of ours, handshakes, the outbox, copies.
    ins("INSERT INTO sessions VALUES (1, ?, 5000)", b"ratchet state")
    ins(
        "INSERT INTO our_mailboxes VALUES (?, ?, 'ws://r', 'contact', 1, 5000, '')",
        k([0xA1]) * 32,
        b"mailbox private key",
    )
    ins("INSERT INTO handshake_links VALUES (?, 1, NULL, 5000)", k([0xB1]) * 32)
    ins(
        "INSERT INTO outbox (contact_id, message_id, kind, mailbox_id, relay_url, ciphertext, "
        "next_try, created_at) VALUES (1, 2, 'message', ?, 'ws://r', x'00', 0, 5000)",
        k([1]) * 32,
    )
    ins("INSERT INTO group_copies VALUES (?, 4, ?, 1)", k([0xC1]) * 16, k([1]) * 64)


def table_rows(conn: Any, table: str) -> list[tuple[Any, ...]]:
    cols = [
        r[1]
        for r in conn.execute(f'PRAGMA table_info("{table}")')
        if r[1] not in backup.LEFT_OUT_COLUMNS.get(table, ())
    ]
    names = ", ".join(f'"{c}"' for c in cols)
    return sorted(
        (tuple(r) for r in conn.execute(f'SELECT {names} FROM "{table}"')),
        key=repr,
    )


def make_profile(path: Path) -> tuple[ProfilePaths, vault.Unlocked]:
    profile = ProfilePaths(path)
    opened = vault.create(profile, PASS, FAST)
    opened.conn.execute("BEGIN")
    fill(opened.conn, profile)
    opened.conn.execute("COMMIT")
    return profile, opened


def back_up(
    profile: ProfilePaths, key: bytes, target: Path, include_files: bool = True
) -> backup.Written:
    return backup.write_backup(
        profile,
        key,
        target,
        BPASS,
        FAST,
        include_files=include_files,
        settings_left_out=LEFT_OUT,
        made_at=123_456,
    )


@pytest.fixture
def made(tmp_path: Path) -> Any:
    profile, opened = make_profile(tmp_path / "alice")
    file = tmp_path / "alice.backup"
    written = back_up(profile, opened.key, file)
    yield profile, opened, file, written
    opened.conn.close()


def restore(
    tmp_path: Path, file: Path, name: str = "restored"
) -> tuple[Any, backup_restore.Restored]:
    target = ProfilePaths(tmp_path / name)
    unlocked, restored = backup_restore.restore(target, file, BPASS, "new passphrase", FAST)
    return unlocked, restored


def test_every_allowlisted_table_comes_back_row_for_row(made: Any, tmp_path: Path) -> None:
    _, opened, file, written = made
    assert (written.messages, written.files, written.made_at) == (5, 1, 123_456)
    unlocked, restored = restore(tmp_path, file)
    try:
        got = unlocked.conn
        for table in backup.TABLES:
            want = table_rows(opened.conn, table)
            if table == "settings":
                want = [r for r in want if r[0] != "address_mailbox"]
                want = [r for r in want if not r[0].startswith("backup.")]
            assert table_rows(got, table) == want, table
            assert want, f"the test fills {table}"
        for table in EXCLUDED:
            assert table_rows(opened.conn, table), f"the test fills {table}"
            assert table_rows(got, table) == [], table
        assert table_rows(got, "unread_counts") == table_rows(opened.conn, "unread_counts")
        rejoin = got.execute("SELECT id, rejoin_ours, rejoin_due FROM contacts ORDER BY id")
        assert list(rejoin) == [
            (1, None, 1),
            (2, None, 0),
            (3, None, 0),
            (4, None, 0),
            (5, None, 1),
        ]
        assert migrations.schema_version(got) == migrations.LATEST
        assert Blobs(tmp_path / "restored").path(DISK).read_bytes() == BLOB
        assert restored == backup_restore.Restored(
            contacts=3,
            messages=5,
            files=1,
            groups=1,
            requests_dropped=0,
            not_reconnected=1,
            files_left_out=0,
            made_at=123_456,
            schema=migrations.LATEST,
        )
        # Indexed before the first search, not during the restore.
        assert got.execute("SELECT indexed_upto FROM search_progress").fetchone()[0] == 0
        assert [h.message.id for h in search(got, "plaintext nobody")] == [1]
    finally:
        unlocked.conn.close()


def test_the_restored_profile_opens_with_its_own_passphrase(made: Any, tmp_path: Path) -> None:
    _, _, file, _ = made
    unlocked, _ = restore(tmp_path, file)
    unlocked.conn.close()
    target = ProfilePaths(tmp_path / "restored")
    again = vault.unlock(target, "new passphrase")
    try:
        assert again.conn.execute("SELECT identity FROM profile").fetchone()[0] == IDENTITY
    finally:
        again.conn.close()
    with pytest.raises(vault.WrongPassphrase):
        vault.unlock(target, PASS)


def test_the_file_holds_no_plaintext_and_no_key(made: Any) -> None:
    _, _, file, _ = made
    data = file.read_bytes()
    for secret in (
        SECRET.encode(),
        IDENTITY,
        IDENTITY[1:33],
        IDENTITY[33:],
        bytes([0x77]) * 32,  # a file's key
        b"cat.jpg",
        b"Alice",
        BLOB[:64],  # the sealed bytes are sealed again
    ):
        assert secret not in data
    assert not [p for p in file.parent.iterdir() if ".tmp-" in p.name]


def test_what_a_restored_profile_cannot_keep_is_settled(tmp_path: Path) -> None:
    profile, opened = make_profile(tmp_path / "alice")
    conn = opened.conn
    conn.execute(
        "INSERT INTO contacts (id, display_name, identity_keys, created_at, state) "
        "VALUES (9, 'Mallory', ?, 1, 'request')",
        (bytes([9]) * 64,),
    )
    for mid, cid, direction, status in ((10, 9, 0, "delivered"), (11, 2, 1, "queued")):
        conn.execute(
            "INSERT INTO messages (id, contact_id, direction, msg_id, sender_seq, body, "
            "sent_at, status) VALUES (?, ?, ?, ?, 1, 'x', 1, ?)",
            (mid, cid, direction, bytes([mid]) * 16, status),
        )
    conn.execute("UPDATE groups SET code_mailbox = ?", (bytes(32),))
    file = tmp_path / "b"
    back_up(profile, opened.key, file)
    opened.conn.close()
    unlocked, restored = restore(tmp_path, file)
    got = unlocked.conn
    try:
        assert got.execute("SELECT count(*) FROM contacts WHERE id = 9").fetchone()[0] == 0
        assert got.execute("SELECT count(*) FROM messages WHERE id = 10").fetchone()[0] == 0
        assert got.execute("SELECT status FROM messages WHERE id = 11").fetchone()[0] == "failed"
        assert got.execute("SELECT status FROM messages WHERE id = 2").fetchone()[0] == "read"
        assert got.execute("SELECT code_mailbox FROM groups").fetchone()[0] is None
        assert (restored.requests_dropped, restored.messages) == (1, 6)
    finally:
        got.close()


def test_without_files_their_rows_stay_and_say_why(made: Any, tmp_path: Path) -> None:
    profile, opened, _, _ = made
    file = tmp_path / "nofiles"
    written = back_up(profile, opened.key, file, include_files=False)
    assert written.files == 0
    assert BLOB[:1000] not in file.read_bytes()
    assert file.stat().st_size < len(BLOB)
    unlocked, restored = restore(tmp_path, file)
    try:
        state, error = unlocked.conn.execute("SELECT state, error FROM files").fetchone()
        assert state == "failed"
        assert "left out of the backup" in error
        assert (restored.files, restored.files_left_out) == (0, 1)
        assert not Blobs(tmp_path / "restored").path(DISK).exists()
    finally:
        unlocked.conn.close()


def older_profile(path: Path, version: int) -> tuple[ProfilePaths, bytes]:
    """A profile whose database stopped at `version` (as one made by an older build)."""
    profile = ProfilePaths(path)
    opened = vault.create(profile, PASS, FAST)
    page_hmac = vault.read_header(profile).page_hmac
    opened.conn.close()
    for side in ("", "-wal", "-shm"):
        Path(str(profile.database) + side).unlink(missing_ok=True)
    profile.database.touch(mode=0o600)
    conn = connection.open_keyed(profile.database, opened.key, page_hmac)
    connection.prepare(conn, version)
    conn.execute("INSERT INTO profile VALUES (1, ?, 'Alice', 1)", (IDENTITY,))
    conn.execute(
        "INSERT INTO contacts (id, display_name, identity_keys, verified, created_at) "
        "VALUES (1, 'Bob', ?, 1, 2)",
        (bytes([1]) * 64,),
    )
    conn.execute("INSERT INTO their_mailboxes VALUES (?, 'ws://r', 1, 3, '')", (bytes(32),))
    conn.execute(
        "INSERT INTO messages (id, contact_id, direction, msg_id, sender_seq, body, sent_at, "
        "status) VALUES (1, 1, 0, ?, 1, ?, 4, 'delivered')",
        (bytes(16), SECRET),
    )
    conn.close()
    return profile, opened.key


def test_a_backup_of_an_older_schema_is_rebuilt_and_migrated(tmp_path: Path) -> None:
    profile, key = older_profile(tmp_path / "old", 12)
    file = tmp_path / "old.backup"
    back_up(profile, key, file)
    unlocked, restored = restore(tmp_path, file)
    got = unlocked.conn
    try:
        assert restored.schema == 12
        assert migrations.schema_version(got) == migrations.LATEST
        row = got.execute("SELECT display_name, verified, kind, rejoin_due FROM contacts")
        assert row.fetchone() == ("Bob", 1, "person", 0)  # no rejoin prekey in version 12
        assert restored.not_reconnected == 1
        assert [h.message.body for h in search(got, "nobody may")] == [SECRET]
    finally:
        got.close()


def test_a_backup_of_a_newer_schema_is_refused(tmp_path: Path) -> None:
    profile, opened = make_profile(tmp_path / "alice")
    opened.conn.execute(f"PRAGMA user_version = {migrations.LATEST + 1}")
    file = tmp_path / "newer"
    back_up(profile, opened.key, file)
    opened.conn.close()
    with pytest.raises(SchemaTooNew, match="newer AnonChat"):
        restore(tmp_path, file)
    assert not (tmp_path / "restored").exists()


@pytest.mark.parametrize("damage", ["flip", "cut", "passphrase"])
def test_a_damaged_backup_refuses_before_anything_is_kept(
    made: Any, tmp_path: Path, damage: str
) -> None:
    _, _, file, _ = made
    data = bytearray(file.read_bytes())
    if damage == "flip":
        data[len(data) - 100] ^= 1
    elif damage == "cut":
        del data[-20:]
    file.write_bytes(bytes(data))
    target = ProfilePaths(tmp_path / "restored")
    word = "another passphrase" if damage == "passphrase" else BPASS
    with pytest.raises(BackupError) as caught:
        backup_restore.restore(target, file, word, "new passphrase", FAST)
    if damage == "passphrase":
        assert isinstance(caught.value, WrongBackupPassphrase)
        assert not target.directory.exists()  # refused before the profile was made


def test_the_backup_reads_a_snapshot_beside_the_store_s_own_writes(tmp_path: Path) -> None:
    profile, opened = make_profile(tmp_path / "alice")
    conn = opened.conn
    conn.execute("BEGIN")
    for i in range(100, 2100):
        conn.execute(
            "INSERT INTO messages (id, contact_id, direction, msg_id, sender_seq, body, "
            "sent_at, status) VALUES (?, 2, 0, ?, ?, ?, 1, 'delivered')",
            (i, i.to_bytes(16, "big"), i, "words " * 40),
        )
    conn.execute("COMMIT")
    wrote_meanwhile = threading.Event()

    def progress(done: int, total: int) -> None:
        if not wrote_meanwhile.is_set():  # the store writes while the backup reads
            conn.execute(
                "INSERT INTO messages (id, contact_id, direction, msg_id, sender_seq, body, "
                "sent_at, status) VALUES (9999, 2, 0, ?, 1, 'later', 1, 'delivered')",
                (bytes(16),),
            )
            wrote_meanwhile.set()

    file = tmp_path / "snap"
    written = backup.write_backup(
        profile,
        opened.key,
        file,
        BPASS,
        FAST,
        include_files=True,
        settings_left_out=LEFT_OUT,
        made_at=1,
        progress=progress,
    )
    conn.close()
    assert wrote_meanwhile.is_set()
    assert written.messages == 2005
    unlocked, restored = restore(tmp_path, file)
    try:
        assert restored.messages == 2005
        assert (
            unlocked.conn.execute("SELECT count(*) FROM messages WHERE id = 9999").fetchone()[0]
            == 0
        )
    finally:
        unlocked.conn.close()


def test_a_stopped_backup_leaves_nothing(made: Any, tmp_path: Path) -> None:
    profile, opened, _, _ = made
    stop = threading.Event()
    stop.set()
    target = tmp_path / "stopped"
    with pytest.raises(backup.BackupCancelled):
        backup.write_backup(
            profile,
            opened.key,
            target,
            BPASS,
            FAST,
            include_files=True,
            settings_left_out=LEFT_OUT,
            made_at=1,
            cancel=stop,
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alice", "alice.backup"]


def test_pruning_keeps_the_newest_of_its_own_names_only(tmp_path: Path) -> None:
    names = [f"anonchat-alice-2025010{d}-120000.backup" for d in range(1, 8)]
    others = ["anonchat-alice-2-20250101-120000.backup", "notes.txt", "anonchat-bob-x.backup"]
    for name in names + others:
        (tmp_path / name).write_bytes(b"x")
    partial = tmp_path / f".{names[-1]}.tmp-0123abcd"
    partial.write_bytes(b"half")

    def ours(name: str) -> bool:
        return name in names

    assert backup.sweep_partial(tmp_path, ours) == 1
    assert backup.prune(tmp_path, ours, 3) == names[:4]
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted(names[4:] + others)


META = {"kind": "anonchat-profile", "schema": migrations.LATEST, "made_at": 1, "files": True}
PROFILE_COLS = ["id", "identity", "display_name", "created_at"]
PROFILE = [{"table": "profile", "columns": PROFILE_COLS, "rows": 1}, [1, IDENTITY, "A", 1]]
END = {"end": True, "blobs": 0}
CONTACT_COLS = ["id", "display_name", "identity_keys", "created_at"]
MESSAGE_COLS = [
    "id",
    "contact_id",
    "direction",
    "msg_id",
    "sender_seq",
    "body",
    "sent_at",
    "status",
]
FILE_COLS = [
    "id",
    "message_id",
    "contact_id",
    "direction",
    "file_id",
    "name",
    "size",
    "mime",
    "sha256",
    "file_key",
    "disk_name",
    "state",
]


def with_file(disk_name: str) -> list[Any]:
    return [
        *PROFILE,
        {"table": "contacts", "columns": CONTACT_COLS, "rows": 1},
        [1, "Bob", bytes(64), 1],
        {"table": "messages", "columns": MESSAGE_COLS, "rows": 1},
        [1, 1, 0, bytes(16), 1, "", 1, "delivered"],
        {"table": "files", "columns": FILE_COLS, "rows": 1},
        [1, 1, 1, 0, bytes(16), "f", 1, "x", bytes(32), bytes(32), disk_name, "complete"],
    ]


FORGED: dict[str, list[Any]] = {
    "a table never backed up": [
        META,
        {"table": "sessions", "columns": ["contact_id", "state", "updated_at"], "rows": 0},
        *PROFILE,
        END,
    ],
    "a column never backed up": [
        META,
        *PROFILE,
        {"table": "contacts", "columns": [*CONTACT_COLS, "rejoin_ours"], "rows": 0},
        END,
    ],
    "a column that is SQL": [
        META,
        {"table": "profile", "columns": ['id") VALUES (1); DROP TABLE messages; --'], "rows": 0},
        END,
    ],
    "a number no column holds": [
        META,
        {"table": "profile", "columns": PROFILE_COLS, "rows": 1},
        [1, IDENTITY, "A", 2**64 - 1],
        END,
    ],
    "a value of no column type": [
        META,
        {"table": "profile", "columns": PROFILE_COLS, "rows": 1},
        [1, IDENTITY, ["A"], 1],
        END,
    ],
    "fewer rows than it says": [
        META,
        {"table": "profile", "columns": PROFILE_COLS, "rows": 2},
        [1, IDENTITY, "A", 1],
        END,
    ],
    "a table twice": [META, *PROFILE, *PROFILE, END],
    "a row that breaks a reference": [
        META,
        *PROFILE,
        {"table": "messages", "columns": MESSAGE_COLS, "rows": 1},
        [1, 77, 0, bytes(16), 1, "", 1, "delivered"],
        END,
    ],
    "no profile": [META, END],
    "no end": [META, *PROFILE],
    "records after the end": [META, *PROFILE, END, {"table": "settings"}],
    "another kind": [{**META, "kind": "something"}, *PROFILE, END],
    "a file no row names": [META, *PROFILE, {"blob": DISK}, b"x", None, END],
    "a file outside the folder": [
        META,
        *with_file("../../outside"),
        {"blob": "../../outside"},
        b"x",
        None,
        {"end": True, "blobs": 1},
    ],
    "a wrong count of files": [META, *with_file(DISK), {"blob": DISK}, b"x", None, END],
}


@pytest.mark.parametrize("case", sorted(FORGED))
def test_a_backup_holding_what_no_profile_keeps_is_refused(tmp_path: Path, case: str) -> None:
    """Sealed under the right passphrase (whoever has it can write anything): still only
    the allowlist's tables and columns, as values, in order, go in."""
    writer = BackupWriter(BPASS, FAST)
    packer = msgpack.Packer(use_bin_type=True)
    body = b"".join(writer.write(packer.pack(record)) for record in FORGED[case])
    file = tmp_path / "forged"
    file.write_bytes(writer.head() + body + writer.finish())
    with pytest.raises(backup_restore.BadBackup):
        restore(tmp_path, file)
    assert not (tmp_path.parent / "outside").exists()
