"""Web apps: webmail, admin API, metrics and the status page (ASGI)."""
