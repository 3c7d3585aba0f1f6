"""The unlock screen before the profile is open: in the profile's theme, under its name when
the user chose to show it, from a small file beside the store that holds nothing else."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QApplication

from app.core.profile import profile_paths
from app.ui.launcher import Launcher
from app.ui.onboarding import LOOK_FILE, UnlockLook, UnlockPage, read_look, write_look
from app.ui.text import safe_text
from app.ui.theme import Theme, apply_theme
from tests.ui.conftest import launch, new_profile


def test_the_look_file_round_trips_is_private_and_a_damaged_one_is_ignored(
    tmp_path: Path,
) -> None:
    assert read_look(tmp_path) == UnlockLook()
    assert write_look(tmp_path, UnlockLook(Theme.DARK, "Alice"))
    assert read_look(tmp_path) == UnlockLook(Theme.DARK, "Alice")
    assert stat.S_IMODE((tmp_path / LOOK_FILE).stat().st_mode) == 0o600
    assert write_look(tmp_path, UnlockLook(Theme.LIGHT))
    assert read_look(tmp_path) == UnlockLook(Theme.LIGHT, None)
    assert b"Alice" not in (tmp_path / LOOK_FILE).read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == [LOOK_FILE]
    for damaged in (b"{", b"[]", b'{"theme": "purple"}', b"\xff\xfe", b'{"name": 5}'):
        (tmp_path / LOOK_FILE).write_bytes(damaged)
        assert read_look(tmp_path).name is None
    assert not write_look(tmp_path / "missing", UnlockLook())


def background(page: UnlockPage) -> int:
    """The lightness of the page's own background, drawn as the user sees it."""
    image = page.grab().toImage()
    return image.pixelColor(3, 3).lightness()


def test_the_unlock_screen_follows_the_saved_theme_and_shows_the_chosen_name(
    run, qapp: QApplication, tmp_path: Path
) -> None:
    async def body() -> None:
        directory = tmp_path / "alice"
        await new_profile(directory, "Alice", "ws://127.0.0.1:1")
        paths = profile_paths(str(directory))
        try:
            write_look(directory, UnlockLook(Theme.DARK, "Alice"))
            launcher = Launcher(paths)
            page = launcher.show_gate()
            assert isinstance(page, UnlockPage)
            await asyncio.sleep(0.1)
            assert page.title.text() == f"Unlock {safe_text('Alice')}’s profile"
            assert page.title.isVisible()
            assert background(page) < 80  # dark
            assert qapp.palette().color(QPalette.ColorRole.Window).lightness() < 80
            page.close()

            write_look(directory, UnlockLook(Theme.LIGHT))
            launcher = Launcher(paths)
            page = launcher.show_gate()
            assert isinstance(page, UnlockPage)
            await asyncio.sleep(0.1)
            assert page.title.text() == "Unlock AnonChat"
            assert background(page) > 200  # light
            page.close()
        finally:
            apply_theme(qapp, Theme.LIGHT)

    run(body())


def test_settings_choose_the_theme_and_the_name_the_unlock_screen_shows(
    run, qapp: QApplication, tmp_path: Path
) -> None:
    async def body() -> None:
        directory = tmp_path / "me"
        launcher = await launch(directory, "Me", "ws://127.0.0.1:1")
        try:
            window = launcher.window
            assert window is not None
            # Unlocking stored the theme and nothing else.
            assert read_look(directory) == UnlockLook(Theme.SYSTEM, None)
            assert b"Me" not in (directory / LOOK_FILE).read_bytes()

            dialog = window.show_settings()
            assert not dialog.show_name.isChecked()
            dialog.show_name.setChecked(True)
            dialog.theme.setCurrentIndex(dialog.theme.findData("dark"))
            assert await dialog.save()
            assert read_look(directory) == UnlockLook(Theme.DARK, "Me")
            dialog.name.setText("Me Renamed")
            assert await dialog.save()
            assert read_look(directory).name == "Me Renamed"
            dialog.close()
            again = window.show_settings()
            assert again.show_name.isChecked()
            again.close()
        finally:
            await launcher.shutdown()
        apply_theme(qapp, Theme.LIGHT)

        page = Launcher(profile_paths(str(directory))).show_gate()
        assert isinstance(page, UnlockPage)
        await asyncio.sleep(0.1)
        assert "Me Renamed" in page.title.text()
        assert background(page) < 80
        page.close()
        apply_theme(qapp, Theme.LIGHT)

    run(body())
