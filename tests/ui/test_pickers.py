"""The reaction picker and the timer menu: what a click, a key or a custom time gives."""

from __future__ import annotations

from PySide6.QtCore import QPoint, Qt
from PySide6.QtTest import QTest
from pytestqt.qtbot import QtBot

from app.core.payload import valid_reaction
from app.domain.messages import TIMER_CHOICES
from app.ui.emoji_picker import MORE, QUICK, EmojiPicker, emoji_name
from app.ui.timer_menu import CustomTimerDialog, TimerMenu, timer_label


def test_every_offered_emoji_is_a_valid_reaction_and_named() -> None:
    offered = (*QUICK, *MORE)
    assert len(set(offered)) == len(offered)
    assert all(valid_reaction(e) for e in offered)
    assert emoji_name("👍") == "thumbs up sign"
    assert emoji_name("❤️") == "heavy black heart"  # the variation selector is not said


def test_a_click_picks_and_the_current_one_can_be_removed(qtbot: QtBot) -> None:
    picker = EmojiPicker(current="😂")
    qtbot.addWidget(picker)
    picker.popup_at(QPoint(10, 10))
    picks: list[str] = []
    picker.picked.connect(picks.append)
    assert [b.isChecked() for b in picker.buttons].count(True) == 1
    assert picker.remove is not None
    picker.buttons[1].click()
    assert picks == ["❤️"]
    picker.remove.click()
    assert picks == ["❤️", ""]
    assert EmojiPicker().remove is None


def test_the_keyboard_moves_and_picks(qtbot: QtBot) -> None:
    picker = EmojiPicker()
    qtbot.addWidget(picker)
    picker.popup_at(QPoint(0, 0))
    picker.buttons[0].setFocus()
    picks: list[str] = []
    picker.picked.connect(picks.append)
    QTest.keyClick(picker, Qt.Key.Key_Down)  # one row down: the first of MORE
    QTest.keyClick(picker, Qt.Key.Key_Right)
    QTest.keyClick(picker, Qt.Key.Key_Return)
    assert picks == [MORE[1]]


def test_the_timer_menu_offers_each_choice_and_checks_the_current(qtbot: QtBot) -> None:
    menu = TimerMenu(3600)
    qtbot.addWidget(menu)
    labels = [a.text() for a in menu.actions() if not a.isSeparator()]
    assert labels == ["Off", "5 minutes", "1 hour", "1 day", "1 week", "Custom…"]
    assert [a.text() for a in menu.actions() if a.isChecked()] == ["1 hour"]
    chosen: list[int] = []
    menu.chosen.connect(chosen.append)
    menu.actions()[3].trigger()
    assert chosen == [86_400]
    assert [timer_label(s) for s in TIMER_CHOICES] == labels[:-1]
    custom = TimerMenu(90)
    qtbot.addWidget(custom)
    assert custom.custom.isChecked()
    assert custom.custom.text() == "Custom (90 seconds)…"


def test_a_custom_timer_is_a_number_and_a_unit_up_to_a_year(qtbot: QtBot) -> None:
    dialog = CustomTimerDialog()
    qtbot.addWidget(dialog)
    chosen: list[int] = []
    dialog.chosen.connect(chosen.append)
    dialog.amount.setValue(3)
    dialog.unit.setCurrentIndex(2)  # days
    dialog.apply()
    assert chosen == [3 * 86_400]
    dialog.amount.setValue(60)
    dialog.unit.setCurrentIndex(3)  # 60 weeks: too long
    dialog.apply()
    assert chosen == [3 * 86_400]
    assert "one year" in dialog.error.text()
