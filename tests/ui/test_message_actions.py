"""A message's actions in the window, against a real peer through a real relay: reply (the
quote drawn in the bubble, a click on it goes to the message), react with the picker, edit,
delete for everyone and for me (each asked first), the disappearing timer in the header, and
what the peer does arriving as it happens."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QPoint, QRect, Qt
from PySide6.QtGui import QImage, QPainter
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QStyleOptionViewItem

from app.domain.messages import Direction, Message, MessageKind, Reaction
from app.ui.conversation import ConversationPanel
from app.ui.models import MessageRole
from tests.ui.conftest import (
    accept_in_window,
    eventually,
    headless,
    me_and_peers,
    until,
    write_to,
)


def rows(panel: ConversationPanel) -> list[Message]:
    model = panel.model
    assert model is not None
    return [model.message(i) for i in range(model.rowCount())]


def find(panel: ConversationPanel, body: str) -> Message:
    (found,) = [m for m in rows(panel) if m.body == body]
    return found


def option_for(panel: ConversationPanel, message: Message) -> tuple[QStyleOptionViewItem, object]:
    view = panel.view
    model = view.model()
    row = next(i for i in range(model.rowCount()) if model.index(i, 0).data(MessageRole) == message)
    index = model.index(row, 0)
    option = QStyleOptionViewItem()
    option.initFrom(view)
    option.rect = view.visualRect(index)
    return option, index


def drawn(panel: ConversationPanel, message: Message) -> QImage:
    option, index = option_for(panel, message)
    size = panel.delegate.sizeHint(option, index)  # type: ignore[arg-type]
    option.rect = QRect(0, 0, panel.view.viewport().width(), size.height())
    image = QImage(option.rect.size(), QImage.Format.Format_ARGB32)
    image.fill(0)
    painter = QPainter(image)
    panel.delegate.paint(painter, option, index)  # type: ignore[arg-type]
    painter.end()
    return image


def test_reply_react_edit_delete_and_timer_in_the_window(run, tmp_path: Path) -> None:
    async def body() -> None:
        async with me_and_peers(tmp_path) as (window, url, peers):
            peer = await headless(tmp_path / "peer", "Peer", url)
            peers.append(peer)
            to_me = await write_to(peer, await window.engine.card(), "are you coming tonight?")
            contact = await accept_in_window(window, "Peer")
            window.open_contact(contact)
            panel = window.panel
            await until(lambda: panel.model is not None and len(rows(panel)) == 1, what="it")
            theirs = rows(panel)[0]

            # The menu offers what a received message allows.
            view = panel.view
            view.setCurrentIndex(view.model().index(0, 0))
            view._menu_at(view.visualRect(view.currentIndex()).center())
            assert view.menu is not None
            offered = [a.text().replace("&", "") for a in view.menu.actions() if a.text()]
            assert offered == ["Reply", "React…", "Copy text", "Delete for me…"]
            view.menu.close()

            # Reply: the bar says to whom; Enter sends the answer with its quote.
            panel.start_reply(theirs.id)
            assert panel.answer_bar.isVisibleTo(window)
            said = plain(panel.answer_bar.text.text())
            assert said == "Replying to Peer: are you coming tonight?"
            QTest.keyClicks(panel.composer, "yes, at eight")
            QTest.keyClick(panel.composer, Qt.Key.Key_Return)
            await until(lambda: any(m.body == "yes, at eight" for m in rows(panel)), what="sent")
            reply = find(panel, "yes, at eight")
            assert reply.quote is not None
            assert reply.quote.id == theirs.id
            assert not panel.answer_bar.isVisibleTo(window)
            option, index = option_for(panel, reply)
            quote = panel.delegate.quote_rect(option, index)  # type: ignore[arg-type]
            assert quote is not None
            jumped: list[int] = []
            panel.delegate.quote_clicked.connect(jumped.append)
            QTest.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=quote.center())
            await until(lambda: jumped == [theirs.id], what="the quote clicked")
            await until(lambda: panel.model.highlighted == theirs.id, what="the quoted marked")

            # The peer has the quote too.
            async def peer_sees_reply() -> bool:
                page = await peer.messages(to_me, 10)
                return any(m.body == "yes, at eight" and m.quote is not None for m in page)

            await eventually(peer_sees_reply, what="the peer's quote")

            # React with the picker: drawn under the bubble, and the bubble grows.
            before = drawn(panel, find(panel, "are you coming tonight?"))
            panel.pick_reaction(theirs.id, QPoint(10, 10))
            assert panel.picker is not None
            panel.picker.buttons[0].click()  # 👍
            await until(
                lambda: find(panel, "are you coming tonight?").reactions == (Reaction(True, "👍"),),
                what="the reaction",
            )
            reacted = drawn(panel, find(panel, "are you coming tonight?"))
            assert reacted.height() > before.height()

            # Edit our reply: the composer holds its text; sending changes it.
            panel.start_edit(reply.id)
            assert panel.composer.toPlainText() == "yes, at eight"
            panel.composer.setPlainText("yes, at nine")
            QTest.keyClick(panel.composer, Qt.Key.Key_Return)
            await until(lambda: any(m.body == "yes, at nine" for m in rows(panel)), what="edit")
            edited = find(panel, "yes, at nine")
            assert edited.id == reply.id
            assert edited.edited_at is not None
            assert len(rows(panel)) == 2

            # The timer, from the header's menu: a notice, then messages that show time left.
            assert panel.timer_button.text() == "⏱ Off"
            assert panel.timer_menu is not None
            five = [a for a in panel.timer_menu.actions() if a.text() == "5 minutes"]
            five[0].trigger()
            assert not panel.ticker.isActive()  # nothing here disappears yet
            await until(lambda: panel.timer_button.text() == "⏱ 5 minutes", what="the timer")
            assert panel.ticker.isActive()  # the time left is drawn again now and then
            await until(
                lambda: any(m.kind is MessageKind.TIMER for m in rows(panel)), what="notice"
            )
            notice = next(m for m in rows(panel) if m.kind is MessageKind.TIMER)
            n_index = option_for(panel, notice)[1]
            assert plain(n_index.data()) == "You set disappearing messages to 5 minutes"  # type: ignore[attr-defined]
            QTest.keyClicks(panel.composer, "gone soon")
            QTest.keyClick(panel.composer, Qt.Key.Key_Return)
            await until(lambda: any(m.body == "gone soon" for m in rows(panel)), what="timed")
            timed = find(panel, "gone soon")
            assert timed.expires_at is not None
            spoken = option_for(panel, timed)[1].data(Qt.ItemDataRole.AccessibleTextRole)  # type: ignore[attr-defined]
            assert spoken.endswith(("Disappears in 5m", "Disappears in 4m"))

            # Delete our reply for everyone: asked first, then it says so.
            panel.ask_delete(edited.id, True)
            assert panel.confirm is not None
            panel.confirm.confirm.click()
            await until(lambda: find_id(panel, edited.id).deleted, what="deleted for everyone")
            option, index = option_for(panel, find_id(panel, edited.id))
            assert plain(index.data()) == "You deleted this message"  # type: ignore[attr-defined]

            panel.start_reply(theirs.id)
            QTest.keyClicks(panel.composer, "see you")
            QTest.keyClick(panel.composer, Qt.Key.Key_Return)
            await until(lambda: any(m.body == "see you" for m in rows(panel)), what="2nd reply")
            second = find(panel, "see you")

            # The peer deletes its message for everyone: it shows here as it happens.
            peer_msg = (await peer.messages(to_me, 50))[-1]
            assert peer_msg.body == "are you coming tonight?"
            await peer.delete_message(peer_msg.id, for_everyone=True)
            await until(lambda: find_id(panel, theirs.id).deleted, what="theirs deleted")
            assert find_id(panel, theirs.id).reactions == ()
            # Our reply to it now quotes a deletion, drawn and read out so.
            quoting = option_for(panel, find_id(panel, second.id))[1]
            spoken = plain(quoting.data(Qt.ItemDataRole.AccessibleTextRole))  # type: ignore[attr-defined]
            assert spoken.startswith("In reply to Peer: This message was deleted.")

            # Delete for me: the row goes.
            panel.ask_delete(timed.id, False)
            assert panel.confirm is not None
            panel.confirm.confirm.click()
            await until(lambda: all(m.id != timed.id for m in rows(panel)), what="deleted")
            assert panel.contact is not None
            assert panel.contact.timer_s == 300
            assert theirs.direction is Direction.INCOMING

    run(body())


def plain(text: str) -> str:
    """Text as shown, without the isolation marks around what a peer wrote."""
    return text.replace("\u2068", "").replace("\u2069", "")


def find_id(panel: ConversationPanel, row: int) -> Message:
    (found,) = [m for m in rows(panel) if m.id == row]
    return found
