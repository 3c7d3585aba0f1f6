"""X3DH from a contact card, with the initiator's introduction sealed and replays refused.

The initiator's first frame carries its ephemeral key, a sealed introduction (identity keys,
display name, the mailbox it listens on) and its first ratchet message. The responder's first
replies carry an ML-KEM-768 prekey signed by its identity key; the initiator's next chain
encapsulates to it, so the root key depends on ML-KEM from the first round trip on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from app.crypto.card import Card
from app.crypto.codec import Reader, Writer
from app.crypto.errors import (
    DecryptError,
    HandshakeError,
    LocalStateError,
    MalformedMessage,
    ReplayedHandshake,
)
from app.crypto.header import init_prefix, split_init
from app.crypto.identity import Identity, PublicIdentity
from app.crypto.mailbox import MailboxKey
from app.crypto.names import valid_name
from app.crypto.primitives import (
    DEFAULT_RNG,
    KEY_SIZE,
    LABEL_AD,
    LABEL_REPLAY,
    LABEL_X3DH,
    LABEL_X3DH_SEAL,
    X3DH_F,
    DHError,
    Rng,
    dh,
    hkdf,
    open_sealed,
    seal,
    sha256,
    x25519_from_rng,
    x25519_public,
)
from app.crypto.ratchet import KEM_SEED_SIZE, Session, kem_signed_bytes

INVITATION_VERSION = 1
INTRO_VERSION = 1
MAX_ACCEPTED = 4096


@dataclass(frozen=True, slots=True)
class PeerInfo:
    """What the initiator told the responder about itself, authenticated by X3DH."""

    identity: PublicIdentity
    name: str
    mailbox: bytes


@dataclass(frozen=True, slots=True)
class Accepted:
    """Result of accepting a first frame: persist all of it in one transaction."""

    invitation: Invitation
    session: Session
    peer: PeerInfo
    plaintext: bytes = field(repr=False)
    replay_id: bytes = b""


def session_ad(initiator: PublicIdentity, responder: PublicIdentity, ephemeral: bytes) -> bytes:
    """AD binding both identities and this handshake (X3DH's Encode(IKA) || Encode(IKB))."""
    return sha256(LABEL_AD, initiator.to_bytes(), responder.to_bytes(), ephemeral)


def replay_id(ephemeral: bytes) -> bytes:
    """The handshake's name: an honest initiator never reuses an ephemeral key."""
    return sha256(LABEL_REPLAY, ephemeral)


def _seal_key(dh2: bytes, dh3: bytes) -> bytes:
    return hkdf(X3DH_F + dh2 + dh3, b"", LABEL_X3DH_SEAL, KEY_SIZE)


def _shared(dh1: bytes, dh2: bytes, dh3: bytes) -> bytes:
    return hkdf(X3DH_F + dh1 + dh2 + dh3, b"", LABEL_X3DH, KEY_SIZE)


def _seal_ad(ephemeral: bytes, card_identity: PublicIdentity, prekey: bytes) -> bytes:
    return ephemeral + card_identity.to_bytes() + prekey


class Invitation:
    """The private side of a published card: its prekey, its mailbox, the handshakes taken."""

    __slots__ = ("_accepted", "_mailbox", "_prekey")

    def __init__(
        self, prekey: X25519PrivateKey, mailbox: MailboxKey, accepted: frozenset[bytes]
    ) -> None:
        self._prekey = prekey
        self._mailbox = mailbox
        self._accepted = accepted

    @classmethod
    def generate(cls, rng: Rng = DEFAULT_RNG) -> Invitation:
        return cls(x25519_from_rng(rng), MailboxKey.generate(rng), frozenset())

    @classmethod
    def for_rejoin(cls, prekey: bytes, mailbox: MailboxKey) -> Invitation:
        """The private side of a rejoin: the prekey we gave one contact over our channel, on
        the mailbox that contact writes to (docs/backup.md). Nothing taken on it yet: it is
        used once, then forgotten."""
        if len(prekey) != KEY_SIZE:
            raise LocalStateError("a rejoin prekey is 32 bytes")
        return cls(X25519PrivateKey.from_private_bytes(prekey), mailbox, frozenset())

    @property
    def mailbox(self) -> MailboxKey:
        return self._mailbox

    @property
    def prekey_public(self) -> bytes:
        return x25519_public(self._prekey)

    def has_accepted(self, rid: bytes) -> bool:
        return rid in self._accepted

    @property
    def used(self) -> bool:
        """Whether any handshake was taken on it (a one-time code takes no second one)."""
        return bool(self._accepted)

    def card(
        self,
        identity: Identity,
        relay_url: str,
        name: str = "",
        *,
        address: bool = False,
        fallbacks: tuple[str, ...] = (),
    ) -> Card:
        """The card to show as QR code and text (a one-time code, or a long-lived address)."""
        return Card(
            identity.public,
            self.prekey_public,
            relay_url,
            self._mailbox.id,
            name,
            address,
            fallbacks,
        )

    def to_bytes(self) -> bytes:
        """version || prekey(32) || mailbox key || count u32 || replay ids (32 each, sorted)."""
        w = Writer().u8(INVITATION_VERSION).raw(self._prekey.private_bytes_raw())
        w.var8(self._mailbox.to_bytes()).u32(len(self._accepted))
        for rid in sorted(self._accepted):
            w.raw(rid)
        return w.bytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> Invitation:
        r = Reader(data, LocalStateError)
        if r.u8() != INVITATION_VERSION:
            raise LocalStateError("unknown invitation version")
        prekey = X25519PrivateKey.from_private_bytes(r.raw(KEY_SIZE))
        mailbox = MailboxKey.from_bytes(r.var8())
        count = r.u32()
        if count > MAX_ACCEPTED:
            raise LocalStateError("too many accepted handshakes")
        accepted = frozenset(r.raw(KEY_SIZE) for _ in range(count))
        r.end()
        return cls(prekey, mailbox, accepted)

    def __repr__(self) -> str:
        return f"Invitation(accepted={len(self._accepted)})"

    def accept(self, identity: Identity, frame: bytes, *, rng: Rng = DEFAULT_RNG) -> Accepted:
        """Create the contact's session from a first frame received on this card's mailbox.

        Raises `ReplayedHandshake` (with its `replay_id`) for a handshake already taken, and
        `HandshakeError` for anything malformed or forged; the invitation never changes.
        """
        try:
            init = split_init(frame)
        except MalformedMessage:
            raise HandshakeError("not a handshake frame") from None
        rid = replay_id(init.ephemeral)
        if rid in self._accepted:
            raise ReplayedHandshake(rid)
        if len(self._accepted) >= MAX_ACCEPTED:
            raise HandshakeError("invitation exhausted")
        prekey_pub = self.prekey_public
        try:
            dh2 = dh(identity.dh_key, init.ephemeral)
            dh3 = dh(self._prekey, init.ephemeral)
        except DHError:
            raise HandshakeError("invalid ephemeral key") from None
        intro = open_sealed(
            _seal_key(dh2, dh3), init.sealed, _seal_ad(init.ephemeral, identity.public, prekey_pub)
        )
        if intro is None:
            raise HandshakeError("introduction failed authentication")
        peer = _parse_intro(intro)
        try:
            dh1 = dh(self._prekey, peer.identity.dh)
        except DHError:
            raise HandshakeError("invalid identity key") from None
        ad = session_ad(peer.identity, identity.public, init.ephemeral)
        kem_seed = rng(KEM_SEED_SIZE)
        kem_pub = MLKEM768PrivateKey.from_seed_bytes(kem_seed).public_key().public_bytes_raw()
        session = Session.responder(
            _shared(dh1, dh2, dh3),
            ad,
            self._prekey,
            peer.identity.sign,
            frame[: len(frame) - len(init.message)],
            kem_seed,
            identity.sign(kem_signed_bytes(ad, kem_pub)),
        )
        try:
            session, plaintext = session.decrypt(frame)
        except DecryptError:
            raise HandshakeError("first message failed authentication") from None
        invitation = Invitation(self._prekey, self._mailbox, self._accepted | {rid})
        return Accepted(invitation, session, peer, plaintext, rid)


def rejoin_prekey(rng: Rng = DEFAULT_RNG) -> tuple[bytes, bytes]:
    """A fresh rejoin prekey for one contact: (private, public), 32 bytes each. The public
    half goes to the contact over the ratchet; with it and our identity, a profile of theirs
    restored from a backup opens a new session with us (`Invitation.for_rejoin`)."""
    key = x25519_from_rng(rng)
    return key.private_bytes_raw(), x25519_public(key)


def _intro_bytes(identity: PublicIdentity, name: str, mailbox: bytes) -> bytes:
    return (
        Writer()
        .u8(INTRO_VERSION)
        .raw(identity.sign)
        .raw(identity.dh)
        .raw(mailbox)
        .var8(name.encode("utf-8"))
        .bytes()
    )


def _parse_intro(data: bytes) -> PeerInfo:
    r = Reader(data, HandshakeError)
    if r.u8() != INTRO_VERSION:
        raise HandshakeError("unknown introduction version")
    sign, dh_pub, mailbox, name_bytes = r.raw(32), r.raw(32), r.raw(32), r.var8()
    r.end()
    try:
        name = name_bytes.decode("utf-8")
    except UnicodeDecodeError:
        raise HandshakeError("invalid name") from None
    if not valid_name(name, allow_empty=True):
        raise HandshakeError("invalid name")
    return PeerInfo(PublicIdentity(sign, dh_pub), name, mailbox)


def initiate(
    identity: Identity,
    card: Card,
    *,
    name: str,
    reply_mailbox: bytes,
    rng: Rng = DEFAULT_RNG,
) -> Session:
    """Start a contact from their card. Every frame the session encrypts carries the
    handshake wrapper until the first reply decrypts; send them to `card.mailbox`."""
    if len(reply_mailbox) != KEY_SIZE or not valid_name(name, allow_empty=True):
        raise ValueError("reply mailbox is 32 bytes and the name a valid display name")
    ephemeral = x25519_from_rng(rng)
    ek_pub = x25519_public(ephemeral)
    try:
        dh1 = dh(identity.dh_key, card.prekey)
        dh2 = dh(ephemeral, card.identity.dh)
        dh3 = dh(ephemeral, card.prekey)
    except DHError:
        raise HandshakeError("card carries an invalid key") from None
    sealed = seal(
        _seal_key(dh2, dh3),
        _intro_bytes(identity.public, name, reply_mailbox),
        _seal_ad(ek_pub, card.identity, card.prekey),
    )
    ad = session_ad(identity.public, card.identity, ek_pub)
    prefix = init_prefix(ek_pub, sealed)
    return Session.initiator(
        _shared(dh1, dh2, dh3), ad, card.prekey, card.identity.sign, prefix, rng
    )
