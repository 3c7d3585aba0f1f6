-- Files and pictures (docs/messages.md, "Files"). A file belongs to one message, whose text
-- is its caption; deleting the message deletes the row, and the engine then deletes the
-- file at rest that no row names any more.
--
-- At rest a file is its sealed pieces laid end to end under `disk_name` in the profile's
-- files folder, sealed under `file_key`, which only this database holds. `held` is the bitmap
-- of the pieces on disk (bit i of byte i / 8, lowest first); it only ever names pieces
-- already written and flushed, so after a crash the transfer asks for the rest.
CREATE TABLE files (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id     INTEGER NOT NULL UNIQUE REFERENCES messages (id) ON DELETE CASCADE,
    contact_id     INTEGER NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    direction      INTEGER NOT NULL CHECK (direction IN (0, 1)),
    file_id        BLOB    NOT NULL CHECK (length(file_id) = 16),
    name           TEXT    NOT NULL,
    size           INTEGER NOT NULL CHECK (size BETWEEN 0 AND 2147483648),
    mime           TEXT    NOT NULL,
    sha256         BLOB    NOT NULL CHECK (length(sha256) = 32),
    file_key       BLOB    NOT NULL CHECK (length(file_key) = 32),
    thumbnail      BLOB    NOT NULL DEFAULT x'',
    disk_name      TEXT    NOT NULL UNIQUE,
    state          TEXT    NOT NULL
        CHECK (state IN ('offered', 'queued', 'transferring', 'complete', 'failed', 'cancelled')),
    error          TEXT    NOT NULL DEFAULT '',
    held           BLOB    NOT NULL DEFAULT x'',
    received_bytes INTEGER NOT NULL DEFAULT 0,
    sent_bytes     INTEGER NOT NULL DEFAULT 0,
    UNIQUE (contact_id, direction, file_id)
);
CREATE INDEX files_contact ON files (contact_id);
