"""Sending from the composer: a sent message shows once, and the composer's length limit is
the engine's."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from app.core.errors import UserError
from app.domain.messages import MAX_MESSAGE_CHARS, Direction, Message
from tests.ui.conftest import me_and_a_peer, until


def test_a_message_sent_while_its_conversation_opens_shows_once(run, tmp_path: Path) -> None:
    """The first page is read before the message is stored but handed over only after the
    send is through: the message reaches the panel once, by the MessageAdded event."""

    async def body() -> None:
        async with me_and_a_peer(tmp_path) as (window, card):
            engine = window.engine
            contact = await engine.add_contact(card)
            sent = asyncio.Event()
            read_page, send = engine.messages, engine.send

            async def late_page(
                contact_id: int, limit: int = 50, before: int | None = None
            ) -> list[Message]:
                page = await read_page(contact_id, limit, before)
                if limit > 1:  # not mark-read's look at the newest message
                    await sent.wait()
                return page

            async def send_and_tell(
                contact_id: int, text: str, reply_to: int | None = None
            ) -> Message:
                message = await send(contact_id, text, reply_to)
                sent.set()
                return message

            engine.messages = late_page  # type: ignore[method-assign]
            engine.send = send_and_tell  # type: ignore[method-assign]
            window.open_contact(contact)
            panel = window.panel
            await until(lambda: panel.contact is not None and panel.model is not None)
            model = panel.model
            assert model is not None
            assert model.rowCount() == 0  # the first page is still on its way
            panel.composer.setPlainText("once")
            panel.send()
            await until(sent.is_set, what="the send")
            await until(lambda: model.rowCount() > 0, what="the first page")
            await asyncio.sleep(0.3)  # anything late would have arrived by now
            assert model.rowCount() == 1
            assert model.message(0).body == "once"
            assert model.message(0).direction is Direction.OUTGOING

    run(body())


def test_the_composer_takes_what_the_engine_takes_and_refuses_one_more(run, tmp_path: Path) -> None:
    longest = ("abcd " * (MAX_MESSAGE_CHARS // 5))[:-1] + "e"
    assert len(longest) == MAX_MESSAGE_CHARS == 16_000

    async def body() -> None:
        async with me_and_a_peer(tmp_path) as (window, card):
            engine = window.engine
            contact = await engine.add_contact(card)
            window.open_contact(contact)
            panel = window.panel
            await until(lambda: panel.model is not None and panel.composer.isEnabled())
            model = panel.model
            assert model is not None

            panel.composer.setPlainText(longest + "f")
            panel.send()
            assert panel.error.isVisibleTo(panel)
            assert panel.error.text() == f"A message holds at most {MAX_MESSAGE_CHARS} characters."
            assert panel.composer.toPlainText() == longest + "f"  # kept, to shorten
            with pytest.raises(UserError):  # the engine draws the line at the same place
                await engine.send(contact.id, longest + "f")

            panel.composer.setPlainText(longest)
            panel.send()
            assert panel.composer.toPlainText() == ""
            await until(lambda: model.rowCount() == 1, what="the longest message")
            assert model.message(0).body == longest
            await until(lambda: not panel.error.isVisibleTo(panel), what="the error gone")

    run(body())


def test_a_paste_past_the_limit_is_refused_and_a_counter_shows_near_it(run, tmp_path: Path) -> None:
    from PySide6.QtCore import QMimeData, Qt
    from PySide6.QtGui import QColor, QGuiApplication
    from PySide6.QtTest import QTest

    from app.ui.theme import ERROR_COLOR

    async def body() -> None:
        async with me_and_a_peer(tmp_path) as (window, card):
            contact = await window.engine.add_contact(card)
            window.open_contact(contact)
            panel = window.panel
            composer = panel.composer
            await until(lambda: panel.model is not None and composer.isEnabled())
            counter = composer.counter
            composer.setFocus()
            QTest.keyClicks(composer, "hello ")
            assert not counter.isVisibleTo(panel)

            # Ctrl+V of 100 KB: nothing goes in, and the panel says why.
            QGuiApplication.clipboard().setText("x" * 100_000)
            QTest.keyClick(composer, Qt.Key.Key_V, Qt.KeyboardModifier.ControlModifier)
            assert composer.toPlainText() == "hello "
            assert panel.error.isVisibleTo(panel)
            assert panel.error.text() == (
                "That text is 100,000 characters; a message holds at most 16,000."
            )

            # Near the limit the counter shows how long the message is.
            composer.setPlainText("a" * 15_200)
            composer.moveCursor(composer.textCursor().MoveOperation.End)
            assert counter.isVisibleTo(panel)
            assert counter.text() == "15,200 / 16,000"
            assert ERROR_COLOR not in counter.styleSheet()
            composer.insertPlainText("b" * 790)  # typed, the 790 took seconds to lay out
            assert counter.text() == "15,990 / 16,000"
            QTest.keyClicks(composer, "b" * 10)
            assert counter.text() == "16,000 / 16,000"
            assert ERROR_COLOR not in counter.styleSheet()

            # A paste that fits alone but not with what is written is refused too.
            mime = QMimeData()
            mime.setText("c" * 10)
            composer.insertFromMimeData(mime)
            assert len(composer.toPlainText()) == 16_000
            assert panel.error.text() == (
                "With that text the message would be 16,010 characters; a message holds at "
                "most 16,000."
            )
            # Replacing a selection counts what goes out: the same paste over ten selected
            # characters fits.
            cursor = composer.textCursor()
            cursor.movePosition(cursor.MoveOperation.Left, cursor.MoveMode.KeepAnchor, 10)
            composer.setTextCursor(cursor)
            composer.insertFromMimeData(mime)
            assert composer.toPlainText().endswith("b" * 790 + "c" * 10)

            # Typed past the limit: the counter turns the error colour, and is drawn so.
            QTest.keyClicks(composer, "d")
            assert counter.text() == "16,001 / 16,000"
            assert ERROR_COLOR in counter.styleSheet()
            await asyncio.sleep(0.05)
            image = counter.grab().toImage()
            red = QColor(ERROR_COLOR)
            assert any(
                image.pixelColor(x, y) == red
                for y in range(image.height())
                for x in range(image.width())
            )
            composer.setPlainText("short again")
            assert not counter.isVisibleTo(panel)

    run(body())
