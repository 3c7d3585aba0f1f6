"""The application's identity (name, desktop entry, icon) and its light and dark palettes.

Themes use the Fusion style with an explicit palette, so "light" and "dark" look the same on
every desktop, and "system" follows the desktop's colour scheme while it changes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QFont, QFontDatabase, QGuiApplication, QPalette
from PySide6.QtWidgets import (
    QApplication,
    QDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QStyleFactory,
)

from app.ui.icons import app_icon

log = logging.getLogger(__name__)


class Theme(StrEnum):
    SYSTEM = "system"
    LIGHT = "light"
    DARK = "dark"


FONTS = Path(__file__).resolve().parent / "fonts"
EMOJI_FONT = FONTS / "NotoColorEmoji.ttf"  # SIL Open Font License, fonts/OFL.txt
EMOJI_FAMILY = "Noto Color Emoji"
ERROR_COLOR = "#c0392b"  # error lines and failed bubbles, readable on light and dark alike


def note_label(error: bool = False) -> QLabel:
    """A wrapped line of feedback under a form, hidden until there is something to say."""
    label = QLabel()
    label.setWordWrap(True)
    label.setTextFormat(Qt.TextFormat.PlainText)  # it may quote a peer's name
    if error:
        label.setStyleSheet(f"color: {ERROR_COLOR};")
        label.setAccessibleName("Error")
    label.hide()
    return label


LABELS = {Theme.SYSTEM: "Follow the system", Theme.LIGHT: "Light", Theme.DARK: "Dark"}
_chosen: list[Theme] = [Theme.SYSTEM]


def action_row(
    dialog: QDialog, label: str, name: str, act: Callable[[], object], *, enabled: bool = True
) -> tuple[QPushButton, QHBoxLayout]:
    """A dialog's buttons: Cancel (closes it) and its action, the default, at the right."""
    action = QPushButton(label)
    action.setAccessibleName(name)
    action.setDefault(True)
    action.setEnabled(enabled)
    action.clicked.connect(act)
    cancel = QPushButton("Cancel")
    cancel.setAccessibleName("Cancel")
    cancel.clicked.connect(dialog.close)
    row = QHBoxLayout()
    row.addStretch(1)
    row.addWidget(cancel)
    row.addWidget(action)
    return action, row


def setup_application(app: QApplication) -> None:
    """Name, desktop entry, icon and the system-following theme; call once, before windows."""
    app.setApplicationName("AnonChat")
    app.setOrganizationName("AnonChat")
    QGuiApplication.setDesktopFileName("anonchat")
    app.setWindowIcon(app_icon())
    add_emoji_font(app)
    app.setQuitOnLastWindowClosed(False)  # the launcher decides when the app ends
    app.styleHints().colorSchemeChanged.connect(lambda _scheme: _follow(app))
    apply_theme(app, Theme.SYSTEM)


def add_emoji_font(app: QApplication) -> bool:
    """Register the bundled colour emoji font and make it the one Qt falls back to for
    emoji, so they never show as boxes on a desktop without an emoji font of its own."""
    if EMOJI_FAMILY not in QFontDatabase.applicationFontFamilies(_emoji_font_id[0]):
        _emoji_font_id[0] = QFontDatabase.addApplicationFont(str(EMOJI_FONT))
        if _emoji_font_id[0] < 0:
            log.warning("the emoji font could not be loaded")
            return False
    if hasattr(QFontDatabase, "addApplicationEmojiFontFamily"):  # Qt 6.9 and later
        QFontDatabase.addApplicationEmojiFontFamily(EMOJI_FAMILY)
    else:
        QFont.insertSubstitution(app.font().family(), EMOJI_FAMILY)
    return True


_emoji_font_id = [-1]


def _follow(app: QApplication) -> None:
    if _chosen[0] is Theme.SYSTEM:
        apply_theme(app, Theme.SYSTEM)


def system_is_dark(app: QApplication) -> bool:
    return app.styleHints().colorScheme() == Qt.ColorScheme.Dark


def current_theme() -> Theme:
    return _chosen[0]


def effective_dark(app: QApplication) -> bool:
    theme = _chosen[0]
    return theme is Theme.DARK or (theme is Theme.SYSTEM and system_is_dark(app))


def apply_theme(app: QApplication, theme: Theme) -> None:
    _chosen[0] = theme
    style = QStyleFactory.create("Fusion")
    if style is not None:
        app.setStyle(style)
    app.setPalette(dark_palette() if effective_dark(app) else light_palette())


def _palette(colors: dict[QPalette.ColorRole, str], disabled_text: str) -> QPalette:
    palette = QPalette()
    for role, color in colors.items():
        palette.setColor(role, QColor(color))
    for role in (
        QPalette.ColorRole.Text,
        QPalette.ColorRole.WindowText,
        QPalette.ColorRole.ButtonText,
    ):
        palette.setColor(QPalette.ColorGroup.Disabled, role, QColor(disabled_text))
    return palette


def light_palette() -> QPalette:
    R = QPalette.ColorRole
    return _palette(
        {
            R.Window: "#f4f5f7",
            R.WindowText: "#1d1f23",
            R.Base: "#ffffff",
            R.AlternateBase: "#e9ecf1",
            R.ToolTipBase: "#ffffff",
            R.ToolTipText: "#1d1f23",
            R.PlaceholderText: "#6b7280",
            R.Text: "#1d1f23",
            R.Button: "#e9ecf1",
            R.ButtonText: "#1d1f23",
            R.BrightText: "#ffffff",
            R.Highlight: "#1f6fd8",
            R.HighlightedText: "#ffffff",
            R.Link: "#1a66d2",
            R.Mid: "#b8bec8",
            R.Dark: "#9aa1ac",
            R.Light: "#ffffff",
        },
        "#9aa1ac",
    )


def dark_palette() -> QPalette:
    R = QPalette.ColorRole
    return _palette(
        {
            R.Window: "#1e2126",
            R.WindowText: "#e6e8eb",
            R.Base: "#16181c",
            R.AlternateBase: "#2b2f36",
            R.ToolTipBase: "#2b2f36",
            R.ToolTipText: "#e6e8eb",
            R.PlaceholderText: "#9aa1ac",
            R.Text: "#e6e8eb",
            R.Button: "#2b2f36",
            R.ButtonText: "#e6e8eb",
            R.BrightText: "#ffffff",
            R.Highlight: "#1f6fd8",
            R.HighlightedText: "#ffffff",
            R.Link: "#6aa5f5",
            R.Mid: "#4a505a",
            R.Dark: "#0f1114",
            R.Light: "#3a3f47",
        },
        "#6b7280",
    )
