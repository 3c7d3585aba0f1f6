"""The unread badge of the conversation being read: it does not grow while the window is
where the user looks; with the window in the background it counts, and clears on return."""

from __future__ import annotations

import asyncio
from pathlib import Path

from PySide6.QtWidgets import QApplication, QWidget

from tests.ui.conftest import accept_in_window, headless, me_and_peers, until, write_to


def test_the_open_conversation_stays_read_while_looked_at_and_counts_in_the_background(
    run, tmp_path: Path
) -> None:
    async def body() -> None:
        async with me_and_peers(tmp_path) as (window, url, peers):
            peers.append(bob := await headless(tmp_path / "bob", "Bob", url))
            their_id = await write_to(bob, await window.engine.card(), "hi")
            contact = await accept_in_window(window, "Bob")
            window.activateWindow()
            await until(lambda: QApplication.activeWindow() is window, what="window active")
            contacts = window.contacts

            def unread() -> int:
                row = contacts.row_of(contact.id)
                assert row is not None
                return contacts.summary(row).unread

            async def stored_unread() -> int:
                summary = await window.engine.summary(contact.id)
                assert summary is not None
                return summary.unread

            await until(lambda: unread() == 0, what="read on opening")
            seen: list[int] = []
            contacts.dataChanged.connect(lambda *_: seen.append(unread()))
            contacts.rowsInserted.connect(lambda *_: seen.append(unread()))

            # In front: three messages arrive, the badge never shows one.
            for body_text in ("one", "two", "three"):
                await bob.send(their_id, body_text)
            panel = window.panel
            await until(
                lambda: panel.model is not None and panel.model.rowCount() == 4,
                what="the three bubbles",
            )
            await asyncio.sleep(0.6)  # past the read mark's delay and the row's refresh
            assert seen  # the row was refreshed as they came
            assert max(seen) == 0
            assert unread() == 0
            assert await stored_unread() == 0
            assert window.tray.unread == 0

            # In the background: they count, and stay counted.
            other = QWidget()
            other.show()
            other.activateWindow()
            await until(lambda: QApplication.activeWindow() is other, what="another window")
            for body_text in ("four", "five"):
                await bob.send(their_id, body_text)
            await until(lambda: unread() == 2, what="two unread")
            await asyncio.sleep(0.6)
            assert unread() == 2
            assert await stored_unread() == 2
            assert window.tray.unread == 2

            # Back in front: read at once.
            window.activateWindow()
            await until(lambda: QApplication.activeWindow() is window, what="window again")
            await until(lambda: unread() == 0, seconds=2, what="cleared on return")
            await until(lambda: window.tray.unread == 0, what="the tray cleared")
            await asyncio.sleep(0.6)
            assert await stored_unread() == 0
            other.close()

    run(body())
