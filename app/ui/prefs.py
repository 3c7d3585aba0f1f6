"""The desktop app's own preferences (theme, notifications, previews), kept inside the
profile's encrypted settings so nothing about the user sits in a plain file."""

from __future__ import annotations

from dataclasses import dataclass

from app.core.engine import Engine
from app.ui.theme import Theme

KEY_THEME = "ui.theme"
KEY_NOTIFY = "ui.notifications"
KEY_PREVIEWS = "ui.previews"


@dataclass(frozen=True, slots=True)
class Prefs:
    theme: Theme = Theme.SYSTEM
    notifications: bool = True
    previews: bool = True


async def load_prefs(engine: Engine) -> Prefs:
    stored = await engine.preferences()
    try:
        theme = Theme(stored.get(KEY_THEME, Theme.SYSTEM.value))
    except ValueError:
        theme = Theme.SYSTEM
    return Prefs(
        theme,
        stored.get(KEY_NOTIFY, "1") == "1",
        stored.get(KEY_PREVIEWS, "1") == "1",
    )


async def save_prefs(engine: Engine, prefs: Prefs) -> None:
    values = {
        KEY_THEME: prefs.theme.value,
        KEY_NOTIFY: "1" if prefs.notifications else "0",
        KEY_PREVIEWS: "1" if prefs.previews else "0",
    }

    await engine.set_preferences(values)
