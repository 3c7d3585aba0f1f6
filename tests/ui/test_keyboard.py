"""Everything without a mouse, and a name for every control a screen reader lands on."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from app.core.profile import profile_paths
from app.ui.a11y import nameless
from app.ui.dialogs import AddContactDialog, SafetyDialog
from app.ui.my_code import MyCodeDialog
from app.ui.onboarding import WizardPage
from app.ui.settings import SettingsDialog
from tests.ui.conftest import Relay, launch, peer_card, until


def top_dialog(kind: type) -> object:
    found = [w for w in QApplication.topLevelWidgets() if isinstance(w, kind) and w.isVisible()]
    return found[-1] if found else None


def test_every_action_by_keyboard_and_every_control_named(run, tmp_path: Path) -> None:
    async def body() -> None:
        relay = Relay()
        url = await relay.start()
        card = await peer_card(tmp_path / "peer", url)
        wizard = WizardPage(profile_paths(str(tmp_path / "new")))
        assert nameless(wizard) == []
        wizard.close()

        launcher = await launch(tmp_path / "me", "Me", url)
        window = launcher.window
        assert window is not None
        window.activateWindow()
        await until(lambda: QApplication.activeWindow() is window, what="window active")
        assert nameless(window) == []
        for control in (
            window.search.box,
            window.contact_list,
            window.panel.composer,
            window.panel.send_button,
            window.panel.view,
            window.connection,
        ):
            assert control.accessibleName(), control

        def key(k: Qt.Key, mods: Qt.KeyboardModifier = Qt.KeyboardModifier.ControlModifier) -> None:
            target = QApplication.focusWidget() or window
            QTest.keyClick(target, k, mods)

        # My code: Ctrl+M, then Escape closes it.
        key(Qt.Key.Key_M)
        await until(lambda: top_dialog(MyCodeDialog) is not None, what="my code")
        dialog = top_dialog(MyCodeDialog)
        assert isinstance(dialog, MyCodeDialog)
        assert nameless(dialog) == []
        QTest.keyClick(dialog, Qt.Key.Key_Escape)
        await until(lambda: top_dialog(MyCodeDialog) is None, what="closed")

        # Scan a code: Ctrl+N, paste the text with the keyboard, Alt+A adds.
        window.activateWindow()
        await until(lambda: QApplication.activeWindow() is window, what="window active")
        key(Qt.Key.Key_N)
        await until(lambda: top_dialog(AddContactDialog) is not None, what="scan dialog")
        add = top_dialog(AddContactDialog)
        assert isinstance(add, AddContactDialog)
        assert nameless(add) == []
        await until(lambda: QApplication.activeWindow() is add, what="the dialog active")
        QApplication.clipboard().setText(card)
        QTest.keyClick(
            QApplication.focusWidget() or add,
            Qt.Key.Key_V,
            Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier,
        )
        await until(lambda: add.add_button.isEnabled(), what="the card read")
        QTest.keyClick(add, Qt.Key.Key_A, Qt.KeyboardModifier.AltModifier)
        await until(lambda: window.contacts.rowCount() == 1, what="contact added")

        # Ctrl+1 to the list, Down/Up picks, the conversation opens; Ctrl+I: safety number.
        window.activateWindow()
        await until(lambda: QApplication.activeWindow() is window, what="window active")
        key(Qt.Key.Key_1)
        assert window.contact_list.hasFocus()
        await until(lambda: window.panel.contact is not None, what="conversation")
        window.panel.composer.setFocus()
        QTest.keyClicks(window.panel.composer, "typed, not clicked")
        QTest.keyClick(window.panel.composer, Qt.Key.Key_Return)
        assert window.panel.model is not None
        await until(lambda: window.panel.model.rowCount() == 1, what="sent")  # type: ignore[union-attr]
        key(Qt.Key.Key_I)
        await until(lambda: top_dialog(SafetyDialog) is not None, what="safety dialog")
        safety = top_dialog(SafetyDialog)
        assert isinstance(safety, SafetyDialog)
        assert nameless(safety) == []
        QTest.keyClick(safety, Qt.Key.Key_Escape)

        # Settings: Ctrl+, ; Ctrl+F searches; Ctrl+Q quits.
        window.activateWindow()
        await until(lambda: QApplication.activeWindow() is window, what="window active")
        key(Qt.Key.Key_Comma)
        await until(lambda: top_dialog(SettingsDialog) is not None, what="settings")
        settings = top_dialog(SettingsDialog)
        assert isinstance(settings, SettingsDialog)
        assert nameless(settings) == []
        QTest.keyClick(settings, Qt.Key.Key_Escape)
        window.activateWindow()
        await until(lambda: QApplication.activeWindow() is window, what="window active")
        key(Qt.Key.Key_F)
        assert window.search.box.hasFocus()
        key(Qt.Key.Key_Q)
        await until(lambda: launcher.engine is None, what="quit")
        await relay.close()

    run(body())
