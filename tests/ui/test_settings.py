from __future__ import annotations

from pathlib import Path

from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QApplication

from app.core.profile import open_profile, profile_paths
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
        assert dialog.relay.text() == url

        dialog.name.setText("Me Again")
        dialog.relay.setText(other_url)
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

        dialog.relay.setText("http://not a relay")
        assert not await dialog.save()
        assert dialog.error.isVisible()
        assert engine.relay_url == other_url

        # Passphrase: the wrong current one changes nothing, the right one does.
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
