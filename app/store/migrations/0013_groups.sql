-- Groups (docs/groups.md). A group is a conversation row of its own in `contacts` (kind
-- 'group', its identity_keys the 16-byte group id), so its messages, unread count, search and
-- list row work as a contact's do. A member reached only through a group is a row of kind
-- 'member': a session and mailboxes like a contact's, shown in no contact or request list.
-- Each group message names its author (`messages.author_keys`, NULL in a pairwise
-- conversation) and keeps its signed statement, so any member can pass it on.

ALTER TABLE contacts ADD COLUMN kind TEXT NOT NULL DEFAULT 'person'
    CHECK (kind IN ('person', 'member', 'group'));
CREATE INDEX contacts_kind ON contacts (kind, state);

ALTER TABLE messages ADD COLUMN author_keys BLOB;

CREATE TABLE groups (
    contact_id   INTEGER PRIMARY KEY REFERENCES contacts (id) ON DELETE CASCADE,
    group_id     BLOB    NOT NULL UNIQUE CHECK (length(group_id) = 16),
    state        TEXT    NOT NULL CHECK (state IN ('invited', 'joined', 'left', 'removed')),
    invited_by   BLOB,              -- the admin whose invitation we hold or took
    code_mailbox BLOB,              -- our group code's invitation mailbox, once joined
    post_seq     INTEGER NOT NULL DEFAULT 0,  -- our last post number in this group
    event_seq    INTEGER NOT NULL DEFAULT 0   -- our last event number in this group
);
CREATE INDEX groups_code ON groups (code_mailbox) WHERE code_mailbox IS NOT NULL;

-- Everyone who is or was a member: current ones have state 'member'.
CREATE TABLE group_members (
    group_row     INTEGER NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    identity_keys BLOB    NOT NULL CHECK (length(identity_keys) = 64),
    name          TEXT    NOT NULL,
    admin         INTEGER NOT NULL DEFAULT 0 CHECK (admin IN (0, 1)),
    state         TEXT    NOT NULL CHECK (state IN ('member', 'removed', 'left')),
    code          TEXT,             -- their group code, once they joined and were introduced
    event_seq     INTEGER NOT NULL DEFAULT 0,  -- the last event of theirs applied (as admin)
    since         INTEGER NOT NULL,            -- the order they were added in
    PRIMARY KEY (group_row, identity_keys)
) WITHOUT ROWID;

-- The membership events applied, in order, with their signatures (the log an invitation
-- carries), and events that came before their turn (at most 64 per group).
CREATE TABLE group_events (
    id        INTEGER PRIMARY KEY,
    group_row INTEGER NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    author    BLOB    NOT NULL,
    seq       INTEGER NOT NULL,
    statement BLOB    NOT NULL,
    signature BLOB    NOT NULL,
    applied   INTEGER NOT NULL CHECK (applied IN (0, 1)),
    UNIQUE (group_row, author, seq)
);

-- Every group message's signed statement (ours too), to pass on to members who lack it. A
-- message deleted here keeps only its (author, number), so it is neither passed on nor taken
-- again: its text goes with it.
CREATE TABLE group_posts (
    group_row  INTEGER NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
    author     BLOB    NOT NULL,
    seq        INTEGER NOT NULL,
    message_id INTEGER REFERENCES messages (id) ON DELETE SET NULL,
    statement  BLOB    NOT NULL,
    signature  BLOB    NOT NULL,
    PRIMARY KEY (group_row, author, seq)
) WITHOUT ROWID;
CREATE INDEX group_posts_message ON group_posts (message_id) WHERE message_id IS NOT NULL;

CREATE TRIGGER group_posts_forget AFTER UPDATE OF message_id ON group_posts
WHEN NEW.message_id IS NULL
BEGIN
    UPDATE group_posts SET statement = x'', signature = x''
    WHERE group_row = NEW.group_row AND author = NEW.author AND seq = NEW.seq;
END;

-- Our group messages' copies, one per member: what "delivered to n of m" counts.
CREATE TABLE group_copies (
    frame_id   BLOB    PRIMARY KEY,
    message_id INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
    member     BLOB    NOT NULL,
    delivered  INTEGER NOT NULL DEFAULT 0 CHECK (delivered IN (0, 1))
) WITHOUT ROWID;
CREATE INDEX group_copies_message ON group_copies (message_id);
CREATE INDEX group_copies_waiting ON group_copies (message_id) WHERE delivered = 0;
