"""Groups through the real CLI (docs/groups.md): three profiles on one relay process, each
held open by `anonchat-cli listen` so every `group ...` command runs through the local API
(as the methods `group-...`); the test itself polls the same API, not to start a process for
each look.

Alice knows Bob and Carol, who do not know each other. Alice creates a group, both join
and connect through it without becoming contacts, and everyone's messages reach everyone
with their author; bad input is refused with one line and exit 1, changing nothing; a
removed member's later messages reach nobody; and a message whose author went offline before
Carol came back reaches her through Bob, once, still signed by its author."""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest

from tests.e2e.conftest import Json, Listener, Profile, Relay, Result, api, eventually, trio

pytestmark = pytest.mark.timeout(180)

GROUP_KEYS = {"id", "name", "state", "admin", "members", "invited_by", "created_at"}
MEMBER_KEYS = {"name", "key", "admin", "me", "contact", "verified", "joined", "connected"}


Trio = tuple[Profile, Profile, Profile]


@pytest.fixture(scope="module")
def acquainted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Relay, Path]]:
    """One relay process for the module, and Alice, Bob and Carol made on it once (Alice knows
    Bob and Carol, who do not know each other): the profiles' directory, which each test
    copies before it starts."""
    base = tmp_path_factory.mktemp("acquainted")
    made: list[Profile] = []

    def make(name: str, url: str) -> Profile:
        profile = Profile(base / name.lower(), name)
        made.append(profile)
        profile.init(url)
        return profile

    relay = Relay(base)
    try:
        trio(make, relay.url)
        yield relay, base
    finally:
        for profile in made:
            for listener in profile.listeners:
                listener.kill()
        relay.kill()


@pytest.fixture
def people(acquainted: tuple[Relay, Path], tmp_path: Path) -> Iterator[Trio]:
    """Alice, Bob and Carol, copies of the module's profiles: this test's own."""
    _, base = acquainted
    made = []
    for name in ("Alice", "Bob", "Carol"):
        directory = tmp_path / name.lower()
        shutil.copytree(base / name.lower(), directory, ignore=shutil.ignore_patterns("api.sock"))
        made.append(Profile(directory, name))
    try:
        yield made[0], made[1], made[2]
    finally:
        for profile in made:
            for listener in profile.listeners:
                listener.kill()


def one_line(result: Result, code: int, words: str) -> None:
    assert result.rc == code, result
    assert result.out == ""
    lines = result.err.splitlines()
    assert len(lines) == 1, result.err
    assert lines[0].startswith("anonchat-cli: "), lines
    assert words in lines[0], lines


def friends(profile: Profile) -> Json:
    """Friends as `groups --json` shows it (asked of the profile's holder)."""
    (group,) = [g for g in api(profile, "groups") if g["name"] == "Friends"]
    return group


def member_names(group: Json) -> list[str]:
    return [m["name"] for m in group["members"]]


def connected(profile: Profile) -> bool:
    """Every other member of Friends has a channel with this profile."""
    return all(m["connected"] for m in friends(profile)["members"] if not m["me"])


def said(profile: Profile, *, cli: bool = False) -> list[tuple[str, str]]:
    """(author, text) of every message in Friends, oldest first, as `group messages --json`
    shows them (`cli`: printed by an anonchat-cli process, else asked of the holder)."""
    if cli:
        rows = profile.run("group", "messages", "Friends").data
    else:
        rows = api(profile, "group-messages", group="Friends")
    return [(r["author"], r["body"]) for r in rows]


def heard(listener: Listener, text: str) -> Callable[[list[Json]], bool]:
    return lambda ev: any(
        e["event"] == "message" and e["direction"] == "in" and e["body"] == text for e in ev
    )


def start_friends(alice: Profile, bob: Profile, carol: Profile) -> dict[str, Listener]:
    """Everyone listens; Alice creates Friends with Bob and Carol, who join it; until every
    member is connected to every other. The listeners by name."""
    listeners = {p.name: p.listen() for p in (alice, bob, carol)}
    for listener in listeners.values():
        listener.wait_listening()
    made = alice.run("group", "create", "Friends", "Bob", "Carol", "--wait", "20").data
    assert set(made) == GROUP_KEYS | {"acknowledged"}
    assert (made["name"], made["state"], made["admin"], made["acknowledged"]) == (
        "Friends",
        "joined",
        True,
        True,
    )
    assert [(m["name"], m["admin"], m["me"]) for m in made["members"]] == [
        ("Alice", True, True),
        ("Bob", False, False),
        ("Carol", False, False),
    ]
    assert all(set(m) == MEMBER_KEYS for m in made["members"])
    for p in (bob, carol):
        (invite,) = p.run("group", "invites").data
        assert (invite["name"], invite["state"], invite["invited_by"]) == (
            "Friends",
            "invited",
            "Alice",
        )
        assert p.run("groups").data == []
        joined = p.run("group", "join", str(invite["id"]), "--wait", "20").data
        assert (joined["name"], joined["state"], joined["admin"]) == ("Friends", "joined", False)
        assert p.run("group", "invites").data == []
    for p in (alice, bob, carol):
        eventually(partial(connected, p), 30, f"{p.name} connected to every member")
    return listeners


def test_a_group_created_joined_written_to_refusing_bad_input_and_removing_a_member(
    people: Trio,
) -> None:
    alice, bob, carol = people
    listeners = start_friends(alice, bob, carol)

    # Everyone writes; everyone sees the others' messages with their author.
    everyone = {"Alice": alice, "Bob": bob, "Carol": carol}
    lines = {"Alice": "hello from Alice", "Bob": "hi from Bob", "Carol": "and Carol"}
    for name, text in lines.items():
        sent = everyone[name].run("group", "send", "Friends", text, "--wait", "20").data
        assert (sent["status"], sent["group"], sent["author"]) == ("delivered", True, "me")
        assert sorted((d["name"], d["delivered"]) for d in sent["deliveries"]) == [
            (other, True) for other in sorted(everyone) if other != name
        ]
        for other, listener in listeners.items():
            if other != name:
                listener.wait_for(heard(listener, text))
    for name, profile in everyone.items():
        expected = [("me" if who == name else who, text) for who, text in lines.items()]
        assert said(profile, cli=True) == expected
    (from_alice,) = [e for e in listeners["Bob"].incoming() if e["body"] == lines["Alice"]]
    assert (from_alice["group"], from_alice["author"]) == (True, "Alice")
    assert from_alice["author_key"] == friends(alice)["members"][0]["key"]
    assert any(e["state"] == "joined" for e in listeners["Carol"].of("group"))
    text = carol.run("group", "messages", "Friends", json_out=False).out
    assert "Bob: hi from Bob" in text
    assert "me: and Carol" in text

    # Bob and Carol met through the group, yet neither is the other's contact (nor request),
    # and no listen told of the group or of a member as if they were contacts.
    for listener in listeners.values():
        told = listener.of("contact_added") + listener.of("contact_changed")
        assert not [e for e in told if e["name"] not in ("Alice", "Bob", "Carol")]
    for name in ("Bob", "Carol"):
        told = listeners[name].of("contact_added") + listeners[name].of("contact_changed")
        assert {e["name"] for e in told} <= {"Alice"}, told
    assert [c["name"] for c in bob.contacts()] == ["Alice"]
    assert [c["name"] for c in carol.contacts()] == ["Alice"]
    assert [c["name"] for c in alice.contacts()] == ["Bob", "Carol"]
    assert bob.run("requests").data == []
    listed = alice.run("groups", json_out=False).out
    assert "Friends" in listed
    assert f"Carol ({friends(alice)['members'][2]['key'][:16]})" in listed

    # Bad input: one line, exit 1, nothing changed.
    before = {p.name: api(p, "groups") for p in (alice, bob, carol)}
    one_line(alice.run("group", "send", "Nobody", "x", expect=None), 1, "no group matches")
    one_line(alice.run("group", "messages", "Nobody", expect=None), 1, "no group matches")
    one_line(bob.run("group", "add", "Friends", "Alice", expect=None), 1, "only an admin")
    one_line(bob.run("group", "remove", "Friends", "Carol", expect=None), 1, "only an admin")
    one_line(bob.run("group", "join", "999", expect=None), 1, "no invitation matches")
    one_line(carol.run("group", "join", "Friends", expect=None), 1, "no invitation matches")
    one_line(alice.run("group", "remove", "Friends", "Dave", expect=None), 1, "no member of")
    one_line(alice.run("group", "add", "Friends", "Bob", expect=None), 1, "a member already")
    one_line(bob.run("group", "create", "Other", "Carol", expect=None), 1, "no contact matches")
    one_line(bob.run("send", "Friends", "x", expect=None), 1, "is a group")
    assert {p.name: api(p, "groups") for p in (alice, bob, carol)} == before
    assert len(said(alice)) == 3

    # Alice removes Carol while Carol is away: Alice and Bob no longer count her.
    assert listeners["Carol"].stop() == 0
    removed = alice.run("group", "remove", "Friends", "Carol", "--wait", "0").data
    assert (member_names(removed), removed["acknowledged"]) == (["Alice", "Bob"], False)
    assert member_names(friends(alice)) == ["Alice", "Bob"]
    eventually(lambda: member_names(friends(bob)) == ["Alice", "Bob"], 20, "Bob saw the removal")

    # Carol does not know yet: her message is stored and goes when she is back online...
    late = carol.run("group", "send", "Friends", "carol after removal", "--wait", "0").data
    assert late["status"] == "queued"
    carol_l = carol.listen()
    carol_l.wait_listening()
    carol_l.wait_for(lambda ev: any(e.get("state") == "removed" for e in ev), 20)
    # ...where Alice and Bob drop it, as from someone who is not a member.
    for listener in (listeners["Alice"], listeners["Bob"]):
        listener.wait_for(
            lambda ev: any(
                e["event"] == "rejected" and e["kind"] == "group" and "not a member" in e["reason"]
                for e in ev
            ),
            20,
        )
    # Bob's later message does reach Alice, and Carol's never shows up.
    later = bob.run("group", "send", "Friends", "bob after removal", "--wait", "20").data
    assert [(d["name"], d["delivered"]) for d in later["deliveries"]] == [("Alice", True)]
    listeners["Alice"].wait_for(heard(listeners["Alice"], "bob after removal"))
    time.sleep(2)
    for profile in (alice, bob):
        bodies = [text for _, text in said(profile)]
        assert "bob after removal" in bodies
        assert "carol after removal" not in bodies
    assert not [e for e in carol_l.incoming() if e["body"] == "bob after removal"]

    # Now Carol knows: she may read what she had, not write.
    one_line(carol.run("group", "send", "Friends", "x", expect=None), 1, "no longer in Friends")
    (left,) = carol.run("groups").data
    assert left["state"] == "removed"
    assert [text for _, text in said(carol)][:3] == list(lines.values())
    for listener in (*listeners.values(), carol_l):
        listener.stop()
        listener.assert_clean()


def test_a_message_reaches_a_member_through_another_after_its_author_went_offline(
    people: Trio,
) -> None:
    alice, bob, carol = people
    listeners = start_friends(alice, bob, carol)

    # Carol is away when Alice writes; Bob gets it; then Alice goes away too.
    assert listeners["Carol"].stop() == 0
    sent = alice.run("group", "send", "Friends", "while Carol was away", "--wait", "0").data
    listeners["Bob"].wait_for(heard(listeners["Bob"], "while Carol was away"))
    assert listeners["Alice"].stop() == 0
    assert listeners["Alice"].proc.poll() is not None

    # Carol comes back while Bob is online: Bob passes Alice's message on, signed by her.
    carol_l = carol.listen()
    carol_l.wait_listening()
    carol_l.wait_for(heard(carol_l, "while Carol was away"), 30)
    (got,) = [e for e in carol_l.incoming() if e["body"] == "while Carol was away"]
    assert (got["author"], got["group"]) == ("Alice", True)
    assert said(carol) == [("Alice", "while Carol was away")]

    # Alice back online: her own copy reaches Carol at last and is not shown twice.
    alice_l = alice.listen()
    alice_l.wait_listening()
    eventually(
        lambda: all(
            d["delivered"] for d in api(alice, "group-messages", group="Friends")[0]["deliveries"]
        ),
        30,
        "Alice's copies acknowledged by both",
    )
    assert said(carol) == [("Alice", "while Carol was away")]
    assert len([e for e in carol_l.incoming() if e["body"] == "while Carol was away"]) == 1
    (mine,) = alice.run("group", "messages", "Friends").data
    assert (mine["id"], mine["author"], mine["status"]) == (sent["id"], "me", "delivered")

    # Admins: Alice makes Bob one, who renames the group; Carol leaves it; Bob's invitation
    # to another group is declined. Each change acknowledged is applied where it was sent.
    promoted = alice.run("group", "promote", "Friends", "bob", "--wait", "20").data
    assert [m["admin"] for m in promoted["members"]] == [True, True, False]
    renamed = bob.run("group", "rename", "Friends", "Pals", "--wait", "20").data
    assert (renamed["name"], renamed["acknowledged"]) == ("Pals", True)
    assert [g["name"] for g in carol.run("groups").data] == ["Pals"]
    left = carol.run("group", "leave", "Pals", "--wait", "20").data
    assert (left["state"], left["acknowledged"]) == ("left", True)
    for profile in (alice, bob):
        (pals,) = profile.run("groups").data
        assert member_names(pals) == ["Alice", "Bob"]
    one_line(carol.run("group", "send", "Pals", "x", expect=None), 1, "no longer in Pals")
    bob.run("group", "create", "Book club", "Alice", "--wait", "20")
    (invite,) = alice.run("group", "invites").data
    assert (invite["name"], invite["invited_by"]) == ("Book club", "Bob")
    declined = alice.run("group", "decline", "book").data
    assert (declined["name"], declined["declined"]) == ("Book club", True)
    assert alice.run("group", "invites").data == []
    one_line(alice.run("group", "join", "book", expect=None), 1, "no invitation matches")
    for listener in (alice_l, listeners["Bob"], carol_l):
        listener.stop()
        listener.assert_clean()
