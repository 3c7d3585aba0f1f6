"""Who may change a group (app/core/roster.py, docs/groups.md "Ordering"): a hypothesis
search over every sequence of signed changes by admins, members and strangers, against the
rules; and each rule at its edge."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as s

from app.core import statements as st
from app.core.roster import Roster, Verdict
from app.crypto.identity import Identity
from app.domain.groups import MAX_GROUP_MEMBERS

GID = b"g" * 16
PEOPLE = [Identity.from_seeds(bytes([i]) * 32, bytes([100 + i]) * 32) for i in range(6)]
KEYS = [p.public.to_bytes() for p in PEOPLE]


def created() -> tuple[Roster, dict[bytes, int]]:
    roster = Roster()
    seqs = {KEYS[0]: 1}
    verdict, _ = roster.apply(st.make_event(PEOPLE[0], GID, 1, 0, st.Op.CREATE, name="G", by="P0"))
    assert verdict is Verdict.APPLIED
    return roster, seqs


def event(who: int, seq: int, op: st.Op, member: int = 0, name: str = "N") -> st.Event:
    target = KEYS[who] if op is st.Op.LEAVE else KEYS[member]
    return st.make_event(PEOPLE[who], GID, seq, 0, op, target, name, by="P")


def test_the_creator_is_the_first_admin_and_member() -> None:
    roster, _ = created()
    assert list(roster.members) == [KEYS[0]]
    assert roster.admins == [KEYS[0]]
    assert roster.members[KEYS[0]].name == "P0"
    assert roster.name == "G"


def test_each_rule_at_its_edge() -> None:
    roster, _ = created()
    assert roster.apply(event(0, 2, st.Op.ADD, 1))[0] is Verdict.APPLIED
    # Numbers: a used one is stale, a skipped one waits.
    assert roster.apply(event(0, 2, st.Op.ADD, 2))[0] is Verdict.STALE
    assert roster.apply(event(0, 4, st.Op.ADD, 2))[0] is Verdict.EARLY
    # A plain member changes nothing but may leave.
    assert roster.apply(event(1, 1, st.Op.ADD, 2))[0] is Verdict.REFUSED
    assert roster.apply(event(1, 1, st.Op.RENAME))[0] is Verdict.REFUSED
    # A stranger cannot leave, nor be removed or promoted.
    assert roster.apply(event(3, 1, st.Op.LEAVE))[0] is Verdict.REFUSED
    assert roster.apply(event(0, 3, st.Op.REMOVE, 3))[0] is Verdict.REFUSED
    assert roster.apply(event(0, 3, st.Op.PROMOTE, 3))[0] is Verdict.REFUSED
    assert roster.apply(event(0, 3, st.Op.ADD, 1))[0] is Verdict.REFUSED  # a member already
    # The last admin can neither be removed nor leave while others stay.
    assert roster.apply(event(0, 3, st.Op.LEAVE))[0] is Verdict.REFUSED
    assert roster.apply(event(0, 3, st.Op.PROMOTE, 1))[0] is Verdict.APPLIED
    assert roster.apply(event(0, 4, st.Op.PROMOTE, 1))[0] is Verdict.REFUSED  # admin already
    assert roster.apply(event(1, 1, st.Op.REMOVE, 0))[0] is Verdict.APPLIED
    assert roster.apply(event(1, 2, st.Op.REMOVE, 1))[0] is Verdict.REFUSED  # the last admin
    assert roster.apply(event(1, 2, st.Op.RENAME, name="H"))[0] is Verdict.APPLIED
    assert roster.name == "H"
    assert roster.apply(event(1, 3, st.Op.LEAVE))[0] is Verdict.APPLIED  # alone: may go
    assert roster.members == {}
    assert roster.apply(event(0, 4, st.Op.CREATE))[0] is Verdict.REFUSED  # created once


def test_nothing_before_create_and_create_only_first() -> None:
    roster = Roster()
    assert roster.apply(event(0, 1, st.Op.ADD, 1))[0] is Verdict.REFUSED
    assert roster.members == {}
    roster, _ = created()
    other = st.make_event(PEOPLE[1], GID, 1, 0, st.Op.CREATE, name="X", by="P1")
    assert roster.apply(other)[0] is Verdict.REFUSED


def test_a_group_holds_at_most_its_limit() -> None:
    roster, _ = created()
    for i in range(2, MAX_GROUP_MEMBERS + 1):
        extra = Identity.from_seeds(i.to_bytes(32, "big"), b"x" * 32).public.to_bytes()
        add = st.make_event(PEOPLE[0], GID, i, 0, st.Op.ADD, extra, "M")
        assert roster.apply(add)[0] is Verdict.APPLIED
    assert len(roster.members) == MAX_GROUP_MEMBERS
    verdict, why = roster.apply(event(0, MAX_GROUP_MEMBERS + 1, st.Op.ADD, 1))
    assert verdict is Verdict.REFUSED
    assert str(MAX_GROUP_MEMBERS) in why


@settings(max_examples=150, deadline=None)
@given(
    s.lists(
        s.tuples(
            s.integers(0, 5),
            s.sampled_from(list(st.Op)),
            s.integers(0, 5),
            s.integers(-1, 2),
        ),
        max_size=40,
    )
)
def test_whatever_anyone_signs_the_rules_hold(steps: list[tuple[int, st.Op, int, int]]) -> None:
    roster, seqs = created()
    for who, op, member, skew in steps:
        author = KEYS[who]
        seq = seqs.get(author, 0) + 1 + skew
        if seq < 1:
            continue
        before_admins = set(roster.admins)
        before_members = dict(roster.members)
        verdict, _ = roster.apply(event(who, seq, op, member))
        if verdict is not Verdict.APPLIED:
            assert roster.members == before_members  # refused, stale or early: no change
            continue
        seqs[author] = seq
        assert skew == 0  # only the next number of its author applies
        if op is st.Op.LEAVE:
            assert author in before_members
        else:
            assert author in before_admins  # every other change is an admin's
        assert len(roster.members) <= MAX_GROUP_MEMBERS
        if roster.members:
            assert roster.admins  # never a group without an admin
        assert set(roster.admins) <= set(roster.members)
        if op in (st.Op.REMOVE, st.Op.LEAVE):
            assert (KEYS[who] if op is st.Op.LEAVE else KEYS[member]) not in roster.members
        if op is st.Op.ADD:
            assert list(roster.members)[-1] == KEYS[member]  # seats in the order added
