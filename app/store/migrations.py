"""Numbered schema migrations shipped as package data, and the connection pragmas.

Driver-agnostic (any DB-API connection with sqlite3's interface in autocommit mode), so the
benchmark can run the very same schema on plain sqlite3. The schema version is SQLite's
`user_version`, set in the same transaction as the migration it records.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

from .errors import SchemaTooNew

# Same on the encrypted store and the benchmark's plain baseline.
PRAGMAS: tuple[str, ...] = (
    "PRAGMA journal_mode = WAL",
    "PRAGMA synchronous = FULL",
    "PRAGMA secure_delete = ON",
    "PRAGMA temp_store = MEMORY",
    "PRAGMA foreign_keys = ON",
    "PRAGMA busy_timeout = 5000",
)

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


def available() -> tuple[Migration, ...]:
    """All migrations in version order; numbering must be 1, 2, 3... without gaps."""
    found: list[Migration] = []
    for entry in resources.files("app.store").joinpath("migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise RuntimeError("migration files are not numbered 0001.. without gaps")
    return tuple(found)


MIGRATIONS = available()
LATEST = MIGRATIONS[-1].version


def configure(conn: Any) -> None:
    """Apply the store's pragmas to an open connection."""
    for pragma in PRAGMAS:
        conn.execute(pragma).fetchall()


def schema_version(conn: Any) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def check_version(conn: Any) -> int:
    """The stored version, or SchemaTooNew when this build cannot read it."""
    version = schema_version(conn)
    if version > LATEST:
        raise SchemaTooNew(
            f"this profile uses schema version {version}; this build knows up to {LATEST}"
        )
    return version


def migrate(conn: Any, target: int = LATEST) -> list[int]:
    """Apply every migration above the stored version up to target, one transaction each."""
    current = check_version(conn)
    applied: list[int] = []
    for m in MIGRATIONS:
        if current < m.version <= target:
            script = f"BEGIN IMMEDIATE;\n{m.sql}\nPRAGMA user_version = {m.version};\nCOMMIT;"
            try:
                conn.executescript(script)
            except Exception:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            applied.append(m.version)
    return applied
