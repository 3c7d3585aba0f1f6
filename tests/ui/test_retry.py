from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from app.domain.messages import Status
from tests.ui.conftest import me_and_a_peer, until


def test_failed_message_is_sent_again_from_the_keyboard_and_the_menu(run, tmp_path: Path) -> None:
    async def body() -> None:
        async with me_and_a_peer(tmp_path) as (window, card):
            engine = window.engine
            contact = await engine.add_contact(card)
            first = await engine.send(contact.id, "first try")
            second = await engine.send(contact.id, "second try")

            def fail_all(r) -> None:
                for item in r.outbox.for_contact(contact.id):
                    if item.message_row is not None:
                        r.outbox.fail(item.id)

            await engine.store.run(fail_all)
            await window.reload_contacts()
            window.open_contact(contact)
            await until(
                lambda: window.panel.model is not None and window.panel.model.rowCount() == 2
            )
            model = window.panel.model
            assert model is not None
            assert model.message(0).status is Status.FAILED
            view = window.panel.view

            # Keyboard: focus the list, go to the first message, Ctrl+R.
            view.setFocus()
            view.setCurrentIndex(view.model().index(0, 0))
            QTest.keyClick(view, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier)
            await until(lambda: model.message(0).status is Status.QUEUED, what="queued again")
            assert model.message(1).status is Status.FAILED
            # A message that did not fail offers no retry.
            assert not view.retry_current()

            # The context menu (the Menu key's path): "Send again" on the second.
            view.setCurrentIndex(view.model().index(1, 0))
            view._menu_at(view.visualRect(view.currentIndex()).center())
            assert view.menu is not None
            actions = {
                a.text().replace("&", ""): a for a in view.menu.actions() if not a.isSeparator()
            }
            # A failed message is not answered, edited or reacted to; it can be deleted.
            assert set(actions) == {"Send again", "Copy text", "Delete for me…"}
            actions["Send again"].trigger()
            view.menu.close()
            await until(lambda: model.message(1).status is Status.QUEUED, what="second queued")
            pending = await engine.pending_outbox(contact.id)
            assert pending >= 2
            assert {first.id, second.id} == {model.message(0).id, model.message(1).id}

    run(body())
