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
while the node has not acknowledged it.  ``mailwarden drain on|off`` on the
node does the same by hand.

Durability: ``DrainQueue`` is a maintenance listener, so the request is written
to ``drain_requests`` inside the transaction that starts or completes the
window (whether the scheduler, the CLI or an admin page moved it).  The row
stays until the node answers 2xx; a restarted status process, or a
``mailwarden status tick`` run from cron, picks it up where the last one
stopped.  Retries back off from one tick (30 s) to at most five minutes.

One switch per node: a node has a single drain switch, so lifting the drain
for one window while another drain window on the same node is still active
would open the node too early.  Such an "off" is dropped (the later window's
own "off" lifts it).  A drain turned on by hand on the node is lifted by the
window's "off" as well; operators who drain by hand should not schedule a
draining window at the same time.
"""

from __future__ import annotations

import asyncio
import json
import logging
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from mailwarden.web.status.db import StatusDB
from mailwarden.web.status.maintenance import (
    Maintenance,
    MaintenanceEvent,
    MaintenanceEventKind,
    Maintenances,
)
from mailwarden.web.status.model import Clock, from_db, to_db
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


RETRY_FIRST = timedelta(seconds=30)
RETRY_MAX = timedelta(minutes=5)


def nodes_for(window: Maintenance, nodes: tuple[NodeSettings, ...]) -> list[NodeSettings]:
    """The nodes a window drains: those of its clusters, and those without a cluster."""
    keys = [c.key for c in window.components]
    return [
        node
        for node in nodes
        if not node.cluster or any(k.startswith(node.cluster + "-") for k in keys)
    ]


@dataclass(frozen=True, slots=True)
class PendingDrain:
    """A drain call a node has not acknowledged yet (a row of ``drain_requests``)."""

    id: int
    node_url: str
    maintenance_id: int
    drain: bool
    requested_at: datetime
    attempts: int
    next_attempt_at: datetime
    last_error: str


@dataclass(frozen=True, slots=True)
class DrainCall:
    """What one pending request came to on one tick."""

    node_url: str
    drain: bool
    acknowledged: bool
    maintenance_id: int
    note: str = ""
    """Why nothing was sent (``still drained for maintenance 7``), or the failure."""


class DrainQueue:
    """Durable drain requests: queued by maintenance events, sent by ``send_due``.

    Args:
        db: the status database.
        clock: injected time source.
        nodes: returns the configured nodes (read at each use, so a settings
            change applies to requests already queued).
    """

    def __init__(
        self, db: StatusDB, clock: Clock, nodes: Callable[[], tuple[NodeSettings, ...]]
    ) -> None:
        self._db = db
        self._clock = clock
        self._nodes = nodes

    def maintenance_event(self, event: MaintenanceEvent) -> None:
        """Queue "on" when a draining window starts and "off" when it completes.

        Called inside the transaction that moved the window, so the request is
        committed together with the move or not at all.
        """
        window = event.maintenance
        if not window.drain:
            return
        if event.kind is MaintenanceEventKind.STARTED:
            on = True
        elif event.kind is MaintenanceEventKind.COMPLETED:
            on = False
        else:
            return
        now = to_db(self._clock())
        with self._db.transaction() as conn:
            for node in nodes_for(window, self._nodes()):
                # Delete and insert (not upsert) so the row takes a new id: requests
                # are sent in id order, and "off" must follow any older "on".
                conn.execute(
                    "DELETE FROM drain_requests WHERE node_url = ? AND maintenance_id = ?",
                    (node.url, window.id),
                )
                conn.execute(
                    "INSERT INTO drain_requests (node_url, maintenance_id, drain, requested_at,"
                    " next_attempt_at) VALUES (?, ?, ?, ?, ?)",
                    (node.url, window.id, int(on), now, now),
                )

    def pending(self) -> list[PendingDrain]:
        """Every request not yet acknowledged, oldest first."""
        return [
            PendingDrain(
                r["id"],
                r["node_url"],
                r["maintenance_id"],
                bool(r["drain"]),
                from_db(r["requested_at"]),
                r["attempts"],
                from_db(r["next_attempt_at"]),
                r["last_error"],
            )
            for r in self._db.all("SELECT * FROM drain_requests ORDER BY id")
        ]

    def _still_drained(
        self, request: PendingDrain, node: NodeSettings, maintenances: Maintenances
    ) -> Maintenance | None:
        """Another active draining window on the same node, if any."""
        for window in maintenances.active():
            if window.id == request.maintenance_id or not window.drain:
                continue
            if node in nodes_for(window, (node,)):
                return window
        return None

    async def send_due(
        self, client: DrainClient, maintenances: Maintenances, now: datetime | None = None
    ) -> list[DrainCall]:
        """Send every request whose time has come; forget those acknowledged.

        Returns:
            One ``DrainCall`` per request looked at.
        """
        moment = now or self._clock()
        nodes = {n.url: n for n in self._nodes()}
        calls: list[DrainCall] = []
        for request in self.pending():
            if request.next_attempt_at > moment:
                continue
            node = nodes.get(request.node_url)
            if node is None:
                # The node left the configuration; keep the row so the operator sees it.
                self._defer(request, moment, "node is no longer configured")
                calls.append(
                    DrainCall(
                        request.node_url,
                        request.drain,
                        False,
                        request.maintenance_id,
                        "node is no longer configured",
                    )
                )
                continue
            if not request.drain:
                other = self._still_drained(request, node, maintenances)
                if other is not None:
                    self._forget(request)
                    calls.append(
                        DrainCall(
                            node.url,
                            False,
                            False,
                            request.maintenance_id,
                            f"still drained for maintenance {other.id}",
                        )
                    )
                    continue
            window = maintenances.get(request.maintenance_id)
            retry_after = max(int((window.planned_end - moment).total_seconds()), 60)
            acknowledged = await client.set_drain(
                node,
                DrainRequest(
                    request.drain,
                    f"maintenance {window.id}: {window.title}",
                    retry_after,
                    window.id,
                ),
            )
            if acknowledged:
                self._forget(request)
                calls.append(DrainCall(node.url, request.drain, True, window.id))
            else:
                self._defer(request, moment, "not acknowledged")
                calls.append(
                    DrainCall(node.url, request.drain, False, window.id, "not acknowledged")
                )
        return calls

    def _forget(self, request: PendingDrain) -> None:
        self._db.execute("DELETE FROM drain_requests WHERE id = ?", (request.id,))

    def _defer(self, request: PendingDrain, now: datetime, error: str) -> None:
        attempts = request.attempts + 1
        delay = min(RETRY_FIRST * 2 ** (attempts - 1), RETRY_MAX)
        self._db.execute(
            "UPDATE drain_requests SET attempts = ?, next_attempt_at = ?, last_error = ?"
            " WHERE id = ?",
            (attempts, to_db(now + delay), error, request.id),
        )
