"""The client engine: one unlocked profile talking through its relays.

The engine only composes the use cases, each in a module of its own, on one `Context`:

- `account`: our card, name, relay, passphrase, keyring, preferences, read receipts
- `handshakes`: adding a contact from a card, answering one, the welcome
- `moving`: testing a relay, changing relays, and contacts moving with us (or we with them)
- `contacts`: requests, accept, block, delete, rename, verify, status
- `messaging`: send (a reply too), retry, mark read, and storing what comes back
- `conversation`: edit, delete, react, the disappearing-messages timer (ours and theirs)
- `files`: files and pictures offered, streamed piece by piece, kept sealed, saved
- `expiry`: disappearing messages deleted when their time runs out
- `queries`: a contact, the contact list, a conversation's pages, search
- `inbound`: the receive loop, which hands each frame to handshakes or messaging
- `outbox`: the send loop, which moves stored ciphertext to the relays
- `routing`: our subscriptions, their watches, presence
- `backups`: a backup file now, and scheduled ones into a folder

Every change of session state happens under the context's lock and lands in the store in the
same transaction as the message, receipt or outbox row it produced, so a crash at any point
keeps both or neither. The network only ever sees ciphertext that is already stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from app.core.account import Account
from app.core.backup import Backups
from app.core.contacts import Contacts
from app.core.context import Context
from app.core.conversation import Conversation
from app.core.errors import UserError
from app.core.events import Event
from app.core.expiry import Expiry
from app.core.files import Files
from app.core.group_intake import GroupIntake
from app.core.groups import Groups
from app.core.handshakes import Handshakes
from app.core.inbound import Inbound
from app.core.messaging import Messaging
from app.core.moving import Moving
from app.core.outbox import Outbox
from app.core.profile import Opened, RelayMode, destroy_header, now_ms, wipe_profile
from app.core.queries import Queries
from app.core.rejoin import Rejoin
from app.core.routing import Routing
from app.crypto.passphrase import DEFAULT_PARAMS, KdfParams
from app.domain.messages import Message
from app.net import events as net

log = logging.getLogger(__name__)

Listener = Callable[[Event], None]
CLOSE_GRACE_S = 5.0  # how long closing waits for the frame and the send batch in hand


class Engine:
    """Use cases of one profile. Create with `await Engine.open(opened)`, then `start()`."""

    def __init__(
        self,
        opened: Opened,
        *,
        clock: Callable[[], int] = now_ms,
        backup_params: KdfParams = DEFAULT_PARAMS,
    ) -> None:
        self.store = opened.store
        self.identity = opened.identity
        self._lock_file = opened.lock
        self._listeners: list[Listener] = []
        self._woken = asyncio.Event()
        ctx = Context(self.store, self.identity, clock, self._emit, self._woken.set)
        self._ctx = ctx
        self._routing = routing = Routing(ctx, self._deliver, self._room)
        self._outbox = Outbox(ctx, routing, self._woken)
        account = self._account = Account(ctx, routing)
        handshakes = Handshakes(ctx, routing)
        expiry = self._expiry = Expiry(ctx)
        messaging = self._messaging = Messaging(ctx, expiry)
        conversation = Conversation(ctx, messaging)
        contacts = self._contacts = Contacts(ctx, routing)
        queries = Queries(ctx, routing)
        moving = self._moving = Moving(ctx, routing)
        files = self._files = Files(ctx, routing, messaging)
        groups = self._groups = Groups(ctx, routing, messaging)
        messaging.group_receipts = groups.delivered
        rejoin = self._rejoin = Rejoin(ctx, handshakes, messaging)

        def channel_opened(contact_id: int) -> None:
            groups.channel_opened(contact_id)
            rejoin.channel_opened(contact_id)

        handshakes.channel_opened = channel_opened
        intake = GroupIntake(ctx, messaging, handshakes, groups)
        backups = self._backups = Backups(ctx, backup_params)
        self._inbound = Inbound(
            ctx, routing, handshakes, messaging, conversation, moving, files, intake, rejoin
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False

        # The use cases by name: the engine's whole public front besides its lifecycle.
        self.card = account.card
        self.has_address = account.has_address
        self.rotate_address = account.rotate_address
        self.delete_address = account.delete_address
        self.preview_card = account.preview_card
        self.set_display_name = account.set_display_name
        self.test_relay = moving.test_relay
        self.set_relays = moving.set_relays
        self.set_read_receipts = account.set_read_receipts
        self.set_proxy = account.set_proxy
        self.proxy = account.proxy
        self.set_isolation = account.set_isolation
        self.isolation = account.isolation
        self.set_quota = account.set_quota
        self.quota = account.quota
        self.change_passphrase = account.change_passphrase
        self.keyring_available = account.keyring_available
        self.remember_key = account.remember_key
        self.set_duress = account.set_duress
        self.clear_duress = account.clear_duress
        self.preferences = account.preferences
        self.set_preferences = account.set_preferences
        self.rejections = account.rejections
        self.add_contact = handshakes.add_contact
        self.requests = contacts.requests
        self.accept_request = contacts.accept_request
        self.delete_request = contacts.delete_request
        self.block = contacts.block
        self.rename = contacts.rename
        self.mute = contacts.mute
        self.is_muted = contacts.is_muted
        self.safety_number = contacts.safety_number
        self.verification_code = contacts.verification_code
        self.verify = contacts.verify
        self.status = contacts.status
        self.groups = groups.groups
        self.group = groups.group
        self.find_group = groups.find
        self.group_invites = groups.invites
        self.create_group = groups.create
        self.join_group = groups.join
        self.decline_group = groups.decline
        self.add_member = groups.add
        self.remove_member = groups.remove
        self.promote_member = groups.promote
        self.rename_group = groups.rename
        self.leave_group = groups.leave
        self.deliveries = groups.deliveries
        self.is_group = groups.is_group
        self.mark_read = messaging.mark_read
        self.edit = conversation.edit
        self.delete_message = conversation.delete
        self.react = conversation.react
        self.set_timer = conversation.set_timer
        self.send_file = files.send_file
        self.files = files.list
        self.file = files.get
        self.download = files.download
        self.retry_file = files.retry
        self.cancel_file = files.cancel
        self.save_file = files.save
        self.read_file = files.read
        self.open_file = files.open_copy
        self.auto_download = files.auto_download
        self.set_auto_download = files.set_auto_download
        self.contact = queries.contact
        self.find_contact = queries.find_contact
        self.find_request = queries.find_request
        self.find_anyone = queries.find_anyone
        self.summaries = queries.summaries
        self.summary = queries.summary
        self.messages = queries.messages
        self.message = queries.message
        self.search = queries.search
        self.pending_outbox = queries.pending_outbox
        self.connection_states = routing.connection_states
        self.backup = backups.backup
        self.backup_schedule = backups.schedule
        self.set_backup_schedule = backups.set_schedule

    # -- settings the front ends show ----------------------------------------------------

    @property
    def name(self) -> str:
        return self._ctx.settings.name

    @property
    def relay_url(self) -> str:
        """Our relay (the first of `relays`)."""
        return self._ctx.settings.relay_url

    @property
    def relays(self) -> tuple[str, ...]:
        """Our relay, then its fallbacks in the order to try them."""
        return self._ctx.settings.relays

    @property
    def relay_mode(self) -> RelayMode:
        return self._ctx.settings.relay_mode

    async def set_relay_url(self, url: str, *, test: bool = True) -> tuple[str, ...]:
        """Use this one relay from now on (tested first; every contact moves to it)."""
        return await self._moving.set_relays([url], RelayMode.URL, test=test)

    @property
    def read_receipts(self) -> bool:
        return self._ctx.settings.read_receipts

    # -- lifecycle -----------------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        opened: Opened,
        *,
        clock: Callable[[], int] = now_ms,
        backup_params: KdfParams = DEFAULT_PARAMS,
    ) -> Engine:
        """An engine with the profile's settings loaded, not yet connected."""
        engine = cls(opened, clock=clock, backup_params=backup_params)
        await engine.reload_settings()
        await engine._expiry.sweep()  # what ran out while the profile was closed
        await engine._files.sweep()  # files whose messages went, or a send cut off
        await engine._groups.load()
        await engine._rejoin.reconnect()  # restored from a backup: a fresh handshake with each
        return engine

    async def reload_settings(self) -> None:
        await self._ctx.load_settings()

    async def start(self) -> None:
        """Listen on our mailboxes, watch the peers', start receiving and sending."""
        if self._tasks or self._closed:
            return
        await self._routing.start()
        self._account.listening = self._moving.listening = self._groups.listening = True
        self._expiry.start()
        self._tasks = [
            asyncio.create_task(self._inbound.run(), name="anonchat-receive"),
            asyncio.create_task(self._outbox.run(), name="anonchat-outbox"),
        ]
        await self._moving.catch_up()  # a change of relays cut short last time
        self._rejoin.active = True
        await self._rejoin.offer_all()  # a prekey for each channel that has given none yet
        await self._files.start()  # transfers under way when the profile closed
        self._backups.start()  # a scheduled backup due now, then checked every minute

    async def close(self) -> None:
        """Stop after the frame and the outbox batch in hand: a message stored is also
        reported, and a send made is also recorded (cut off only after CLOSE_GRACE_S). A
        second call does nothing."""
        if self._closed:
            return
        self._closed = True
        await self._backups.close()  # a backup under way stops and leaves nothing
        self._expiry.stop()
        await self._expiry.drain()
        self._outbox.stop()
        self._inbound.stop()
        with contextlib.suppress(Exception):  # what arrived is flushed and recorded first
            await self._files.close()
        if self._tasks:
            _, late = await asyncio.wait(self._tasks, timeout=CLOSE_GRACE_S)
            for task in late:
                task.cancel()
            for task in self._tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._tasks = []
        with contextlib.suppress(Exception):
            await self._groups.close()
        with contextlib.suppress(Exception):
            await self._rejoin.close()
        with contextlib.suppress(Exception):  # receipts gathering: stored to go out next time
            await self._messaging.flush_receipts()
        await self._routing.close()
        with contextlib.suppress(Exception):  # counts only; never keeps a profile from closing
            await self._ctx.rejections.flush(self.store)
        await self.store.close()
        self._lock_file.release()

    async def wipe(self) -> None:
        """Panic wipe of this profile (app/store/wipe.py): its key header destroyed first, so
        the database is noise from then on; the engine closed; then every file of it and its
        keyring entry deleted. WipeIncomplete (a StoreError) says what could not be."""
        paths = self.store.paths
        try:
            await destroy_header(paths)
        finally:
            try:
                await self.close()
            finally:
                await wipe_profile(paths)

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call `listener` with every event; returns the function that stops it."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    async def receive(self, delivered: net.Delivered) -> None:
        """One frame in, now, as the relay hands it over, and its receipt stored at once
        (the receive loop gathers receipts for a moment instead)."""
        await self._inbound.receive(delivered)
        await self._messaging.flush_receipts()

    def on_net_event(self, event: net.NetEvent) -> None:
        """What the relay connections report (frames, presence, connection state)."""
        self._routing.on_net_event(event)

    async def delete_contact(self, contact_id: int, keep_history: bool = False) -> None:
        """Delete a contact (or, with its history kept, end it); a group is left first."""
        if self._groups.is_group(contact_id):
            await self._groups.delete(contact_id, keep_history)
        else:
            await self._contacts.delete_contact(contact_id, keep_history)

    async def retry(self, message_row: int) -> Message:
        """Send a failed message again (a contact's; a group's copies are resent by the
        outbox until each member has them, so one that failed for good is written anew)."""
        message = await self.message(message_row)
        if self._groups.is_group(message.contact_id):
            raise UserError("a group message that failed cannot be sent again: write it anew")
        return await self._messaging.retry(message_row)

    async def send(self, contact_id: int, text: str, reply_to: int | None = None) -> Message:
        """Write to a contact, or to a group (signed and sealed for each member)."""
        if self._groups.is_group(contact_id):
            return await self._groups.send(contact_id, text, reply_to)
        return await self._messaging.send(contact_id, text, reply_to)

    def _emit(self, event: Event) -> None:
        self._files.on_event(event)
        self._groups.on_event(event)
        self._rejoin.on_event(event)
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                log.exception("an event listener failed")

    def _deliver(self, delivered: net.Delivered) -> None:
        self._inbound.put(delivered)

    async def _room(self) -> None:
        await self._inbound.room()
