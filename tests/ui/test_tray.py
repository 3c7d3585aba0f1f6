from __future__ import annotations

from pathlib import Path

from PySide6.QtGui import QGuiApplication

from app.ui.icons import draw_icon
from app.ui.prefs import Prefs
from app.ui.text import safe_text
from tests.ui.conftest import alice_and_bob, until


def test_icon_draws_and_carries_a_badge(qapp) -> None:
    plain = draw_icon(64).toImage()
    badged = draw_icon(64, 7).toImage()
    assert plain.pixelColor(32, 32).alpha() == 255
    assert plain != badged
    assert QGuiApplication.desktopFileName() in ("", "anonchat")


def test_a_notification_carries_no_markup_or_hidden_characters(qapp) -> None:
    from PySide6.QtWidgets import QWidget

    from app.ui.tray import Tray

    owner = QWidget()
    tray = Tray(owner)
    tray.notify(1, "Bob", "<img src='file:///etc/passwd'> \u202eok", True)
    assert tray.last_notification == (
        f"Message from {safe_text('Bob')}",
        safe_text("‹img src='file:///etc/passwd'› ⟨U+202E⟩ok"),
    )
    tray.notify(2, "Eve", "x", False, request=True)
    assert tray.last_notification == (f"Message request from {safe_text('Eve')}", "New message")
    tray.hide()


def test_unread_count_on_the_tray_and_notifications_follow_the_settings(
    run, tmp_path: Path
) -> None:
    async def body() -> None:
        async with alice_and_bob(tmp_path) as (alice, bob, _):
            await bob.engine.add_contact(await alice.engine.card())
            await until(lambda: alice.requests.model.rowCount() == 1, what="Bob's request")
            await alice.engine.accept_request(alice.requests.model.summary(0).request.id)
            await until(lambda: alice.contacts.rowCount() == 1, what="handshake")
            await until(lambda: alice.contacts.summary(0).established, what="established")
            bob_contact = (await bob.engine.summaries())[0].contact

            await bob.engine.send(bob_contact.id, "are you there?")
            await until(lambda: alice.tray.unread == 1, what="one unread on the tray")
            assert alice.tray.icon.toolTip() == "AnonChat · 1 unread"
            # The sender's name and text are a peer's: shown isolated (see safe_text).
            bob_name = safe_text("Bob")
            assert alice.tray.last_notification == (
                f"Message from {bob_name}",
                safe_text("are you there?"),
            )

            alice.prefs = Prefs(previews=False)
            await bob.engine.send(bob_contact.id, "secret plans")
            await until(lambda: alice.tray.unread == 2, what="two unread")
            assert alice.tray.last_notification == (f"Message from {bob_name}", "New message")

            alice.prefs = Prefs(notifications=False)
            alice.tray.last_notification = None
            await bob.engine.send(bob_contact.id, "third")
            await until(lambda: alice.tray.unread == 3, what="three unread")
            assert alice.tray.last_notification is None

            # Clicking the notification's contact opens it; reading clears the count.
            alice.tray.notification_clicked.emit(alice.contacts.summary(0).contact.id)
            await until(lambda: alice.tray.unread == 0, what="read")
            assert alice.isVisible()

    run(body())
