"""The status bar's connection line: where the relay connection stands, with a countdown to
the next try while it backs off."""

from __future__ import annotations

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QLabel, QWidget

from app.core.engine import Engine
from app.core.events import ConnectionChanged, ConnectionState


class ConnectionLabel(QLabel):
    def __init__(
        self, engine: Engine, embedded_relay: str | None, parent: QWidget | None = None
    ) -> None:
        super().__init__("Connecting…", parent)
        self._engine = engine
        self._embedded = embedded_relay
        self.setAccessibleName("Connection status")
        self._event: ConnectionChanged | None = None
        self._retry_at = 0.0
        self._tick = QTimer(self)
        self._tick.setInterval(1000)
        self._tick.timeout.connect(self.refresh)

    def on_event(self, event: ConnectionChanged) -> None:
        self._event = event
        if event.state is ConnectionState.BACKING_OFF and event.retry_in is not None:
            self._retry_at = event.retry_in
            self._tick.start()
        else:
            self._tick.stop()
        self.refresh()

    def refresh(self) -> None:
        if self._event is None:  # opened after the engine connected: ask where it stands
            states = self._engine.connection_states()
            url = self._engine.relay_url
            if url in states:
                self._event = ConnectionChanged(url, states[url])
        event = self._event
        where = event.url if event else self._engine.relay_url
        if self._embedded is not None:
            where = f"embedded relay at {self._embedded}"
        if event is None or event.state is ConnectionState.CONNECTING:
            text = f"Connecting to {where}…"
        elif event.state is ConnectionState.ONLINE:
            text = f"Online · {where}"
        elif event.state is ConnectionState.BACKING_OFF:
            seconds = max(0, round(self._retry_at))
            self._retry_at -= 1
            text = f"Relay unreachable · retrying in {seconds} s · {where}"
        else:
            text = f"Offline · {where}"
        self.setText(text)

    def stop(self) -> None:
        self._tick.stop()
