"""Safety numbers and the verification QR payload, computed here straight from docs/crypto.md:
30 digits per side from the first 30 bytes of the fingerprint (six 5-byte big-endian numbers
mod 100000), the halves sorted, shown as 12 groups of 5; the payload is ``anonchat-verify:`` +
unpadded base32 of ``version=1 || h_mine[0:32] || h_yours[0:32]``, and anything that is not
one raises `VerificationError` with what is wrong."""

from __future__ import annotations

import base64

import pytest

from app.crypto.errors import VerificationError
from app.crypto.identity import PublicIdentity
from app.crypto.safety import (
    check_verification,
    fingerprint,
    format_safety_number,
    safety_number,
    verification_payload,
)

ALICE = PublicIdentity(bytes(range(32)), bytes(range(32, 64)))
BOB = PublicIdentity(bytes(range(64, 96)), bytes(range(96, 128)))


def _side(identity: PublicIdentity) -> str:
    fp = fingerprint(identity)
    return "".join(
        str(int.from_bytes(fp[5 * k : 5 * k + 5], "big") % 100000).zfill(5) for k in range(6)
    )


def _payload(record: bytes) -> str:
    return "anonchat-verify:" + base64.b32encode(record).decode().rstrip("=")


def test_fingerprint_is_64_bytes_of_sha512() -> None:
    assert len(fingerprint(ALICE)) == 64
    assert fingerprint(ALICE) != fingerprint(BOB)


def test_the_safety_number_is_both_sides_sorted() -> None:
    alice, bob = _side(ALICE), _side(BOB)
    assert len(alice) == len(bob) == 30
    number = safety_number(ALICE, BOB)
    assert number == min(alice, bob) + max(alice, bob)
    assert safety_number(BOB, ALICE) == number
    assert safety_number(ALICE, ALICE) == alice + alice


def test_the_display_form_is_12_groups_of_5() -> None:
    number = "".join(str(i % 10) for i in range(60))
    assert format_safety_number(number) == (
        "01234 56789 01234 56789 01234 56789 01234 56789 01234 56789 01234 56789"
    )
    assert format_safety_number("1234567") == "12345 67"


def test_the_payload_is_version_1_then_my_half_then_yours() -> None:
    record = b"\x01" + fingerprint(ALICE)[:32] + fingerprint(BOB)[:32]
    assert verification_payload(ALICE, BOB) == _payload(record)
    # Bob scans what Alice shows: her half first is the key he holds for her.
    assert check_verification(_payload(record), BOB, ALICE) is True
    assert check_verification(_payload(record).lower(), BOB, ALICE) is True
    assert check_verification(" " + _payload(record) + "\n", BOB, ALICE) is True
    swapped = b"\x01" + fingerprint(BOB)[:32] + fingerprint(ALICE)[:32]
    assert check_verification(_payload(swapped), BOB, ALICE) is False


def test_a_mismatch_in_either_half_is_false_not_an_error() -> None:
    mine, yours = fingerprint(ALICE)[:32], fingerprint(BOB)[:32]
    flipped_mine = bytes([mine[0] ^ 1]) + mine[1:]
    flipped_yours = yours[:-1] + bytes([yours[-1] ^ 1])
    assert check_verification(_payload(b"\x01" + flipped_mine + yours), BOB, ALICE) is False
    assert check_verification(_payload(b"\x01" + mine + flipped_yours), BOB, ALICE) is False


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ("", "not a verification code"),
        (None, "not a verification code"),
        ("anonchat:" + "A" * 104, "not a verification code"),
        ("anonchat-verif", "not a verification code"),
        ("anonchat-verify:18", "invalid characters"),
        ("anonchat-verify:AAA", "invalid characters"),  # no byte count gives 3 characters
        ("anonchat-verify:AF", "not a canonical encoding"),  # unused trailing bits set
        ("anonchat-verify:AE======", "not a canonical encoding"),
        ("anonchat-verify:", "truncated"),
        ("anonchat-verify:AE", "truncated"),
    ],
)
def test_what_is_not_a_payload_says_why(payload: str | None, message: str) -> None:
    with pytest.raises(VerificationError, match=f"^{message}$"):
        check_verification(payload, BOB, ALICE)  # type: ignore[arg-type]


@pytest.mark.parametrize("version", [0, 2, 255])
def test_another_version_is_refused(version: int) -> None:
    record = bytes([version]) + fingerprint(ALICE)[:32] + fingerprint(BOB)[:32]
    with pytest.raises(VerificationError, match=r"^unknown verification version$"):
        check_verification(_payload(record), BOB, ALICE)


def test_short_and_long_records_are_refused() -> None:
    record = b"\x01" + fingerprint(ALICE)[:32] + fingerprint(BOB)[:32]
    with pytest.raises(VerificationError, match=r"^truncated$"):
        check_verification(_payload(record[:-1]), BOB, ALICE)
    with pytest.raises(VerificationError, match=r"^trailing bytes$"):
        check_verification(_payload(record + b"\x00"), BOB, ALICE)
