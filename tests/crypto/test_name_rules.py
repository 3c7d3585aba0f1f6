"""The display-name rule's exact answers: the byte limit counts UTF-8 bytes (64 fit, 65 do
not), each refusal says why, and names compare with joiners dropped and white space runs
collapsed."""

from __future__ import annotations

import pytest

from app.crypto.names import MAX_NAME_BYTES, name_key, name_problem, valid_name


def test_the_limit_is_64_utf8_bytes() -> None:
    assert MAX_NAME_BYTES == 64
    assert name_problem("a" * 64) is None
    assert name_problem("a" * 62 + "é") is None  # 64 bytes, 63 characters
    assert name_problem("a" * 63 + "é") == "a name is at most 64 bytes"  # 65 bytes
    assert name_problem("a" * 65) == "a name is at most 64 bytes"


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("Bo\ud800b", "a name is text"),  # a lone surrogate cannot be encoded
        ("", "a name is not blank"),
        ("  ", "a name is not blank"),
        ("\u3000", "a name is not blank"),
        (" Bob", "a name does not start or end with spaces"),
        ("Bob\u00a0", "a name does not start or end with spaces"),
        ("Bo\u202eb", "a name holds no control, direction or invisible characters"),
        ("Bo\x00b", "a name holds no control, direction or invisible characters"),
    ],
)
def test_each_refusal_says_why(name: str, problem: str) -> None:
    assert name_problem(name) == problem
    assert not valid_name(name)


def test_empty_is_allowed_only_when_asked_and_blank_never() -> None:
    assert name_problem("", allow_empty=True) is None
    assert valid_name("", allow_empty=True)
    assert name_problem("") == "a name is not blank"
    assert not valid_name("")
    assert name_problem(" ", allow_empty=True) == "a name is not blank"
    assert not valid_name(" ", allow_empty=True)


def test_joiners_are_allowed_anywhere_inside() -> None:
    assert valid_name("a\u200db")
    assert valid_name("a\u200cb")


def test_name_key_drops_joiners_and_collapses_white_space() -> None:
    assert name_key("B\u200co\u200db") == "bob"
    assert name_key("  Ana \t María  ") == "ana maría"
