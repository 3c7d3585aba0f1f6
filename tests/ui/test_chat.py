from __future__ import annotations

import asyncio
from pathlib import Path

from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtTest import QTest

from app.core.engine import Engine
from app.core.profile import create_profile, profile_paths
from app.core.qr import make_png
from app.crypto.passphrase import INSECURE_FAST_PARAMS
from app.store.records import Direction, Status
from app.ui.window import MainWindow
from tests.ui.conftest import PASSPHRASE, alice_and_bob, me_and_a_peer, until


def contact_names(window: MainWindow) -> list[str]:
    m = window.contacts
    return [m.summary(i).contact.display_name for i in range(m.rowCount())]


def test_add_by_qr_chat_delivered_and_key_change_blocks(run, tmp_path: Path) -> None:
    async def body() -> None:
        async with alice_and_bob(tmp_path) as (alice, bob, url):
            assert alice.right.currentWidget() is alice.empty

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
            assert "Alice" in add.whose.text()
            QTest.mouseClick(add.add_button, Qt.MouseButton.LeftButton)
            await until(lambda: contact_names(bob) == ["Alice"], what="Alice in Bob's list")
            await until(lambda: contact_names(alice) == ["Bob"], what="Bob in Alice's list")
            await until(lambda: bob.panel.contact is not None, what="Bob's conversation open")
            await until(lambda: alice.contacts.summary(0).established, what="handshake")

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

            await until(lambda: alice.contacts.summary(0).unread == 1, what="unread badge")
            alice.contact_list.setCurrentIndex(alice.contacts.index(0))
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
            await until(lambda: alice.contacts.summary(0).unread == 0, what="read on opening")

            # A stranger calling themselves "Alice" adds Bob: a key change for Bob's Alice.
            card = await bob.engine.card()
            paths = profile_paths(str(tmp_path / "mallory"))
            opened = await create_profile(paths, PASSPHRASE, "Alice", url, INSECURE_FAST_PARAMS)
            mallory = await Engine.open(opened)
            await mallory.add_contact(card)
            await mallory.start()
            panel = bob.panel
            await until(lambda: panel.banner.isVisible(), what="the key-change banner")
            assert not panel.composer.isEnabled()
            assert not panel.send_button.isEnabled()
            assert "safety number changed" in panel.banner_text.text()
            QTest.keyClicks(panel.composer, "blocked")
            panel.send()
            assert sent_model.rowCount() == 1
            QTest.mouseClick(panel.accept_key, Qt.MouseButton.LeftButton)
            await until(lambda: not panel.banner.isVisible(), what="the banner to go")
            assert panel.composer.isEnabled()
            await mallory.close()

    run(body())


def test_safety_number_dialog_marks_verified(run, tmp_path: Path) -> None:
    async def body() -> None:
        async with alice_and_bob(tmp_path) as (alice, bob, _):
            await bob.engine.add_contact(await alice.engine.card())
            await until(lambda: contact_names(alice) == ["Bob"], what="handshake")
            alice.contact_list.setCurrentIndex(alice.contacts.index(0))
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

            bob.contact_list.setCurrentIndex(bob.contacts.index(0))
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
