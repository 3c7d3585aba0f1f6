"""`anonchat --demo`: two throwaway profiles side by side, already contacts, talking through
an embedded relay on a free loopback port. Everything lives in one temporary directory that
is removed on the way out, so nothing of the demo stays on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import tempfile
from pathlib import Path

from PySide6.QtCore import QObject
from PySide6.QtGui import QGuiApplication

from app.core.engine import Engine
from app.core.profile import create_profile, profile_paths
from app.crypto.passphrase import INSECURE_FAST_PARAMS
from app.ui.aio import spawn
from app.ui.embedded_relay import EmbeddedRelay, start_embedded_relay
from app.ui.window import MainWindow

log = logging.getLogger(__name__)
NAMES = ("Alice", "Bob")
GREETING = "Hi Bob! This is the AnonChat demo. Write back and watch the ticks."


class DemoSession(QObject):
    """Same lifecycle as the launcher: `run()` returns once everything is shut down."""

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.directory: Path | None = None
        self.relay: EmbeddedRelay | None = None
        self.engines: list[Engine] = []
        self.windows: list[MainWindow] = []
        self.ready = asyncio.Event()
        self._done: asyncio.Future[None] | None = None
        self._closing = False

    async def run(self) -> None:
        self._done = asyncio.get_running_loop().create_future()
        try:
            await self.start()
        except BaseException:
            await self.shutdown()
            raise
        await self._done

    async def start(self) -> None:
        # The passphrase protects nothing worth keeping: the profiles die with the demo.
        self.directory = Path(tempfile.mkdtemp(prefix="anonchat-demo-"))
        self.relay = await start_embedded_relay()
        url = str(self.relay.url)
        for name in NAMES:
            paths = profile_paths(str(self.directory / name.lower()))
            opened = await create_profile(paths, "demo-" + name, name, url, INSECURE_FAST_PARAMS)
            self.engines.append(await Engine.open(opened))
        for engine in self.engines:  # windows first: they hear the connection come up
            window = MainWindow(engine, url)
            window.setWindowTitle(f"AnonChat demo — {engine.name}")
            await window.load()
            window.closed.connect(self._window_closed)
            self.windows.append(window)
        alice, bob = self.engines
        await bob.add_contact(await alice.card())
        self._place()
        for window in self.windows:
            window.show()
        for engine in self.engines:
            await engine.start()
        self.ready.set()
        print("The demo is ready: Alice and Bob are contacts.", flush=True)
        spawn(self._greet(), "greeting in the demo")

    def _place(self) -> None:
        area = QGuiApplication.primaryScreen().availableGeometry()
        width = max(480, min(760, area.width() // 2 - 16))
        height = max(420, min(640, area.height() - 80))
        for i, window in enumerate(self.windows):
            window.resize(width, height)
            window.move(area.left() + 8 + i * (width + 16), area.top() + 40)

    async def _greet(self) -> None:
        """Alice accepts Bob's message request as it arrives and, once the handshake is
        through, says hello, so the first thing seen works."""
        alice = self.engines[0]
        for _ in range(200):
            for waiting in await alice.requests():
                await alice.accept_request(waiting.request.id)
            rows = await alice.summaries()
            if rows and rows[0].established:
                await alice.send(rows[0].contact.id, GREETING)
                for window in self.windows:
                    await window.reload_contacts()
                    if window.contacts.rowCount():
                        window.open_contact(window.contacts.summary(0).contact)
                return
            await asyncio.sleep(0.1)
            if self._closing:
                return

    def _window_closed(self) -> None:
        spawn(self.shutdown(), "ending the demo")

    async def shutdown(self) -> None:
        if self._closing:
            return
        self._closing = True
        for window in self.windows:
            if window.isVisible():
                window.close()
        for engine in self.engines:
            with contextlib.suppress(Exception):
                await engine.close()
        self.engines = []
        if self.relay is not None:
            with contextlib.suppress(Exception):
                await self.relay.close()
            self.relay = None
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            if self.directory.exists():
                log.warning("the demo directory could not be removed completely")
            self.directory = None
        if self._done is not None and not self._done.done():
            self._done.set_result(None)
