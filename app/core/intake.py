"""How much of what arrives the engine takes in: the bounds that keep a flood from costing more
than a trickle. Pure bookkeeping on a clock; `Inbound` applies it.

- **Frames waiting** are at most INTAKE_FRAMES and INTAKE_BYTES: past that the relay
  connections are not read until there is room (the relay's own slow-consumer rule then
  deals with whoever pushes).
- **Failed frames** (forged, malformed, replayed) are budgeted per mailbox, FAILED_RATE a
  second after a burst of FAILED_BURST: a mailbox over its budget has its frames dropped
  unread, except those whose check costs next to nothing (a message in order, or one whose
  key is kept) and, STEP_RATE a second, one that opens a new ratchet chain at its start (a
  reply), so a real message still gets through a flood of forgeries.
- **Copies of messages we have** (the contact's resend when our receipt was lost, or a
  relay's replay) are looked up and acknowledged again REPLAY_RATE a second per mailbox after
  a burst of REPLAY_BURST; past that they are dropped, to be acknowledged on a later resend.
- **Messages taken in** are budgeted per contact in bytes, MESSAGE_RATE a second after a burst
  of MESSAGE_BURST, each message costing its size but at least MESSAGE_COST (so a flood of
  small messages is paced by count, one of large ones by bytes: 10 MB, then 1 MB a second is
  some 7,000 short messages at once, or 570 of 16 KB). A contact over its budget is throttled:
  until the budget is whole again only the next message in order is taken (when it can be
  paid for), so nothing is skipped and what is left out is simply sent again later by the
  contact's outbox.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.crypto.ratchet import DH_STEP_WORK

INTAKE_FRAMES = 256
INTAKE_BYTES = 8 << 20
FAILED_RATE = 10.0
FAILED_BURST = 40
CHEAP_WORK = 2  # a frame whose check walks at most this many chain steps is always tried
STEP_RATE = 20.0  # ...and this many a second that open a new chain within CHEAP_WORK steps
REPLAY_RATE = 200.0
REPLAY_BURST = 2000
MESSAGE_RATE = 1_000_000.0  # bytes a second
MESSAGE_BURST = 10_000_000
MESSAGE_COST = 1024  # what the smallest message costs
IN_ORDER_WORK = 1  # Session.work of the next message in order (0: one whose key is kept)
_SLACK = 1e-9  # float slack when a token is due exactly now


@dataclass(slots=True)
class Bucket:
    """A token bucket: `rate` tokens a second up to `burst`, full at first."""

    rate: float
    burst: float
    tokens: float
    stamp: float

    @classmethod
    def full(cls, rate: float, burst: float, now: float) -> Bucket:
        return cls(rate, burst, burst, now)

    def _refill(self, now: float) -> None:
        if now > self.stamp:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now

    def has(self, now: float, cost: float = 1.0) -> bool:
        self._refill(now)
        return self.tokens >= cost - _SLACK

    def take(self, now: float, cost: float = 1.0) -> bool:
        """Spend `cost` tokens if there are as many."""
        if not self.has(now, cost):
            return False
        self.tokens = max(0.0, self.tokens - cost)
        return True

    def whole(self, now: float) -> bool:
        self._refill(now)
        return self.tokens >= self.burst - _SLACK


class Budgets:
    """The failed-frame budget of each of our mailboxes and the message budget of each
    contact. Entries exist only for mailboxes and contacts that spent something."""

    def __init__(self) -> None:
        self._failed: dict[bytes, Bucket] = {}
        self._steps: dict[bytes, Bucket] = {}
        self._replays: dict[bytes, Bucket] = {}
        self._messages: dict[int, Bucket] = {}
        self._throttled: set[int] = set()

    def worth_trying(
        self, mailbox: bytes, work: int | None, now: float, *, spend: bool = True
    ) -> bool:
        """Whether a frame to `mailbox` gets checked at all; `work` is what checking it costs
        (Session.work), None when unknown (a handshake, or no session at hand). Without
        `spend` it only asks (a frame queued now is asked again when its turn comes)."""
        bucket = self._failed.get(mailbox)
        if bucket is None or bucket.has(now):
            return True
        if work is None or work > DH_STEP_WORK + CHEAP_WORK:
            return False
        if work <= CHEAP_WORK:
            return True
        steps = self._steps.get(mailbox)
        if steps is None:
            steps = self._steps[mailbox] = Bucket.full(STEP_RATE, STEP_RATE, now)
        return steps.take(now) if spend else steps.has(now)

    def failed(self, mailbox: bytes, now: float) -> bool:
        """A frame to `mailbox` failed its check; True when that used up the budget."""
        bucket = self._failed.get(mailbox)
        if bucket is None:
            bucket = self._failed[mailbox] = Bucket.full(FAILED_RATE, FAILED_BURST, now)
        bucket.take(now)
        return not bucket.has(now)

    def recheck(self, mailbox: bytes, now: float) -> bool:
        """Whether a copy of a message we have, sent to `mailbox`, is looked up (and our
        receipt for it sent again) now."""
        bucket = self._replays.get(mailbox)
        if bucket is None:
            bucket = self._replays[mailbox] = Bucket.full(REPLAY_RATE, REPLAY_BURST, now)
        return bucket.take(now)

    def take_message(self, contact_id: int, work: int, size: int, now: float) -> bool:
        """Whether an authentic message of `size` bytes from `contact_id` is taken in now;
        `work` is its Session.work (how far out of order it is)."""
        bucket = self._messages.get(contact_id)
        if bucket is None:
            bucket = self._messages[contact_id] = Bucket.full(MESSAGE_RATE, MESSAGE_BURST, now)
        if contact_id in self._throttled:
            if bucket.whole(now):
                self._throttled.discard(contact_id)
            elif work > IN_ORDER_WORK:
                return False  # taking it would skip what was left out
        if bucket.take(now, max(size, MESSAGE_COST)):
            return True
        self._throttled.add(contact_id)
        return False

    def throttled(self, contact_id: int) -> bool:
        return contact_id in self._throttled
