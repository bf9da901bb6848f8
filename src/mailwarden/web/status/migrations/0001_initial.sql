-- Status service schema, version 1.  Times are ISO-8601 UTC text (model.to_db).

CREATE TABLE component_groups (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    position INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE components (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    group_id INTEGER REFERENCES component_groups(id),
    position INTEGER NOT NULL DEFAULT 0,
    -- status set by operators and incident updates
    status TEXT NOT NULL DEFAULT 'operational',
    -- status set by the probes (hysteresis applied)
    probe_status TEXT NOT NULL DEFAULT 'operational',
    -- what the page shows, derived from the two above, maintenance and dependencies
    effective_status TEXT NOT NULL DEFAULT 'operational',
    effective_cause TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE TABLE component_dependencies (
    component_id INTEGER NOT NULL REFERENCES components(id) ON DELETE CASCADE,
    depends_on_id INTEGER NOT NULL REFERENCES components(id) ON DELETE CASCADE,
    PRIMARY KEY (component_id, depends_on_id)
);

-- One row per stretch of time a component spent in one effective status.
CREATE TABLE status_intervals (
    id INTEGER PRIMARY KEY,
    component_id INTEGER NOT NULL REFERENCES components(id) ON DELETE CASCADE,
    status TEXT NOT NULL,
    started_at TEXT NOT NULL,
    ended_at TEXT
);
CREATE INDEX status_intervals_by_component ON status_intervals(component_id, started_at);

CREATE TABLE incidents (
    id INTEGER PRIMARY KEY,
    title TEXT NOT NULL,
    impact TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at TEXT NOT NULL,
    resolved_at TEXT,
    monitoring_at TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    report_summary TEXT NOT NULL DEFAULT '',
    report_client_impact TEXT NOT NULL DEFAULT '',
    report_remediation TEXT NOT NULL DEFAULT '',
    report_posted_at TEXT
);

CREATE TABLE incident_components (
    incident_id INTEGER NOT NULL REFERENCES incidents(id) ON DELETE CASCADE,
    component_id INTEGER NOT NULL REFERENCES components(id) ON DELETE CASCADE,
    PRIMARY KEY (incident_id, component_id)
);

CREATE TABLE incident_updates (
    id INTEGER PRIMARY KEY,
    incident_id INTEGER NOT NULL REFERENCES incidents(id) ON DELETE CASCADE,
    status TEXT NOT NULL,
    body TEXT NOT NULL,
    display_at TEXT NOT NULL,
    created_at TEXT NOT NULL,
    notify INTEGER NOT NULL DEFAULT 1,
    author TEXT NOT NULL DEFAULT ''
);
CREATE INDEX incident_updates_by_incident ON incident_updates(incident_id, display_at);

CREATE TABLE incident_update_components (
    update_id INTEGER NOT NULL REFERENCES incident_updates(id) ON DELETE CASCADE,
    component_id INTEGER NOT NULL REFERENCES components(id) ON DELETE CASCADE,
    old_status TEXT NOT NULL,
    new_status TEXT NOT NULL,
    PRIMARY KEY (update_id, component_id)
);

CREATE TABLE incident_templates (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    impact TEXT NOT NULL DEFAULT 'minor',
    status TEXT NOT NULL DEFAULT 'investigating'
);

CREATE TABLE maintenance_series (
    id INTEGER PRIMARY KEY,
    rrule TEXT NOT NULL,
    dtstart TEXT NOT NULL,
    length_seconds INTEGER NOT NULL,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    drain INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    cancelled_at TEXT
);

CREATE TABLE maintenances (
    id INTEGER PRIMARY KEY,
    series_id INTEGER REFERENCES maintenance_series(id),
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL,
    planned_start TEXT NOT NULL,
    planned_end TEXT NOT NULL,
    actual_start TEXT,
    actual_end TEXT,
    drain INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX maintenances_by_start ON maintenances(planned_start);

CREATE TABLE maintenance_components (
    maintenance_id INTEGER NOT NULL REFERENCES maintenances(id) ON DELETE CASCADE,
    component_id INTEGER NOT NULL REFERENCES components(id) ON DELETE CASCADE,
    PRIMARY KEY (maintenance_id, component_id)
);

CREATE TABLE series_components (
    series_id INTEGER NOT NULL REFERENCES maintenance_series(id) ON DELETE CASCADE,
    component_id INTEGER NOT NULL REFERENCES components(id) ON DELETE CASCADE,
    PRIMARY KEY (series_id, component_id)
);

CREATE TABLE maintenance_reminders (
    maintenance_id INTEGER NOT NULL REFERENCES maintenances(id) ON DELETE CASCADE,
    lead_seconds INTEGER NOT NULL,
    sent_at TEXT NOT NULL,
    PRIMARY KEY (maintenance_id, lead_seconds)
);

CREATE TABLE subscribers (
    id INTEGER PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    token TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    confirmed_at TEXT,
    unsubscribed_at TEXT,
    quarantined_at TEXT,
    quarantine_reason TEXT NOT NULL DEFAULT ''
);

-- No rows for a subscriber means "every component".
CREATE TABLE subscriber_components (
    subscriber_id INTEGER NOT NULL REFERENCES subscribers(id) ON DELETE CASCADE,
    component_id INTEGER NOT NULL REFERENCES components(id) ON DELETE CASCADE,
    PRIMARY KEY (subscriber_id, component_id)
);

CREATE TABLE webhooks (
    id INTEGER PRIMARY KEY,
    url TEXT NOT NULL,
    secret TEXT NOT NULL,
    created_at TEXT NOT NULL,
    active INTEGER NOT NULL DEFAULT 1
);

-- Notifications waiting to go out (mail or webhook), retried with back-off.
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,           -- 'email' or 'webhook'
    target_id INTEGER NOT NULL,   -- subscribers.id or webhooks.id
    subject TEXT NOT NULL DEFAULT '',
    payload TEXT NOT NULL,        -- mail text or JSON body
    created_at TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    delivered_at TEXT,
    failed_at TEXT,
    last_error TEXT NOT NULL DEFAULT ''
);
CREATE INDEX outbox_due ON outbox(delivered_at, failed_at, next_attempt_at);

CREATE TABLE probe_results (
    id INTEGER PRIMARY KEY,
    probe TEXT NOT NULL,
    at TEXT NOT NULL,
    ok INTEGER NOT NULL,
    latency_ms INTEGER,
    detail TEXT NOT NULL DEFAULT '',
    muted INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX probe_results_by_probe ON probe_results(probe, at);

CREATE TABLE probe_state (
    probe TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    failures INTEGER NOT NULL DEFAULT 0,
    slow INTEGER NOT NULL DEFAULT 0,
    successes INTEGER NOT NULL DEFAULT 0,
    fast INTEGER NOT NULL DEFAULT 0,
    updated_at TEXT NOT NULL
);

CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf TEXT NOT NULL,
    expires_at TEXT NOT NULL
);

CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL DEFAULT '',
    detail TEXT NOT NULL DEFAULT ''
);

INSERT INTO incident_templates (name, title, body, impact, status) VALUES
 ('webmail-slow', 'Webmail slowness',
  'Webmail is responding slowly for some users. Our engineers are investigating. We will post another update within one hour.',
  'minor', 'investigating'),
 ('login-failures', 'Login failures',
  'Some users may be unable to log in via Webmail, IMAP or POP3. Our engineers are aware of the situation and working to resolve it. We will post updates as soon as more information is available.',
  'major', 'investigating'),
 ('delivery-delays', 'Email delivery delays',
  'Incoming email is being delivered with delays. No email has been lost; delayed messages will be delivered once the backlog clears.',
  'minor', 'investigating');
