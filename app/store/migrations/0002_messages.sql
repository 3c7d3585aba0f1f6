-- Messages, the outbox, and the unread counters kept in step by triggers (same transaction),
-- so unread counts never need a COUNT(*) over history.

CREATE TABLE messages (
    id          INTEGER PRIMARY KEY,
    contact_id  INTEGER NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    direction   INTEGER NOT NULL CHECK (direction IN (0, 1)),
    msg_id      BLOB    NOT NULL,
    sender_seq  INTEGER NOT NULL,
    body        TEXT    NOT NULL,
    sent_at     INTEGER NOT NULL,
    received_at INTEGER,
    status      TEXT    NOT NULL
                CHECK (status IN ('queued', 'sent', 'delivered', 'read', 'failed')),
    is_read     INTEGER NOT NULL DEFAULT 0 CHECK (is_read IN (0, 1)),
    UNIQUE (contact_id, direction, msg_id)
);
CREATE INDEX messages_page ON messages (contact_id, id);
CREATE INDEX messages_unread ON messages (contact_id, id) WHERE is_read = 0 AND direction = 0;

CREATE TABLE unread_counts (
    contact_id INTEGER PRIMARY KEY REFERENCES contacts (id) ON DELETE CASCADE,
    unread     INTEGER NOT NULL CHECK (unread >= 0)
);

CREATE TRIGGER messages_unread_insert AFTER INSERT ON messages
WHEN NEW.direction = 0 AND NEW.is_read = 0
BEGIN
    INSERT INTO unread_counts (contact_id, unread) VALUES (NEW.contact_id, 1)
    ON CONFLICT (contact_id) DO UPDATE SET unread = unread + 1;
END;

CREATE TRIGGER messages_unread_read AFTER UPDATE OF is_read ON messages
WHEN OLD.direction = 0 AND OLD.is_read = 0 AND NEW.is_read = 1
BEGIN
    UPDATE unread_counts SET unread = unread - 1 WHERE contact_id = OLD.contact_id;
END;

CREATE TRIGGER messages_unread_delete AFTER DELETE ON messages
WHEN OLD.direction = 0 AND OLD.is_read = 0
BEGIN
    UPDATE unread_counts SET unread = unread - 1 WHERE contact_id = OLD.contact_id;
END;

CREATE TABLE outbox (
    id         INTEGER PRIMARY KEY,
    contact_id INTEGER NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    message_id INTEGER REFERENCES messages (id) ON DELETE CASCADE,
    kind       TEXT    NOT NULL CHECK (kind IN ('message', 'receipt', 'control')),
    mailbox_id BLOB    NOT NULL,
    relay_url  TEXT    NOT NULL,
    ciphertext BLOB    NOT NULL,
    attempts   INTEGER NOT NULL DEFAULT 0,
    next_try   INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX outbox_due ON outbox (next_try, id);
CREATE INDEX outbox_message ON outbox (message_id) WHERE message_id IS NOT NULL;
