from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from app.domain.messages import Direction, Status
from app.store.records import NewMessage
from app.ui.search import snippet_html
from app.ui.text import isolate
from tests.ui.conftest import fill_history, me_and_a_peer, until


def test_snippet_marks_become_bold_and_the_rest_is_escaped() -> None:
    assert snippet_html("a <b> \x02zebra\x03 & c") == isolate("a &lt;b&gt; <b>zebra</b> &amp; c")
    # A peer's hidden characters show as symbols; a body holding the mark characters itself
    # gets no bold at all rather than marks that are not the store's.
    assert snippet_html("x \u202e\x02ze\x1bbra\x03") == isolate("x ⟨U+202E⟩<b>ze␛bra</b>")
    assert snippet_html("\x02a\x03 \x02b", marked=False) == isolate("␂a␃ ␂b")


def test_search_jumps_to_an_old_message(run, tmp_path: Path) -> None:
    async def body() -> None:
        async with me_and_a_peer(tmp_path) as (window, card):
            engine = window.engine
            contact = await engine.add_contact(card)

            def odd(r) -> None:
                r.messages.insert(
                    NewMessage(
                        contact.id,
                        Direction.INCOMING,
                        b"z" * 16,
                        0,
                        "the zebra crossing",
                        1_600_000_000_000,
                        None,
                        Status.DELIVERED,
                        True,
                    )
                )

            await engine.store.run(odd)
            await fill_history(engine, contact.id, 3000)  # newer than the hit: it lies far back
            await window.reload_contacts()
            window.open_contact(contact)
            await until(lambda: window.panel.model is not None and window.panel.model.rowCount())
            model = window.panel.model
            assert model is not None

            window.focus_search()
            QTest.keyClicks(window.search.box, "zebr")
            assert window.left_stack.currentWidget() is window.search.results
            await until(lambda: window.search.model.rowCount() == 1, what="one hit")
            hit = window.search.model.hit(0)
            assert hit.message.body == "the zebra crossing"
            assert "\x02zebra\x03" in hit.snippet
            assert window.search.searches == 1  # typing four letters made one search

            QTest.keyClick(window.search.box, Qt.Key.Key_Return)
            await until(lambda: model.highlighted == hit.message.id, what="the hit marked")
            row = model.row_of(hit.message.id)
            assert row is not None
            assert model.queries <= 8  # pages grow: 50 first, then 50, 100 … up to 3,001 rows
            view = window.panel.view
            await until(
                lambda: (
                    view.viewport().rect().intersects(view.visualRect(view.model().index(row, 0)))
                ),
                what="the hit in view",
            )
            QTest.keyClick(window.search.box, Qt.Key.Key_Escape)
            assert window.left_stack.currentWidget() is window.contact_list

    run(body())
