"""How people reach you: the four choices of relay, in the wizard and in Settings, each with
one line saying who can reach you with it.

- share a relay on this network: this app runs the relay on every interface and announces it
  (offered only when this computer has a network address);
- use a relay found on this network: a live list of announced relays, searched for while the
  choice is on screen;
- use the relay at a URL;
- this computer only: this app runs the relay on 127.0.0.1.

`chosen()` gives the mode and the URL the card is to carry; for the two relays this app runs,
the URL is where the relay is asked to listen (`ProfileRelay` says where it really does).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QHideEvent, QShowEvent
from PySide6.QtWidgets import (
    QButtonGroup,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QRadioButton,
    QVBoxLayout,
    QWidget,
)

from app.core.errors import UserError
from app.core.profile import DEFAULT_RELAY, RelayMode, check_relay_url
from app.net.discovery import FoundRelay, RelayBrowser
from app.ui.aio import spawn
from app.ui.embedded_relay import share_address, share_url
from app.ui.text import safe_text, sentence
from app.ui.theme import note_label

SHARE_LINE = "People on this network (Wi-Fi, LAN) can reach you while this app runs."
NO_NETWORK_LINE = "Not available: this computer has no network connection."
FOUND_LINE = "Everyone who can reach that relay can reach you, while it runs."
URL_LINE = "Everyone who can reach that relay can reach you."
LOCAL_LINE = "Only other profiles on this computer can reach you."
SEARCHING = "Searching…"
NONE_FOUND = "None found yet"
NONE_FOUND_AFTER_MS = 3000  # "Searching…" turns into "None found yet" after this long


class RelayChoice(QWidget):
    """The four choices. `mode` and `url` select the current one (a URL of mode URL fills the
    field)."""

    found_changed = Signal(object)  # list[FoundRelay], from the browser's callback

    def __init__(
        self,
        mode: RelayMode = RelayMode.LOCAL,
        url: str = "",
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.address = share_address()
        self._url = url
        self.share = QRadioButton("S&hare a relay on this network")
        self.found = QRadioButton("Use a relay found on this net&work")
        self.custom = QRadioButton("Use the relay &at:")
        self.local = QRadioButton("This computer on&ly (for trying AnonChat out)")
        for button in (self.share, self.found, self.custom, self.local):
            button.setAccessibleName(button.text().replace("&", "").rstrip(":"))
        self.group = QButtonGroup(self)
        self.share_line = self._line(SHARE_LINE if self.address else NO_NETWORK_LINE)
        self.share.setEnabled(self.address is not None)
        self.found_line = self._line(FOUND_LINE)
        self.url_line = self._line(URL_LINE)
        self.local_line = self._line(LOCAL_LINE)
        self.found_list = QListWidget()
        self.found_list.setAccessibleName("Relays found on this network")
        self.found_list.setMaximumHeight(96)
        self.found_state = note_label()
        self.found_state.setAccessibleName("Search for relays")
        self.relay = QLineEdit()
        self.relay.setPlaceholderText("ws://host:port or wss://host:port")
        self.relay.setAccessibleName("Relay URL")
        self.error = note_label(error=True)
        self.error.setAccessibleName("Relay error")

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.share)
        layout.addWidget(self.share_line)
        layout.addWidget(self.found)
        layout.addWidget(self.found_line)
        layout.addWidget(self.found_list)
        layout.addWidget(self.found_state)
        layout.addWidget(self.custom)
        layout.addWidget(self.url_line)
        layout.addWidget(self.relay)
        layout.addWidget(self.local)
        layout.addWidget(self.local_line)
        layout.addWidget(self.error)
        for button in (self.share, self.found, self.custom, self.local):
            self.group.addButton(button)
            button.toggled.connect(self._changed)

        self._browser: RelayBrowser | None = None
        self._starting: asyncio.Future[None] | None = None
        self._patience = QTimer(self)
        self._patience.setSingleShot(True)
        self._patience.setInterval(NONE_FOUND_AFTER_MS)
        self._patience.timeout.connect(self._searched)
        self.found_changed.connect(self._show_found)
        self.found_list.itemSelectionChanged.connect(self.error.hide)
        self.relay.textEdited.connect(lambda _: self.error.hide())

        if mode is RelayMode.SHARE:  # kept, even while this computer has no address
            self.share.setChecked(True)
        elif mode is RelayMode.URL:
            self.custom.setChecked(True)
            self.relay.setText(url)
        else:
            self.local.setChecked(True)
        self._changed()

    @staticmethod
    def _line(text: str) -> QLabel:
        line = QLabel(text)
        line.setWordWrap(True)
        line.setIndent(24)
        return line

    def chosen(self) -> tuple[RelayMode, str] | None:
        """The mode and the URL for the card; None, with the reason shown, when the choice
        is not complete (no URL, a malformed one, no relay picked from the list)."""
        self.error.hide()
        if self.share.isChecked():
            # Without an address now, only a profile that shares already has this checked.
            return RelayMode.SHARE, share_url(self.address) if self.address else self._url
        if self.local.isChecked():
            return RelayMode.LOCAL, DEFAULT_RELAY
        if self.found.isChecked():
            picked = self.found_list.selectedItems()
            if not picked:
                self.show_error("Pick a relay from the list, or choose another way.")
                return None
            return RelayMode.URL, str(picked[0].data(Qt.ItemDataRole.UserRole))
        try:
            return RelayMode.URL, check_relay_url(self.relay.text().strip())
        except UserError as exc:
            self.show_error(sentence(str(exc)))
            return None

    def show_error(self, text: str) -> None:
        self.error.setText(text)
        self.error.show()

    def set_enabled(self, enabled: bool) -> None:
        """All choices on or off (while the choice is being applied, or once it is made)."""
        for button in (self.found, self.custom, self.local):
            button.setEnabled(enabled)
        self.share.setEnabled(enabled and self.address is not None)
        self.found_list.setEnabled(enabled)
        self.relay.setEnabled(enabled and self.custom.isChecked())

    # -- the live list ---------------------------------------------------------------------

    def _changed(self) -> None:
        self.error.hide()
        self.relay.setEnabled(self.custom.isChecked() and self.custom.isEnabled())
        self.found_list.setVisible(self.found.isChecked())
        self.found_state.setVisible(self.found.isChecked())
        self._browse()

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self._browse()

    def hideEvent(self, event: QHideEvent) -> None:
        super().hideEvent(event)
        self._browse()

    def _browse(self) -> None:
        """Search while the list is on screen, and only then."""
        wanted = self.found.isChecked() and self.isVisible()
        if wanted and self._browser is None:
            browser = RelayBrowser(on_change=self._on_change)
            self._browser = browser
            self._starting = spawn(browser.start(), "looking for relays")
            self.found_state.setText(SEARCHING)
            self._patience.start()
        elif not wanted and self._browser is not None:
            self.stop()

    def stop(self) -> None:
        """Stop searching (the owner closes; hiding does it too)."""
        browser, self._browser = self._browser, None
        starting, self._starting = self._starting, None
        self._patience.stop()
        if browser is None:
            return
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # hidden as the process ends, its loop gone: nothing to close on
            return
        spawn(self._close(browser, starting), "closing the relay search")

    @staticmethod
    async def _close(browser: RelayBrowser, starting: asyncio.Future[None] | None) -> None:
        if starting is not None:
            with contextlib.suppress(Exception):
                await starting
        await browser.close()

    def _on_change(self, relays: list[FoundRelay]) -> None:
        # By a signal: the browser may call back from another thread.
        with contextlib.suppress(RuntimeError):  # the widget is gone
            self.found_changed.emit(list(relays))

    def _searched(self) -> None:
        if self.found_list.count() == 0:
            self.found_state.setText(NONE_FOUND)

    def _show_found(self, relays: Sequence[FoundRelay]) -> None:
        if self._browser is None:
            return
        picked = self.found_list.selectedItems()
        was = picked[0].data(Qt.ItemDataRole.UserRole) if picked else None
        self.found_list.clear()
        for relay in relays:
            item = QListWidgetItem(f"{safe_text(relay.name)} · {relay.url}")
            item.setData(Qt.ItemDataRole.UserRole, relay.url)
            self.found_list.addItem(item)
            if relay.url == was:
                self.found_list.setCurrentItem(item)
        if relays:
            self.found_state.setText(f"{len(relays)} found: click one to use it.")
        elif not self._patience.isActive():
            self.found_state.setText(NONE_FOUND)
