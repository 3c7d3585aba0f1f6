"""Real widgets on a qasync loop, real SQCipher profiles in tmp dirs, a real relay on a free port.

Each test body is a coroutine run by `run`, so the asyncio loop and the Qt event loop are the
same loop, as in the app.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest
import qasync
from PySide6.QtWidgets import QApplication

from app.core.engine import Engine
from app.core.profile import create_profile, profile_paths
from app.crypto.passphrase import INSECURE_FAST_PARAMS
from app.domain.contacts import Contact
from app.ui.launcher import Launcher
from app.ui.window import MainWindow
from relay.server import RelayConfig, serve_relay

PASSPHRASE = "correct horse battery staple"
# Each test's closed qasync loop is kept for the whole session: its timer and socket notifiers
# are Qt objects without a parent, and a loop collected later (during some other test's event
# processing) deleted them under Qt's feet, now and then a segfault in pytest-qt's teardown.
# The app has one loop for its whole life; the tests make one per test.
_CLOSED_LOOPS: list[qasync.QEventLoop] = []


@pytest.fixture
def run(qapp: QApplication) -> Iterator[Callable[[Coroutine[Any, Any, Any]], Any]]:
    qapp.setQuitOnLastWindowClosed(False)  # as the app does: shutdown closes the loop
    loop = qasync.QEventLoop(qapp)
    asyncio.set_event_loop(loop)

    def runner(coro: Coroutine[Any, Any, Any], timeout: float = 60) -> Any:
        return loop.run_until_complete(asyncio.wait_for(coro, timeout))

    yield runner
    for widget in qapp.topLevelWidgets():  # each test starts with no windows about
        if widget.isVisible():
            widget.close()
    loop.run_until_complete(asyncio.sleep(0.05))
    loop.close()
    asyncio.set_event_loop(None)
    _CLOSED_LOOPS.append(loop)


async def until(cond: Callable[[], object], seconds: float = 15.0, what: str = "") -> None:
    """Let the loop run until cond() holds."""
    deadline = time.monotonic() + seconds
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or cond}")
        await asyncio.sleep(0.02)


async def eventually(
    check: Callable[[], Awaitable[object]], seconds: float = 15.0, what: str = ""
) -> None:
    """Let the loop run until the coroutine `check()` returns something true."""
    deadline = time.monotonic() + seconds
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        await asyncio.sleep(0.05)


class Relay:
    def __init__(self, send_rate: float | None = None) -> None:
        self.handle: Any = None
        self.send_rate = send_rate  # frames a second per connection; None: the default

    async def start(self) -> str:
        from relay.state import RelayLimits

        limits = RelayLimits()
        if self.send_rate is not None:
            limits = RelayLimits(send_rate=self.send_rate, send_burst=int(self.send_rate))
        self.handle = await serve_relay(RelayConfig(host="127.0.0.1", port=0, limits=limits))
        return str(self.handle.url)

    async def close(self) -> None:
        if self.handle is not None:
            await self.handle.close()


async def new_profile(directory: Path, name: str, relay_url: str) -> None:
    """A profile on disk, closed again, as after a first run."""
    paths = profile_paths(str(directory))
    opened = await create_profile(paths, PASSPHRASE, name, relay_url, INSECURE_FAST_PARAMS)
    engine = await Engine.open(opened)
    await engine.close()


async def launch(
    directory: Path, name: str, relay_url: str, api: Callable[[Engine], Any] | None = None
) -> Launcher:
    """A profile created, then unlocked through the unlock screen, with its window shown
    (serving the local API with `api`, as the app does)."""
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    from app.ui.onboarding import UnlockPage

    await new_profile(directory, name, relay_url)
    launcher = Launcher(profile_paths(str(directory)), relay_url, api=api)
    page = launcher.show_gate()
    assert isinstance(page, UnlockPage)
    QTest.keyClicks(page.passphrase, PASSPHRASE)
    QTest.keyClick(page.passphrase, Qt.Key.Key_Return)
    await asyncio.wait_for(launcher.ready.wait(), 20)
    return launcher


@contextlib.asynccontextmanager
async def me_and_a_peer(tmp_path: Path) -> AsyncIterator[tuple[MainWindow, str]]:
    """A relay, "Me" unlocked with the window shown, and the card of a "Peer" on the same
    relay (not yet added); the window is shut down and the relay closed afterwards."""
    relay = Relay()
    url = await relay.start()
    try:
        card = await peer_card(tmp_path / "peer", url)
        launcher = await launch(tmp_path / "me", "Me", url)
        try:
            assert launcher.window is not None
            yield launcher.window, card
        finally:
            await launcher.shutdown()
    finally:
        await relay.close()


@contextlib.asynccontextmanager
async def me_and_peers(tmp_path: Path) -> AsyncIterator[tuple[MainWindow, str, list[Engine]]]:
    """A relay and "Me" unlocked with the window shown, the relay's URL, and a list the test
    puts its `headless` peers in: they are closed, the window shut down and the relay closed
    afterwards."""
    relay = Relay()
    url = await relay.start()
    peers: list[Engine] = []
    try:
        launcher = await launch(tmp_path / "me", "Me", url)
        try:
            assert launcher.window is not None
            yield launcher.window, url, peers
        finally:
            for peer in peers:
                await peer.close()
            await launcher.shutdown()
    finally:
        await relay.close()


@contextlib.asynccontextmanager
async def alice_and_bob(tmp_path: Path) -> AsyncIterator[tuple[MainWindow, MainWindow, str]]:
    """A relay and two unlocked windows on it, Alice's and Bob's, not yet contacts (plus the
    relay's URL); both shut down and the relay closed afterwards."""
    relay = Relay()
    url = await relay.start()
    launchers: list[Launcher] = []
    try:
        for name in ("Alice", "Bob"):
            launchers.append(await launch(tmp_path / name.lower(), name, url))
        alice, bob = (launcher.window for launcher in launchers)
        assert alice is not None
        assert bob is not None
        yield alice, bob, url
    finally:
        for launcher in launchers:
            await launcher.shutdown()
        await relay.close()


class MemoryKeyring:
    """A keyring backend that lives in this process: the real keyring API, no desktop."""

    def __init__(self) -> None:
        import keyring.backend

        store: dict[tuple[str, str], str] = {}

        class Backend(keyring.backend.KeyringBackend):
            priority = 1  # type: ignore[assignment]

            def get_password(self, service: str, username: str) -> str | None:
                return store.get((service, username))

            def set_password(self, service: str, username: str, password: str) -> None:
                store[(service, username)] = password

            def delete_password(self, service: str, username: str) -> None:
                import keyring.errors

                if (service, username) not in store:
                    raise keyring.errors.PasswordDeleteError("not found")
                del store[(service, username)]

        self.backend = Backend()
        self.entries = store


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    import keyring

    previous = keyring.get_keyring()
    ring = MemoryKeyring()
    keyring.set_keyring(ring.backend)
    yield ring
    keyring.set_keyring(previous)


@pytest.fixture
def no_keyring() -> Iterator[None]:
    import keyring
    from keyring.backends import fail

    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    yield
    keyring.set_keyring(previous)


async def fill_history(engine: Engine, contact_id: int, count: int, word: str = "message") -> None:
    """`count` read messages straight through the store's repos, in big transactions."""
    from app.store.records import Direction, NewMessage, Status

    base = 1_700_000_000_000
    chunk = 20_000
    for start in range(0, count, chunk):
        rows = [
            NewMessage(
                contact_id,
                Direction.INCOMING if i % 2 else Direction.OUTGOING,
                i.to_bytes(16, "big"),
                i,
                f"{word} {i}",
                base + i * 1000,
                base + i * 1000,
                Status.READ if i % 2 == 0 else Status.DELIVERED,
                True,
            )
            for i in range(start, min(count, start + chunk))
        ]

        await engine.store.run(lambda r, rows=rows: r.messages.insert_many(rows))


async def peer_card(directory: Path, relay_url: str) -> str:
    """The card of a profile that never comes online."""
    paths = profile_paths(str(directory))
    engine = await Engine.open(
        await create_profile(paths, PASSPHRASE, "Peer", relay_url, INSECURE_FAST_PARAMS)
    )
    card = await engine.card()
    await engine.close()
    return card


async def headless(directory: Path, name: str, relay_url: str) -> Engine:
    """A started engine with no window, a peer the test drives; close it afterwards."""
    paths = profile_paths(str(directory))
    opened = await create_profile(paths, PASSPHRASE, name, relay_url, INSECURE_FAST_PARAMS)
    engine = await Engine.open(opened)
    await engine.start()
    return engine


async def write_to(peer: Engine, card: str, *bodies: str) -> int:
    """`peer` scans `card` (a message request on the other side) and, once the handshake is
    through, sends `bodies`; the id of its contact."""
    contact = await peer.add_contact(card)

    async def established() -> bool:
        return any(s.established for s in await peer.summaries() if s.contact.id == contact.id)

    await eventually(established, what=f"{peer.name}'s handshake")
    for body in bodies:
        await peer.send(contact.id, body)
    return contact.id


def request_row(window: MainWindow, name: str) -> int | None:
    model = window.requests.model
    return next(
        (i for i in range(model.rowCount()) if model.summary(i).request.display_name == name),
        None,
    )


async def open_request(window: MainWindow, name: str) -> Contact:
    """Wait for `name`'s message request in the window and open it by selecting its row."""
    await until(lambda: request_row(window, name) is not None, what=f"{name}'s request")
    row = request_row(window, name)
    assert row is not None
    request = window.requests.model.summary(row).request
    window.requests.list.setCurrentIndex(window.requests.model.index(row))
    panel = window.panel
    await until(
        lambda: (
            panel.contact is not None
            and panel.contact.id == request.id
            and panel.model is not None
            and panel.request_bar.isVisibleTo(window)
        ),
        what=f"{name}'s request open",
    )
    return request


async def accept_in_window(window: MainWindow, name: str) -> Contact:
    """Open `name`'s request and press Accept: the contact it becomes, opened."""
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    request = await open_request(window, name)
    QTest.mouseClick(window.panel.request_bar.accept, Qt.MouseButton.LeftButton)
    await until(lambda: window.contacts.row_of(request.id) is not None, what=f"{name} in the list")
    panel = window.panel
    await until(  # the open conversation follows: a contact now, written to
        lambda: (
            panel.contact is not None
            and panel.contact.id == request.id
            and panel.view.writable
            and panel.composer.isEnabled()
        ),
        what=f"{name}'s conversation to become writable",
    )
    row = window.contacts.row_of(request.id)
    assert row is not None
    return window.contacts.summary(row).contact


async def befriend(asker: Engine, asked: Engine) -> tuple[int, int]:
    """`asker` scans `asked`'s card and `asked` accepts the request; once the handshake is
    through on both sides: (asker's contact id, asked's)."""
    mine = await asker.add_contact(await asked.card())
    key = asker.identity.public.to_bytes()

    async def requested() -> bool:
        return any(r.request.identity_keys == key for r in await asked.requests())

    await eventually(requested, what=f"{asker.name}'s request")
    request = next(r.request for r in await asked.requests() if r.request.identity_keys == key)
    theirs = await asked.accept_request(request.id)

    async def established() -> bool:
        ours = await asker.summary(mine.id)
        other = await asked.summary(theirs.id)
        return bool(ours and ours.established and other and other.established)

    await eventually(established, what="the handshake")
    return mine.id, theirs.id


@contextlib.asynccontextmanager
async def alice_bob_and_carol(
    tmp_path: Path,
) -> AsyncIterator[tuple[MainWindow, MainWindow, Engine, str]]:
    """Alice's and Bob's windows and Carol's headless engine on one relay; Bob and Carol are
    each Alice's contact (not each other's). Everything is closed afterwards."""
    async with alice_and_bob(tmp_path) as (alice, bob, url):
        carol = await headless(tmp_path / "carol", "Carol", url)
        try:
            await befriend(bob.engine, alice.engine)
            await befriend(carol, alice.engine)
            yield alice, bob, carol, url
        finally:
            await carol.close()
