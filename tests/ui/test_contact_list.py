"""The contact list changes one row at a time: an event about a contact re-reads that
contact's row only, puts it where the order says, and the selection stays on its contact."""

from __future__ import annotations

import asyncio
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from PySide6.QtCore import QModelIndex
from PySide6.QtWidgets import QApplication

from app.domain.contacts import Contact, ContactSummary
from app.domain.messages import Direction, Message, MessageRow, Status, WireId
from app.ui.contact_model import ContactListModel, list_order
from app.ui.models import SummaryRole
from tests.ui.conftest import me_and_a_peer, peer_card, until


def summary(contact_id: int, created: int, last: int | None, unread: int) -> ContactSummary:
    contact = Contact(contact_id, f"c{contact_id}", bytes(64), False, created)
    message = None
    if last is not None:
        message = Message(
            MessageRow(last),
            contact_id,
            Direction.INCOMING,
            WireId(b"m"),
            0,
            "hi",
            last,
            last,
            Status.DELIVERED,
            False,
        )
    return ContactSummary(contact, unread, message, False, True)


class Mirror:
    """The rows as a view learns them: only from the model's signals."""

    def __init__(self, model: ContactListModel) -> None:
        self.model = model
        self.ids: list[int] = []
        model.modelReset.connect(self._reset)
        model.rowsInserted.connect(self._inserted)
        model.rowsRemoved.connect(self._removed)
        model.dataChanged.connect(self._changed)

    def _reset(self) -> None:
        self.ids = [self.model.summary(i).contact.id for i in range(self.model.rowCount())]

    def _inserted(self, _parent: QModelIndex, first: int, last: int) -> None:
        self.ids[first:first] = [self.model.summary(i).contact.id for i in range(first, last + 1)]

    def _removed(self, _parent: QModelIndex, first: int, last: int) -> None:
        del self.ids[first : last + 1]

    def _changed(self, first: QModelIndex, last: QModelIndex) -> None:
        for row in range(first.row(), last.row() + 1):
            self.ids[row] = self.model.summary(row).contact.id


rows = st.tuples(
    st.integers(0, 7),  # contact id
    st.integers(0, 5),  # added at
    st.one_of(st.none(), st.integers(0, 5)),  # its last message's time, if any
    st.integers(0, 3),  # unread
)
changes = st.lists(st.tuples(st.booleans(), rows), max_size=30)


@given(st.lists(rows, max_size=6), changes)
def test_single_row_changes_keep_the_order_of_a_full_reload(
    qapp: QApplication, start: list[tuple[int, int, int | None, int]], steps: list
) -> None:
    model = ContactListModel()
    mirror = Mirror(model)
    current = {r[0]: summary(*r) for r in start}
    model.set_summaries(list(current.values()))
    for put, row in steps:
        if put:
            current[row[0]] = summary(*row)
            assert model.put(current[row[0]]) == model.row_of(row[0])
        else:
            current.pop(row[0], None)
            model.remove(row[0])
        expected = sorted(current.values(), key=list_order)
        shown = [model.summary(i) for i in range(model.rowCount())]
        assert shown == expected
        assert mirror.ids == [s.contact.id for s in expected]
        assert model.unread == sum(s.unread for s in expected)
        for i, s in enumerate(expected):
            assert model.row_of(s.contact.id) == i
            assert model.index(i, 0).data(SummaryRole) is s
    assert model.row_of(99) is None


def test_an_event_rereads_one_row_and_the_selection_stays(run, tmp_path: Path) -> None:
    async def body() -> None:
        async with me_and_a_peer(tmp_path) as (window, card):
            engine = window.engine
            first = await engine.add_contact(card)
            second = await engine.add_contact(
                await peer_card(tmp_path / "second", "ws://127.0.0.1:9")
            )
            await until(lambda: window.contacts.rowCount() == 2, what="both contacts")
            window.open_contact(second)
            await until(lambda: window.showing(second.id), what="the second one open")
            await asyncio.sleep(0.2)  # the rows settle after the opening

            whole: list[int] = []
            rows: list[int] = []
            summaries, one = engine.summaries, engine.summary

            async def counted_summaries() -> list[ContactSummary]:
                whole.append(1)
                return await summaries()

            async def counted_one(contact_id: int) -> ContactSummary | None:
                rows.append(contact_id)
                return await one(contact_id)

            engine.summaries = counted_summaries  # type: ignore[method-assign]
            engine.summary = counted_one  # type: ignore[method-assign]
            events: list[int] = []
            window.bridge.contact_dirty.connect(events.append)

            for i in range(3):
                await engine.send(first.id, f"burst {i}")

            def on_top() -> bool:
                top = window.contacts.summary(0)
                return (
                    top.contact.id == first.id
                    and top.last is not None
                    and (top.last.body == "burst 2")
                )

            await until(on_top, what="the first contact on top with its last message")
            await asyncio.sleep(0.3)
            assert whole == []
            assert set(rows) == {first.id}
            assert len(rows) < len(events)  # a burst costs one read
            selected = window.contact_list.selectionModel().selectedIndexes()
            assert [window.contacts.summary(i.row()).contact.id for i in selected] == [second.id]
            assert window.contact_list.currentIndex().row() == window.contacts.row_of(second.id)
            assert window.showing(second.id)

            await engine.delete_contact(first.id)
            await until(lambda: window.contacts.rowCount() == 1, what="the row gone")
            assert window.contacts.summary(0).contact.id == second.id
            assert window.contact_list.currentIndex().row() == 0
            assert window.showing(second.id)
            assert whole == []

    run(body())
