from __future__ import annotations

import base64

import pytest

from app.crypto.errors import VerificationError
from app.crypto.identity import Identity
from app.crypto.safety import (
    VERIFY_PREFIX,
    check_verification,
    fingerprint,
    format_safety_number,
    safety_number,
    verification_payload,
)

from .conftest import DetRng


def _ids() -> tuple[Identity, Identity, Identity]:
    rng = DetRng(b"safety")
    return Identity.generate(rng), Identity.generate(rng), Identity.generate(rng)


def test_same_number_on_both_sides() -> None:
    a, b, _ = _ids()
    number = safety_number(a.public, b.public)
    assert number == safety_number(b.public, a.public)
    assert len(number) == 60
    assert number.isdigit()
    groups = format_safety_number(number).split(" ")
    assert len(groups) == 12
    assert all(len(g) == 5 for g in groups)


def test_number_commits_to_both_keys() -> None:
    a, b, c = _ids()
    from app.crypto.identity import PublicIdentity

    base = safety_number(a.public, b.public)
    assert safety_number(a.public, PublicIdentity(b.public.sign, c.public.dh)) != base
    assert safety_number(a.public, PublicIdentity(c.public.sign, b.public.dh)) != base


def test_fingerprint_is_signals_iteration() -> None:
    import hashlib

    a, _, _ = _ids()
    key = a.public.sign + a.public.dh
    digest = hashlib.sha512(b"\x00\x00" + key).digest()
    for _ in range(5200):
        digest = hashlib.sha512(digest + key).digest()
    assert fingerprint(a.public) == digest


def test_verification_payload_checks_out_only_for_the_same_keys() -> None:
    a, b, c = _ids()
    shown_by_b = verification_payload(b.public, a.public)
    assert shown_by_b.startswith(VERIFY_PREFIX)
    assert check_verification(shown_by_b, a.public, b.public) is True
    assert check_verification(shown_by_b, a.public, c.public) is False
    assert check_verification(shown_by_b, c.public, b.public) is False
    # Scanning your own code is not a verification.
    assert check_verification(verification_payload(a.public, b.public), a.public, b.public) is False


@pytest.mark.parametrize(
    "payload",
    ["", "anonchat:AAAA", VERIFY_PREFIX + "!!", VERIFY_PREFIX + "AE", VERIFY_PREFIX + "AAAA"],
)
def test_malformed_payloads_raise_one_error(payload: str) -> None:
    a, b, _ = _ids()
    with pytest.raises(VerificationError):
        check_verification(payload, a.public, b.public)


def test_unknown_version_is_rejected() -> None:
    a, b, _ = _ids()
    payload = VERIFY_PREFIX + base64.b32encode(b"\x02" + bytes(64)).decode().rstrip("=")
    with pytest.raises(VerificationError):
        check_verification(payload, a.public, b.public)
