"""The status service: its parts wired together, the operations, and the tick.

``StatusService.open`` is the composition root of the status app: it opens
the database, runs migrations and connects incidents and maintenance to the
notifier.  The operations (``open_incident``, ``schedule_maintenance`` ...) are
what both the CLI and the admin pages call; each one writes the audit log, so
the log is complete whichever door an operator used.

``tick`` is everything the clock drives, in one call: maintenance transitions
and reminders, drain calls for windows that started or ended (queued durably
by ``DrainQueue`` in the same transaction as the move, see ``drain``), probes
when their interval has passed, the outbox, and the bounce mailbox (late hard
bounces, see ``bounces``) when its interval has passed.  The app runs it every
``tick_interval``; tests call it with a hand-set clock and nothing sleeps.
"""

from __future__ import annotations

import asyncio
import logging
import poplib
from dataclasses import dataclass, field
from datetime import datetime

from argon2 import PasswordHasher

from mailwarden.web.status.api import PageInfo
from mailwarden.web.status.bounces import BounceFetcher, Pop3BounceFetcher, parse_dsn
from mailwarden.web.status.components import Component, Components
from mailwarden.web.status.db import StatusDB
from mailwarden.web.status.drain import DrainCall, DrainClient, DrainQueue, HttpDrainClient
from mailwarden.web.status.incidents import Incident, Incidents, Template
from mailwarden.web.status.maintenance import (
    Maintenance,
    MaintenanceEvent,
    Maintenances,
)
from mailwarden.web.status.model import (
    Clock,
    ComponentStatus,
    Impact,
    IncidentStatus,
    MaintenanceStatus,
    system_clock,
)
from mailwarden.web.status.notify import DeliveryReport, MailSender, Notifier, WebhookPoster
from mailwarden.web.status.probes import Hysteresis, Probe, ProbeMonitor, probes_for
from mailwarden.web.status.settings import StatusSettings
from mailwarden.web.status.throttle import LoginThrottle
from mailwarden.web.status.users import Audit, Users

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TickReport:
    """What one tick did."""

    events: tuple[MaintenanceEvent, ...]
    drain_calls: tuple[DrainCall, ...]
    """Each pending drain request looked at, and what came of it."""
    probes_ran: bool
    delivery: DeliveryReport
    quarantined: tuple[str, ...] = ()
    """Subscriber addresses quarantined for late hard bounces."""


@dataclass
class StatusService:
    """Every part of the status service, built by ``open``."""

    settings: StatusSettings
    db: StatusDB
    clock: Clock
    components: Components
    incidents: Incidents
    maintenances: Maintenances
    notifier: Notifier
    probes: ProbeMonitor
    users: Users
    audit: Audit
    drain: DrainClient
    drains: DrainQueue
    logins: LoginThrottle
    bounces: BounceFetcher | None = None
    _last_bounce_check: datetime | None = field(default=None, repr=False)

    @classmethod
    def open(
        cls,
        settings: StatusSettings,
        *,
        clock: Clock = system_clock,
        database: str | None = None,
        sender: MailSender | None = None,
        poster: WebhookPoster | None = None,
        drain: DrainClient | None = None,
        probes: list[tuple[Probe, Hysteresis]] | None = None,
        hasher: PasswordHasher | None = None,
        bounces: BounceFetcher | None = None,
    ) -> StatusService:
        """Open (and migrate) the database and wire the parts.

        Args:
            settings: the status settings.
            clock: time source (tests pass a hand-set one).
            database: override of ``settings.database`` (``":memory:"`` in tests).
            sender: mail transport (default: the configured relay).
            poster: webhook transport (default: urllib).
            drain: drain client (default: HTTP to the nodes' admin API).
            probes: probes with their rules (default: built from ``settings.probes``).
            hasher: argon2 parameters (tests pass cheap ones).
            bounces: bounce mailbox reader (default: POP3 per ``settings.bounces``,
                or none when that is not set).
        """
        db = StatusDB(database or settings.database)
        db.migrate()
        components = Components(db, clock)
        notifier = Notifier(db, clock, settings, sender=sender, poster=poster)
        incidents = Incidents(db, clock, components, (notifier,))
        maintenances = Maintenances(
            db,
            clock,
            components,
            min_notice=settings.min_notice,
            reminder_leads=settings.reminders,
            listeners=(notifier,),
        )
        if probes is None:
            probes = [
                (probe, Hysteresis.from_settings(ps))
                for ps in settings.probes
                for probe in probes_for(ps)
            ]
        interval = min((ps.interval for ps in settings.probes), default=settings.tick_interval)
        monitor = ProbeMonitor(db, clock, components, probes, interval, settings.probe_history)
        service: StatusService
        drains = DrainQueue(db, clock, lambda: service.settings.nodes)
        maintenances.add_listener(drains)
        service = cls(
            settings=settings,
            db=db,
            clock=clock,
            components=components,
            incidents=incidents,
            maintenances=maintenances,
            notifier=notifier,
            probes=monitor,
            users=Users(db, clock, hasher),
            audit=Audit(db, clock),
            drain=drain or HttpDrainClient(),
            drains=drains,
            logins=LoginThrottle(db, clock, settings.login),
            bounces=bounces or (Pop3BounceFetcher(settings.bounces) if settings.bounces else None),
        )
        return service

    def close(self) -> None:
        """Close the database."""
        self.db.close()

    def page_info(self) -> PageInfo:
        """The page block of the JSON API."""
        comps = self.components.all()
        updated = max((c.updated_at for c in comps), default=self.clock())
        return PageInfo(self.settings.page_name, self.settings.public_url, updated)

    # -- operations (audited) --------------------------------------------------

    def add_cluster(self, actor: str, cluster: str) -> list[Component]:
        """Create the standard components of a cluster."""
        made = self.components.add_cluster(cluster)
        self.audit.record(actor, "component.add_cluster", cluster, ", ".join(c.key for c in made))
        return made

    def set_component(self, actor: str, key: str, status: ComponentStatus) -> Component:
        """Set a component's operator status."""
        comp, old = self.components.set_status(key, status)
        self.audit.record(actor, "component.set", key, f"{old.value} -> {status.value}")
        return comp

    def open_incident(
        self,
        actor: str,
        title: str,
        body: str,
        *,
        impact: Impact = Impact.MINOR,
        status: IncidentStatus = IncidentStatus.INVESTIGATING,
        components: dict[str, ComponentStatus] | None = None,
        display_at: datetime | None = None,
        started_at: datetime | None = None,
        notify: bool = True,
    ) -> Incident:
        """Open an incident (see ``Incidents.open``)."""
        incident = self.incidents.open(
            title,
            body,
            impact=impact,
            status=status,
            components=components,
            display_at=display_at,
            started_at=started_at,
            notify=notify,
            author=actor,
        )
        self.audit.record(actor, "incident.open", f"incident {incident.id}", title)
        return incident

    def update_incident(
        self,
        actor: str,
        incident_id: int,
        body: str,
        *,
        status: IncidentStatus | None = None,
        components: dict[str, ComponentStatus] | None = None,
        display_at: datetime | None = None,
        notify: bool = True,
        impact: Impact | None = None,
    ) -> Incident:
        """Post an update (see ``Incidents.update``)."""
        incident = self.incidents.update(
            incident_id,
            body,
            status=status,
            components=components,
            display_at=display_at,
            notify=notify,
            author=actor,
            impact=impact,
        )
        self.audit.record(
            actor, "incident.update", f"incident {incident_id}", incident.status.value
        )
        return incident

    def resolve_incident(
        self,
        actor: str,
        incident_id: int,
        body: str,
        *,
        display_at: datetime | None = None,
        ended_at: datetime | None = None,
        notify: bool = True,
    ) -> Incident:
        """Resolve an incident (see ``Incidents.resolve``)."""
        incident = self.incidents.resolve(
            incident_id,
            body,
            display_at=display_at,
            ended_at=ended_at,
            notify=notify,
            author=actor,
        )
        self.audit.record(
            actor, "incident.resolve", f"incident {incident_id}", incident.duration_words or ""
        )
        return incident

    def report_incident(
        self,
        actor: str,
        incident_id: int,
        *,
        summary: str,
        client_impact: str,
        remediation: str,
        posted_at: datetime | None = None,
    ) -> Incident:
        """Attach the incident report."""
        incident = self.incidents.set_report(
            incident_id,
            summary=summary,
            client_impact=client_impact,
            remediation=remediation,
            posted_at=posted_at,
        )
        self.audit.record(actor, "incident.report", f"incident {incident_id}")
        return incident

    def save_template(self, actor: str, template: Template) -> Template:
        """Create or replace an incident template (see ``Incidents.save_template``)."""
        existed = any(t.name == template.name for t in self.incidents.templates())
        self.incidents.save_template(template)
        self.audit.record(
            actor,
            "template.update" if existed else "template.add",
            f"template {template.name}",
            template.title,
        )
        return self.incidents.template(template.name)

    def delete_template(self, actor: str, name: str) -> None:
        """Delete an incident template."""
        self.incidents.delete_template(name)
        self.audit.record(actor, "template.delete", f"template {name}")

    def schedule_maintenance(
        self,
        actor: str,
        title: str,
        start: datetime,
        end: datetime,
        *,
        components: list[str],
        body: str = "",
        rrule: str | None = None,
        drain: bool = True,
        emergency: bool = False,
    ) -> list[Maintenance]:
        """Schedule a window or series (see ``Maintenances.schedule``)."""
        windows = self.maintenances.schedule(
            title,
            start,
            end,
            components=components,
            body=body,
            rrule=rrule,
            drain=drain,
            emergency=emergency,
        )
        ids = ", ".join(str(w.id) for w in windows)
        detail = f"{title}; rrule={rrule}" if rrule else title
        if emergency:
            detail += "; emergency (minimum notice waived)"
        self.audit.record(actor, "maintenance.schedule", f"maintenance {ids}", detail)
        return windows

    def move_maintenance(
        self, actor: str, maintenance_id: int, status: MaintenanceStatus
    ) -> Maintenance:
        """Move a window by hand (start early, verifying, complete)."""
        window = self.maintenances.transition(maintenance_id, status)
        self.audit.record(actor, "maintenance.move", f"maintenance {maintenance_id}", status.value)
        return window

    def cancel_maintenance(
        self, actor: str, maintenance_id: int, *, series: bool = False
    ) -> list[Maintenance]:
        """Cancel a window (or its whole series)."""
        windows = self.maintenances.cancel(maintenance_id, series=series)
        self.audit.record(
            actor,
            "maintenance.cancel",
            f"maintenance {maintenance_id}",
            "series" if series else "",
        )
        return windows

    # -- the clock-driven part ---------------------------------------------------

    async def tick(self) -> TickReport:
        """Run everything that is due now (see the module docstring)."""
        now = self.clock()
        events = self.maintenances.tick(now)
        calls = await self.drains.send_due(self.drain, self.maintenances, now)
        for call in calls:
            if call.acknowledged:
                self.audit.record(
                    "scheduler",
                    "drain.on" if call.drain else "drain.off",
                    call.node_url,
                    f"maintenance {call.maintenance_id}",
                )
        ran = await self.probes.run_due()
        delivery = await self.notifier.deliver_due(now)
        quarantined = await self._read_bounces(now)
        return TickReport(tuple(events), tuple(calls), ran, delivery, quarantined)

    async def _read_bounces(self, now: datetime) -> tuple[str, ...]:
        """Quarantine subscribers that DSNs in the bounce mailbox report as failed."""
        interval = self.settings.bounces.interval if self.settings.bounces else None
        if self.bounces is None:
            return ()
        last = self._last_bounce_check
        if last is not None and interval is not None and now - last < interval:
            return ()
        self._last_bounce_check = now
        try:
            messages = await asyncio.to_thread(self.bounces.fetch)
        except (OSError, EOFError, poplib.error_proto) as exc:
            log.warning("bounce mailbox not read: %s", exc)
            return ()
        quarantined = []
        ignored = 0
        for raw in messages:
            found = parse_dsn(raw)
            if found is None:
                ignored += 1
                continue
            for bounce in found:
                reason = f"bounced {bounce.status} {bounce.diagnostic}".strip()
                sub = self.notifier.quarantine_address(bounce.address, reason)
                if sub is not None:
                    self.audit.record(
                        "scheduler", "subscriber.quarantine", f"subscriber {sub.id}", reason
                    )
                    quarantined.append(sub.email)
        if messages:
            log.info(
                "bounce mailbox: %d messages, %d not DSNs, %d subscribers quarantined",
                len(messages),
                ignored,
                len(quarantined),
            )
        return tuple(quarantined)
