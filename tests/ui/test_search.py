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


def test_a_search_with_no_hits_says_so_in_the_list(run, tmp_path: Path) -> None:
    import asyncio

    from PySide6.QtGui import QImage, QPalette

    from app.ui.search import no_hits_text

    def drawn(view) -> int:
        """Pixels of the list drawn in the placeholder colour's neighbourhood (text)."""
        image: QImage = view.viewport().grab().toImage()
        base = view.palette().color(QPalette.ColorRole.Base)
        return sum(
            1
            for y in range(0, image.height(), 2)
            for x in range(0, image.width(), 2)
            if abs(image.pixelColor(x, y).value() - base.value()) > 40
        )

    async def body() -> None:
        async with me_and_a_peer(tmp_path) as (window, card):
            engine = window.engine
            contact = await engine.add_contact(card)
            await engine.send(contact.id, "the zebra crossing")
            results = window.search.results
            window.focus_search()
            QTest.keyClicks(window.search.box, "okapi")
            assert results.empty_text == ""  # not yet searched: nothing said
            await until(lambda: window.search.searches == 1, what="the search")
            assert window.search.model.rowCount() == 0
            assert results.empty_text == "No messages match “\u2068okapi\u2069”"
            assert results.accessibleDescription() == results.empty_text
            await asyncio.sleep(0.1)
            assert drawn(results) > 20

            # A search with hits says nothing of the kind.
            window.search.box.setText("zebra")
            assert results.empty_text == ""
            await until(lambda: window.search.model.rowCount() == 1, what="a hit")
            assert results.empty_text == ""
            assert results.accessibleDescription() == "1 messages found"
            QTest.keyClick(window.search.box, Qt.Key.Key_Escape)
            assert results.empty_text == ""

    assert no_hits_text("  " + "x" * 60) == f"No messages match “\u2068{'x' * 39}…\u2069”"
    run(body())
