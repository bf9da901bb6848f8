"""Components, their groups, dependencies, and the status the page shows.

A component has two stored statuses: ``status``, set by operators and by
incident updates, and ``probe_status``, set by the probes after hysteresis.
What the page shows (``effective_status``) is derived from those, from any
maintenance in progress and from dependencies:

1. own = worst(status, probe_status); the probe status is ignored while the
   component is under maintenance (probes are muted then).
2. Under maintenance, anything better than a partial outage shows as
   "under maintenance".
3. A component that depends on another (IMAP on Authentication) shows at least
   as bad as that dependency, with the dependency named as the cause.

``refresh`` recomputes every component (there are tens, not thousands) and,
where the effective status changed, closes the open row of
``status_intervals`` and opens a new one.  Uptime is computed from those rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from mailwarden.web.status.db import StatusDB
from mailwarden.web.status.model import (
    Clock,
    ComponentStatus,
    NotFound,
    StatusError,
    from_db,
    slugify,
    to_db,
    worst,
)

# The services of one hosted-email cluster, as (suffix, name, depends on auth).
CLUSTER_SERVICES: tuple[tuple[str, str, bool], ...] = (
    ("webmail", "Webmail", True),
    ("imap", "IMAP", True),
    ("pop3", "POP3", True),
    ("smtp-inbound", "SMTP inbound", False),
    ("smtp-submission", "SMTP submission/outbound", True),
    ("auth", "Authentication", False),
)


@dataclass(frozen=True, slots=True)
class Component:
    """One component as the page and the API see it."""

    id: int
    key: str
    name: str
    description: str
    group: str | None
    group_id: int | None
    position: int
    status: ComponentStatus
    """Status set by operators and incident updates."""
    probe_status: ComponentStatus
    """Status set by the probes."""
    effective_status: ComponentStatus
    """What the page shows."""
    cause: str
    """Why the shown status differs from the own one: ``Authentication: major outage``."""
    depends_on: tuple[str, ...]
    created_at: datetime
    updated_at: datetime

    @property
    def display_name(self) -> str:
        """``Hosted Email (Cluster A, Webmail)`` style name (see ``affected_phrase``)."""
        return affected_phrase([self])


def affected_phrase(components: list[Component]) -> str:
    """Say which components something affected, grouped the way status pages do.

    Components of one group are listed inside the group's parentheses:
    ``Hosted Email (Cluster A, Webmail)`` for Webmail in the group
    ``Hosted Email (Cluster A)``, ``Billing (API, Portal)`` for a plain group.
    Components without a group are named as they are.
    """
    parts: list[str] = []
    by_group: dict[str, list[str]] = {}
    for comp in components:
        if comp.group is None:
            parts.append(comp.name)
        else:
            by_group.setdefault(comp.group, []).append(comp.name)
    for group, names in by_group.items():
        if group.endswith(")") and "(" in group:
            parts.append(f"{group[:-1]}, {', '.join(names)})")
        else:
            parts.append(f"{group} ({', '.join(names)})")
    return ", ".join(parts)


class Components:
    """Reads and changes components; owns the effective-status rule.

    Args:
        db: the status database.
        clock: injected time source.
    """

    def __init__(self, db: StatusDB, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    # -- reading ---------------------------------------------------------------

    def all(self) -> list[Component]:
        """Every component, in page order (group position, then component position)."""
        rows = self._db.all(
            "SELECT c.*, g.name AS group_name, g.position AS group_position"
            " FROM components c LEFT JOIN component_groups g ON g.id = c.group_id"
            " ORDER BY COALESCE(g.position, c.position), c.group_id, c.position, c.id"
        )
        deps: dict[int, list[str]] = {}
        for dep in self._db.all(
            "SELECT d.component_id, c.key FROM component_dependencies d"
            " JOIN components c ON c.id = d.depends_on_id ORDER BY c.id"
        ):
            deps.setdefault(dep["component_id"], []).append(dep["key"])
        return [
            Component(
                id=r["id"],
                key=r["key"],
                name=r["name"],
                description=r["description"],
                group=r["group_name"],
                group_id=r["group_id"],
                position=r["position"],
                status=ComponentStatus(r["status"]),
                probe_status=ComponentStatus(r["probe_status"]),
                effective_status=ComponentStatus(r["effective_status"]),
                cause=r["effective_cause"],
                depends_on=tuple(deps.get(r["id"], ())),
                created_at=from_db(r["created_at"]),
                updated_at=from_db(r["updated_at"]),
            )
            for r in rows
        ]

    def get(self, key: str) -> Component:
        """Return the component with ``key``.

        Raises:
            NotFound: no such key.
        """
        for comp in self.all():
            if comp.key == key:
                return comp
        raise NotFound(f"no component {key!r}")

    def by_ids(self, ids: list[int]) -> list[Component]:
        """Components with these ids, in page order."""
        wanted = set(ids)
        return [c for c in self.all() if c.id in wanted]

    def groups(self) -> list[tuple[str | None, list[Component]]]:
        """Components grouped for the page: ``[(group name or None, components)]``."""
        out: list[tuple[str | None, list[Component]]] = []
        for comp in self.all():
            if out and out[-1][0] == comp.group and comp.group is not None:
                out[-1][1].append(comp)
            else:
                out.append((comp.group, [comp]))
        return out

    # -- changing --------------------------------------------------------------

    def add(
        self,
        key: str,
        name: str,
        *,
        group: str | None = None,
        description: str = "",
        depends_on: tuple[str, ...] = (),
    ) -> Component:
        """Create a component (and its group if new).

        Raises:
            StatusError: the key is taken or a dependency does not exist.
        """
        now = to_db(self._clock())
        with self._db.transaction() as conn:
            if conn.execute("SELECT 1 FROM components WHERE key = ?", (key,)).fetchone():
                raise StatusError(f"component {key!r} exists")
            group_id = None
            if group:
                row = conn.execute(
                    "SELECT id FROM component_groups WHERE name = ?", (group,)
                ).fetchone()
                if row:
                    group_id = row["id"]
                else:
                    count = conn.execute("SELECT COUNT(*) FROM component_groups").fetchone()[0]
                    group_id = conn.execute(
                        "INSERT INTO component_groups (name, position) VALUES (?, ?)",
                        (group, count),
                    ).lastrowid
            position = conn.execute("SELECT COUNT(*) FROM components").fetchone()[0]
            comp_id = conn.execute(
                "INSERT INTO components (key, name, description, group_id, position,"
                " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (key, name, description, group_id, position, now, now),
            ).lastrowid
            for dep in depends_on:
                dep_row = conn.execute("SELECT id FROM components WHERE key = ?", (dep,)).fetchone()
                if dep_row is None:
                    raise StatusError(f"dependency {dep!r} does not exist")
                conn.execute(
                    "INSERT INTO component_dependencies (component_id, depends_on_id)"
                    " VALUES (?, ?)",
                    (comp_id, dep_row["id"]),
                )
            conn.execute(
                "INSERT INTO status_intervals (component_id, status, started_at)"
                " VALUES (?, 'operational', ?)",
                (comp_id, now),
            )
        return self.get(key)

    def add_cluster(self, cluster: str, *, group: str | None = None) -> list[Component]:
        """Create the standard components of one hosted-email cluster.

        ``add_cluster("Cluster A")`` makes the group ``Hosted Email (Cluster A)``
        with Webmail, IMAP, POP3, SMTP inbound, SMTP submission/outbound and
        Authentication (keys ``cluster-a-webmail`` ...), where everything a user
        logs in to depends on Authentication.
        """
        prefix = slugify(cluster)
        group_name = group or f"Hosted Email ({cluster})"
        auth_key = f"{prefix}-auth"
        # Authentication first so the others can name it as a dependency; the
        # page order is then fixed up so it is listed last, as people expect.
        self.add(auth_key, "Authentication", group=group_name)
        made = []
        for suffix, name, needs_auth in CLUSTER_SERVICES:
            if suffix == "auth":
                continue
            made.append(
                self.add(
                    f"{prefix}-{suffix}",
                    name,
                    group=group_name,
                    depends_on=(auth_key,) if needs_auth else (),
                )
            )
        self._db.execute(
            "UPDATE components SET position = (SELECT MAX(position) + 1 FROM components)"
            " WHERE key = ?",
            (auth_key,),
        )
        return [*made, self.get(auth_key)]

    def set_status(self, key: str, status: ComponentStatus) -> tuple[Component, ComponentStatus]:
        """Set the operator status of a component and refresh the page state.

        Returns:
            The component after the change and its previous operator status.

        Raises:
            NotFound: no such key.
        """
        comp = self.get(key)
        with self._db.transaction() as conn:
            conn.execute(
                "UPDATE components SET status = ?, updated_at = ? WHERE id = ?",
                (status.value, to_db(self._clock()), comp.id),
            )
            self.refresh()
        return self.get(key), comp.status

    def set_probe_status(self, key: str, status: ComponentStatus) -> None:
        """Record the probes' verdict for a component and refresh the page state."""
        with self._db.transaction() as conn:
            conn.execute(
                "UPDATE components SET probe_status = ?, updated_at = ? WHERE key = ?",
                (status.value, to_db(self._clock()), key),
            )
            self.refresh()

    def under_maintenance(self) -> set[int]:
        """Ids of components whose maintenance window is in progress or verifying."""
        rows = self._db.all(
            "SELECT mc.component_id FROM maintenance_components mc"
            " JOIN maintenances m ON m.id = mc.maintenance_id"
            " WHERE m.status IN ('in_progress', 'verifying')"
        )
        return {r[0] for r in rows}

    def windows_in_progress(self) -> list[tuple[frozenset[str], bool]]:
        """Each window in progress or verifying: its component keys and whether it drains."""
        rows = self._db.all(
            "SELECT m.id, m.drain, c.key FROM maintenances m"
            " JOIN maintenance_components mc ON mc.maintenance_id = m.id"
            " JOIN components c ON c.id = mc.component_id"
            " WHERE m.status IN ('in_progress', 'verifying') ORDER BY m.id"
        )
        windows: dict[int, tuple[set[str], bool]] = {}
        for row in rows:
            windows.setdefault(row["id"], (set(), bool(row["drain"])))[0].add(row["key"])
        return [(frozenset(keys), drains) for keys, drains in windows.values()]

    def refresh(self, now: datetime | None = None) -> list[Component]:
        """Recompute effective statuses and record status intervals.

        Returns:
            The components whose effective status changed.
        """
        moment = to_db(now or self._clock())
        with self._db.transaction() as conn:
            comps = {c.id: c for c in self.all()}
            maintained = self.under_maintenance()
            key_to_id = {c.key: c.id for c in comps.values()}
            own: dict[int, ComponentStatus] = {}
            for comp in comps.values():
                statuses = [comp.status]
                if comp.id not in maintained:
                    statuses.append(comp.probe_status)
                status = worst(statuses)
                if (
                    comp.id in maintained
                    and status.severity < ComponentStatus.PARTIAL_OUTAGE.severity
                ):
                    status = ComponentStatus.UNDER_MAINTENANCE
                own[comp.id] = status
            result: dict[int, tuple[ComponentStatus, str]] = {}

            def effective(cid: int, seen: frozenset[int]) -> tuple[ComponentStatus, str]:
                if cid in result:
                    return result[cid]
                status, cause = own[cid], ""
                for dep_key in comps[cid].depends_on:
                    dep_id = key_to_id[dep_key]
                    if dep_id in seen:  # a cycle: ignore the back edge
                        continue
                    dep_status, _ = effective(dep_id, seen | {cid})
                    if dep_status.severity > status.severity:
                        status = dep_status
                        cause = f"{comps[dep_id].name}: {dep_status.label}"
                result[cid] = (status, cause)
                return result[cid]

            changed = []
            for cid, comp in comps.items():
                status, cause = effective(cid, frozenset())
                if status is comp.effective_status and cause == comp.cause:
                    continue
                conn.execute(
                    "UPDATE components SET effective_status = ?, effective_cause = ?,"
                    " updated_at = ? WHERE id = ?",
                    (status.value, cause, moment, cid),
                )
                if status is not comp.effective_status:
                    conn.execute(
                        "UPDATE status_intervals SET ended_at = ?"
                        " WHERE component_id = ? AND ended_at IS NULL",
                        (moment, cid),
                    )
                    conn.execute(
                        "INSERT INTO status_intervals (component_id, status, started_at)"
                        " VALUES (?, ?, ?)",
                        (cid, status.value, moment),
                    )
                    changed.append(cid)
        return self.by_ids(changed)
