"""Display names: one rule for every place a name enters (cards, introductions, welcomes, the
profile, renames), and the key two names are compared by.

A name is chosen by whoever shows it, so it must not be able to pose as another or rearrange
what is drawn around it: bidi overrides and isolates (U+202A-U+202E, U+2066-U+2069, U+200E,
U+200F, U+061C), control characters, line and paragraph separators, invisible format
characters, private-use, surrogate and unassigned code points are refused. Joiners (U+200C
and U+200D) stay allowed because scripts and emoji sequences need them; they are ignored when
names are compared.
"""

from __future__ import annotations

import unicodedata

MAX_NAME_BYTES = 64
_JOINERS = frozenset("\u200c\u200d")
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def name_problem(name: str, *, allow_empty: bool = False) -> str | None:
    """Why `name` cannot be a display name, or None when it can."""
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        return "a name is text"
    if size > MAX_NAME_BYTES:
        return f"a name is at most {MAX_NAME_BYTES} bytes"
    if all(c.isspace() or c in _JOINERS for c in name):  # nothing a reader would see
        return None if allow_empty and not name else "a name is not blank"
    if name != name.strip():
        return "a name does not start or end with spaces"
    for char in name:
        if char in _JOINERS:
            continue
        if unicodedata.category(char) in _REFUSED_CATEGORIES:
            return "a name holds no control, direction or invisible characters"
    return None


def valid_name(name: str, *, allow_empty: bool = False) -> bool:
    return name_problem(name, allow_empty=allow_empty) is None


def name_key(name: str) -> str:
    """What two names are compared by: compatibility-folded, case-folded, joiners and runs of
    white space ignored, so "Bob", "BOB", "Bob" with a joiner inside and "Ｂｏｂ" are alike."""
    folded = unicodedata.normalize("NFKC", name).casefold()
    folded = "".join(c for c in folded if c not in _JOINERS)
    return " ".join(folded.split())
