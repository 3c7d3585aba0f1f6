"""A message as the store reads it: its columns, its row turned into a `Message`, and what a
conversation shows with it (reactions, the quoted message) read for a whole page at once."""

# Column lists below are module constants; every value is bound as a parameter.
# ruff: noqa: S608

from __future__ import annotations

import dataclasses
from typing import Any

from app.domain.messages import (
    Direction,
    Message,
    MessageKind,
    MessageRow,
    Quote,
    Reaction,
    Status,
    WireId,
)

from .files import FileRepo

MESSAGE_COLS = (
    "id, contact_id, direction, msg_id, sender_seq, body, sent_at, received_at, status, "
    "is_read, kind, reply_to, edited_at, deleted, timer_s, expires_at, delivered_at, read_at, "
    "author_keys"
)
QUOTE_CHARS = 300  # what a quote shows of the message it quotes


def message_from_row(row: Any) -> Message:
    return Message(
        MessageRow(row[0]),
        row[1],
        Direction(row[2]),
        WireId(bytes(row[3])),
        row[4],
        row[5],
        row[6],
        row[7],
        Status(row[8]),
        bool(row[9]),
        MessageKind(row[10]),
        None if row[11] is None else WireId(bytes(row[11])),
        row[12],
        bool(row[13]),
        row[14],
        row[15],
        row[16],
        row[17],
        author_keys=None if row[18] is None else bytes(row[18]),
    )


def with_extras(conn: Any, messages: list[Message]) -> list[Message]:
    """The messages with their reactions, their files and, for replies, the message quoted:
    three indexed queries for the whole page."""
    if not messages:
        return messages
    rows = [m.id for m in messages]
    marks = ",".join("?" * len(rows))
    reactions: dict[int, list[Reaction]] = {}
    for row, from_me, emoji in conn.execute(
        f"SELECT message_id, from_me, emoji FROM reactions WHERE message_id IN ({marks}) "
        "AND emoji != '' ORDER BY message_id, from_me",
        rows,
    ):
        reactions.setdefault(row, []).append(Reaction(bool(from_me), emoji))
    quotes: dict[tuple[int, bytes], Quote] = {}
    for m in messages:
        if m.reply_to is None or (m.contact_id, m.reply_to) in quotes:
            continue
        found = conn.execute(
            "SELECT m.id, m.direction, substr(m.body, 1, ?), m.deleted, f.name, f.mime "
            "FROM messages m LEFT JOIN files f ON f.message_id = m.id "
            "WHERE m.contact_id = ? AND m.direction IN (0, 1) AND m.msg_id = ? LIMIT 1",
            (QUOTE_CHARS, m.contact_id, m.reply_to),
        ).fetchone()
        if found is not None:
            quote = Quote(
                MessageRow(found[0]),
                Direction(found[1]),
                found[2],
                bool(found[3]),
                found[4] or "",
                (found[5] or "").startswith("image/"),
            )
            quotes[(m.contact_id, m.reply_to)] = quote
    files = FileRepo(conn).for_messages(rows)
    authors = _author_names(conn, messages)
    return [
        dataclasses.replace(
            m,
            reactions=tuple(reactions.get(m.id, ())),
            quote=None if m.reply_to is None else quotes.get((m.contact_id, m.reply_to)),
            file=files.get(m.id),
            author=authors.get((m.contact_id, m.author_keys), "")
            if m.author_keys is not None
            else "",
        )
        if m.id in reactions or m.reply_to is not None or m.id in files or m.author_keys
        else m
        for m in messages
    ]


def _author_names(conn: Any, messages: list[Message]) -> dict[tuple[int, bytes], str]:
    """The names of a page's group messages' authors, as their groups name them (our own
    name for a contact of ours)."""
    groups = {m.contact_id for m in messages if m.author_keys is not None}
    names: dict[tuple[int, bytes], str] = {}
    for group in groups:
        for keys, name in conn.execute(
            "SELECT gm.identity_keys, coalesce(c.display_name, gm.name) FROM group_members gm "
            "LEFT JOIN contacts c ON c.identity_keys = gm.identity_keys AND c.kind = 'person' "
            "AND c.state = 'contact' WHERE gm.group_row = ?",
            (group,),
        ):
            names[(group, bytes(keys))] = name
    return names
