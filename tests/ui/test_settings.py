from __future__ import annotations

from pathlib import Path

from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QApplication

from app.core.engine import Engine
from app.core.profile import open_profile, profile_paths
from app.core.routing import Isolation
from app.ui.connection import TOR_PROXY, chosen_isolation
from app.ui.prefs import load_prefs
from app.ui.theme import Theme, apply_theme
from tests.ui.conftest import PASSPHRASE, Relay, launch, until

NEW_PASSPHRASE = "a different passphrase entirely"


def test_settings_change_profile_privacy_theme_and_passphrase(run, tmp_path: Path) -> None:
    async def body() -> None:
        relay = Relay()
        url = await relay.start()
        other = Relay()
        other_url = await other.start()
        launcher = await launch(tmp_path / "me", "Me", url)
        window = launcher.window
        assert window is not None
        engine = window.engine
        dialog = window.show_settings()
        assert dialog.name.text() == "Me"
        assert dialog.choice.custom.isChecked()
        assert dialog.choice.relay.text() == url

        dialog.name.setText("Me Again")
        dialog.choice.relay.setText(other_url)
        dialog.receipts.setChecked(False)
        dialog.notifications.setChecked(False)
        assert not dialog.previews.isEnabled()
        dialog.theme.setCurrentIndex(dialog.theme.findData("dark"))
        assert await dialog.save()
        assert engine.name == "Me Again"
        assert engine.relay_url == other_url
        assert not engine.read_receipts
        assert "Me Again" in window.windowTitle()
        prefs = await load_prefs(engine)
        assert prefs.theme is Theme.DARK
        assert not prefs.notifications
        assert window.prefs == prefs
        app = QApplication.instance()
        assert isinstance(app, QApplication)
        window_color = app.palette().color(QPalette.ColorRole.Window)
        assert window_color.lightness() < 80  # dark

        dialog.choice.relay.setText("http://not a relay")
        assert not await dialog.save()
        assert dialog.choice.error.isVisibleTo(dialog)
        assert "Not a relay URL" in dialog.choice.error.text()
        assert engine.relay_url == other_url

        # Passphrase, on its page: the wrong current one changes nothing, the right one does.
        dialog.tabs.setCurrentWidget(dialog.passphrase)
        dialog.old_pass.setText("wrong wrong wrong")
        dialog.new_pass.setText(NEW_PASSPHRASE)
        dialog.repeat_pass.setText(NEW_PASSPHRASE)
        assert not await dialog.change_passphrase()
        assert "wrong" in dialog.pass_error.text().lower()
        dialog.old_pass.setText(PASSPHRASE)
        assert await dialog.change_passphrase()
        assert dialog.pass_result.isVisible()
        assert dialog.old_pass.text() == ""
        dialog.close()
        await launcher.shutdown()
        assert launcher.window is not None
        launcher.window.close()
        opened = await open_profile(profile_paths(str(tmp_path / "me")), NEW_PASSPHRASE)
        await opened.store.close()
        opened.lock.release()
        apply_theme(app, Theme.LIGHT)
        await until(lambda: True)
        await relay.close()
        await other.close()

    run(body())


def test_settings_proxy_and_isolation_are_stored_for_the_next_open(run, tmp_path: Path) -> None:
    async def body() -> None:
        relay = Relay()
        url = await relay.start()
        launcher = await launch(tmp_path / "me", "Me", url)
        window = launcher.window
        assert window is not None
        engine = window.engine
        dialog = window.show_settings()
        assert not dialog.proxy.use.isChecked()
        assert not dialog.proxy.url.isEnabled()
        assert dialog.proxy.url.text() == TOR_PROXY
        assert chosen_isolation(dialog.isolation) is None  # "Default"
        assert engine.isolation() is Isolation.CARD_APART

        # A proxy the engine refuses: said under the field, and nothing of the form stored.
        dialog.proxy.use.setChecked(True)
        assert dialog.proxy.url.isEnabled()
        dialog.proxy.url.setText("http://127.0.0.1:9050")
        dialog.isolation.setCurrentIndex(dialog.isolation.findData("shared"))
        dialog.name.setText("Someone Else")
        assert not await dialog.save()
        assert dialog.proxy.error.isVisible()
        assert "socks5h://host:port" in dialog.proxy.error.text()
        assert engine.proxy() == ""
        assert engine.isolation() is Isolation.CARD_APART
        assert engine.name == "Me"
        dialog.proxy.url.setText("")
        assert not await dialog.save()
        assert "Enter the proxy's address" in dialog.proxy.error.text()
        assert engine.proxy() == ""

        # Accepted: stored as socks5h, and the dialog says it applies from the next open.
        dialog.proxy.url.setText("socks5://127.0.0.1:9050")
        assert await dialog.save()
        assert not dialog.proxy.error.isVisible()
        assert engine.proxy() == "socks5h://127.0.0.1:9050"
        assert dialog.proxy.url.text() == "socks5h://127.0.0.1:9050"
        assert engine.isolation() is Isolation.SHARED
        assert engine.name == "Someone Else"
        assert dialog.connection_result.isVisible()
        assert "next opened" in dialog.connection_result.text()
        dialog.close()

        # A new dialog shows what is stored; "Default" follows the proxy.
        again = window.show_settings()
        assert again.proxy.use.isChecked()
        assert again.proxy.url.text() == "socks5h://127.0.0.1:9050"
        assert chosen_isolation(again.isolation) is Isolation.SHARED
        again.isolation.setCurrentIndex(again.isolation.findData(""))
        assert await again.save()
        assert engine.isolation() is Isolation.PER_CONTACT  # the default with a proxy
        again.isolation.setCurrentIndex(again.isolation.findData("card-apart"))
        assert await again.save()
        assert engine.isolation() is Isolation.CARD_APART
        again.close()
        await launcher.shutdown()
        window.close()

        # In the profile on disk, as the next open reads it.
        opened = await open_profile(profile_paths(str(tmp_path / "me")), PASSPHRASE)
        reopened = await Engine.open(opened)
        assert reopened.proxy() == "socks5h://127.0.0.1:9050"
        assert reopened.isolation() is Isolation.CARD_APART
        await reopened.close()
        await relay.close()

    run(body())


def test_settings_clearing_the_proxy_keeps_the_isolation_shown_as_default(
    run, tmp_path: Path
) -> None:
    async def body() -> None:
        relay = Relay()
        url = await relay.start()
        launcher = await launch(tmp_path / "me", "Me", url)
        window = launcher.window
        assert window is not None
        engine = window.engine
        await engine.set_proxy(TOR_PROXY)
        await engine.set_isolation("per-contact")  # what the default gives with a proxy
        dialog = window.show_settings()
        assert dialog.proxy.use.isChecked()
        assert chosen_isolation(dialog.isolation) is None  # shown as the default
        dialog.proxy.use.setChecked(False)
        assert await dialog.save()
        assert engine.proxy() == ""
        # Saved as shown: "Default", which without a proxy keeps the code's connection apart.
        assert engine.isolation() is Isolation.CARD_APART
        dialog.close()
        await launcher.shutdown()
        window.close()
        await relay.close()

    run(body())


def test_save_applies_and_closes_cancel_closes_and_a_failure_keeps_it_open(
    run, tmp_path: Path
) -> None:
    import shiboken6
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest

    def gone(dialog) -> bool:
        return not shiboken6.isValid(dialog) or not dialog.isVisible()

    async def body() -> None:
        relay = Relay()
        url = await relay.start()
        launcher = await launch(tmp_path / "me", "Me", url)
        window = launcher.window
        assert window is not None
        engine = window.engine
        try:
            # Cancel: closed, nothing applied.
            dialog = window.show_settings()
            dialog.name.setText("Not Saved")
            QTest.mouseClick(dialog.cancel_button, Qt.MouseButton.LeftButton)
            await until(lambda: gone(dialog), what="the dialog closed")
            assert engine.name == "Me"

            # A relay that cannot be reached: the dialog stays open and says why.
            closed = Relay()
            dead = await closed.start()
            await closed.close()
            dialog = window.show_settings()
            dialog.name.setText("Me Too")
            dialog.choice.relay.setText(dead)
            QTest.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
            await until(lambda: not dialog.busy, seconds=60, what="the relay test")
            assert dialog.isVisible()
            assert dialog.choice.error.isVisibleTo(dialog)
            assert dialog.choice.error.text()
            assert dialog.tabs.currentWidget() is dialog.relay_page
            assert engine.relay_url == url
            assert engine.name == "Me"

            # Corrected and saved: applied, closed, and the window says so.
            dialog.choice.relay.setText(url)
            QTest.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
            await until(lambda: gone(dialog), what="the dialog closed by Save")
            assert engine.name == "Me Too"
            assert "Me Too" in window.windowTitle()
            assert window.statusBar().currentMessage() == "Settings saved."
        finally:
            await launcher.shutdown()
            window.close()
            await relay.close()

    run(body())


def test_settings_at_their_smallest_cut_no_line_of_text_on_any_page(run, tmp_path: Path) -> None:
    import asyncio

    from tests.ui.screens import layout_problems

    async def body() -> None:
        relay = Relay()
        url = await relay.start()
        launcher = await launch(tmp_path / "me", "Me", url)
        window = launcher.window
        assert window is not None
        try:
            dialog = window.show_settings()
            smallest = dialog.minimumSizeHint()
            for page in (dialog.relay_page, dialog.connection, dialog.passphrase):
                dialog.tabs.setCurrentIndex(dialog.tabs.indexOf(page))
                dialog.resize(smallest.width(), 100)  # asked for less than fits
                await asyncio.sleep(0.2)
                assert dialog.height() >= smallest.height()
                assert layout_problems("settings", dialog) == []
            dialog.close()
        finally:
            await launcher.shutdown()
            window.close()
            await relay.close()

    run(body())
