"""A peer's text shown safely: hidden characters made visible, each text isolated, and
times that never fail; first the function, then what the widgets really draw."""

from __future__ import annotations

import os
import time
import unicodedata
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PySide6.QtCore import QRect, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QStandardItem, QStandardItemModel
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QAbstractItemView, QStyle, QStyleOptionViewItem

from app.domain.contacts import ContactState
from app.domain.messages import Direction, Message, Status
from app.store.records import NewMessage
from app.store.repos import Repos
from app.ui.models import MessageRole, bubble_text
from app.ui.requests import first_line
from app.ui.text import FSI, MAX_MS, PDI, clock, isolate, preview, rebalance, safe_text
from tests.ui.conftest import accept_in_window, headless, me_and_peers, until, write_to

HOSTILE = "red \x1b[31m alert \u202eevil\u2066 x\nline two"
SHOWN = isolate("red ␛[31m alert ⟨U+202E⟩evil⟨U+2066⟩ x") + "\n" + isolate("line two")
BIDI = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")


def test_controls_become_symbols_and_the_text_is_isolated() -> None:
    assert safe_text(HOSTILE, lines=True) == SHOWN
    assert safe_text("a\nb") == isolate("a␊b")  # one line: a line break is shown too
    assert safe_text("one\r\ntwo", lines=True) == isolate("one") + "\n" + isolate("two")
    for code in range(0x20):
        assert safe_text(chr(code)) == isolate(chr(0x2400 + code))
    assert safe_text("\x7f") == isolate("␡")
    for code in range(0x80, 0xA0):
        assert safe_text(chr(code)) == isolate(f"⟨U+{code:04X}⟩")
    for char in [*BIDI, "\ufeff", "\u2060", "\u200b", "\u00ad", "\u2028", "\u2029"]:
        assert safe_text(char) == isolate(f"⟨U+{ord(char):04X}⟩")
    assert safe_text("a\u200db\u200cc") == isolate("a\u200db\u200cc")  # joiners stay
    scotland = "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f"
    assert safe_text(scotland) == isolate(scotland)  # a flag's tag letters stay
    assert safe_text("x\U000e0067") == isolate("x⟨U+E0067⟩")  # a stray one does not
    assert safe_text("\u0600١٢") == isolate("\u0600١٢")  # a visible Arabic number sign
    assert preview("  a\n\tb\x1f  c ") == isolate("a b␟ c")
    assert preview("x" * 100, 10) == isolate("x" * 9 + "…")
    assert rebalance(FSI + "cut…") == FSI + "cut…" + PDI


@given(st.text(), st.booleans())
def test_no_hidden_character_survives(text: str, lines: bool) -> None:
    shown = safe_text(text, lines)
    for line in shown.split("\n") if lines else [shown]:
        assert line.startswith(FSI)
        assert line.endswith(PDI)
        inner = line[1:-1]
        assert not BIDI & set(inner)
        assert all(
            c in "\u200c\u200d" or unicodedata.category(c) not in ("Cc", "Cs", "Zl", "Zp")
            for c in inner
        )
    assert shown.count("\n") == (text.replace("\r\n", "\n").count("\n") if lines else 0)


@pytest.fixture(params=["UTC", "Pacific/Kiritimati", "Pacific/Pago_Pago", "Europe/Berlin"])
def zone(request: pytest.FixtureRequest) -> Iterator[str]:
    before = os.environ.get("TZ")
    os.environ["TZ"] = request.param
    time.tzset()
    yield request.param
    if before is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = before
    time.tzset()


def test_clock_takes_every_time_the_engine_can_deliver(zone: str) -> None:
    for ms in (0, 1, 999, 86_399_999, 1_700_000_000_000, MAX_MS - 86_400_000, MAX_MS, -1, 2**63):
        assert clock(ms)
        assert clock(ms, now=datetime(2024, 6, 1, 12, 0))
    assert clock(MAX_MS, now=datetime(2024, 6, 1)) in ("31 Dec 9999", "01 Jan 10000")
    assert clock(0, now=datetime(2024, 6, 1)) in ("01 Jan 1970", "31 Dec 1969")


def render(view: QAbstractItemView, message: Message) -> QImage:
    """What the conversation's delegate paints for `message`, on a white image."""
    model = QStandardItemModel()
    item = QStandardItem()
    item.setData(message, MessageRole)
    model.appendRow(item)
    index = model.index(0, 0)
    option = QStyleOptionViewItem()
    option.font = view.font()
    option.palette = view.palette()
    option.state = QStyle.StateFlag.State_Enabled
    delegate = view.itemDelegate()
    height = delegate.sizeHint(option, index).height()
    option.rect = QRect(0, 0, view.viewport().width(), height)
    image = QImage(option.rect.size(), QImage.Format.Format_ARGB32)
    image.fill(QColor("white"))
    painter = QPainter(image)
    delegate.paint(painter, option, index)
    painter.end()
    return image


def test_hostile_text_is_drawn_visible_and_isolated_everywhere(run, tmp_path: Path) -> None:
    async def body() -> None:
        async with me_and_peers(tmp_path) as (window, url, peers):
            engine = window.engine
            peers.append(bob := await headless(tmp_path / "bob", "Bob", url))
            theirs = await write_to(bob, await engine.card(), "hi")
            contact = await accept_in_window(window, "Bob")
            window.show_empty()
            await bob.send(theirs, HOSTILE)

            # The notification and the contact row's preview.
            await until(
                lambda: (window.tray.last_notification or ("", ""))[1] == preview(HOSTILE, 120),
                what="the notification",
            )
            assert window.tray.last_notification == (
                f"Message from {safe_text('Bob')}",
                isolate("red ␛[31m alert ⟨U+202E⟩evil⟨U+2066⟩ x line two"),
            )
            await until(
                lambda: "␛" in window.contacts.index(0, 0).data(Qt.ItemDataRole.AccessibleTextRole),
                what="the preview in the row",
            )

            # The bubble: what the model gives is what the delegate draws.
            window.contact_list.setCurrentIndex(window.contacts.index(0, 0))
            panel = window.panel
            await until(lambda: panel.model is not None and panel.model.rowCount() == 2)
            assert panel.model is not None
            index = panel.view.model().index(1, 0)
            message = panel.model.message(1)
            assert message.body == HOSTILE
            assert index.data() == bubble_text(message) == SHOWN
            assert not {"\x1b", "\u202e", "\u2066"} & set(index.data())
            assert SHOWN in index.data(Qt.ItemDataRole.AccessibleTextRole)
            # Pixels: the hostile bubble is drawn exactly like a body that spells out those
            # symbols (so no control reached the painter), and unlike one without them.
            spelled = replace(
                message, id=-1, body="red ␛[31m alert ⟨U+202E⟩evil⟨U+2066⟩ x\nline two"
            )
            bare = replace(message, id=-2, body="red [31m alert evil x\nline two")
            drawn = render(panel.view, message)
            assert drawn == render(panel.view, spelled)
            assert drawn != render(panel.view, bare)

            # A name that got past the engine's rule (written straight to the store), in the
            # list, the title, the search results and a request row.
            evil = "Eve\u202elive\x07"

            def put(r: Repos, state: ContactState, keys: bytes, word: str) -> int:
                cid = r.contacts.add(evil, keys, 1_700_000_000_000, state=state).id
                r.messages.insert(
                    NewMessage(
                        cid,
                        Direction.INCOMING,
                        keys[:16],
                        1,
                        f"{word} \u202e\x1b crossing",
                        1_700_000_000_000,
                        None,
                        Status.DELIVERED,
                        True,
                    )
                )
                return int(cid)

            eve = await engine.store.run(
                lambda r: put(r, ContactState.CONTACT, b"\1" * 64, "zebra")
            )
            shown_name = isolate("Eve⟨U+202E⟩live␇")
            await window.reload_contacts()
            row = window.contacts.row_of(eve)
            assert row is not None
            assert window.contacts.index(row, 0).data() == shown_name
            window.open_contact(window.contacts.summary(row).contact)
            await until(lambda: panel.contact is not None and panel.contact.id == eve)
            assert panel.title.text() == shown_name
            assert panel.title.textFormat() == Qt.TextFormat.PlainText
            window.focus_search()
            QTest.keyClicks(window.search.box, "zebra")
            await until(lambda: window.search.model.rowCount() == 1, what="the hit")
            hit = window.search.model.index(0).data()
            assert hit.startswith(shown_name)
            assert "⟨U+202E⟩" in hit
            assert "␛" in hit
            assert not {"\x1b", "\u202e", "\x07"} & set(hit)
            window.search.box.clear()

            mal = await engine.store.run(lambda r: put(r, ContactState.REQUEST, b"\2" * 64, "x"))
            await window.requests.reload()
            assert window.requests.model.index(0).data() == shown_name
            summary = window.requests.model.summary(0)
            assert summary.request.id == mal
            assert first_line(summary) == isolate("x ⟨U+202E⟩␛ crossing")
            described = window.requests.model.index(0).data(Qt.ItemDataRole.AccessibleTextRole)
            assert not {"\x1b", "\u202e", "\x07"} & set(described)
            assert contact.id != eve

    run(body())
