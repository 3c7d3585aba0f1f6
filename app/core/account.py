"""The profile itself: our card, our name and relay, the passphrase and the OS keyring,
front-end preferences, read receipts, and what a scanned card is before it is added."""

from __future__ import annotations

from app.core.context import Context
from app.core.errors import UserError
from app.core.handshakes import is_address, parse_card
from app.core.profile import (
    FRONT_END_PREFIX,
    SETTING_ADDRESS,
    SETTING_ISOLATION,
    SETTING_PROXY,
    SETTING_QUOTA,
    SETTING_READ_RECEIPTS,
    check_display_name,
    duress_settings,
    keyring_available,
)
from app.core.routing import Isolation, Routing, isolation_for
from app.crypto.handshake import Invitation
from app.domain.contacts import CardPreview
from app.net.pool import check_proxy_url
from app.store.errors import WrongPassphrase
from app.store.records import MailboxPurpose, OurMailbox
from app.store.repos import Repos

MIN_PASSPHRASE = 8
MAX_QUOTA_MB = 1_000_000


def _front_end_key(key: str) -> str:
    if not key.startswith(FRONT_END_PREFIX) or len(key) > 64:
        raise ValueError("front-end preferences live under 'ui.' and are short")
    return key


def invitation_row(relays: tuple[str, ...], now: int) -> OurMailbox:
    """A fresh card (its invitation: prekey and mailbox) on our relays, as a row to store."""
    invitation = Invitation.generate()
    return OurMailbox(
        invitation.mailbox.id,
        invitation.to_bytes(),
        relays[0],
        MailboxPurpose.INVITATION,
        None,
        now,
        relays[1:],
    )


async def store_invitation(ctx: Context, relays: tuple[str, ...], *, address: bool) -> OurMailbox:
    """A fresh card mailbox on our relays, stored (as the address, or a one-time code); the
    caller listens on it."""
    row = invitation_row(relays, ctx.clock())

    def unit(r: Repos) -> None:
        r.mailboxes.add_ours(row)
        if address:
            r.settings.set(SETTING_ADDRESS, row.id.hex())

    await ctx.store.run(unit)
    return row


class Account:
    def __init__(self, ctx: Context, routing: Routing) -> None:
        self._ctx = ctx
        self._routing = routing
        self.listening = False  # set once the engine listens: a new card mailbox is listened on

    async def card(self, address: bool = False) -> str:
        """Our card ('anonchat:...') for the QR code and the copyable text: a one-time code
        (works for one contact; once used, a fresh one is made), or the long-lived address
        (made on first ask)."""
        ctx = self._ctx
        relays = ctx.settings.relays

        def find(r: Repos) -> OurMailbox | None:
            boxes = r.mailboxes.list_ours(purpose=MailboxPurpose.INVITATION)
            if address:
                return next((b for b in boxes if is_address(r, b.id)), None)
            unused = (
                b
                for b in reversed(boxes)
                if b.relays == relays
                and not is_address(r, b.id)
                and not Invitation.from_bytes(b.private_key).used
            )
            return next(unused, None)

        async with ctx.lock:  # one fresh code, even if two views ask at once
            box = await ctx.store.read(find)
            fresh = box is None
            if box is None:
                box = await store_invitation(ctx, relays, address=address)
        invitation = Invitation.from_bytes(box.private_key)
        if fresh and self.listening:  # outside the lock: frames go on arriving meanwhile
            await self._routing.listen(box.relays, invitation.mailbox, None)
        card = invitation.card(
            ctx.identity,
            box.relay_url,
            ctx.settings.name,
            address=address,
            fallbacks=box.fallbacks,
        )
        return card.encode()

    async def has_address(self) -> bool:
        return await self._ctx.store.read(lambda r: r.settings.get(SETTING_ADDRESS) is not None)

    async def rotate_address(self) -> str:
        """A new long-lived address; the old one stops working at once (its mailbox is
        unsubscribed and forgotten). Contacts are untouched."""
        await self.delete_address()
        return await self.card(address=True)

    async def delete_address(self) -> None:
        """No long-lived address any more: its code stops working. Contacts are untouched."""
        ctx = self._ctx

        def unit(r: Repos) -> list[OurMailbox]:
            kept = r.settings.get(SETTING_ADDRESS)
            r.settings.delete(SETTING_ADDRESS)
            box = None if kept is None else r.mailboxes.get_ours(bytes.fromhex(kept))
            if box is None:
                return []
            r.mailboxes.delete_ours(box.id)
            return [box]

        async with ctx.lock:
            gone = await ctx.store.run(unit)
        await self._routing.drop_mailboxes(gone)

    async def preview_card(self, text: str) -> CardPreview:
        """Whose code this is, before adding it; UserError when it is not a valid code."""
        card = parse_card(text)
        keys = card.identity.to_bytes()
        known = await self._ctx.store.read(lambda r: r.contacts.find_by_identity(keys))
        is_self = keys == self._ctx.identity.public.to_bytes()
        return CardPreview(card.name, card.relay_url, is_self, known)

    async def set_display_name(self, name: str) -> None:
        name = check_display_name(name)
        await self._ctx.store.run(lambda r: r.profile.set_display_name(name))
        self._ctx.settings.name = name

    async def set_proxy(self, url: str | None) -> str:
        """Connect to every relay through this SOCKS5 proxy (None or "": directly); applies
        from the next start. Returns the URL as stored ("" for none)."""
        value = ""
        if url and url.strip().lower() != "none":
            try:
                value = check_proxy_url(url)
            except ValueError as exc:
                raise UserError(str(exc)) from None
        await self._ctx.store.run(lambda r: r.settings.set(SETTING_PROXY, value))
        self._ctx.settings.proxy = value
        return value

    async def set_isolation(self, isolation: str | None) -> Isolation:
        """Which connections carry what (None or "": the default for the proxy setting);
        applies from the next start. Returns the isolation now in force for the settings."""
        value = (isolation or "").strip()
        if value:
            try:
                Isolation(value)
            except ValueError:
                names = ", ".join(i.value for i in Isolation)
                raise UserError(f"isolation is one of {names}, not {value!r}") from None
        await self._ctx.store.run(lambda r: r.settings.set(SETTING_ISOLATION, value))
        self._ctx.settings.isolation = value
        return self.isolation()

    def isolation(self) -> Isolation:
        """The isolation the settings ask for (what the next start uses)."""
        return isolation_for(self._ctx.settings.isolation, self._ctx.settings.proxy)

    def proxy(self) -> str:
        return self._ctx.settings.proxy

    async def set_quota(self, megabytes: int) -> None:
        """What one contact's messages may take in the store, in MB (at least 1); past it
        their new messages wait in their outbox until there is room."""
        if not 1 <= megabytes <= MAX_QUOTA_MB:
            raise UserError(f"the quota is between 1 and {MAX_QUOTA_MB} MB")
        await self._ctx.store.run(lambda r: r.settings.set(SETTING_QUOTA, str(megabytes)))
        self._ctx.settings.quota_mb = megabytes

    def quota(self) -> int:
        """What one contact's messages may take in the store, in MB."""
        return self._ctx.settings.quota_mb

    async def set_read_receipts(self, enabled: bool) -> None:
        value = "1" if enabled else "0"
        await self._ctx.store.run(lambda r: r.settings.set(SETTING_READ_RECEIPTS, value))
        self._ctx.settings.read_receipts = enabled

    async def change_passphrase(self, old: str, new: str) -> None:
        if len(new) < MIN_PASSPHRASE:
            raise UserError(f"the new passphrase needs at least {MIN_PASSPHRASE} characters")
        try:
            await self._ctx.store.change_passphrase(old, new)
        except WrongPassphrase:
            raise UserError("the current passphrase is wrong; nothing was changed") from None

    async def set_duress(self, passphrase: str) -> None:
        """Make `passphrase` the duress passphrase: entered at unlock, it wipes this profile
        and opens a new, empty one with today's name, relays and connection settings
        (app/core/profile.py). Replaces one set before; refused when it is the passphrase."""
        if len(passphrase) < MIN_PASSPHRASE:
            raise UserError(f"the duress passphrase needs at least {MIN_PASSPHRASE} characters")
        ctx = self._ctx
        stored = await ctx.store.read(lambda r: r.settings.all())
        await ctx.store.set_duress(passphrase, duress_settings(ctx.settings.name, stored))

    async def clear_duress(self) -> None:
        """No duress passphrase any more (one that was set is then just a wrong one)."""
        await self._ctx.store.clear_duress()

    def keyring_available(self) -> bool:
        return keyring_available()

    async def remember_key(self, enabled: bool) -> str | None:
        """Keep (or drop) the key in the OS keyring; None when done, else why not."""
        store = self._ctx.store
        status = await (store.remember() if enabled else store.forget())
        return None if status.ok else status.reason

    async def preferences(self) -> dict[str, str]:
        """A front end's own choices (theme, notifications), kept in the encrypted profile."""
        stored = await self._ctx.store.read(lambda r: r.settings.all())
        return {k: v for k, v in stored.items() if k.startswith(FRONT_END_PREFIX)}

    async def set_preferences(self, values: dict[str, str]) -> None:
        """Store several front-end preferences in one transaction."""
        checked = {_front_end_key(k): v for k, v in values.items()}

        def unit(r: Repos) -> None:
            for key, value in checked.items():
                r.settings.set(key, value)

        await self._ctx.store.run(unit)

    async def rejections(self) -> dict[str, int]:
        """How many frames were dropped, by kind, over the profile's life."""
        return await self._ctx.rejections.totals(self._ctx.store)
