-- Status service schema, version 3: admin login throttling.
--
-- One row per throttled key: 'address:<ip or IPv6 /64>' or 'user:<name>'.
-- Failures older than the window start a fresh count; a key over its limit is
-- locked until locked_until, and the lock doubles with every further failure
-- (capped).  A successful login deletes the rows of its address and user.

CREATE TABLE login_failures (
    key TEXT PRIMARY KEY,
    failures INTEGER NOT NULL,
    first_failure_at TEXT NOT NULL,
    last_failure_at TEXT NOT NULL,
    locked_until TEXT
);

-- Addresses an operator has logged in from: the per-user lock does not apply
-- to them, so a flood against one name from elsewhere cannot lock its owner
-- out of the place they normally work from.
CREATE TABLE login_known_addresses (
    username TEXT NOT NULL,
    address TEXT NOT NULL,
    last_success_at TEXT NOT NULL,
    PRIMARY KEY (username, address)
);
