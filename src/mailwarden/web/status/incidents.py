"""Incidents: a title, an impact, affected components and a timeline of updates.

An incident is opened with its first update and resolved with its last.  Each
update has a status (investigating → identified → monitoring → resolved, in
any order the operator needs), a Markdown body, a display time that may be
backdated (operators often post after the fact), a notify switch, and the
components it changed with their old and new status.

The incident's own times are kept apart from its updates' display times:
``started_at`` is when the trouble began (default: the first update's display
time) and ``resolved_at`` when it ended (default: the resolving update's display
time).  The total duration is the difference, said in words.

Listeners (the notifier) hear about each update with ``notify`` set.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from mailwarden.web.status.components import Component, Components, affected_phrase
from mailwarden.web.status.db import StatusDB
from mailwarden.web.status.model import (
    Clock,
    ComponentStatus,
    Impact,
    IncidentStatus,
    NotFound,
    StatusError,
    duration_words,
    from_db,
    opt_from_db,
    to_db,
)

_TEMPLATE_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")


@dataclass(frozen=True, slots=True)
class ComponentChange:
    """A component's status as an update set it."""

    key: str
    name: str
    old_status: ComponentStatus
    new_status: ComponentStatus


@dataclass(frozen=True, slots=True)
class IncidentUpdate:
    """One entry of an incident's timeline."""

    id: int
    incident_id: int
    status: IncidentStatus
    body: str
    display_at: datetime
    created_at: datetime
    notify: bool
    author: str
    changes: tuple[ComponentChange, ...]


@dataclass(frozen=True, slots=True)
class IncidentReport:
    """The incident report posted after the fact."""

    summary: str
    client_impact: str
    remediation: str
    posted_at: datetime


@dataclass(frozen=True, slots=True)
class Incident:
    """An incident with its updates (newest first, as pages show them)."""

    id: int
    title: str
    impact: Impact
    status: IncidentStatus
    started_at: datetime
    resolved_at: datetime | None
    monitoring_at: datetime | None
    created_at: datetime
    updated_at: datetime
    components: tuple[Component, ...]
    updates: tuple[IncidentUpdate, ...]
    report: IncidentReport | None

    @property
    def resolved(self) -> bool:
        """Whether the incident is over."""
        return self.status is IncidentStatus.RESOLVED

    @property
    def duration(self) -> timedelta | None:
        """Start to resolution, or None while unresolved."""
        if self.resolved_at is None:
            return None
        return self.resolved_at - self.started_at

    @property
    def duration_words(self) -> str | None:
        """``4 days 3 hours 46 minutes`` once resolved, else None."""
        length = self.duration
        return None if length is None else duration_words(length)

    @property
    def affected(self) -> str:
        """``Hosted Email (Cluster A, Webmail)``."""
        return affected_phrase(list(self.components))


@dataclass(frozen=True, slots=True)
class Template:
    """A canned incident for common trouble."""

    name: str
    title: str
    body: str
    impact: Impact
    status: IncidentStatus


class IncidentListener(Protocol):
    """Told about every update posted with ``notify`` set."""

    def incident_updated(self, incident: Incident, update: IncidentUpdate) -> None:
        """Called inside the transaction that posted ``update``."""


class Incidents:
    """Opens, updates, resolves and reads incidents.

    Args:
        db: the status database.
        clock: injected time source.
        components: used to set component statuses as updates say.
        listeners: told about notifying updates.
    """

    def __init__(
        self,
        db: StatusDB,
        clock: Clock,
        components: Components,
        listeners: tuple[IncidentListener, ...] = (),
    ) -> None:
        self._db = db
        self._clock = clock
        self._components = components
        self._listeners = list(listeners)

    def add_listener(self, listener: IncidentListener) -> None:
        """Register another listener."""
        self._listeners.append(listener)

    # -- writing ---------------------------------------------------------------

    def open(
        self,
        title: str,
        body: str,
        *,
        impact: Impact = Impact.MINOR,
        status: IncidentStatus = IncidentStatus.INVESTIGATING,
        components: dict[str, ComponentStatus] | None = None,
        display_at: datetime | None = None,
        started_at: datetime | None = None,
        notify: bool = True,
        author: str = "",
    ) -> Incident:
        """Open an incident with its first update.

        Args:
            title: headline.
            body: Markdown text of the first update.
            impact: operator's judgement of severity.
            status: status of the first update (resolved is refused).
            components: affected components and the status each now has.
            display_at: shown time of the first update (default now; may be past).
            started_at: when the trouble began (default ``display_at``).
            notify: whether subscribers and webhooks hear about it.
            author: who posted it (for the audit log and the API).

        Raises:
            StatusError: empty title or body, a resolved first status, a start in the future.
            NotFound: an unknown component key.
        """
        if not title.strip() or not body.strip():
            raise StatusError("an incident needs a title and a body")
        if status is IncidentStatus.RESOLVED:
            raise StatusError("open the incident first, then resolve it")
        now = self._clock()
        shown = display_at or now
        began = started_at or shown
        if began > now:
            raise StatusError("an incident cannot start in the future")
        with self._db.transaction() as conn:
            incident_id = conn.execute(
                "INSERT INTO incidents (title, impact, status, started_at, created_at,"
                " updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                (title.strip(), impact.value, status.value, to_db(began), to_db(now), to_db(now)),
            ).lastrowid
            assert incident_id is not None
            self._post(incident_id, status, body, components or {}, shown, notify, author)
        return self.get(incident_id)

    def update(
        self,
        incident_id: int,
        body: str,
        *,
        status: IncidentStatus | None = None,
        components: dict[str, ComponentStatus] | None = None,
        display_at: datetime | None = None,
        notify: bool = True,
        author: str = "",
        impact: Impact | None = None,
    ) -> Incident:
        """Post an update (status unchanged unless given).

        Raises:
            NotFound: no such incident or component.
            StatusError: the incident is resolved, or ``status`` is resolved
                (use ``resolve``), or the body is empty.
        """
        incident = self.get(incident_id)
        if incident.resolved:
            raise StatusError(f"incident {incident_id} is resolved")
        new_status = status or incident.status
        if new_status is IncidentStatus.RESOLVED:
            raise StatusError("use resolve to resolve an incident")
        if not body.strip():
            raise StatusError("an update needs a body")
        with self._db.transaction() as conn:
            if impact is not None:
                conn.execute(
                    "UPDATE incidents SET impact = ? WHERE id = ?", (impact.value, incident_id)
                )
            self._post(
                incident_id,
                new_status,
                body,
                components or {},
                display_at or self._clock(),
                notify,
                author,
            )
        return self.get(incident_id)

    def resolve(
        self,
        incident_id: int,
        body: str,
        *,
        display_at: datetime | None = None,
        ended_at: datetime | None = None,
        components: dict[str, ComponentStatus] | None = None,
        notify: bool = True,
        author: str = "",
    ) -> Incident:
        """Post the resolving update and close the incident.

        Every affected component not named in ``components`` goes back to
        operational.

        Raises:
            NotFound: no such incident.
            StatusError: already resolved, or an end before the start.
        """
        incident = self.get(incident_id)
        if incident.resolved:
            raise StatusError(f"incident {incident_id} is already resolved")
        shown = display_at or self._clock()
        end = ended_at or shown
        if end < incident.started_at:
            raise StatusError("an incident cannot end before it started")
        changes = {c.key: ComponentStatus.OPERATIONAL for c in incident.components}
        changes.update(components or {})
        with self._db.transaction() as conn:
            conn.execute(
                "UPDATE incidents SET resolved_at = ? WHERE id = ?", (to_db(end), incident_id)
            )
            self._post(incident_id, IncidentStatus.RESOLVED, body, changes, shown, notify, author)
        return self.get(incident_id)

    def set_report(
        self,
        incident_id: int,
        *,
        summary: str,
        client_impact: str,
        remediation: str,
        posted_at: datetime | None = None,
    ) -> Incident:
        """Attach (or replace) the incident report.

        Raises:
            NotFound: no such incident.
        """
        self.get(incident_id)
        self._db.execute(
            "UPDATE incidents SET report_summary = ?, report_client_impact = ?,"
            " report_remediation = ?, report_posted_at = ?, updated_at = ? WHERE id = ?",
            (
                summary.strip(),
                client_impact.strip(),
                remediation.strip(),
                to_db(posted_at or self._clock()),
                to_db(self._clock()),
                incident_id,
            ),
        )
        return self.get(incident_id)

    def set_times(
        self, incident_id: int, *, started_at: datetime | None, ended_at: datetime | None
    ) -> Incident:
        """Correct the start or end of an incident.

        Raises:
            NotFound: no such incident.
            StatusError: an end on an unresolved incident, or an end before the start.
        """
        incident = self.get(incident_id)
        start = started_at or incident.started_at
        end = ended_at or incident.resolved_at
        if ended_at is not None and not incident.resolved:
            raise StatusError("only a resolved incident has an end time")
        if end is not None and end < start:
            raise StatusError("an incident cannot end before it started")
        self._db.execute(
            "UPDATE incidents SET started_at = ?, resolved_at = ? WHERE id = ?",
            (to_db(start), None if end is None else to_db(end), incident_id),
        )
        return self.get(incident_id)

    def _post(
        self,
        incident_id: int,
        status: IncidentStatus,
        body: str,
        components: dict[str, ComponentStatus],
        display_at: datetime,
        notify: bool,
        author: str,
    ) -> None:
        now = to_db(self._clock())
        with self._db.transaction() as conn:
            update_id = conn.execute(
                "INSERT INTO incident_updates (incident_id, status, body, display_at,"
                " created_at, notify, author) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    incident_id,
                    status.value,
                    body.strip(),
                    to_db(display_at),
                    now,
                    int(notify),
                    author,
                ),
            ).lastrowid
            for key, new_status in components.items():
                comp, old = self._components.set_status(key, new_status)
                conn.execute(
                    "INSERT OR IGNORE INTO incident_components (incident_id, component_id)"
                    " VALUES (?, ?)",
                    (incident_id, comp.id),
                )
                conn.execute(
                    "INSERT INTO incident_update_components (update_id, component_id,"
                    " old_status, new_status) VALUES (?, ?, ?, ?)",
                    (update_id, comp.id, old.value, new_status.value),
                )
            extra = ""
            if status is IncidentStatus.MONITORING:
                extra = ", monitoring_at = COALESCE(monitoring_at, :shown)"
            conn.execute(
                f"UPDATE incidents SET status = :status, updated_at = :now{extra} WHERE id = :id",  # noqa: S608 - fixed fragments
                {"status": status.value, "now": now, "shown": to_db(display_at), "id": incident_id},
            )
            if notify and self._listeners:
                incident = self.get(incident_id)
                update = next(u for u in incident.updates if u.id == update_id)
                for listener in self._listeners:
                    listener.incident_updated(incident, update)

    # -- templates -------------------------------------------------------------

    def templates(self) -> list[Template]:
        """Canned incidents, by name."""
        return [
            Template(
                r["name"], r["title"], r["body"], Impact(r["impact"]), IncidentStatus(r["status"])
            )
            for r in self._db.all("SELECT * FROM incident_templates ORDER BY name")
        ]

    def template(self, name: str) -> Template:
        """Return one template.

        Raises:
            NotFound: no template by that name.
        """
        for tpl in self.templates():
            if tpl.name == name:
                return tpl
        raise NotFound(f"no incident template {name!r}")

    def save_template(self, tpl: Template) -> None:
        """Create or replace a template.

        Raises:
            StatusError: the name is not a slug (``a-z``, digits, ``-``), or the
                title or body is empty.
        """
        if not _TEMPLATE_NAME.fullmatch(tpl.name):
            raise StatusError("a template name is lower-case letters, digits and dashes")
        if not tpl.title.strip() or not tpl.body.strip():
            raise StatusError("a template needs a title and a message")
        self._db.execute(
            "INSERT INTO incident_templates (name, title, body, impact, status)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET title = excluded.title,"
            " body = excluded.body, impact = excluded.impact, status = excluded.status",
            (tpl.name, tpl.title, tpl.body, tpl.impact.value, tpl.status.value),
        )

    def delete_template(self, name: str) -> None:
        """Delete a template.

        Raises:
            NotFound: no template by that name.
        """
        with self._db.transaction() as conn:
            gone = conn.execute("DELETE FROM incident_templates WHERE name = ?", (name,))
            if gone.rowcount == 0:
                raise NotFound(f"no incident template {name!r}")

    # -- reading ---------------------------------------------------------------

    def get(self, incident_id: int) -> Incident:
        """Return one incident with its updates.

        Raises:
            NotFound: no such incident.
        """
        found = self._load("WHERE i.id = ?", (incident_id,))
        if not found:
            raise NotFound(f"no incident {incident_id}")
        return found[0]

    def search(
        self, *, unresolved: bool = False, since: datetime | None = None, limit: int = 1000
    ) -> list[Incident]:
        """Incidents, newest start first.

        Args:
            unresolved: only incidents not yet resolved.
            since: only incidents that started at or after this time, or are unresolved.
            limit: at most this many.
        """
        clauses: list[str] = []
        params: list[object] = []
        if unresolved:
            clauses.append("i.status != 'resolved'")
        if since is not None:
            clauses.append("(i.started_at >= ? OR i.status != 'resolved')")
            params.append(to_db(since))
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        return self._load(
            f"{where} ORDER BY i.started_at DESC, i.id DESC LIMIT {int(limit)}", params
        )

    def _load(self, tail: str, params: tuple[object, ...] | list[object]) -> list[Incident]:
        rows = self._db.all(f"SELECT i.* FROM incidents i {tail}", params)  # noqa: S608 - fixed fragments
        if not rows:
            return []
        ids = [r["id"] for r in rows]
        marks = ",".join("?" * len(ids))
        all_components = {c.id: c for c in self._components.all()}
        comp_ids: dict[int, list[int]] = {}
        for r in self._db.all(
            f"SELECT * FROM incident_components WHERE incident_id IN ({marks})",  # noqa: S608
            ids,
        ):
            comp_ids.setdefault(r["incident_id"], []).append(r["component_id"])
        changes: dict[int, list[ComponentChange]] = {}
        joined = "incident_update_components uc JOIN incident_updates u ON u.id = uc.update_id"
        sql = f"SELECT uc.*, u.incident_id FROM {joined} WHERE u.incident_id IN ({marks})"  # noqa: S608
        sql += " ORDER BY uc.component_id"
        for r in self._db.all(sql, ids):
            comp = all_components[r["component_id"]]
            changes.setdefault(r["update_id"], []).append(
                ComponentChange(
                    comp.key,
                    comp.name,
                    ComponentStatus(r["old_status"]),
                    ComponentStatus(r["new_status"]),
                )
            )
        updates: dict[int, list[IncidentUpdate]] = {}
        for r in self._db.all(
            f"SELECT * FROM incident_updates WHERE incident_id IN ({marks})"  # noqa: S608
            " ORDER BY display_at DESC, id DESC",
            ids,
        ):
            updates.setdefault(r["incident_id"], []).append(
                IncidentUpdate(
                    id=r["id"],
                    incident_id=r["incident_id"],
                    status=IncidentStatus(r["status"]),
                    body=r["body"],
                    display_at=from_db(r["display_at"]),
                    created_at=from_db(r["created_at"]),
                    notify=bool(r["notify"]),
                    author=r["author"],
                    changes=tuple(changes.get(r["id"], ())),
                )
            )
        result = []
        for r in rows:
            report = None
            if r["report_posted_at"]:
                report = IncidentReport(
                    r["report_summary"],
                    r["report_client_impact"],
                    r["report_remediation"],
                    from_db(r["report_posted_at"]),
                )
            comps = [all_components[cid] for cid in comp_ids.get(r["id"], [])]
            comps.sort(key=lambda c: list(all_components).index(c.id))
            result.append(
                Incident(
                    id=r["id"],
                    title=r["title"],
                    impact=Impact(r["impact"]),
                    status=IncidentStatus(r["status"]),
                    started_at=from_db(r["started_at"]),
                    resolved_at=opt_from_db(r["resolved_at"]),
                    monitoring_at=opt_from_db(r["monitoring_at"]),
                    created_at=from_db(r["created_at"]),
                    updated_at=from_db(r["updated_at"]),
                    components=tuple(comps),
                    updates=tuple(updates.get(r["id"], ())),
                    report=report,
                )
            )
        return result
