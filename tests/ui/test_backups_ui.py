"""Settings ▸ Backups and the wizard's "Restore from a backup", on real widgets over real
engines, real SQLCipher profiles and a real relay (backups sealed with fast Argon2id)."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path

import shiboken6
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QFileDialog, QLineEdit

from app.core.backup import BackupEvery, BackupSchedule, restore_profile
from app.core.engine import Engine
from app.core.profile import create_profile, open_profile, profile_paths
from app.crypto.passphrase import INSECURE_FAST_PARAMS
from app.ui.a11y import nameless
from app.ui.backups import PROGRESS_STEPS, BackupsPage, when_words
from app.ui.launcher import Launcher
from app.ui.onboarding import WizardPage
from app.ui.restore import RestoreDialog, summary
from app.ui.settings import SettingsDialog
from app.ui.text import safe_text, sentence
from app.ui.window import MainWindow
from tests.ui.conftest import (
    PASSPHRASE,
    Relay,
    befriend,
    fill_history,
    headless,
    peer_card,
    until,
)

BACKUP_PASS = "a backup passphrase"
NEW_PASS = "the restored profile's passphrase"
NAME = re.compile(r"anonchat-me-\d{8}-\d{6}\.backup")


async def fast_engine(directory: Path, name: str, url: str) -> Engine:
    """A new profile's engine, not started, whose backups use fast Argon2id."""
    paths = profile_paths(str(directory))
    opened = await create_profile(paths, PASSPHRASE, name, url, INSECURE_FAST_PARAMS)
    return await Engine.open(opened, backup_params=INSECURE_FAST_PARAMS)


@contextlib.asynccontextmanager
async def my_window(tmp_path: Path) -> AsyncIterator[tuple[MainWindow, str]]:
    """A relay, and "Me"'s window over an engine not yet started (the test starts it,
    as the launcher does once the window shows); all closed afterwards."""
    relay = Relay()
    url = await relay.start()
    engine = await fast_engine(tmp_path / "me", "Me", url)
    window = MainWindow(engine, paths=profile_paths(str(tmp_path / "me")))
    try:
        await window.load()
        window.show()
        yield window, url
    finally:
        window.close()
        await engine.close()
        await relay.close()


async def backups_page(window: MainWindow) -> tuple[SettingsDialog, BackupsPage]:
    dialog = window.show_settings()
    dialog.tabs.setCurrentWidget(dialog.backups)
    await dialog.backups.loaded
    return dialog, dialog.backups


def test_back_up_now_writes_the_file_with_the_progress_bar_full(run, tmp_path: Path) -> None:
    async def body() -> None:
        async with my_window(tmp_path) as (window, url):
            engine = window.engine
            await engine.start()
            peer = await engine.add_contact(await peer_card(tmp_path / "peer", url))
            await fill_history(engine, peer.id, 3000)
            dialog, page = await backups_page(window)
            assert nameless(page) == []
            assert page.include_files.isChecked()
            seen: list[int] = []
            page.progress.valueChanged.connect(seen.append)

            # A passphrase too short, then two that differ: said, and no file is asked for.
            QTest.keyClicks(page.now_pass, "short")
            QTest.mouseClick(page.back_up_button, Qt.MouseButton.LeftButton)
            assert "at least 8 characters" in page.now_error.text()
            page.now_pass.setText(BACKUP_PASS)
            page.now_repeat.setText(BACKUP_PASS + "!")
            assert "differ" in page.now_hint.text()
            QTest.mouseClick(page.back_up_button, Qt.MouseButton.LeftButton)
            assert page.now_error.isVisible()
            assert "differ" in page.now_error.text()
            assert page.saver is None

            # Right: the save dialog offers a scheduled backup's name; the file chosen is
            # written, and the bar fills as the engine reports.
            page.now_repeat.setText(BACKUP_PASS)
            QTest.mouseClick(page.back_up_button, Qt.MouseButton.LeftButton)
            assert not page.now_error.isVisible()
            saver = page.saver
            assert isinstance(saver, QFileDialog)
            assert NAME.fullmatch(Path(saver.selectedFiles()[0]).name)
            target = tmp_path / "usb" / "mine.backup"
            target.parent.mkdir()
            saver.selectFile(str(target))
            saver.accept()
            await until(lambda: page.backing_up, what="the backup started")
            assert not page.back_up_button.isEnabled()
            assert page.progress.isVisible()
            await until(lambda: not page.backing_up, seconds=60, what="the backup done")
            assert page.now_result.isVisible(), page.now_error.text()
            assert target.is_file()
            assert str(target) in page.now_result.text()
            assert page.progress.value() == page.progress.maximum() == PROGRESS_STEPS
            assert seen == sorted(seen)
            assert seen[-1] == PROGRESS_STEPS
            assert page.now_pass.text() == ""
            assert page.back_up_button.isEnabled()

            # It is a backup of this profile under that passphrase.
            restored = await restore_profile(
                profile_paths(str(tmp_path / "check")),
                target,
                BACKUP_PASS,
                PASSPHRASE,
                params=INSECURE_FAST_PARAMS,
            )
            assert restored.messages == 3000
            assert restored.contacts == 1

            # Refused by the engine (a folder is not a file): said, nothing else changes.
            page.now_pass.setText(BACKUP_PASS)
            page.now_repeat.setText(BACKUP_PASS)
            before = sorted(p.name for p in target.parent.iterdir())
            assert await page.back_up(target.parent) is None
            assert "is a folder" in page.now_error.text()
            assert not page.now_result.isVisible()
            assert not page.progress.isVisible()
            assert sorted(p.name for p in target.parent.iterdir()) == before
            dialog.close()

    run(body())


def test_closing_settings_during_a_backup_lets_it_finish_and_says_so(run, tmp_path: Path) -> None:
    async def body() -> None:
        async with my_window(tmp_path) as (window, _url):
            dialog, page = await backups_page(window)
            page.now_pass.setText(BACKUP_PASS)
            page.now_repeat.setText(BACKUP_PASS)
            target = tmp_path / "mine.backup"
            task = asyncio.ensure_future(page.back_up(target))
            await asyncio.sleep(0)  # under way
            assert page.backing_up
            dialog.close()
            assert not dialog.isVisible()
            assert await asyncio.wait_for(task, 60) is not None
            assert target.is_file()
            await until(lambda: not shiboken6.isValid(dialog), what="Settings gone")
            said = window.statusBar().currentMessage()
            assert said.startswith(f"Backed up to {safe_text(str(target))}")

    run(body())


def test_the_schedule_saved_in_the_page_is_the_engines_after_reopening(run, tmp_path: Path) -> None:
    async def body() -> None:
        async with my_window(tmp_path) as (window, _url):
            engine = window.engine
            dialog, page = await backups_page(window)
            assert page.every.currentData() == "off"
            assert page.keep.value() == 5
            assert "None yet" in page.pass_state.text()
            assert page.last_backup.text() == "Last scheduled backup: none yet"

            stick = tmp_path / "stick"
            stick.mkdir()
            chooser = page.choose_folder()
            chooser.selectFile(str(stick))
            chooser.accept()
            await until(lambda: page.folder.text() == str(stick), what="the folder chosen")
            page.every.setCurrentIndex(page.every.findData("weekly"))
            page.keep.setValue(12)
            QTest.keyClicks(page.sched_pass, BACKUP_PASS)
            QTest.keyClicks(page.sched_repeat, BACKUP_PASS)
            QTest.mouseClick(page.save_schedule_button, Qt.MouseButton.LeftButton)
            await until(lambda: page.schedule_result.isVisible(), what="saved")
            assert str(stick) in page.schedule_result.text()
            assert page.sched_pass.text() == page.sched_repeat.text() == ""
            assert await engine.backup_schedule() == BackupSchedule(
                str(stick), BackupEvery.WEEKLY, 12, True, None, ""
            )
            dialog.close()

            again, page = await backups_page(window)
            assert page.folder.text() == str(stick)
            assert page.every.currentData() == "weekly"
            assert page.keep.value() == 12
            assert page.pass_state.text().startswith("Set")
            texts = [field.text() for field in again.findChildren(QLineEdit)]
            assert BACKUP_PASS not in texts  # never shown

            # Off again, the passphrase kept as it was (nothing typed).
            page.every.setCurrentIndex(page.every.findData("off"))
            assert await page.save_schedule() is not None
            assert await engine.backup_schedule() == BackupSchedule(
                str(stick), BackupEvery.OFF, 12, True, None, ""
            )
            again.close()

    run(body())


def test_back_up_now_can_use_the_scheduled_passphrase(run, tmp_path: Path) -> None:
    async def body() -> None:
        async with my_window(tmp_path) as (window, _url):
            engine = window.engine
            dialog, page = await backups_page(window)
            assert not page.use_scheduled.isVisibleTo(page)  # the schedule has none yet
            dialog.close()
            await engine.set_backup_schedule(passphrase=BACKUP_PASS)

            dialog, page = await backups_page(window)
            assert page.use_scheduled.isVisibleTo(page)
            assert page.use_scheduled.isChecked()
            assert not page.now_pass.isEnabled()
            target = tmp_path / "with-the-scheduled-one.backup"
            assert await page.back_up(target) is not None  # nothing typed
            restored = await restore_profile(
                profile_paths(str(tmp_path / "back")),
                target,
                BACKUP_PASS,
                "new passphrase",
                params=INSECURE_FAST_PARAMS,
            )
            assert restored.schema > 0
            assert page.now_pass.isEnabled() is False  # still the scheduled one, as chosen

            # Unticked: the passphrase typed is the one, and checked as before.
            page.use_scheduled.setChecked(False)
            assert page.now_pass.isEnabled()
            assert await page.back_up(tmp_path / "typed.backup") is None
            assert "at least 8 characters" in page.now_error.text()
            dialog.close()

    run(body())


def test_a_schedule_the_engine_refuses_is_said_and_nothing_is_saved(run, tmp_path: Path) -> None:
    async def body() -> None:
        async with my_window(tmp_path) as (window, _url):
            engine = window.engine
            before = await engine.backup_schedule()
            dialog, page = await backups_page(window)

            # On without a folder: the engine's reason, nothing stored.
            page.every.setCurrentIndex(page.every.findData("daily"))
            page.keep.setValue(3)
            page.sched_pass.setText(BACKUP_PASS)
            page.sched_repeat.setText(BACKUP_PASS)
            assert await page.save_schedule() is None
            assert page.schedule_error.isVisible()
            assert page.schedule_error.text() == sentence("scheduled backups need a folder")
            assert not page.schedule_result.isVisible()
            assert await engine.backup_schedule() == before

            # A folder that is not there, and two passphrases that differ: the same.
            page.folder.setText(str(tmp_path / "unplugged"))
            assert await page.save_schedule() is None
            assert "No folder" in page.schedule_error.text()
            page.folder.setText(str(tmp_path))
            page.sched_repeat.setText("something else")
            assert await page.save_schedule() is None
            assert "differ" in page.schedule_error.text()
            assert await engine.backup_schedule() == before
            dialog.close()

    run(body())


def test_backup_finished_updates_last_backup(run, tmp_path: Path) -> None:
    async def body() -> None:
        async with my_window(tmp_path) as (window, _url):
            engine = window.engine
            stick = tmp_path / "stick"
            stick.mkdir()
            await engine.set_backup_schedule(
                folder=stick, every="daily", keep=2, passphrase=BACKUP_PASS
            )
            dialog, page = await backups_page(window)
            assert page.last_backup.text() == "Last scheduled backup: none yet"
            await engine.start()  # the first scheduled backup is due at once
            await until(lambda: "none yet" not in page.last_backup.text(), seconds=60)
            schedule = await engine.backup_schedule()
            assert schedule.last_backup_at is not None
            assert page.last_backup.text().endswith(when_words(schedule.last_backup_at))
            assert not page.last_error.isVisible()
            assert [NAME.fullmatch(p.name) is not None for p in stick.iterdir()] == [True]
            dialog.close()

    run(body())


def test_a_failed_scheduled_backup_is_shown_as_the_last_error(run, tmp_path: Path) -> None:
    async def body() -> None:
        async with my_window(tmp_path) as (window, _url):
            engine = window.engine
            stick = tmp_path / "stick"
            stick.mkdir()
            await engine.set_backup_schedule(folder=stick, every="weekly", passphrase=BACKUP_PASS)
            stick.rmdir()  # unplugged
            dialog, page = await backups_page(window)
            assert not page.last_error.isVisible()
            await engine.start()
            await until(lambda: page.last_error.isVisible(), seconds=60, what="the failure")
            assert page.last_error.text().startswith("The last attempt failed:")
            assert page.last_backup.text() == "Last scheduled backup: none yet"
            assert (await engine.backup_schedule()).last_error
            dialog.close()

    run(body())


def test_the_backups_page_at_its_smallest_cuts_no_line_of_text(run, tmp_path: Path) -> None:
    from tests.ui.screens import layout_problems

    async def body() -> None:
        async with my_window(tmp_path) as (window, _url):
            dialog, page = await backups_page(window)
            page.now_error.setText("The two passphrases differ.")
            page.now_error.show()
            smallest = dialog.minimumSizeHint()
            dialog.resize(smallest.width(), 100)
            await asyncio.sleep(0.2)
            assert dialog.height() >= smallest.height()
            assert layout_problems("settings-backups", dialog) == []
            dialog.close()

    run(body())


async def backup_of_alice(tmp_path: Path, url: str) -> Path:
    """Alice (a contact of Bob's, who is online, and of a Peer who never is) and one message
    to Bob, backed up to a file; her profile is closed again."""
    alice = await fast_engine(tmp_path / "alice", "Alice", url)
    await alice.start()
    bob = await headless(tmp_path / "bob", "Bob", url)
    try:
        await befriend(alice, bob)
        await alice.add_contact(await peer_card(tmp_path / "peer", url))
        to_bob = next(s.contact for s in await alice.summaries() if s.contact.display_name == "Bob")
        await alice.send(to_bob.id, "see you at the station")
        target = tmp_path / "alice.backup"
        await alice.backup(target, BACKUP_PASS)
        return target
    finally:
        await alice.close()
        await bob.close()


def fill_restore(page: WizardPage, source: Path, backup_pass: str) -> RestoreDialog:
    dialog = page.show_restore()
    chooser = dialog.choose_file()
    chooser.selectFile(str(source))
    chooser.accept()
    dialog.backup_pass.setText(backup_pass)
    QTest.keyClicks(dialog.passphrase, NEW_PASS)
    QTest.keyClicks(dialog.repeat, NEW_PASS)
    return dialog


def test_wizard_restore_opens_the_window_on_the_restored_profile(run, tmp_path: Path) -> None:
    async def body() -> None:
        relay = Relay()
        url = await relay.start()
        source = await backup_of_alice(tmp_path, url)
        paths = profile_paths(str(tmp_path / "restored"))
        launcher = Launcher(paths, url, INSECURE_FAST_PARAMS)
        page = launcher.show_gate()
        assert isinstance(page, WizardPage)
        runner = asyncio.ensure_future(launcher.run())
        try:
            dialog = fill_restore(page, source, BACKUP_PASS)
            assert dialog.source.text() == str(source)
            assert nameless(dialog) == []
            assert dialog.hint.text() == "strong"
            QTest.mouseClick(dialog.action, Qt.MouseButton.LeftButton)
            await until(lambda: dialog.restored is not None, seconds=60, what="restored")
            restored = dialog.restored
            assert restored is not None
            assert restored.contacts == 2
            assert restored.messages >= 1
            assert restored.not_reconnected >= 1  # the Peer, who never gave a prekey
            assert dialog.summary_label.isVisible()
            assert dialog.summary_label.text() == summary(restored)
            text = dialog.summary_label.text()
            assert "2 contacts" in text
            assert f"{restored.not_reconnected:,} contact" in text
            assert "add them again by their code" in text
            assert dialog.progress.value() == dialog.progress.maximum()
            assert dialog.action.text() == "&Continue"
            assert not dialog.cancel.isVisible()
            assert paths.header.exists()
            assert launcher.window is None  # not before Continue

            QTest.mouseClick(dialog.action, Qt.MouseButton.LeftButton)
            await asyncio.wait_for(launcher.ready.wait(), 30)
            window = launcher.window
            assert window is not None
            assert window.engine.name == "Alice"
            names = {
                window.contacts.summary(i).contact.display_name
                for i in range(window.contacts.rowCount())
            }
            assert names == {"Bob", "Peer"}
            assert not dialog.isVisible()
            assert not page.isVisible()
            window.close()
            await asyncio.wait_for(runner, 10)

            # Locked with the new passphrase.
            opened = await open_profile(paths, NEW_PASS)
            await opened.store.close()
            opened.lock.release()
        finally:
            if not runner.done():
                await launcher.shutdown()
                await runner
            await relay.close()

    run(body())


def test_wizard_restore_refusals_are_said_and_create_nothing(run, tmp_path: Path) -> None:
    async def body() -> None:
        relay = Relay()
        url = await relay.start()
        source = await backup_of_alice(tmp_path, url)
        cut = tmp_path / "cut.backup"
        cut.write_bytes(source.read_bytes()[:-100])
        paths = profile_paths(str(tmp_path / "restored"))
        launcher = Launcher(paths, url, INSECURE_FAST_PARAMS)
        page = launcher.show_gate()
        assert isinstance(page, WizardPage)

        def nothing_made() -> bool:
            return not paths.directory.exists() and not any(
                p.name.startswith(".restored") for p in paths.directory.parent.iterdir()
            )

        try:
            dialog = fill_restore(page, source, "not the backup passphrase")
            QTest.mouseClick(dialog.action, Qt.MouseButton.LeftButton)
            await until(lambda: dialog.error.isVisible(), seconds=60, what="refused")
            assert dialog.error.text() == sentence("wrong backup passphrase")
            assert dialog.restored is None
            assert nothing_made()
            assert dialog.source.isEnabled()
            assert dialog.action.isEnabled()
            assert not dialog.progress.isVisible()

            dialog.source.setText(str(cut))
            dialog.backup_pass.setText(BACKUP_PASS)
            assert await dialog.restore() is None
            assert "truncated" in dialog.error.text()
            assert nothing_made()

            dialog.repeat.setText("differs")
            assert await dialog.restore() is None
            assert dialog.error.text() == "The two new passphrases differ."

            # Given up: closed, and the wizard makes a new profile as ever.
            dialog.close()
            assert not dialog.isVisible()
            assert page.isVisible()
            assert launcher.window is None
            assert nothing_made()
        finally:
            page.close()
            await relay.close()

    run(body())
