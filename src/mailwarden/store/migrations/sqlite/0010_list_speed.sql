-- Mailwarden store, SQLite dialect, migration 10: fast folder listings.
-- Lists sort by date through an index on entries instead of joining every
-- message, and the large facts JSON moves out of the rows a list reads.

ALTER TABLE entries ADD COLUMN sort_date INTEGER NOT NULL DEFAULT 0;
ALTER TABLE entries ADD COLUMN sort_from TEXT NOT NULL DEFAULT '';
ALTER TABLE entries ADD COLUMN sort_subject TEXT NOT NULL DEFAULT '';
UPDATE entries SET
    sort_date = (SELECT coalesce(m.sent_date, entries.internal_date) FROM messages m
                 WHERE m.id = entries.message_id),
    sort_from = (SELECT lower(m.from_name || m.from_addr) FROM messages m
                 WHERE m.id = entries.message_id),
    sort_subject = (SELECT lower(m.subject) FROM messages m WHERE m.id = entries.message_id);
CREATE INDEX entries_date ON entries(folder_id, sort_date, uid);
CREATE INDEX entries_from ON entries(folder_id, sort_from, uid);
CREATE INDEX entries_subject ON entries(folder_id, sort_subject, uid);
CREATE INDEX entries_size ON entries(folder_id, size, uid);

CREATE TABLE message_facts (
    message_id  INTEGER PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,
    facts       TEXT NOT NULL
);
INSERT INTO message_facts (message_id, facts) SELECT id, facts FROM messages;
ALTER TABLE messages DROP COLUMN facts;
