"""How the profile reaches its relays: the proxy option (wizard and settings) and the
isolation choice (settings). The engine checks the proxy URL; its refusal is shown under the
field. Both settings apply when the engine next starts, that is when the profile is next
opened."""

from __future__ import annotations

from PySide6.QtWidgets import QCheckBox, QComboBox, QLineEdit, QVBoxLayout, QWidget

from app.core.routing import Isolation
from app.ui.theme import note_label

TOR_PROXY = "socks5h://127.0.0.1:9050"  # the Tor service's SOCKS port (Tor Browser: 9150)

ISOLATION_LABELS: dict[Isolation | None, str] = {
    None: "Default",
    Isolation.PER_CONTACT: "Separate connection for each contact",
    Isolation.CARD_APART: "Keep my code's connection apart",
    Isolation.SHARED: "One connection",
}
ISOLATION_DEFAULT_NOTE = (
    "Default: a separate connection for each contact with a proxy, and your code's "
    "connection kept apart without one (without a proxy the relay sees one address for all "
    "of them anyway)."
)
NEXT_OPEN_NOTE = "Proxy and connection changes apply when the profile is next opened."


class ProxyChoice(QWidget):
    """A checkbox to use a SOCKS5 proxy and the proxy's URL, with the engine's refusal under
    it. `chosen()` is what to hand to `Engine.set_proxy`: the URL, or None for direct."""

    def __init__(self, current: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.error = note_label(error=True)
        self.error.setAccessibleName("Proxy error")
        self.use = QCheckBox("Connect through a &proxy (Tor)")
        self.use.setAccessibleName("Connect through a proxy (Tor)")
        self.use.setChecked(bool(current))
        self.url = QLineEdit(current or TOR_PROXY)
        self.url.setAccessibleName("Proxy URL")
        self.url.setPlaceholderText(TOR_PROXY)
        self.url.setEnabled(self.use.isChecked())
        self.use.toggled.connect(self.url.setEnabled)
        self.use.toggled.connect(lambda _: self.error.hide())
        self.url.textEdited.connect(lambda _: self.error.hide())
        self.note = note_label()
        self.note.setText(
            "Every connection to a relay goes through the proxy, so relays see its address "
            "instead of yours. While the proxy is down, nothing is sent or received."
        )
        self.note.show()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.use)
        layout.addWidget(self.url)
        layout.addWidget(self.error)
        layout.addWidget(self.note)

    def chosen(self) -> str | None:
        return self.url.text().strip() if self.use.isChecked() else None

    def filled(self) -> bool:
        """False, said under the field, when the box is ticked and the field left empty."""
        if self.chosen() == "":
            self.show_error(f"Enter the proxy's address, such as {TOR_PROXY}.")
            return False
        return True

    def show_error(self, text: str) -> None:
        self.error.setText(text)
        self.error.show()


def isolation_box(chosen: Isolation | None) -> QComboBox:
    """The isolation choices, "Default" (None) first, with `chosen` selected; read the
    choice back with `chosen_isolation`."""
    box = QComboBox()
    box.setAccessibleName("Connections")
    for value, label in ISOLATION_LABELS.items():
        box.addItem(label, value.value if value else "")
    box.setCurrentIndex(list(ISOLATION_LABELS).index(chosen))
    return box


def chosen_isolation(box: QComboBox) -> Isolation | None:
    data = box.currentData()
    return Isolation(data) if data else None
