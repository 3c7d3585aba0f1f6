"""Group statements (docs/groups.md, "Statements"): a post or a membership event as a msgpack
map, its exact bytes signed by its author. `read` takes what a peer passed on and returns it
checked (parsed, every field in range, the signature verified), or raises `StatementError`."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import msgpack

from app.crypto.groupsig import IDENTITY_KEYS_SIZE, sign_statement, statement_is_signed
from app.crypto.identity import Identity
from app.crypto.names import valid_name
from app.domain.groups import GROUP_ID_SIZE
from app.domain.messages import MAX_MESSAGE_CHARS, WireId

MAX_SEQ = 2**63 - 1
MAX_TIME_MS = 253_402_300_799_999
POST_ID_SIZE = 16


class StatementError(ValueError):
    """A statement that is not well formed or not signed by the author it names."""


class Op(StrEnum):
    CREATE = "create"
    ADD = "add"
    REMOVE = "remove"
    PROMOTE = "promote"
    RENAME = "rename"
    LEAVE = "leave"


ABOUT_A_MEMBER = (Op.ADD, Op.REMOVE, Op.PROMOTE, Op.LEAVE)
NAMED = (Op.CREATE, Op.ADD, Op.RENAME)


@dataclass(frozen=True, slots=True)
class Post:
    group_id: bytes
    author: bytes
    seq: int
    sent_at: int
    body: str
    reply_to: bytes | None
    statement: bytes
    signature: bytes

    @property
    def post_id(self) -> WireId:
        """The post's id on every member's side (what a reply names)."""
        return post_id(self.statement)


@dataclass(frozen=True, slots=True)
class Event:
    group_id: bytes
    author: bytes
    seq: int
    at: int
    op: Op
    member: bytes  # the member it concerns (b"" for create and rename)
    name: str  # the member's name (add) or the group's (create, rename); else ""
    statement: bytes
    signature: bytes
    by: str = ""  # create: the creator's display name


Statement = Post | Event


def post_id(statement: bytes) -> WireId:
    return WireId(hashlib.sha256(statement).digest()[:POST_ID_SIZE])


def _pack(identity: Identity, fields: dict[str, Any]) -> tuple[bytes, bytes]:
    statement: bytes = msgpack.packb(fields, use_bin_type=True)
    return statement, sign_statement(identity, statement)


def make_post(
    identity: Identity,
    group_id: bytes,
    seq: int,
    sent_at: int,
    body: str,
    reply_to: bytes | None = None,
) -> Post:
    author = identity.public.to_bytes()
    fields: dict[str, Any] = {"k": "post", "g": group_id, "a": author, "n": seq, "t": sent_at}
    fields["b"] = body
    if reply_to is not None:
        fields["re"] = reply_to
    statement, signature = _pack(identity, fields)
    return Post(group_id, author, seq, sent_at, body, reply_to, statement, signature)


def make_event(
    identity: Identity,
    group_id: bytes,
    seq: int,
    at: int,
    op: Op,
    member: bytes = b"",
    name: str = "",
    by: str = "",
) -> Event:
    author = identity.public.to_bytes()
    member = member if op in ABOUT_A_MEMBER else b""
    name = name if op in NAMED else ""
    by = by if op is Op.CREATE else ""
    fields: dict[str, Any] = {"k": "ev", "g": group_id, "a": author, "n": seq, "t": at}
    fields["op"] = op.value
    if op in ABOUT_A_MEMBER:
        fields["m"] = member
    if op in NAMED:
        fields["name"] = name
    if op is Op.CREATE:
        fields["by"] = by
    statement, signature = _pack(identity, fields)
    return Event(group_id, author, seq, at, op, member, name, statement, signature, by)


def _field(data: dict[Any, Any], key: str, kind: type) -> Any:
    value = data.get(key)
    if type(value) is not kind:
        raise StatementError(f"field {key!r} missing or mistyped")
    return value


def _sized(data: dict[Any, Any], key: str, size: int) -> bytes:
    value: bytes = _field(data, key, bytes)
    if len(value) != size:
        raise StatementError(f"field {key!r} is {size} bytes")
    return value


def _ranged(data: dict[Any, Any], key: str, low: int, high: int) -> int:
    value: int = _field(data, key, int)
    if not low <= value <= high:
        raise StatementError(f"field {key!r} out of range")
    return value


def read(statement: bytes, signature: bytes) -> Statement:
    """The statement, checked: well formed and signed by the author it names."""
    try:
        data = msgpack.unpackb(
            statement,
            raw=False,
            strict_map_key=True,
            max_str_len=MAX_MESSAGE_CHARS * 4,
            max_bin_len=IDENTITY_KEYS_SIZE,
            max_array_len=0,
            max_map_len=16,
            max_ext_len=0,
        )
    except Exception:  # msgpack raises several types for bad bytes
        raise StatementError("not a statement") from None
    if type(data) is not dict:
        raise StatementError("not a statement")
    group_id = _sized(data, "g", GROUP_ID_SIZE)
    author = _sized(data, "a", IDENTITY_KEYS_SIZE)
    seq = _ranged(data, "n", 1, MAX_SEQ)
    at = _ranged(data, "t", 0, MAX_TIME_MS)
    kind = data.get("k")
    result: Statement
    if kind == "post":
        body = _field(data, "b", str)
        if not body.strip() or len(body) > MAX_MESSAGE_CHARS:
            raise StatementError("a post's text is empty or too long")
        reply_to = _sized(data, "re", POST_ID_SIZE) if "re" in data else None
        result = Post(group_id, author, seq, at, body, reply_to, statement, signature)
    elif kind == "ev":
        try:
            op = Op(_field(data, "op", str))
        except ValueError:
            raise StatementError("not a membership change this version knows") from None
        member = _sized(data, "m", IDENTITY_KEYS_SIZE) if op in ABOUT_A_MEMBER else b""
        name = _field(data, "name", str) if op in NAMED else ""
        if op in NAMED and not valid_name(name):
            raise StatementError("field 'name' is not a name")
        if op is Op.LEAVE and member != author:
            raise StatementError("only a member itself leaves")
        by = _field(data, "by", str) if op is Op.CREATE else ""
        if op is Op.CREATE and not valid_name(by):
            raise StatementError("field 'by' is not a name")
        result = Event(group_id, author, seq, at, op, member, name, statement, signature, by)
    else:
        raise StatementError("not a statement")
    if not statement_is_signed(author, statement, signature):
        raise StatementError("the signature is not the author's")
    return result
