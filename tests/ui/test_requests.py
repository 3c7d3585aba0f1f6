"""Message requests in the window: the section above the contacts, a request opened
read-only, and Accept, Accept as a contact's new key, Block and Delete, each checked in the
widgets and in the engine (real engines on a real relay)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QStyleOptionViewItem

from app.core.engine import Engine
from app.domain.contacts import ContactState, RequestSummary
from app.domain.messages import Direction, Status
from app.ui.a11y import nameless
from app.ui.requests import first_line, same_name_warning
from app.ui.text import safe_text
from app.ui.window import MainWindow
from tests.ui.conftest import (
    accept_in_window,
    eventually,
    headless,
    me_and_peers,
    open_request,
    request_row,
    until,
    write_to,
)


def names(window: MainWindow) -> list[str]:
    m = window.contacts
    return [m.summary(i).contact.display_name for i in range(m.rowCount())]


def test_namesake_request_shows_its_warning_stays_unread_and_becomes_the_new_key(
    run, tmp_path: Path
) -> None:
    async def body() -> None:
        async with me_and_peers(tmp_path) as (window, url, peers):
            engine = window.engine
            card = await engine.card(address=True)  # the address: Bob's and Mallory's both
            peers.append(bob := await headless(tmp_path / "bob", "Bob", url))
            await write_to(bob, card, "hi, it's Bob")
            contact = await accept_in_window(window, "Bob")
            await engine.verify(contact.id, await engine.safety_number(contact.id))
            await until(lambda: window.contacts.summary(0).contact.verified, what="verified")

            # Someone else, also calling themselves Bob, writes: a request with a warning.
            peers.append(mallory := await headless(tmp_path / "mallory", "Bob", url))
            theirs = await write_to(mallory, card, "it's me, new phone")
            section = window.requests
            await until(lambda: section.isVisible(), what="the requests section")
            await until(
                lambda: section.model.summary(0).first_message is not None,
                what="its first message in the row",
            )
            assert section.header.text() == "Message requests (1)"
            assert section.isVisibleTo(window)
            summary = section.model.summary(0)
            assert summary.same_name_as is not None
            assert summary.same_name_as.id == contact.id
            index = section.model.index(0)
            assert index.data() == safe_text("Bob")
            assert first_line(summary) == safe_text("it's me, new phone")
            warning = same_name_warning(summary.same_name_as)
            assert (
                warning
                == f"Not your contact {safe_text('Bob')}: a different key with the same name"
            )
            described = index.data(Qt.ItemDataRole.AccessibleTextRole)
            assert "message request" in described
            assert first_line(summary) in described
            assert warning in described
            option = QStyleOptionViewItem()
            option.font = section.list.font()
            delegate = section.list.itemDelegate()
            assert delegate.sizeHint(option, index).height() > option.fontMetrics.height() * 3
            # Kept apart from the contacts, in the widgets and in the engine.
            assert names(window) == ["Bob"]
            assert [s.contact.id for s in await engine.summaries()] == [contact.id]

            # Opened, it is read-only, with all four answers and nothing marked read.
            request = await open_request(window, "Bob")
            panel, bar = window.panel, window.panel.request_bar
            await until(lambda: panel.model is not None and panel.model.rowCount() == 1)
            assert not window.contact_list.selectionModel().hasSelection()
            assert not panel.composer.isEnabled()
            assert not panel.send_button.isEnabled()
            assert "Message request" in panel.subtitle.text()
            for button in (bar.accept, bar.accept_as_key, bar.block, bar.delete):
                assert button.isVisible()
                assert button.accessibleName()
            assert bar.accept_as_key.text() == f"Accept as {safe_text('Bob')}'s new &key"
            assert bar.warning.isVisible()
            assert nameless(window) == []
            await mallory.send(theirs, "are you there?")  # a later message shows up live
            await until(lambda: panel.model is not None and panel.model.rowCount() == 2)
            await until(lambda: section.model.summary(0).messages == 2, what="the count")
            assert section.model.summary(0).first_message.body == "it's me, new phone"  # type: ignore[union-attr]
            await asyncio.sleep(0.6)  # longer than the window's read-mark delay
            assert not any(m.is_read for m in await engine.messages(request.id))
            assert Status.READ not in {m.status for m in await mallory.messages(theirs)}

            # Accept as Bob's new key: Bob's row takes the key, the verified mark is cleared.
            QTest.mouseClick(bar.accept_as_key, Qt.MouseButton.LeftButton)
            await until(lambda: not section.isVisible(), what="the section to go")
            assert await engine.requests() == []
            rows = await engine.summaries()
            assert [(s.contact.id, s.contact.verified) for s in rows] == [(contact.id, False)]
            await until(
                lambda: (
                    panel.contact is not None
                    and panel.contact.id == contact.id
                    and panel.contact.state is ContactState.CONTACT
                ),
                what="Bob's conversation open",
            )
            assert panel.composer.isEnabled()
            assert not bar.isVisible()
            assert "✔" not in panel.title.text()
            status = window.statusBar().currentMessage()
            assert "verified mark was cleared" in status
            assert "safety number" in status
            await until(lambda: names(window) == ["Bob"], what="one Bob")
            await until(
                lambda: panel.model is not None and panel.model.rowCount() == 3,
                what="both histories in one conversation",
            )

            # Accepted and open, the messages are read now, and the sender is told.
            async def read_by_me() -> bool:
                mine = await mallory.messages(theirs)
                return all(m.status is Status.READ for m in mine)

            await eventually(read_by_me, what="read receipts for the new key's messages")

    run(body())


def test_accept_block_and_delete_each_do_what_they_say(run, tmp_path: Path) -> None:
    async def body() -> None:
        async with me_and_peers(tmp_path) as (window, url, peers):
            engine = window.engine
            card = await engine.card(address=True)  # the address, which works for all three
            ids = {}
            for name in ("Carol", "Dave", "Erin"):
                peers.append(peer := await headless(tmp_path / name.lower(), name, url))
                ids[name] = await write_to(peer, card, f"hello from {name}")
            carol, dave, _ = peers
            section, panel, bar = window.requests, window.panel, window.panel.request_bar
            await until(lambda: section.model.rowCount() == 3, what="three requests")
            assert section.header.text() == "Message requests (3)"
            assert names(window) == []
            # Their messages were announced as requests; the notification opens one.
            assert window.tray.last_notification is not None
            assert window.tray.last_notification[0].startswith("Message request from ")
            erin = section.model.summary(request_row(window, "Erin") or 0).request
            window.tray.notification_clicked.emit(erin.id)
            await until(
                lambda: panel.contact is not None and panel.contact.id == erin.id,
                what="Erin's request opened from the notification",
            )
            assert bar.isVisible()
            assert section.current_id() == erin.id

            # Accept, from the keyboard: the row moves into the contact list, opened.
            window.activateWindow()
            await until(lambda: QApplication.activeWindow() is window, what="window active")
            section.list.setFocus()
            row = request_row(window, "Carol")
            assert row is not None
            section.list.setCurrentIndex(section.model.index(row))
            await until(lambda: bar.isVisible() and panel.model is not None, what="Carol open")
            QTest.keyClick(window, Qt.Key.Key_A, Qt.KeyboardModifier.AltModifier)
            await until(lambda: names(window) == ["Carol"], what="Carol in the contacts")
            await until(lambda: section.model.rowCount() == 2, what="two requests left")
            assert section.header.text() == "Message requests (2)"
            assert {s.request.display_name for s in await engine.requests()} == {"Dave", "Erin"}
            assert [
                (s.contact.display_name, s.contact.state) for s in await engine.summaries()
            ] == [("Carol", ContactState.CONTACT)]
            await until(lambda: panel.composer.isEnabled(), what="a normal conversation")
            assert not bar.isVisible()
            assert "Accepted" in window.statusBar().currentMessage()
            QTest.keyClicks(panel.composer, "welcome")
            QTest.keyClick(panel.composer, Qt.Key.Key_Return)

            async def carol_got_it() -> bool:
                got = await carol.messages(ids["Carol"])
                return any(m.body == "welcome" and m.direction is Direction.INCOMING for m in got)

            await eventually(carol_got_it, what="Carol to receive the reply")

            # Block: the request goes, nothing of Dave stays, and his key is dropped silently.
            await open_request(window, "Dave")
            QTest.mouseClick(bar.block, Qt.MouseButton.LeftButton)
            await until(lambda: section.model.rowCount() == 1, what="Dave's request gone")
            await until(lambda: window.right.currentWidget() is window.empty, what="empty")
            assert [s.request.display_name for s in await engine.requests()] == ["Erin"]
            assert names(window) == ["Carol"]
            assert "Blocked" in window.statusBar().currentMessage()
            await dave.send(ids["Dave"], "let me in")
            await asyncio.sleep(1.0)
            assert request_row(window, "Dave") is None
            assert [s.request.display_name for s in await engine.requests()] == ["Erin"]

            # Delete: the last request goes, and the section with it.
            await open_request(window, "Erin")
            QTest.mouseClick(bar.delete, Qt.MouseButton.LeftButton)
            await until(lambda: not section.isVisible(), what="the section to go")
            assert section.model.rowCount() == 0
            assert await engine.requests() == []
            await until(lambda: window.right.currentWidget() is window.empty, what="empty")
            assert names(window) == ["Carol"]
            assert [s.contact.display_name for s in await engine.summaries()] == ["Carol"]

    run(body())


def test_a_first_message_that_lands_while_the_requests_are_being_read_still_shows(
    run, tmp_path: Path
) -> None:
    """The race the section once lost: its first read of the requests (none shown yet) takes
    the request before its first message is stored, and the message's event arrives while that
    read is under way; the row must still end up with the message."""

    async def body() -> None:
        async with me_and_peers(tmp_path) as (window, url, peers):
            engine = window.engine
            card = await engine.card(address=True)
            section = window.requests
            assert section.model.rowCount() == 0
            peers.append(mallory := await headless(tmp_path / "mallory", "Mallory", url))
            real = engine.requests
            stale: list[int] = []
            # Mallory's contact id: the request can reach us before her side is through.
            ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()

            async def read_then_let_the_message_land() -> list[RequestSummary]:
                rows = await real()
                if not stale and rows:  # the first read that sees the request
                    stale.append(1)
                    assert rows[0].first_message is None
                    await mallory.send(await ready, "arrived during the read")
                    await eventually(
                        lambda: _stored(engine, rows[0].request.id), what="the message stored"
                    )
                return rows

            engine.requests = read_then_let_the_message_land
            ready.set_result(await write_to(mallory, card))
            await until(lambda: bool(stale), what="the first read to see the request")
            await until(
                lambda: (
                    section.model.rowCount() == 1
                    and section.model.summary(0).first_message is not None
                ),
                what="the message in the row",
            )
            assert first_line(section.model.summary(0)) == safe_text("arrived during the read")

    run(body())


async def _stored(engine: Engine, request_id: int) -> bool:
    return len(await engine.messages(request_id)) == 1
