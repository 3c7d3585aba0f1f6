from __future__ import annotations

import asyncio
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from app.core.engine import Engine
from app.core.profile import open_profile, profile_paths
from app.core.routing import Isolation
from app.crypto.passphrase import INSECURE_FAST_PARAMS
from app.ui.connection import TOR_PROXY
from app.ui.launcher import Launcher
from app.ui.onboarding import UnlockPage, WizardPage, strength
from tests.ui.conftest import PASSPHRASE, Relay, new_profile, until


def test_strength_hint_grows_with_length() -> None:
    assert "too short" in strength("abc")[1]
    assert strength("correct horse battery staple")[1] == "strong"
    assert strength("aaaaaaaaaa")[0] < strength("q7#Lm2!xPz")[0]


def test_wizard_creates_profile_and_opens_window(run, tmp_path: Path) -> None:
    async def body() -> None:
        relay = Relay()
        url = await relay.start()
        paths = profile_paths(str(tmp_path / "alice"))
        launcher = Launcher(paths, url, INSECURE_FAST_PARAMS)
        page = launcher.show_gate()
        assert isinstance(page, WizardPage)
        assert page.custom.isChecked()
        assert page.relay.text() == url
        runner = asyncio.ensure_future(launcher.run())
        QTest.keyClicks(page.name, "Alice")
        QTest.keyClicks(page.passphrase, PASSPHRASE)
        QTest.keyClicks(page.repeat, "something else")
        QTest.mouseClick(page.create_button, Qt.MouseButton.LeftButton)
        assert page.error.isVisible()
        assert "differ" in page.error.text()
        assert not paths.header.exists()
        page.repeat.setText(PASSPHRASE)
        QTest.mouseClick(page.create_button, Qt.MouseButton.LeftButton)
        await asyncio.wait_for(launcher.ready.wait(), 20)
        assert paths.header.exists()
        window = launcher.window
        assert window is not None
        assert window.isVisible()
        assert window.engine.name == "Alice"
        assert window.engine.relay_url == url
        await until(lambda: window.connection.text().startswith("Online"), what="online")
        assert not page.isVisible()
        window.close()
        await asyncio.wait_for(runner, 10)
        assert launcher.engine is None
        await relay.close()

    run(body())


def test_unlock_wrong_then_right_passphrase(run, tmp_path: Path) -> None:
    async def body() -> None:
        relay = Relay()
        url = await relay.start()
        await new_profile(tmp_path / "bob", "Bob", url)
        launcher = Launcher(profile_paths(str(tmp_path / "bob")))
        page = launcher.show_gate()
        assert isinstance(page, UnlockPage)
        QTest.keyClicks(page.passphrase, "not my passphrase")
        QTest.keyClick(page.passphrase, Qt.Key.Key_Return)
        await until(lambda: page.error.isVisible(), what="the error")
        assert "Wrong passphrase" in page.error.text()
        assert page.unlock.isEnabled()
        assert launcher.window is None
        page.passphrase.setText(PASSPHRASE)
        QTest.mouseClick(page.unlock, Qt.MouseButton.LeftButton)
        await asyncio.wait_for(launcher.ready.wait(), 20)
        assert launcher.window is not None
        assert launcher.window.engine.name == "Bob"
        await launcher.shutdown()
        launcher.window.close()
        await relay.close()

    run(body())


def test_remember_on_this_computer_skips_unlock_next_time(
    run, tmp_path: Path, memory_keyring
) -> None:
    async def body() -> None:
        relay = Relay()
        url = await relay.start()
        await new_profile(tmp_path / "bob", "Bob", url)
        paths = profile_paths(str(tmp_path / "bob"))
        first = Launcher(paths)
        runner = asyncio.ensure_future(first.run())
        await until(lambda: isinstance(first.gate, UnlockPage), what="unlock page")
        page = first.gate
        assert isinstance(page, UnlockPage)
        await asyncio.sleep(0.2)
        assert page.remember.isEnabled()
        assert not page.keyring_note.isVisible()
        page.remember.setChecked(True)
        page.passphrase.setText(PASSPHRASE)
        QTest.keyClick(page.passphrase, Qt.Key.Key_Return)
        await asyncio.wait_for(first.ready.wait(), 20)
        await until(lambda: len(memory_keyring.entries) == 1, what="the key in the keyring")
        assert PASSPHRASE not in str(memory_keyring.entries)
        await first.shutdown()
        await runner
        assert first.window is not None
        first.window.close()

        second = Launcher(paths)
        runner = asyncio.ensure_future(second.run())
        await asyncio.wait_for(second.ready.wait(), 20)
        assert second.gate is None  # no unlock page was shown
        assert second.remembered
        assert second.window is not None
        assert second.window.engine.name == "Bob"
        await second.shutdown()
        await runner
        second.window.close()
        await relay.close()

    run(body())


def test_unlock_without_a_keyring_says_so(run, tmp_path: Path, no_keyring) -> None:
    async def body() -> None:
        await new_profile(tmp_path / "bob", "Bob", "ws://127.0.0.1:9")
        launcher = Launcher(profile_paths(str(tmp_path / "bob")))
        page = launcher.show_gate()
        assert isinstance(page, UnlockPage)
        page.show()
        await until(lambda: page.keyring_note.isVisible(), what="the keyring note")
        assert not page.remember.isEnabled()
        assert "no system keyring" in page.keyring_note.text().lower()
        page.close()

    run(body())


def test_wizard_proxy_refused_then_accepted_ends_up_in_the_profile(run, tmp_path: Path) -> None:
    async def body() -> None:
        paths = profile_paths(str(tmp_path / "alice"))
        # No relay answers here, and nothing reaches the proxy either (a closed port):
        # the profile is only made, opened and started.
        launcher = Launcher(paths, "ws://127.0.0.1:9", INSECURE_FAST_PARAMS)
        page = launcher.show_gate()
        assert isinstance(page, WizardPage)
        runner = asyncio.ensure_future(launcher.run())
        assert not page.proxy.use.isChecked()
        assert not page.proxy.url.isEnabled()
        assert page.proxy.url.text() == TOR_PROXY
        QTest.keyClicks(page.name, "Alice")
        QTest.keyClicks(page.passphrase, PASSPHRASE)
        QTest.keyClicks(page.repeat, PASSPHRASE)
        page.proxy.use.click()
        assert page.proxy.url.isEnabled()
        page.proxy.url.setText("tor, please")
        QTest.mouseClick(page.create_button, Qt.MouseButton.LeftButton)

        # The engine refuses it once the profile is made: said under the field, and the
        # profile waits, unstarted, for a proxy it takes.
        await until(lambda: page.proxy.error.isVisible(), what="the proxy refused")
        assert "socks5h://host:port" in page.proxy.error.text()
        assert paths.header.exists()
        assert launcher.window is None
        assert page.isVisible()
        assert not page.name.isEnabled()
        assert page.create_button.text() == "Continue"
        assert page.engine is not None
        assert page.engine.proxy() == ""

        page.proxy.url.setText("socks5://127.0.0.1:9")
        QTest.keyClick(page.proxy.url, Qt.Key.Key_Return)
        await asyncio.wait_for(launcher.ready.wait(), 20)
        window = launcher.window
        assert window is not None
        assert window.engine.name == "Alice"
        assert window.engine.proxy() == "socks5h://127.0.0.1:9"
        assert page.engine is None
        window.close()
        await asyncio.wait_for(runner, 10)

        opened = await open_profile(paths, PASSPHRASE)
        reopened = await Engine.open(opened)
        assert reopened.proxy() == "socks5h://127.0.0.1:9"
        assert reopened.isolation() is Isolation.PER_CONTACT  # the default with a proxy
        await reopened.close()

    run(body())


def test_closing_the_wizard_on_a_refused_proxy_closes_the_new_profile(run, tmp_path: Path) -> None:
    async def body() -> None:
        paths = profile_paths(str(tmp_path / "alice"))
        launcher = Launcher(paths, "ws://127.0.0.1:9", INSECURE_FAST_PARAMS)
        page = launcher.show_gate()
        assert isinstance(page, WizardPage)
        runner = asyncio.ensure_future(launcher.run())
        page.name.setText("Alice")
        page.passphrase.setText(PASSPHRASE)
        page.repeat.setText(PASSPHRASE)
        page.proxy.use.setChecked(True)
        page.proxy.url.setText("socks5h://127.0.0.1")  # no port
        QTest.mouseClick(page.create_button, Qt.MouseButton.LeftButton)
        await until(lambda: page.proxy.error.isVisible(), what="the proxy refused")
        page.close()
        await asyncio.wait_for(runner, 10)
        assert page.engine is None
        assert launcher.window is None
        # Closed and unlocked: the profile opens again, connecting directly.
        reopened = await Engine.open(await open_profile(paths, PASSPHRASE))
        assert reopened.proxy() == ""
        await reopened.close()

    run(body())
