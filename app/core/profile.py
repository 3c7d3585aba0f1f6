"""Creating, opening and wiping a profile: the store, the identity inside it, one process at
a time.

Opening with the duress passphrase (set with `Account.set_duress`) wipes the profile and
opens a new, empty one in its place, as if nothing happened: the same location, display
name, relays, connection settings and front-end looks, a fresh identity, and the duress
passphrase as its passphrase. The caller gets an `Opened` like any other: nothing it is
given says which of the two happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from app.core.errors import ProfileBusy, UserError
from app.crypto.card import MAX_FALLBACKS, valid_relay_url
from app.crypto.handshake import Invitation
from app.crypto.identity import Identity
from app.crypto.names import MAX_NAME_BYTES, name_problem
from app.crypto.passphrase import DEFAULT_PARAMS, KdfParams
from app.store import keystore, wipe
from app.store.paths import LOCK_NAME, resolve_profile
from app.store.paths import ProfilePaths as ProfilePaths  # what a front end opens
from app.store.records import MailboxPurpose, OurMailbox
from app.store.repos import Repos
from app.store.store import Store
from app.store.vault import DuressUnlock

NO_KEYRING = keystore.NO_BACKEND
SETTING_RELAY = "relay_url"
SETTING_FALLBACKS = "fallback_relays"  # space-separated, tried in order after relay_url
SETTING_RELAY_MODE = "relay_mode"  # RelayMode: whether this app runs the relay it uses
SETTING_READ_RECEIPTS = "read_receipts"
SETTING_PROXY = "proxy"
SETTING_ISOLATION = "isolation"
MUTED_PREFIX = "muted:"  # settings: a contact whose notifications are silenced (its id)
SETTING_QUOTA = "contact_quota_mb"  # what one contact's messages may take in the store
SETTING_AUTO_DOWNLOAD = "auto_download_mb"  # files up to this size are fetched unasked
SETTING_ADDRESS = "address_mailbox"  # hex id of the long-lived address's mailbox, if any
FRONT_END_PREFIX = "ui."  # settings: a front end's own preferences (theme, notifications)
DEFAULT_RELAY = "ws://127.0.0.1:8765"
# What a profile started by the duress passphrase takes over from the one it replaces (as
# they were when the duress passphrase was set): its display name, these settings, and a few
# short front-end preferences.
DURESS_NAME = "name"
DURESS_KEPT = (
    SETTING_RELAY,
    SETTING_FALLBACKS,
    SETTING_RELAY_MODE,
    SETTING_PROXY,
    SETTING_ISOLATION,
)
DURESS_FRONT_END = 4  # preferences at most, each value at most 16 characters


def now_ms() -> int:
    return int(time.time() * 1000)


def keyring_available() -> bool:
    """Whether "remember on this computer" can work here, asked before any profile is open."""
    return keystore.available()


def profile_paths(profile: str) -> ProfilePaths:
    try:
        return resolve_profile(profile)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def check_relay_url(url: str) -> str:
    """A relay URL as a card can carry it; raises UserError otherwise."""
    if not valid_relay_url(url):
        raise UserError(f"not a relay URL (ws://host:port or wss://host:port): {url!r}")
    return url


class RelayMode(StrEnum):
    """Where the profile's relay comes from: shared by this app on the network, a relay
    elsewhere (typed in, or found on the network), or run by this app for this computer."""

    SHARE = "share"
    URL = "url"
    LOCAL = "local"


def relay_mode_of(stored: str, relay_url: str) -> RelayMode:
    """The stored mode; a profile made before modes existed ran the app's own relay when it
    used the default one."""
    if stored in RelayMode.__members__.values():
        return RelayMode(stored)
    return RelayMode.LOCAL if relay_url.rstrip("/") == DEFAULT_RELAY else RelayMode.URL


def check_relays(urls: Sequence[str]) -> tuple[str, ...]:
    """One relay and up to two fallbacks, stripped and distinct; UserError otherwise."""
    cleaned = tuple(check_relay_url(u.strip()) for u in urls if u.strip())
    if not cleaned:
        raise UserError("a relay is needed")
    if len(cleaned) > 1 + MAX_FALLBACKS:
        raise UserError(f"at most {MAX_FALLBACKS} fallback relays")
    if len(set(cleaned)) != len(cleaned):
        raise UserError("a relay is named twice")
    return cleaned


def check_display_name(name: str) -> str:
    """A display name, stripped; UserError saying what is wrong otherwise."""
    name = name.strip()
    problem = name_problem(name)
    if problem is not None:
        raise UserError(f"{problem} (names are 1 to {MAX_NAME_BYTES} bytes)")
    return name


class ProfileLock:
    """An advisory lock file: two engines on one profile would fork its ratchets."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    @classmethod
    def acquire(cls, directory: Path) -> ProfileLock:
        fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ProfileBusy("this profile is open in another AnonChat process") from None
        return cls(fd)

    def release(self) -> None:
        if self._fd >= 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = -1


@dataclass(frozen=True, slots=True)
class Opened:
    store: Store
    identity: Identity
    lock: ProfileLock


async def create_profile(
    paths: ProfilePaths,
    passphrase: str,
    name: str,
    relay_url: str = DEFAULT_RELAY,
    params: KdfParams = DEFAULT_PARAMS,
    relay_mode: RelayMode | None = None,
    fallbacks: Sequence[str] = (),
) -> Opened:
    """A new profile with a fresh identity and a first invitation (the card's mailbox).
    `relay_mode` None: LOCAL for the default relay, else URL."""
    name = check_display_name(name)
    if not passphrase:
        raise UserError("the passphrase must not be empty")
    relays = check_relays([relay_url, *fallbacks])
    mode = relay_mode or relay_mode_of("", relays[0])
    store = await Store.create(paths, passphrase, params)
    return await _first_open(store, name, relays, mode, {})


async def _first_open(
    store: Store, name: str, relays: tuple[str, ...], mode: RelayMode, more: Mapping[str, str]
) -> Opened:
    """A new store locked and given its identity, first invitation and settings."""
    try:
        lock = ProfileLock.acquire(store.paths.directory)
    except BaseException:
        await store.close()
        raise
    identity = Identity.generate()
    invitation = Invitation.generate()
    now = now_ms()
    relay_url = relays[0]

    def setup(r: Repos) -> None:
        r.profile.create(identity.to_bytes(), name, now)
        r.settings.set(SETTING_RELAY, relay_url)
        r.settings.set(SETTING_FALLBACKS, " ".join(relays[1:]))
        r.settings.set(SETTING_RELAY_MODE, mode.value)
        for key, value in more.items():
            r.settings.set(key, value)
        r.mailboxes.add_ours(
            OurMailbox(
                invitation.mailbox.id,
                invitation.to_bytes(),
                relay_url,
                MailboxPurpose.INVITATION,
                None,
                now,
                relays[1:],
            )
        )

    await store.run(setup)
    return Opened(store, identity, lock)


async def open_profile(paths: ProfilePaths, passphrase: str | None) -> Opened:
    """Unlock with the passphrase, or with a remembered key when passphrase is None."""
    if passphrase == "":
        raise UserError("the passphrase is empty")
    if passphrase is None:
        store = await Store.unlock_remembered(paths)
        if store is None:
            raise UserError("no remembered key for this profile; a passphrase is needed")
    else:
        unlocked = await Store.unlock_or_duress(paths, passphrase)
        if isinstance(unlocked, DuressUnlock):
            return await _start_over(paths, unlocked)
        store = unlocked
    try:
        lock = ProfileLock.acquire(paths.directory)
    except BaseException:
        await store.close()
        raise
    try:
        profile = await store.identity()
        if profile is None:
            raise UserError("this profile was never finished; create it again")
        return Opened(store, Identity.from_bytes(profile.identity), lock)
    except BaseException:
        lock.release()
        await store.close()
        raise


def duress_settings(name: str, stored: Mapping[str, str]) -> dict[str, str]:
    """What the duress passphrase's new profile will start from, out of this profile's name
    and settings."""
    kept = {DURESS_NAME: name}
    kept.update({k: stored[k] for k in DURESS_KEPT if k in stored})
    looks = [
        (k, v) for k, v in sorted(stored.items()) if k.startswith(FRONT_END_PREFIX) and len(v) <= 16
    ]
    kept.update(looks[:DURESS_FRONT_END])
    return kept


async def _start_over(paths: ProfilePaths, found: DuressUnlock) -> Opened:
    """The duress passphrase: wipe the profile, then a new one in its place under the key
    already derived (its own slot), from the settings the duress field kept. A profile open
    in another process is busy, as it would be for its own passphrase, and stays as it is."""
    lock = ProfileLock.acquire(paths.directory)
    try:
        with contextlib.suppress(wipe.WipeIncomplete):  # unreadable already; what is
            await wipe_profile(paths)  # left is made anew below, or refused as existing
        store = await Store.create_with_key(paths, found.slot, found.key)
    finally:
        lock.release()
    kept = found.settings
    try:
        name = check_display_name(kept.get(DURESS_NAME, ""))
    except UserError:
        name = "Me"
    try:
        relays = check_relays(
            [kept.get(SETTING_RELAY, ""), *kept.get(SETTING_FALLBACKS, "").split()]
        )
    except UserError:
        relays = (DEFAULT_RELAY,)
    mode = relay_mode_of(kept.get(SETTING_RELAY_MODE, ""), relays[0])
    more = {
        k: v
        for k, v in kept.items()
        if k in (SETTING_PROXY, SETTING_ISOLATION) or k.startswith(FRONT_END_PREFIX)
    }
    return await _first_open(store, name, relays, mode, more)


async def destroy_header(paths: ProfilePaths) -> None:
    """The first step of a panic wipe on its own: the key header destroyed, so the database
    is unreadable from now on (app/store/wipe.py)."""
    await asyncio.to_thread(wipe.destroy_header, paths)


async def wipe_profile(paths: ProfilePaths) -> None:
    """Panic wipe (app/store/wipe.py): the key header first, then the database, its side
    files, the files, the keyring entry and the directory, whoever holds the profile open.
    A profile not there is not an error; WipeIncomplete (a StoreError) says what is left."""
    await asyncio.to_thread(wipe.wipe_profile, paths)
