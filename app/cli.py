"""anonchat-cli: the client engine without a window, for scripts, bots and tests.

Exit codes: 0 done, 1 a user error (one line on stderr), 2 usage, 3 the relay or the peer
could not be reached within --wait.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.core.engine import Engine
from app.core.errors import UserError
from app.core.events import (
    ConnectionChanged,
    ContactAdded,
    ContactChanged,
    Event,
    FrameRejected,
    KeyChanged,
    MessageAdded,
    MessageStatusChanged,
    PresenceChanged,
)
from app.core.profile import DEFAULT_RELAY, create_profile, open_profile, profile_paths
from app.core.qr import QrError, decode_file, make_png
from app.store.errors import StoreError
from app.store.records import Contact, Direction, Message, Status

EXIT_OK, EXIT_USER, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3


class Unreachable(Exception):
    """The relay or the peer did not answer within --wait."""


@dataclass
class Out:
    """Prints results as text or, with --json, as one JSON document per result."""

    json: bool

    def result(self, data: Any, text: str) -> None:
        print(json.dumps(data, ensure_ascii=False) if self.json else text, flush=True)


def contact_json(c: Contact) -> dict[str, Any]:
    return {
        "id": c.id,
        "name": c.display_name,
        "verified": c.verified,
        "key_change_pending": c.key_change_pending,
    }


def message_json(m: Message) -> dict[str, Any]:
    return {
        "id": m.id,
        "contact": m.contact_id,
        "direction": "in" if m.direction is Direction.INCOMING else "out",
        "msg_id": m.msg_id.hex(),
        "seq": m.sender_seq,
        "body": m.body,
        "sent_at": m.sent_at,
        "received_at": m.received_at,
        "status": m.status.value,
        "read": m.is_read,
    }


def event_json(event: Event) -> dict[str, Any]:
    match event:
        case MessageAdded(message):
            return {"event": "message", **message_json(message)}
        case MessageStatusChanged(contact_id, row, status):
            return {"event": "status", "contact": contact_id, "id": row, "status": status.value}
        case ContactAdded(contact):
            return {"event": "contact_added", **contact_json(contact)}
        case ContactChanged(contact):
            return {"event": "contact_changed", **contact_json(contact)}
        case KeyChanged(contact):
            return {"event": "key_changed", **contact_json(contact)}
        case PresenceChanged(contact_id, online):
            return {"event": "presence", "contact": contact_id, "online": online}
        case ConnectionChanged(url, state, retry_in):
            return {"event": "connection", "relay": url, "state": state.value, "retry_in": retry_in}
        case FrameRejected(reason):
            return {"event": "rejected", "reason": reason}


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
        raise Unreachable(what) from None
    finally:
        stop()


# -- commands ------------------------------------------------------------------------------


async def cmd_init(args: argparse.Namespace, out: Out) -> None:
    paths = profile_paths(args.profile)
    if paths.header.exists() or paths.database.exists():
        raise UserError(f"profile {args.profile!r} already exists")
    opened = await create_profile(paths, read_passphrase(args, True), args.name, args.relay)
    engine = await Engine.open(opened)
    try:
        fp = engine.identity.public.to_bytes().hex()
        out.result(
            {"profile": str(paths.directory), "name": args.name.strip(), "relay": args.relay},
            f"created profile {args.name.strip()!r} at {paths.directory} ({fp[:16]}...)",
        )
    finally:
        await engine.close()


async def cmd_card(engine: Engine, args: argparse.Namespace, out: Out) -> None:
    card = await engine.card()
    if args.qr:
        make_png(card, Path(args.qr))
    out.result({"card": card, "qr": args.qr}, card)


async def cmd_add(engine: Engine, args: argparse.Namespace, out: Out) -> None:
    if (args.card is None) == (args.qr_image is None):
        raise UserError("give a card text or --qr-image FILE, not both")
    text = qr_text(args.qr_image) if args.qr_image else args.card
    contact = await engine.add_contact(text, args.name)
    if contact.key_change_pending:
        raise UserError(
            f"{contact.display_name}'s identity key changed; compare safety numbers, then run "
            f"`anonchat-cli accept-key {contact.id}`"
        )
    if args.wait > 0:
        await engine.start()
        cid = contact.id
        await wait_for(
            engine,
            lambda e: isinstance(e, ContactChanged) and e.contact.id == cid,
            args.wait,
            f"added {contact.display_name}; the handshake completes when they come online",
        )
    out.result(contact_json(contact), f"added {contact.display_name} (id {contact.id})")


async def cmd_contacts(engine: Engine, args: argparse.Namespace, out: Out) -> None:
    rows = await engine.summaries()
    data = [
        {**contact_json(s.contact), "unread": s.unread, "established": s.established} for s in rows
    ]
    lines = [
        f"{s.contact.id:>4}  {s.contact.display_name}"
        f"{'  [verified]' if s.contact.verified else ''}"
        f"{'  [KEY CHANGED]' if s.contact.key_change_pending else ''}"
        f"{'' if s.established else '  [waiting for handshake]'}"
        f"{f'  ({s.unread} unread)' if s.unread else ''}"
        for s in rows
    ]
    out.result(data, "\n".join(lines) if lines else "no contacts yet")


async def cmd_send(engine: Engine, args: argparse.Namespace, out: Out) -> None:
    contact = await engine.find_contact(args.contact)
    message = await engine.send(contact.id, args.text)
    status = message.status
    if args.wait > 0:
        row = message.id
        delivered = {Status.DELIVERED, Status.READ}

        def done(e: Event) -> bool:
            return (
                isinstance(e, MessageStatusChanged)
                and e.message_row == row
                and (e.status in delivered)
            )

        waiter = asyncio.ensure_future(
            wait_for(engine, done, args.wait, f"queued; {contact.display_name} not reached yet")
        )
        await asyncio.sleep(0)
        await engine.start()
        await waiter
        status = Status.DELIVERED
    out.result(
        {**message_json(message), "status": status.value},
        f"{status.value}: message {message.id} to {contact.display_name}",
    )


async def cmd_sync(engine: Engine, args: argparse.Namespace, out: Out) -> None:
    arrived: list[Message] = []
    online = asyncio.Event()

    def seen(e: Event) -> None:
        if isinstance(e, MessageAdded) and e.message.direction is Direction.INCOMING:
            arrived.append(e.message)
        if isinstance(e, ConnectionChanged) and e.state.value == "online":
            online.set()

    engine.subscribe(seen)
    await engine.start()
    await asyncio.sleep(args.wait)
    if not online.is_set():
        raise Unreachable("could not reach the relay")
    names = {s.contact.id: s.contact.display_name for s in await engine.summaries()}
    lines = [f"{names.get(m.contact_id, '?')}: {m.body}" for m in arrived]
    pending = await engine.pending_outbox()
    out.result(
        {"received": [message_json(m) for m in arrived], "outbox": pending},
        "\n".join([*lines, f"({len(arrived)} received, {pending} waiting in the outbox)"]),
    )


async def cmd_listen(engine: Engine, args: argparse.Namespace, out: Out) -> None:
    engine.subscribe(lambda e: print(json.dumps(event_json(e), ensure_ascii=False), flush=True))
    stop: asyncio.Event = args.stop
    if stop.is_set():  # stopped while the profile was being unlocked
        return
    await engine.start()
    print(json.dumps({"event": "listening"}), flush=True)
    await stop.wait()


async def cmd_messages(engine: Engine, args: argparse.Namespace, out: Out) -> None:
    contact = await engine.find_contact(args.contact)
    page = await engine.messages(contact.id, args.limit)
    await engine.mark_read(contact.id)
    page.reverse()
    lines = [
        f"{'>' if m.direction is Direction.OUTGOING else '<'} {m.body}"
        + (f"  [{m.status.value}]" if m.direction is Direction.OUTGOING else "")
        for m in page
    ]
    out.result([message_json(m) for m in page], "\n".join(lines) if lines else "no messages")


async def cmd_fingerprint(engine: Engine, args: argparse.Namespace, out: Out) -> None:
    contact = await engine.find_contact(args.contact)
    number = await engine.safety_number(contact.id)
    code = await engine.verification_code(contact.id)
    if args.qr:
        make_png(code, Path(args.qr))
    out.result(
        {"contact": contact.id, "safety_number": number, "verification_code": code},
        f"safety number with {contact.display_name}:\n{number}",
    )


async def cmd_verify(engine: Engine, args: argparse.Namespace, out: Out) -> None:
    if (args.number is None) == (args.qr_image is None):
        raise UserError("give the safety number or --qr-image FILE, not both")
    contact = await engine.find_contact(args.contact)
    evidence = qr_text(args.qr_image) if args.qr_image else args.number
    contact = await engine.verify(contact.id, evidence)
    out.result(contact_json(contact), f"{contact.display_name} is verified")


async def cmd_accept_key(engine: Engine, args: argparse.Namespace, out: Out) -> None:
    contact = await engine.find_contact(args.contact)
    contact = await engine.accept_key_change(contact.id)
    if args.wait > 0:
        await engine.start()
        deadline = asyncio.get_running_loop().time() + args.wait
        cid = contact.id
        while not any(s.established for s in await engine.summaries() if s.contact.id == cid):
            if asyncio.get_running_loop().time() > deadline:
                raise Unreachable(
                    f"accepted {contact.display_name}'s new key; the new session completes "
                    "when they come online"
                )
            await asyncio.sleep(0.1)
    out.result(contact_json(contact), f"accepted {contact.display_name}'s new key")


COMMANDS: dict[str, Callable[[Engine, argparse.Namespace, Out], Awaitable[None]]] = {
    "card": cmd_card,
    "add": cmd_add,
    "contacts": cmd_contacts,
    "send": cmd_send,
    "sync": cmd_sync,
    "listen": cmd_listen,
    "messages": cmd_messages,
    "fingerprint": cmd_fingerprint,
    "verify": cmd_verify,
    "accept-key": cmd_accept_key,
}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="anonchat-cli", description=__doc__.splitlines()[0])
    p.add_argument("--profile", default="default", help="profile name or directory")
    p.add_argument("--passphrase-file", help="read the passphrase from this file")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("init", help="create a profile")
    s.add_argument("--name", required=True)
    s.add_argument("--relay", default=DEFAULT_RELAY)
    s = sub.add_parser("card", help="print your contact card")
    s.add_argument("--qr", metavar="FILE.png", help="also write it as a QR code image")
    s = sub.add_parser("add", help="add a contact from their card")
    s.add_argument("card", nargs="?")
    s.add_argument("--qr-image", metavar="FILE")
    s.add_argument("--name")
    s.add_argument("--wait", type=float, default=10.0)
    sub.add_parser("contacts", help="list contacts")
    s = sub.add_parser("send", help="send a message")
    s.add_argument("contact")
    s.add_argument("text")
    s.add_argument("--wait", type=float, default=10.0)
    s = sub.add_parser("sync", help="send what waits, receive for a while")
    s.add_argument("--wait", type=float, default=5.0)
    sub.add_parser("listen", help="stay connected and print events as JSON lines")
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
    s = sub.add_parser("accept-key", help="accept a contact's changed identity key")
    s.add_argument("contact")
    s.add_argument("--wait", type=float, default=10.0)
    return p


async def run(args: argparse.Namespace) -> int:
    out = Out(args.json)
    if args.command == "listen":
        # Installed before the (slow) unlock, so SIGTERM at any moment ends listen cleanly.
        args.stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, args.stop.set)
    if args.command == "init":
        await cmd_init(args, out)
        return EXIT_OK
    engine = await open_engine(args)
    try:
        await COMMANDS[args.command](engine, args, out)
    finally:
        await engine.close()
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
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
