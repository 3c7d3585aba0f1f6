-- A mailbox listens on (ours) or is written to through (theirs) its relay and then, when that
-- one is out of reach, these fallback relays in order: space-separated relay URLs, at most two.
-- A move to other relays is a control frame in the outbox, resent until the contact answers on
-- the new mailbox; every received frame looks those up by contact.
ALTER TABLE our_mailboxes ADD COLUMN fallbacks TEXT NOT NULL DEFAULT '';
ALTER TABLE their_mailboxes ADD COLUMN fallbacks TEXT NOT NULL DEFAULT '';
CREATE INDEX outbox_moves ON outbox (contact_id) WHERE kind = 'control';
