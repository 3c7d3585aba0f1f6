"""Sending from the composer: its length limit is the engine's."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.errors import UserError
from app.domain.messages import MAX_MESSAGE_CHARS
from tests.ui.conftest import me_and_a_peer, until


def test_the_composer_takes_what_the_engine_takes_and_refuses_one_more(run, tmp_path: Path) -> None:
    longest = ("abcd " * (MAX_MESSAGE_CHARS // 5))[:-1] + "e"
    assert len(longest) == MAX_MESSAGE_CHARS == 16_000

    async def body() -> None:
        async with me_and_a_peer(tmp_path) as (window, card):
            engine = window.engine
            contact = await engine.add_contact(card)
            window.open_contact(contact)
            panel = window.panel
            await until(lambda: panel.model is not None and panel.composer.isEnabled())
            model = panel.model
            assert model is not None

            panel.composer.setPlainText(longest + "f")
            panel.send()
            assert panel.error.isVisibleTo(panel)
            assert panel.error.text() == f"A message holds at most {MAX_MESSAGE_CHARS} characters."
            assert panel.composer.toPlainText() == longest + "f"  # kept, to shorten
            with pytest.raises(UserError):  # the engine draws the line at the same place
                await engine.send(contact.id, longest + "f")

            panel.composer.setPlainText(longest)
            panel.send()
            assert panel.composer.toPlainText() == ""
            await until(lambda: model.rowCount() == 1, what="the longest message")
            assert model.message(0).body == longest
            await until(lambda: not panel.error.isVisibleTo(panel), what="the error gone")

    run(body())
