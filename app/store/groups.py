"""Groups (docs/groups.md): each group's state, its members, the membership events applied,
the signed posts kept to pass on, and our posts' copies with their receipts."""

# Column lists below are module constants; every value is bound as a parameter.
# ruff: noqa: S608

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from app.domain.groups import GroupState, MemberState

from .errors import NotFound

JOINED_NO_CODE = ""  # a member's code once we know they joined but need no code of theirs


@dataclass(frozen=True, slots=True)
class GroupRow:
    contact_id: int  # the group's conversation row
    group_id: bytes
    state: GroupState
    invited_by: bytes | None
    code_mailbox: bytes | None
    post_seq: int
    event_seq: int


@dataclass(frozen=True, slots=True)
class MemberRow:
    keys: bytes
    name: str
    admin: bool
    state: MemberState
    code: str | None
    event_seq: int
    since: int


@dataclass(frozen=True, slots=True)
class Signed:
    """A statement as it travels: its exact bytes and its author's signature."""

    statement: bytes
    signature: bytes
    message_id: int | None = field(default=None, compare=False)  # the post's message row here


_GROUP_COLS = "contact_id, group_id, state, invited_by, code_mailbox, post_seq, event_seq"
_MEMBER_COLS = "identity_keys, name, admin, state, code, event_seq, since"


def _group(row: Any) -> GroupRow:
    return GroupRow(
        row[0],
        bytes(row[1]),
        GroupState(row[2]),
        None if row[3] is None else bytes(row[3]),
        None if row[4] is None else bytes(row[4]),
        row[5],
        row[6],
    )


def _member(row: Any) -> MemberRow:
    return MemberRow(
        bytes(row[0]), row[1], bool(row[2]), MemberState(row[3]), row[4], row[5], row[6]
    )


class GroupRepo:
    def __init__(self, conn: Any) -> None:
        self._conn = conn

    # -- the group ---------------------------------------------------------------------

    def add(
        self, contact_id: int, group_id: bytes, state: GroupState, invited_by: bytes | None
    ) -> None:
        self._conn.execute(
            "INSERT INTO groups (contact_id, group_id, state, invited_by) VALUES (?, ?, ?, ?)",
            (contact_id, group_id, state.value, invited_by),
        )

    def get(self, contact_id: int) -> GroupRow:
        row = self._conn.execute(
            f"SELECT {_GROUP_COLS} FROM groups WHERE contact_id = ?", (contact_id,)
        ).fetchone()
        if row is None:
            raise NotFound("no such group")
        return _group(row)

    def find(self, contact_id: int) -> GroupRow | None:
        try:
            return self.get(contact_id)
        except NotFound:
            return None

    def by_group_id(self, group_id: bytes) -> GroupRow | None:
        row = self._conn.execute(
            f"SELECT {_GROUP_COLS} FROM groups WHERE group_id = ?", (group_id,)
        ).fetchone()
        return None if row is None else _group(row)

    def by_code(self, mailbox_id: bytes) -> GroupRow | None:
        """The group one of our group codes belongs to."""
        row = self._conn.execute(
            f"SELECT {_GROUP_COLS} FROM groups WHERE code_mailbox = ?", (mailbox_id,)
        ).fetchone()
        return None if row is None else _group(row)

    def all(self, *states: GroupState) -> list[GroupRow]:
        marks = ",".join("?" * len(states))
        where = f"WHERE state IN ({marks})" if states else ""
        rows = self._conn.execute(
            f"SELECT {_GROUP_COLS} FROM groups {where} ORDER BY contact_id",
            [s.value for s in states],
        )
        return [_group(r) for r in rows.fetchall()]

    def listed(self, contact_id: int) -> bool:
        """Whether the group's conversation is on the list (joined once, not an invitation)."""
        row = self._conn.execute(
            "SELECT state FROM groups WHERE contact_id = ?", (contact_id,)
        ).fetchone()
        return row is not None and row[0] != GroupState.INVITED.value

    def set_state(self, contact_id: int, state: GroupState) -> None:
        self._set(contact_id, "state", state.value)

    def set_code(self, contact_id: int, mailbox_id: bytes | None) -> None:
        self._set(contact_id, "code_mailbox", mailbox_id)

    def next_post(self, contact_id: int) -> int:
        """Our next post number in this group, taken."""
        return self._next(contact_id, "post_seq")

    def next_event(self, contact_id: int) -> int:
        """Our next event number in this group, taken."""
        return self._next(contact_id, "event_seq")

    def _next(self, contact_id: int, column: str) -> int:
        row = self._conn.execute(
            f"UPDATE groups SET {column} = {column} + 1 WHERE contact_id = ? RETURNING {column}",
            (contact_id,),
        ).fetchone()
        if row is None:
            raise NotFound("no such group")
        return int(row[0])

    def _set(self, contact_id: int, column: str, value: object) -> None:
        cur = self._conn.execute(
            f"UPDATE groups SET {column} = ? WHERE contact_id = ?", (value, contact_id)
        )
        if cur.rowcount != 1:
            raise NotFound("no such group")

    # -- members -----------------------------------------------------------------------

    def members(self, contact_id: int, *, everyone: bool = False) -> list[MemberRow]:
        """Current members in the order they were added (`everyone`: past ones too)."""
        where = "" if everyone else "AND state = 'member'"
        rows = self._conn.execute(
            f"SELECT {_MEMBER_COLS} FROM group_members WHERE group_row = ? {where} "
            "ORDER BY since, identity_keys",
            (contact_id,),
        )
        return [_member(r) for r in rows.fetchall()]

    def member(self, contact_id: int, keys: bytes) -> MemberRow | None:
        row = self._conn.execute(
            f"SELECT {_MEMBER_COLS} FROM group_members WHERE group_row = ? AND identity_keys = ?",
            (contact_id, keys),
        ).fetchone()
        return None if row is None else _member(row)

    def put_member(self, contact_id: int, keys: bytes, name: str, admin: bool) -> None:
        """A member (again): added now, or back after leaving or being removed."""
        since = self._conn.execute(
            "SELECT coalesce(max(since), 0) + 1 FROM group_members WHERE group_row = ?",
            (contact_id,),
        ).fetchone()[0]
        self._conn.execute(
            "INSERT INTO group_members (group_row, identity_keys, name, admin, state, since) "
            "VALUES (?, ?, ?, ?, 'member', ?) ON CONFLICT (group_row, identity_keys) DO UPDATE "
            "SET name = excluded.name, admin = excluded.admin, state = 'member', code = NULL, "
            "since = excluded.since",
            (contact_id, keys, name, int(admin), since),
        )

    def set_member(
        self,
        contact_id: int,
        keys: bytes,
        *,
        state: MemberState | None = None,
        admin: bool | None = None,
        code: str | None = None,
        event_seq: int | None = None,
    ) -> None:
        changes: dict[str, object] = {"state": state and state.value, "admin": admin}
        changes |= {"code": code, "event_seq": event_seq}
        for column, value in changes.items():
            if value is not None:
                self._conn.execute(
                    f"UPDATE group_members SET {column} = ? "
                    "WHERE group_row = ? AND identity_keys = ?",
                    (int(value) if isinstance(value, bool) else value, contact_id, keys),
                )

    def shared_with(self, keys: bytes) -> list[int]:
        """The joined groups where these keys are a current member (their conversation rows)."""
        rows = self._conn.execute(
            "SELECT g.contact_id FROM groups g JOIN group_members m ON m.group_row = g.contact_id "
            "WHERE g.state = 'joined' AND m.identity_keys = ? AND m.state = 'member' "
            "ORDER BY g.contact_id",
            (keys,),
        )
        return [r[0] for r in rows.fetchall()]

    # -- the membership log ------------------------------------------------------------

    def add_event(
        self, contact_id: int, author: bytes, seq: int, signed: Signed, applied: bool
    ) -> bool:
        """Keep an event (applied, or waiting for its turn); False if it is there already."""
        cur = self._conn.execute(
            "INSERT INTO group_events (group_row, author, seq, statement, signature, applied) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (group_row, author, seq) DO NOTHING",
            (contact_id, author, seq, signed.statement, signed.signature, int(applied)),
        )
        return bool(cur.rowcount == 1)

    def log(self, contact_id: int) -> list[Signed]:
        """The events applied, in the order they were."""
        rows = self._conn.execute(
            "SELECT statement, signature FROM group_events WHERE group_row = ? AND applied = 1 "
            "ORDER BY id",
            (contact_id,),
        )
        return [Signed(bytes(a), bytes(b)) for a, b in rows.fetchall()]

    def waiting(self, contact_id: int) -> list[tuple[int, Signed]]:
        rows = self._conn.execute(
            "SELECT id, statement, signature FROM group_events WHERE group_row = ? "
            "AND applied = 0 ORDER BY author, seq",
            (contact_id,),
        )
        return [(i, Signed(bytes(a), bytes(b))) for i, a, b in rows.fetchall()]

    def applied(self, event_id: int) -> None:
        """A waiting event's turn came: it moves to the end of the log."""
        row = self._conn.execute(
            "SELECT group_row, author, seq, statement, signature FROM group_events WHERE id = ?",
            (event_id,),
        ).fetchone()
        self._conn.execute("DELETE FROM group_events WHERE id = ?", (event_id,))
        self._conn.execute(
            "INSERT INTO group_events (group_row, author, seq, statement, signature, applied) "
            "VALUES (?, ?, ?, ?, ?, 1)",
            tuple(row),
        )

    def drop_waiting(self, event_id: int) -> None:
        self._conn.execute("DELETE FROM group_events WHERE id = ? AND applied = 0", (event_id,))

    def waiting_count(self, contact_id: int) -> int:
        row = self._conn.execute(
            "SELECT count(*) FROM group_events WHERE group_row = ? AND applied = 0", (contact_id,)
        ).fetchone()
        return int(row[0])

    # -- posts -------------------------------------------------------------------------

    def add_post(
        self, contact_id: int, author: bytes, seq: int, message_id: int, signed: Signed
    ) -> bool:
        cur = self._conn.execute(
            "INSERT INTO group_posts (group_row, author, seq, message_id, statement, signature) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (group_row, author, seq) DO NOTHING",
            (contact_id, author, seq, message_id, signed.statement, signed.signature),
        )
        return bool(cur.rowcount == 1)

    def has_post(self, contact_id: int, author: bytes, seq: int) -> bool:
        row = self._conn.execute(
            "SELECT 1 FROM group_posts WHERE group_row = ? AND author = ? AND seq = ?",
            (contact_id, author, seq),
        ).fetchone()
        return row is not None

    def held(self, contact_id: int) -> dict[bytes, int]:
        """Per author, the highest post number held with every one before it."""
        held: dict[bytes, int] = {}
        for author, seq in self._conn.execute(
            "SELECT author, seq FROM group_posts WHERE group_row = ? ORDER BY author, seq",
            (contact_id,),
        ):
            key = bytes(author)
            if held.get(key, 0) == seq - 1:
                held[key] = seq
        return held

    def posts_after(self, contact_id: int, author: bytes, seq: int, limit: int) -> list[Signed]:
        """The author's posts numbered above `seq` we can pass on, the oldest `limit` (so a
        member far behind catches up over several exchanges)."""
        rows = self._conn.execute(
            "SELECT statement, signature, message_id FROM group_posts WHERE group_row = ? "
            "AND author = ? AND seq > ? AND length(statement) > 0 ORDER BY seq LIMIT ?",
            (contact_id, author, seq, limit),
        )
        return [Signed(bytes(a), bytes(b), m) for a, b, m in rows.fetchall()]

    def post_of(self, message_id: int) -> Signed | None:
        row = self._conn.execute(
            "SELECT statement, signature FROM group_posts WHERE message_id = ?", (message_id,)
        ).fetchone()
        return None if row is None else Signed(bytes(row[0]), bytes(row[1]))

    # -- our posts' copies -------------------------------------------------------------

    def add_copy(self, frame_id: bytes, message_id: int, member: bytes) -> None:
        self._conn.execute(
            "INSERT INTO group_copies (frame_id, message_id, member) VALUES (?, ?, ?) "
            "ON CONFLICT (frame_id) DO NOTHING",
            (frame_id, message_id, member),
        )

    def delivered(self, member: bytes, frame_ids: Iterable[bytes]) -> list[int]:
        """The member's receipt names these frames: the messages whose copies they were."""
        found: list[int] = []
        for frame_id in frame_ids:
            row = self._conn.execute(
                "UPDATE group_copies SET delivered = 1 WHERE frame_id = ? AND member = ? "
                "RETURNING message_id",
                (frame_id, member),
            ).fetchone()
            if row is not None:
                found.append(row[0])
        return found

    def all_delivered(self, message_id: int) -> bool:
        """Whether every copy of our message has its receipt (and there is one at least)."""
        row = self._conn.execute(
            "SELECT EXISTS (SELECT 1 FROM group_copies WHERE message_id = ? AND delivered = 0), "
            "EXISTS (SELECT 1 FROM group_copies WHERE message_id = ?)",
            (message_id, message_id),
        ).fetchone()
        return not row[0] and bool(row[1])

    def copies(self, message_id: int) -> list[tuple[bytes, bool]]:
        """Each member's copy of our message (the latest per member): delivered or not."""
        rows = self._conn.execute(
            "SELECT member, max(delivered) FROM group_copies WHERE message_id = ? "
            "GROUP BY member ORDER BY member",
            (message_id,),
        )
        return [(bytes(m), bool(d)) for m, d in rows.fetchall()]

    def undelivered_to(self, contact_id: int, member: bytes) -> list[bytes]:
        """The frames of our copies to a member of this group that have no receipt yet."""
        rows = self._conn.execute(
            "SELECT c.frame_id FROM group_copies c JOIN messages m ON m.id = c.message_id "
            "WHERE m.contact_id = ? AND c.member = ? AND c.delivered = 0",
            (contact_id, member),
        )
        return [bytes(r[0]) for r in rows.fetchall()]
