"""Two computers on one network: two Linux network namespaces joined by a veth pair
(10.77.0.1/24 and 10.77.0.2/24), each process run in one with `ip netns exec`.

A relay announced in the first is found by `anonchat-cli relays` in the second, leaves the
list when it stops, and carries a conversation between a profile in each. The namespaces
are made by the test (root and `ip` needed, otherwise skipped), named uniquely per run and
deleted afterwards whatever happened; all multicast stays on the veth pair between them.
"""

from __future__ import annotations

import json
import os
import queue
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import ROOT, Profile, child_env, free_port

pytestmark = pytest.mark.timeout(120)

RELAY_ADDRESS, PEER_ADDRESS = "10.77.0.1", "10.77.0.2"


def why_not() -> str | None:
    if not sys.platform.startswith("linux"):
        return "network namespaces are Linux only"
    if os.geteuid() != 0:
        return "making network namespaces needs root"
    if shutil.which("ip") is None:
        return "the `ip` command (Debian package iproute2) is not installed"
    return None


def ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=20, check=False)


@dataclass(frozen=True)
class Lan:
    """Two namespaces, `one` (the relay's computer, 10.77.0.1) and `two` (10.77.0.2)."""

    one: str
    two: str
    log_dir: Path

    @staticmethod
    def inside(ns: str, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", ns, *argv]

    def relays(self, ns: str, seconds: float = 3.0) -> list[dict[str, Any]]:
        """`anonchat-cli relays --json` run in `ns`: exit 0, a JSON list."""
        cli = [sys.executable, "-m", "app.cli", "relays", "--seconds", str(seconds), "--json"]
        done = subprocess.run(
            self.inside(ns, *cli),
            cwd=ROOT,
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert done.returncode == 0, done
        assert "Traceback" not in done.stderr, done.stderr
        found: list[dict[str, Any]] = json.loads(done.stdout)
        return found


@pytest.fixture(scope="module")
def lan(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lan]:
    reason = why_not()
    if reason:
        pytest.skip(reason)
    tag = secrets.token_hex(4)
    one, two = f"anonchat-{tag}-1", f"anonchat-{tag}-2"
    veth_one, veth_two = f"ac{tag}a", f"ac{tag}b"  # interface names: 15 characters at most
    made: list[str] = []
    try:
        for ns in (one, two):
            done = ip("netns", "add", ns)
            if done.returncode != 0:
                pytest.skip(f"cannot make a network namespace here: {done.stderr.strip()}")
            made.append(ns)
        steps = [
            ("link", "add", veth_one, "type", "veth", "peer", "name", veth_two),
            ("link", "set", veth_one, "netns", one),
            ("link", "set", veth_two, "netns", two),
        ]
        for ns, veth, address in ((one, veth_one, RELAY_ADDRESS), (two, veth_two, PEER_ADDRESS)):
            steps += [
                ("-n", ns, "link", "set", "lo", "up"),
                ("-n", ns, "addr", "add", f"{address}/24", "dev", veth),
                ("-n", ns, "link", "set", veth, "multicast", "on", "up"),
                ("-n", ns, "route", "add", "224.0.0.0/4", "dev", veth),
            ]
        for step in steps:
            done = ip(*step)
            assert done.returncode == 0, (step, done.stderr)
        yield Lan(one, two, tmp_path_factory.mktemp("netns"))
    finally:
        for ns in made:
            ip("netns", "del", ns)  # takes its end of the veth pair, and so the pair, along
        if veth_one in ip("link", "show").stdout:
            ip("link", "del", veth_one)


class NsRelay:
    """`python -m relay --host 0.0.0.0 --announce` in a namespace, up once it has announced."""

    def __init__(self, lan: Lan, name: str) -> None:
        self.port = free_port()
        self.name = name
        self.url = f"ws://{RELAY_ADDRESS}:{self.port}/"
        self.log = lan.log_dir / f"relay-{self.port}.log"
        argv = [sys.executable, "-m", "relay", "--host", "0.0.0.0", "--port", str(self.port)]
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                lan.inside(lan.one, *argv, "--announce", "--announce-name", name),
                cwd=ROOT,
                env=child_env(),
                stdout=out,
                stderr=out,
            )
        deadline = time.monotonic() + 20
        while b"announced as" not in self.log.read_bytes():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise AssertionError("relay did not announce: " + self.text())
            time.sleep(0.05)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> int:
        """SIGTERM and wait (bounded); a clean stop is exit 0."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError("relay did not stop on SIGTERM: " + self.text()) from None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def relay(lan: Lan) -> Iterator[NsRelay]:
    r = NsRelay(lan, "Relay in the first namespace")
    try:
        yield r
    finally:
        r.kill()


# A RelayBrowser kept open: one JSON line per change of its list.
WATCH = """
import asyncio, json, signal
from app.net.discovery import RelayBrowser

async def main():
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    browser = RelayBrowser(lambda found: print(json.dumps([r.url for r in found]), flush=True))
    await browser.start()
    print(json.dumps("started"), flush=True)
    await stop.wait()
    await browser.close()

asyncio.run(main())
"""


class Watcher:
    def __init__(self, lan: Lan, ns: str) -> None:
        self.lists: queue.Queue[Any] = queue.Queue()
        self.proc = subprocess.Popen(
            lan.inside(ns, sys.executable, "-c", WATCH),
            cwd=ROOT,
            env=child_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.reader = threading.Thread(target=self.read, daemon=True)
        self.reader.start()
        assert self.next(20) == "started"

    def read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lists.put(json.loads(line))

    def next(self, timeout: float) -> Any:
        try:
            return self.lists.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"the watcher said nothing in {timeout}s") from None

    def until(self, match: Callable[[list[str]], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not match(self.next(max(0.1, deadline - time.monotonic()))):
            pass

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            _, err = self.proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate(timeout=10)
        return err.decode(errors="replace")


def test_a_relay_announced_in_one_namespace_is_found_in_the_other(lan: Lan, relay: NsRelay) -> None:
    assert f"on {RELAY_ADDRESS}" in relay.text()
    found = lan.relays(lan.two)
    assert {"name": relay.name, "url": relay.url, "addresses": [RELAY_ADDRESS]} in found
    assert all(sorted(entry) == ["addresses", "name", "url"] for entry in found)


def test_a_stopped_relay_leaves_the_list(lan: Lan, relay: NsRelay) -> None:
    leaving = NsRelay(lan, "Relay that stops")
    try:
        watcher = Watcher(lan, lan.two)
        try:
            watcher.until(lambda urls: leaving.url in urls, 15)
            assert leaving.stop() == 0
            # Its goodbye reaches the open browser at once; expiry would take two minutes.
            watcher.until(lambda urls: leaving.url not in urls and relay.url in urls, 10)
        finally:
            err = watcher.stop()
        assert "Traceback" not in err, err
        assert watcher.proc.returncode == 0, err
    finally:
        leaving.kill()
    assert "relay stopped" in leaving.text()
    urls = [entry["url"] for entry in lan.relays(lan.two)]
    assert leaving.url not in urls
    assert relay.url in urls


class NsProfile(Profile):
    """A profile whose every anonchat-cli run (listen too) happens inside a namespace."""

    def __init__(self, ns: str, directory: Path, name: str) -> None:
        super().__init__(directory, name)
        self.ns = ns

    def argv(self, *args: str, json_out: bool = True) -> list[str]:
        return Lan.inside(self.ns, *super().argv(*args, json_out=json_out))


def test_a_conversation_across_the_two_namespaces(lan: Lan, relay: NsRelay, tmp_path: Path) -> None:
    (found,) = [e["url"] for e in lan.relays(lan.two, 2.0) if e["name"] == relay.name]
    alice = NsProfile(lan.one, tmp_path / "alice", "Alice")
    bob = NsProfile(lan.two, tmp_path / "bob", "Bob")
    try:
        alice.init(relay.url)
        bob.init(found)  # what discovery gave the second computer
        card = bob.card()
        bob_l = bob.listen()
        bob_l.wait_listening()
        alice.run("add", card, "--wait", "20")
        bob_l.wait_for(lambda ev: any(e["event"] == "request" for e in ev))
        sent = alice.run("send", "Bob", "hello from the first computer", "--wait", "20").data
        assert sent["status"] == "delivered"
        bob_l.wait_for(lambda ev: any(e.get("body") == "hello from the first computer" for e in ev))
        assert bob_l.stop() == 0
        bob_l.assert_clean()
        assert bob.run("accept", "Alice").data["state"] == "contact"

        alice_l = alice.listen()
        alice_l.wait_listening()
        sent = bob.run("send", "Alice", "hello from the second computer", "--wait", "20").data
        assert sent["status"] == "delivered"
        alice_l.wait_for(
            lambda ev: any(e.get("body") == "hello from the second computer" for e in ev)
        )
        assert alice_l.stop() == 0
        alice_l.assert_clean()
        assert [(m["direction"], m["body"]) for m in bob.messages("Alice")] == [
            ("in", "hello from the first computer"),
            ("out", "hello from the second computer"),
        ]
    finally:
        for listener in (*alice.listeners, *bob.listeners):
            listener.kill()
