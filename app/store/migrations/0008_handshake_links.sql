-- `pending_handshakes` keeps every handshake we accepted, answered or not: its replay id and
-- the contact it made, so later frames on our card's mailbox find their session. It is
-- `handshake_links` now, without `state` (empty in every row since migration 7).
-- `handshakes_seen` was never written: replays are refused by the invitation's own record of
-- accepted handshakes.

CREATE TABLE handshake_links (
    id         BLOB    PRIMARY KEY,
    contact_id INTEGER REFERENCES contacts (id) ON DELETE CASCADE,
    mailbox_id BLOB,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO handshake_links (id, contact_id, mailbox_id, created_at)
    SELECT id, contact_id, mailbox_id, created_at FROM pending_handshakes;
DROP TABLE pending_handshakes;

DROP TABLE handshakes_seen;
