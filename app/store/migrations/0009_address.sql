-- Cards are one-time codes now, and a long-lived address is named by the setting
-- `address_mailbox` (the hex id of its mailbox). A profile made before keeps the card it has
-- given out working: its newest card mailbox becomes its address.
INSERT OR IGNORE INTO settings (key, value)
    SELECT 'address_mailbox', lower(hex(id)) FROM our_mailboxes
    WHERE purpose = 'invitation'
    ORDER BY created_at DESC, id DESC
    LIMIT 1;
