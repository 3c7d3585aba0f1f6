from __future__ import annotations

from pathlib import Path

from PySide6.QtGui import QGuiApplication

from app.ui.icons import draw_icon
from app.ui.prefs import Prefs
from tests.ui.conftest import alice_and_bob, until


def test_icon_draws_and_carries_a_badge() -> None:
    plain = draw_icon(64).toImage()
    badged = draw_icon(64, 7).toImage()
    assert plain.pixelColor(32, 32).alpha() == 255
    assert plain != badged
    assert QGuiApplication.desktopFileName() in ("", "anonchat")


def test_unread_count_on_the_tray_and_notifications_follow_the_settings(
    run, tmp_path: Path
) -> None:
    async def body() -> None:
        async with alice_and_bob(tmp_path) as (alice, bob, _):
            await bob.engine.add_contact(await alice.engine.card())
            await until(lambda: alice.contacts.rowCount() == 1, what="handshake")
            await until(lambda: alice.contacts.summary(0).established, what="established")
            bob_contact = (await bob.engine.summaries())[0].contact

            await bob.engine.send(bob_contact.id, "are you there?")
            await until(lambda: alice.tray.unread == 1, what="one unread on the tray")
            assert alice.tray.icon.toolTip() == "AnonChat · 1 unread"
            assert alice.tray.last_notification == ("Message from Bob", "are you there?")

            alice.prefs = Prefs(previews=False)
            await bob.engine.send(bob_contact.id, "secret plans")
            await until(lambda: alice.tray.unread == 2, what="two unread")
            assert alice.tray.last_notification == ("Message from Bob", "New message")

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
