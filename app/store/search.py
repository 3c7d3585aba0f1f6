"""Full-text search over message bodies (FTS5), newest first, with snippets.

The user's text never reaches FTS5 as syntax: each word becomes a quoted string (quotes
doubled), the last one a prefix, all ANDed. So `"`, `*`, `-`, `:`, `(`, `NEAR`, `AND` are
just text to look for.
"""

# Column lists below are module constants; every value is bound as a parameter.
# ruff: noqa: S608

from __future__ import annotations

from typing import Any

from app.domain.messages import SearchHit

from .message_rows import MESSAGE_COLS, message_from_row
from .messages import index_for_search

# Snippet highlight markers: control characters a message body will not contain, so the UI
# can split on them unambiguously.
MARK_START = "\x02"
MARK_END = "\x03"
_MAX_TERMS = 16


def fts_query(text: str) -> str | None:
    """An FTS5 MATCH expression for the user's words, or None when there is nothing to find."""
    words = [w for w in text.replace("\x00", " ").split() if any(c.isalnum() for c in w)]
    if not words:
        return None
    quoted = ['"' + w.replace('"', '""') + '"' for w in words[:_MAX_TERMS]]
    quoted[-1] += "*"
    return " ".join(quoted)


def search(
    conn: Any,
    text: str,
    limit: int = 50,
    contact_id: int | None = None,
    before: int | None = None,
) -> list[SearchHit]:
    """Messages whose body matches every word of text, newest first (every message stored:
    those waiting for the next indexing batch are indexed first).

    `before` pages further back: pass the last hit's message id.
    """
    query = fts_query(text)
    if query is None or limit <= 0:
        return []
    index_for_search(conn)  # the last messages stored, not yet in a batch
    cols = ", ".join(f"m.{c.strip()}" for c in MESSAGE_COLS.split(","))
    sql = (
        f"SELECT {cols}, snippet(messages_fts, 0, ?, ?, '…', 12) "
        "FROM messages_fts JOIN messages AS m ON m.id = messages_fts.rowid "
        "WHERE messages_fts MATCH ?"
    )
    args: list[object] = [MARK_START, MARK_END, query]
    if before is not None:
        sql += " AND messages_fts.rowid < ?"
        args.append(before)
    if contact_id is not None:
        sql += " AND m.contact_id = ?"
        args.append(contact_id)
    sql += " ORDER BY messages_fts.rowid DESC LIMIT ?"
    args.append(limit)
    rows = conn.execute(sql, args).fetchall()
    return [SearchHit(message_from_row(r[:-1]), str(r[-1])) for r in rows]
