"""The client engine: one unlocked profile talking through its relays.

Every change of session state happens under one lock and lands in the store in the same
transaction as the message, receipt or outbox row it produced, so a crash at any point either
keeps both or neither. The network only ever sees ciphertext that is already safely stored;
the outbox resends that same ciphertext until the peer's end-to-end receipt removes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable
from typing import Any

from app.core import account, contacts, handshakes, profile
from app.core import payload as pl
from app.core.errors import UnknownContact, UserError
from app.core.events import (
    ConnectionChanged,
    ConnectionState,
    ContactChanged,
    Event,
    FrameRejected,
    MessageAdded,
    MessageStatusChanged,
    PresenceChanged,
    Rejection,
)
from app.core.profile import SETTING_READ_RECEIPTS, SETTING_RELAY, Opened, now_ms
from app.crypto.errors import (
    DecryptError,
    DuplicateMessage,
    MalformedMessage,
    VerificationError,
)
from app.crypto.handshake import Invitation
from app.crypto.identity import PublicIdentity
from app.crypto.mailbox import MailboxKey
from app.crypto.ratchet import Session
from app.crypto.safety import (
    check_verification,
    format_safety_number,
    safety_number,
    verification_payload,
)
from app.domain.contacts import CardPreview, Contact, ContactState, ContactSummary, RequestSummary
from app.domain.messages import MAX_MESSAGE_CHARS, Direction, Message, SearchHit, Status
from app.net import events as net
from app.net.errors import NetError, PayloadTooLarge, RelayRefused, RelayUnavailable
from app.net.pool import RelayPool
from app.store.errors import NotFound
from app.store.records import (
    MailboxPurpose,
    NewMessage,
    NewOutbox,
    OurMailbox,
    OutboxItem,
    OutboxKind,
    TheirMailbox,
)
from app.store.repos import Repos

log = logging.getLogger(__name__)

Listener = Callable[[Event], None]
RESEND_AFTER_MS = 15_000  # a forwarded message with no receipt yet goes out again after this
MAX_RESEND_MS = 300_000
CLOSE_GRACE_S = 5.0  # how long closing waits for the frame and the send batch in hand
UNREACHABLE_RETRY_MS = 30_000  # fallback when the relay or the peer's mailbox is away
BATCH = 200
REJECTED_PREFIX = "rejected."  # settings that count dropped frames by kind
COALESCE_S = 0.003  # a woken outbox waits this long, so a burst goes out (and is marked) as one


class Engine:
    """Use-cases of one profile. Create with `Engine(opened)`, then `await start()`."""

    def __init__(
        self,
        opened: Opened,
        *,
        pool: RelayPool | None = None,
        resend_after_ms: int = RESEND_AFTER_MS,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        self.store = opened.store
        self.identity = opened.identity
        self._lock_file = opened.lock
        self._pool = pool if pool is not None else RelayPool(self._on_net_event)
        self._resend_after = resend_after_ms
        self._now = clock
        self._listeners: list[Listener] = []
        self._mutex = asyncio.Lock()
        self._inbox: asyncio.Queue[net.Delivered | None] = asyncio.Queue()  # None: stop
        self._wake = asyncio.Event()
        self._offline: set[tuple[str, bytes]] = set()
        self._watched: dict[tuple[str, bytes], int] = {}
        self._online_contacts: set[int] = set()
        # Contact mailboxes never change once made (they are only dropped, see handshakes).
        self._contact_boxes: dict[bytes, OurMailbox] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._rejected: Counter[Rejection] = Counter()
        self._background: set[asyncio.Future[None]] = set()
        self._started = False
        self._closing = False
        self._closed = False
        self.name = ""
        self.relay_url = ""
        self.read_receipts = True

    # -- lifecycle -----------------------------------------------------------------------

    @classmethod
    async def open(cls, opened: Opened, **options: Any) -> Engine:
        """An engine with the profile's settings loaded, not yet connected."""
        engine = cls(opened, **options)
        await engine.reload_settings()
        return engine

    async def reload_settings(self) -> None:
        me = await self.store.identity()
        settings = await self.store.read(lambda r: r.settings.all())
        self.name = me.display_name if me else ""
        self.relay_url = settings.get(SETTING_RELAY, "")
        self.read_receipts = settings.get(SETTING_READ_RECEIPTS, "1") == "1"

    async def start(self) -> None:
        """Listen on our mailboxes, watch the peers', start sending."""
        if self._started:
            return
        ours = await self.store.read(lambda r: r.mailboxes.list_ours())
        for box in ours:
            await self._listen(box.relay_url, self._mailbox_key(box.private_key, box.purpose))
        for contact in await self.store.read(lambda r: r.contacts.all()):
            await self._watch_contact(contact.id)
        self._started = True
        self._tasks = [
            asyncio.create_task(self._receive_loop(), name="anonchat-receive"),
            asyncio.create_task(self._pump_loop(), name="anonchat-outbox"),
        ]

    async def close(self) -> None:
        """Stop after the frame and the outbox batch in hand: a message stored is also
        reported, and a send made is also recorded (cut off only after CLOSE_GRACE_S). A
        second call does nothing."""
        if self._closed:
            return
        self._closed = True
        self._closing = True
        self._wake.set()
        self._inbox.put_nowait(None)
        if self._tasks:
            _, late = await asyncio.wait(self._tasks, timeout=CLOSE_GRACE_S)
            for task in late:
                task.cancel()
            for task in self._tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._tasks = []
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        await self._pool.close()
        with contextlib.suppress(Exception):  # counts only; never keeps a profile from closing
            await self._flush_rejections()
        await self.store.close()
        self._lock_file.release()

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call `listener` with every event; returns the function that stops it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def _emit(self, event: Event) -> None:
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("an event listener failed")

    def reject(self, reason: str, kind: Rejection) -> None:
        """Something that arrived was dropped: tell the front ends and count it by kind."""
        self._rejected[kind] += 1
        self._emit(FrameRejected(reason, kind))

    async def keep_step_and_reject(
        self, contact_id: int, session: Session, reason: str, kind: Rejection
    ) -> None:
        """An authentic frame whose content we drop: its ratchet step is kept, so the
        conversation stays in step, and nothing else changes."""
        await self.store.run(lambda r: r.sessions.save(contact_id, session.to_bytes(), self._now()))
        self.reject(reason, kind)

    async def _flush_rejections(self) -> None:
        counts, self._rejected = self._rejected, Counter()
        if not counts:
            return

        def unit(r: Repos) -> None:
            for kind, n in counts.items():
                key = REJECTED_PREFIX + kind.value
                r.settings.set(key, str(int(r.settings.get(key) or 0) + n))

        await self.store.run(unit)

    async def rejections(self) -> dict[str, int]:
        """How many frames were dropped, by kind, over the profile's life."""
        await self._flush_rejections()
        stored = await self.store.read(lambda r: r.settings.all())
        return {
            k[len(REJECTED_PREFIX) :]: int(v)
            for k, v in stored.items()
            if k.startswith(REJECTED_PREFIX)
        }

    # -- the network's side --------------------------------------------------------------

    def _on_net_event(self, event: net.NetEvent) -> None:
        match event:
            case net.Delivered():
                self._inbox.put_nowait(event)
            case net.PresenceChanged(url, mailbox, online):
                self._presence(url, mailbox, online)
            case net.ConnectionChanged(url, state, _):
                if state is ConnectionState.ONLINE:
                    self._offline = {d for d in self._offline if d[0] != url}
                    self._reschedule_soon(url, None)
                self._emit(ConnectionChanged(url, state, event.retry_in))
            case net.RelayRejected(_, code, _):
                self.reject(f"relay sent a bad frame ({code})", Rejection.RELAY)
            case net.Refused(_, code, _):
                self.reject(f"relay refused a request ({code})", Rejection.RELAY)

    def _presence(self, url: str, mailbox: bytes, online: bool) -> None:
        contact_id = self._watched.get((url, mailbox))
        if contact_id is None:
            return
        if online:
            self._offline.discard((url, mailbox))
            self._reschedule_soon(url, mailbox)
            self._online_contacts.add(contact_id)
        else:
            self._online_contacts.discard(contact_id)
        self._emit(PresenceChanged(contact_id, online))

    def _reschedule_soon(self, url: str, mailbox: bytes | None) -> None:
        """The way to a mailbox (or a whole relay) opened: what waits for it goes now.

        Also while starting: a relay that comes online as we start gets everything that was
        waiting, whatever its timer said."""
        if self._closing:
            return
        now = self._now()

        async def job() -> None:
            await self.store.run(lambda r: r.outbox.reschedule(url, mailbox, now))
            self._wake.set()

        task = asyncio.ensure_future(job())
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        task.add_done_callback(_log_failure)

    async def _listen(self, url: str, key: MailboxKey) -> None:
        await self._pool.subscribe(url, key.id, lambda ch: (key.public, key.sign_subscribe(ch)))

    @staticmethod
    def _mailbox_key(blob: bytes, purpose: MailboxPurpose) -> MailboxKey:
        if purpose is MailboxPurpose.INVITATION:
            return Invitation.from_bytes(blob).mailbox
        return MailboxKey.from_bytes(blob)

    async def drop_mailboxes(self, boxes: list[OurMailbox]) -> None:
        """Stop listening on mailboxes a transaction just forgot."""
        for box in boxes:
            self._contact_boxes.pop(box.id, None)
            with contextlib.suppress(NetError):
                await self._pool.unsubscribe(box.relay_url, box.id)

    async def forget_contact(self, contact_id: int) -> None:
        """A contact or request is gone or lost its channels: no presence or cache of it, and
        the relay is no longer asked to tell us about its mailbox."""
        for key in [k for k, v in self._watched.items() if v == contact_id]:
            del self._watched[key]
            self._offline.discard(key)
            with contextlib.suppress(NetError):
                await self._pool.unwatch(key[0], [key[1]])
        self._online_contacts.discard(contact_id)
        stale = [m for m, box in self._contact_boxes.items() if box.contact_id == contact_id]
        for mailbox in stale:
            del self._contact_boxes[mailbox]

    async def _watch_contact(self, contact_id: int) -> None:
        theirs = await self.store.read(lambda r: r.mailboxes.list_theirs(contact_id))
        if not theirs:
            return
        newest = theirs[0]
        for old in theirs[1:]:
            self._watched.pop((old.relay_url, old.id), None)
        self._watched[(newest.relay_url, newest.id)] = contact_id
        try:
            online = await self._pool.watch(newest.relay_url, [newest.id])
        except NetError:
            return  # the pool restores the watch when the relay comes back
        self._presence(newest.relay_url, newest.id, newest.id in online)

    # -- receiving -----------------------------------------------------------------------

    async def _receive_loop(self) -> None:
        while not self._closing:
            delivered = await self._inbox.get()
            if delivered is None:
                return
            try:
                async with self._mutex:
                    await self._receive(delivered)
            except Exception:
                log.exception("processing an incoming frame failed")

    async def _receive(self, delivered: net.Delivered) -> None:
        box = self._contact_boxes.get(delivered.mailbox)
        if box is None:
            box = await self.store.read(lambda r: r.mailboxes.get_ours(delivered.mailbox))
            if box is None:
                return
            if box.purpose is MailboxPurpose.CONTACT:
                self._contact_boxes[box.id] = box
        if box.purpose is MailboxPurpose.INVITATION:
            await handshakes.on_invitation_frame(self, box, delivered.payload)
        elif box.contact_id is not None:
            await self.on_contact_frame(box.contact_id, delivered.payload)

    async def on_contact_frame(
        self, contact_id: int, frame: bytes, *, via_invitation: bool = False
    ) -> None:
        """A frame from a contact's ratchet session: decrypt, store, acknowledge.

        One that came through our card's mailbox (`via_invitation`) was sent before the peer
        had our welcome, so it does not show the welcome arrived: the welcome stays queued."""
        mid = pl.message_id(frame)

        def load(
            r: Repos,
        ) -> tuple[Contact | None, bytes | None, Message | None, list[TheirMailbox]]:
            return (
                _contact_or_none(r, contact_id),
                r.sessions.load(contact_id),
                r.messages.find(contact_id, Direction.INCOMING, mid),
                r.mailboxes.list_theirs(contact_id),
            )

        contact, blob, seen, theirs = await self.store.read(load)
        if contact is None or blob is None:
            return
        session = Session.from_bytes(blob)
        if seen is not None:
            if theirs:
                await self._commit_receipt(contact_id, session, (mid,), False, theirs[0])
            return
        try:
            session, plaintext = session.decrypt(frame)
        except DuplicateMessage:
            return
        except MalformedMessage as exc:
            self.reject(f"a frame that is not a message ({exc})", Rejection.MALFORMED)
            return
        except DecryptError as exc:
            self.reject(f"a message failed its check ({type(exc).__name__})", Rejection.FORGED)
            return
        try:
            content = pl.decode(plaintext)
        except pl.PayloadError as exc:
            await self.keep_step_and_reject(
                contact_id,
                session,
                f"a message carried no valid content ({exc})",
                Rejection.PAYLOAD,
            )
            return
        match content:
            case pl.Chat():
                await self._store_chat(contact_id, session, mid, content, theirs, via_invitation)
            case pl.Receipt(read, ids):
                await self._take_receipt(contact_id, session, ids, read, via_invitation)
            case pl.Welcome():
                await handshakes.on_welcome(self, contact, session, content)
            case pl.Intro():
                await self.keep_step_and_reject(
                    contact_id, session, "an introduction outside a handshake", Rejection.PAYLOAD
                )

    async def _store_chat(
        self,
        contact_id: int,
        session: Session,
        mid: bytes,
        chat: pl.Chat,
        theirs: list[TheirMailbox],
        via_invitation: bool,
    ) -> None:
        now = self._now()
        outbox = None
        if theirs:
            receipt, session = self._encrypt_receipt(session, (mid,), read=False)
            outbox = self._outbox_row(contact_id, OutboxKind.RECEIPT, theirs[0], receipt, now)
        message = NewMessage(
            contact_id,
            Direction.INCOMING,
            mid,
            chat.seq,
            chat.body,
            chat.sent_at,
            now,
            Status.DELIVERED,
        )

        def unit(r: Repos) -> Message | None:
            if not via_invitation:
                r.outbox.drop_handshake_controls(contact_id)
            stored = r.messages.store_incoming(message, session.to_bytes(), outbox, now)
            return (
                None
                if stored.duplicate or stored.message_row is None
                else (r.messages.get(stored.message_row))
            )

        added = await self.store.run(unit)
        self._wake.set()
        if added is not None:
            self._emit(MessageAdded(added))

    async def _take_receipt(
        self,
        contact_id: int,
        session: Session,
        ids: tuple[bytes, ...],
        read: bool,
        via_invitation: bool,
    ) -> None:
        status = Status.READ if read else Status.DELIVERED
        now = self._now()

        def unit(r: Repos) -> list[Message]:
            r.sessions.save(contact_id, session.to_bytes(), now)
            if not via_invitation:
                r.outbox.drop_handshake_controls(contact_id)
            r.messages.acknowledge(contact_id, ids, status)
            found = (r.messages.find(contact_id, Direction.OUTGOING, i) for i in ids)
            return [m for m in found if m is not None]

        for message in await self.store.run(unit):
            self._emit(MessageStatusChanged(contact_id, message.id, message.status))

    def _encrypt_receipt(
        self, session: Session, ids: tuple[bytes, ...], read: bool
    ) -> tuple[bytes, Session]:
        session, frame = session.encrypt(pl.encode(pl.Receipt(read, ids)))
        return frame, session

    async def _commit_receipt(
        self,
        contact_id: int,
        session: Session,
        ids: tuple[bytes, ...],
        read: bool,
        dest: TheirMailbox,
    ) -> Session:
        """A receipt on its own (a duplicate's re-ack, read receipts): session + outbox."""
        frame, session = self._encrypt_receipt(session, ids, read)
        now = self._now()
        row = self._outbox_row(contact_id, OutboxKind.RECEIPT, dest, frame, now)

        def unit(r: Repos) -> None:
            r.sessions.save(contact_id, session.to_bytes(), now)
            r.outbox.add(row)

        await self.store.run(unit)
        self._wake.set()
        return session

    # -- sending -------------------------------------------------------------------------

    async def _destination(self, contact_id: int) -> TheirMailbox:
        theirs = await self.store.read(lambda r: r.mailboxes.list_theirs(contact_id))
        if not theirs:
            raise UserError("this contact has no mailbox to write to yet")
        return theirs[0]

    @staticmethod
    def _outbox_row(
        contact_id: int, kind: OutboxKind, dest: TheirMailbox, frame: bytes, now: int
    ) -> NewOutbox:
        return NewOutbox(contact_id, kind, dest.id, dest.relay_url, frame, now, now)

    async def send(self, contact_id: int, text: str) -> Message:
        """Encrypt, store and queue one message; the outbox takes it from there."""
        if not text.strip():
            raise UserError("an empty message is not sent")
        if len(text) > MAX_MESSAGE_CHARS:
            raise UserError(f"a message holds at most {MAX_MESSAGE_CHARS} characters")
        seq_key = f"seq:{contact_id}"

        def load(r: Repos) -> tuple[Contact, list[TheirMailbox], bytes | None, str | None]:
            contact = _contact_or_none(r, contact_id)
            if contact is None:
                raise UnknownContact("no such contact")
            theirs = r.mailboxes.list_theirs(contact_id)
            return contact, theirs, r.sessions.load(contact_id), r.settings.get(seq_key)

        async with self._mutex:
            contact, theirs, blob, last_seq = await self.store.read(load)
            contacts.check_can_send(contact)
            if not theirs or blob is None:
                raise UserError("no session with this contact yet")
            dest = theirs[0]
            seq = int(last_seq or 0) + 1
            now = self._now()
            session, frame = Session.from_bytes(blob).encrypt(pl.encode(pl.Chat(seq, now, text)))
            mid = pl.message_id(frame)
            message = NewMessage(
                contact_id, Direction.OUTGOING, mid, seq, text, now, None, Status.QUEUED, True
            )
            row = self._outbox_row(contact_id, OutboxKind.MESSAGE, dest, frame, now)

            def unit(r: Repos) -> Message:
                r.settings.set(seq_key, str(seq))
                stored = r.messages.store_outgoing(message, session.to_bytes(), row, now)
                assert stored.message_row is not None
                return r.messages.get(stored.message_row)

            added = await self.store.run(unit)
        self._emit(MessageAdded(added))
        self._wake.set()
        return added

    async def _pump_loop(self) -> None:
        while not self._closing:
            self._wake.clear()
            try:
                while not self._closing and await self._drain():
                    pass
                next_due = await self.store.read(lambda r: r.outbox.next_due())
            except Exception:
                log.exception("the outbox pump failed; trying again shortly")
                next_due = self._now() + UNREACHABLE_RETRY_MS
            timeout = None if next_due is None else max(0.0, (next_due - self._now()) / 1000)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
                    await asyncio.sleep(COALESCE_S)

    async def _drain(self) -> bool:
        """Send what is due, in order per destination; True when more may be due.

        The sends are pipelined (the link writes them in call order) and their outcomes are
        recorded in one transaction, so a burst costs one round trip, not one per message.
        """
        now = self._now()
        items = await self.store.read(lambda r: r.outbox.due(now, BATCH))
        ready = [i for i in items if (i.relay_url, i.mailbox_id) not in self._offline]
        postponed = [i for i in items if (i.relay_url, i.mailbox_id) in self._offline]
        results = await asyncio.gather(
            *(self._pool.send(i.relay_url, i.mailbox_id, i.ciphertext) for i in ready),
            return_exceptions=True,
        )
        sent: list[OutboxItem] = []
        failed: list[OutboxItem] = []
        went_offline: dict[tuple[str, bytes], int] = {}
        for item, result in zip(ready, results, strict=True):
            if isinstance(result, (RelayRefused, PayloadTooLarge)):
                failed.append(item)
            elif isinstance(result, BaseException):
                if not isinstance(result, RelayUnavailable):
                    log.error("sending failed unexpectedly", exc_info=result)
                postponed.append(item)
            elif result == 0:
                went_offline[(item.relay_url, item.mailbox_id)] = item.contact_id
                postponed.append(item)
            else:
                sent.append(item)
        done = self._now()
        later = done + UNREACHABLE_RETRY_MS

        def record(r: Repos) -> list[OutboxItem]:
            newly_sent = []
            for item in sent:
                backoff = min(self._resend_after * 2 ** min(item.attempts, 8), MAX_RESEND_MS)
                if _mark_sent(r, item, done + backoff):
                    newly_sent.append(item)
            for item in failed:
                _fail(r, item)
            for item in postponed:
                with contextlib.suppress(NotFound):  # acknowledged in the meantime
                    r.outbox.retry_later(item.id, later)
            return newly_sent

        if sent or failed or postponed:
            for item in await self.store.run(record):
                assert item.message_id is not None
                self._emit(MessageStatusChanged(item.contact_id, item.message_id, Status.SENT))
            for item in failed:
                if item.message_id is not None:
                    self._emit(
                        MessageStatusChanged(item.contact_id, item.message_id, Status.FAILED)
                    )
        for dest, contact_id in went_offline.items():
            await self._went_offline(dest, contact_id)
        return len(items) == BATCH and len(postponed) < len(items)

    async def _went_offline(self, dest: tuple[str, bytes], contact_id: int) -> None:
        """The relay found no subscriber: wait for the mailbox's presence notice."""
        self._offline.add(dest)
        self._watched.setdefault(dest, contact_id)
        with contextlib.suppress(NetError):
            online = await self._pool.watch(dest[0], [dest[1]])
            if dest[1] in online:
                self._offline.discard(dest)
                self._reschedule_soon(*dest)

    # -- contacts ------------------------------------------------------------------------

    async def card(self) -> str:
        """Our contact card ('anonchat:...') for the QR code and the copyable text."""
        boxes = await self.store.read(
            lambda r: r.mailboxes.list_ours(purpose=MailboxPurpose.INVITATION)
        )
        invitation = Invitation.from_bytes(boxes[-1].private_key)
        return invitation.card(self.identity, boxes[-1].relay_url, self.name).encode()

    async def add_contact(self, card_text: str, name: str | None = None) -> Contact:
        """Start the handshake from a scanned or pasted card; the contact appears at once."""
        return await handshakes.add_contact(self, card_text, name)

    # -- requests and what a person does with contacts (app/core/contacts.py) -----------

    async def requests(self) -> list[RequestSummary]:
        """Message requests waiting, oldest first, each with its first message."""
        return await contacts.requests(self)

    async def accept_request(self, request_id: int, as_new_key_of: int | None = None) -> Contact:
        return await contacts.accept_request(self, request_id, as_new_key_of)

    async def block(self, contact_id: int) -> Contact:
        return await contacts.block(self, contact_id)

    async def delete_request(self, request_id: int) -> None:
        await contacts.delete_request(self, request_id)

    async def delete_contact(self, contact_id: int, keep_history: bool = False) -> None:
        await contacts.delete_contact(self, contact_id, keep_history)

    async def rename(self, contact_id: int, name: str) -> Contact:
        return await contacts.rename(self, contact_id, name)

    async def status(self) -> contacts.Status:
        """Counts for `anonchat-cli status`: contacts, requests, outbox, dropped frames."""
        return await contacts.status(self)

    # -- the profile (app/core/account.py) ------------------------------------------------

    async def preview_card(self, text: str) -> CardPreview:
        """Whose code this is, before adding it; UserError when it is not a valid code."""
        return await account.preview_card(self, text)

    async def set_display_name(self, name: str) -> None:
        await account.set_display_name(self, name)

    async def set_relay_url(self, url: str) -> None:
        await account.set_relay_url(self, url)

    async def change_passphrase(self, old: str, new: str) -> None:
        await account.change_passphrase(self, old, new)

    def keyring_available(self) -> bool:
        return profile.keyring_available()

    async def preferences(self) -> dict[str, str]:
        return await account.preferences(self)

    async def set_preferences(self, values: dict[str, str]) -> None:
        await account.set_preferences(self, values)

    def connection_states(self) -> dict[str, ConnectionState]:
        """Where each relay connection stands now, for a view opened after the events."""
        return {url: self._pool.state(url) for url in self._pool.urls}

    async def remember_key(self, enabled: bool) -> str | None:
        return await account.remember_key(self, enabled)

    async def retry(self, message_row: int) -> Message:
        return await account.retry(self, message_row)

    # -- queries and small use-cases ------------------------------------------------------

    async def contact(self, contact_id: int) -> Contact:
        found = await self.store.read(lambda r: _contact_or_none(r, contact_id))
        if found is None:
            raise UnknownContact("no such contact")
        return found

    async def find_contact(self, query: str) -> Contact:
        """A contact (not a request) by exact name (case-insensitive), id, or unique prefix."""
        return await self._find(query, (ContactState.CONTACT, ContactState.ENDED), "contact")

    async def find_request(self, query: str) -> Contact:
        """A pending message request, found the same way."""
        return await self._find(query, (ContactState.REQUEST,), "request")

    async def find_anyone(self, query: str) -> Contact:
        """A contact or a request, found the same way."""
        return await self._find(query, tuple(ContactState), "contact or request")

    async def _find(self, query: str, states: tuple[ContactState, ...], what: str) -> Contact:
        rows = await self.store.read(lambda r: r.contacts.all(*states))
        wanted = query.strip().casefold()
        exact = [c for c in rows if c.display_name.casefold() == wanted or str(c.id) == wanted]
        if len(exact) == 1:
            return exact[0]
        prefix = [c for c in rows if c.display_name.casefold().startswith(wanted)]
        if len(prefix) == 1 and wanted:
            return prefix[0]
        if not exact and not prefix:
            raise UnknownContact(f"no {what} matches {query!r}")
        raise UnknownContact(f"{query!r} matches several; use the id")

    async def summaries(self) -> list[ContactSummary]:
        """Every contact list row (contacts and ended ones, not requests)."""

        def load(r: Repos) -> list[ContactSummary]:
            unread = r.messages.unread_counts()
            return [
                self._summarize(r, c, unread.get(c.id, 0))
                for c in r.contacts.all(ContactState.CONTACT, ContactState.ENDED)
            ]

        return await self.store.read(load)

    async def summary(self, contact_id: int) -> ContactSummary | None:
        """One contact list row, re-read after an event about that contact; None when it is
        not on the list (gone, or a request)."""

        def load(r: Repos) -> ContactSummary | None:
            c = _contact_or_none(r, contact_id)
            if c is None or c.state is ContactState.REQUEST:
                return None
            return self._summarize(r, c, r.messages.unread_count(c.id))

        return await self.store.read(load)

    def _summarize(self, r: Repos, c: Contact, unread: int) -> ContactSummary:
        page = r.messages.page(c.id, 1)
        established = not r.outbox.has_handshake_controls(c.id) and bool(
            r.mailboxes.list_theirs(c.id)
        )
        online = c.id in self._online_contacts
        return ContactSummary(c, unread, page[0] if page else None, online, established)

    async def messages(
        self, contact_id: int, limit: int = 50, before: int | None = None
    ) -> list[Message]:
        """Newest first, `before` a message row id (the paging cursor)."""
        return await self.store.read(lambda r: r.messages.page(contact_id, limit, before))

    async def search(self, text: str, contact_id: int | None = None) -> list[SearchHit]:
        return await self.store.read(lambda r: r.search(text, 50, contact_id))

    async def mark_read(self, contact_id: int) -> int:
        """Mark the conversation read and, when enabled, tell the peer; returns how many."""
        async with self._mutex:
            newest = await self.messages(contact_id, 1)
            if not newest or (await self.contact(contact_id)).state is ContactState.REQUEST:
                return 0  # a request's messages are never marked read until it is accepted
            ids = await self.store.run(lambda r: r.messages.mark_read(contact_id, newest[0].id))
            if not ids or not self.read_receipts:
                return len(ids)
            blob = await self.store.read(lambda r: r.sessions.load(contact_id))
            if blob is None:
                return len(ids)
            session = Session.from_bytes(blob)
            dest = await self._destination(contact_id)
            for start in range(0, len(ids), pl.MAX_RECEIPT_IDS):
                chunk = tuple(ids[start : start + pl.MAX_RECEIPT_IDS])
                session = await self._commit_receipt(contact_id, session, chunk, True, dest)
            return len(ids)

    async def set_read_receipts(self, enabled: bool) -> None:
        await self.store.run(
            lambda r: r.settings.set(SETTING_READ_RECEIPTS, "1" if enabled else "0")
        )
        self.read_receipts = enabled

    def _their_identity(self, contact: Contact) -> PublicIdentity:
        return PublicIdentity(contact.identity_keys[:32], contact.identity_keys[32:])

    async def safety_number(self, contact_id: int) -> str:
        """60 digits in 12 groups of 5, the same on both sides."""
        contact = await self.contact(contact_id)
        number = safety_number(self.identity.public, self._their_identity(contact))
        return format_safety_number(number)

    async def verification_code(self, contact_id: int) -> str:
        """What our "verify" QR code shows to this contact."""
        contact = await self.contact(contact_id)
        return verification_payload(self.identity.public, self._their_identity(contact))

    async def verify(self, contact_id: int, evidence: str) -> Contact:
        """Mark verified from the safety number typed in or the peer's scanned code."""
        contact = await self.contact(contact_id)
        theirs = self._their_identity(contact)
        if evidence.strip().lower().startswith("anonchat-verify:"):
            try:
                match = check_verification(evidence, self.identity.public, theirs)
            except VerificationError as exc:
                raise UserError(f"not a verification code: {exc}") from None
        else:
            digits = "".join(ch for ch in evidence if not ch.isspace())
            expected = safety_number(self.identity.public, theirs)
            match = digits == expected
        if not match:
            raise UserError(
                f"the safety number does not match {contact.display_name}'s; not verified"
            )
        await self.store.run(lambda r: r.contacts.set_verified(contact_id, True))
        contact = await self.contact(contact_id)
        self._emit(ContactChanged(contact))
        return contact

    async def pending_outbox(self, contact_id: int | None = None) -> int:
        if contact_id is None:
            return await self.store.read(lambda r: r.outbox.count())
        return await self.store.read(lambda r: len(r.outbox.for_contact(contact_id)))


def _mark_sent(r: Repos, item: OutboxItem, next_try: int) -> bool:
    """Record that the relay forwarded an item; True when its message just became "sent"."""
    before = None if item.message_id is None else r.messages.get(item.message_id).status
    try:
        r.outbox.sent(item.id, next_try)
    except NotFound:
        return False  # the receipt (or the welcome) came back first: nothing waits any more
    return before is Status.QUEUED


def _contact_or_none(r: Repos, contact_id: int) -> Contact | None:
    try:
        return r.contacts.get(contact_id)
    except NotFound:
        return None


def _fail(r: Repos, item: OutboxItem) -> None:
    with contextlib.suppress(NotFound):  # acknowledged while the relay was refusing it
        r.outbox.fail(item.id)


def _log_failure(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("a background store update failed", exc_info=task.exception())
