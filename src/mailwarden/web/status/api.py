"""JSON shapes of the Atlassian Statuspage public API v2, from our objects.

Tools that already read a hosted status page (chat bots, dashboards,
``statuspage`` exporters) read ours unchanged: the same paths under
``/api/v2/``, the same field names, ids as strings, the same status words.
Fields we have no use for are present with their neutral values
(``showcase``, ``only_show_if_degraded``) because some readers index them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from mailwarden.web.status.components import Component
from mailwarden.web.status.incidents import Incident
from mailwarden.web.status.maintenance import Maintenance
from mailwarden.web.status.model import ComponentStatus, Impact, slugify, to_db

Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class PageInfo:
    """The page block every response starts with."""

    name: str
    url: str
    updated_at: datetime

    @property
    def id(self) -> str:
        """A stable page id derived from the name."""
        return slugify(self.name)


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else to_db(moment)


def page_json(page: PageInfo) -> Json:
    """``page`` object."""
    return {
        "id": page.id,
        "name": page.name,
        "url": page.url,
        "time_zone": "Etc/UTC",
        "updated_at": _time(page.updated_at),
    }


def component_json(comp: Component, page: PageInfo) -> Json:
    """One component, with its effective status."""
    return {
        "id": comp.key,
        "name": comp.name,
        "status": comp.effective_status.value,
        "created_at": _time(comp.created_at),
        "updated_at": _time(comp.updated_at),
        "position": comp.position,
        "description": comp.cause or comp.description or None,
        "showcase": True,
        "start_date": comp.created_at.date().isoformat(),
        "group_id": None if comp.group_id is None else f"group-{comp.group_id}",
        "page_id": page.id,
        "group": False,
        "only_show_if_degraded": False,
    }


def components_json(components: list[Component], page: PageInfo) -> list[Json]:
    """Components plus one entry per group (``group: true``) as Statuspage lists them."""
    out: list[Json] = []
    groups: dict[int, list[Component]] = {}
    for comp in components:
        if comp.group_id is not None:
            groups.setdefault(comp.group_id, []).append(comp)
    seen: set[int] = set()
    for comp in components:
        if comp.group_id is not None and comp.group_id not in seen:
            seen.add(comp.group_id)
            members = groups[comp.group_id]
            worst = max(members, key=lambda c: c.effective_status.severity)
            out.append(
                {
                    "id": f"group-{comp.group_id}",
                    "name": comp.group,
                    "status": worst.effective_status.value,
                    "created_at": _time(min(c.created_at for c in members)),
                    "updated_at": _time(max(c.updated_at for c in members)),
                    "position": comp.position,
                    "description": None,
                    "showcase": False,
                    "start_date": None,
                    "group_id": None,
                    "page_id": page.id,
                    "group": True,
                    "only_show_if_degraded": False,
                    "components": [c.key for c in members],
                }
            )
        out.append(component_json(comp, page))
    return out


def incident_json(incident: Incident, page: PageInfo) -> Json:
    """One incident with its updates (newest first)."""
    return {
        "id": str(incident.id),
        "name": incident.title,
        "status": incident.status.value,
        "created_at": _time(incident.created_at),
        "updated_at": _time(incident.updated_at),
        "monitoring_at": _time(incident.monitoring_at),
        "resolved_at": _time(incident.resolved_at),
        "impact": incident.impact.value,
        "shortlink": f"{page.url.rstrip('/')}/incidents/{incident.id}",
        "started_at": _time(incident.started_at),
        "page_id": page.id,
        "incident_updates": [
            {
                "id": str(update.id),
                "status": update.status.value,
                "body": update.body,
                "incident_id": str(incident.id),
                "created_at": _time(update.created_at),
                "updated_at": _time(update.created_at),
                "display_at": _time(update.display_at),
                "affected_components": [
                    {
                        "code": change.key,
                        "name": change.name,
                        "old_status": change.old_status.value,
                        "new_status": change.new_status.value,
                    }
                    for change in update.changes
                ]
                or None,
                "deliver_notifications": update.notify,
            }
            for update in incident.updates
        ],
        "components": [component_json(c, page) for c in incident.components],
    }


def maintenance_json(window: Maintenance, page: PageInfo) -> Json:
    """One scheduled maintenance, shaped like an incident as Statuspage does."""
    return {
        "id": str(window.id),
        "name": window.title,
        "status": window.status.value,
        "created_at": _time(window.created_at),
        "updated_at": _time(window.updated_at),
        "monitoring_at": None,
        "resolved_at": _time(window.actual_end),
        "impact": "maintenance",
        "shortlink": f"{page.url.rstrip('/')}/maintenance/{window.id}",
        "started_at": _time(window.actual_start),
        "page_id": page.id,
        "scheduled_for": _time(window.planned_start),
        "scheduled_until": _time(window.planned_end),
        "rrule": window.rrule,
        "incident_updates": [
            {
                "id": f"m{window.id}",
                "status": window.status.value,
                "body": window.body,
                "incident_id": str(window.id),
                "created_at": _time(window.created_at),
                "updated_at": _time(window.updated_at),
                "display_at": _time(window.updated_at),
                "affected_components": None,
                "deliver_notifications": True,
            }
        ],
        "components": [component_json(c, page) for c in window.components],
    }


def overall_status(
    components: list[Component], unresolved: list[Incident], active: list[Maintenance]
) -> Json:
    """The ``status`` block: an indicator and a sentence for the banner.

    The indicator is the worse of what the components show and the impact of
    the worst unresolved incident: ``critical`` for a critical incident,
    ``major`` for any major outage (or major incident), ``minor`` for a partial
    outage, degraded performance or minor incident, ``maintenance`` while a
    window runs and nothing is worse, else ``none``.
    """
    statuses = {c.effective_status for c in components}
    impacts = {i.impact for i in unresolved}
    if Impact.CRITICAL in impacts:
        return {"indicator": "critical", "description": "Major System Outage"}
    if ComponentStatus.MAJOR_OUTAGE in statuses or Impact.MAJOR in impacts:
        return {"indicator": "major", "description": "Major System Outage"}
    if ComponentStatus.PARTIAL_OUTAGE in statuses:
        return {"indicator": "minor", "description": "Partial System Outage"}
    if ComponentStatus.DEGRADED_PERFORMANCE in statuses or Impact.MINOR in impacts:
        return {"indicator": "minor", "description": "Minor Service Outage"}
    if active or ComponentStatus.UNDER_MAINTENANCE in statuses:
        return {"indicator": "maintenance", "description": "Service Under Maintenance"}
    return {"indicator": "none", "description": "All Systems Operational"}
