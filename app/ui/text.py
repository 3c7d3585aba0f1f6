"""Small text helpers shared by the widgets, and the one way a peer's text is made safe to show.

A peer chooses every character of a message body (and, within the engine's name rule, of a
name). Drawn as they are, bidi overrides and isolates reorder what is drawn around them (the
"You:" prefix, a name, a time), and control or invisible characters hide what the text
really says. `safe_text` turns every such character into a visible symbol and wraps the text
in a first-strong isolate, so it is drawn as one unit that nothing leaks out of. Every widget
that shows a peer's text goes through it, once, just before the text meets Qt.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime, timedelta
from functools import lru_cache

FSI = "\u2068"  # FIRST STRONG ISOLATE
PDI = "\u2069"  # POP DIRECTIONAL ISOLATE
MAX_MS = 253_402_300_799_999  # 9999-12-31 23:59:59.999 UTC, the last instant datetime holds
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_JOINERS = frozenset("\u200c\u200d")  # scripts and emoji sequences need them
# Format characters that are drawn as visible marks (Prepended_Concatenation_Mark).
_DRAWN_FORMAT = frozenset("\u0600\u0601\u0602\u0603\u0604\u0605\u06dd\u070f\u0890\u0891\u08e2")
_DRAWN_FORMAT |= frozenset("\U000110bd\U000110cd")
_HIDDEN_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_SPACES = re.compile(r"[ \t\r\n]+")  # what a one-line preview folds into single spaces
# A subdivision flag (England, Scotland, Wales): a black flag, tag letters, a cancel tag.
_FLAG = re.compile("\U0001f3f4[\U000e0020-\U000e007e]+\U000e007f")


def _marker(char: str) -> str:
    return f"⟨U+{ord(char):04X}⟩"


def _symbol(char: str, lines: bool) -> str:
    """What to draw for one character: itself, or a visible stand-in when it is hidden."""
    code = ord(char)
    if code < 0x20:
        return char if lines and char == "\n" else chr(0x2400 + code)  # Control Pictures
    if code == 0x7F:
        return "\u2421"  # SYMBOL FOR DELETE
    if char in _JOINERS or char in _DRAWN_FORMAT:
        return char
    if unicodedata.category(char) in _HIDDEN_CATEGORIES:  # C1, bidi, invisible, separators
        return _marker(char)
    return char


def visible(text: str, lines: bool = False) -> str:
    """Hidden characters shown as symbols, without the isolate (see `safe_text`)."""
    if text.isprintable():  # the common case: nothing hidden in it
        return text
    out: list[str] = []
    done = 0
    for flag in _FLAG.finditer(text):
        out.extend(_symbol(c, lines) for c in text[done : flag.start()])
        out.append(flag.group())
        done = flag.end()
    out.extend(_symbol(c, lines) for c in text[done:])
    return "".join(out)


@lru_cache(maxsize=4096)
def safe_text(text: str, lines: bool = False) -> str:
    """A peer's text as it may be drawn: hidden characters shown as symbols (C0 controls as
    Control Pictures, DEL as ␡, the rest as "⟨U+202E⟩"), then isolated with FSI…PDI.

    With `lines` (message bubbles) line breaks stay line breaks and each line is isolated on
    its own, since an isolate ends with its paragraph; elsewhere a line break is shown as ␊.
    """
    if lines:
        text = text.replace("\r\n", "\n")
        return "\n".join(isolate(visible(line)) for line in text.split("\n"))
    return isolate(visible(text))


def isolate(text: str) -> str:
    """Text already made `visible`, drawn as one unit in the direction of its first letter."""
    return FSI + text + PDI


def rebalance(text: str) -> str:
    """Close the isolates that eliding cut off; a safe text holds no other FSI or PDI."""
    return text + PDI * max(0, text.count(FSI) - text.count(PDI))


def sentence(text: str) -> str:
    """An engine message as a sentence: first letter up, the rest (names) untouched but made
    safe to show, since a message may quote what a peer sent."""
    text = text.strip()
    if not text:
        return text
    text = text[0].upper() + text[1:]
    return safe_text(text if text.endswith((".", "!", "?")) else text + ".")


def local_time(ms: int) -> datetime:
    """A timestamp as naive local time; never fails for any stored value (out-of-range ones
    are clamped, and times past what local time can hold are shown in UTC)."""
    moment = _EPOCH + timedelta(milliseconds=min(max(ms, 0), MAX_MS))
    try:
        return moment.astimezone().replace(tzinfo=None)
    except (OverflowError, ValueError, OSError):
        return moment.replace(tzinfo=None)


def clock(ms: int, now: datetime | None = None) -> str:
    """A message time: hours and minutes today, the date before that."""
    when = local_time(ms)
    now = now or datetime.now()
    if when.date() == now.date():
        return when.strftime("%H:%M")
    if when.year == now.year:
        return when.strftime("%d %b %H:%M")
    return when.strftime("%d %b %Y")


def one_line(text: str) -> str:
    """Line breaks, tabs and runs of spaces folded into single spaces; other controls stay,
    to be shown as symbols."""
    return _SPACES.sub(" ", text).strip(" ")


def preview(body: str, limit: int = 60) -> str:
    """One line of a peer's text, shortened and made safe to show (see `safe_text`)."""
    line = one_line(body)
    return safe_text(line if len(line) <= limit else line[: limit - 1] + "…")
