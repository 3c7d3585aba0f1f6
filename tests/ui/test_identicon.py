"""Identicons and contact rows: a contact's picture comes from their identity key alone, and a
selected row stays readable with a round unread badge."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QRect
from PySide6.QtGui import QColor, QFontMetrics, QImage, QPainter, QPalette
from PySide6.QtWidgets import QApplication, QListView, QStyle, QStyleOptionViewItem

from app.domain.contacts import Contact, ContactSummary
from app.ui.bubble_parts import PAD
from app.ui.contact_delegate import ContactDelegate
from app.ui.contact_model import ContactListModel
from app.ui.identicon import identicon
from app.ui.theme import dark_palette, light_palette
from tests.ui.conftest import me_and_a_peer, until

KEY_A = bytes(range(64))
KEY_B = bytes(range(1, 65))


def picture_bytes(key: bytes, size: int = 40) -> bytes:
    identicon.cache_clear()  # drawn afresh each time, not handed back from the cache
    image = identicon(key, size)
    return bytes(image.constBits())


def test_the_same_key_gives_the_same_picture_and_other_keys_others(qapp: QApplication) -> None:
    assert picture_bytes(KEY_A) == picture_bytes(KEY_A)
    assert picture_bytes(KEY_A) != picture_bytes(KEY_B)
    pictures = {picture_bytes(bytes([i]) * 64) for i in range(64)}
    assert len(pictures) == 64
    image = identicon(KEY_A, 40)
    assert image.size().width() == image.size().height() == 40
    # Round: the corners are see-through, the middle is not; there is a pattern in it.
    assert image.pixelColor(0, 0).alpha() == 0
    assert image.pixelColor(20, 20).alpha() == 255
    assert len({image.pixelColor(x, y).rgba() for x in range(8, 32) for y in range(8, 32)}) >= 2


def summary(name: str, key: bytes, unread: int = 0) -> ContactSummary:
    return ContactSummary(Contact(1, name, key, False, 0), unread, None, False, True)


def paint_row(
    s: ContactSummary, selected: bool, palette: QPalette, width: int = 320
) -> tuple[QImage, QStyleOptionViewItem]:
    view = QListView()
    model = ContactListModel()
    model.set_summaries([s])
    delegate = ContactDelegate(view)
    option = QStyleOptionViewItem()
    option.font = view.font()
    option.palette = palette
    option.state = QStyle.StateFlag.State_Enabled
    if selected:
        option.state |= QStyle.StateFlag.State_Selected
    height = delegate.sizeHint(option, model.index(0, 0)).height()
    option.rect = QRect(0, 0, width, height)
    image = QImage(width, height, QImage.Format.Format_ARGB32)
    image.fill(palette.color(QPalette.ColorRole.Base))
    painter = QPainter(image)
    painter.setFont(view.font())
    delegate.paint(painter, option, model.index(0, 0))
    painter.end()
    return image, option


def luminance(c: QColor) -> float:
    def channel(v: float) -> float:
        return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4

    return 0.2126 * channel(c.redF()) + 0.7152 * channel(c.greenF()) + 0.0722 * channel(c.blueF())


def contrast(a: QColor, b: QColor) -> float:
    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def test_a_row_shows_its_contacts_picture_so_namesakes_differ(qapp: QApplication) -> None:
    palette = light_palette()
    a, _ = paint_row(summary("Alice", KEY_A), False, palette)
    b, _ = paint_row(summary("Alice", KEY_B), False, palette)
    assert a != b
    again, _ = paint_row(summary("Alice", KEY_A), False, palette)
    assert a == again
    # The picture is drawn as it is, at the row's left (its top left quarter, clear of the
    # online dot, pixel for pixel where the picture is opaque).
    fm = QFontMetrics(QListView().font())
    face = fm.height() * 2 + PAD
    picture = identicon(KEY_A, face)
    same = 0
    for y in range(face // 2):
        for x in range(face // 2):
            if picture.pixelColor(x, y).alpha() == 255:
                assert a.pixelColor(PAD + x, PAD + y) == picture.pixelColor(x, y)
                same += 1
    assert same > face * face // 8


def test_text_on_the_highlight_and_on_our_bubbles_reads_at_wcag_aa(qapp: QApplication) -> None:
    """4.5:1 at least: the selected row's text, and white on our bubbles."""
    from app.ui.delegates import ACCENT

    for palette in (light_palette(), dark_palette()):
        highlight = palette.color(QPalette.ColorRole.Highlight)
        assert contrast(palette.color(QPalette.ColorRole.HighlightedText), highlight) >= 4.5
    assert contrast(QColor("white"), ACCENT) >= 4.5


def test_a_selected_row_stays_readable_and_its_badge_round(qapp: QApplication) -> None:
    for palette in (light_palette(), dark_palette()):
        highlight = palette.color(QPalette.ColorRole.Highlight)
        bright = palette.color(QPalette.ColorRole.HighlightedText)
        image, _ = paint_row(summary("Alice", KEY_A, unread=3), True, palette)
        fm = QFontMetrics(QListView().font())
        left = PAD + fm.height() * 2 + PAD * 2
        # The name's and the second line's ("No messages yet") ink is the highlight's text
        # colour, which reads on the highlight.
        for top in (PAD, PAD * 2 + fm.height()):
            area = QRect(left, top, 60, fm.height())
            inks = [
                image.pixelColor(x, y)
                for y in range(area.top(), area.bottom() + 1)
                for x in range(area.left(), area.right() + 1)
            ]
            strongest = max(inks, key=lambda c: contrast(c, highlight))
            assert contrast(strongest, bright) < 1.1, (top, strongest.name())
            assert contrast(strongest, highlight) >= 3

        def badge_box(image: QImage, line: int = PAD * 2 + fm.height()) -> QRect:
            """The bounding box of the rightmost shape on the first line."""
            width = image.width()
            ground = image.pixelColor(width - 2, image.height() - 2)
            columns = {
                x: [y for y in range(line) if contrast(image.pixelColor(x, y), ground) > 1.5]
                for x in range(width)
            }
            right = max(x for x, ys in columns.items() if ys)
            left = right
            while columns[left - 1]:
                left -= 1
            ys = [y for x in range(left, right + 1) for y in columns[x]]
            return QRect(left, min(ys), right - left + 1, max(ys) - min(ys) + 1)

        # The badge is seen on the highlight, and round for one digit.
        one = badge_box(image)
        assert abs(one.width() - one.height()) <= 1
        assert one.height() >= fm.height() - 1
        assert image.pixelColor(one.center()) != highlight
        # A pill for more, as tall; never squashed, even in a narrow list.
        many, _ = paint_row(summary("Alice", KEY_A, unread=120), True, palette)
        pill = badge_box(many)
        assert pill.height() == one.height()
        assert pill.width() > pill.height() + fm.horizontalAdvance("0")
        narrow, _ = paint_row(
            summary("A very long name indeed", KEY_A, unread=7), True, palette, 200
        )
        assert badge_box(narrow).size() == one.size()
        # Unselected, the badge is round too.
        plain, _ = paint_row(summary("Alice", KEY_A, unread=3), False, palette)
        assert badge_box(plain).size() == one.size()


def test_the_header_shows_the_contacts_picture(run, tmp_path: Path) -> None:
    async def body() -> None:
        async with me_and_a_peer(tmp_path) as (window, card):
            contact = await window.engine.add_contact(card)
            window.open_contact(contact)
            panel = window.panel
            await until(lambda: panel.contact is not None)
            picture = panel.avatar.pixmap().toImage()
            assert not picture.isNull()
            size = picture.width()
            expected = identicon(contact.identity_keys, size).convertToFormat(picture.format())
            assert picture == expected
            assert panel.avatar.isVisibleTo(window)

    run(body())


def test_two_requests_under_one_name_look_different(qapp: QApplication) -> None:
    """Where a stranger poses as a contact: the request row shows the key's picture too."""
    from app.domain.contacts import ContactState, RequestSummary
    from app.ui.requests import RequestDelegate, RequestListModel

    def paint(key: bytes) -> QImage:
        view = QListView()
        model = RequestListModel()
        request = Contact(2, "Alice", key, False, 0, ContactState.REQUEST)
        model.set_requests([RequestSummary(request, None, 1, None)])
        delegate = RequestDelegate(view)
        option = QStyleOptionViewItem()
        option.font = view.font()
        option.palette = light_palette()
        option.state = QStyle.StateFlag.State_Enabled
        height = delegate.sizeHint(option, model.index(0, 0)).height()
        option.rect = QRect(0, 0, 320, height)
        image = QImage(320, height, QImage.Format.Format_ARGB32)
        image.fill(QColor("white"))
        painter = QPainter(image)
        painter.setFont(view.font())
        delegate.paint(painter, option, model.index(0, 0))
        painter.end()
        return image

    a, b = paint(KEY_A), paint(KEY_B)
    assert a != b
    assert a == paint(KEY_A)
    fm = QFontMetrics(QListView().font())
    face = fm.height() * 2 + PAD
    picture = identicon(KEY_A, face)
    opaque = [
        (x, y)
        for y in range(face // 2)
        for x in range(face // 2)
        if picture.pixelColor(x, y).alpha() == 255
    ]
    assert opaque
    assert all(a.pixelColor(PAD + x, PAD + y) == picture.pixelColor(x, y) for x, y in opaque)
