-- Mailwarden store, SQLite dialect, migration 2: durable auth state.
-- Written by the admin tools and the node; the node re-reads rows whose seq is
-- above the last one it saw (one sequence shared by every auth table).

CREATE TABLE auth_meta (
    id      INTEGER PRIMARY KEY CHECK (id = 1),
    seq     INTEGER NOT NULL
);
INSERT INTO auth_meta (id, seq) VALUES (1, 0);

-- Bans, automatic and by hand; ended and lifted ones stay for history.
CREATE TABLE auth_bans (
    id          INTEGER PRIMARY KEY,
    network     TEXT NOT NULL,              -- 192.0.2.0/24, 2001:db8::/48
    since       REAL NOT NULL,
    until       REAL,                       -- NULL: until lifted
    rule        TEXT NOT NULL,              -- host-failures, site-failures, wide-failures, admin
    reason      TEXT NOT NULL DEFAULT '',
    level       INTEGER NOT NULL DEFAULT 0,
    counts      TEXT NOT NULL DEFAULT '{}', -- JSON object scope -> count
    lifted      REAL,                       -- when an operator lifted it
    seq         INTEGER NOT NULL
);
CREATE INDEX auth_bans_seq ON auth_bans(seq);
CREATE INDEX auth_bans_network ON auth_bans(network);
CREATE INDEX auth_bans_since ON auth_bans(since);

CREATE TABLE auth_allow (
    network     TEXT PRIMARY KEY,
    note        TEXT NOT NULL DEFAULT '',
    created     REAL NOT NULL,
    removed     INTEGER NOT NULL DEFAULT 0,
    seq         INTEGER NOT NULL
);
CREATE INDEX auth_allow_seq ON auth_allow(seq);

-- Locks and token epochs per account (no foreign key: a removed account's
-- row is harmless and the auth tables must not slow account removal).
CREATE TABLE auth_accounts (
    account_id  INTEGER PRIMARY KEY,
    locked      INTEGER NOT NULL DEFAULT 0,
    reason      TEXT NOT NULL DEFAULT '',
    since       REAL NOT NULL DEFAULT 0,
    epoch       INTEGER NOT NULL DEFAULT 0,
    seq         INTEGER NOT NULL
);
CREATE INDEX auth_accounts_seq ON auth_accounts(seq);

CREATE TABLE auth_app_passwords (
    id          INTEGER PRIMARY KEY,
    account_id  INTEGER NOT NULL,
    label       TEXT NOT NULL DEFAULT '',
    digest      TEXT NOT NULL UNIQUE,       -- hex SHA-256 of the random password
    created     REAL NOT NULL,
    revoked     INTEGER NOT NULL DEFAULT 0,
    seq         INTEGER NOT NULL
);
CREATE INDEX auth_app_passwords_account ON auth_app_passwords(account_id);
CREATE INDEX auth_app_passwords_seq ON auth_app_passwords(seq);

CREATE TABLE auth_known (
    account_id  INTEGER NOT NULL,
    user_key    TEXT NOT NULL,
    network     TEXT NOT NULL,
    last_seen   REAL NOT NULL,
    PRIMARY KEY (account_id, network)
) WITHOUT ROWID;
CREATE INDEX auth_known_seen ON auth_known(last_seen);

CREATE TABLE auth_audit (
    id          INTEGER PRIMARY KEY,
    at          REAL NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    target      TEXT NOT NULL,
    detail      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX auth_audit_target ON auth_audit(target);

CREATE TABLE auth_stats (
    node        TEXT PRIMARY KEY,
    at          REAL NOT NULL,
    data        TEXT NOT NULL               -- JSON
);
