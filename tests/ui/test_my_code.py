"""My code: a one-time code by default, renewed once used; the long-lived address when asked
for, made only on request, changed and deleted after a confirmation; the QR image, the text
and Copy follow whichever is shown."""

from __future__ import annotations

import asyncio
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtTest import QTest

from app.core.qr import decode_image
from app.ui.a11y import nameless
from app.ui.my_code import MyCodeDialog
from tests.ui.conftest import headless, me_and_peers, until


def shown(dialog: MyCodeDialog) -> tuple[str, str]:
    """What the QR image reads as, and the text."""
    image = dialog.qr.pixmap().toImage()
    return decode_image(image.convertToFormat(image.Format.Format_Grayscale8)), (
        dialog.text.toPlainText()
    )


def confirm(dialog: MyCodeDialog, button: str) -> None:
    """Press the dialog's `button`, then the confirmation's own button."""
    QTest.mouseClick(getattr(dialog, button), Qt.MouseButton.LeftButton)
    asked = dialog.confirmation
    assert asked is not None
    assert asked.isVisible()
    QTest.mouseClick(asked.confirm, Qt.MouseButton.LeftButton)


def test_one_time_code_by_default_the_address_when_asked_changed_and_deleted(
    run, tmp_path: Path
) -> None:
    async def body() -> None:
        async with me_and_peers(tmp_path) as (window, _url, _peers):
            engine = window.engine
            dialog = window.show_my_code()
            await until(lambda: dialog.card, what="the one-time code")
            one_time = dialog.card
            assert dialog.one_time.isChecked()
            assert not dialog.showing_address
            assert "works for one contact" in dialog.about.text()
            assert "a new one is made" in dialog.about.text()
            assert shown(dialog) == (one_time, one_time)
            assert one_time == await engine.card()
            assert not dialog.change_button.isVisible()
            assert not dialog.delete_button.isVisible()
            assert nameless(dialog) == []

            # Asking for the address shows there is none; looking does not make one.
            dialog.address.click()
            await until(lambda: dialog.make_button.isVisible(), what="no address yet")
            assert dialog.card == ""
            assert not dialog.qr.isVisible()
            assert not await engine.has_address()
            QTest.mouseClick(dialog.make_button, Qt.MouseButton.LeftButton)
            await until(lambda: dialog.card, what="the address")
            address = dialog.card
            assert address != one_time
            assert address == await engine.card(address=True)
            assert await engine.has_address()
            assert shown(dialog) == (address, address)
            assert "can see when you are online" in dialog.about.text()
            assert "until you change or delete it" in dialog.about.text()
            assert dialog.change_button.isVisible()
            assert dialog.delete_button.isVisible()
            assert not dialog.make_button.isVisible()
            assert nameless(dialog) == []
            QTest.mouseClick(dialog.copy_button, Qt.MouseButton.LeftButton)
            assert QGuiApplication.clipboard().text() == address

            # Cancelling the change keeps the address.
            QTest.mouseClick(dialog.change_button, Qt.MouseButton.LeftButton)
            asked = dialog.confirmation
            assert asked is not None
            assert "stops working" in asked.text.text()
            asked.close()
            assert dialog.card == address
            assert await engine.card(address=True) == address

            # Changed: a new address shown everywhere in the dialog, the old one gone.
            confirm(dialog, "change_button")
            await until(lambda: dialog.card not in ("", address), what="the new address")
            changed = dialog.card
            assert changed != address
            assert changed == await engine.card(address=True)
            assert shown(dialog) == (changed, changed)
            assert "old one no longer works" in dialog.note.text()
            QTest.mouseClick(dialog.copy_button, Qt.MouseButton.LeftButton)
            assert QGuiApplication.clipboard().text() == changed

            # The one-time code is still the unused one; back to the address.
            dialog.one_time.click()
            await until(lambda: dialog.card == one_time, what="the one-time code again")
            assert shown(dialog) == (one_time, one_time)
            assert not dialog.change_button.isVisible()
            dialog.address.click()
            await until(lambda: dialog.card == changed, what="the address again")

            # Deleted: nothing of it shown, and no address left.
            confirm(dialog, "delete_button")
            await until(lambda: dialog.make_button.isVisible(), what="the address gone")
            assert dialog.card == ""
            assert dialog.text.toPlainText() == ""
            assert not dialog.qr.isVisible()
            assert not dialog.copy_button.isVisible()
            assert not dialog.delete_button.isVisible()
            assert "deleted" in dialog.note.text()
            assert not await engine.has_address()
            dialog.close()

    run(body())


def test_a_used_one_time_code_is_replaced_in_the_open_dialog(run, tmp_path: Path) -> None:
    async def body() -> None:
        async with me_and_peers(tmp_path) as (window, url, peers):
            dialog = window.show_my_code()
            await until(lambda: dialog.card, what="the one-time code")
            first = dialog.card
            peers.append(bob := await headless(tmp_path / "bob", "Bob", url))
            await bob.add_contact(first)
            await until(lambda: dialog.card not in ("", first), what="a new one-time code")
            assert dialog.card == await window.engine.card()
            assert shown(dialog) == (dialog.card, dialog.card)
            assert "was used" in dialog.note.text()
            assert not dialog.showing_address
            dialog.close()

    run(body())


def test_the_code_saves_as_a_png_that_reads_back_and_copies_whole(run, tmp_path: Path) -> None:
    import zxingcpp
    from PIL import Image

    from app.core.qr import decode_file

    async def body() -> None:
        async with me_and_peers(tmp_path) as (window, _url, _peers):
            dialog = window.show_my_code()
            await until(lambda: dialog.card, what="the one-time code")
            card = dialog.card
            assert dialog.save_button.isVisible()
            assert dialog.save_button.isEnabled()

            # Saved where the user chose (".png" added), a PNG the QR reader reads back.
            saved = dialog.save_png(tmp_path / "my code")
            assert saved == tmp_path / "my code.png"
            assert saved.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
            assert decode_file(saved) == card
            with Image.open(saved) as image:
                found = zxingcpp.read_barcodes(image)
            assert [r.text.lower() for r in found] == [card.lower()]
            assert str(saved) in dialog.note.text()

            # A folder that cannot be written says so and keeps the dialog as it was.
            assert dialog.save_png(tmp_path / "missing" / "code.png") is None
            assert dialog.error.isVisible()
            assert "Could not save" in dialog.error.text()

            # The whole code is in the text box and fits it, also when the dialog is narrow.
            heights = []
            for width in (dialog.minimumSizeHint().width(), 900):
                dialog.resize(width, dialog.height())
                await asyncio.sleep(0.1)
                heights.append(dialog.text.height())
                assert dialog.text.toPlainText() == card
                assert dialog.text.verticalScrollBar().maximum() == 0
                doc = dialog.text.document()
                assert doc.size().height() <= dialog.text.viewport().height() + 1
            assert heights[0] > heights[1]  # narrower: more lines, all of them shown
            QTest.mouseClick(dialog.copy_button, Qt.MouseButton.LeftButton)
            assert QGuiApplication.clipboard().text() == card
            assert dialog.copied.text() == "Copied."
            dialog.text.selectAll()
            assert dialog.text.textCursor().selectedText() == card
            dialog.close()

    run(body())
