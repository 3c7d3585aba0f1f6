"""The conversation through the real CLI, real relay, two real profiles: a reply, an edit, a
reaction, a deletion for everyone (gone from the receiver's search), the disappearing timer
(both sides see who set it; the clock starts at sending and at reading), a deletion for me,
and the refusals, each with its exit code."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from app.core.engine import Engine
from app.core.profile import open_profile, profile_paths
from tests.e2e.conftest import Json, Profile, Relay, pair


def one(rows: list[Json], **match: object) -> Json:
    (found,) = [r for r in rows if all(r.get(k) == v for k, v in match.items())]
    return found


def eventually(check: Callable[[], object], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out on {check}"
        time.sleep(0.2)


def search(profile: Profile, words: str) -> list[str]:
    """The profile's own search, in this process (the CLI has none)."""

    async def main() -> list[str]:
        engine = await Engine.open(
            await open_profile(profile_paths(str(profile.dir)), profile.passphrase)
        )
        try:
            return [h.message.body for h in await engine.search(words)]
        finally:
            await engine.close()

    return asyncio.run(main())


def test_reply_edit_react_delete_and_timer(
    relay: Relay, make_profile: Callable[..., Profile]
) -> None:
    alice, bob = pair(make_profile, relay.url)
    alice_l, bob_l = alice.listen(), bob.listen()
    alice_l.wait_listening()
    bob_l.wait_listening()
    # Every command below runs through the listening holders.
    sent = alice.run("send", "Bob", "the code word is swordfish").data
    assert sent["status"] == "delivered"
    assert (sent["reply_to"], sent["edited"], sent["deleted"], sent["reactions"]) == (
        None,
        False,
        False,
        [],
    )
    at_bob = one(bob.messages("Alice"), body="the code word is swordfish")

    # A reply quotes it, on both sides.
    reply = bob.run("send", "Alice", "got it", "--reply-to", str(at_bob["id"])).data
    assert reply["status"] == "delivered"
    assert reply["reply_to"] == at_bob["id"]
    assert one(alice.messages("Bob"), body="got it")["reply_to"] == sent["id"]

    # An edit: acknowledged, and the other side shows the latest text, edited.
    edited = alice.run("edit", "Bob", str(sent["id"]), "the code word is marlin").data
    assert (edited["body"], edited["edited"], edited["acknowledged"]) == (
        "the code word is marlin",
        True,
        True,
    )
    now_at_bob = one(bob.messages("Alice"), id=at_bob["id"])
    assert (now_at_bob["body"], now_at_bob["edited"]) == ("the code word is marlin", True)
    bob_l.wait_for(lambda ev: any(e["event"] == "message_changed" for e in ev))

    # A reaction, changed, seen by the other side as the contact's.
    assert bob.run("react", "Alice", str(at_bob["id"]), "👍").data["acknowledged"]
    assert bob.run("react", "Alice", str(at_bob["id"]), "❤️").data["acknowledged"]
    reactions = one(alice.messages("Bob"), id=sent["id"])["reactions"]
    assert reactions == [{"from": "contact", "emoji": "❤️"}]

    # The refusals: not yours, not an emoji, not this conversation, not a timer.
    refused = bob.run("edit", "Alice", str(at_bob["id"]), "hijack", expect=1)
    assert "only edit a message you wrote" in refused.err
    assert "one emoji" in bob.run("react", "Alice", str(at_bob["id"]), "a b", expect=1).err
    assert "no message" in alice.run("edit", "Bob", "999999", "x", expect=1).err
    alice.run("timer", "Bob", "-5", expect=2)
    assert one(bob.messages("Alice"), id=at_bob["id"])["body"] == "the code word is marlin"

    # Deleted for everyone: the text is gone on both sides.
    gone = alice.run("delete", "Bob", str(sent["id"]), "--for-everyone").data
    assert (gone["deleted"], gone["body"], gone["acknowledged"]) == (True, "", True)
    at_bob_now = one(bob.messages("Alice"), id=at_bob["id"])
    assert (at_bob_now["deleted"], at_bob_now["body"], at_bob_now["reactions"]) == (True, "", [])
    text = bob.run("messages", "Alice", json_out=False).out
    assert "This message was deleted" in text
    assert "marlin" not in text

    # The timer: set by Alice, seen by Bob; the clocks start at sending and at reading.
    notice = alice.run("timer", "Bob", "300").data
    assert (notice["kind"], notice["timer"], notice["changed"]) == ("timer", 300, True)
    assert (
        "set disappearing messages to 5 minutes" in bob.run("messages", "Alice", json_out=False).out
    )
    ephemeral = alice.run("send", "Bob", "self destructs").data
    assert ephemeral["timer"] == 300
    assert ephemeral["expires_at"] == ephemeral["sent_at"] + 300_000
    first = one(bob.messages("Alice"), body="self destructs")  # read now, by this call
    assert first["expires_at"] is None
    read = one(bob.messages("Alice"), body="self destructs")
    assert read["expires_at"] is not None
    assert read["expires_at"] >= ephemeral["sent_at"] + 300_000
    assert alice.run("timer", "Bob", "off").data["changed"]
    unchanged = alice.run("timer", "Bob", "off").data
    assert (unchanged["changed"], unchanged["timer"]) == (False, 0)

    # Deleted for me: gone here, still there.
    assert alice.run("delete", "Bob", str(ephemeral["id"])).data == {
        "id": ephemeral["id"],
        "deleted": "for me",
    }
    assert [m for m in alice.messages("Bob") if m["id"] == ephemeral["id"]] == []
    assert one(bob.messages("Alice"), body="self destructs")
    removed = alice_l.of("messages_removed")
    assert [e["ids"] for e in removed] == [[ephemeral["id"]]]

    assert alice_l.stop() == 0
    assert bob_l.stop() == 0
    assert search(bob, "swordfish") == []
    assert search(bob, "marlin") == []
    assert search(bob, "destructs") == ["self destructs"]
