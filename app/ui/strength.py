"""How strong a new passphrase looks, and the hint under a passphrase and its repeat: one rule
for every form that sets one (the wizard, a restore, Settings)."""

from __future__ import annotations

import math
import string

MIN_PASSPHRASE = 8


def strength(passphrase: str) -> tuple[int, str]:
    """A rough estimate in bits and a word for it; enough to warn, not to certify."""
    if not passphrase:
        return 0, ""
    pools = [
        (string.ascii_lowercase, 26),
        (string.ascii_uppercase, 26),
        (string.digits, 10),
        (string.punctuation + " ", 33),
    ]
    size = sum(n for chars, n in pools if any(c in chars for c in passphrase))
    if any(ord(c) > 127 for c in passphrase):
        size += 100
    distinct = len(set(passphrase))
    bits = int(min(len(passphrase), distinct * 2) * math.log2(max(size, 2)))
    if len(passphrase) < MIN_PASSPHRASE:
        return bits, f"too short: at least {MIN_PASSPHRASE} characters"
    if bits < 45:
        return bits, "weak: add more words"
    if bits < 70:
        return bits, "fair: a few more words make it strong"
    return bits, "strong"


def passphrase_hint(passphrase: str, repeat: str) -> str:
    """The strength word, and whether the repeat differs once something is typed there."""
    _, word = strength(passphrase)
    if repeat and repeat != passphrase:
        word = f"{word}; the two passphrases differ" if word else "the passphrases differ"
    return word
