"""anonchat-cli: the client engine without a window, for scripts, bots and tests.

Exit codes: 0 done, 1 a user error (one line on stderr), 2 usage, 3 the relay or the peer
could not be reached within --wait.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import logging
import os
import re
import signal
import sys
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.core.backup import restore_profile
from app.core.engine import Engine
from app.core.errors import StoreError, UserError
from app.core.events import (
    BackupFinished,
    ConnectionChanged,
    ContactAdded,
    ContactChanged,
    ContactLimited,
    ContactRemoved,
    Event,
    FileChanged,
    FrameRejected,
    GroupChanged,
    MessageAdded,
    MessageChanged,
    MessagesRemoved,
    MessageStatusChanged,
    PresenceChanged,
    RequestAdded,
    RequestRemoved,
    RouteChanged,
)
from app.core.profile import (
    DEFAULT_RELAY,
    create_profile,
    destroy_header,
    open_profile,
    profile_paths,
    wipe_profile,
)
from app.core.qr import QrError, decode_file, make_png
from app.domain.contacts import Contact, ContactKind, ContactState, RequestSummary
from app.domain.files import FileInfo, FileState, size_words
from app.domain.groups import Delivery, Group, GroupMember, GroupState
from app.domain.messages import MAX_TIMER_S, Direction, Message, Status, describe, timer_words
from app.net.discovery import browse
from app.net.rpc import (
    INVALID_PARAMS,
    METHOD_NOT_FOUND,
    ApiClient,
    ApiServer,
    Call,
    Handler,
    RpcError,
    socket_path,
)

EXIT_OK, EXIT_USER, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3


class Unreachable(Exception):
    """The relay or the peer did not answer within --wait."""


_SHOWN_AS = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_UNSAFE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_JOINERS = frozenset("\u200c\u200d")


def _unsafe(char: str) -> bool:
    return unicodedata.category(char) in _UNSAFE and char not in _JOINERS


def safe(text: str) -> str:
    """Text a peer chose, for a terminal: control characters (escape sequences), bidi
    overrides and other invisible format characters shown as escapes, never passed on."""
    if text.isprintable():
        return text
    return "".join(_SHOWN_AS.get(c) or (_escaped(c) if _unsafe(c) else c) for c in text)


def _escaped(char: str) -> str:
    return f"\\u{ord(char):04x}" if ord(char) <= 0xFFFF else f"\\U{ord(char):08x}"


def json_line(data: Any) -> str:
    """One JSON document on one line. Control, bidi and separator characters outside ASCII
    (which JSON allows raw inside strings) are written as \\u escapes too, so a peer's text
    cannot reach the terminal through --json either."""
    text = json.dumps(data, ensure_ascii=False)
    if text.isprintable():
        return text
    return "".join(json.dumps(c)[1:-1] if _unsafe(c) else c for c in text)


@dataclass
class Out:
    """Prints results as text or, with --json, as one JSON document per result."""

    json: bool

    def result(self, data: Any, text: str) -> None:
        print(json_line(data) if self.json else text, flush=True)

    def note(self, text: str) -> None:
        """A word for the person at the terminal (stderr: the output stays parseable)."""
        print(f"anonchat-cli: {text}", file=sys.stderr, flush=True)

    def event(self, data: dict[str, Any]) -> None:
        """One line of `listen`'s event stream (always JSON)."""
        print(json_line(data), flush=True)


def contact_json(c: Contact) -> dict[str, Any]:
    return {
        "id": c.id,
        "name": c.display_name,
        "verified": c.verified,
        "state": c.state.value,
        "blocked": c.blocked,
    }


def member_json(m: GroupMember) -> dict[str, Any]:
    return {
        "name": m.name,
        "key": m.keys.hex(),
        "admin": m.admin,
        "me": m.is_me,
        "contact": m.is_contact,
        "verified": m.verified,
        "joined": m.joined,
        "connected": m.contact_id is not None,
    }


def group_json(g: Group) -> dict[str, Any]:
    return {
        "id": g.id,
        "name": g.name,
        "state": g.state.value,
        "admin": g.am_admin,
        "members": [member_json(m) for m in g.members],
        "invited_by": g.invited_by or None,
        "created_at": g.created_at,
    }


def request_json(s: RequestSummary) -> dict[str, Any]:
    return {
        "id": s.request.id,
        "name": s.request.display_name,
        "first_message": s.first_message.body if s.first_message else None,
        "messages": s.messages,
        "same_name_as": s.same_name_as.id if s.same_name_as else None,
        "created_at": s.request.created_at,
    }


def author_of(m: Message) -> str | None:
    """Who wrote a message: "me" for ours (any conversation), the author's name for another
    member's group message, None for the contact's own in a one-to-one conversation."""
    if m.direction is Direction.OUTGOING:
        return "me"
    if m.author_keys is not None:
        return m.author or m.author_keys.hex()[:16]
    return None


def message_json(m: Message, group: bool = False) -> dict[str, Any]:
    """A message; `group`: it is in a group's conversation (`contact` is the group's id)."""
    return {
        "id": m.id,
        "contact": m.contact_id,
        "group": group,
        "direction": "in" if m.direction is Direction.INCOMING else "out",
        "author": author_of(m),
        "author_key": None if m.author_keys is None else m.author_keys.hex(),
        "msg_id": m.msg_id.hex(),
        "seq": m.sender_seq,
        "body": m.body,
        "sent_at": m.sent_at,
        "received_at": m.received_at,
        "status": m.status.value,
        "read": m.is_read,
        "kind": m.kind.value,
        "reply_to": None if m.quote is None else m.quote.id,
        "edited": m.edited_at is not None,
        "deleted": m.deleted,
        "reactions": [
            {"from": "me" if r.from_me else "contact", "emoji": r.emoji} for r in m.reactions
        ],
        "timer": m.timer_s,
        "expires_at": m.expires_at,
        "file": None
        if m.file is None
        else {
            "id": m.file.id,
            "name": m.file.name,
            "size": m.file.size,
            "mime": m.file.mime,
            "state": m.file.state.value,
        },
    }


def file_json(f: FileInfo) -> dict[str, Any]:
    return {
        "id": f.id,
        "message_id": f.message_id,
        "contact": f.contact_id,
        "direction": "in" if f.direction is Direction.INCOMING else "out",
        "name": f.name,
        "size": f.size,
        "mime": f.mime,
        "sha256": f.sha256.hex(),
        "state": f.state.value,
        "received_bytes": f.received_bytes,
        "sent_bytes": f.sent_bytes,
        "error": f.error,
    }


def _no_group(contact_id: int) -> bool:
    return False


def event_json(event: Event, is_group: Callable[[int], bool] = _no_group) -> dict[str, Any] | None:
    """One event as `listen` prints it; None for what it leaves out: a group's row, or a
    member we talk to only through a group, added or changed as if it were a contact (the
    `group` event tells of both)."""
    match event:
        case MessageAdded(message):
            return {"event": "message", **message_json(message, is_group(message.contact_id))}
        case MessageStatusChanged(contact_id, row, status):
            return {"event": "status", "contact": contact_id, "id": row, "status": status.value}
        case MessageChanged(message):
            changed = message_json(message, is_group(message.contact_id))
            return {"event": "message_changed", **changed}
        case MessagesRemoved(contact_id, rows):
            return {"event": "messages_removed", "contact": contact_id, "ids": list(rows)}
        case ContactAdded(c) | ContactChanged(c) if c.kind is not ContactKind.PERSON:
            return None  # a group, or a member met only through one: in no contact list
        case ContactAdded(contact):
            return {"event": "contact_added", **contact_json(contact)}
        case ContactChanged(contact):
            return {"event": "contact_changed", **contact_json(contact)}
        case ContactRemoved(contact_id):
            return {"event": "contact_removed", "id": contact_id}
        case RequestAdded(request):
            return {"event": "request", **contact_json(request)}
        case RequestRemoved(request_id):
            return {"event": "request_removed", "id": request_id}
        case PresenceChanged(contact_id, online):
            return {"event": "presence", "contact": contact_id, "online": online}
        case RouteChanged(contact_id, relay_url):
            return {"event": "route", "contact": contact_id, "relay": relay_url}
        case ConnectionChanged(url, state, retry_in):
            return {"event": "connection", "relay": url, "state": state.value, "retry_in": retry_in}
        case FrameRejected(reason, kind):
            return {"event": "rejected", "kind": kind.value, "reason": reason}
        case FileChanged(info, bytes_per_s):
            return {"event": "file", **file_json(info), "bytes_per_s": round(bytes_per_s)}
        case GroupChanged(group):
            return {"event": "group", **group_json(group)}
        case ContactLimited(contact_id, limit, quota_bytes):
            return {
                "event": "limited",
                "contact": contact_id,
                "limit": limit.value,
                "quota_mb": quota_bytes // 1_000_000 if quota_bytes else None,
            }
        case BackupFinished(at, path, error):
            return {"event": "backup", "at": at, "path": path or None, "error": error or None}


def read_passphrase(args: argparse.Namespace, confirm: bool = False) -> str:
    if args.passphrase_file:
        try:
            text = Path(args.passphrase_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise UserError(f"cannot read the passphrase file: {exc.strerror}") from None
        return text.rstrip("\r\n")
    env = os.environ.get("ANONCHAT_PASSPHRASE")
    if env is not None:
        return env
    if not sys.stdin.isatty():
        raise UserError("no passphrase: use --passphrase-file, ANONCHAT_PASSPHRASE or a terminal")
    first = getpass.getpass("Passphrase: ")
    if confirm and getpass.getpass("Repeat passphrase: ") != first:
        raise UserError("the two passphrases differ")
    return first


def read_backup_passphrase(args: argparse.Namespace, confirm: bool = False) -> str:
    """The passphrase a backup is sealed under: --backup-passphrase-file, then
    ANONCHAT_BACKUP_PASSPHRASE, then a prompt. Served through the local API, only the file
    (which the holder reads): no passphrase crosses the socket."""
    if args.backup_passphrase_file:
        try:
            text = Path(args.backup_passphrase_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise UserError(f"cannot read the backup passphrase file: {exc.strerror}") from None
        return text.rstrip("\r\n")
    if getattr(args, "detach", False):
        raise UserError("give the backup passphrase with --backup-passphrase-file")
    env = os.environ.get("ANONCHAT_BACKUP_PASSPHRASE")
    if env is not None:
        return env
    if not sys.stdin.isatty():
        raise UserError(
            "no backup passphrase: use --backup-passphrase-file, ANONCHAT_BACKUP_PASSPHRASE "
            "or a terminal"
        )
    first = getpass.getpass("Backup passphrase: ")
    if confirm and getpass.getpass("Repeat backup passphrase: ") != first:
        raise UserError("the two backup passphrases differ")
    return first


async def open_engine(args: argparse.Namespace) -> Engine:
    paths = profile_paths(args.profile)
    if not paths.header.exists():
        raise UserError(f"no profile {args.profile!r}; create it with `anonchat-cli init`")
    return await Engine.open(await open_profile(paths, read_passphrase(args)))


def qr_text(path: str) -> str:
    try:
        return decode_file(Path(path))
    except QrError as exc:
        raise UserError(str(exc)) from None


async def wait_for(
    engine: Engine, done: Callable[[Event], bool], seconds: float, what: str
) -> None:
    """Wait until an event satisfies `done`, or raise Unreachable after `seconds`."""
    hit = asyncio.Event()
    stop = engine.subscribe(lambda e: hit.set() if done(e) else None)
    try:
        await asyncio.wait_for(hit.wait(), seconds)
    except TimeoutError:
        raise Unreachable(unreachable(engine, what)) from None
    finally:
        stop()


def unreachable(engine: Engine, what: str) -> str:
    """What was not reached; with a proxy and no relay connected, that the proxy may be why."""
    if engine.proxy() and not _any_online(engine):
        return f"{what}: no relay connection through the proxy {engine.proxy()} (is it running?)"
    return what


# -- commands ------------------------------------------------------------------------------


async def cmd_init(args: argparse.Namespace, out: Out) -> None:
    paths = profile_paths(args.profile)
    if paths.header.exists() or paths.database.exists():
        raise UserError(f"profile {args.profile!r} already exists")
    opened = await create_profile(
        paths, read_passphrase(args, True), args.name, args.relay, fallbacks=args.fallback
    )
    engine = await Engine.open(opened)
    try:
        if args.proxy:
            await engine.set_proxy(args.proxy)
        fp = engine.identity.public.to_bytes().hex()
        out.result(
            {
                "profile": str(paths.directory),
                "name": args.name.strip(),
                "relay": args.relay,
                "fallbacks": list(engine.relays[1:]),
                "proxy": engine.proxy() or None,
                "isolation": engine.isolation().value,
            },
            f"created profile {args.name.strip()!r} at {paths.directory} ({fp[:16]}...)",
        )
    finally:
        await engine.close()


async def cmd_card(engine: Engine, args: argparse.Namespace, out: Out) -> None:
    """A one-time code (works for one contact), or with --address the long-lived address."""
    card = await engine.card(address=args.address)
    if args.qr:
        make_png(card, Path(args.qr))
    kind = "address" if args.address else "one-time"
    out.result({"card": card, "kind": kind, "qr": args.qr}, card)


async def cmd_address(engine: Engine, args: argparse.Namespace, out: Out) -> None:
    """Change (rotate) or delete the long-lived address: the old one stops working."""
    if args.action == "rotate":
        card = await engine.rotate_address()
        out.result({"card": card, "kind": "address"}, card)
        return
    await engine.delete_address()
    out.result({"deleted": True}, "address deleted: its code no longer reaches you")


async def cmd_add(engine: Engine, args: argparse.Namespace, out: Out) -> None:
    if (args.card is None) == (args.qr_image is None):
        raise UserError("give a card text or --qr-image FILE, not both")
    text = qr_text(args.qr_image) if args.qr_image else args.card
    contact = await engine.add_contact(text, args.name)
    if args.wait > 0:
        await engine.start()
        cid = contact.id
        await wait_for(
            engine,
            lambda e: isinstance(e, ContactChanged) and e.contact.id == cid,
            args.wait,
            f"added {contact.display_name}; the handshake completes when they come online",
        )
    out.result(contact_json(contact), f"added {safe(contact.display_name)} (id {contact.id})")


async def cmd_contacts(engine: Engine, args: argparse.Namespace, out: Out) -> None:
    rows = [s for s in await engine.summaries() if not s.contact.is_group]  # people only
    data = [
        {
            **contact_json(s.contact),
            "unread": s.unread,
            "established": s.established,
            "muted": engine.is_muted(s.contact.id),
        }
        for s in rows
    ]
    lines = [
        f"{s.contact.id:>4}  {safe(s.contact.display_name)}"
        f"{'  [verified]' if s.contact.verified else ''}"
        f"{'  [muted]' if engine.is_muted(s.contact.id) else ''}"
        f"{_ended(s.contact) or ('' if s.established else '  [waiting for handshake]')}"
        f"{f'  ({s.unread} unread)' if s.unread else ''}"
        for s in rows
    ]
    out.result(data, "\n".join(lines) if lines else "no contacts yet")


def _ended(c: Contact) -> str:
    if c.state is not ContactState.ENDED:
        return ""
    return "  [blocked]" if c.blocked else "  [deleted]"


async def cmd_requests(engine: Engine, args: argparse.Namespace, out: Out) -> None:
    rows = await engine.requests()
    lines = []
    for s in rows:
        lines.append(f"{s.request.id:>4}  {safe(s.request.display_name)}  ({s.messages} messages)")
        if s.same_name_as is not None:
            lines.append(
                f"      warning: not your contact {safe(s.same_name_as.display_name)} "
                f"(id {s.same_name_as.id}): a different key with the same name"
            )
        if s.first_message is not None:
            lines.append(f"      < {safe(s.first_message.body)}")
    out.result([request_json(s) for s in rows], "\n".join(lines) if lines else "no requests")


async def cmd_accept(engine: Engine, args: argparse.Namespace, out: Out) -> None:
    request = await engine.find_request(args.request)
    target = None
    if args.as_new_key_of is not None:
        target = (await engine.find_contact(args.as_new_key_of)).id
    contact = await engine.accept_request(request.id, target)
    text = f"accepted {safe(contact.display_name)} (id {contact.id})"
    if target is not None:
        text = (
            f"{safe(contact.display_name)} (id {contact.id}) now has the new key; the verified "
            "mark was cleared: compare safety numbers again"
        )
    out.result(contact_json(contact), text)


async def cmd_block(engine: Engine, args: argparse.Namespace, out: Out) -> None:
    found = await engine.find_anyone(args.who)
    contact = await engine.block(found.id)
    out.result({**contact_json(contact), "blocked": True}, f"blocked {safe(contact.display_name)}")


async def cmd_delete_contact(engine: Engine, args: argparse.Namespace, out: Out) -> None:
    """A contact (with or without its history) or a request."""
    contact = await engine.find_anyone(args.contact)
    if contact.state is ContactState.REQUEST:
        await engine.delete_request(contact.id)
        kept = False
        text = f"deleted the request of {safe(contact.display_name)}"
    else:
        await engine.delete_contact(contact.id, keep_history=args.keep_history)
        kept = args.keep_history
        text = f"deleted {safe(contact.display_name)}{' (history kept)' if kept else ''}"
    out.result({"id": contact.id, "deleted": True, "history_kept": kept}, text)


async def cmd_rename(engine: Engine, args: argparse.Namespace, out: Out) -> None:
    contact = await engine.find_anyone(args.contact)
    renamed = await engine.rename(contact.id, args.new_name)
    out.result(contact_json(renamed), f"renamed to {safe(renamed.display_name)}")


async def cmd_mute(engine: Engine, args: argparse.Namespace, out: Out) -> None:
    contact = await engine.find_anyone(args.contact)
    await engine.mute(contact.id, not args.off)
    name = safe(contact.display_name)
    out.result(
        {**contact_json(contact), "muted": not args.off},
        f"{name} is muted: no notifications" if not args.off else f"{name} is no longer muted",
    )


async def cmd_status(engine: Engine, args: argparse.Namespace, out: Out) -> None:
    status = await engine.status()
    rejected = ", ".join(f"{k} {n}" for k, n in sorted(status.rejected.items())) or "none"
    out.result(
        {
            "name": engine.name,
            "relay": engine.relay_url,
            "fallbacks": list(engine.relays[1:]),
            "contacts": status.contacts,
            "requests": status.requests,
            "outbox": status.outbox,
            "rejected": status.rejected,
        },
        f"{safe(engine.name)} on {engine.relay_url}: {status.contacts} contacts, "
        f"{status.requests} requests, {status.outbox} waiting in the outbox; "
        f"dropped frames: {rejected}",
    )


async def person(engine: Engine, query: str, *, requests: bool = False) -> Contact:
    """A contact (or, with `requests`, a contact or a request) by name, id or unique prefix;
    for a group's name, an error that says which command takes it."""
    try:
        if requests:
            return await engine.find_anyone(query)
        return await engine.find_contact(query)
    except UserError as exc:
        refused = exc
    try:
        group = await engine.find_group(query)
    except UserError:
        raise refused from None
    raise UserError(
        f"{safe(group.name)} is a group: use `group send` or `group messages` for it"
    ) from None


async def cmd_send(engine: Engine, args: argparse.Namespace, out: Out) -> None:
    contact = await person(engine, args.contact)
    reply_to = None
    if args.reply_to is not None:
        reply_to = (await message_of(engine, contact, args.reply_to)).id
    message = await engine.send(contact.id, args.text, reply_to)
    status = await delivered(engine, contact, message, args.wait)
    out.result(
        {**message_json(message), "status": status.value},
        f"{status.value}: message {message.id} to {contact.display_name}",
    )


async def delivered(engine: Engine, contact: Contact, message: Message, wait: float) -> Status:
    """Wait (up to `wait` seconds, if any) for the contact's receipt of a new row of ours;
    its status then."""
    if wait <= 0:
        return message.status
    row = message.id

    def done(e: Event) -> bool:
        return (
            isinstance(e, MessageStatusChanged)
            and e.message_row == row
            and e.status in (Status.DELIVERED, Status.READ)
        )

    waiter = asyncio.ensure_future(
        wait_for(engine, done, wait, f"queued; {contact.display_name} not reached yet")
    )
    await asyncio.sleep(0)
    await engine.start()
    await waiter
    return Status.DELIVERED


async def sent_to(engine: Engine, contact: Contact, wait: float) -> bool:
    """Send what waits for the contact and wait (up to `wait` seconds, if any) until the
    contact acknowledged all of it; whether it did."""
    if wait <= 0:
        return False
    await engine.start()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while await engine.pending_outbox(contact.id):
        if loop.time() >= deadline:
            what = f"queued; {contact.display_name} not reached yet"
            raise Unreachable(unreachable(engine, what))
        await asyncio.sleep(0.1)
    return True


async def message_of(engine: Engine, contact: Contact, message_row: int) -> Message:
    """Message `message_row` (an `id` of `messages --json`), which must be the contact's."""
    message = await engine.message(message_row)
    if message.contact_id != contact.id:
        name = safe(contact.display_name)
        raise UserError(f"message {message_row} is not in the conversation with {name}")
    return message


async def updated(
    engine: Engine,
    contact: Contact,
    message: Message,
    args: argparse.Namespace,
    out: Out,
    what: str,
) -> None:
    """Say how an update of a message went: sent and acknowledged within `--wait`, or queued."""
    done = await sent_to(engine, contact, args.wait)
    out.result(
        {**message_json(message), "acknowledged": done},
        f"{what} message {message.id}" + ("" if done else " (queued)"),
    )


async def cmd_edit(engine: Engine, args: argparse.Namespace, out: Out) -> None:
    contact = await engine.find_contact(args.contact)
    message = await message_of(engine, contact, args.message)
    await updated(engine, contact, await engine.edit(message.id, args.text), args, out, "edited")


async def cmd_delete(engine: Engine, args: argparse.Namespace, out: Out) -> None:
    contact = await engine.find_anyone(args.contact)
    message = await message_of(engine, contact, args.message)
    after = await engine.delete_message(message.id, args.for_everyone)
    if after is None:
        out.result({"id": message.id, "deleted": "for me"}, f"deleted message {message.id}")
        return
    await updated(engine, contact, after, args, out, "deleted for everyone:")


async def cmd_react(engine: Engine, args: argparse.Namespace, out: Out) -> None:
    contact = await engine.find_contact(args.contact)
    message = await message_of(engine, contact, args.message)
    reacted = await engine.react(message.id, args.emoji)
    what = f"reacted {args.emoji} to" if args.emoji else "took back the reaction to"
    await updated(engine, contact, reacted, args, out, what)


def timer_seconds(value: str) -> int:
    """`off` or a number of seconds (up to a year), for `timer`."""
    if value == "off":
        return 0
    if not value.isdigit() or not 0 <= int(value) <= MAX_TIMER_S:
        raise argparse.ArgumentTypeError(f"off, or 1 to {MAX_TIMER_S} seconds")
    return int(value)


async def cmd_timer(engine: Engine, args: argparse.Namespace, out: Out) -> None:
    contact = await engine.find_contact(args.contact)
    notice = await engine.set_timer(contact.id, args.seconds)
    if notice is None:
        now = await engine.contact(contact.id)
        out.result(
            {**contact_json(now), "timer": now.timer_s, "changed": False},
            f"disappearing messages with {safe(contact.display_name)} were already "
            + timer_words(now.timer_s),
        )
        return
    status = await delivered(engine, contact, notice, args.wait)
    out.result(
        {**message_json(notice), "status": status.value, "changed": True},
        f"{status.value}: {describe(notice)}",
    )


def file_line(f: FileInfo) -> str:
    """One file as `files` prints it: id, direction, name, size, where it stands."""
    line = f"{f.id:>5} {'>' if f.direction is Direction.OUTGOING else '<'} {safe(f.name)}"
    line += f"  {size_words(f.size)}  {f.state.value}"
    if f.state in (FileState.QUEUED, FileState.TRANSFERRING) and f.size:
        line += f" {f.received_bytes * 100 // f.size}%"
    if f.error:
        line += f" ({safe(f.error)})"
    return line


def progress_words(f: FileInfo) -> str:
    return f"{size_words(f.received_bytes)} of {size_words(f.size)}"


async def settled(engine: Engine, row: int, wait: float, what: str) -> FileInfo:
    """Stay connected until file `row` is complete, failed or cancelled (up to `wait`
    seconds): it then. Unreachable, naming how far it came, when the time ran out."""
    hit = asyncio.Event()

    def heard(e: Event) -> None:
        if isinstance(e, FileChanged) and e.file.id == row and e.file.state.finished:
            hit.set()

    stop = engine.subscribe(heard)
    try:
        await engine.start()
        info = await engine.file(row)
        if not info.state.finished:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(hit.wait(), wait)
            info = await engine.file(row)
        if not info.state.finished:
            raise Unreachable(unreachable(engine, f"{what}: {progress_words(info)} so far"))
        return info
    finally:
        stop()


async def cmd_send_file(engine: Engine, args: argparse.Namespace, out: Out) -> None:
    contact = await engine.find_contact(args.contact)
    message = await engine.send_file(contact.id, Path(args.path))
    assert message.file is not None
    info = message.file
    name = safe(contact.display_name)
    if args.wait > 0:
        info = await settled(engine, info.id, args.wait, f"offered; {name} has not got it all")
        if info.state is not FileState.COMPLETE:
            raise UserError(f"file {info.id} was not received: {info.state.value}")
    out.result(
        {**message_json(message), "file": file_json(info)},
        f"{info.state.value}: file {info.id} ({safe(info.name)}, {size_words(info.size)}) "
        f"to {name}",
    )


async def cmd_files(engine: Engine, args: argparse.Namespace, out: Out) -> None:
    contact_id = None
    if args.contact is not None:
        contact_id = (await engine.find_anyone(args.contact)).id
    rows = await engine.files(contact_id)
    lines = [file_line(f) for f in rows]
    out.result([file_json(f) for f in rows], "\n".join(lines) if lines else "no files")


async def fetched(engine: Engine, row: int, wait: float) -> FileInfo:
    """File `row` fetched if it is not here yet: asked for, then (with `wait`) waited for
    until it is complete; UserError when it failed or was cancelled."""
    info = await engine.file(row)
    if info.available or wait <= 0:
        return info
    await engine.start()
    await engine.download(row)
    info = await settled(engine, row, wait, f"file {row} has not arrived")
    if info.state is not FileState.COMPLETE:
        why = f": {info.error}" if info.error else ""
        raise UserError(f"file {row} did not arrive ({info.state.value}{safe(why)})")
    return info


async def cmd_save_file(engine: Engine, args: argparse.Namespace, out: Out) -> None:
    """Write a file (received whole and checked, or ours) to PATH; one not here yet is
    fetched first, waiting up to --wait seconds."""
    info = await fetched(engine, args.file, args.wait)
    if not info.available:
        raise UserError(
            f"file {info.id} has not arrived yet ({progress_words(info)}); "
            "give --wait SECONDS to fetch it"
        )
    saved = await engine.save_file(info.id, args.path)
    out.result(
        {**file_json(info), "path": str(saved)},
        f"saved file {info.id} ({size_words(info.size)}) to {saved}",
    )


async def cmd_download_file(engine: Engine, args: argparse.Namespace, out: Out) -> None:
    """Ask for a file offered to us (again, after a failure or a cancel); ours, cancelled,
    is offered again. With --wait, wait until it is complete."""
    await engine.start()
    info = await engine.download(args.file)
    if args.wait > 0:
        info = await fetched(engine, args.file, args.wait)
    out.result(
        file_json(info),
        f"file {info.id}: {info.state.value} ({progress_words(info)})",
    )


async def cmd_cancel_file(engine: Engine, args: argparse.Namespace, out: Out) -> None:
    info = await engine.cancel_file(args.file)
    out.result(file_json(info), f"file {info.id}: {info.state.value}")


async def cmd_sync(engine: Engine, args: argparse.Namespace, out: Out) -> None:
    arrived: list[Message] = []
    online = asyncio.Event()

    def seen(e: Event) -> None:
        if isinstance(e, MessageAdded) and e.message.direction is Direction.INCOMING:
            arrived.append(e.message)
        if isinstance(e, ConnectionChanged) and e.state.value == "online":
            online.set()

    stop = engine.subscribe(seen)
    try:
        await engine.start()
        await asyncio.sleep(args.wait)
    finally:
        stop()
    if not online.is_set() and not _any_online(engine):
        raise Unreachable(unreachable(engine, "could not reach the relay"))
    names = {s.contact.id: s.contact.display_name for s in await engine.summaries()}
    names.update({s.request.id: s.request.display_name for s in await engine.requests()})
    lines = [
        f"[{safe(names.get(m.contact_id, '?'))}] {safe(m.author)}: {safe(m.body)}"
        if m.author_keys is not None
        else f"{safe(names.get(m.contact_id, '?'))}: {safe(m.body)}"
        for m in arrived
    ]
    pending = await engine.pending_outbox()
    received = [message_json(m, engine.is_group(m.contact_id)) for m in arrived]
    out.result(
        {"received": received, "outbox": pending},
        "\n".join([*lines, f"({len(arrived)} received, {pending} waiting in the outbox)"]),
    )


def _any_online(engine: Engine) -> bool:
    return any(s.value == "online" for s in engine.connection_states().values())


async def cmd_listen(engine: Engine, args: argparse.Namespace, out: Out) -> None:
    """Every event as a JSON line until stopped (SIGINT, SIGTERM, or the API client leaving).
    On its own it goes on printing while the engine closes (the frame in hand is finished
    and reported); for an API client (`args.detach`) it stops at once."""

    def heard(event: Event) -> None:
        data = event_json(event, engine.is_group)
        if data is not None:
            out.event(data)

    unsubscribe = engine.subscribe(heard)
    try:
        stop: asyncio.Event = args.stop
        if stop.is_set():  # stopped while the profile was being unlocked
            return
        await engine.start()
        out.event({"event": "listening"})
        await stop.wait()
    finally:
        if getattr(args, "detach", False):
            unsubscribe()


async def cmd_daemon(engine: Engine, args: argparse.Namespace, out: Out) -> None:
    """`listen` without printing: hold the profile open and serve the local API until
    stopped."""
    stop: asyncio.Event = args.stop
    if stop.is_set():
        return
    await engine.start()
    out.note(f"serving {api_path(args)} until stopped")
    await stop.wait()


async def cmd_messages(engine: Engine, args: argparse.Namespace, out: Out) -> None:
    contact = await person(engine, args.contact, requests=True)
    page = await engine.messages(contact.id, args.limit)
    await engine.mark_read(contact.id)
    page.reverse()
    lines = [message_line(m, contact.display_name) for m in page]
    out.result([message_json(m) for m in page], "\n".join(lines) if lines else "no messages")


def message_line(m: Message, name: str, *, group: bool = False) -> str:
    """One message as `messages` prints it: id, direction, (in a group, its author,) text (or
    what the row stands for), and what happened to it."""
    line = f"{m.id:>5} {'>' if m.direction is Direction.OUTGOING else '<'} "
    if group:
        line += f"{safe(name)}: "
    if m.quote is not None:
        line += f"[re {m.quote.id}] "
    line += safe(describe(m, name))
    marks = [m.status.value] if m.direction is Direction.OUTGOING and m.is_text else []
    if m.edited_at is not None:
        marks.append("edited")
    marks += [("you " if r.from_me else "") + r.emoji for r in m.reactions]
    if m.expires_at is not None:
        marks.append("disappears")
    return line + (f"  [{', '.join(safe(x) for x in marks)}]" if marks else "")


async def cmd_fingerprint(engine: Engine, args: argparse.Namespace, out: Out) -> None:
    contact = await engine.find_contact(args.contact)
    number = await engine.safety_number(contact.id)
    code = await engine.verification_code(contact.id)
    if args.qr:
        make_png(code, Path(args.qr))
    out.result(
        {"contact": contact.id, "safety_number": number, "verification_code": code},
        f"safety number with {safe(contact.display_name)}:\n{number}",
    )


async def cmd_verify(engine: Engine, args: argparse.Namespace, out: Out) -> None:
    if (args.number is None) == (args.qr_image is None):
        raise UserError("give the safety number or --qr-image FILE, not both")
    contact = await engine.find_contact(args.contact)
    evidence = qr_text(args.qr_image) if args.qr_image else args.number
    contact = await engine.verify(contact.id, evidence)
    out.result(contact_json(contact), f"{safe(contact.display_name)} is verified")


async def cmd_config(engine: Engine, args: argparse.Namespace, out: Out) -> None:
    """Show the network settings, or change one (applies from the next start)."""
    if args.setting == "proxy":
        await engine.set_proxy(args.value)
    elif args.setting == "isolation":
        await engine.set_isolation(None if args.value == "default" else args.value)
    elif args.setting == "quota":
        await engine.set_quota(args.value)
    elif args.setting == "auto-download":
        await engine.set_auto_download(args.value)
    elif args.setting == "relay":
        before = engine.relays
        await engine.set_relays(args.value, test=not args.no_test)
        if engine.relays != before:
            out.note(
                "every contact is told over its conversation and moves with you when this "
                "profile is next online (listen, sync or the app)"
            )
    proxy, isolation, quota = engine.proxy(), engine.isolation().value, engine.quota()
    relays, auto = engine.relays, engine.auto_download()
    out.result(
        {
            "relay": relays[0],
            "fallbacks": list(relays[1:]),
            "proxy": proxy or None,
            "isolation": isolation,
            "quota_mb": quota,
            "auto_download_mb": auto,
        },
        f"relay: {relays[0]}\n"
        + "".join(f"fallback: {url}\n" for url in relays[1:])
        + f"proxy: {proxy or 'none (direct connections)'}\nisolation: {isolation}\n"
        f"storage per contact: {quota} MB\n"
        f"files fetched when offered: {f'up to {auto} MB' if auto else 'none'}",
    )


async def cmd_relays(args: argparse.Namespace, out: Out) -> None:
    """Relays announced on this network (mDNS): no profile, no passphrase."""
    found = await browse(args.seconds)
    lines = [f"{safe(r.name)}  {r.url}  ({', '.join(r.addresses)})" for r in found]
    out.result(
        [{"name": r.name, "url": r.url, "addresses": list(r.addresses)} for r in found],
        "\n".join(lines) if lines else "No relays found on this network.",
    )


WIPE_HOLDER_WAIT_S = 5.0  # how long a wipe waits for the process holding the profile


async def cmd_wipe(args: argparse.Namespace, out: Out) -> int:
    """Panic wipe, no passphrase asked: the key header first (the database is noise without
    it), then the process holding the profile open, if any, is told to wipe and stop, then
    every file of the profile goes whatever that process answers."""
    if not args.yes:
        print(
            "anonchat-cli: wipe destroys this profile for good, without asking for its "
            "passphrase: add --yes to do it",
            file=sys.stderr,
        )
        return EXIT_USAGE
    paths = profile_paths(args.profile)
    try:
        await destroy_header(paths)
    finally:
        held = await wipe_holder(args)
        await wipe_profile(paths)
    out.result(
        {"profile": str(paths.directory), "wiped": True, "holder": held},
        f"wiped the profile at {paths.directory}"
        + ("; the process holding it open was told to stop" if held else ""),
    )
    return EXIT_OK


async def wipe_holder(args: argparse.Namespace) -> bool:
    """Tell the process serving this profile (a window, a daemon) to wipe it and stop; True
    when one was there. Its answer is not waited for past WIPE_HOLDER_WAIT_S."""
    client = await ApiClient.connect(api_path(args))
    if client is None:
        return False
    try:
        await asyncio.wait_for(client.call("wipe", {"yes": True}), WIPE_HOLDER_WAIT_S)
    except (RpcError, ConnectionError, TimeoutError):
        pass  # it went away, or took too long: the files go all the same
    finally:
        await client.close()
    return True


async def cmd_wipe_held(engine: Engine, args: argparse.Namespace, out: Out) -> None:
    """`wipe` served by the process holding the profile: its engine wipes and stops."""
    if not args.yes:
        raise UserError("wipe destroys this profile for good: it needs yes")
    await engine.wipe()
    out.result({"wiped": True}, "wiped")


def read_duress_passphrase() -> str:
    env = os.environ.get("ANONCHAT_DURESS_PASSPHRASE")
    if env is not None:
        return env
    if not sys.stdin.isatty():
        raise UserError("no duress passphrase: use ANONCHAT_DURESS_PASSPHRASE or a terminal")
    first = getpass.getpass("Duress passphrase: ")
    if getpass.getpass("Repeat duress passphrase: ") != first:
        raise UserError("the two duress passphrases differ")
    return first


async def cmd_duress(engine: Engine, args: argparse.Namespace, out: Out) -> None:
    """Set (from ANONCHAT_DURESS_PASSPHRASE) or clear the duress passphrase."""
    if args.action == "clear":
        await engine.clear_duress()
        out.result({"duress": "cleared"}, "duress passphrase cleared")
        return
    await engine.set_duress(read_duress_passphrase())
    out.result(
        {"duress": "set"},
        "duress passphrase set: entered instead of the passphrase, it wipes this profile and "
        "opens an empty one with this name and these relays (set it again after changing them)",
    )


async def cmd_backup(engine: Engine, args: argparse.Namespace, out: Out) -> None:
    """The whole profile into one encrypted file (docs/backup.md)."""
    made = await engine.backup(
        Path(args.path), read_backup_passphrase(args, True), include_files=not args.no_files
    )
    out.result(
        {
            "path": str(made.path),
            "bytes": made.size,
            "messages": made.messages,
            "files": made.files,
            "files_included": not args.no_files,
            "made_at": made.made_at,
        },
        f"backed up {made.messages} messages and {made.files} files to {made.path} "
        f"({size_words(made.size)})" + ("; files left out" if args.no_files else ""),
    )


async def cmd_restore(args: argparse.Namespace, out: Out) -> None:
    """A new profile (--profile) from a backup file; refuses one that exists."""
    paths = profile_paths(args.profile)
    if paths.directory.exists():
        raise UserError(f"profile {args.profile!r} already exists: restore into a new one")
    backup_passphrase = read_backup_passphrase(args)
    got = await restore_profile(
        paths, Path(args.path), backup_passphrase, read_passphrase(args, True)
    )
    lines = [
        f"restored profile at {paths.directory}: {got.contacts} contacts, {got.messages} "
        f"messages, {got.files} files, {got.groups} groups"
    ]
    if got.requests_dropped:
        lines.append(
            f"{got.requests_dropped} message requests were dropped (there is no channel to "
            "answer them on)"
        )
    if got.not_reconnected:
        lines.append(
            f"{got.not_reconnected} contacts cannot be reconnected automatically: exchange "
            "codes with them again"
        )
    if got.files_left_out:
        lines.append(f"{got.files_left_out} files were not in the backup (kept as failed)")
    out.result(
        {
            "profile": str(paths.directory),
            "contacts": got.contacts,
            "messages": got.messages,
            "files": got.files,
            "groups": got.groups,
            "requests_dropped": got.requests_dropped,
            "not_reconnected": got.not_reconnected,
            "files_left_out": got.files_left_out,
            "made_at": got.made_at,
        },
        "\n".join(lines),
    )


def browse_seconds(text: str) -> float:
    value = float(text)
    if not 0 < value <= 60:
        raise argparse.ArgumentTypeError("give a number of seconds from 0 to 60")
    return value


# -- groups (docs/groups.md) ----------------------------------------------------------------

_STANDING = {
    GroupState.INVITED: "  [invited: not joined yet]",
    GroupState.LEFT: "  [you left]",
    GroupState.REMOVED: "  [you were removed]",
}
KEY_SHOWN = 16  # hex digits of a member's key that `groups` shows (and a prefix matches)
MIN_KEY_PREFIX = 4  # fewer hex digits than this are taken as a name


def member_label(m: GroupMember) -> str:
    """A member as `groups` names them, which `group remove` and `group promote` take back."""
    return f"{safe(m.name)} ({m.keys.hex()[:KEY_SHOWN]})"


def member_line(m: GroupMember) -> str:
    marks = [
        word
        for word, on in (
            ("you", m.is_me),
            ("admin", m.admin),
            ("contact", m.is_contact),
            ("verified", m.verified),
            ("not joined yet", not m.joined),
            ("not connected yet", m.joined and not m.is_me and m.contact_id is None),
        )
        if on
    ]
    return f"        {member_label(m)}" + (f"  [{', '.join(marks)}]" if marks else "")


def group_lines(g: Group) -> list[str]:
    count = f"{len(g.members)} member{'s' if len(g.members) != 1 else ''}"
    head = f"{g.id:>4}  {safe(g.name)}  ({count}{', you are an admin' if g.am_admin else ''})"
    if g.invited_by:
        head += f"  invited by {safe(g.invited_by)}"
    return [head + _STANDING.get(g.state, ""), *(member_line(m) for m in g.members)]


def find_member(group: Group, query: str) -> GroupMember:
    """A current member of `group` by name (case-insensitive), by the start of their key in hex
    (at least MIN_KEY_PREFIX digits), as `groups` shows them ("Name (key)"), or by a unique
    start of their name."""
    wanted = query.strip()
    shown = re.fullmatch(r"(.*?)\s*\(([0-9a-fA-F]+)\)", wanted)
    if shown is not None:
        by_key = [m for m in group.members if m.keys.hex().startswith(shown.group(2).lower())]
        if len(by_key) == 1 and by_key[0].name.casefold() == shown.group(1).casefold():
            return by_key[0]
    folded = wanted.casefold()
    exact = [m for m in group.members if m.name.casefold() == folded]
    if len(exact) == 1:
        return exact[0]
    if len(folded) >= MIN_KEY_PREFIX and all(c in "0123456789abcdef" for c in folded):
        by_key = [m for m in group.members if m.keys.hex().startswith(folded)]
        if len(by_key) == 1:
            return by_key[0]
    prefix = [m for m in group.members if m.name.casefold().startswith(folded)]
    if len(prefix) == 1 and folded and not exact:
        return prefix[0]
    name = safe(group.name)
    if not exact and not prefix:
        raise UserError(f"no member of {name} matches {safe(query)!r}")
    raise UserError(
        f"{safe(query)!r} matches several members of {name}; give the start of their key "
        "(`groups` shows it)"
    )


def member_rows(group: Group, *also: GroupMember | None) -> dict[int, str]:
    """The rows we talk to these members through (every other member's, and `also`), by
    name: whose receipts a change waits for."""
    members = [*group.members, *(m for m in also if m is not None)]
    return {m.contact_id: m.name for m in members if m.contact_id is not None and not m.is_me}


async def reached(engine: Engine, rows: dict[int, str], wait: float, what: str) -> bool:
    """Send what waits for these rows and wait (up to `wait` seconds, if any) until each has
    acknowledged all of it; whether we waited. Unreachable, naming who was not reached."""
    if wait <= 0 or not rows:
        return False
    await engine.start()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        left = [name for row, name in rows.items() if await engine.pending_outbox(row)]
        if not left:
            return True
        if loop.time() >= deadline:
            names = ", ".join(sorted(safe(n) for n in set(left)))
            raise Unreachable(unreachable(engine, f"{what}; not reached yet: {names}"))
        await asyncio.sleep(0.1)


async def group_changed(
    engine: Engine,
    args: argparse.Namespace,
    out: Out,
    group: Group,
    rows: dict[int, str],
    what: str,
) -> None:
    """Say how a change went, once the members it concerns acknowledged it (--wait)."""
    done = await reached(engine, rows, args.wait, f"{what} (queued)")
    out.result(
        {**group_json(group), "acknowledged": done},
        what + ("" if done or not rows else " (queued: members hear of it once online)"),
    )


async def cmd_groups(engine: Engine, args: argparse.Namespace, out: Out) -> None:
    rows = await engine.groups()
    lines = [line for g in rows for line in group_lines(g)]
    out.result([group_json(g) for g in rows], "\n".join(lines) if lines else "no groups yet")


async def cmd_group_invites(engine: Engine, args: argparse.Namespace, out: Out) -> None:
    rows = await engine.group_invites()
    lines = [line for g in rows for line in group_lines(g)]
    out.result(
        [group_json(g) for g in rows],
        "\n".join(lines) if lines else "no group invitations",
    )


async def cmd_group_create(engine: Engine, args: argparse.Namespace, out: Out) -> None:
    invited = [await person(engine, query) for query in args.contacts]
    group = await engine.create_group(args.name, [c.id for c in invited])
    names = ", ".join(safe(c.display_name) for c in invited)
    rows = {c.id: c.display_name for c in invited}
    what = f"created {safe(group.name)} (id {group.id}), invited {names}"
    await group_changed(engine, args, out, group, rows, what)


async def cmd_group_join(engine: Engine, args: argparse.Namespace, out: Out) -> None:
    invite = await engine.find_group(args.invite, invites=True)
    group = await engine.join_group(invite.id)
    what = f"joined {safe(group.name)} (id {group.id})"
    await group_changed(engine, args, out, group, member_rows(group), what)


async def cmd_group_decline(engine: Engine, args: argparse.Namespace, out: Out) -> None:
    invite = await engine.find_group(args.invite, invites=True)
    await engine.decline_group(invite.id)
    out.result(
        {"id": invite.id, "name": invite.name, "declined": True},
        f"declined the invitation to {safe(invite.name)}",
    )


async def cmd_group_add(engine: Engine, args: argparse.Namespace, out: Out) -> None:
    group = await engine.find_group(args.group)
    contact = await person(engine, args.contact)
    after = await engine.add_member(group.id, contact.id)
    rows = {**member_rows(after), contact.id: contact.display_name}
    what = f"added {safe(contact.display_name)} to {safe(after.name)}"
    await group_changed(engine, args, out, after, rows, what)


async def cmd_group_remove(engine: Engine, args: argparse.Namespace, out: Out) -> None:
    group = await engine.find_group(args.group)
    member = find_member(group, args.member)
    after = await engine.remove_member(group.id, member.keys)
    what = f"removed {member_label(member)} from {safe(after.name)}"
    await group_changed(engine, args, out, after, member_rows(after, member), what)


async def cmd_group_promote(engine: Engine, args: argparse.Namespace, out: Out) -> None:
    group = await engine.find_group(args.group)
    member = find_member(group, args.member)
    after = await engine.promote_member(group.id, member.keys)
    what = f"{member_label(member)} is now an admin of {safe(after.name)}"
    await group_changed(engine, args, out, after, member_rows(after), what)


async def cmd_group_rename(engine: Engine, args: argparse.Namespace, out: Out) -> None:
    group = await engine.find_group(args.group)
    after = await engine.rename_group(group.id, args.name)
    what = f"renamed {safe(group.name)} to {safe(after.name)}"
    await group_changed(engine, args, out, after, member_rows(after), what)


async def cmd_group_leave(engine: Engine, args: argparse.Namespace, out: Out) -> None:
    group = await engine.find_group(args.group)
    after = await engine.leave_group(group.id)
    what = f"left {safe(after.name)}"
    await group_changed(engine, args, out, after, member_rows(group), what)


def deliveries_json(rows: list[Delivery]) -> list[dict[str, Any]]:
    return [
        {"name": d.member.name, "key": d.member.keys.hex(), "delivered": d.delivered} for d in rows
    ]


def delivery_words(rows: list[Delivery]) -> str:
    return f"delivered to {sum(d.delivered for d in rows)} of {len(rows)}"


async def cmd_group_send(engine: Engine, args: argparse.Namespace, out: Out) -> None:
    group = await engine.find_group(args.group)
    reply_to = None
    if args.reply_to is not None:
        quoted = await engine.message(args.reply_to)
        if quoted.contact_id != group.id:
            raise UserError(f"message {args.reply_to} is not in {safe(group.name)}")
        reply_to = quoted.id
    message = await engine.send(group.id, args.text, reply_to)
    if args.wait > 0 and await engine.deliveries(message.id):
        message = await group_delivered(engine, message, args.wait)
    copies = await engine.deliveries(message.id)
    words = delivery_words(copies)
    if message.status in (Status.DELIVERED, Status.READ) and not all(d.delivered for d in copies):
        words += "; the others get it passed on by members"
    out.result(
        {**message_json(message, True), "deliveries": deliveries_json(copies)},
        f"{message.status.value}: message {message.id} to {safe(group.name)} ({words})",
    )


async def group_delivered(engine: Engine, message: Message, wait: float) -> Message:
    """Stay connected until every copy of our group message that went out is acknowledged
    (its status `delivered`), up to `wait` seconds: the message then. A member we had no
    channel with got no copy (members pass the message on to them): not waited for.
    Unreachable after `wait`, saying how many have it."""
    await engine.start()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while message.status not in (Status.DELIVERED, Status.READ):
        if loop.time() >= deadline:
            copies = await engine.deliveries(message.id)
            what = f"queued; {delivery_words(copies)} members so far (members pass it on)"
            raise Unreachable(unreachable(engine, what))
        await asyncio.sleep(0.1)
        message = await engine.message(message.id)
    return message


async def cmd_group_messages(engine: Engine, args: argparse.Namespace, out: Out) -> None:
    group = await engine.find_group(args.group)
    page = await engine.messages(group.id, args.limit)
    await engine.mark_read(group.id)
    page.reverse()
    rows, lines = [], []
    for m in page:
        data = message_json(m, True)
        line = message_line(m, author_of(m) or "Someone", group=True)
        if m.direction is Direction.OUTGOING and m.is_text:
            copies = await engine.deliveries(m.id)
            data["deliveries"] = deliveries_json(copies)
            line += f"  ({delivery_words(copies)})" if copies else ""
        rows.append(data)
        lines.append(line)
    out.result(rows, "\n".join(lines) if lines else f"no messages in {safe(group.name)}")


COMMANDS: dict[str, Callable[[Engine, argparse.Namespace, Out], Awaitable[None]]] = {
    "config": cmd_config,
    "address": cmd_address,
    "card": cmd_card,
    "add": cmd_add,
    "contacts": cmd_contacts,
    "send": cmd_send,
    "sync": cmd_sync,
    "listen": cmd_listen,
    "daemon": cmd_daemon,
    "messages": cmd_messages,
    "edit": cmd_edit,
    "delete": cmd_delete,
    "react": cmd_react,
    "timer": cmd_timer,
    "fingerprint": cmd_fingerprint,
    "verify": cmd_verify,
    "requests": cmd_requests,
    "accept": cmd_accept,
    "block": cmd_block,
    "delete-contact": cmd_delete_contact,
    "rename": cmd_rename,
    "mute": cmd_mute,
    "status": cmd_status,
    "send-file": cmd_send_file,
    "files": cmd_files,
    "save-file": cmd_save_file,
    "download-file": cmd_download_file,
    "cancel-file": cmd_cancel_file,
    "groups": cmd_groups,
    "group-create": cmd_group_create,
    "group-invites": cmd_group_invites,
    "group-join": cmd_group_join,
    "group-decline": cmd_group_decline,
    "group-add": cmd_group_add,
    "group-remove": cmd_group_remove,
    "group-promote": cmd_group_promote,
    "group-rename": cmd_group_rename,
    "group-leave": cmd_group_leave,
    "group-send": cmd_group_send,
    "group-messages": cmd_group_messages,
    "backup": cmd_backup,
    "wipe": cmd_wipe_held,
    "duress": cmd_duress,
}


class CommandParser(argparse.ArgumentParser):
    """An argument parser that keeps what was added to it (its options, and the commands of
    its subcommand if it has one), so a call to the local API can be checked against it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.options: list[tuple[argparse.Action, str]] = []  # each with its action kind
        self.subcommand_dest = ""
        self.subcommands: dict[str, CommandParser] = {}
        super().__init__(*args, **kwargs)

    def add_argument(self, *args: Any, **kwargs: Any) -> argparse.Action:
        action = super().add_argument(*args, **kwargs)
        if action.dest != "help":
            self.options.append((action, str(kwargs.get("action", "store"))))
        return action

    def commands(self, dest: str, **kwargs: Any) -> Any:
        """`add_subparsers`, remembered."""
        group = self.add_subparsers(dest=dest, parser_class=CommandParser, **kwargs)
        self.subcommand_dest = dest
        self.subcommands = group.choices
        return group


def parser() -> CommandParser:
    p = CommandParser(prog="anonchat-cli", description=__doc__.splitlines()[0])
    p.add_argument("--profile", default="default", help="profile name or directory")
    p.add_argument("--passphrase-file", help="read the passphrase from this file")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    sub = p.commands("command", required=True)
    s = sub.add_parser("init", help="create a profile")
    s.add_argument("--name", required=True)
    s.add_argument("--relay", default=DEFAULT_RELAY)
    s.add_argument(
        "--fallback",
        action="append",
        default=[],
        metavar="URL",
        help="a relay to use while the first is away (up to two, in order)",
    )
    s.add_argument("--proxy", metavar="URL", help="connect through this SOCKS5 proxy (Tor)")
    s = sub.add_parser("card", help="print a one-time code for one new contact")
    s.add_argument("--qr", metavar="FILE.png", help="also write it as a QR code image")
    s.add_argument("--address", action="store_true", help="your long-lived address instead")
    s = sub.add_parser("address", help="change or delete your long-lived address")
    s.add_argument("action", choices=["rotate", "delete"])
    s = sub.add_parser("add", help="add a contact from their card")
    s.add_argument("card", nargs="?")
    s.add_argument("--qr-image", metavar="FILE")
    s.add_argument("--name")
    s.add_argument("--wait", type=float, default=10.0)
    sub.add_parser("contacts", help="list contacts")
    s = sub.add_parser("send", help="send a message")
    s.add_argument("contact")
    s.add_argument("text")
    s.add_argument("--reply-to", type=int, metavar="MESSAGE_ID", help="quote this message")
    s.add_argument("--wait", type=float, default=10.0)
    for name, what, extra in (
        ("edit", "change the text of a message you sent", "text"),
        ("delete", "delete a message (for you, or for everyone)", "--for-everyone"),
        ("react", 'react to a message with an emoji ("" takes it back)', "emoji"),
    ):
        s = sub.add_parser(name, help=what)
        s.add_argument("contact")
        s.add_argument("message", type=int, metavar="MESSAGE_ID")
        if extra.startswith("--"):
            s.add_argument(extra, action="store_true", help="your message, within 24 hours")
        else:
            s.add_argument(extra)
        s.add_argument("--wait", type=float, default=10.0)
    s = sub.add_parser("timer", help="disappearing messages in a conversation: off or seconds")
    s.add_argument("contact")
    s.add_argument("seconds", type=timer_seconds, metavar="off|SECONDS")
    s.add_argument("--wait", type=float, default=10.0)
    s = sub.add_parser("send-file", help="send a file (with --wait: until they have it all)")
    s.add_argument("contact")
    s.add_argument("path")
    s.add_argument("--wait", type=float, default=0.0, help="seconds to stay until received")
    s = sub.add_parser("files", help="list files sent and received (FILE_ID is their id)")
    s.add_argument("contact", nargs="?")
    s = sub.add_parser("save-file", help="write a file received to PATH (fetching it first)")
    s.add_argument("file", type=int, metavar="FILE_ID")
    s.add_argument("path")
    s.add_argument("--wait", type=float, default=10.0, help="seconds to wait for it to arrive")
    s = sub.add_parser("download-file", help="fetch a file offered to you (again)")
    s.add_argument("file", type=int, metavar="FILE_ID")
    s.add_argument("--wait", type=float, default=0.0, help="seconds to wait for it to arrive")
    s = sub.add_parser("cancel-file", help="stop sending or fetching a file")
    s.add_argument("file", type=int, metavar="FILE_ID")
    groups_parser(sub)
    s = sub.add_parser("sync", help="send what waits, receive for a while")
    s.add_argument("--wait", type=float, default=5.0)
    sub.add_parser("listen", help="stay connected and print events as JSON lines")
    sub.add_parser("daemon", help="hold the profile open and serve the local API (docs/api.md)")
    s = sub.add_parser("messages", help="show a conversation (marks it read)")
    s.add_argument("contact")
    s.add_argument("--limit", type=int, default=50)
    s = sub.add_parser("fingerprint", help="show the safety number with a contact")
    s.add_argument("contact")
    s.add_argument("--qr", metavar="FILE.png", help="write our verification code as a QR image")
    s = sub.add_parser("verify", help="mark a contact verified")
    s.add_argument("contact")
    s.add_argument("number", nargs="?")
    s.add_argument("--qr-image", metavar="FILE")
    sub.add_parser("requests", help="list message requests (people you do not know yet)")
    s = sub.add_parser("accept", help="accept a message request")
    s.add_argument("request")
    s.add_argument("--as-new-key-of", metavar="CONTACT", help="as this contact's new key")
    s = sub.add_parser("block", help="block a request or a contact (by their key)")
    s.add_argument("who", metavar="REQUEST_OR_CONTACT")
    s = sub.add_parser("delete-contact", help="delete a contact (or a request)")
    s.add_argument("contact")
    s.add_argument("--keep-history", action="store_true", help="keep the conversation")
    s = sub.add_parser("rename", help="rename a contact")
    s.add_argument("contact")
    s.add_argument("new_name")
    s = sub.add_parser("mute", help="no notifications for a contact (their messages still come)")
    s.add_argument("contact")
    s.add_argument("--off", action="store_true", help="notify again")
    sub.add_parser("status", help="counts: contacts, requests, outbox, dropped frames")
    s = sub.add_parser("config", help="show or change the network and storage settings")
    c = s.commands("setting")
    c.add_parser("proxy", help="socks5h://host:port (Tor: socks5h://127.0.0.1:9050) or none")
    c.choices["proxy"].add_argument("value", metavar="URL|none")
    c.add_parser("isolation", help="which connections carry what")
    c.choices["isolation"].add_argument(
        "value", choices=["per-contact", "card-apart", "shared", "default"]
    )
    c.add_parser("relay", help="use these relays (the first, then fallbacks); contacts move")
    c.choices["relay"].add_argument("value", metavar="URL", nargs="+")
    c.choices["relay"].add_argument(
        "--no-test", action="store_true", help="take them without trying them first"
    )
    c.add_parser("quota", help="MB one contact's messages may take (past it they wait)")
    c.choices["quota"].add_argument("value", metavar="MB", type=int)
    c.add_parser("auto-download", help="files up to MB are fetched when offered (0: none)")
    c.choices["auto-download"].add_argument("value", metavar="MB", type=int)
    s = sub.add_parser("backup", help="the whole profile into one encrypted file")
    s.add_argument("path", metavar="PATH")
    s.add_argument("--no-files", action="store_true", help="leave the files' bytes out")
    s.add_argument("--backup-passphrase-file", metavar="FILE", help="the backup's passphrase")
    s = sub.add_parser("restore", help="a new profile (--profile) from a backup file")
    s.add_argument("path", metavar="PATH")
    s.add_argument("--backup-passphrase-file", metavar="FILE", help="the backup's passphrase")
    s = sub.add_parser("wipe", help="destroy this profile at once, asking no passphrase")
    s.add_argument("--yes", action="store_true", help="yes: destroy it for good")
    s = sub.add_parser("duress", help="set or clear the duress passphrase (it wipes at unlock)")
    s.add_argument("action", choices=["set", "clear"])
    s = sub.add_parser("relays", help="list the relays announced on this network (no profile)")
    s.add_argument("--seconds", type=browse_seconds, default=3.0, help="how long to listen")
    s.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="as JSON")
    return p


GROUP_COMMAND = "group_command"  # `group create` runs (and is served) as `group-create`


def groups_parser(sub: Any) -> None:
    """`groups`, and `group ACTION ...`: each action a command (and API method) of its own,
    `group-ACTION`."""

    def add(parent: Any, name: str, what: str) -> CommandParser:
        s: CommandParser = parent.add_parser(name, help=what, description=what)
        s.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="as JSON")
        return s

    def wait(s: CommandParser, what: str = "the members' receipts") -> None:
        s.add_argument(
            "--wait", type=float, default=10.0, help=f"seconds to wait for {what} (0: none)"
        )

    add(sub, "groups", "list the groups you are in or were in, with their members")
    g = add(sub, "group", "create, join, write to and manage groups (docs/groups.md)")
    actions = g.commands(GROUP_COMMAND, required=True, metavar="ACTION")
    s = add(actions, "create", "create a group of you and these contacts (invited at once)")
    s.add_argument("name")
    s.add_argument("contacts", nargs="+", metavar="CONTACT")
    wait(s, "the invitations' receipts")
    add(actions, "invites", "list the group invitations waiting for you")
    s = add(actions, "join", "join a group you were invited to")
    s.add_argument("invite", metavar="INVITE", help="its id, name or unique prefix")
    wait(s, "the inviter's receipt")
    s = add(actions, "decline", "decline a group invitation (nobody is told)")
    s.add_argument("invite", metavar="INVITE")
    s = add(actions, "add", "add a contact to a group (admins)")
    s.add_argument("group")
    s.add_argument("contact")
    wait(s)
    for name, what in (
        ("remove", "remove a member from a group (admins)"),
        ("promote", "make a member an admin (admins)"),
    ):
        s = add(actions, name, what)
        s.add_argument("group")
        s.add_argument("member", help="a name, the start of their key, or as `groups` shows it")
        wait(s)
    s = add(actions, "rename", "rename a group (admins)")
    s.add_argument("group")
    s.add_argument("name")
    wait(s)
    s = add(actions, "leave", "leave a group (its messages stay, read-only)")
    s.add_argument("group")
    wait(s)
    s = add(actions, "send", "write to a group")
    s.add_argument("group")
    s.add_argument("text")
    s.add_argument("--reply-to", type=int, metavar="MESSAGE_ID", help="quote this message")
    wait(s, "every member's receipt")
    s = add(actions, "messages", "show a group's conversation (marks it read)")
    s.add_argument("group")
    s.add_argument("--limit", type=int, default=50)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line; `group ACTION` becomes the command `group-ACTION`."""
    args = parser().parse_args(argv)
    action = vars(args).pop(GROUP_COMMAND, None)
    if action is not None:
        args.command = f"group-{action}"
    return args


# -- the local API: a holder serves these commands, the CLI runs through a holder -----------

LOCAL_ONLY = frozenset({"init", "relays", "daemon", "restore", "duress"})  # never through a holder
HOLDERS = frozenset({"listen", "daemon"})  # hold the profile open and serve the API
GLOBAL_OPTIONS = frozenset({"profile", "passphrase_file", "json", "command", "stop"})
# Made absolute: the holder's directory is not ours.
FILE_PARAMS = ("qr", "qr_image", "path", "backup_passphrase_file")
TEXT_FORMAT = "_format"  # a param asking for the text the CLI prints instead of the JSON data
ERR_USER, ERR_UNREACHABLE = -32001, -32003  # exit codes 1 and 3 (in the error's data)


def api_path(args: argparse.Namespace) -> Path:
    return socket_path(profile_paths(args.profile).directory)


def command_params(args: argparse.Namespace) -> dict[str, Any]:
    """A parsed command line as the API's params (the command's own options, by name)."""
    params = {k: v for k, v in vars(args).items() if k not in GLOBAL_OPTIONS}
    for key in FILE_PARAMS:
        if params.get(key):
            params[key] = str(Path(params[key]).absolute())
    return params


_PARSER: list[CommandParser] = []


def api_commands() -> dict[str, CommandParser]:
    """Every command by its API name (`group create` is `group-create`)."""
    if not _PARSER:
        _PARSER.append(parser())
    found: dict[str, CommandParser] = {}
    for name, sub in _PARSER[0].subcommands.items():
        if sub.subcommand_dest == GROUP_COMMAND:
            found.update({f"{name}-{n}": nested for n, nested in sub.subcommands.items()})
        else:
            found[name] = sub
    return found


def _bad(text: str) -> RpcError:
    return RpcError(INVALID_PARAMS, text)


def _strings(name: str, value: Any) -> list[str]:
    if type(value) is not list or not all(type(v) is str for v in value):
        raise _bad(f"{name} is a list of strings")
    return list(value)


def _checked(action: argparse.Action, kind: str, value: Any) -> Any:
    """One param as the command line would have given it, or RpcError."""
    name = action.dest
    if kind in ("store_true", "store_false"):
        if type(value) is not bool:
            raise _bad(f"{name} is true or false")
        return value
    if kind == "append":
        return _strings(name, value)
    if action.nargs in ("+", "*"):
        values = _strings(name, value)
        if action.nargs == "+" and not values:
            raise _bad(f"{name} needs at least one value")
        return values
    if value is None and not action.required:
        return None
    convert = action.type
    if convert in (int, float) and type(value) in (int, float):
        value = convert(value)
    elif type(value) is int and callable(convert):  # a number a parser of its own reads
        value = _checked(action, kind, str(value))
    elif type(value) is str and callable(convert):
        try:
            value = convert(value)
        except (ValueError, TypeError, argparse.ArgumentTypeError):
            raise _bad(f"{name}: not a valid value") from None
    elif type(value) is not str:
        raise _bad(f"{name} is a string")
    if action.choices is not None and value not in action.choices:
        raise _bad(f"{name} is one of {', '.join(map(str, action.choices))}")
    return value


def _fill(sub: CommandParser, params: dict[str, Any], ns: argparse.Namespace) -> None:
    for action, kind in sub.options:
        if action.dest in GLOBAL_OPTIONS:
            continue
        if action.dest in params:
            setattr(ns, action.dest, _checked(action, kind, params.pop(action.dest)))
        elif action.required:
            raise _bad(f"missing param {action.dest}")
        else:
            default = action.default
            setattr(ns, action.dest, list(default) if isinstance(default, list) else default)
    if sub.subcommand_dest:
        choice = params.pop(sub.subcommand_dest, None)
        if choice is not None and choice not in sub.subcommands:
            raise _bad(f"{sub.subcommand_dest} is one of {', '.join(sub.subcommands)}")
        setattr(ns, sub.subcommand_dest, choice)
        if choice is not None:
            _fill(sub.subcommands[choice], params, ns)


def namespace_for(command: str, params: dict[str, Any]) -> argparse.Namespace:
    """The parsed command line a call stands for: each param checked as the command line
    would check it; RpcError for an unknown command, a missing, unknown or bad param."""
    sub = api_commands().get(command)
    if sub is None or command in LOCAL_ONLY:
        raise RpcError(METHOD_NOT_FOUND, f"no method {command!r}")
    ns = argparse.Namespace(command=command, profile=None, passphrase_file=None, json=True)
    left = dict(params)
    _fill(sub, left, ns)
    if left:
        raise _bad(f"unknown param {sorted(left)[0]!r}")
    return ns


class CallOut(Out):
    """What a command says, for an API call: its result (the JSON data, or the CLI's text),
    notes and events as notifications."""

    def __init__(self, call: Call, text: bool) -> None:
        super().__init__(not text)
        self.call = call
        self.results: list[Any] = []

    def result(self, data: Any, text: str) -> None:
        self.results.append(data if self.json else text)

    def note(self, text: str) -> None:
        self.call.notify("note", {"text": text})

    def event(self, data: dict[str, Any]) -> None:
        self.call.notify("event", data)


def api_handler(engine: Engine, wiped: Callable[[], None] | None = None) -> Handler:
    """Serve the CLI's commands (except init, restore, relays, daemon and duress) on an open
    engine: the method is the command, the params its options, the result what `--json`
    prints. `wiped` is called once a `wipe` is done (the holder then stops)."""

    async def handle(method: str, params: dict[str, Any], call: Call) -> Any:
        text = params.get(TEXT_FORMAT) == "text"
        args = namespace_for(method, {k: v for k, v in params.items() if k != TEXT_FORMAT})
        args.stop, args.detach = call.gone, True
        out = CallOut(call, text)
        try:
            await COMMANDS[method](engine, args, out)
            if method == "wipe" and wiped is not None:
                wiped()
        except (UserError, StoreError) as exc:
            raise RpcError(ERR_USER, str(exc), {"exit": EXIT_USER}) from None
        except Unreachable as exc:
            raise RpcError(ERR_UNREACHABLE, str(exc), {"exit": EXIT_UNREACHABLE}) from None
        return out.results[0] if len(out.results) == 1 else None

    return handle


async def through_holder(args: argparse.Namespace, out: Out) -> int | None:
    """Run the command through the process holding the profile open, if one serves it: its
    exit code; None when nothing serves (the caller opens the profile itself)."""
    if args.command in LOCAL_ONLY:
        return None
    client = await ApiClient.connect(api_path(args))
    if client is None:
        return None
    if args.command == "backup" and not args.backup_passphrase_file:
        await client.close()
        print(
            "anonchat-cli: this profile is open in another process, which makes the backup: "
            "give its passphrase with --backup-passphrase-file (no passphrase crosses the "
            "local API)",
            file=sys.stderr,
        )
        return EXIT_USER
    params = command_params(args)
    if not out.json:
        params[TEXT_FORMAT] = "text"

    def heard(method: str, data: dict[str, Any]) -> None:
        if method == "note":
            out.note(str(data.get("text", "")))
        elif method == "event":
            out.event(data)

    call = asyncio.ensure_future(client.call(args.command, params, heard))
    try:
        if args.command == "listen":  # until SIGINT or SIGTERM, or the holder goes
            stop = asyncio.ensure_future(args.stop.wait())
            await asyncio.wait({call, stop}, return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            if not call.done():
                call.cancel()
                return EXIT_OK
        result = await call
    except RpcError as exc:
        code = exc.data.get("exit") if isinstance(exc.data, dict) else None
        print(f"anonchat-cli: {exc.message}", file=sys.stderr)
        return code if code in (EXIT_USER, EXIT_UNREACHABLE) else EXIT_USER
    except ConnectionError:
        print("anonchat-cli: the process holding this profile went away", file=sys.stderr)
        return EXIT_USER if args.command != "listen" else EXIT_OK
    finally:
        await client.close()
    if result is not None:
        print(json_line(result) if out.json else result, flush=True)
    return EXIT_OK


async def run(args: argparse.Namespace) -> int:
    out = Out(args.json)
    if args.command in HOLDERS:
        # Installed before the (slow) unlock, so SIGTERM at any moment ends listen cleanly.
        args.stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, args.stop.set)
    if args.command == "init":
        await cmd_init(args, out)
        return EXIT_OK
    if args.command == "relays":
        await cmd_relays(args, out)
        return EXIT_OK
    if args.command == "restore":
        await cmd_restore(args, out)
        return EXIT_OK
    if args.command == "wipe":
        return await cmd_wipe(args, out)
    code = await through_holder(args, out)
    if code is not None:
        return code
    engine = await open_engine(args)
    server = None
    try:
        if args.command in HOLDERS:
            server = ApiServer(api_path(args), api_handler(engine, args.stop.set))
            await server.start()
        await COMMANDS[args.command](engine, args, out)
    finally:
        if server is not None:
            await server.close()
        await engine.close()
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(format="anonchat-cli: %(levelname)s: %(message)s", level=logging.WARNING)
    try:
        return asyncio.run(run(args))
    except (UserError, StoreError) as exc:
        print(f"anonchat-cli: {exc}", file=sys.stderr)
        return EXIT_USER
    except Unreachable as exc:
        print(f"anonchat-cli: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
