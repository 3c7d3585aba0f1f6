"""The status bar's connection line: the relay in use and where its connection stands, with a
countdown to the next try while it backs off.

Each relay's state is kept apart, by URL: the one in use is the first of the engine's relays
that is online ("via fallback" when that is not the first), else the first relay's own state.
Relays the profile no longer uses (left after a move, or a refused one) are not shown, so a
relay that failed once says nothing about the one in use now.
"""

from __future__ import annotations

import time

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QLabel, QWidget

from app.core.engine import Engine
from app.core.events import ConnectionChanged, ConnectionState


def _key(url: str) -> str:
    """One relay, one key: the engine may spell a URL with or without its final slash."""
    return url.rstrip("/")


class ConnectionLabel(QLabel):
    def __init__(
        self, engine: Engine, embedded_relay: str | None, parent: QWidget | None = None
    ) -> None:
        super().__init__("Connecting…", parent)
        self._engine = engine
        self._embedded = embedded_relay  # the relay this app runs for the profile, if any
        self.setAccessibleName("Connection status")
        self._states: dict[str, ConnectionState] = {}
        self._retry_at: dict[str, float] = {}  # monotonic time of the next try, backing off
        self._tick = QTimer(self)
        self._tick.setInterval(1000)
        self._tick.timeout.connect(self.refresh)

    def set_embedded(self, url: str | None) -> None:
        """The relay this app now runs for the profile (after a change in Settings)."""
        self._embedded = url
        self.refresh()

    def on_event(self, event: ConnectionChanged) -> None:
        key = _key(event.url)
        self._states[key] = event.state
        if event.state is ConnectionState.BACKING_OFF and event.retry_in is not None:
            self._retry_at[key] = time.monotonic() + event.retry_in
        else:
            self._retry_at.pop(key, None)
        self.refresh()

    def _states_now(self) -> dict[str, ConnectionState]:
        """The pool's own word where it has one (it is what the events said, and is there
        for a label opened after the engine connected), else the last event's."""
        live = {_key(url): state for url, state in self._engine.connection_states().items()}
        return {**self._states, **live}

    def _where(self, url: str) -> str:
        if self._embedded is not None and _key(url) == _key(self._embedded):
            return f"your relay at {url}"
        return url

    def refresh(self) -> None:
        relays = self._engine.relays or (self._engine.relay_url,)
        primary = relays[0]
        states = self._states_now()
        online = next((u for u in relays if states.get(_key(u)) is ConnectionState.ONLINE), None)
        state = states.get(_key(primary))
        backing_off = False
        if online is not None and _key(online) == _key(primary):
            text = f"Online · {self._where(primary)}"
        elif online is not None:
            text = f"Online via fallback {self._where(online)}"
        elif state is None or state is ConnectionState.CONNECTING:
            text = f"Connecting to {self._where(primary)}…"
        elif state is ConnectionState.BACKING_OFF:
            backing_off = True
            left = self._retry_at.get(_key(primary), 0.0) - time.monotonic()
            seconds = max(0, round(left))
            text = f"Relay unreachable · retrying in {seconds} s · {self._where(primary)}"
        else:
            text = f"Offline · {self._where(primary)}"
        if backing_off and not self._tick.isActive():
            self._tick.start()
        elif not backing_off:
            self._tick.stop()
        self.setText(text)

    def stop(self) -> None:
        self._tick.stop()
