"""The one place engine events enter Qt: each event becomes a signal on the GUI thread.

The engine calls listeners on the asyncio loop, which under qasync is the Qt thread, so the
signals are emitted directly; widgets connect to these signals and never subscribe themselves.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QObject, Signal

from app.core.engine import Engine
from app.core.events import (
    BackupFinished,
    ConnectionChanged,
    ContactAdded,
    ContactChanged,
    ContactLimited,
    ContactRemoved,
    Event,
    FileChanged,
    FrameRejected,
    GroupChanged,
    MessageAdded,
    MessageChanged,
    MessagesRemoved,
    MessageStatusChanged,
    PresenceChanged,
    RequestAdded,
    RequestRemoved,
)


class EngineBridge(QObject):
    connection_changed = Signal(object)  # ConnectionChanged
    contact_added = Signal(object)  # Contact
    contact_changed = Signal(object)  # Contact
    presence_changed = Signal(int, bool)  # contact id, online
    contact_removed = Signal(int)  # contact id
    request_added = Signal(object)  # Contact (a message request)
    request_removed = Signal(int)  # request id
    requests_dirty = Signal()  # anything the requests section shows may have changed
    message_added = Signal(object)  # Message
    message_status_changed = Signal(int, int, str)  # contact id, message row, Status value
    message_changed = Signal(object)  # Message: edited, deleted for everyone, reactions
    messages_removed = Signal(int, object)  # contact id, tuple of message rows
    frame_rejected = Signal(str)
    contact_limited = Signal(object)  # ContactLimited
    contact_dirty = Signal(int)  # anything this contact's list row shows may have changed
    file_changed = Signal(object, float)  # FileInfo, how fast it moves (bytes a second)
    group_changed = Signal(object)  # Group: new, an invitation, or its members or name changed
    backup_finished = Signal(object)  # BackupFinished: a scheduled backup written or failed

    def __init__(self, engine: Engine, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._unsubscribe: Callable[[], None] | None = engine.subscribe(self.on_event)

    def detach(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None

    def on_event(self, event: Event) -> None:
        """The engine's listener: the event's signals, then which row may have changed."""
        match event:
            case ConnectionChanged():
                self.connection_changed.emit(event)
            case ContactAdded(contact):
                self.contact_added.emit(contact)
                self.contact_dirty.emit(contact.id)
            case ContactChanged(contact):
                self.contact_changed.emit(contact)
                self.contact_dirty.emit(contact.id)
            case PresenceChanged(contact_id, online):
                self.presence_changed.emit(contact_id, online)
                self.contact_dirty.emit(contact_id)
            case ContactRemoved(contact_id):
                self.contact_removed.emit(contact_id)
                self.contact_dirty.emit(contact_id)
            case RequestAdded(request):
                self.request_added.emit(request)
                self.requests_dirty.emit()
            case RequestRemoved(request_id):
                self.request_removed.emit(request_id)
                self.requests_dirty.emit()
                self.contact_dirty.emit(request_id)  # accepted: a contact's row now
            case MessageAdded(message):
                self.message_added.emit(message)
                self.contact_dirty.emit(message.contact_id)
                self.requests_dirty.emit()
            case MessageStatusChanged(contact_id, row, status):
                self.message_status_changed.emit(contact_id, row, status.value)
                self.contact_dirty.emit(contact_id)
            case MessageChanged(message):
                self.message_changed.emit(message)
                self.contact_dirty.emit(message.contact_id)
            case MessagesRemoved(contact_id, rows):
                self.messages_removed.emit(contact_id, rows)
                self.contact_dirty.emit(contact_id)
            case FileChanged(info, rate):
                self.file_changed.emit(info, rate)
            case FrameRejected(reason, _):
                self.frame_rejected.emit(reason)
            case ContactLimited():
                self.contact_limited.emit(event)
            case GroupChanged(group):
                self.group_changed.emit(group)
                self.contact_dirty.emit(group.id)
            case BackupFinished():
                self.backup_finished.emit(event)
