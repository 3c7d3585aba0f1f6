"""Relays announced on the local network (mDNS/DNS-SD), as a live list or found once.

Every announcement comes from whoever is on the network, so each is checked before it is
listed (:func:`found_relay`): a bad name, version, scheme, path, port or address set skips
it, and the list holds at most :data:`MAX_RELAYS`. Nothing here raises because of what the
network sent. The records are those :mod:`relay.announce` writes.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from zeroconf import Error as ZeroconfError
from zeroconf import IPVersion, ServiceInfo, ServiceStateChange, Zeroconf
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from relay.announce import (
    ASK,
    TXT_VERSION,
    IPInterface,
    check_name,
    machine_interfaces,
    multicast_interfaces,
    reachable,
)
from relay.announce import SERVICE_TYPE as SERVICE_TYPE

log = logging.getLogger(__name__)

MAX_RELAYS = 64  # listed, and looked up at once: hundreds of announcements cost no more
MAX_ADDRESSES = 8  # kept per relay
LOOKUP_MS = 3000  # to resolve one announced name into its port, TXT and addresses
_PATH = re.compile(r"/[A-Za-z0-9._~/-]{0,63}")


@dataclass(frozen=True, slots=True)
class FoundRelay:
    """A relay announced on the network: its name, the URL to use, every address it gave."""

    name: str
    url: str
    addresses: tuple[str, ...]


def local_addresses() -> list[str]:
    """This machine's addresses others on the network may reach, IPv4 first: no loopback and
    no IPv6 link-local (IPv4 link-local, what two computers joined by a cable get, comes
    last)."""
    return [str(i.ip) for i in machine_interfaces()]


def found_relay(info: ServiceInfo, networks: Sequence[IPInterface] = ()) -> FoundRelay | None:
    """What an announcement says, or None when it is unusable or malformed.

    Addresses on one of `networks` (ours) come first, then IPv4 before IPv6; the URL uses the
    first one."""
    suffix = "." + SERVICE_TYPE
    if not info.name.lower().endswith(suffix.lower()):
        return None
    try:
        name = check_name(info.name[: -len(suffix)])
    except ValueError:
        return None
    port = info.port
    if not isinstance(port, int) or not 0 < port < 65536:
        return None
    txt = info.properties
    if txt.get(b"v") != TXT_VERSION.encode():
        return None
    scheme = txt.get(b"scheme", b"ws")
    if scheme not in (b"ws", b"wss"):
        return None
    path = txt.get(b"path", b"/")
    if path is None or not _PATH.fullmatch(path.decode("ascii", errors="replace")):
        return None
    parsed = {ipaddress.ip_address(a) for a in info.parsed_addresses(IPVersion.All)}
    addresses = sorted(
        (a for a in parsed if reachable(a)),
        key=lambda a: (not any(a in n.network for n in networks), a.version, int(a)),
    )
    if not addresses:
        return None
    chosen = [str(a) for a in addresses[:MAX_ADDRESSES]]
    first = f"[{chosen[0]}]" if ":" in chosen[0] else chosen[0]
    url = f"{scheme.decode()}://{first}:{port}{path.decode()}"
    return FoundRelay(name, url, tuple(chosen))


class RelayBrowser:
    """The relays announced on the network now, kept up to date while it runs: a new one is
    looked up and added, one that says goodbye or whose records expire leaves; each change
    calls `on_change` with the new list."""

    def __init__(
        self,
        on_change: Callable[[list[FoundRelay]], None] | None = None,
        interfaces: list[str] | None = None,
    ) -> None:
        """`interfaces`: the addresses to listen on; None: all non-loopback ones."""
        self.on_change = on_change
        self.interfaces = interfaces
        self.zeroconf: AsyncZeroconf | None = None
        self.browser: AsyncServiceBrowser | None = None
        self.networks: list[IPInterface] = []
        self.found: dict[str, FoundRelay] = {}
        self.lookups: dict[str, asyncio.Task[None]] = {}

    async def start(self) -> None:
        """Listen and ask; without a network address there is nothing to browse (no error)."""
        if self.zeroconf is not None:
            return
        self.networks = machine_interfaces()
        listen_on = self.interfaces or multicast_interfaces([str(n.ip) for n in self.networks])
        if not listen_on:
            return
        self.zeroconf = AsyncZeroconf(interfaces=listen_on)
        self.browser = AsyncServiceBrowser(
            self.zeroconf.zeroconf, SERVICE_TYPE, handlers=[self.changed], question_type=ASK
        )

    def relays(self) -> list[FoundRelay]:
        """Sorted by name, then URL."""
        return sorted(self.found.values(), key=lambda r: (r.name.casefold(), r.name, r.url))

    async def close(self) -> None:
        """Stop listening; the list stays as it was. Idempotent."""
        zc, browser = self.zeroconf, self.browser
        self.zeroconf = self.browser = None
        lookups = list(self.lookups.values())
        self.lookups.clear()
        for task in lookups:
            task.cancel()
        await asyncio.gather(*lookups, return_exceptions=True)
        if browser is not None:
            await browser.async_cancel()
        if zc is not None:
            await zc.async_close()

    def changed(
        self,
        zeroconf: Zeroconf,
        service_type: str,
        name: str,
        state_change: ServiceStateChange,
    ) -> None:
        """zeroconf's callback (by keyword, on the loop): look up, or drop, one name."""
        if self.zeroconf is None:
            return
        running = self.lookups.pop(name, None)
        if running is not None:
            running.cancel()
        if state_change is ServiceStateChange.Removed:
            self.drop(name)
            return
        if name not in self.found and len(self.found) + len(self.lookups) >= MAX_RELAYS:
            return
        self.lookups[name] = asyncio.get_running_loop().create_task(self.look_up(name))

    async def look_up(self, name: str) -> None:
        relay: FoundRelay | None = None
        try:
            if self.zeroconf is not None:
                info = AsyncServiceInfo(SERVICE_TYPE, name)
                if await info.async_request(self.zeroconf.zeroconf, LOOKUP_MS, question_type=ASK):
                    relay = found_relay(info, self.networks)
        except (ZeroconfError, ValueError) as exc:  # the peer's fault: a name zeroconf refuses
            log.debug("skipped an announcement: %s", type(exc).__name__)
        finally:
            if self.lookups.get(name) is asyncio.current_task():
                del self.lookups[name]
        if relay is None:
            self.drop(name)
        elif self.found.get(name) != relay and (name in self.found or len(self.found) < MAX_RELAYS):
            self.found[name] = relay
            self.notify()

    def drop(self, name: str) -> None:
        if self.found.pop(name, None) is not None:
            self.notify()

    def notify(self) -> None:
        if self.on_change is not None:
            self.on_change(self.relays())


async def browse(seconds: float = 3.0) -> list[FoundRelay]:
    """The relays that answer within `seconds`, sorted by name."""
    browser = RelayBrowser()
    await browser.start()
    try:
        if browser.zeroconf is not None:
            await asyncio.sleep(seconds)
    finally:
        await browser.close()
    return browser.relays()
