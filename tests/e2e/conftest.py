"""Real processes on 127.0.0.1 for the anonchat-cli tests: relays, profiles, `listen` readers.

Every CLI call is `python -m app.cli` in the repository root with the passphrase in
ANONCHAT_PASSPHRASE; a `Listener` keeps one `listen` process and reads its JSON lines on a
thread so a test can wait, bounded, for the event it expects.

`Profile.init` runs `anonchat-cli init` (the real Argon2id cost, checked to be the default),
then re-keys the profile with the cheap test parameters: every later command still derives
its key from the passphrase, in a fraction of the 0.6 s the default costs each process.
A profile made with `run("init", ...)` keeps the default cost.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from app.core.profile import profile_paths
from app.crypto.passphrase import DEFAULT_PARAMS, INSECURE_FAST_PARAMS
from app.net.rpc import ApiClient, socket_path
from app.store import vault

ROOT = Path(__file__).resolve().parents[2]
PASS = "correct horse battery staple"
Json = dict[str, Any]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def child_env(passphrase: str = PASS) -> dict[str, str]:
    return dict(
        os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", ANONCHAT_PASSPHRASE=passphrase
    )


class Relay:
    """`python -m relay` on a fixed port, so a test can kill it and start it again in place."""

    def __init__(self, log_dir: Path, port: int | None = None, *args: str) -> None:
        self.port = port or free_port()
        self.url = f"ws://127.0.0.1:{self.port}"
        self.args = args
        self.log_dir = log_dir
        self.starts = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        self.starts += 1
        log = self.log_dir / f"relay-{self.port}-{self.starts}.log"
        cmd = [sys.executable, "-m", "relay", "--host", "127.0.0.1", "--port", str(self.port)]
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [*cmd, *self.args], cwd=ROOT, env=child_env(), stdout=out, stderr=out
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if re.search(rb"listening on ws://", log.read_bytes()):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.kill()
        raise RuntimeError("relay did not start: " + log.read_text(errors="replace"))

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass(frozen=True)
class Result:
    rc: int
    out: str
    err: str

    @property
    def data(self) -> Any:
        return json.loads(self.out)


class Listener:
    """One `anonchat-cli listen` process and the events it printed so far."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.events: list[Json] = []
        self.noise: list[str] = []
        self._cond = threading.Condition()
        self.proc = subprocess.Popen(
            profile.argv("listen"),
            cwd=ROOT,
            env=child_env(profile.passphrase),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self._threads = [
            threading.Thread(target=self._read, daemon=True),
            threading.Thread(target=self._read_err, daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").strip()
            if not line:
                continue
            try:
                event = json.loads(line)
            except ValueError:
                event = {"event": "unparsed", "line": line}
            with self._cond:
                self.events.append(event)
                self._cond.notify_all()

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            with self._cond:
                self.noise.append(raw.decode(errors="replace").rstrip())

    def wait_for(self, match: Callable[[list[Json]], bool], timeout: float = 30) -> None:
        """Until `match(events)` holds; fails with the tail of the events otherwise."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not match(self.events):
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._threads[0].is_alive()):
                    tail = self.events[-10:]
                    raise AssertionError(
                        f"{self.profile.name}: condition not met in {timeout}s; rc="
                        f"{self.proc.poll()} last events {tail} stderr {self.noise[-10:]}"
                    )
                self._cond.wait(min(left, 0.5))

    def wait_listening(self, timeout: float = 20) -> None:
        self.wait_for(lambda ev: any(e.get("event") == "listening" for e in ev), timeout)

    def of(self, kind: str) -> list[Json]:
        with self._cond:
            return [e for e in self.events if e.get("event") == kind]

    def incoming(self) -> list[Json]:
        return [e for e in self.of("message") if e["direction"] == "in"]

    def stop(self) -> int:
        """SIGTERM and wait: a clean exit is code 0."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        for t in self._threads:
            t.join(timeout=5)
        return self.proc.returncode

    def assert_clean(self) -> None:
        """Nothing went wrong inside: no traceback, no error logged."""
        with self._cond:
            noise = list(self.noise)
        assert not [line for line in noise if "Traceback" in line or "ERROR" in line], noise

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        for t in self._threads:
            t.join(timeout=5)


# Queue many messages in one process (the same engine as `send --wait 0`, one Argon2id open
# instead of one per message); `sync` or `listen` then sends them.
QUEUE_SCRIPT = """
import asyncio, sys
from app.core.engine import Engine
from app.core.profile import open_profile, profile_paths

async def main(profile, contact, prefix, first, count):
    engine = await Engine.open(await open_profile(profile_paths(profile), sys.argv[6]))
    try:
        cid = (await engine.find_contact(contact)).id
        for i in range(first, first + count):
            await engine.send(cid, f"{prefix}{i}")
    finally:
        await engine.close()

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])))
"""


def cheap_unlock(directory: Path, passphrase: str) -> None:
    """Re-key a profile made by `anonchat-cli init` (with the default Argon2id parameters)
    to the same passphrase under the cheap test parameters."""
    paths = profile_paths(str(directory))
    assert [slot.params for slot in vault.read_header(paths).slots] == [DEFAULT_PARAMS]
    opened = vault.unlock(paths, passphrase)
    try:
        vault.change_passphrase(
            paths, opened.conn, opened.key, passphrase, passphrase, INSECURE_FAST_PARAMS
        )
    finally:
        opened.conn.close()
    assert [slot.params for slot in vault.read_header(paths).slots] == [INSECURE_FAST_PARAMS]


class Profile:
    """A profile directory and the CLI run against it."""

    def __init__(self, directory: Path, name: str, passphrase: str = PASS) -> None:
        self.dir = directory
        self.name = name
        self.passphrase = passphrase
        self.listeners: list[Listener] = []

    def argv(self, *args: str, json_out: bool = True) -> list[str]:
        extra = ["--json"] if json_out else []
        return [sys.executable, "-m", "app.cli", "--profile", str(self.dir), *extra, *args]

    def run(
        self,
        *args: str,
        json_out: bool = True,
        passphrase: str | None = None,
        timeout: float = 90,
        expect: int | None = 0,
    ) -> Result:
        done = subprocess.run(
            self.argv(*args, json_out=json_out),
            cwd=ROOT,
            env=child_env(self.passphrase if passphrase is None else passphrase),
            capture_output=True,
            timeout=timeout,
        )
        result = Result(done.returncode, done.stdout.decode(), done.stderr.decode())
        if expect is not None:
            assert result.rc == expect, (args, result)
        return result

    def init(self, relay_url: str) -> None:
        self.run("init", "--name", self.name, "--relay", relay_url)
        cheap_unlock(self.dir, self.passphrase)

    def card(self) -> str:
        card: str = self.run("card").data["card"]
        return card

    def messages(self, contact: str, limit: int = 10_000) -> list[Json]:
        rows: list[Json] = self.run("messages", contact, "--limit", str(limit)).data
        return rows

    def contacts(self) -> list[Json]:
        rows: list[Json] = self.run("contacts").data
        return rows

    def queue(self, contact: str, prefix: str, first: int, count: int) -> None:
        """`count` messages "{prefix}{i}" queued for `contact`, not yet sent."""
        subprocess.run(
            [
                sys.executable,
                "-c",
                QUEUE_SCRIPT,
                str(self.dir),
                contact,
                prefix,
                str(first),
                str(count),
                self.passphrase,
            ],
            cwd=ROOT,
            env=child_env(self.passphrase),
            check=True,
            timeout=120,
        )

    def listen(self) -> Listener:
        listener = Listener(self)
        self.listeners.append(listener)
        return listener


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every file's bytes under a profile (lock file aside): equal snapshots, nothing changed."""
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name != "lock"
    }


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[Relay]:
    r = Relay(tmp_path)
    try:
        yield r
    finally:
        r.kill()


@pytest.fixture
def make_profile(tmp_path: Path) -> Iterator[Callable[..., Profile]]:
    made: list[Profile] = []

    def make(name: str, relay_url: str | None = None) -> Profile:
        profile = Profile(tmp_path / name.lower(), name)
        if relay_url is not None:
            profile.init(relay_url)
        made.append(profile)
        return profile

    yield make
    for profile in made:
        for listener in profile.listeners:
            listener.kill()


def pair(
    make: Callable[..., Profile], url_a: str, url_b: str | None = None
) -> tuple[Profile, Profile]:
    """Alice and Bob on their relays, Alice has added Bob's card (handshake done while Bob
    listens), Bob accepted her request: both know each other."""
    alice = make("Alice", url_a)
    bob = make("Bob", url_b or url_a)
    card = bob.card()
    bob_listen = bob.listen()
    bob_listen.wait_listening()
    alice.run("add", card, "--wait", "20")
    bob_listen.wait_for(lambda ev: any(e.get("event") == "request" for e in ev))
    assert bob_listen.stop() == 0
    bob.run("accept", "Alice")
    return alice, bob


def acquaint(alice: Profile, other: Profile) -> None:
    """As `pair` does for two profiles already made: Alice adds `other`'s card while `other`
    listens, `other` accepts her request."""
    card = other.card()
    listener = other.listen()
    try:
        listener.wait_listening()
        alice.run("add", card, "--wait", "20")
        listener.wait_for(lambda ev: any(e.get("event") == "request" for e in ev))
    finally:
        assert listener.stop() == 0
    other.run("accept", alice.name)


def trio(make: Callable[..., Profile], url: str) -> tuple[Profile, Profile, Profile]:
    """Alice, Bob and Carol on one relay: Alice knows Bob and Carol, who do not know each
    other."""
    alice, bob = pair(make, url)
    carol = make("Carol", url)
    acquaint(alice, carol)
    return alice, bob, carol


def api(profile: Profile, method: str, **params: Any) -> Any:
    """One call to the local API of the process holding `profile` open (its `listen`), made
    from the test itself: what `anonchat-cli --json` would print, without a process of its
    own (for polling)."""

    async def call() -> Any:
        client = await ApiClient.connect(socket_path(profile.dir))
        assert client is not None, f"nothing holds {profile.name}'s profile open"
        try:
            return await client.call(method, params)
        finally:
            await client.close()

    return asyncio.run(call())


def eventually(
    check: Callable[[], Any], timeout: float = 30, what: str = "", pause: float = 0.3
) -> Any:
    """Call `check` until it returns something true (which is returned), for `timeout`
    seconds at most; fails naming `what` and the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {timeout}s: {what} (last: {value!r})")
        time.sleep(pause)


def request_from(stranger: Profile, target: Profile, first_message: str | None = None) -> None:
    """`stranger` adds `target`'s card (and writes) while `target` listens: a request there."""
    card = target.card()
    listener = target.listen()
    try:
        listener.wait_listening()
        stranger.run("add", card, "--wait", "20")
        listener.wait_for(lambda ev: any(e["event"] == "request" for e in ev))
        if first_message is not None:
            sent = stranger.run("send", target.name, first_message, "--wait", "20").data
            assert sent["status"] == "delivered"
    finally:
        assert listener.stop() == 0


def delivered_rows(listener: Listener) -> set[int]:
    """Rows of our messages this listener saw reach "delivered" or "read"."""
    return {e["id"] for e in listener.of("status") if e["status"] in ("delivered", "read")}


def incoming_bodies(profile: Profile, contact: str) -> list[str]:
    return [r["body"] for r in profile.messages(contact) if r["direction"] == "in"]


def assert_exactly_once(bodies: list[str], expected: list[str]) -> None:
    dupes = sorted({b for b in bodies if bodies.count(b) > 1})
    missing = sorted(set(expected) - set(bodies))
    extra = sorted(set(bodies) - set(expected))
    assert (dupes, missing, extra) == ([], [], []), "duplicates, missing, unexpected"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The CLI soak runs only when asked for with `-m soak`, whatever the command line."""
    if "soak" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="soak run; select it with -m soak")
    for item in items:
        if item.path.name.startswith("test_cli") and item.get_closest_marker("soak"):
            item.add_marker(skip)
