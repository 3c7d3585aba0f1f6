"""Who is in a group and who may change it: the membership events applied one at a time,
by the rules of docs/groups.md ("Statements", "Ordering"). Pure: no store, no clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from app.core.statements import Event, Op
from app.domain.groups import MAX_GROUP_MEMBERS


class Verdict(Enum):
    APPLIED = "applied"
    STALE = "stale"  # its author's number was used already
    EARLY = "early"  # an earlier event of its author's is missing: it waits
    REFUSED = "refused"  # not allowed (see `Roster.apply`'s reason)


@dataclass(slots=True)
class Seat:
    name: str
    admin: bool


@dataclass(slots=True)
class Roster:
    """A group's membership as the events applied so far make it."""

    name: str = ""
    members: dict[bytes, Seat] = field(default_factory=dict)  # current ones
    seqs: dict[bytes, int] = field(default_factory=dict)  # last event number per author

    @property
    def admins(self) -> list[bytes]:
        return [k for k, s in self.members.items() if s.admin]

    def check(self, event: Event) -> tuple[Verdict, str]:
        """Whether `event` applies now, and if not why."""
        last = self.seqs.get(event.author, 0)
        if event.seq <= last:
            return Verdict.STALE, "a membership change that is stale (its number was used)"
        if event.seq > last + 1:
            return Verdict.EARLY, "a membership change ahead of its author's earlier ones"
        if event.op is Op.CREATE:
            if self.members or self.seqs:
                return Verdict.REFUSED, "a group created twice"
            return Verdict.APPLIED, ""
        author = self.members.get(event.author)  # none before the group was created
        if event.op is Op.LEAVE:
            if author is None:
                return Verdict.REFUSED, "someone who is not a member left"
            if author.admin and len(self.admins) == 1 and len(self.members) > 1:
                return Verdict.REFUSED, "the last admin left without naming another"
            return Verdict.APPLIED, ""
        if author is None or not author.admin:
            return Verdict.REFUSED, "a membership change not signed by an admin"
        seat = self.members.get(event.member)
        if event.op is Op.ADD:
            if seat is not None:
                return Verdict.REFUSED, "an addition of someone who is a member"
            if len(self.members) >= MAX_GROUP_MEMBERS:
                return Verdict.REFUSED, f"an addition past {MAX_GROUP_MEMBERS} members"
        elif event.op is Op.REMOVE:
            if seat is None:
                return Verdict.REFUSED, "a removal of someone who is not a member"
            if seat.admin and len(self.admins) == 1:
                return Verdict.REFUSED, "a removal of the last admin"
        elif event.op is Op.PROMOTE and (seat is None or seat.admin):
            return Verdict.REFUSED, "a promotion of someone who is not a plain member"
        return Verdict.APPLIED, ""

    def apply(self, event: Event) -> tuple[Verdict, str]:
        """Apply `event` if it may be; the verdict and, if not applied, why."""
        verdict, why = self.check(event)
        if verdict is not Verdict.APPLIED:
            return verdict, why
        self.seqs[event.author] = event.seq
        match event.op:
            case Op.CREATE:
                self.name = event.name
                self.members[event.author] = Seat(event.by, True)
            case Op.ADD:
                self.members[event.member] = Seat(event.name, False)
            case Op.REMOVE | Op.LEAVE:
                self.members.pop(event.member, None)
            case Op.PROMOTE:
                self.members[event.member].admin = True
            case Op.RENAME:
                self.name = event.name
        return Verdict.APPLIED, ""
