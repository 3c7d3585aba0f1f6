"""What a conversation's bubbles show, on a real list view and delegate over the real model:
drawn status marks (read unlike delivered), a tooltip with the times, a long message cut
short until "Read more", and a separator above the first message of each day."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime, timedelta
from datetime import time as daytime

from PySide6.QtCore import QEvent, QModelIndex, QPoint, QRect, Qt
from PySide6.QtGui import QColor, QFontMetrics, QHelpEvent, QImage, QPainter
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QStyle, QStyleOptionViewItem, QToolTip

from app.domain.messages import Direction, Message, MessageRow, Status, WireId
from app.ui.bubble_parts import PAD
from app.ui.chatview import ChatView
from app.ui.delegates import BubbleDelegate
from app.ui.icons import READ_COLOR, status_width
from app.ui.models import (
    COLLAPSE_CHARS,
    BubbleRole,
    ConversationModel,
    ExpandedRole,
    bubble_text,
    collapsed_text,
    message_tip,
)


def at(days_ago: int, hour: int = 12, minute: int = 0) -> int:
    """A time `days_ago` local days back, in ms."""
    day = datetime.now().date() - timedelta(days=days_ago)
    return int(datetime.combine(day, daytime(hour, minute)).timestamp() * 1000)


def message(
    row: int,
    body: str,
    sent_at: int,
    direction: Direction = Direction.OUTGOING,
    status: Status = Status.DELIVERED,
    received_at: int | None = None,
) -> Message:
    return Message(
        MessageRow(row),
        1,
        direction,
        WireId(row.to_bytes(16, "big")),
        row,
        body,
        sent_at,
        received_at,
        status,
        True,
    )


class Pages:
    """The engine's `messages` over a fixed history (oldest first), newest page first."""

    def __init__(self, rows: list[Message]) -> None:
        self.rows = rows

    async def messages(
        self, contact_id: int, limit: int = 50, before: int | None = None
    ) -> list[Message]:
        older = [m for m in self.rows if before is None or m.id < before]
        return list(reversed(older[-limit:]))


async def shown(rows: list[Message], page: int = 50) -> tuple[ChatView, ConversationModel]:
    """A conversation list as the panel sets it up, showing `rows`' newest page."""
    view = ChatView()
    view.setItemDelegate(BubbleDelegate(view))
    view.resize(600, 700)
    model = ConversationModel(Pages(rows), 1, page, parent=view)  # type: ignore[arg-type]
    view.show_conversation(model)
    await model.load_first_page()
    view.show()
    await asyncio.sleep(0.05)
    return view, model


def option_for(view: ChatView, row: int) -> QStyleOptionViewItem:
    index = view.model().index(row, 0)
    option = QStyleOptionViewItem()
    option.font = view.font()
    option.palette = view.palette()
    option.state = QStyle.StateFlag.State_Enabled
    height = view.itemDelegate().sizeHint(option, index).height()
    option.rect = QRect(0, 0, view.viewport().width(), height)
    return option


def render(view: ChatView, row: int) -> QImage:
    """What the delegate paints for one row, on a white image."""
    option = option_for(view, row)
    image = QImage(option.rect.size(), QImage.Format.Format_ARGB32)
    image.fill(QColor("white"))
    painter = QPainter(image)
    view.itemDelegate().paint(painter, option, view.model().index(row, 0))
    painter.end()
    return image


def mark_box(view: ChatView, row: int) -> QRect:
    """Where a bubble's status mark goes: the right end of its last line."""
    delegate = view.itemDelegate()
    assert isinstance(delegate, BubbleDelegate)
    option = option_for(view, row)
    bubble = delegate.bubble_rect(option, view.model().index(row, 0))
    assert bubble is not None
    h = QFontMetrics(view.font()).height()
    width = status_width(h)
    return QRect(bubble.right() - PAD - width + 1, bubble.bottom() - PAD - h + 1, width, h)


def pixels(image: QImage, rect: QRect) -> list[QColor]:
    return [
        image.pixelColor(x, y)
        for y in range(rect.top(), rect.bottom() + 1)
        for x in range(rect.left(), rect.right() + 1)
    ]


def near(a: QColor, b: QColor, tolerance: int = 40) -> bool:
    return (
        abs(a.red() - b.red()) + abs(a.green() - b.green()) + abs(a.blue() - b.blue()) <= tolerance
    )


def test_read_ticks_are_drawn_unlike_delivered_ones(run) -> None:
    async def body() -> None:
        when = at(0, 9, 30)
        images: dict[Status, QImage] = {}
        boxes: dict[Status, QRect] = {}
        for status in Status:
            view, _ = await shown([message(1, "same words", when, status=status)])
            images[status] = render(view, 0)
            boxes[status] = mark_box(view, 0)
            view.close()
        delivered, read = images[Status.DELIVERED], images[Status.READ]
        box = boxes[Status.READ]
        assert box == boxes[Status.DELIVERED]
        assert delivered.size() == read.size()
        # The two differ in the mark and nowhere else.
        outside = [
            (x, y)
            for y in range(read.height())
            for x in range(read.width())
            if not box.contains(x, y) and read.pixelColor(x, y) != delivered.pixelColor(x, y)
        ]
        assert outside == []
        assert pixels(read, box) != pixels(delivered, box)
        minted = [c for c in pixels(read, box) if near(c, READ_COLOR)]
        assert len(minted) > 10
        assert not [c for c in pixels(delivered, box) if near(c, READ_COLOR)]
        # Each status has a mark of its own, and a mark is drawn (not blank bubble).
        marks = {status: pixels(images[status], boxes[status]) for status in Status}
        assert len({tuple(c.rgba() for c in mark) for mark in marks.values()}) == len(Status)
        for status in (Status.QUEUED, Status.SENT, Status.DELIVERED, Status.READ):
            assert len({c.rgba() for c in marks[status]}) > 3, status
        # A received message has no mark.
        view, _ = await shown([message(1, "same words", when, Direction.INCOMING)])
        theirs = render(view, 0)
        assert not [c for c in pixels(theirs, mark_box(view, 0)) if near(c, READ_COLOR)]
        view.close()

    run(body())


def test_the_failed_mark_keeps_its_words(run) -> None:
    async def body() -> None:
        view, model = await shown([message(1, "x", at(0), status=Status.FAILED)])
        failed = render(view, 0)
        model.set_status(1, Status.QUEUED)
        queued = render(view, 0)
        assert failed.width() == queued.width()
        # The words make the failed bubble wider: its left edge is further left.
        row = failed.height() // 2

        def left_edge(image: QImage) -> int:
            return next(
                x for x in range(image.width()) if image.pixelColor(x, row) != QColor("white")
            )

        fm = QFontMetrics(view.font())
        assert left_edge(queued) - left_edge(failed) >= fm.horizontalAdvance(
            "not sent · Ctrl+R to retry"
        )
        view.close()

    run(body())


def test_the_tooltip_gives_the_receipts_times_and_what_the_conversation_added() -> None:
    read = replace(
        message(1, "read", at(0, 14, 2), status=Status.READ),
        delivered_at=at(0, 14, 3),
        read_at=at(0, 15, 10),
    )
    assert message_tip(read) == "Sent 14:02 · Delivered 14:03 · Read 15:10"
    delivered = replace(read, status=Status.DELIVERED, read_at=None)
    assert message_tip(delivered) == "Sent 14:02 · Delivered 14:03"
    edited = replace(delivered, edited_at=at(0, 14, 30), expires_at=at(0, 16, 0), timer_s=3600)
    assert message_tip(edited) == ("Sent 14:02 · Delivered 14:03 · Edited 14:30 · Disappears 16:00")
    unread = replace(
        message(2, "theirs", at(0, 9, 0), Direction.INCOMING, received_at=at(0, 9, 1)),
        timer_s=300,
    )
    assert message_tip(unread) == "Sent 09:00 · Received 09:01 · Disappears once read"


def test_a_bubble_tooltip_says_when_it_was_sent_and_how_far_it_got(run) -> None:
    async def body() -> None:
        rows = [
            message(1, "theirs", at(1, 8, 5), Direction.INCOMING, received_at=at(0, 9, 1)),
            message(2, "delivered", at(0, 14, 2), status=Status.DELIVERED),
            message(3, "read", at(0, 14, 2), status=Status.READ),
            message(4, "queued", at(0, 14, 3), status=Status.QUEUED),
            message(5, "failed", at(0, 14, 4), status=Status.FAILED),
        ]
        view, _ = await shown(rows)
        proxy = view.model()
        tips = [proxy.index(i, 0).data(Qt.ItemDataRole.ToolTipRole) for i in range(5)]
        yesterday = datetime.now().date() - timedelta(days=1)
        assert tips == [
            f"Sent {yesterday:%a} {yesterday.day} {yesterday:%b %Y} 08:05 · Received 09:01",
            "Sent 14:02 · Delivered",
            "Sent 14:02 · Read",
            "Written 14:03 · Waiting to send",
            "Written 14:04 · Not sent · Ctrl+R to retry",
        ]

        # Hovering the read bubble shows its tip; the empty space beside it shows none.
        delegate = view.itemDelegate()
        assert isinstance(delegate, BubbleDelegate)
        index = proxy.index(2, 0)
        option = option_for(view, 2)
        option.rect = view.visualRect(index)
        bubble = delegate.bubble_rect(option, index)
        assert bubble is not None
        viewport = view.viewport()

        def hover(pos: QPoint) -> None:
            event = QHelpEvent(QEvent.Type.ToolTip, pos, viewport.mapToGlobal(pos))
            QTest.qWait(0)
            view.viewportEvent(event)

        hover(bubble.center())
        assert QToolTip.isVisible()
        assert QToolTip.text() == "Sent 14:02 · Read"
        hover(QPoint(bubble.left() - 40, bubble.center().y()))
        await asyncio.sleep(0.3)
        assert not QToolTip.isVisible()
        view.close()

    run(body())


def test_a_long_message_is_cut_short_until_read_more(run) -> None:
    long = " ".join(f"word{i:04}" for i in range(500))[:4000]
    assert len(long) == 4000

    async def body() -> None:
        rows = [message(1, "short", at(0, 9)), message(2, long, at(0, 10), Direction.INCOMING)]
        view, model = await shown(rows)
        proxy = view.model()
        index = proxy.index(1, 0)
        delegate = view.itemDelegate()
        assert isinstance(delegate, BubbleDelegate)
        option = option_for(view, 1)
        collapsed = delegate.sizeHint(option, index).height()
        assert not index.data(ExpandedRole)
        # Everything but the bubble still has the whole text.
        assert index.data() == bubble_text(rows[1])
        assert long in index.data(Qt.ItemDataRole.AccessibleTextRole)
        more = delegate.more_rect(option, index)
        assert more is not None
        assert delegate.more_rect(option_for(view, 0), proxy.index(0, 0)) is None

        # A click on "Read more" shows it whole; the row grows in the view.
        view.scrollTo(index)
        await asyncio.sleep(0.05)
        shown_rect = view.visualRect(index)
        assert shown_rect.height() == collapsed
        more.translate(shown_rect.topLeft())
        QTest.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=more.center())
        assert model.expanded == {2}
        assert index.data(ExpandedRole)
        expanded = delegate.sizeHint(option, index).height()
        assert expanded > collapsed * 3
        await asyncio.sleep(0.05)
        assert view.visualRect(index).height() == expanded

        # Enter on the current message cuts it short again, Space opens it again; neither
        # does anything to a short one.
        view.setFocus()
        view.setCurrentIndex(index)
        QTest.keyClick(view, Qt.Key.Key_Return)
        assert model.expanded == set()
        await asyncio.sleep(0.05)
        assert view.visualRect(index).height() == collapsed
        QTest.keyClick(view, Qt.Key.Key_Space)
        assert model.expanded == {2}
        view.setCurrentIndex(proxy.index(0, 0))
        QTest.keyClick(view, Qt.Key.Key_Return)
        assert model.expanded == {2}

        # What the cut-short bubble draws: the first thousand characters or so, cut at a
        # space, made safe like the whole.
        start = collapsed_text(rows[1])
        assert start.startswith(bubble_text(message(9, long[:900], 0))[:-1])
        assert start.endswith("…\u2069")
        assert COLLAPSE_CHARS * 9 // 10 < len(start) <= COLLAPSE_CHARS + 3
        assert long[len(start) - 3] == " "
        view.close()

    run(body())


def test_a_day_separator_stands_above_the_first_message_of_each_day(run) -> None:
    async def body() -> None:
        rows = [
            message(1, "a", at(5, 9), Direction.INCOMING),
            message(2, "a", at(5, 18)),
            message(3, "a", at(1, 23, 59), Direction.INCOMING),
            message(4, "a", at(0, 0, 0), Direction.INCOMING),
            message(5, "a", at(0, 8)),
        ]
        old = datetime.now().date() - timedelta(days=5)
        label = f"{old:%A} {old.day} {old:%B %Y}"
        assert label.split()[0] in (
            "Monday",
            "Tuesday",
            "Wednesday",
            "Thursday",
            "Friday",
            "Saturday",
            "Sunday",
        )
        view, model = await shown(rows, page=2)
        proxy = view.model()

        def days() -> list[str | None]:
            return [proxy.index(i, 0).data(BubbleRole)[1] for i in range(proxy.rowCount())]

        assert days() == ["Today", None]
        model.fetchMore(QModelIndex())
        await asyncio.sleep(0.05)
        assert days() == [label, "Yesterday", "Today", None]  # the older page: 2, 3
        model.fetchMore(QModelIndex())
        await asyncio.sleep(0.05)
        assert days() == [label, None, "Yesterday", "Today", None]
        # A screen reader hears the separator with the first message of the day.
        spoken = [proxy.index(i, 0).data(Qt.ItemDataRole.AccessibleTextRole) for i in range(5)]
        assert spoken[0] == f"{label}. Received: {bubble_text(rows[0])}"
        assert spoken[1] == f"You (delivered): {bubble_text(rows[1])}"
        assert spoken[3].startswith("Today. Received: ")

        # A separator adds one line and its margins to the row, and is drawn in that space.
        delegate = view.itemDelegate()
        fm = QFontMetrics(view.font())
        heights = [
            delegate.sizeHint(option_for(view, i), proxy.index(i, 0)).height() for i in range(5)
        ]
        step = fm.height() + PAD * 2
        assert heights == [
            heights[1] + step,
            heights[1],
            heights[1] + step,
            heights[4] + step,
            heights[4],
        ]
        await asyncio.sleep(0.05)
        for row in range(5):
            assert view.visualRect(proxy.index(row, 0)).height() == heights[row]
        with_day, without = render(view, 3), render(view, 4)
        white = QColor("white")

        def first_inked(image: QImage, x: int) -> int:
            return next(y for y in range(image.height()) if image.pixelColor(x, y) != white)

        assert first_inked(with_day, PAD + 6) >= step  # the bubble is below the separator
        assert first_inked(without, without.width() - PAD - 6) <= PAD  # no separator above
        # "Today" is drawn centred in the band above the bubble.
        inked = [x for x in range(with_day.width()) if with_day.pixelColor(x, step // 2) != white]
        assert inked
        assert abs((min(inked) + max(inked)) / 2 - with_day.width() / 2) <= 2
        assert max(inked) - min(inked) >= fm.horizontalAdvance("Today")
        words = QRect(0, 0, with_day.width(), step)
        assert len({c.rgba() for c in pixels(with_day, words)}) > 3  # not just a plain pill

        # Trimming the front leaves a separator on the new first row.
        model.trim_front(keep=2)
        assert days() == ["Today", None]
        view.close()

    run(body())
