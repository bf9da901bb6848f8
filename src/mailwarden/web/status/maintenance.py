"""Maintenance windows: announced in advance, run on time, recurring if asked.

Life of a window (``model.MAINTENANCE_MOVES`` holds the legal moves)::

    scheduled ──start──▶ in_progress ──▶ verifying ──▶ completed
        └──cancel──▶ cancelled        └──────────────▶ completed

Planned start and end are kept apart from the actual ones: the page says
"scheduled 02:00–04:00, started 02:01, completed 03:12".

``tick(now)`` is the clock-driven part, called by the scheduler (tests call it
with whatever time they like):

- a scheduled window whose planned start has come moves to ``in_progress``;
- one in progress or verifying whose planned end has come is ``completed``;
- reminders go out once per configured lead time (24 h and 60 min by default)
  before the start; when several leads are due at once (a window scheduled at
  short notice, or a service that was down) only the nearest is sent;
- recurring series (RFC 5545 RRULE, e.g. ``FREQ=MONTHLY;INTERVAL=3``) get their
  occurrences written out up to a horizon ahead, so each occurrence is an
  ordinary window that can be announced, reminded of and cancelled alone.

Minimum notice: a window must start at least ``min_notice`` after it is
scheduled (7 days by default) unless the operator says it is an emergency.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from dateutil.rrule import rrulestr  # type: ignore[import-untyped]

from mailwarden.web.status.components import Component, Components, affected_phrase
from mailwarden.web.status.db import StatusDB
from mailwarden.web.status.model import (
    MAINTENANCE_MOVES,
    Clock,
    MaintenanceStatus,
    NotFound,
    StatusError,
    duration_words,
    from_db,
    opt_from_db,
    to_db,
)

SERIES_HORIZON = timedelta(days=400)
"""How far ahead recurring windows are written out (a bit over a year: four quarters)."""


@dataclass(frozen=True, slots=True)
class Maintenance:
    """One maintenance window."""

    id: int
    series_id: int | None
    rrule: str | None
    title: str
    body: str
    status: MaintenanceStatus
    planned_start: datetime
    planned_end: datetime
    actual_start: datetime | None
    actual_end: datetime | None
    drain: bool
    components: tuple[Component, ...]
    created_at: datetime
    updated_at: datetime

    @property
    def affected(self) -> str:
        """``Hosted Email (Cluster A, IMAP, POP3)``."""
        return affected_phrase(list(self.components))

    @property
    def planned_length_words(self) -> str:
        """``2 hours``."""
        return duration_words(self.planned_end - self.planned_start)

    @property
    def active(self) -> bool:
        """In progress or verifying."""
        return self.status in (MaintenanceStatus.IN_PROGRESS, MaintenanceStatus.VERIFYING)


class MaintenanceEventKind(enum.Enum):
    """What happened to a window (each is announced)."""

    SCHEDULED = "scheduled"
    REMINDER = "reminder"
    STARTED = "in_progress"
    VERIFYING = "verifying"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class MaintenanceEvent:
    """A change worth telling subscribers (and the drain) about."""

    kind: MaintenanceEventKind
    maintenance: Maintenance
    lead: timedelta | None = None
    """For reminders: the configured lead time that fell due."""


class MaintenanceListener(Protocol):
    """Told about every maintenance event."""

    def maintenance_event(self, event: MaintenanceEvent) -> None:
        """Called inside the transaction that made the change."""


_EVENT_FOR_STATUS = {
    MaintenanceStatus.IN_PROGRESS: MaintenanceEventKind.STARTED,
    MaintenanceStatus.VERIFYING: MaintenanceEventKind.VERIFYING,
    MaintenanceStatus.COMPLETED: MaintenanceEventKind.COMPLETED,
    MaintenanceStatus.CANCELLED: MaintenanceEventKind.CANCELLED,
}


def expand_rrule(rule: str, start: datetime, until: datetime) -> list[datetime]:
    """Occurrences of an RFC 5545 RRULE from ``start`` up to ``until`` (inclusive).

    Raises:
        StatusError: the rule does not parse.
    """
    try:
        parsed = rrulestr(rule, dtstart=start)
    except (ValueError, TypeError) as exc:
        raise StatusError(f"bad RRULE {rule!r}: {exc}") from None
    found: list[datetime] = parsed.between(start, until, inc=True)
    return found


class Maintenances:
    """Schedules, moves and reads maintenance windows.

    Args:
        db: the status database.
        clock: injected time source.
        components: refreshed whenever a window starts or ends.
        min_notice: shortest allowed time between scheduling and start.
        reminder_leads: how long before the start reminders go out.
        listeners: told about events (notifier, drain).
    """

    def __init__(
        self,
        db: StatusDB,
        clock: Clock,
        components: Components,
        *,
        min_notice: timedelta = timedelta(days=7),
        reminder_leads: tuple[timedelta, ...] = (timedelta(hours=24), timedelta(minutes=60)),
        listeners: tuple[MaintenanceListener, ...] = (),
    ) -> None:
        self._db = db
        self._clock = clock
        self._components = components
        self.min_notice = min_notice
        self._leads = tuple(sorted(reminder_leads))
        self._listeners = list(listeners)

    def add_listener(self, listener: MaintenanceListener) -> None:
        """Register another listener."""
        self._listeners.append(listener)

    def _tell(self, event: MaintenanceEvent) -> None:
        for listener in self._listeners:
            listener.maintenance_event(event)

    # -- scheduling ------------------------------------------------------------

    def schedule(
        self,
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
        """Schedule a window, or a recurring series of them.

        Args:
            title: headline.
            start: planned start of the (first) window.
            end: planned end of the (first) window.
            components: keys of the affected components.
            body: Markdown description of the work and its impact.
            rrule: RFC 5545 recurrence rule; ``start`` is its DTSTART.
            drain: whether the affected nodes are drained during the window.
            emergency: allow less than the minimum notice.

        Returns:
            The windows written (one, or the series up to the horizon).

        Raises:
            StatusError: end not after start, too little notice, no components, bad RRULE.
            NotFound: an unknown component key.
        """
        now = self._clock()
        if end <= start:
            raise StatusError("a maintenance window must end after it starts")
        if not components:
            raise StatusError("name at least one affected component")
        if not emergency and start <= now:
            raise StatusError("maintenance cannot start in the past (use emergency to start now)")
        if not emergency and start - now < self.min_notice:
            raise StatusError(
                f"maintenance needs {duration_words(self.min_notice)} notice;"
                f" this starts in {duration_words(start - now)} (use emergency to override)"
            )
        comps = [self._components.get(key) for key in components]
        with self._db.transaction() as conn:
            if rrule is None:
                mid = self._insert(None, title, body, start, end, drain, comps, now)
                made = [mid]
            else:
                expand_rrule(rrule, start, start)  # validate before writing
                series_id = conn.execute(
                    "INSERT INTO maintenance_series (rrule, dtstart, length_seconds, title,"
                    " body, drain, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        rrule,
                        to_db(start),
                        int((end - start).total_seconds()),
                        title,
                        body,
                        int(drain),
                        to_db(now),
                    ),
                ).lastrowid
                for comp in comps:
                    conn.execute(
                        "INSERT INTO series_components (series_id, component_id) VALUES (?, ?)",
                        (series_id, comp.id),
                    )
                made = self._materialise(now)
            windows = [self.get(mid) for mid in made]
            for window in windows:
                self._tell(MaintenanceEvent(MaintenanceEventKind.SCHEDULED, window))
        return windows

    def _insert(
        self,
        series_id: int | None,
        title: str,
        body: str,
        start: datetime,
        end: datetime,
        drain: bool,
        comps: list[Component],
        now: datetime,
    ) -> int:
        with self._db.transaction() as tx:
            mid = tx.execute(
                "INSERT INTO maintenances (series_id, title, body, status, planned_start,"
                " planned_end, drain, created_at, updated_at)"
                " VALUES (?, ?, ?, 'scheduled', ?, ?, ?, ?, ?)",
                (
                    series_id,
                    title,
                    body,
                    to_db(start),
                    to_db(end),
                    int(drain),
                    to_db(now),
                    to_db(now),
                ),
            ).lastrowid
            assert mid is not None
            for comp in comps:
                tx.execute(
                    "INSERT INTO maintenance_components (maintenance_id, component_id)"
                    " VALUES (?, ?)",
                    (mid, comp.id),
                )
        return mid

    def _materialise(self, now: datetime) -> list[int]:
        """Write out occurrences of live series up to the horizon; return new ids."""
        made: list[int] = []
        with self._db.transaction() as conn:
            for series in conn.execute(
                "SELECT * FROM maintenance_series WHERE cancelled_at IS NULL"
            ).fetchall():
                dtstart = from_db(series["dtstart"])
                length = timedelta(seconds=series["length_seconds"])
                have = {
                    r[0]
                    for r in conn.execute(
                        "SELECT planned_start FROM maintenances WHERE series_id = ?",
                        (series["id"],),
                    )
                }
                comp_ids = [
                    r[0]
                    for r in conn.execute(
                        "SELECT component_id FROM series_components WHERE series_id = ?",
                        (series["id"],),
                    )
                ]
                comps = self._components.by_ids(comp_ids)
                for start in expand_rrule(series["rrule"], dtstart, now + SERIES_HORIZON):
                    if to_db(start) in have or start + length <= now:
                        continue
                    made.append(
                        self._insert(
                            series["id"],
                            series["title"],
                            series["body"],
                            start,
                            start + length,
                            bool(series["drain"]),
                            comps,
                            now,
                        )
                    )
        return made

    # -- moving ----------------------------------------------------------------

    def transition(self, maintenance_id: int, status: MaintenanceStatus) -> Maintenance:
        """Move a window to ``status`` by hand.

        Raises:
            NotFound: no such window.
            StatusError: the move is not legal from the current status.
        """
        with self._db.transaction():
            window = self.get(maintenance_id)
            self._move(window, status, self._clock())
            self._components.refresh()
        return self.get(maintenance_id)

    def _move(self, window: Maintenance, status: MaintenanceStatus, now: datetime) -> None:
        if status not in MAINTENANCE_MOVES[window.status]:
            raise StatusError(
                f"maintenance {window.id} is {window.status.value}; cannot move to {status.value}"
            )
        sets = ["status = :status", "updated_at = :now"]
        if status is MaintenanceStatus.IN_PROGRESS:
            sets.append("actual_start = :now")
        if status is MaintenanceStatus.COMPLETED:
            sets.append("actual_end = :now")
        self._db.execute(
            f"UPDATE maintenances SET {', '.join(sets)} WHERE id = :id",  # noqa: S608 - fixed fragments
            {"status": status.value, "now": to_db(now), "id": window.id},
        )
        self._tell(MaintenanceEvent(_EVENT_FOR_STATUS[status], self.get(window.id)))

    def cancel(self, maintenance_id: int, *, series: bool = False) -> list[Maintenance]:
        """Cancel a scheduled window, or every scheduled window of its series.

        Raises:
            NotFound: no such window.
            StatusError: the window already started (or ended).
        """
        window = self.get(maintenance_id)
        now = self._clock()
        with self._db.transaction():
            targets = [window]
            if series and window.series_id is not None:
                self._db.execute(
                    "UPDATE maintenance_series SET cancelled_at = ? WHERE id = ?",
                    (to_db(now), window.series_id),
                )
                targets = [
                    w
                    for w in self.search(statuses=(MaintenanceStatus.SCHEDULED,))
                    if w.series_id == window.series_id
                ]
            for target in targets:
                self._move(target, MaintenanceStatus.CANCELLED, now)
        return [self.get(t.id) for t in targets]

    def tick(self, now: datetime | None = None) -> list[MaintenanceEvent]:
        """Do what the clock says is due: transitions, reminders, series.

        Returns:
            The events that happened, in order.
        """
        moment = now or self._clock()
        events: list[MaintenanceEvent] = []

        def record(event: MaintenanceEvent) -> None:
            events.append(event)

        with self._db.transaction():
            self._listeners.append(_Recorder(record))
            try:
                self._materialise(moment)
                for window in self.search(
                    statuses=(
                        MaintenanceStatus.SCHEDULED,
                        MaintenanceStatus.IN_PROGRESS,
                        MaintenanceStatus.VERIFYING,
                    )
                ):
                    if window.status is MaintenanceStatus.SCHEDULED:
                        if window.planned_start <= moment:
                            self._move(window, MaintenanceStatus.IN_PROGRESS, moment)
                            window = self.get(window.id)
                        else:
                            self._remind(window, moment)
                            continue
                    if window.planned_end <= moment:
                        self._move(window, MaintenanceStatus.COMPLETED, moment)
                self._components.refresh(moment)
            finally:
                self._listeners.pop()
        return events

    def _remind(self, window: Maintenance, now: datetime) -> None:
        until = window.planned_start - now
        due = [lead for lead in self._leads if until <= lead]
        if not due:
            return
        sent = {
            r[0]
            for r in self._db.all(
                "SELECT lead_seconds FROM maintenance_reminders WHERE maintenance_id = ?",
                (window.id,),
            )
        }
        fresh = [lead for lead in due if int(lead.total_seconds()) not in sent]
        if not fresh:
            return
        for lead in fresh:
            self._db.execute(
                "INSERT INTO maintenance_reminders (maintenance_id, lead_seconds, sent_at)"
                " VALUES (?, ?, ?)",
                (window.id, int(lead.total_seconds()), to_db(now)),
            )
        self._tell(MaintenanceEvent(MaintenanceEventKind.REMINDER, window, lead=min(fresh)))

    # -- reading ---------------------------------------------------------------

    def get(self, maintenance_id: int) -> Maintenance:
        """Return one window.

        Raises:
            NotFound: no such window.
        """
        found = self._load("WHERE m.id = ?", (maintenance_id,))
        if not found:
            raise NotFound(f"no maintenance {maintenance_id}")
        return found[0]

    def search(
        self,
        *,
        statuses: tuple[MaintenanceStatus, ...] | None = None,
        since: datetime | None = None,
    ) -> list[Maintenance]:
        """Windows by planned start, soonest first.

        Args:
            statuses: only windows in these statuses.
            since: only windows planned to end at or after this time.
        """
        clauses: list[str] = []
        params: list[object] = []
        if statuses:
            clauses.append(f"m.status IN ({','.join('?' * len(statuses))})")
            params.extend(s.value for s in statuses)
        if since is not None:
            clauses.append("m.planned_end >= ?")
            params.append(to_db(since))
        where = ("WHERE " + " AND ".join(clauses)) if clauses else ""
        return self._load(f"{where} ORDER BY m.planned_start, m.id", params)

    def upcoming(self) -> list[Maintenance]:
        """Scheduled windows not yet started."""
        return self.search(statuses=(MaintenanceStatus.SCHEDULED,))

    def active(self) -> list[Maintenance]:
        """Windows in progress or verifying."""
        return self.search(statuses=(MaintenanceStatus.IN_PROGRESS, MaintenanceStatus.VERIFYING))

    def _load(self, tail: str, params: tuple[object, ...] | list[object]) -> list[Maintenance]:
        sql = "SELECT m.*, s.rrule FROM maintenances m LEFT JOIN maintenance_series s"
        rows = self._db.all(f"{sql} ON s.id = m.series_id {tail}", params)
        comps = {c.id: c for c in self._components.all()}
        links: dict[int, list[int]] = {}
        if rows:
            marks = ",".join("?" * len(rows))
            for r in self._db.all(
                f"SELECT * FROM maintenance_components WHERE maintenance_id IN ({marks})",  # noqa: S608
                [r["id"] for r in rows],
            ):
                links.setdefault(r["maintenance_id"], []).append(r["component_id"])
        order = list(comps)
        return [
            Maintenance(
                id=r["id"],
                series_id=r["series_id"],
                rrule=r["rrule"],
                title=r["title"],
                body=r["body"],
                status=MaintenanceStatus(r["status"]),
                planned_start=from_db(r["planned_start"]),
                planned_end=from_db(r["planned_end"]),
                actual_start=opt_from_db(r["actual_start"]),
                actual_end=opt_from_db(r["actual_end"]),
                drain=bool(r["drain"]),
                components=tuple(
                    sorted(
                        (comps[c] for c in links.get(r["id"], [])),
                        key=lambda c: order.index(c.id),
                    )
                ),
                created_at=from_db(r["created_at"]),
                updated_at=from_db(r["updated_at"]),
            )
            for r in rows
        ]


class _Recorder:
    """Adapts a callback to ``MaintenanceListener``."""

    def __init__(self, callback: Callable[[MaintenanceEvent], None]) -> None:
        self._callback = callback

    def maintenance_event(self, event: MaintenanceEvent) -> None:
        self._callback(event)
