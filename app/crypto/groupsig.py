"""Signatures on group statements (docs/groups.md): a post or a membership event is signed
by its author's identity key, so any member can pass it on and every member can check it."""

from __future__ import annotations

from app.crypto.identity import Identity, verify_ed25519
from app.crypto.primitives import KEY_SIZE

LABEL = b"anonchat/group/v1\x00"
SIGNATURE_SIZE = 64
IDENTITY_KEYS_SIZE = 2 * KEY_SIZE  # signing key || agreement key, as cards carry them


def sign_statement(identity: Identity, statement: bytes) -> bytes:
    return identity.sign(LABEL + statement)


def statement_is_signed(author_keys: bytes, statement: bytes, signature: bytes) -> bool:
    """Whether `signature` is the author's over the statement; False for anything malformed."""
    if len(author_keys) != IDENTITY_KEYS_SIZE or len(signature) != SIGNATURE_SIZE:
        return False
    return verify_ed25519(author_keys[:KEY_SIZE], signature, LABEL + statement)
