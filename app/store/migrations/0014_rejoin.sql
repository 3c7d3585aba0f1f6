-- Coming back from a backup (docs/backup.md): each side of a channel gives the other an X25519
-- prekey of its own over that channel. A profile restored from a backup opens a fresh session
-- with the contact under the same identity key, sealed to the contact's prekey and sent to
-- the mailbox it already writes to; the contact takes it as the same contact and ends the
-- old computer's session.
ALTER TABLE contacts ADD COLUMN rejoin_ours BLOB;     -- our private prekey for them; never backed up
ALTER TABLE contacts ADD COLUMN rejoin_theirs BLOB;   -- their public prekey for us
ALTER TABLE contacts ADD COLUMN rejoin_due INTEGER NOT NULL DEFAULT 0
    CHECK (rejoin_due IN (0, 1));                     -- restored: a fresh handshake is owed
