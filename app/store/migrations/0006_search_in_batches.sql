-- The search index takes new messages in batches instead of one at a time: a message's own
-- transaction no longer writes an FTS5 segment, structure and size record of its own (about
-- six of the fifteen pages each received message wrote). `search_progress` says how far the
-- index has got; the store indexes what lies beyond it every SEARCH_BATCH messages and
-- before every search, so a search still finds everything stored.

CREATE TABLE search_progress (
    id           INTEGER PRIMARY KEY CHECK (id = 1),
    indexed_upto INTEGER NOT NULL
);
INSERT INTO search_progress (id, indexed_upto)
    VALUES (1, (SELECT coalesce(max(id), 0) FROM messages));

DROP TRIGGER messages_fts_insert;
DROP TRIGGER messages_fts_delete;
DROP TRIGGER messages_fts_update;

-- A row id at or below the mark is reused only after the newest message was deleted; such a
-- message is indexed at once, since the batches only look beyond the mark.
CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages
WHEN NEW.id <= (SELECT indexed_upto FROM search_progress)
BEGIN
    INSERT INTO messages_fts (rowid, body) VALUES (NEW.id, NEW.body);
END;

-- Only what is in the index is taken out of it (FTS5 needs the exact indexed text).
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages
WHEN OLD.id <= (SELECT indexed_upto FROM search_progress)
BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, body) VALUES ('delete', OLD.id, OLD.body);
END;

CREATE TRIGGER messages_fts_update AFTER UPDATE OF body ON messages
WHEN OLD.id <= (SELECT indexed_upto FROM search_progress)
BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, body) VALUES ('delete', OLD.id, OLD.body);
    INSERT INTO messages_fts (rowid, body) VALUES (NEW.id, NEW.body);
END;
