"""The line above the composer: a reply and an edit, one at a time; Escape or ✕ leaves them
(an edit's text with it); a message that went takes its reply or edit away."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QToolButton, QVBoxLayout, QWidget
from pytestqt.qtbot import QtBot

from app.domain.messages import Direction, Message, MessageRow, Status, WireId
from app.ui.answer_bar import AnswerBar
from app.ui.chatview import Composer


def message(row: int, body: str, direction: Direction) -> Message:
    return Message(
        MessageRow(row), 1, direction, WireId(b"%16d" % row), row, body, 0, 0, Status.SENT, True
    )


def plain(text: str) -> str:
    return text.replace("\u2068", "").replace("\u2069", "")


def test_reply_edit_and_their_ways_out(qtbot: QtBot) -> None:
    root = QWidget()
    qtbot.addWidget(root)
    composer = Composer()
    bar = AnswerBar(composer)
    layout = QVBoxLayout(root)
    layout.addWidget(bar)
    layout.addWidget(composer)
    root.show()
    theirs = message(1, "dinner?", Direction.INCOMING)
    mine = message(2, "at eight", Direction.OUTGOING)

    bar.reply(theirs, "Peer")
    assert bar.isVisible()
    assert plain(bar.text.text()) == "Replying to Peer: dinner?"
    QTest.keyClicks(composer, "yes")
    composer.setFocus()
    QTest.keyClick(composer, Qt.Key.Key_Escape)
    assert not bar.isVisible()
    assert composer.toPlainText() == "yes"  # a reply's draft stays
    assert bar.take() == (None, None)

    bar.edit(mine)
    assert composer.toPlainText() == "at eight"
    assert (bar.replying, bar.editing) == (None, mine)
    bar.reply(theirs, "Peer")  # switching to a reply drops the edit's text
    assert composer.toPlainText() == ""
    assert (bar.replying, bar.editing) == (theirs, None)

    bar.edit(mine)
    bar.findChild(QToolButton).click()  # ✕
    assert composer.toPlainText() == ""
    assert not bar.isVisible()

    bar.edit(mine)
    bar.drop({5})
    assert bar.editing == mine
    bar.drop({2})
    assert bar.editing is None
    assert composer.toPlainText() == ""
    bar.reply(theirs, "Peer")
    assert bar.take() == (theirs, None)
    assert not bar.isVisible()
