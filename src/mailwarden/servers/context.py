"""What every protocol server is given by the composition root (``app.py``)."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass, field

from mailwarden.auth.service import AuthService
from mailwarden.delivery.submission import SendingLimits
from mailwarden.store.base import Store

__all__ = ["ServerContext"]


@dataclass(frozen=True)
class ServerContext:
    """Shared dependencies of the protocol servers.

    Attributes:
        store: the mail store.
        auth: the one door for logins.
        tls: server TLS context (STARTTLS and implicit-TLS ports).
        hostname: the name this node announces.
        is_draining: true while the node refuses new sessions (maintenance).
        sending_limits: per-account sending counters shared by SMTP submission
            and webmail, so both paths draw on one allowance (None: each
            submission server makes its own, as tests do).
    """

    store: Store
    auth: AuthService
    tls: ssl.SSLContext
    hostname: str
    is_draining: Callable[[], bool] = field(default=lambda: False)
    sending_limits: SendingLimits | None = None
