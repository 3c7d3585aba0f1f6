"""The add-contact dialog has the engine read the code and says what adding it would do: add
someone new, nothing for a contact or a pending request, reconnect someone deleted or
blocked."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from app.domain.contacts import ContactState
from app.ui.dialogs import AddContactDialog
from app.ui.text import safe_text
from app.ui.window import MainWindow
from tests.ui.conftest import headless, me_and_peers, peer_card, until, write_to


async def scanned(window: MainWindow, text: str) -> AddContactDialog:
    """The dialog with `text` pasted in, once it has said whose code it is (or why not)."""
    dialog = window.show_add_contact()
    dialog.text.setPlainText(text)
    await until(lambda: dialog.whose.text() or dialog.error.isVisibleTo(dialog), what="the verdict")
    return dialog


def test_adding_says_what_it_will_do(run, tmp_path: Path) -> None:
    async def body() -> None:
        async with me_and_peers(tmp_path) as (window, url, peers):
            engine = window.engine
            card = await peer_card(tmp_path / "peer", url)
            peer = safe_text("Peer")

            dialog = await scanned(window, "anonchat:not a code")
            assert "Not a valid AnonChat code" in dialog.error.text()
            assert not dialog.whose.text()
            assert not dialog.add_button.isEnabled()
            dialog.close()

            dialog = await scanned(window, card)
            assert dialog.whose.text().startswith(f"This is the code of {peer} (relay ")
            assert dialog.add_button.isEnabled()
            dialog.close()

            contact = await engine.add_contact(card)
            dialog = await scanned(window, card)
            assert dialog.whose.text() == f"This is the code of {peer}, who is already a contact."
            assert not dialog.add_button.isEnabled()
            dialog.close()

            await engine.delete_contact(contact.id, keep_history=True)
            dialog = await scanned(window, card)
            assert dialog.whose.text() == (
                f"This is the code of {peer}, whom you deleted. Adding them reconnects you."
            )
            assert dialog.add_button.isEnabled()
            dialog.close()

            await engine.block(contact.id)
            dialog = await scanned(window, card)
            assert dialog.whose.text() == (
                f"This is the code of {peer}, whom you blocked. Adding them reconnects you "
                "and unblocks them."
            )
            assert dialog.add_button.isEnabled()
            QTest.mouseClick(dialog.add_button, Qt.MouseButton.LeftButton)
            await until(
                lambda: (
                    window.contacts.rowCount() == 1
                    and window.contacts.summary(0).contact.state is ContactState.CONTACT
                    and not window.contacts.summary(0).contact.blocked
                ),
                what="the contact back",
            )
            assert window.showing(contact.id)

            peers.append(stranger := await headless(tmp_path / "stranger", "Stranger", url))
            await write_to(stranger, await engine.card(), "hello")
            await until(lambda: window.requests.model.rowCount() == 1, what="the request")
            dialog = await scanned(window, await stranger.card())
            assert dialog.whose.text() == (
                f"This is the code of {safe_text('Stranger')}, who has already asked to talk "
                "to you: accept their message request instead."
            )
            assert not dialog.add_button.isEnabled()
            dialog.close()

    run(body())
