"""The error family of docs/crypto.md, "Errors": `CryptoError` at the root, everything input
from outside can cause under `RemoteProtocolError`, our own bad bytes `LocalStateError`; the
messages say what is wrong and carry nothing else."""

from __future__ import annotations

import pytest

from app.crypto.errors import (
    AuthenticationFailed,
    CardError,
    CryptoError,
    DecryptError,
    DuplicateMessage,
    HandshakeError,
    LocalStateError,
    MalformedMessage,
    RemoteProtocolError,
    ReplayedHandshake,
    TooFarAhead,
    VerificationError,
    WrongSession,
)

REMOTE = [
    CardError,
    VerificationError,
    HandshakeError,
    ReplayedHandshake,
    DecryptError,
    MalformedMessage,
    AuthenticationFailed,
    DuplicateMessage,
    TooFarAhead,
    WrongSession,
]


@pytest.mark.parametrize("cls", REMOTE, ids=lambda cls: cls.__name__)
def test_input_from_outside_is_a_remote_protocol_error(cls: type[Exception]) -> None:
    assert issubclass(cls, RemoteProtocolError)
    assert issubclass(cls, CryptoError)
    assert not issubclass(cls, LocalStateError)


@pytest.mark.parametrize(
    "cls", [MalformedMessage, AuthenticationFailed, DuplicateMessage, TooFarAhead, WrongSession]
)
def test_every_rejected_frame_is_a_decrypt_error(cls: type[Exception]) -> None:
    assert issubclass(cls, DecryptError)


def test_local_state_errors_are_ours_not_the_peers() -> None:
    assert issubclass(LocalStateError, CryptoError)
    assert not issubclass(LocalStateError, RemoteProtocolError)


def test_a_card_error_is_its_reason() -> None:
    error = CardError("checksum mismatch")
    assert error.reason == "checksum mismatch"
    assert str(error) == "checksum mismatch"
    assert error.args == ("checksum mismatch",)


def test_a_replayed_handshake_names_its_session_but_not_in_its_message() -> None:
    replay = bytes(range(32))
    error = ReplayedHandshake(replay)
    assert error.replay_id == replay
    assert str(error) == "handshake already accepted"
    assert isinstance(error, HandshakeError)
