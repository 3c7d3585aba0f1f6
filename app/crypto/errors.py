"""One error family for the crypto core, split the h11 way: the peer's fault versus ours.

Everything a peer (or a mistyped card) can make us reject is a `RemoteProtocolError`, so the
engine needs one `except` to drop bad input; `LocalStateError` means our own stored bytes are
unreadable, which is a bug or corruption rather than an attack.
"""

from __future__ import annotations


class CryptoError(Exception):
    """Base of every error the crypto core raises on purpose."""


class LocalStateError(CryptoError):
    """Our own serialised state (identity, session, invitation) is malformed."""


class RemoteProtocolError(CryptoError):
    """Input from outside (a peer's frame, a scanned card or payload) was rejected."""


class CardError(RemoteProtocolError):
    """A contact card is malformed; `reason` names what is wrong, for the user."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class VerificationError(RemoteProtocolError):
    """A scanned verification payload is not one at all (a mismatch is a False, not this)."""


class HandshakeError(RemoteProtocolError):
    """A handshake frame is malformed, forged or meant for someone else."""


class ReplayedHandshake(HandshakeError):
    """A first message this invitation has already accepted; `replay_id` names its session."""

    def __init__(self, replay_id: bytes) -> None:
        super().__init__("handshake already accepted")
        self.replay_id = replay_id


class DecryptError(RemoteProtocolError):
    """A ratchet message was rejected; the session state is unchanged."""


class MalformedMessage(DecryptError):
    """The frame does not parse as a message of this protocol version."""


class AuthenticationFailed(DecryptError):
    """The AEAD tag did not verify: tampered, or meant for another session."""


class DuplicateMessage(DecryptError):
    """This message's key was already used: a replay or a duplicate delivery."""


class TooFarAhead(DecryptError):
    """The message would need more skipped keys than MAX_SKIP allows."""


class WrongSession(DecryptError):
    """The frame belongs to a different handshake than this session's."""
