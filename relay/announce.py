"""A relay announced on the local network with mDNS/DNS-SD, so clients there can find it.

Off unless asked for (``anonchat-relay --announce``). A relay that listens on loopback only is
never announced: nobody else could reach it. The records name the relay's addresses, its
port and, in TXT, ``v=1``, ``scheme=ws|wss`` and ``path=/``; :mod:`app.net.discovery` reads
them back with the constants defined here.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Sequence

import ifaddr
from zeroconf import DNSQuestionType
from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

SERVICE_TYPE = "_anonchat-relay._tcp.local."
TXT_VERSION = "1"
# One DNS label: the instance name of a service is at most 63 bytes (RFC 6763, 4.1.1).
MAX_NAME_BYTES = 63
NAME_CHECK_MS = 1000  # how long another relay of the same name has to answer
# Questions asking for multicast answers: a unicast answer to port 5353 reaches one socket of
# those bound to it, and with two mDNS stacks on one computer (two relays, or a relay and
# the app looking for it) often the wrong one.
ASK = DNSQuestionType.QM
# Short TTLs for every record (the PTR too, 75 minutes by default): a relay that died
# without its goodbye leaves the lists of the clients that saw it within two minutes.
RECORD_TTL = 120

WILDCARD_HOSTS = {"": (4, 6), "0.0.0.0": (4,), "::": (6,)}  # noqa: S104  (what they listen on)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface


def reachable(address: IPAddress) -> bool:
    """Whether another computer may reach a relay at this address: not loopback (that is its
    own), not unspecified or a group, not IPv6 link-local (meaningless without an interface's
    scope, which a URL does not carry). IPv4 link-local is fine: two computers joined by a
    cable and nothing else have only that."""
    return not (
        address.is_loopback
        or address.is_unspecified
        or address.is_multicast
        or (address.version == 6 and address.is_link_local)
    )


def machine_interfaces() -> list[IPInterface]:
    """This machine's :func:`reachable` addresses with their networks, IPv4 first (link-local
    IPv4 last among them)."""
    found: dict[IPAddress, IPInterface] = {}
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            text = ip.ip if isinstance(ip.ip, str) else ip.ip[0]
            try:
                iface = ipaddress.ip_interface(f"{text.split('%')[0]}/{ip.network_prefix}")
            except ValueError:
                continue
            if reachable(iface.ip):
                found.setdefault(iface.ip, iface)
    return sorted(found.values(), key=lambda i: (i.version, i.ip.is_link_local))


def is_loopback_host(host: str) -> bool:
    """Whether a listening host reaches this machine alone (127.0.0.0/8, ::1, localhost)."""
    name = host.strip().strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name.split("%")[0]).is_loopback
    except ValueError:
        return False


def default_name() -> str:
    """The name a relay gets unless given one: AnonChat relay on HOST (a second relay of HOST
    gets its port too, see :meth:`Announcer.start`)."""
    host = socket.gethostname().split(".")[0] or "this computer"
    return f"AnonChat relay on {host}".encode()[:MAX_NAME_BYTES].decode(errors="ignore")


def with_port(name: str, port: int) -> str:
    """The name with its port added, cut to fit one DNS label."""
    suffix = f" (port {port})"
    room = MAX_NAME_BYTES - len(suffix.encode())
    return name.encode()[:room].decode(errors="ignore").rstrip() + suffix


def check_name(name: str) -> str:
    """A service instance name we may announce, or ValueError saying why not."""
    name = name.strip()
    if not name:
        raise ValueError("the relay's name is empty")
    if not name.isprintable():
        raise ValueError("the relay's name has control or invisible characters")
    if len(name.encode()) > MAX_NAME_BYTES:
        raise ValueError(f"the relay's name is longer than {MAX_NAME_BYTES} bytes")
    return name


def multicast_interfaces(addresses: Sequence[str]) -> list[str]:
    """The addresses zeroconf should send and listen on: the IPv4 ones when there are any
    (the records announce every address either way), the IPv6 ones on an IPv6-only host."""
    v4 = [a for a in addresses if ":" not in a]
    return v4 or list(addresses)


def server_name(port: int) -> str:
    """The SRV target host: our own name, so the host's own mDNS responder keeps its own."""
    label = re.sub(r"[^a-z0-9-]+", "-", socket.gethostname().split(".")[0].lower()).strip("-")
    return f"anonchat-relay-{label[:32] or 'host'}-{port}.local."


async def announced_addresses(host: str, interfaces: Sequence[str] | None = None) -> list[str]:
    """The addresses a relay listening on `host` is reachable at from other computers.

    A wildcard host ("", 0.0.0.0, ::) means this machine's addresses of its families (only
    those in `interfaces` when given); a name is resolved; loopback is a ValueError."""
    if is_loopback_host(host):
        raise ValueError("nothing to announce: the relay listens on loopback only")
    if host.strip() in WILDCARD_HOSTS:
        families = WILDCARD_HOSTS[host.strip()]
        chosen = [str(i.ip) for i in machine_interfaces() if i.version in families]
        if interfaces is not None:
            wanted = {ipaddress.ip_address(a.split("%")[0]) for a in interfaces}
            chosen = [a for a in chosen if ipaddress.ip_address(a) in wanted]
        if not chosen:
            raise ValueError("nothing to announce: this computer has no network address")
        return chosen
    literal = host.strip().strip("[]")
    try:
        addresses: list[IPAddress] = [ipaddress.ip_address(literal)]
    except ValueError:
        infos = await asyncio.get_running_loop().getaddrinfo(literal, None, type=socket.SOCK_STREAM)
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    usable = [str(a) for a in dict.fromkeys(addresses) if reachable(a)]
    if not usable:
        raise ValueError(f"nothing to announce: {host} is loopback or link-local only")
    return usable


def service_info(instance: str, port: int, addresses: list[str], tls: bool) -> AsyncServiceInfo:
    """The records of one relay: SRV (port, our host name), TXT, A/AAAA; short TTLs."""
    return AsyncServiceInfo(
        SERVICE_TYPE,
        f"{instance}.{SERVICE_TYPE}",
        port=port,
        properties={"v": TXT_VERSION, "scheme": "wss" if tls else "ws", "path": "/"},
        server=server_name(port),
        host_ttl=RECORD_TTL,
        other_ttl=RECORD_TTL,
        parsed_addresses=addresses,
    )


class Announcer:
    """One relay's announcement: registered by :meth:`start`, withdrawn (goodbye packets sent)
    by :meth:`close`."""

    def __init__(self, interfaces: list[str] | None = None) -> None:
        """`interfaces`: the addresses to announce on; None: all non-loopback ones."""
        self.interfaces = interfaces
        self.name: str | None = None  # as registered (a clash on the network renames it)
        self.zeroconf: AsyncZeroconf | None = None
        self.info: AsyncServiceInfo | None = None

    async def start(
        self, host: str, port: int, name: str | None = None, *, tls: bool = False
    ) -> list[str]:
        """Announce a relay listening on `host`:`port`; returns the addresses announced.

        ValueError when there is nothing to announce (a loopback host, no network address) or
        the name or port is unusable."""
        if self.zeroconf is not None:
            raise RuntimeError("already announcing")
        if not 0 < port < 65536:
            raise ValueError(f"cannot announce port {port}")
        instance = check_name(name if name is not None else default_name())
        addresses = await announced_addresses(host, self.interfaces)
        zc = AsyncZeroconf(interfaces=self.interfaces or multicast_interfaces(addresses))
        self.zeroconf = zc
        try:
            if await self.taken(instance):
                instance = with_port(instance, port)
            info = service_info(instance, port, addresses, tls)
            # zeroconf's probe renames on a clash it sees ("NAME-2"), which the check above
            # leaves to relays that start at the same moment.
            await (await zc.async_register_service(info, allow_name_change=True))
        except BaseException:
            self.zeroconf = None
            await zc.async_close()
            raise
        self.info = info
        self.name = info.name.removesuffix("." + SERVICE_TYPE)
        return addresses

    async def taken(self, instance: str) -> bool:
        """Whether a service of that name answers: another relay of this computer (the
        default name is the host's) or one named alike. zeroconf's probe alone misses it."""
        assert self.zeroconf is not None
        info = AsyncServiceInfo(SERVICE_TYPE, f"{instance}.{SERVICE_TYPE}")
        zc = self.zeroconf.zeroconf
        return await info.async_request(zc, NAME_CHECK_MS, question_type=ASK)

    async def close(self) -> None:
        """Withdraw the announcement (goodbye packets) and close the sockets; idempotent."""
        zc, info = self.zeroconf, self.info
        self.zeroconf = self.info = None
        if zc is None:
            return
        if info is not None:
            await (await zc.async_unregister_service(info))
        await zc.async_close()
