from __future__ import annotations

import asyncio
import re
from pathlib import Path

from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtTest import QTest

from app.core.qr import make_png
from app.domain.messages import Direction, Status
from app.ui.models import BubbleRole
from app.ui.window import MainWindow
from tests.ui.conftest import (
    accept_in_window,
    alice_and_bob,
    headless,
    me_and_a_peer,
    open_request,
    until,
    write_to,
)


def contact_names(window: MainWindow) -> list[str]:
    m = window.contacts
    return [m.summary(i).contact.display_name for i in range(m.rowCount())]


def test_add_by_qr_accept_the_request_chat_and_a_namesake_stays_a_request(
    run, tmp_path: Path
) -> None:
    async def body() -> None:
        async with alice_and_bob(tmp_path) as (alice, bob, url):
            assert alice.right.currentWidget() is alice.empty
            assert not alice.requests.isVisible()

            # Alice shows her code; Bob reads a picture of it.
            code = alice.show_my_code()
            await until(lambda: code.card, what="the card")
            assert not code.qr.pixmap().isNull()
            image = tmp_path / "alice.png"
            make_png(code.card, image)
            add = bob.show_add_contact()
            await add.load_file(tmp_path / "missing.png")
            assert add.error.isVisible()
            assert not add.add_button.isEnabled()
            await add.load_file(image)
            await until(lambda: "Alice" in add.whose.text(), what="whose code it is")
            QTest.mouseClick(add.add_button, Qt.MouseButton.LeftButton)
            await until(lambda: contact_names(bob) == ["Alice"], what="Alice in Bob's list")
            await until(lambda: bob.panel.contact is not None, what="Bob's conversation open")

            # For Alice, Bob is a message request until she accepts it.
            await until(lambda: alice.requests.isVisible(), what="Bob's request")
            assert contact_names(alice) == []
            assert alice.requests.header.text() == "Message requests (1)"
            await accept_in_window(alice, "Bob")
            await until(lambda: contact_names(alice) == ["Bob"], what="Bob in Alice's list")
            await until(lambda: not alice.requests.isVisible(), what="the section to go")
            await until(lambda: alice.contacts.summary(0).established, what="handshake")
            assert alice.panel.composer.isEnabled()

            # Bob writes; Enter sends, Shift+Enter makes a new line.
            QTest.keyClicks(bob.panel.composer, "hello")
            QTest.keyClick(bob.panel.composer, Qt.Key.Key_Return, Qt.KeyboardModifier.ShiftModifier)
            QTest.keyClicks(bob.panel.composer, "Alice")
            QTest.keyClick(bob.panel.composer, Qt.Key.Key_Return)
            assert bob.panel.composer.toPlainText() == ""
            sent_model = bob.panel.model
            assert sent_model is not None
            await until(lambda: sent_model.rowCount() == 1, what="Bob's bubble")
            sent = sent_model.message(0)
            assert sent.body == "hello\nAlice"
            assert sent.direction is Direction.OUTGOING

            alice.show_empty()
            await until(lambda: alice.contacts.summary(0).unread == 1, what="unread badge")
            alice.contact_list.setCurrentIndex(alice.contacts.index(0, 0))
            await until(
                lambda: alice.panel.model is not None and alice.panel.model.rowCount() == 1,
                what="the bubble in Alice's window",
            )
            assert alice.panel.model is not None
            received = alice.panel.model.message(0)
            assert received.body == "hello\nAlice"
            assert received.direction is Direction.INCOMING
            await until(
                lambda: sent_model.message(0).status in (Status.DELIVERED, Status.READ),
                what="delivered tick",
            )
            tip = bob.panel.view.model().index(0, 0).data(Qt.ItemDataRole.ToolTipRole)
            assert re.fullmatch(r"Sent \d\d:\d\d · Delivered \d\d:\d\d( · Read \d\d:\d\d)?", tip)
            assert alice.panel.view.model().index(0, 0).data(BubbleRole)[1] == "Today"
            await until(lambda: alice.contacts.summary(0).unread == 0, what="read on opening")

            # A stranger calling themselves "Alice" writes to Bob: not a key change that
            # freezes Bob's Alice, but a request of its own, with the same-name warning.
            mallory = await headless(tmp_path / "mallory", "Alice", url)
            try:
                await write_to(mallory, await bob.engine.card(), "it's me, new phone")
                await until(lambda: bob.requests.isVisible(), what="the stranger's request")
                summary = bob.requests.model.summary(0)
                assert summary.same_name_as is not None
                assert summary.same_name_as.id == bob.panel.contact.id  # type: ignore[union-attr]
                panel = bob.panel
                assert not panel.banner.isVisible()
                assert not panel.request_bar.isVisible()
                assert panel.composer.isEnabled()
                assert contact_names(bob) == ["Alice"]
                QTest.keyClicks(panel.composer, "still there?")
                panel.send()
                await until(lambda: sent_model.rowCount() == 2, what="Bob still writes")

                # Bob looks at the request (read-only) and deletes it.
                await open_request(bob, "Alice")
                assert not panel.composer.isEnabled()
                assert panel.request_bar.accept_as_key.isVisible()
                QTest.mouseClick(panel.request_bar.delete, Qt.MouseButton.LeftButton)
                await until(lambda: not bob.requests.isVisible(), what="the request gone")
                assert bob.right.currentWidget() is bob.empty
                assert await bob.engine.requests() == []
                assert [s.contact.display_name for s in await bob.engine.summaries()] == ["Alice"]
            finally:
                await mallory.close()

    run(body())


def test_safety_number_dialog_marks_verified(run, tmp_path: Path) -> None:
    async def body() -> None:
        async with alice_and_bob(tmp_path) as (alice, bob, _):
            await bob.engine.add_contact(await alice.engine.card())
            await until(lambda: alice.requests.model.rowCount() == 1, what="Bob's request")
            await alice.engine.accept_request(alice.requests.model.summary(0).request.id)
            await until(lambda: contact_names(alice) == ["Bob"], what="handshake")
            alice.contact_list.setCurrentIndex(alice.contacts.index(0, 0))
            await until(lambda: alice.panel.contact is not None, what="conversation")
            dialog = alice.show_safety(alice.panel.contact.id)  # type: ignore[union-attr]
            assert dialog is not None
            await until(lambda: "\n" in dialog.number.text(), what="the number")
            groups = dialog.number.text().split()
            assert len(groups) == 12
            assert all(len(g) == 5 for g in groups)

            # Bob verifies by holding Alice's verification code up to the scanner's camera
            # (frames fed to its pipeline: there is no webcam here).
            from PySide6.QtGui import QImage
            from PySide6.QtMultimedia import QVideoFrame

            bob.contact_list.setCurrentIndex(bob.contacts.index(0, 0))
            await until(lambda: bob.panel.contact is not None, what="Bob's conversation")
            bob_dialog = bob.show_safety(bob.panel.contact.id)  # type: ignore[union-attr]
            assert bob_dialog is not None
            scanner = bob_dialog.open_scanner()
            scanner.text.setPlainText(await bob.engine.card())  # a card is not a verification code
            assert "not a verification code" in scanner.error.text()
            alice_code = QImage()
            alice_code.loadFromData(
                make_png(await alice.engine.verification_code(alice.panel.contact.id)),  # type: ignore[union-attr]
                "PNG",
            )
            for _ in range(50):
                scanner.scanner.handle_frame(QVideoFrame(alice_code))
                await asyncio.sleep(0.05)
                if bob_dialog.contact.verified:
                    break
            await until(lambda: bob_dialog.contact.verified, what="Bob's mark")
            assert "✔" in bob.panel.title.text()

            # Alice compared the numbers and marks Bob verified.
            QTest.mouseClick(dialog.mark, Qt.MouseButton.LeftButton)
            await until(lambda: dialog.contact.verified, what="verified")
            assert not dialog.mark.isEnabled()
            await until(lambda: alice.contacts.summary(0).contact.verified, what="list mark")

    run(body())


def test_conversation_model_holds_only_loaded_pages(run, tmp_path: Path) -> None:
    async def body() -> None:
        async with me_and_a_peer(tmp_path) as (window, card):
            contact = await window.engine.add_contact(card)
            for i in range(130):
                await window.engine.send(contact.id, f"message {i}")
            window.open_contact(contact)
            await until(lambda: window.panel.model is not None, what="model")
            model = window.panel.model
            assert model is not None
            await until(lambda: model.rowCount() == 50, what="first page")
            assert model.queries == 1
            assert model.message(49).body == "message 129"
            assert model.message(0).body == "message 80"
            assert model.canFetchMore(QModelIndex())
            # The view's own fetch-at-the-bottom must not load history.
            assert not window.panel.view.model().canFetchMore(QModelIndex())

            bar = window.panel.view.verticalScrollBar()
            await until(lambda: bar.maximum() > 0, what="a scrollable list")
            bar.setValue(bar.minimum())
            await until(lambda: model.rowCount() == 100, what="second page")
            assert model.queries == 2
            assert model.message(0).body == "message 30"
            assert bar.value() > bar.minimum()  # the reader's place is kept
            model.fetchMore(QModelIndex())
            await until(lambda: model.rowCount() == 130, what="last page")
            assert not model.canFetchMore(QModelIndex())
            assert model.queries == 3

    run(body())
