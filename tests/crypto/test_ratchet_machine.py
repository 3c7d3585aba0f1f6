"""Two parties over a lossy, reordering, duplicating network: a hypothesis state machine."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from app.crypto.errors import DecryptError
from app.crypto.ratchet import Session

from .conftest import make_pair


class Conversation(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        pair = make_pair(b"machine", reply=False)
        self.rng = pair.rng
        self.sessions: dict[str, Session] = {"a": pair.a, "b": pair.b}
        # (frame, plaintext) in flight per receiver, and frames already delivered once.
        self.flight: dict[str, list[tuple[bytes, bytes]]] = {"a": [], "b": []}
        self.delivered: dict[str, list[bytes]] = {"a": [], "b": []}
        self.counter = 0

    def _send(self, sender: str, receiver: str, payload: bytes) -> None:
        text = b"%d:" % self.counter + payload
        self.counter += 1
        self.sessions[sender], frame = self.sessions[sender].encrypt(text, rng=self.rng)
        self.flight[receiver].append((frame, text))

    @rule(payload=st.binary(max_size=300))
    def a_sends(self, payload: bytes) -> None:
        self._send("a", "b", payload)

    @rule(payload=st.binary(max_size=300))
    def b_sends(self, payload: bytes) -> None:
        self._send("b", "a", payload)

    @precondition(lambda self: self.flight["a"] or self.flight["b"])
    @rule(who=st.sampled_from(["a", "b"]), index=st.integers(min_value=0), drop=st.booleans())
    def deliver_or_drop(self, who: str, index: int, drop: bool) -> None:
        queue = self.flight[who] or self.flight["b" if who == "a" else "a"]
        who = who if self.flight[who] else ("b" if who == "a" else "a")
        frame, text = queue.pop(index % len(queue))
        if drop:
            return
        self.sessions[who], got = self.sessions[who].decrypt(frame)
        assert got == text
        self.delivered[who].append(frame)

    @precondition(lambda self: self.delivered["a"] or self.delivered["b"])
    @rule(who=st.sampled_from(["a", "b"]), index=st.integers(min_value=0))
    def duplicate(self, who: str, index: int) -> None:
        if not self.delivered[who]:
            who = "b" if who == "a" else "a"
        frame = self.delivered[who][index % len(self.delivered[who])]
        before = self.sessions[who].to_bytes()
        try:
            self.sessions[who].decrypt(frame)
        except DecryptError:
            pass
        else:
            raise AssertionError("a duplicate decrypted twice")
        assert self.sessions[who].to_bytes() == before

    @invariant()
    def still_talking(self) -> None:
        """Whatever happened, a fresh message each way gets through (checked on copies)."""
        a, b = self.sessions["a"], self.sessions["b"]
        a2, frame = a.encrypt(b"ping", rng=self.rng)
        b2, text = b.decrypt(frame)
        assert text == b"ping"
        _, frame = b2.encrypt(b"pong", rng=self.rng)
        assert a2.decrypt(frame)[1] == b"pong"


Conversation.TestCase.settings = settings(max_examples=100, stateful_step_count=30, deadline=None)
TestConversation = Conversation.TestCase


class LongConversation(Conversation):
    pass


LongConversation.TestCase.settings = settings(
    max_examples=2000, stateful_step_count=120, deadline=None
)
TestLongConversation = pytest.mark.soak(LongConversation.TestCase)
