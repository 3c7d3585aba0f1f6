"""The AnonChat wire format, defined once: the relay speaks it and the app imports it.

Mailbox proofs live here because both sides must build the same bytes: the relay verifies a
subscribe with them, the app's crypto core signs with them.
"""

from __future__ import annotations

import hashlib

MAILBOX_ID_LABEL = b"anonchat/mailbox/v1\x00"
SUBSCRIBE_LABEL = b"anonchat/subscribe/v1\x00"
MAILBOX_ID_SIZE = 32
CHALLENGE_SIZE = 32
MAILBOX_KEY_SIZE = 32


def mailbox_id(public_key: bytes) -> bytes:
    """A mailbox id: SHA-256 over a label and the raw 32-byte Ed25519 mailbox public key."""
    if len(public_key) != MAILBOX_KEY_SIZE:
        raise ValueError("a mailbox public key is 32 bytes")
    return hashlib.sha256(MAILBOX_ID_LABEL + public_key).digest()


def subscribe_signed_bytes(challenge: bytes, mailbox: bytes) -> bytes:
    """The exact bytes a subscriber signs with the mailbox key: label, challenge, mailbox id."""
    if len(challenge) != CHALLENGE_SIZE or len(mailbox) != MAILBOX_ID_SIZE:
        raise ValueError("challenge and mailbox id are 32 bytes each")
    return SUBSCRIBE_LABEL + challenge + mailbox
