-- Status service schema, version 2: drain requests survive a restart.
--
-- A row is a drain call (on or off) that a node has not acknowledged yet.  It
-- is written in the same transaction that moves the maintenance window, and
-- deleted when the node answers 2xx, so a status process that stops between
-- the two (or a `status tick` run from cron) never forgets to drain a node or
-- to lift the drain.  At most one row per (node, window): "off" replaces a
-- pending "on" of the same window.

CREATE TABLE drain_requests (
    id INTEGER PRIMARY KEY,
    node_url TEXT NOT NULL,
    maintenance_id INTEGER NOT NULL REFERENCES maintenances(id) ON DELETE CASCADE,
    drain INTEGER NOT NULL,
    requested_at TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    last_error TEXT NOT NULL DEFAULT '',
    UNIQUE (node_url, maintenance_id)
);
