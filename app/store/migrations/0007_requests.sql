-- Message requests and blocks. A handshake under an identity key we do not know arrives as a
-- request (a contacts row in state 'request', kept apart from contacts) instead of changing an
-- existing contact; 'ended' is a contact deleted with its history kept, or blocked. Blocking
-- remembers the identity key, so later handshakes from it are dropped.
-- A contact we added from their card waits for exactly one welcome: `awaiting_welcome`.
-- The "held key change" of earlier versions is gone: its held frame and flag are dropped, and
-- the stranger's first frame, which their client resends until answered, arrives again as a
-- request.

ALTER TABLE contacts ADD COLUMN state TEXT NOT NULL DEFAULT 'contact'
    CHECK (state IN ('contact', 'request', 'ended'));
ALTER TABLE contacts ADD COLUMN awaiting_welcome INTEGER NOT NULL DEFAULT 0
    CHECK (awaiting_welcome IN (0, 1));
CREATE INDEX contacts_state ON contacts (state, created_at, id);

CREATE TABLE blocked_keys (
    identity_keys BLOB    PRIMARY KEY,
    blocked_at    INTEGER NOT NULL
) WITHOUT ROWID;

-- Handshakes we started and that have not been answered yet: our introduction still waits in
-- the outbox, we write to the card's mailbox only, and no first frame of theirs links to us.
UPDATE contacts SET awaiting_welcome = 1
WHERE id IN (SELECT contact_id FROM outbox WHERE kind = 'message' AND message_id IS NULL)
  AND id NOT IN (SELECT contact_id FROM pending_handshakes WHERE contact_id IS NOT NULL)
  AND (SELECT count(*) FROM their_mailboxes t WHERE t.contact_id = contacts.id) = 1;

DELETE FROM pending_handshakes WHERE length(state) > 0;
ALTER TABLE contacts DROP COLUMN pending_keys;
