"""Prometheus metrics of the auth service (the process's default registry).

They are module-level because the default registry refuses a name twice; every
:class:`~.service.AuthService` in the process adds to the same series (one per
node in production).  The web app's ``/metrics`` serves them.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

__all__ = [
    "ATTEMPTS",
    "BANS_ACTIVE",
    "BANS_MADE",
    "CONNECTIONS_REFUSED",
    "FAILURES",
    "LOGIN_SECONDS",
    "POOL_RUNNING",
    "POOL_WORKERS",
    "PRELOGIN_OPEN",
    "QUEUE_DEPTH",
    "SHEDS",
    "SUCCESSES",
]

ATTEMPTS = Counter(
    "mailwarden_auth_attempts", "Login attempts by service and lane.", ["service", "lane"]
)
SUCCESSES = Counter(
    "mailwarden_auth_successes",
    "Accepted logins by service, lane and path (hash, cache, app_password).",
    ["service", "lane", "path"],
)
FAILURES = Counter(
    "mailwarden_auth_failures",
    "Rejected logins by service and reason (credentials, banned, locked, malformed, suspended).",
    ["service", "reason"],
)
SHEDS = Counter(
    "mailwarden_auth_sheds",
    "Logins answered 'try later' by service and reason (pool, source, account, store).",
    ["service", "reason"],
)
CONNECTIONS_REFUSED = Counter(
    "mailwarden_auth_connections_refused",
    "Connections refused before login by reason (banned, host, site, wide, total).",
    ["reason"],
)
BANS_MADE = Counter("mailwarden_auth_bans_made", "Automatic bans made, by rule.", ["rule"])
BANS_ACTIVE = Gauge("mailwarden_auth_bans_active", "Bans in force on this node.")
QUEUE_DEPTH = Gauge("mailwarden_auth_queue_depth", "Verifications waiting for a hashing worker.")
POOL_RUNNING = Gauge("mailwarden_auth_pool_running", "Verifications running on the hashing pool.")
POOL_WORKERS = Gauge("mailwarden_auth_pool_workers", "Hashing workers of the pool.")
PRELOGIN_OPEN = Gauge("mailwarden_auth_prelogin_connections", "Unauthenticated connections open.")
LOGIN_SECONDS = Histogram(
    "mailwarden_auth_decision_seconds",
    "Time to decide a login (delays after failures excluded), by lane and outcome.",
    ["lane", "outcome"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
