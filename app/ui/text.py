"""Small text helpers shared by the widgets."""

from __future__ import annotations

from datetime import datetime


def sentence(text: str) -> str:
    """An engine message as a sentence: first letter up, the rest (names) untouched."""
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def clock(ms: int, now: datetime | None = None) -> str:
    """A message time: hours and minutes today, the date before that."""
    when = datetime.fromtimestamp(ms / 1000)
    now = now or datetime.now()
    if when.date() == now.date():
        return when.strftime("%H:%M")
    if when.year == now.year:
        return when.strftime("%d %b %H:%M")
    return when.strftime("%d %b %Y")


def preview(body: str, limit: int = 60) -> str:
    line = " ".join(body.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
