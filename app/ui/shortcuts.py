"""The main window's actions: each with its shortcuts, in the toolbar, in its menu or only on
the keyboard, and a toolbar whose buttons say their shortcut and have an accessible name."""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMainWindow, QMenu, QSizePolicy, QToolBar, QToolButton, QWidget


def action(
    window: QMainWindow, text: str, keys: list[QKeySequence | str], slot: Callable[[], object]
) -> QAction:
    """An action of the window, reachable by its shortcuts wherever the focus is."""
    made = QAction(text, window)
    made.setShortcuts([k if isinstance(k, QKeySequence) else QKeySequence(k) for k in keys])
    made.triggered.connect(slot)
    window.addAction(made)
    return made


def toolbar(window: QMainWindow, actions: list[QAction]) -> QToolBar:
    bar = QToolBar("Main")
    bar.setMovable(False)
    window.addToolBar(bar)
    for item in actions:
        bar.addAction(item)
        button = bar.widgetForAction(item)
        if button is not None:
            button.setAccessibleName(item.text())
            button.setToolTip(f"{item.text()} ({item.shortcut().toString()})")
    return bar


def toolbar_menu(bar: QToolBar, text: str, actions: list[QAction]) -> QToolButton:
    """A button at the toolbar's far end opening a menu of these actions (each with its
    shortcut shown): the window's menu, for what is used seldom or in a hurry."""
    spacer = QWidget()
    spacer.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
    bar.addWidget(spacer)
    menu = QMenu(text, bar)
    for item in actions:
        menu.addAction(item)
    button = QToolButton()
    button.setText(f"{text} \u2630")  # the three bars menus are known by
    button.setMenu(menu)
    button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
    button.setAccessibleName(text)
    button.setToolTip(", ".join(f"{a.text()} ({a.shortcut().toString()})" for a in actions))
    bar.addWidget(button)
    return button
