"""From launch to the main window: wizard or unlock, embedded relay, engine, window; and back
down again in order when the window closes, or to the first-start wizard after a panic wipe
(from the window's menu, or `wipe` on the local API)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import Callable
from typing import Any, Protocol

from PySide6.QtCore import QEvent, QObject
from PySide6.QtWidgets import QApplication, QWidget

from app.core.engine import Engine
from app.core.errors import StoreError, UserError
from app.core.profile import Opened, ProfilePaths, open_profile
from app.crypto.passphrase import KdfParams
from app.net.rpc import INVALID_PARAMS, ApiServer, Call, Handler, RpcError, socket_path
from app.ui.aio import spawn
from app.ui.embedded_relay import OWN_MODES, ProfileRelay
from app.ui.onboarding import UnlockPage, WizardPage
from app.ui.text import sentence
from app.ui.theme import apply_theme, current_theme
from app.ui.window import MainWindow

log = logging.getLogger(__name__)


class RunningProfile(Protocol):
    """What the composition root runs (a profile, or the demo's two): `run()` returns once
    everything is shut down."""

    async def run(self) -> None: ...

    async def shutdown(self) -> None: ...

    def deleteLater(self) -> None: ...


class Launcher(QObject):
    """Owns the profile's lifetime in the app: `run()` returns when everything is shut down."""

    def __init__(
        self,
        paths: ProfilePaths,
        relay_url: str | None = None,
        params: KdfParams | None = None,
        parent: QObject | None = None,
        api: Callable[[Engine], Handler] | None = None,
    ) -> None:
        """`api`: what the local API serves on the open engine (docs/api.md), besides
        `window.raise`; None serves nothing."""
        super().__init__(parent)
        self.paths = paths
        self._api = api
        self._server: ApiServer | None = None
        self.relay_url = relay_url
        self.params = params
        self.gate: QWidget | None = None
        self.window: MainWindow | None = None
        self.engine: Engine | None = None
        self.relay = ProfileRelay()  # the profile's own relay, in the modes that run one
        self._done: asyncio.Future[None] | None = None
        self.ready = asyncio.Event()  # set once the main window shows
        self._unlock_page: UnlockPage | None = None
        self.remembered = False  # opened with the key from the OS keyring
        self.wiping = False  # a panic wipe under way: the window's closing is no shutdown

    def _opened(self, opened: Opened | Engine) -> None:
        spawn(self._start(opened), "starting")

    async def open_remembered(self) -> bool:
        """Open with the key in the OS keyring, if one is remembered; False otherwise."""
        if not self.paths.header.exists():
            return False
        try:
            opened = await open_profile(self.paths, None)
        except UserError:
            return False  # nothing remembered (or no keyring): ask for the passphrase
        except StoreError as exc:
            log.warning("the remembered key did not open the profile: %s", type(exc).__name__)
            return False
        self.remembered = True
        await self._start(opened)
        return True

    def show_gate(self, notice: str = "") -> QWidget:
        """The wizard for a new profile, the unlock screen for an existing one (in the
        profile's theme)."""
        page: WizardPage | UnlockPage
        if self.paths.header.exists():
            page = UnlockPage(self.paths, notice)
            self._unlock_page = page
            app = QApplication.instance()
            if isinstance(app, QApplication) and page.look.theme is not current_theme():
                apply_theme(app, page.look.theme)
        else:
            page = WizardPage(self.paths, self.relay_url, self.params)
        page.opened.connect(self._opened)
        page.setWindowTitle("AnonChat")
        page.resize(560, 640)
        page.installEventFilter(self)
        page.show()
        self.gate = page
        return page

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """Closing the wizard or unlock screen before a profile opens quits the app (once a
        profile the wizard made and still holds is closed)."""
        if watched is self.gate and event.type() == QEvent.Type.Close and self.engine is None:
            gate, self.gate = self.gate, None
            if isinstance(gate, WizardPage) and gate.engine is not None:
                spawn(self._abandon(gate), "closing the new profile")
            else:
                self._finish()
        return False

    async def _abandon(self, wizard: WizardPage) -> None:
        try:
            await wizard.discard()
        finally:
            self._finish()

    def _finish(self) -> None:
        """Let `run` return."""
        if self._done is not None and not self._done.done():
            self._done.set_result(None)

    async def run(self) -> None:
        self._done = asyncio.get_running_loop().create_future()
        if self.gate is None and self.engine is None and not await self.open_remembered():
            self.show_gate()
        await self._done

    async def _start(self, opened: Opened | Engine) -> None:
        """Run the profile: the unlock page's `Opened`, or the wizard's engine (not yet
        started, so its proxy and isolation hold from the first connection)."""
        if isinstance(opened, Engine):
            engine = opened
        else:
            try:
                engine = await Engine.open(opened)
            except BaseException:
                await opened.store.close()
                opened.lock.release()
                raise
        self.engine = engine
        notice = await self._run_relay(engine)
        window = MainWindow(engine, self.relay.url, own_relay=self.relay, paths=self.paths)
        await window.load()
        window.closed.connect(self._window_closed)
        window.wipe_requested.connect(lambda: spawn(self.wipe(), "wiping the profile"))
        self.window = window
        window.show()
        if self.gate is not None:
            gate, self.gate = self.gate, None
            gate.close()
        if notice:
            window.say_relay_notice(notice)
        await engine.start()
        await self._serve(engine)
        # What startup made (modules, widgets, their wrappers) lives as long as the window:
        # left out of later full collections, their pauses stay short while messages pour in.
        gc.freeze()
        self.ready.set()
        window.remembered = self.remembered
        page, self._unlock_page = self._unlock_page, None
        if page is not None and page.remember.isChecked():
            reason = await engine.remember_key(True)
            if reason is not None:
                window.statusBar().showMessage(f"Not remembered: {reason}", 15000)
            else:
                window.remembered = True

    async def _serve(self, engine: Engine) -> None:
        """The local API for the CLI, bots and a second `anonchat` on this profile."""
        if self._api is None:
            return
        inner = self._api(engine)

        async def handle(method: str, params: dict[str, Any], call: Call) -> Any:
            if method == "window.raise":
                window = self.window
                if window is not None:
                    window.showNormal()
                    window.raise_()
                    window.activateWindow()
                return {"raised": window is not None}
            if method == "wipe":  # answered at once: the wipe closes this server
                if params.get("yes") is not True:
                    raise RpcError(
                        INVALID_PARAMS, "wipe destroys this profile for good: it needs yes"
                    )
                spawn(self.wipe(), "wiping the profile")
                return {"wiped": True}
            return await inner(method, params, call)

        server = ApiServer(socket_path(self.paths.directory), handle)
        try:
            await server.start()
        except OSError as exc:
            log.warning("the local API is not served: %s", type(exc).__name__)
            return
        self._server = server

    async def _run_relay(self, engine: Engine) -> str:
        """Start the profile's own relay in the modes that run one, before the engine
        connects (so it never reaches whatever else listens where the card says); what to
        tell the user about it."""
        if engine.relay_mode not in OWN_MODES:
            return ""
        try:
            return await self.relay.apply(
                engine, engine.relay_mode, engine.relay_url, engine.relays[1:]
            )
        except (OSError, UserError) as exc:
            log.warning("could not run this profile's relay: %s", type(exc).__name__)
            return f"This profile's relay could not be started: {sentence(str(exc))}"

    def _window_closed(self) -> None:
        if not self.wiping:
            spawn(self.shutdown(), "shutting down")

    async def wipe(self) -> None:
        """Panic wipe of the open profile: the window goes at once, then the engine destroys
        the key header, stops and deletes every file and the keyring entry; the API server
        and the profile's relay stop; then the first-start wizard, as on a first start."""
        engine = self.engine
        if self.wiping or engine is None:
            return
        self.wiping = True
        window, self.window = self.window, None
        self.engine = None
        self.ready.clear()
        if window is not None:
            window.hide()
            window.close()  # detached, its dialogs closed; not a shutdown while wiping
            window.deleteLater()
        problem = ""
        try:
            await engine.wipe()
        except (StoreError, OSError) as exc:
            log.warning("the wipe left something behind: %s", type(exc).__name__)
            problem = sentence(str(exc)) if isinstance(exc, StoreError) else ""
        finally:
            if self._server is not None:
                server, self._server = self._server, None
                with contextlib.suppress(Exception):
                    await server.close()
            with contextlib.suppress(Exception):
                await self.relay.close()
            self.remembered = False
            self._unlock_page = None
            self.wiping = False
        page = self.show_gate()
        if problem and isinstance(page, WizardPage):
            page.tell(problem)

    async def shutdown(self) -> None:
        """Close the engine (and its store), then the embedded relay; then `run` returns."""
        if self.window is not None:
            self.window.detach()
        if self._server is not None:
            server, self._server = self._server, None
            with contextlib.suppress(Exception):
                await server.close()
        if self.engine is not None:
            engine, self.engine = self.engine, None
            with contextlib.suppress(Exception):
                await engine.close()
        with contextlib.suppress(Exception):
            await self.relay.close()
        self._finish()
