"""Panic wipe and the duress passphrase in the window, with real widgets over real profiles:
the menu item and Ctrl+Shift+Delete ask once, then the profile's files and keyring entry are
gone and the first-start wizard shows; Settings sets and clears a duress passphrase, and
unlocking with it shows an empty profile under the same name."""

from __future__ import annotations

import asyncio
from pathlib import Path

import shiboken6
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QMessageBox

from app.cli import api_handler
from app.core.profile import profile_paths
from app.net.rpc import ApiClient, socket_path
from app.ui.launcher import Launcher
from app.ui.onboarding import UnlockPage, WizardPage
from app.ui.window import MainWindow
from tests.ui.conftest import PASSPHRASE, MemoryKeyring, Relay, launch, peer_card, until

DURESS = "the duress passphrase"


def everything_under(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*"))


def wizard_shown(launcher: Launcher) -> bool:
    return isinstance(launcher.gate, WizardPage) and launcher.gate.isVisible()


async def confirm(window: MainWindow) -> None:
    await until(lambda: window.wipe_box is not None and window.wipe_box.isVisible(), what="asked")
    button = window.wipe_button()
    assert button is not None
    QTest.mouseClick(button, Qt.MouseButton.LeftButton)


def test_the_menu_item_asks_once_then_nothing_is_left_and_the_wizard_shows(
    run, tmp_path: Path, memory_keyring: MemoryKeyring
) -> None:
    async def body() -> None:
        relay = Relay()
        url = await relay.start()
        profiles = tmp_path / "profiles"
        launcher = await launch(profiles / "me", "Me", url, api=api_handler)
        try:
            window = launcher.window
            assert window is not None
            assert await window.engine.remember_key(True) is None
            assert len(memory_keyring.entries) == 1
            assert socket_path(profiles / "me").exists()
            before = everything_under(profiles)

            # The shortcut asks; Cancel (the default, and Escape) leaves everything as it was.
            window.activateWindow()
            await until(lambda: QApplication.activeWindow() is window, what="window active")
            QTest.keyClick(
                window,
                Qt.Key.Key_Delete,
                Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier,
            )
            await until(lambda: window.wipe_box is not None, what="the question")
            box = window.wipe_box
            assert box is not None
            assert box.defaultButton() is box.button(QMessageBox.StandardButton.Cancel)
            QTest.keyClick(box, Qt.Key.Key_Escape)
            await until(lambda: window.wipe_box is None, what="the question gone")
            await asyncio.sleep(0.2)
            assert launcher.window is window
            assert everything_under(profiles) == before

            # The toolbar's menu holds the item; confirmed, the profile goes.
            menu = window.menu_button.menu()
            assert menu is not None
            item = next(a for a in menu.actions() if a.text() == "Panic wipe…")
            assert item.shortcut().toString() == "Ctrl+Shift+Del"
            item.trigger()
            await confirm(window)
            await until(lambda: wizard_shown(launcher), what="the first-start wizard")
            assert launcher.window is None
            assert launcher.engine is None
            assert everything_under(profiles) == []
            assert memory_keyring.entries == {}
            assert await ApiClient.connect(socket_path(profiles / "me")) is None

            # The wizard makes a new profile in the same place, as on a first start.
            page = launcher.gate
            assert isinstance(page, WizardPage)
            page.name.setText("Someone")
            page.passphrase.setText("a new passphrase")
            page.repeat.setText("a new passphrase")
            page.choice.custom.setChecked(True)
            page.choice.relay.setText(url)
            QTest.mouseClick(page.create_button, Qt.MouseButton.LeftButton)
            await asyncio.wait_for(launcher.ready.wait(), 30)
            assert launcher.window is not None
            assert launcher.window.engine.name == "Someone"
            assert launcher.window.contacts.rowCount() == 0
        finally:
            await launcher.shutdown()
            await relay.close()

    run(body(), timeout=120)


def test_the_shortcut_confirmed_wipes_at_once(run, tmp_path: Path, no_keyring: None) -> None:
    async def body() -> None:
        profiles = tmp_path / "profiles"
        launcher = await launch(profiles / "me", "Me", "ws://127.0.0.1:9")
        try:
            window = launcher.window
            assert window is not None
            assert "me/store.db" in everything_under(profiles)
            settings = window.show_settings()  # an open dialog goes with the window
            window.activateWindow()
            await until(lambda: QApplication.activeWindow() is window, what="window active")
            QTest.keyClick(
                window,
                Qt.Key.Key_Delete,
                Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier,
            )
            await confirm(window)
            await until(lambda: wizard_shown(launcher), what="the first-start wizard")
            for gone in (window, settings):  # closed, and deleted since
                assert not shiboken6.isValid(gone) or not gone.isVisible()
            assert everything_under(profiles) == []
        finally:
            await launcher.shutdown()

    run(body())


def test_settings_set_and_clear_the_duress_passphrase_which_opens_an_empty_profile(
    run, tmp_path: Path
) -> None:
    async def body() -> None:
        relay = Relay()
        url = await relay.start()
        directory = tmp_path / "me"
        card = await peer_card(tmp_path / "peer", url)
        launcher = await launch(directory, "Me", url)
        launchers = [launcher]

        async def unlock(passphrase: str) -> Launcher:
            again = Launcher(profile_paths(str(directory)), url)
            launchers.append(again)
            page = again.show_gate()
            assert isinstance(page, UnlockPage)
            QTest.keyClicks(page.passphrase, passphrase)
            QTest.keyClick(page.passphrase, Qt.Key.Key_Return)
            await until(
                lambda: again.ready.is_set() or page.error.isVisible(), what="unlocked or not"
            )
            return again

        try:
            window = launcher.window
            assert window is not None
            await window.engine.add_contact(card)
            await until(lambda: window.contacts.rowCount() == 1, what="the contact listed")
            dialog = window.show_settings()
            dialog.tabs.setCurrentWidget(dialog.passphrase)  # where the section is
            section = dialog.duress
            section.passphrase.setText(PASSPHRASE)  # the passphrase itself is refused
            section.repeat.setText(PASSPHRASE)
            QTest.mouseClick(section.set_button, Qt.MouseButton.LeftButton)
            await until(lambda: section.error.isVisible(), what="the refusal")
            assert "must differ from the passphrase" in section.error.text()
            await until(lambda: section.set_button.isEnabled(), what="idle again")
            section.passphrase.setText(DURESS)
            section.repeat.setText(DURESS)
            QTest.mouseClick(section.set_button, Qt.MouseButton.LeftButton)
            await until(lambda: section.result.isVisible(), what="set")
            assert not section.error.isVisible()
            assert section.result.text() == "The duress passphrase is set."
            assert section.passphrase.text() == ""
            QTest.mouseClick(section.clear_button, Qt.MouseButton.LeftButton)
            await until(lambda: "no duress" in section.result.text(), what="cleared")
            await launcher.shutdown()

            cleared = await unlock(DURESS)  # cleared: just a wrong passphrase
            gate = cleared.gate
            assert isinstance(gate, UnlockPage)
            assert gate.error.text().startswith("Wrong passphrase")
            gate.close()
            real = await unlock(PASSPHRASE)
            window = real.window
            assert window is not None
            assert window.contacts.rowCount() == 1
            dialog = window.show_settings()
            dialog.tabs.setCurrentWidget(dialog.passphrase)
            section = dialog.duress
            section.passphrase.setText(DURESS)
            section.repeat.setText(DURESS)
            QTest.mouseClick(section.set_button, Qt.MouseButton.LeftButton)
            await until(lambda: section.result.isVisible(), what="set")
            await real.shutdown()

            fresh = await unlock(DURESS)
            window = fresh.window
            assert window is not None
            assert fresh.ready.is_set()
            assert window.engine.name == "Me"
            assert window.engine.relay_url == url
            assert window.contacts.rowCount() == 0
            assert window.windowTitle() == "AnonChat — Me"
        finally:
            for each in launchers:
                await each.shutdown()
            await relay.close()

    run(body(), timeout=120)
