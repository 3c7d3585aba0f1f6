-- Index only the outbox rows that are handshake frames (an introduction or a welcome waiting
-- for the peer's answer), which is what every received frame looks up by contact; the index
-- of migration 4 over every outbox row made each message's transaction write one page more.

DROP INDEX outbox_contact;
CREATE INDEX outbox_handshake_controls ON outbox (contact_id)
    WHERE kind = 'message' AND message_id IS NULL;
