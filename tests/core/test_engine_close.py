"""Closing the engine while a frame is in hand: the frame is finished, not cut in half.

A message whose transaction commits must also be reported (its MessageAdded event), or a
`listen` stopped at that moment would never print a message it stored and acknowledged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.core.events import Event, MessageAdded
from app.core.profile import open_profile, profile_paths
from app.domain.messages import Direction
from app.net.events import Delivered
from tests.core.engines import PASS, RELAY, befriend, make


def test_close_during_a_receive_still_reports_the_message(tmp_path: Path) -> None:
    async def body() -> None:
        alice = await make(tmp_path / "alice", "Alice")
        bob = await make(tmp_path / "bob", "Bob")
        events: list[Event] = []
        bob.subscribe(events.append)
        try:
            to_bob, _ = await befriend(alice, bob)
            await alice.send(to_bob.id, "in hand at close")
            chat = [
                i
                for i in await alice.store.read(lambda r: r.outbox.due(2**62))
                if i.message_row is not None
            ][-1]
        finally:
            await alice.close()

        # Bob's store is asked to commit the message: that is the moment the window closes.
        closing: list[asyncio.Task[None]] = []
        run = bob.store.run

        async def run_then_close(job: Callable[..., Any]) -> Any:
            task = asyncio.current_task()
            if not closing and task is not None and task.get_name() == "anonchat-receive":
                closing.append(asyncio.ensure_future(bob.close()))
                await asyncio.sleep(0)  # close() has begun before the commit goes on
            return await run(job)

        bob.store.run = run_then_close  # type: ignore[method-assign]
        await bob.start()
        bob.on_net_event(Delivered(RELAY, chat.mailbox_id, chat.ciphertext))
        for _ in range(500):
            if closing:
                break
            await asyncio.sleep(0.01)
        assert closing, "the frame never reached the store"
        await closing[0]

        added = [e.message.body for e in events if isinstance(e, MessageAdded)]
        assert added == ["in hand at close"]
        opened = await open_profile(profile_paths(str(tmp_path / "bob")), PASS)
        try:
            stored = await opened.store.read(lambda r: r.messages.page(1, 10))
        finally:
            await opened.store.close()
            opened.lock.release()
        assert [(m.body, m.direction) for m in stored] == [("in hand at close", Direction.INCOMING)]

    asyncio.run(body())
