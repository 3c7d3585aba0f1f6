"""Display names: every valid name up to 64 bytes is kept whole; nothing that could pose as
another name or rearrange the text around it gets in."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.crypto.card import Card
from app.crypto.errors import CardError
from app.crypto.identity import Identity
from app.crypto.names import MAX_NAME_BYTES, name_key, name_problem, valid_name

GOOD = [
    "A" * 64,
    "é" * 32,
    "名" * 21,
    "👨\u200d👩\u200d👧" * 3 + "x" * 10,  # joiners: an emoji family sequence, 64 bytes
    "می\u200cخواهم",  # ZWNJ inside Persian
    "Ana\u00a0María",  # a no-break space
    "Bob",
]
BAD = [
    "A" * 65,
    "é" * 33,
    "Bob\u202e",  # right-to-left override
    "\u2066Bob\u2069",  # isolates
    "Bo\u200eb",  # left-to-right mark
    "Bo\u061cb",
    "Bob\x1b[31m",
    "Bob\n",
    "Bo\u200bb",  # zero-width space: invisible
    "Bob\u2028",
    "Bob\ufeff",
    "Bob\ue000",  # private use
    "Bob\U000e0001",  # language tag
    " Bob",
    "Bob ",
    "",
    "   ",
]


@pytest.mark.parametrize("name", GOOD)
def test_valid_names_up_to_64_bytes_pass_and_survive_a_card(name: str) -> None:
    assert len(name.encode()) <= MAX_NAME_BYTES
    assert name_problem(name) is None
    card = Card(Identity.generate().public, bytes(32), "ws://h:1", bytes(32), name)
    assert Card.parse(card.encode()).name == name


@pytest.mark.parametrize("name", BAD)
def test_names_that_could_pose_as_another_are_refused(name: str) -> None:
    assert name_problem(name) is not None
    assert not valid_name(name)


def test_a_card_may_carry_no_name_but_a_profile_needs_one() -> None:
    assert valid_name("", allow_empty=True)
    assert not valid_name("", allow_empty=False)
    assert not valid_name(" ", allow_empty=True)


def test_cards_with_bad_names_are_refused_at_parse() -> None:
    from app.crypto.card import LABEL_CARD_CHECK, sha256

    good = Card(Identity.generate().public, bytes(32), "ws://h:1", bytes(32), "Bob")
    body = good.to_bytes()[:-4]
    for bad in ("Bob\u202e", "Bob\x00"):
        raw = body[: -len("Bob") - 1] + bytes([len(bad.encode())]) + bad.encode()
        raw += sha256(LABEL_CARD_CHECK, raw)[:4]
        with pytest.raises(CardError, match="invalid name"):
            Card.from_bytes(raw)
    with pytest.raises(ValueError, match="display name"):
        Card(good.identity, bytes(32), "ws://h:1", bytes(32), "Bob\u202e")


def test_names_compare_by_what_a_reader_sees() -> None:
    same = ["Bob", "BOB", "bob", "B\u200dob", "Ｂｏｂ", "Bo b".replace(" ", "")]
    assert {name_key(n) for n in same} == {"bob"}
    assert name_key("Ana  María") == name_key("ana maría")
    assert name_key("Bob") != name_key("Rob")


@given(st.text(max_size=40))
def test_the_rule_is_total(name: str) -> None:
    problem = name_problem(name)
    assert problem is None or isinstance(problem, str)
    if problem is None:
        assert 0 < len(name.encode()) <= MAX_NAME_BYTES
        assert name == name.strip()


def test_a_name_of_joiners_alone_is_blank() -> None:
    for name in ("\u200d", "\u200c\u200d\u200c", "\u200d \u200d"):
        assert name_problem(name) == "a name is not blank"
        assert not valid_name(name, allow_empty=True)
