-- Mailwarden store, SQLite dialect, migration 1: tenants, folders, messages, queue.

CREATE TABLE domains (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,            -- A-label, lower case
    alias_of    INTEGER REFERENCES domains(id) ON DELETE CASCADE,
    created     INTEGER NOT NULL
);

CREATE TABLE accounts (
    id                  INTEGER PRIMARY KEY,
    domain_id           INTEGER NOT NULL REFERENCES domains(id),
    address             TEXT NOT NULL,           -- as created: local@a-label
    address_key         TEXT NOT NULL UNIQUE,    -- lower-cased local part
    display_name        TEXT NOT NULL DEFAULT '',
    password_hash       TEXT NOT NULL,
    credential_version  INTEGER NOT NULL DEFAULT 1,
    status              TEXT NOT NULL DEFAULT 'active',
    quota_bytes         INTEGER NOT NULL DEFAULT 0,
    quota_messages      INTEGER NOT NULL DEFAULT 0,
    used_bytes          INTEGER NOT NULL DEFAULT 0,
    used_messages       INTEGER NOT NULL DEFAULT 0,
    created             INTEGER NOT NULL
);
CREATE INDEX accounts_domain ON accounts(domain_id);

CREATE TABLE aliases (
    id          INTEGER PRIMARY KEY,
    domain_id   INTEGER NOT NULL REFERENCES domains(id),
    source_key  TEXT NOT NULL UNIQUE,            -- local@domain lower-cased, or @domain
    targets     TEXT NOT NULL                    -- newline-separated addresses
);
CREATE INDEX aliases_domain ON aliases(domain_id);

CREATE TABLE folders (
    id              INTEGER PRIMARY KEY,
    account_id      INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name            TEXT NOT NULL,
    name_key        TEXT NOT NULL,               -- INBOX upper-cased, else as name
    special_use     TEXT,
    uidvalidity     INTEGER NOT NULL,
    uidnext         INTEGER NOT NULL DEFAULT 1,
    highestmodseq   INTEGER NOT NULL DEFAULT 1,
    subscribed      INTEGER NOT NULL DEFAULT 1,
    UNIQUE (account_id, name_key)
);

-- One row per stored blob (a delivery to many, or copies, share it) with the
-- facts computed at delivery.
CREATE TABLE messages (
    id              INTEGER PRIMARY KEY,
    blob            TEXT NOT NULL UNIQUE,        -- blob file name (random)
    sha256          TEXT NOT NULL,
    size            INTEGER NOT NULL,
    refs            INTEGER NOT NULL,
    facts           TEXT NOT NULL,               -- MessageFacts JSON
    subject         TEXT NOT NULL DEFAULT '',
    from_name       TEXT NOT NULL DEFAULT '',
    from_addr       TEXT NOT NULL DEFAULT '',
    to_addrs        TEXT NOT NULL DEFAULT '',
    sent_date       INTEGER,
    preview         TEXT NOT NULL DEFAULT '',
    has_attachments INTEGER NOT NULL DEFAULT 0,
    thread_key      TEXT NOT NULL DEFAULT ''
);

-- A message's place in a folder. flags: bit 0 \Seen, 1 \Answered, 2 \Flagged,
-- 3 \Deleted, 4 \Draft; keywords space-separated.
CREATE TABLE entries (
    folder_id       INTEGER NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
    uid             INTEGER NOT NULL,
    message_id      INTEGER NOT NULL REFERENCES messages(id),
    flags           INTEGER NOT NULL DEFAULT 0,
    keywords        TEXT NOT NULL DEFAULT '',
    internal_date   INTEGER NOT NULL,
    size            INTEGER NOT NULL,
    modseq          INTEGER NOT NULL,
    PRIMARY KEY (folder_id, uid)
) WITHOUT ROWID;
CREATE INDEX entries_modseq ON entries(folder_id, modseq);
CREATE INDEX entries_message ON entries(message_id);

-- Expunged UIDs with the modseq of their removal (RFC 7162 QRESYNC VANISHED).
CREATE TABLE vanished (
    folder_id   INTEGER NOT NULL REFERENCES folders(id) ON DELETE CASCADE,
    uid         INTEGER NOT NULL,
    modseq      INTEGER NOT NULL,
    PRIMARY KEY (folder_id, uid)
) WITHOUT ROWID;

CREATE TABLE outbound_queue (
    id              INTEGER PRIMARY KEY,
    account_id      INTEGER REFERENCES accounts(id) ON DELETE SET NULL,
    mail_from       TEXT NOT NULL,
    recipients      TEXT NOT NULL,               -- newline-separated
    message_id      INTEGER NOT NULL REFERENCES messages(id),
    size            INTEGER NOT NULL,
    dsn             TEXT NOT NULL DEFAULT '{}',
    created         INTEGER NOT NULL,
    next_attempt    INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT NOT NULL DEFAULT ''
);

CREATE TABLE meta (
    key     TEXT PRIMARY KEY,
    value   TEXT NOT NULL
);
