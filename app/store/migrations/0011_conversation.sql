-- What a conversation adds to its messages: replies, edits, deletion for everyone, reactions
-- and disappearing messages (docs/messages.md).
--
-- A row is a text message or a notice (the timer changed; something arrived that this
-- version cannot show). A reply names the wire id of the message it quotes. An edit keeps the
-- sender's time of the edit whose text `body` is (the latest wins); a message deleted for
-- everyone keeps its row, its text gone. A disappearing message carries its timer and, once
-- its clock runs (at sending for ours, at reading for theirs), the time it is deleted.
ALTER TABLE messages ADD COLUMN kind TEXT NOT NULL DEFAULT 'text'
    CHECK (kind IN ('text', 'timer', 'unsupported'));
ALTER TABLE messages ADD COLUMN reply_to BLOB;
ALTER TABLE messages ADD COLUMN edited_at INTEGER;
ALTER TABLE messages ADD COLUMN deleted INTEGER NOT NULL DEFAULT 0 CHECK (deleted IN (0, 1));
ALTER TABLE messages ADD COLUMN timer_s INTEGER NOT NULL DEFAULT 0 CHECK (timer_s >= 0);
ALTER TABLE messages ADD COLUMN expires_at INTEGER;
-- When the contact's receipts said our message was delivered, and read (our clock).
ALTER TABLE messages ADD COLUMN delivered_at INTEGER;
ALTER TABLE messages ADD COLUMN read_at INTEGER;
CREATE INDEX messages_expiry ON messages (expires_at) WHERE expires_at IS NOT NULL;

-- One reaction per person per message: ours and the contact's. `at` is the reacting side's
-- time, so a late-arriving older change never undoes a newer one; a reaction taken back is
-- an empty `emoji` (kept, for the same reason).
CREATE TABLE reactions (
    message_id INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    from_me    INTEGER NOT NULL CHECK (from_me IN (0, 1)),
    emoji      TEXT    NOT NULL,
    at         INTEGER NOT NULL,
    PRIMARY KEY (message_id, from_me)
) WITHOUT ROWID;

-- The conversation's disappearing-messages timer, and the sender's time it was set at (the
-- latest setting wins, whoever made it).
ALTER TABLE contacts ADD COLUMN timer_s INTEGER NOT NULL DEFAULT 0 CHECK (timer_s >= 0);
ALTER TABLE contacts ADD COLUMN timer_at INTEGER NOT NULL DEFAULT 0;

-- An update (edit, deletion, reaction) waits in the outbox as a control frame, resent until
-- the contact's receipt names its wire id.
ALTER TABLE outbox ADD COLUMN frame_id BLOB;
CREATE INDEX outbox_updates ON outbox (contact_id, frame_id) WHERE frame_id IS NOT NULL;

-- The updates we applied, by wire id: a resend whose receipt was lost is acknowledged again
-- and applied once. Forgotten after a while (the sender stops resending long before).
CREATE TABLE received_updates (
    contact_id INTEGER NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    frame_id   BLOB    NOT NULL,
    at         INTEGER NOT NULL,
    PRIMARY KEY (contact_id, frame_id)
) WITHOUT ROWID;

-- A deleted or edited message's words leave the search index for good: FTS5 removes them
-- from its pages instead of marking them deleted (and secure_delete zeroes the freed pages).
INSERT INTO messages_fts (messages_fts, rank) VALUES ('secure-delete', 1);
