"""The Double Ratchet (Signal's spec, section 3) with a hybrid ML-KEM step in the root chain.

A `Session` is an immutable value: `encrypt` and `decrypt` return a new session and never
change the old one, so a failed decrypt leaves the caller's state (and its stored bytes)
exactly as it was. The sending half of a DH ratchet step is deferred to the first send after
it, which keeps decrypt free of randomness; the key schedule is the spec's.
"""

from __future__ import annotations

from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric.mlkem import MLKEM768PrivateKey, MLKEM768PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from app.crypto.codec import Reader, Writer
from app.crypto.errors import (
    AuthenticationFailed,
    DecryptError,
    DuplicateMessage,
    LocalStateError,
    MalformedMessage,
    TooFarAhead,
    WrongSession,
)
from app.crypto.header import (
    KEM_CT_SIZE,
    KEM_PK_SIZE,
    SIG_SIZE,
    TYPE_INIT,
    Header,
    encode_header,
    frame_type,
    split_init,
    split_message,
)
from app.crypto.identity import verify_ed25519
from app.crypto.padding import pad, unpad
from app.crypto.primitives import (
    DEFAULT_RNG,
    LABEL_KEM_SIG,
    DHError,
    Rng,
    dh,
    kdf_ck,
    kdf_rk,
    open_sealed,
    seal,
    x25519_from_rng,
    x25519_public,
)

SESSION_VERSION = 1
MAX_SKIP = 1000
MAX_STORED_SKIPPED = 2000
KEM_REKEY_STEPS = 16
KEM_SEED_SIZE = 64
OLD_CHAINS_REMEMBERED = 8
# What a DH ratchet step (X25519, the root KDF, maybe ML-KEM) costs, in chain-key steps.
DH_STEP_WORK = 64

Encapsulate = Callable[[bytes], tuple[bytes, bytes]]
"""ML-KEM-768 encapsulation to a raw public key: -> (shared secret, ciphertext)."""


def mlkem_encapsulate(public: bytes) -> tuple[bytes, bytes]:
    return MLKEM768PublicKey.from_public_bytes(public).encapsulate()


def kem_signed_bytes(ad: bytes, kem_pk: bytes) -> bytes:
    """What the identity key signs to vouch for an ML-KEM prekey in this session."""
    return LABEL_KEM_SIG + ad + kem_pk


def _walk(ck: bytes, n: int, until: int) -> tuple[bytes, list[tuple[int, bytes]]]:
    """The chain key at `until`, from the key `ck` at `n`, and the message keys passed."""
    passed = []
    while n < until:
        ck, mk = kdf_ck(ck)
        passed.append((n, mk))
        n += 1
    return ck, passed


class Session:
    """One contact's ratchet state. Treat as immutable; see `encrypt` and `decrypt`."""

    __slots__ = (
        "_ad",
        "_ckr",
        "_cks",
        "_dhr",
        "_dhs",
        "_dhs_pub",
        "_kem_ct",
        "_kem_key",
        "_kem_pub",
        "_kem_seed",
        "_kem_sig",
        "_need_sig",
        "_nr",
        "_ns",
        "_old_dhr",
        "_peer_kem",
        "_peer_prefix",
        "_peer_sign",
        "_pn",
        "_pq",
        "_prefix",
        "_rk",
        "_skipped",
        "_steps",
    )

    _ad: bytes
    _ckr: bytes
    _cks: bytes
    _dhr: bytes
    _dhs: X25519PrivateKey
    _dhs_pub: bytes
    _peer_prefix: bytes
    _kem_ct: bytes
    _kem_key: MLKEM768PrivateKey | None
    _kem_pub: bytes
    _kem_seed: bytes
    _kem_sig: bytes
    _need_sig: bool
    _nr: int
    _ns: int
    _old_dhr: tuple[bytes, ...]
    _peer_kem: bytes
    _peer_sign: bytes
    _pn: int
    _pq: bool
    _prefix: bytes
    _rk: bytes
    _skipped: dict[tuple[bytes, int], bytes]
    _steps: int

    def _clone(self) -> Session:
        """A shallow copy (spelled out: this runs for every message)."""
        new = Session.__new__(Session)
        new._ad = self._ad
        new._ckr = self._ckr
        new._cks = self._cks
        new._dhr = self._dhr
        new._dhs = self._dhs
        new._dhs_pub = self._dhs_pub
        new._kem_ct = self._kem_ct
        new._kem_key = self._kem_key
        new._kem_pub = self._kem_pub
        new._kem_seed = self._kem_seed
        new._kem_sig = self._kem_sig
        new._need_sig = self._need_sig
        new._nr = self._nr
        new._ns = self._ns
        new._old_dhr = self._old_dhr
        new._peer_kem = self._peer_kem
        new._peer_prefix = self._peer_prefix
        new._peer_sign = self._peer_sign
        new._pn = self._pn
        new._pq = self._pq
        new._prefix = self._prefix
        new._rk = self._rk
        new._skipped = self._skipped
        new._steps = self._steps
        return new

    @classmethod
    def _blank(cls, ad: bytes, root: bytes, dhs: X25519PrivateKey, peer_sign: bytes) -> Session:
        new = cls.__new__(cls)
        new._ad, new._rk, new._dhs, new._dhs_pub = ad, root, dhs, x25519_public(dhs)
        new._dhr = new._cks = new._ckr = b""
        new._ns = new._nr = new._pn = new._steps = 0
        new._skipped, new._old_dhr = {}, ()
        new._kem_seed = new._kem_pub = new._kem_sig = new._peer_kem = new._kem_ct = b""
        new._kem_key = None
        new._peer_sign, new._need_sig = peer_sign, False
        new._prefix = new._peer_prefix = b""
        new._pq = False
        return new

    @classmethod
    def initiator(
        cls,
        shared: bytes,
        ad: bytes,
        peer_prekey: bytes,
        peer_sign: bytes,
        prefix: bytes,
        rng: Rng = DEFAULT_RNG,
    ) -> Session:
        """RatchetInitAlice: the peer's card prekey is its first ratchet key.

        `prefix` is the handshake wrapper every frame carries until the peer answers.
        """
        new = cls._blank(ad, shared, x25519_from_rng(rng), peer_sign)
        new._dhr = peer_prekey
        new._rk, new._cks = kdf_rk(shared, dh(new._dhs, peer_prekey))
        new._need_sig, new._prefix = True, prefix
        return new

    @classmethod
    def responder(
        cls,
        shared: bytes,
        ad: bytes,
        prekey: X25519PrivateKey,
        peer_sign: bytes,
        peer_prefix: bytes,
        kem_seed: bytes,
        kem_sig: bytes,
    ) -> Session:
        """RatchetInitBob, plus the signed ML-KEM prekey our first replies will carry."""
        new = cls._blank(ad, shared, prekey, peer_sign)
        new._peer_prefix = peer_prefix
        new._kem_seed = kem_seed
        new._kem_key = MLKEM768PrivateKey.from_seed_bytes(kem_seed)
        new._kem_pub = new._kem_key.public_key().public_bytes_raw()
        new._kem_sig = kem_sig
        return new

    @property
    def ad(self) -> bytes:
        """The 32-byte session binding (both identities and the handshake's ephemeral key)."""
        return self._ad

    @property
    def awaiting_reply(self) -> bool:
        """True while our frames still carry the handshake wrapper (initiator only)."""
        return bool(self._prefix)

    @property
    def skipped_count(self) -> int:
        return len(self._skipped)

    @property
    def post_quantum(self) -> bool:
        """True once an ML-KEM secret has been mixed into our root key."""
        return self._pq

    # -- serialisation ---------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """Versioned bytes of the whole state; layout in docs/crypto.md, "Session state"."""
        w = Writer().u8(SESSION_VERSION).raw(self._ad).raw(self._rk)
        w.raw(self._dhs.private_bytes_raw()).var8(self._dhr).var8(self._cks).var8(self._ckr)
        w.u32(self._ns).u32(self._nr).u32(self._pn).u32(self._steps)
        w.u8(int(self._need_sig) | int(self._pq) << 1).raw(self._peer_sign)
        w.var8(self._kem_seed).var8(self._kem_sig).var32(self._peer_kem).var32(self._kem_ct)
        w.var32(self._prefix).var32(self._peer_prefix)
        w.u8(len(self._old_dhr))
        for old in self._old_dhr:
            w.raw(old)
        w.u32(len(self._skipped))
        for (dhr, n), mk in self._skipped.items():
            w.raw(dhr).u32(n).raw(mk)
        return w.bytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> Session:
        """Inverse of `to_bytes`; `LocalStateError` if the bytes are not a session."""
        r = Reader(data, LocalStateError)
        if r.u8() != SESSION_VERSION:
            raise LocalStateError("unknown session version")
        new = cls.__new__(cls)
        new._ad, new._rk = r.raw(32), r.raw(32)
        new._dhs = X25519PrivateKey.from_private_bytes(r.raw(32))
        new._dhs_pub = x25519_public(new._dhs)
        new._dhr, new._cks, new._ckr = r.var8(), r.var8(), r.var8()
        new._ns, new._nr, new._pn, new._steps = r.u32(), r.u32(), r.u32(), r.u32()
        flags = r.u8()
        new._need_sig, new._pq = bool(flags & 1), bool(flags & 2)
        new._peer_sign = r.raw(32)
        new._kem_seed, new._kem_sig = r.var8(), r.var8()
        new._peer_kem, new._kem_ct = r.var32(), r.var32()
        new._prefix, new._peer_prefix = r.var32(), r.var32()
        new._old_dhr = tuple(r.raw(32) for _ in range(r.u8()))
        count = r.u32()
        if count > MAX_STORED_SKIPPED:
            raise LocalStateError("too many skipped keys")
        new._skipped = {}
        for _ in range(count):
            dhr, n, mk = r.raw(32), r.u32(), r.raw(32)
            new._skipped[(dhr, n)] = mk
        r.end()
        if (
            len(new._dhr) not in (0, 32)
            or len(new._cks) not in (0, 32)
            or len(new._ckr) not in (0, 32)
            or (new._ckr and not new._dhr)
            or len(new._kem_seed) not in (0, KEM_SEED_SIZE)
            or len(new._kem_sig) not in (0, SIG_SIZE)
            or len(new._peer_kem) not in (0, KEM_PK_SIZE)
            or len(new._kem_ct) not in (0, KEM_CT_SIZE)
        ):
            raise LocalStateError("session fields of the wrong size")
        new._kem_pub, new._kem_key = b"", None
        if new._kem_seed:  # any 64 bytes are a seed (its size was checked above)
            new._kem_key = MLKEM768PrivateKey.from_seed_bytes(new._kem_seed)
            new._kem_pub = new._kem_key.public_key().public_bytes_raw()
        return new

    def __repr__(self) -> str:
        return f"Session(ns={self._ns}, nr={self._nr}, skipped={len(self._skipped)})"

    # -- sending ---------------------------------------------------------------------------

    def encrypt(
        self,
        plaintext: bytes,
        ad: bytes = b"",
        *,
        rng: Rng = DEFAULT_RNG,
        encap: Encapsulate | None = None,
    ) -> tuple[Session, bytes]:
        """(new session, frame). `encap` is for tests that pin the ML-KEM randomness."""
        new = self._clone()
        if not new._cks:
            new._start_sending_chain(rng, encap or mlkem_encapsulate)
        new._cks, mk = kdf_ck(new._cks)
        header = encode_header(
            new._dhs_pub, new._pn, new._ns, new._kem_pub, new._kem_sig, new._kem_ct
        )
        new._ns += 1
        body = seal(mk, pad(plaintext), self._ad + len(ad).to_bytes(4, "big") + ad + header)
        return new, new._prefix + header + body

    def _start_sending_chain(self, rng: Rng, encap: Encapsulate) -> None:
        """The deferred second half of the spec's DHRatchet, with the KEM mixed in."""
        self._dhs = x25519_from_rng(rng)
        self._dhs_pub = x25519_public(self._dhs)
        kem_secret = b""
        self._kem_ct = b""
        if self._peer_kem:
            kem_secret, self._kem_ct = encap(self._peer_kem)
            self._peer_kem, self._pq = b"", True
        self._rk, self._cks = kdf_rk(self._rk, dh(self._dhs, self._dhr), kem_secret)
        self._pn, self._ns = self._ns, 0
        self._steps += 1
        if not self._kem_seed and self._steps >= KEM_REKEY_STEPS:
            self._kem_seed = rng(KEM_SEED_SIZE)
            self._kem_key = MLKEM768PrivateKey.from_seed_bytes(self._kem_seed)
            self._kem_pub = self._kem_key.public_key().public_bytes_raw()
            self._steps = 0

    # -- receiving -------------------------------------------------------------------------

    def decrypt(self, frame: bytes, ad: bytes = b"") -> tuple[Session, bytes]:
        """(new session, plaintext), or a `DecryptError` subclass with this session unchanged."""
        if frame_type(frame) == TYPE_INIT:
            init = split_init(frame)
            prefix = frame[: len(frame) - len(init.message)]
            if not self._peer_prefix or prefix != self._peer_prefix:
                raise WrongSession("handshake frame of another session")
            frame = init.message
        header, body = split_message(frame)
        full_ad = self._ad + len(ad).to_bytes(4, "big") + ad + header.raw
        key = (header.dh, header.n)
        mk = self._skipped.get(key)
        if mk is not None:
            plaintext = self._open(mk, body, full_ad)
            new = self._clone()
            new._skipped = dict(self._skipped)
            del new._skipped[key]
            new._prefix = b""
            return new, plaintext
        new = self._clone()
        stepped = header.dh != self._dhr
        if stepped:
            if header.dh in self._old_dhr:
                raise DuplicateMessage("message key already used or expired")
            if self._ckr and header.pn - self._nr > MAX_SKIP:
                raise TooFarAhead("too many skipped messages")
            new._dh_step(header)
        elif not self._ckr:
            # The initiator's first chain: the card prekey names no receiving chain until a
            # DH step with the responder's own ratchet key, so nothing derives from an empty
            # (public) chain key. Such a frame is a forgery, whatever it carries.
            raise AuthenticationFailed("no receiving chain for this ratchet key")
        elif header.n < self._nr:
            raise DuplicateMessage("message key already used or expired")
        if header.n - new._nr > MAX_SKIP:
            raise TooFarAhead("too many skipped messages")
        # Authenticate first, keep later: the keys of the messages this one skips are only
        # stored once it has proved itself, and the previous chain's (up to the header's pn,
        # after a DH step) are only derived then. A forged frame costs one chain walk.
        ck, passed = _walk(new._ckr, new._nr, header.n)
        ck, mk = kdf_ck(ck)
        plaintext = new._open(mk, body, full_ad)
        skipped = dict(self._skipped)
        if stepped and self._ckr and header.pn > self._nr:
            _, old = _walk(self._ckr, self._nr, header.pn)
            skipped.update(((self._dhr, n), k) for n, k in old)
        skipped.update(((new._dhr, n), k) for n, k in passed)
        while len(skipped) > MAX_STORED_SKIPPED:
            del skipped[next(iter(skipped))]
        new._skipped, new._ckr, new._nr = skipped, ck, header.n + 1
        new._prefix = b""
        return new, plaintext

    def work(self, frame: bytes) -> int:
        """About how many chain-key steps `decrypt` would take before it can tell whether
        `frame` is authentic (a DH ratchet step counts as DH_STEP_WORK): 0 for a message
        whose key is kept, 1 for the next one in order. No secret is touched; a frame that
        is not a message at all costs nothing (decrypt refuses it at once)."""
        try:
            if frame_type(frame) == TYPE_INIT:
                frame = split_init(frame).message
            header, _ = split_message(frame)
        except DecryptError:
            return 0
        if (header.dh, header.n) in self._skipped:
            return 0
        if header.dh == self._dhr:
            return max(0, header.n - self._nr) + 1
        return DH_STEP_WORK + header.n + 1

    @staticmethod
    def _open(mk: bytes, body: bytes, full_ad: bytes) -> bytes:
        padded = open_sealed(mk, body, full_ad)
        if padded is None:
            raise AuthenticationFailed("message failed authentication")
        plaintext = unpad(padded)
        if plaintext is None:
            raise MalformedMessage("bad padding")
        return plaintext

    def _dh_step(self, header: Header) -> None:
        """The receiving half of the spec's DHRatchet, taking in the peer's KEM fields."""
        if header.n > MAX_SKIP:
            raise TooFarAhead("too many skipped messages")
        kem_secret = b""
        if header.kem_ct:
            if self._kem_key is None:
                raise AuthenticationFailed("unexpected KEM ciphertext")
            # ML-KEM's implicit rejection: a forged ciphertext (the header fixes its size)
            # decapsulates to a wrong secret, and the message then fails authentication.
            kem_secret = self._kem_key.decapsulate(header.kem_ct)
            self._kem_seed = self._kem_pub = self._kem_sig = b""
            self._kem_key, self._pq = None, True
        if header.kem_pk:
            if self._need_sig:
                signed = kem_signed_bytes(self._ad, header.kem_pk)
                if not verify_ed25519(self._peer_sign, header.kem_sig, signed):
                    raise AuthenticationFailed("ML-KEM prekey not signed by the peer's identity")
                self._need_sig = False
            try:
                MLKEM768PublicKey.from_public_bytes(header.kem_pk)
            except ValueError:
                raise AuthenticationFailed("bad KEM public key") from None
            self._peer_kem = header.kem_pk
        elif self._need_sig:
            raise AuthenticationFailed("first reply lacks the signed ML-KEM prekey")
        if self._dhr:
            self._old_dhr = (*self._old_dhr, self._dhr)[-OLD_CHAINS_REMEMBERED:]
        self._dhr = header.dh
        try:
            self._rk, self._ckr = kdf_rk(self._rk, dh(self._dhs, header.dh), kem_secret)
        except DHError:
            raise AuthenticationFailed("invalid ratchet key") from None
        self._nr = 0
        self._cks = b""
