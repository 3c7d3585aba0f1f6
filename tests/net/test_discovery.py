"""Relays on the local network: what an announcement must say to be listed, the live list's
bookkeeping, what a relay refuses to announce. No multicast here: the announcements are
built in memory and looked up through a stand-in (tests/e2e/test_netns.py sends real ones
between two network namespaces)."""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import json
from collections.abc import Callable, Coroutine
from typing import Any

import ifaddr
import pytest
from zeroconf import BadTypeInNameException, ServiceInfo, ServiceStateChange

import app.net.discovery as discovery
from app import cli
from app.net.discovery import (
    MAX_RELAYS,
    SERVICE_TYPE,
    FoundRelay,
    RelayBrowser,
    found_relay,
    local_addresses,
)
from relay.announce import (
    MAX_NAME_BYTES,
    Announcer,
    announced_addresses,
    check_name,
    default_name,
    is_loopback_host,
    machine_interfaces,
    service_info,
    with_port,
)


def run(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """An async test run on its own loop (the house has no asyncio plugin for pytest)."""

    @functools.wraps(test)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return wrapper


GOOD_TXT: dict[bytes, bytes | None] = {b"v": b"1", b"scheme": b"ws", b"path": b"/"}


def info(
    name: str = "Office relay",
    port: int | None = 8765,
    addresses: list[str] | None = None,
    txt: dict[bytes, bytes | None] | bytes | None = None,
) -> ServiceInfo:
    return ServiceInfo(
        SERVICE_TYPE,
        f"{name}.{SERVICE_TYPE}",
        port=port,
        properties=GOOD_TXT if txt is None else txt,
        parsed_addresses=["192.168.1.20"] if addresses is None else addresses,
    )


# -- one announcement ----------------------------------------------------------------------


def test_a_relay_announced_as_relay_announce_writes_it_is_found() -> None:
    records = service_info("Office relay", 8765, ["192.168.1.20"], tls=False)
    assert found_relay(records) == FoundRelay(
        "Office relay", "ws://192.168.1.20:8765/", ("192.168.1.20",)
    )
    tls = service_info("Office relay", 443, ["192.168.1.20"], tls=True)
    assert found_relay(tls) == FoundRelay(
        "Office relay", "wss://192.168.1.20:443/", ("192.168.1.20",)
    )


def test_ipv6_goes_in_brackets_and_ipv4_comes_first() -> None:
    only6 = found_relay(info(addresses=["2001:db8::7"]))
    assert only6 is not None
    assert only6.url == "ws://[2001:db8::7]:8765/"
    both = found_relay(info(addresses=["2001:db8::7", "10.0.0.9", "10.0.0.3"]))
    assert both is not None
    assert both.addresses == ("10.0.0.3", "10.0.0.9", "2001:db8::7")
    assert both.url == "ws://10.0.0.3:8765/"


def test_an_address_on_one_of_our_networks_is_the_one_used() -> None:
    ours = [ipaddress.ip_interface("10.77.0.2/24")]
    found = found_relay(info(addresses=["172.17.0.1", "10.77.0.1"]), ours)
    assert found is not None
    assert found.url == "ws://10.77.0.1:8765/"
    assert found.addresses == ("10.77.0.1", "172.17.0.1")


def test_txt_defaults_and_a_longer_path() -> None:
    bare = found_relay(info(txt={b"v": b"1"}))
    assert bare is not None
    assert bare.url == "ws://192.168.1.20:8765/"
    pathed = found_relay(info(txt={**GOOD_TXT, b"path": b"/anonchat"}))
    assert pathed is not None
    assert pathed.url == "ws://192.168.1.20:8765/anonchat"


@pytest.mark.parametrize(
    "txt",
    [
        {},
        {b"v": b"2", b"scheme": b"ws"},
        {b"v": None},
        {b"v": b"1 "},
        {**GOOD_TXT, b"scheme": b"http"},
        {**GOOD_TXT, b"scheme": b"javascript"},
        {**GOOD_TXT, b"scheme": None},
        {**GOOD_TXT, b"scheme": b"ws\x00"},
        {**GOOD_TXT, b"path": b""},
        {**GOOD_TXT, b"path": None},
        {**GOOD_TXT, b"path": b"relay"},
        {**GOOD_TXT, b"path": b"/a b"},
        {**GOOD_TXT, b"path": b"/?q=1"},
        {**GOOD_TXT, b"path": b"/@evil.example"},
        {**GOOD_TXT, b"path": b"/\r\nHost: x"},
        {**GOOD_TXT, b"path": "/é".encode()},
        {**GOOD_TXT, b"path": b"/" + b"a" * 200},
        {**GOOD_TXT, b"path": b"/\xff"},
        b"\xff\x00\x01",
        b"\x09scheme=ws",  # no version
        b"\x03v=2\x09scheme=ws",
    ],
    ids=repr,
)
def test_hostile_txt_is_skipped(txt: dict[bytes, bytes | None] | bytes) -> None:
    assert found_relay(info(txt=txt)) is None


@pytest.mark.parametrize("port", [None, 0])
def test_no_port_is_skipped(port: int | None) -> None:
    assert found_relay(info(port=port)) is None


@pytest.mark.parametrize(
    "addresses",
    [[], ["127.0.0.1"], ["::1"], ["0.0.0.0"], ["::"], ["224.0.0.251"], ["fe80::1"], ["ff02::fb"]],
)
def test_no_address_another_computer_could_have_is_skipped(addresses: list[str]) -> None:
    assert found_relay(info(addresses=addresses)) is None


def test_loopback_and_link_local_ipv6_addresses_are_left_out_the_rest_kept() -> None:
    found = found_relay(info(addresses=["127.0.0.1", "fe80::1", "192.168.1.20"]))
    assert found is not None
    assert found.addresses == ("192.168.1.20",)


def test_at_most_eight_addresses_are_kept() -> None:
    found = found_relay(info(addresses=[f"10.0.0.{i}" for i in range(1, 40)]))
    assert found is not None
    assert len(found.addresses) == discovery.MAX_ADDRESSES


@pytest.mark.parametrize(
    "name",
    [
        "bell\x07relay",
        "esc\x1b[31mred",
        "left\u202eright",  # a bidi override
        "zero\u200bwidth",
        "tab\there",
        "   ",
        "x" * (MAX_NAME_BYTES + 1),
        "é" * 32,  # 64 bytes
    ],
    ids=repr,
)
def test_absurd_names_are_skipped(name: str) -> None:
    try:
        records = info(name=name)
    except BadTypeInNameException:
        return  # zeroconf refuses it first: never listed either (see the browser tests)
    assert found_relay(records) is None


def test_a_name_of_63_bytes_is_fine() -> None:
    found = found_relay(info(name="é" * 31 + "x"))
    assert found is not None
    assert found.name == "é" * 31 + "x"


def test_a_service_of_another_type_is_skipped() -> None:
    other = ServiceInfo(
        "_http._tcp.local.",
        "Printer._http._tcp.local.",
        port=80,
        properties=GOOD_TXT,
        parsed_addresses=["192.168.1.30"],
    )
    assert found_relay(other) is None


# -- the live list -------------------------------------------------------------------------


class Network:
    """Stands in for AsyncServiceInfo: a lookup answers from `services`, or raises."""

    def __init__(self) -> None:
        self.services: dict[str, ServiceInfo | Exception] = {}
        self.lookups = 0
        self.gate: asyncio.Event | None = None

    def info_class(self) -> Callable[..., Any]:
        network = self

        class FakeInfo:
            def __init__(self, type_: str, name: str) -> None:
                self.name = name
                found = network.services.get(name)
                if isinstance(found, BadTypeInNameException):
                    raise found

            async def async_request(self, zc: object, ms: float, **kwargs: object) -> Any:
                network.lookups += 1
                if network.gate is not None:
                    await network.gate.wait()
                found = network.services.get(self.name)
                if isinstance(found, Exception):
                    raise found
                self.found = found
                return found is not None

        return FakeInfo


class StandIn:
    """In place of AsyncZeroconf: what the browser touches of it."""

    zeroconf = None
    closed = False

    async def async_close(self) -> None:
        self.closed = True


class Browser:
    """A RelayBrowser whose zeroconf is a stand-in, fed state changes by hand."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.network = Network()
        self.changes: list[list[FoundRelay]] = []
        fake = self.network.info_class()
        monkeypatch.setattr(discovery, "AsyncServiceInfo", fake)
        real = discovery.found_relay
        monkeypatch.setattr(discovery, "found_relay", lambda i, n=(): real(i.found, n))
        self.browser = RelayBrowser(on_change=self.changes.append)
        self.browser.zeroconf = StandIn()  # type: ignore[assignment]

    def announce(self, name: str, records: ServiceInfo | Exception | None = None) -> str:
        full = f"{name}.{SERVICE_TYPE}"
        self.network.services[full] = records if records is not None else info(name=name)
        self.change(full, ServiceStateChange.Added)
        return full

    def change(self, full: str, state: ServiceStateChange) -> None:
        self.browser.changed(
            zeroconf=None,  # type: ignore[arg-type]
            service_type=SERVICE_TYPE,
            name=full,
            state_change=state,
        )

    async def settle(self) -> None:
        for _ in range(20):
            await asyncio.sleep(0)
        if self.browser.lookups:
            await asyncio.gather(*self.browser.lookups.values(), return_exceptions=True)


@run
async def test_found_then_gone(monkeypatch: pytest.MonkeyPatch) -> None:
    b = Browser(monkeypatch)
    office = b.announce("Office relay")
    b.announce("Attic relay", info(name="Attic relay", addresses=["192.168.1.21"]))
    await b.settle()
    assert [r.name for r in b.browser.relays()] == ["Attic relay", "Office relay"]
    assert len(b.changes) == 2
    b.change(office, ServiceStateChange.Removed)  # its goodbye, or its records expired
    assert [r.name for r in b.browser.relays()] == ["Attic relay"]
    assert [r.name for r in b.changes[-1]] == ["Attic relay"]
    b.change(office, ServiceStateChange.Removed)  # twice: no change, no call
    assert len(b.changes) == 3


@run
async def test_an_update_replaces_the_entry_and_a_bad_one_removes_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    b = Browser(monkeypatch)
    office = b.announce("Office relay")
    await b.settle()
    b.network.services[office] = info(addresses=["192.168.1.99"])
    b.change(office, ServiceStateChange.Updated)
    await b.settle()
    assert [r.url for r in b.browser.relays()] == ["ws://192.168.1.99:8765/"]
    b.change(office, ServiceStateChange.Updated)  # the same records again: no call
    await b.settle()
    assert len(b.changes) == 2
    b.network.services[office] = info(txt={b"v": b"9"})
    b.change(office, ServiceStateChange.Updated)
    await b.settle()
    assert b.browser.relays() == []
    assert b.changes[-1] == []


@run
async def test_hostile_announcements_never_raise_and_are_not_listed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    b = Browser(monkeypatch)
    b.announce("refused", BadTypeInNameException("bad name"))
    b.announce("broken", ValueError("a record zeroconf chokes on"))
    b.announce("noport", info(name="noport", port=None))
    b.announce("silent", None)
    b.network.services[f"silent.{SERVICE_TYPE}"] = None  # type: ignore[assignment]
    b.announce("good")
    await b.settle()
    assert [r.name for r in b.browser.relays()] == ["good"]
    assert b.browser.lookups == {}


@run
async def test_hundreds_of_services_are_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    b = Browser(monkeypatch)
    b.network.gate = asyncio.Event()
    for i in range(500):
        b.announce(f"relay {i:03}", info(name=f"relay {i:03}", addresses=[f"10.0.{i // 200}.1"]))
    assert len(b.browser.lookups) == MAX_RELAYS  # at most that many looked up at once
    b.network.gate.set()
    await b.settle()
    assert len(b.browser.relays()) == MAX_RELAYS
    assert b.network.lookups == MAX_RELAYS
    # A known one may still change; a new one waits for a free place.
    b.announce("relay 999")
    await b.settle()
    assert len(b.browser.relays()) == MAX_RELAYS
    b.change(f"relay 000.{SERVICE_TYPE}", ServiceStateChange.Removed)
    b.announce("relay 999")
    await b.settle()
    assert "relay 999" in [r.name for r in b.browser.relays()]


@run
async def test_a_goodbye_during_the_lookup_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    b = Browser(monkeypatch)
    b.network.gate = asyncio.Event()
    office = b.announce("Office relay")
    await asyncio.sleep(0)
    b.change(office, ServiceStateChange.Removed)
    b.network.gate.set()
    await b.settle()
    assert b.browser.relays() == []
    assert b.changes == []


@run
async def test_close_cancels_lookups_and_changes_are_ignored_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    b = Browser(monkeypatch)
    b.network.gate = asyncio.Event()
    b.announce("Office relay")
    b.browser.browser = None
    await b.browser.close()
    assert b.browser.lookups == {}
    b.announce("Attic relay")
    assert b.browser.lookups == {}
    await b.browser.close()  # twice is fine


# -- what a relay announces ----------------------------------------------------------------


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost", "LOCALHOST.", "a.localhost"]
)
@run
async def test_a_relay_on_loopback_is_never_announced(host: str) -> None:
    assert is_loopback_host(host)
    announcer = Announcer()
    with pytest.raises(ValueError, match="loopback"):
        await announcer.start(host, 8765)
    assert announcer.zeroconf is None  # no socket was opened
    await announcer.close()


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "192.168.1.20", "relay.example.org"])
def test_other_hosts_are_not_loopback(host: str) -> None:
    assert not is_loopback_host(host)


@run
async def test_a_bad_port_or_name_is_refused_before_any_socket() -> None:
    announcer = Announcer()
    for port in (0, 65536, -1):
        with pytest.raises(ValueError, match="port"):
            await announcer.start("0.0.0.0", port)
    for name in ("", "a\nb", "x" * 64):
        with pytest.raises(ValueError, match="name"):
            await announcer.start("0.0.0.0", 8765, name)
    assert announcer.zeroconf is None


def fake_adapters() -> list[ifaddr.Adapter]:
    def ip(address: str, prefix: int) -> ifaddr.IP:
        value: Any = (address, 0, 0) if ":" in address else address
        return ifaddr.IP(value, prefix, "x")

    return [
        ifaddr.Adapter("lo", "lo", [ip("127.0.0.1", 8), ip("::1", 128)], 1),
        ifaddr.Adapter(
            "eth0",
            "eth0",
            [ip("fe80::1", 64), ip("2001:db8::5", 64), ip("192.168.1.20", 24)],
            2,
        ),
        ifaddr.Adapter("eth1", "eth1", [ip("169.254.7.7", 16), ip("10.0.0.5", 8)], 3),
    ]


def test_machine_addresses_leave_out_loopback_and_ipv6_link_local(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(ifaddr, "get_adapters", fake_adapters)
    assert [str(i) for i in machine_interfaces()] == [
        "192.168.1.20/24",
        "10.0.0.5/8",
        "169.254.7.7/16",
        "2001:db8::5/64",
    ]
    assert local_addresses() == ["192.168.1.20", "10.0.0.5", "169.254.7.7", "2001:db8::5"]


@run
async def test_what_each_listening_host_announces(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ifaddr, "get_adapters", fake_adapters)
    assert await announced_addresses("0.0.0.0") == ["192.168.1.20", "10.0.0.5", "169.254.7.7"]
    assert await announced_addresses("::") == ["2001:db8::5"]
    assert len(await announced_addresses("")) == 4
    assert await announced_addresses("0.0.0.0", ["10.0.0.5"]) == ["10.0.0.5"]
    assert await announced_addresses("10.0.0.5") == ["10.0.0.5"]
    assert await announced_addresses("[2001:db8::5]") == ["2001:db8::5"]
    with pytest.raises(ValueError, match="link-local"):
        await announced_addresses("fe80::1")
    with pytest.raises(ValueError, match="no network address"):
        await announced_addresses("0.0.0.0", ["10.9.9.9"])
    monkeypatch.setattr(ifaddr, "get_adapters", lambda: fake_adapters()[:1])
    with pytest.raises(ValueError, match="no network address"):
        await announced_addresses("0.0.0.0")


def test_names() -> None:
    assert default_name().startswith("AnonChat relay on ")
    assert len(default_name().encode()) <= MAX_NAME_BYTES
    assert with_port("AnonChat relay on box", 9000) == "AnonChat relay on box (port 9000)"
    long = with_port("é" * 40, 65535)
    assert len(long.encode()) <= MAX_NAME_BYTES
    assert long.endswith(" (port 65535)")
    assert check_name("  Office  ") == "Office"


def test_local_addresses_of_this_machine() -> None:
    found = local_addresses()
    parsed = [ipaddress.ip_address(a) for a in found]
    assert all(isinstance(a, str) for a in found)
    assert not [a for a in parsed if a.is_loopback or (a.version == 6 and a.is_link_local)]
    versions = [a.version for a in parsed]
    assert versions == sorted(versions)  # IPv4 first
    assert len(set(found)) == len(found)


# -- anonchat-cli relays -------------------------------------------------------------------


@pytest.mark.parametrize("json_first", [True, False])
def test_cli_relays_json(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], json_first: bool
) -> None:
    seen: list[float] = []

    async def found(seconds: float) -> list[FoundRelay]:
        seen.append(seconds)
        return [
            FoundRelay("Attic", "ws://10.0.0.2:8765/", ("10.0.0.2",)),
            FoundRelay("Office\u202e", "wss://[2001:db8::1]:443/", ("2001:db8::1", "10.0.0.1")),
        ]

    monkeypatch.setattr(cli, "browse", found)
    argv = ["--json", "relays"] if json_first else ["relays", "--seconds", "0.5", "--json"]
    assert cli.main(argv) == 0
    data = json.loads(capsys.readouterr().out)
    assert [sorted(d) for d in data] == [["addresses", "name", "url"]] * 2
    assert data[1] == {
        "name": "Office\u202e",
        "url": "wss://[2001:db8::1]:443/",
        "addresses": ["2001:db8::1", "10.0.0.1"],
    }
    assert seen == [3.0 if json_first else 0.5]


def test_cli_relays_text(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async def none(seconds: float) -> list[FoundRelay]:
        return []

    monkeypatch.setattr(cli, "browse", none)
    assert cli.main(["relays"]) == 0
    assert capsys.readouterr().out == "No relays found on this network.\n"

    async def two(seconds: float) -> list[FoundRelay]:
        return [
            FoundRelay("Attic", "ws://10.0.0.2:8765/", ("10.0.0.2",)),
            FoundRelay("Evil\x1b[2J", "ws://10.0.0.3:8765/", ("10.0.0.3", "2001:db8::3")),
        ]

    monkeypatch.setattr(cli, "browse", two)
    assert cli.main(["--profile", "/nonexistent/profile", "relays"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "Attic  ws://10.0.0.2:8765/  (10.0.0.2)",
        "Evil\\u001b[2J  ws://10.0.0.3:8765/  (10.0.0.3, 2001:db8::3)",
    ]


@pytest.mark.parametrize("seconds", ["0", "-1", "61", "nan", "x"])
def test_cli_relays_seconds_are_bounded(seconds: str) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["relays", "--seconds", seconds])
    assert exit_.value.code == 2
