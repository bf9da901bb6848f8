-- Mailwarden store, SQLite dialect, migration 11: small messages live in the database.
-- A message up to the inline limit is stored in this table, in the same
-- transaction as its metadata: one fsync (the WAL commit) makes it durable,
-- and many such appends share it.  Larger messages stay in blob files.

CREATE TABLE message_blobs (
    message_id  INTEGER PRIMARY KEY REFERENCES messages(id) ON DELETE CASCADE,
    data        BLOB NOT NULL
);
