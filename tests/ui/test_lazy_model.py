"""The conversation model over 100,000 stored messages holds only what is shown."""

from __future__ import annotations

import time
from pathlib import Path

from PySide6.QtCore import QModelIndex

from app.ui.models import PAGE_SIZE
from tests.ui.conftest import fill_history, me_and_a_peer, until

HISTORY = 100_000


def test_hundred_thousand_messages_page_lazily(run, tmp_path: Path) -> None:
    async def body() -> None:
        async with me_and_a_peer(tmp_path) as (window, card):
            engine = window.engine
            contact = await engine.add_contact(card)
            await fill_history(engine, contact.id, HISTORY)

            calls: list[int] = []
            original = engine.messages

            async def counted(contact_id: int, limit: int = 50, before: int | None = None):
                if limit > 1:  # not mark-read's look at the newest message
                    calls.append(limit)
                return await original(contact_id, limit, before)

            engine.messages = counted  # type: ignore[method-assign]
            started = time.monotonic()
            window.open_contact(contact)
            await until(lambda: window.panel.model is not None and window.panel.model.rowCount())
            opened_in = time.monotonic() - started
            model = window.panel.model
            assert model is not None
            assert model.rowCount() == PAGE_SIZE  # only the first page, of 100,000
            assert model.message(PAGE_SIZE - 1).body == f"message {HISTORY - 1}"
            assert calls == [PAGE_SIZE]
            assert opened_in < 2.0

            view = window.panel.view
            bar = view.verticalScrollBar()
            await until(lambda: bar.maximum() > 0, what="a scrollable list")
            for step in range(1, 6):  # scroll to the top five times: one page each, one query
                before = len(calls)
                bar.setValue(bar.minimum())
                await until(lambda s=step: model.rowCount() == PAGE_SIZE * (s + 1), what="a page")
                await until(lambda: bar.value() > bar.minimum(), what="the place kept")
                assert len(calls) - before == 1
            assert model.rowCount() == 6 * PAGE_SIZE  # never the whole history
            assert model.message(0).body == f"message {HISTORY - 6 * PAGE_SIZE}"
            assert model.canFetchMore(QModelIndex())

    run(body())
