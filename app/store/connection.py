"""Opening, checking and re-keying one SQLCipher database with a raw key.

The only module that imports sqlcipher3. The raw key is handed to SQLCipher as
`x'<hex>'`, so SQLCipher's own PBKDF2 does not run (Argon2id already did the slow part).
SQLCipher's own logging is switched off: a wrong key must not print to stderr.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import sqlcipher3

from app.crypto.passphrase import PageHmac

from . import migrations
from .errors import CorruptDatabase, WrongPassphrase

Connection = Any  # sqlcipher3 ships no type information
DatabaseError = sqlcipher3.DatabaseError
IntegrityError = sqlcipher3.IntegrityError

_silenced = threading.Lock()
_silent = False


def silence_library_log() -> None:
    """Turn SQLCipher's process-wide log off (it would print decrypt failures on stderr)."""
    global _silent
    with _silenced:
        if not _silent:
            conn = sqlcipher3.connect(":memory:")
            try:
                conn.execute("PRAGMA cipher_log_level = NONE").fetchall()
            finally:
                conn.close()
            _silent = True


def _key_pragma(name: str, key: bytes) -> str:
    if len(key) != 32:
        raise ValueError("a raw database key is 32 bytes")
    return f"PRAGMA {name} = \"x'{key.hex()}'\""


def open_keyed(path: Path, key: bytes, page_hmac: PageHmac) -> Connection:
    """Open and key the database, proving the key by reading the schema; nothing is written.

    `page_hmac` is the key header's: the HMAC the pages were (or will be) written with.

    Raises WrongPassphrase when the key does not decrypt page 1, CorruptDatabase when the file
    decrypts but is damaged.
    """
    silence_library_log()
    conn = sqlcipher3.connect(str(path), isolation_level=None, check_same_thread=False)
    try:
        conn.execute(_key_pragma("key", key)).fetchall()
        conn.execute(f"PRAGMA cipher_hmac_algorithm = HMAC_{page_hmac.name}").fetchall()
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlcipher3.DatabaseError as exc:
        conn.close()
        if "not a database" in str(exc):
            raise WrongPassphrase() from None
        raise CorruptDatabase("the database file is damaged") from None
    return conn


def open_reader(path: Path, key: bytes, page_hmac: PageHmac) -> Connection:
    """A second connection that only reads, beside the store's own: in WAL mode a long read
    transaction on it (a backup's snapshot) never holds up the store's writes."""
    conn = open_keyed(path, key, page_hmac)
    try:
        conn.execute("PRAGMA query_only = ON").fetchall()
        conn.execute("PRAGMA busy_timeout = 5000").fetchall()
    except sqlcipher3.DatabaseError:
        conn.close()
        raise CorruptDatabase("the database file is damaged") from None
    return conn


def prepare(conn: Connection, target: int = migrations.LATEST) -> None:
    """Pragmas, schema version check and pending migrations (up to `target`, the latest
    unless a restore rebuilds an older backup first) on a freshly keyed connection."""
    try:
        migrations.check_version(conn)
        migrations.configure(conn)
        migrations.migrate(conn, target)
    except sqlcipher3.DatabaseError as exc:
        raise CorruptDatabase("the database file is damaged") from exc


def rekey(conn: Connection, new_key: bytes) -> None:
    """Re-encrypt every page under new_key in one transaction (SQLCipher keeps the salt)."""
    conn.execute(_key_pragma("rekey", new_key)).fetchall()


def integrity_problems(conn: Connection) -> list[str]:
    """Findings of integrity_check and cipher_integrity_check; empty when the file is sound."""
    rows = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
    problems = [r for r in rows if r != "ok"]
    problems += [str(r[0]) for r in conn.execute("PRAGMA cipher_integrity_check").fetchall()]
    return problems


def checkpoint(conn: Connection) -> None:
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
