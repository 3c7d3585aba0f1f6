-- The outbox by contact: receiving a message checks for (and drops) the contact's handshake
-- frames still waiting, and listing a contact's outbox should not scan everyone's.

CREATE INDEX outbox_contact ON outbox (contact_id, id);
