"""The contact list's context menu: opened by right click, the Menu key or Shift+F10; rename
(a refused name explained in the dialog), safety number, block and delete (confirmed, with
or without keeping the conversation), checked in the widgets and in the engine."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QContextMenuEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QMenu

from app.domain.contacts import ContactState
from app.ui.a11y import nameless
from app.ui.contact_menu import ConfirmDialog, RenameDialog
from app.ui.dialogs import SafetyDialog
from app.ui.text import safe_text
from app.ui.window import MainWindow
from tests.ui.conftest import (
    accept_in_window,
    eventually,
    headless,
    me_and_peers,
    until,
    write_to,
)

ENTRIES = ["Rename…", "Safety number", "Mute notifications", "Block…", "Delete…"]


def top(kind: type) -> object:
    found = [w for w in QApplication.topLevelWidgets() if isinstance(w, kind) and w.isVisible()]
    return found[-1] if found else None


def entries(menu: QMenu) -> dict[str, object]:
    return {a.text().replace("&", ""): a for a in menu.actions() if not a.isSeparator()}


def menu_by_keyboard(window: MainWindow) -> QMenu:
    """Shift+F10 on the selected row, as a keyboard user opens it."""
    window.contact_actions.menu = None
    view = window.contact_list
    view.setFocus()
    view.setCurrentIndex(window.contacts.index(0, 0))
    QTest.keyClick(view, Qt.Key.Key_F10, Qt.KeyboardModifier.ShiftModifier)
    menu = window.contact_actions.menu
    assert menu is not None
    return menu


def test_context_menu_renames_blocks_and_deletes(run, tmp_path: Path) -> None:
    async def body() -> None:
        async with me_and_peers(tmp_path) as (window, url, peers):
            engine = window.engine
            peers.append(bob := await headless(tmp_path / "bob", "Bob", url))
            await write_to(bob, await engine.card(), "hello")
            contact = await accept_in_window(window, "Bob")
            view = window.contact_list

            # Three ways to the same menu: right click, the Menu key, Shift+F10.
            pos = view.visualRect(window.contacts.index(0, 0)).center()
            click = QContextMenuEvent(
                QContextMenuEvent.Reason.Mouse, pos, view.viewport().mapToGlobal(pos)
            )
            assert click.type() == QEvent.Type.ContextMenu
            QApplication.sendEvent(view.viewport(), click)
            menu = window.contact_actions.menu
            assert menu is not None
            assert list(entries(menu)) == ENTRIES
            menu.close()
            window.contact_actions.menu = None
            QTest.keyClick(view, Qt.Key.Key_Menu)
            assert window.contact_actions.menu is not None
            window.contact_actions.menu.close()
            menu = menu_by_keyboard(window)
            assert list(entries(menu)) == ENTRIES
            assert menu.accessibleName() == f"Actions for {safe_text('Bob')}"

            # Rename: a name with a direction override is refused, and the dialog says why.
            entries(menu)["Rename…"].trigger()  # type: ignore[attr-defined]
            menu.close()
            rename = top(RenameDialog)
            assert isinstance(rename, RenameDialog)
            assert nameless(rename) == []
            assert rename.name.text() == "Bob"
            rename.name.setText("Bob\u202e")
            QTest.mouseClick(rename.save, Qt.MouseButton.LeftButton)
            await until(lambda: rename.error.isVisible(), what="the refusal")
            assert "direction" in rename.error.text()
            assert rename.isVisible()
            assert (await engine.contact(contact.id)).display_name == "Bob"
            rename.name.setText("Robert")
            QTest.mouseClick(rename.save, Qt.MouseButton.LeftButton)
            await until(lambda: top(RenameDialog) is None, what="the dialog to close")
            await until(
                lambda: window.contacts.summary(0).contact.display_name == "Robert",
                what="the new name in the list",
            )
            assert window.contacts.index(0, 0).data() == safe_text("Robert")
            assert window.panel.title.text() == safe_text("Robert")
            assert (await engine.contact(contact.id)).display_name == "Robert"

            # Safety number, for this row.
            entries(menu_by_keyboard(window))["Safety number"].trigger()  # type: ignore[attr-defined]
            safety = top(SafetyDialog)
            assert isinstance(safety, SafetyDialog)
            assert safety.contact.id == contact.id
            safety.close()

            # Delete, keeping the conversation: the row stays, marked, read-only.
            entries(menu_by_keyboard(window))["Delete…"].trigger()  # type: ignore[attr-defined]
            confirm = top(ConfirmDialog)
            assert isinstance(confirm, ConfirmDialog)
            assert nameless(confirm) == []
            assert confirm.option is not None
            assert confirm.option.text().replace("&", "") == "Keep the conversation"
            confirm.option.setChecked(True)
            QTest.mouseClick(confirm.confirm, Qt.MouseButton.LeftButton)
            await until(
                lambda: window.contacts.summary(0).contact.state is ContactState.ENDED,
                what="the row marked deleted",
            )
            (row,) = await engine.summaries()
            assert row.contact.state is ContactState.ENDED
            assert not row.contact.blocked
            assert "deleted" in window.contacts.index(0, 0).data(Qt.ItemDataRole.AccessibleTextRole)
            panel = window.panel
            await until(lambda: panel.banner.isVisible(), what="the banner")
            assert "You deleted" in panel.banner_text.text()
            assert not panel.composer.isEnabled()
            assert not panel.send_button.isEnabled()
            assert [m.body for m in await engine.messages(contact.id)] == ["hello"]

            # Block (confirmed): the banner says so, and Block is not offered again.
            entries(menu_by_keyboard(window))["Block…"].trigger()  # type: ignore[attr-defined]
            confirm = top(ConfirmDialog)
            assert isinstance(confirm, ConfirmDialog)
            assert confirm.option is None
            QTest.mouseClick(confirm.confirm, Qt.MouseButton.LeftButton)
            await until(lambda: window.contacts.summary(0).contact.blocked, what="blocked")
            assert (await engine.summaries())[0].contact.blocked
            assert "You blocked" in panel.banner_text.text()
            assert "blocked" in window.contacts.index(0, 0).data(Qt.ItemDataRole.AccessibleTextRole)
            menu = menu_by_keyboard(window)
            assert not entries(menu)["Block…"].isEnabled()  # type: ignore[attr-defined]

            # Delete without keeping: the row goes, and the right side empties.
            entries(menu)["Delete…"].trigger()  # type: ignore[attr-defined]
            menu.close()
            confirm = top(ConfirmDialog)
            assert isinstance(confirm, ConfirmDialog)
            QTest.mouseClick(confirm.confirm, Qt.MouseButton.LeftButton)
            await until(lambda: window.contacts.rowCount() == 0, what="the row gone")
            await until(lambda: window.right.currentWidget() is window.empty, what="empty")
            assert window.panel.contact is None
            assert await engine.summaries() == []
            assert await engine.messages(contact.id) == []

    run(body())


def test_cancel_changes_nothing(run, tmp_path: Path) -> None:
    async def body() -> None:
        async with me_and_peers(tmp_path) as (window, url, peers):
            engine = window.engine
            peers.append(bob := await headless(tmp_path / "bob", "Bob", url))
            await write_to(bob, await engine.card(), "hello")
            await accept_in_window(window, "Bob")
            entries(menu_by_keyboard(window))["Delete…"].trigger()  # type: ignore[attr-defined]
            confirm = top(ConfirmDialog)
            assert isinstance(confirm, ConfirmDialog)
            QTest.keyClick(confirm, Qt.Key.Key_Return)  # Cancel is the default answer
            await until(lambda: top(ConfirmDialog) is None, what="the dialog to close")
            (row,) = await engine.summaries()
            assert row.contact.state is ContactState.CONTACT
            assert window.panel.composer.isEnabled()

    run(body())


def test_a_muted_contact_brings_no_notification_until_unmuted(
    run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def body() -> None:
        async with me_and_peers(tmp_path) as (window, url, peers):
            peers.append(bob := await headless(tmp_path / "bob", "Bob", url))
            to_me = await write_to(bob, await window.engine.card(), "hello")
            contact = await accept_in_window(window, "Bob")
            notified: list[str] = []
            monkeypatch.setattr(
                window.tray, "notify", lambda _cid, _who, text, *_a, **_k: notified.append(text)
            )
            window.showMinimized()  # away: an incoming message is a notification

            await bob.send(to_me, "one")
            await until(lambda: notified == ["one"], what="a notification")
            mute = entries(menu_by_keyboard(window))["Mute notifications"]
            mute.trigger()  # type: ignore[attr-defined]
            await until(lambda: window.engine.is_muted(contact.id), what="muted")
            assert "muted" in window.statusBar().currentMessage()
            await bob.send(to_me, "two")

            async def arrived() -> bool:
                return any(m.body == "two" for m in await window.engine.messages(contact.id, 5))

            await eventually(arrived, what="the message stored")
            await asyncio.sleep(0.3)  # its event reached the window
            assert notified == ["one"]
            menu = menu_by_keyboard(window)
            assert "Unmute notifications" in entries(menu)
            entries(menu)["Unmute notifications"].trigger()  # type: ignore[attr-defined]
            await until(lambda: not window.engine.is_muted(contact.id), what="unmuted")
            await bob.send(to_me, "three")
            await until(lambda: notified == ["one", "three"], what="notifications again")

    run(body())
