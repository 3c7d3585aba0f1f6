"""The plaintext inside each ratchet message: a small msgpack map with a kind.

`intro` rides in the initiator's first frame (where it can be reached), `welcome` is the
responder's first reply (the mailbox it listens on), `move` names a new mailbox on other
relays, `msg` is a chat message (perhaps a reply, perhaps disappearing), `file` the same with
a file offered (`Offer`; its pieces travel outside the ratchet) and `rcpt` an
end-to-end receipt naming message ids. `edit`, `del` and `react` change a message named by its
wire id, `timer` sets the conversation's disappearing-messages timer, `rejoin` gives the
contact a prekey of ours with which a backup of theirs, restored, opens a new session with
us. Where a relay is named, up to two fallback relays (`fb`) may follow it. A kind this
version does not know is `Unknown` (shown as a neutral line, never a crash); any mistyped
field of a known kind is a `PayloadError`: the peer's fault. docs/messages.md describes each
kind.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass
from typing import Any

import msgpack

from app.crypto.card import MAX_FALLBACKS, valid_relays
from app.crypto.filecrypt import FILE_ID_SIZE
from app.crypto.names import valid_name
from app.domain.files import MAX_FILE_BYTES, MAX_FILE_NAME_CHARS, MAX_THUMBNAIL_BYTES
from app.domain.messages import MAX_MESSAGE_CHARS, MAX_TIMER_S, WireId

MAX_RECEIPT_IDS = 512
MSG_ID_SIZE = 16
MAX_SEQ = 2**63 - 1  # what the store's INTEGER column holds
MAX_TIME_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the last time a clock can show
MAX_REACTION_CHARS = 16  # an emoji with its modifiers and joiners (a family, a flag)
MAX_KIND_CHARS = 32
MIME = re.compile(r"[a-z0-9][a-z0-9.+-]{0,40}/[a-z0-9][a-z0-9.+-]{0,80}")
_JOINERS = {"\u200d"} | {chr(c) for c in range(0xE0020, 0xE0080)}  # ZWJ, flag tags


def message_id(frame: bytes) -> WireId:
    """A message's id on both sides: the hash of its ciphertext, known before decryption."""
    return WireId(hashlib.sha256(frame).digest()[:MSG_ID_SIZE])


class PayloadError(ValueError):
    """A decrypted payload that is not one of ours."""


@dataclass(frozen=True, slots=True)
class Intro:
    relay_url: str
    fallbacks: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Welcome:
    mailbox: bytes
    relay_url: str
    name: str
    fallbacks: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Move:
    """Write to this mailbox on these relays from now on (the sender changed relays)."""

    mailbox: bytes
    relay_url: str
    fallbacks: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Offer:
    """A file a message carries: what it is, how to check it, the key its pieces are sealed
    under (app/crypto/filecrypt.py), and a small picture of it for images."""

    file_id: bytes
    name: str
    size: int
    mime: str
    sha256: bytes
    key: bytes
    thumbnail: bytes = b""


@dataclass(frozen=True, slots=True)
class Chat:
    seq: int
    sent_at: int
    body: str
    reply_to: bytes | None = None  # the wire id of the message this one answers
    timer_s: int = 0  # disappears this long after sending (sender) or reading (receiver)
    file: Offer | None = None  # a file message (kind `file`): `body` is its caption


@dataclass(frozen=True, slots=True)
class Receipt:
    read: bool
    ids: tuple[bytes, ...]


@dataclass(frozen=True, slots=True)
class Edit:
    """The sender's message `ref` now reads `body` (the latest `sent_at` wins)."""

    ref: bytes
    sent_at: int
    body: str


@dataclass(frozen=True, slots=True)
class Delete:
    """Delete the sender's message `ref` for everyone."""

    ref: bytes
    sent_at: int


@dataclass(frozen=True, slots=True)
class React:
    """The sender's reaction to message `ref` (either side's) is `emoji`; "" takes it back."""

    ref: bytes
    sent_at: int
    emoji: str


@dataclass(frozen=True, slots=True)
class Timer:
    """The conversation's disappearing-messages timer is `timer_s` seconds (0: off) from now
    on; a conversation row of its own, numbered like a message."""

    seq: int
    sent_at: int
    timer_s: int


@dataclass(frozen=True, slots=True)
class GroupInvite:
    """You are invited to a group: its id, name and membership log (docs/groups.md)."""

    group_id: bytes
    name: str
    log: tuple[tuple[bytes, bytes], ...]  # (statement, signature), in the order applied


@dataclass(frozen=True, slots=True)
class GroupJoin:
    """I joined the group you invited me to: members may connect to me through `code`."""

    group_id: bytes
    code: str


@dataclass(frozen=True, slots=True)
class GroupIntro:
    """Member `member` joined: connect to them through `code` if you have no channel yet."""

    group_id: bytes
    member: bytes
    code: str


@dataclass(frozen=True, slots=True)
class GroupSigned:
    """A signed group statement, a post (`gpost`) or a membership event (`gev`), from its
    author or passed on by a member."""

    post: bool
    statement: bytes
    signature: bytes


@dataclass(frozen=True, slots=True)
class GroupSync:
    """What the sender holds of a group: per author, the highest post number with all before
    it. A `reply` is never answered."""

    group_id: bytes
    have: tuple[tuple[bytes, int], ...]
    reply: bool


@dataclass(frozen=True, slots=True)
class Rejoin:
    """A prekey of ours for this contact alone (docs/backup.md): a profile of theirs restored
    from a backup seals a fresh handshake to it, on the mailbox it writes to."""

    prekey: bytes


@dataclass(frozen=True, slots=True)
class Unknown:
    """A kind this version does not know (from a newer client): acknowledged, shown as a
    neutral line, otherwise ignored."""

    kind: str


Update = Edit | Delete | React
Group = GroupInvite | GroupJoin | GroupIntro | GroupSigned | GroupSync
Payload = (
    Intro
    | Welcome
    | Move
    | Chat
    | Receipt
    | Edit
    | Delete
    | React
    | Timer
    | Rejoin
    | Group
    | Unknown
)
MAX_GROUP_LOG = 256  # events an invitation carries
MAX_SYNC_AUTHORS = 256
MAX_CODE_CHARS = 16_384  # a card's text, as the card parser takes it
GROUP_ID_BYTES = 16
IDENTITY_KEYS_BYTES = 64
MAX_STATEMENT_BYTES = 65_536


def valid_reaction(emoji: str) -> bool:
    """An emoji (with its modifiers, joiners and flag tags), or "" for none: short, and
    nothing that is a control, a format or a space character."""
    if len(emoji) > MAX_REACTION_CHARS:
        return False
    for ch in emoji:
        category = unicodedata.category(ch)
        if category[0] in "CZ" and ch not in _JOINERS:
            return False
    return True


def encode(payload: Payload) -> bytes:
    match payload:
        case Intro(relay_url, _):
            data: dict[str, Any] = {"k": "intro", "relay": relay_url}
        case Welcome(mailbox, relay_url, name, _):
            data = {"k": "welcome", "mb": mailbox, "relay": relay_url, "name": name}
        case Move(mailbox, relay_url, _):
            data = {"k": "move", "mb": mailbox, "relay": relay_url}
        case Chat(seq, sent_at, body, reply_to, timer_s, offer):
            data = {"k": "msg" if offer is None else "file", "seq": seq, "ts": sent_at}
            data["body"] = body
            if reply_to is not None:
                data["re"] = reply_to
            if timer_s:
                data["ttl"] = timer_s
            if offer is not None:
                data |= {"id": offer.file_id, "name": offer.name, "size": offer.size}
                data |= {"type": offer.mime, "h": offer.sha256, "key": offer.key}
                if offer.thumbnail:
                    data["th"] = offer.thumbnail
        case Receipt(read, ids):
            data = {"k": "rcpt", "read": read, "ids": list(ids)}
        case Edit(ref, sent_at, body):
            data = {"k": "edit", "ref": ref, "ts": sent_at, "body": body}
        case Delete(ref, sent_at):
            data = {"k": "del", "ref": ref, "ts": sent_at}
        case React(ref, sent_at, emoji):
            data = {"k": "react", "ref": ref, "ts": sent_at, "emoji": emoji}
        case Timer(seq, sent_at, timer_s):
            data = {"k": "timer", "seq": seq, "ts": sent_at, "ttl": timer_s}
        case Rejoin(prekey):
            data = {"k": "rejoin", "pk": prekey}
        case GroupInvite(group_id, name, log):
            data = {"k": "ginv", "g": group_id, "name": name, "log": [list(e) for e in log]}
        case GroupJoin(group_id, code):
            data = {"k": "gjoin", "g": group_id, "code": code}
        case GroupIntro(group_id, member, code):
            data = {"k": "gintro", "g": group_id, "m": member, "code": code}
        case GroupSigned(post, statement, signature):
            data = {"k": "gpost" if post else "gev", "s": statement, "sig": signature}
        case GroupSync(group_id, have, reply):
            data = {"k": "gsync", "g": group_id, "have": [list(h) for h in have], "reply": reply}
        case Unknown(kind):
            data = {"k": kind}
    if isinstance(payload, (Intro, Welcome, Move)) and payload.fallbacks:
        data["fb"] = list(payload.fallbacks)
    packed: bytes = msgpack.packb(data, use_bin_type=True)
    return packed


def _field(data: dict[Any, Any], key: str, kind: type) -> Any:
    value = data.get(key)
    if type(value) is not kind:
        raise PayloadError(f"field {key!r} missing or mistyped")
    return value


def _ranged(data: dict[Any, Any], key: str, low: int, high: int) -> int:
    value: int = _field(data, key, int)
    if not low <= value <= high:
        raise PayloadError(f"field {key!r} out of range")
    return value


def _relays(data: dict[Any, Any]) -> tuple[str, tuple[str, ...]]:
    """The relay and its fallbacks (`fb`, optional): one to three distinct relay URLs."""
    url = _field(data, "relay", str)
    extra = data.get("fb", [])
    if type(extra) is not list or len(extra) > MAX_FALLBACKS:
        raise PayloadError(f"field 'fb' is a list of at most {MAX_FALLBACKS} relay URLs")
    fallbacks = tuple(extra)
    if not all(type(u) is str for u in fallbacks) or not valid_relays((url, *fallbacks)):
        raise PayloadError("field 'relay' or 'fb' is not a relay URL, or names one twice")
    return url, fallbacks


def _ref(data: dict[Any, Any], key: str = "ref") -> bytes:
    ref: bytes = _field(data, key, bytes)
    if len(ref) != MSG_ID_SIZE:
        raise PayloadError(f"field {key!r} is a {MSG_ID_SIZE}-byte message id")
    return ref


def _body(data: dict[Any, Any]) -> str:
    body: str = _field(data, "body", str)
    if len(body) > MAX_MESSAGE_CHARS:
        raise PayloadError("message too long")
    return body


def _mailbox(data: dict[Any, Any]) -> bytes:
    mailbox: bytes = _field(data, "mb", bytes)
    if len(mailbox) != 32:
        raise PayloadError("mailbox id is 32 bytes")
    return mailbox


def _bytes(data: dict[Any, Any], key: str, size: int) -> bytes:
    value: bytes = _field(data, key, bytes)
    if len(value) != size:
        raise PayloadError(f"field {key!r} is {size} bytes")
    return value


def _offer(data: dict[Any, Any]) -> Offer:
    name = _field(data, "name", str)
    if not name.strip() or len(name) > MAX_FILE_NAME_CHARS:
        raise PayloadError("field 'name' is not a file name")
    mime = _field(data, "type", str)
    if not MIME.fullmatch(mime):
        raise PayloadError("field 'type' is not a media type")
    thumbnail = _field(data, "th", bytes) if "th" in data else b""
    if len(thumbnail) > MAX_THUMBNAIL_BYTES:
        raise PayloadError("field 'th' is too large")
    return Offer(
        _bytes(data, "id", FILE_ID_SIZE),
        name,
        _ranged(data, "size", 0, MAX_FILE_BYTES),
        mime,
        _bytes(data, "h", 32),
        _bytes(data, "key", 32),
        thumbnail,
    )


def decode(raw: bytes) -> Payload:
    """The payload in `raw`, every field checked for type and range; else `PayloadError`."""
    try:
        data = msgpack.unpackb(
            raw,
            raw=False,
            strict_map_key=True,
            max_str_len=MAX_MESSAGE_CHARS * 4,
            max_bin_len=MAX_STATEMENT_BYTES,
            max_array_len=MAX_RECEIPT_IDS,
            max_map_len=16,
            max_ext_len=0,
        )
    except Exception:  # msgpack raises several types for bad bytes
        raise PayloadError("not a payload") from None
    if type(data) is not dict:
        raise PayloadError("not a payload")
    kind = data.get("k")
    if kind == "intro":
        return Intro(*_relays(data))
    if kind == "welcome":
        mailbox = _mailbox(data)
        name = _field(data, "name", str)
        if not valid_name(name, allow_empty=True):
            raise PayloadError("field 'name' is not a display name")
        relay, fallbacks = _relays(data)
        return Welcome(mailbox, relay, name, fallbacks)
    if kind == "move":
        return Move(_mailbox(data), *_relays(data))
    if kind in ("msg", "file"):
        body = _body(data)
        reply_to = _ref(data, "re") if "re" in data else None
        timer_s = _ranged(data, "ttl", 1, MAX_TIMER_S) if "ttl" in data else 0
        seq, ts = _ranged(data, "seq", 1, MAX_SEQ), _ranged(data, "ts", 0, MAX_TIME_MS)
        offer = _offer(data) if kind == "file" else None
        return Chat(seq, ts, body, reply_to, timer_s, offer)
    if kind == "rcpt":
        ids = _field(data, "ids", list)
        if len(ids) > MAX_RECEIPT_IDS or any(
            type(i) is not bytes or len(i) != MSG_ID_SIZE for i in ids
        ):
            raise PayloadError("receipt ids malformed")
        return Receipt(_field(data, "read", bool), tuple(ids))
    if kind == "edit":
        body = _body(data)
        if not body.strip():
            raise PayloadError("an edit leaves no text")
        return Edit(_ref(data), _ranged(data, "ts", 0, MAX_TIME_MS), body)
    if kind == "del":
        return Delete(_ref(data), _ranged(data, "ts", 0, MAX_TIME_MS))
    if kind == "react":
        emoji = _field(data, "emoji", str)
        if not valid_reaction(emoji):
            raise PayloadError("field 'emoji' is not a reaction")
        return React(_ref(data), _ranged(data, "ts", 0, MAX_TIME_MS), emoji)
    if kind == "timer":
        return Timer(
            _ranged(data, "seq", 1, MAX_SEQ),
            _ranged(data, "ts", 0, MAX_TIME_MS),
            _ranged(data, "ttl", 0, MAX_TIMER_S),
        )
    if kind == "rejoin":
        return Rejoin(_bytes(data, "pk", 32))
    if kind in GROUP_KINDS:
        return _group(kind, data)
    if type(kind) is str and 0 < len(kind) <= MAX_KIND_CHARS:
        return Unknown(kind)
    raise PayloadError("no payload kind")


GROUP_KINDS = ("ginv", "gjoin", "gintro", "gpost", "gev", "gsync")


def _code(data: dict[Any, Any]) -> str:
    code: str = _field(data, "code", str)
    if not 0 < len(code) <= MAX_CODE_CHARS:
        raise PayloadError("field 'code' is not a code")
    return code


def _pairs(data: dict[Any, Any], key: str, limit: int) -> list[list[Any]]:
    items: list[list[Any]] = _field(data, key, list)
    if len(items) > limit or any(type(i) is not list or len(i) != 2 for i in items):
        raise PayloadError(f"field {key!r} is a list of at most {limit} pairs")
    return items


def _group(kind: str, data: dict[Any, Any]) -> Group:
    if kind in ("gpost", "gev"):
        statement = _field(data, "s", bytes)
        return GroupSigned(kind == "gpost", statement, _bytes(data, "sig", 64))
    group_id = _bytes(data, "g", GROUP_ID_BYTES)
    if kind == "ginv":
        name = _field(data, "name", str)
        if not valid_name(name):
            raise PayloadError("field 'name' is not a group name")
        log = _pairs(data, "log", MAX_GROUP_LOG)
        if not log or any(type(s) is not bytes or type(sig) is not bytes for s, sig in log):
            raise PayloadError("field 'log' holds statements and signatures")
        return GroupInvite(group_id, name, tuple((s, sig) for s, sig in log))
    if kind == "gjoin":
        return GroupJoin(group_id, _code(data))
    if kind == "gintro":
        return GroupIntro(group_id, _bytes(data, "m", IDENTITY_KEYS_BYTES), _code(data))
    have = _pairs(data, "have", MAX_SYNC_AUTHORS)
    for author, seq in have:
        if type(author) is not bytes or len(author) != IDENTITY_KEYS_BYTES:
            raise PayloadError("field 'have' names authors by their identity keys")
        if type(seq) is not int or not 0 <= seq <= MAX_SEQ:
            raise PayloadError("field 'have' numbers out of range")
    return GroupSync(group_id, tuple((a, s) for a, s in have), _field(data, "reply", bool))
