-- Profile identity, settings, contacts, ratchet sessions, mailboxes, handshakes.
-- Key material is stored as opaque versioned blobs; only app/crypto knows their layout.

CREATE TABLE profile (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    identity     BLOB    NOT NULL,
    display_name TEXT    NOT NULL,
    created_at   INTEGER NOT NULL
);

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;

CREATE TABLE contacts (
    id                 INTEGER PRIMARY KEY,
    display_name       TEXT    NOT NULL,
    identity_keys      BLOB    NOT NULL,
    verified           INTEGER NOT NULL DEFAULT 0 CHECK (verified IN (0, 1)),
    pending_keys       BLOB,
    created_at         INTEGER NOT NULL
);
CREATE INDEX contacts_identity ON contacts (identity_keys);

CREATE TABLE contact_key_history (
    id            INTEGER PRIMARY KEY,
    contact_id    INTEGER NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    identity_keys BLOB    NOT NULL,
    replaced_at   INTEGER NOT NULL
);
CREATE INDEX contact_key_history_contact ON contact_key_history (contact_id, id);

CREATE TABLE sessions (
    contact_id INTEGER PRIMARY KEY REFERENCES contacts (id) ON DELETE CASCADE,
    state      BLOB    NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE our_mailboxes (
    id          BLOB    PRIMARY KEY,
    private_key BLOB    NOT NULL,
    relay_url   TEXT    NOT NULL,
    purpose     TEXT    NOT NULL CHECK (purpose IN ('invitation', 'contact')),
    contact_id  INTEGER REFERENCES contacts (id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX our_mailboxes_contact ON our_mailboxes (contact_id);

CREATE TABLE their_mailboxes (
    id         BLOB    PRIMARY KEY,
    relay_url  TEXT    NOT NULL,
    contact_id INTEGER NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX their_mailboxes_contact ON their_mailboxes (contact_id);

CREATE TABLE pending_handshakes (
    id         BLOB    PRIMARY KEY,
    contact_id INTEGER REFERENCES contacts (id) ON DELETE CASCADE,
    mailbox_id BLOB,
    state      BLOB    NOT NULL,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;

-- Replay protection for first handshake messages: a digest seen once is refused again.
CREATE TABLE handshakes_seen (
    digest  BLOB    PRIMARY KEY,
    seen_at INTEGER NOT NULL
) WITHOUT ROWID;
