"""Asking mail nodes to drain during a maintenance window.

The node-side contract (implemented by the node's admin API)::

    POST /api/admin/drain
    Authorization: Bearer <token>
    Content-Type: application/json

    {"drain": true, "reason": "maintenance 12: Storage upgrade",
     "retry_after": 7200, "source": "status", "maintenance_id": 12}

``drain: true`` makes the node refuse *new* sessions with each protocol's
temporary answer (IMAP ``* BYE [UNAVAILABLE]``, SMTP ``421 4.3.2``, POP3
``-ERR [SYS/TEMP]``, HTTP 503 with ``Retry-After: retry_after``) while current
sessions finish; ``drain: false`` (with the same ``maintenance_id``) lifts it.
Any 2xx answer is success; the call is idempotent, so it is simply repeated
on the next scheduler tick while the window is active and the node has not
acknowledged it.  ``mailwarden drain on|off`` on the node does the same by hand.
"""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Protocol

from mailwarden.web.status.settings import NodeSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DrainRequest:
    """One drain call."""

    drain: bool
    reason: str
    retry_after: int
    maintenance_id: int

    def to_json(self) -> bytes:
        """The request body."""
        return json.dumps(
            {
                "drain": self.drain,
                "reason": self.reason,
                "retry_after": self.retry_after,
                "source": "status",
                "maintenance_id": self.maintenance_id,
            }
        ).encode()


class DrainClient(Protocol):
    """Turns drain on or off on one node."""

    async def set_drain(self, node: NodeSettings, request: DrainRequest) -> bool:
        """Return whether the node acknowledged."""


class HttpDrainClient:
    """``DrainClient`` over the node's admin API (standard library, in a thread)."""

    def __init__(self, timeout: float = 10.0) -> None:
        self._timeout = timeout

    def _post(self, node: NodeSettings, request: DrainRequest) -> bool:
        url = node.url.rstrip("/") + "/api/admin/drain"
        if not url.startswith(("http://", "https://")):
            log.warning("drain: node URL %r is not http(s)", node.url)
            return False
        req = urllib.request.Request(  # noqa: S310 - scheme checked above
            url,
            data=request.to_json(),
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "mailwarden-status"},
        )
        if node.token:
            req.add_header("Authorization", f"Bearer {node.token}")
        try:
            with urllib.request.urlopen(req, timeout=self._timeout) as response:  # noqa: S310
                response.read()
                status: int = response.status
                return 200 <= status < 300
        except (urllib.error.URLError, OSError) as exc:
            log.warning("drain %s on %s failed: %s", request.drain, url, exc)
            return False

    async def set_drain(self, node: NodeSettings, request: DrainRequest) -> bool:
        """POST the request; False (and a log line) when the node did not acknowledge."""
        return await asyncio.to_thread(self._post, node, request)
