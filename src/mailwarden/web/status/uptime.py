"""Uptime arithmetic over status intervals: 90-day bars and monthly percentages.

Every component has a gap-free chain of ``status_intervals`` rows (the last
one open).  For any span of time:

- time under maintenance is left out of the count entirely (announced work is
  not downtime, and not uptime either);
- a major outage counts fully as downtime, a partial outage counts 30 % (the
  weighting Atlassian Statuspage uses, so numbers compare with other pages),
  degraded performance counts as up;
- time before the component existed is not counted.

``uptime = 1 - downtime / counted time``; with nothing counted (a day spent
entirely in maintenance, or before the component existed) the answer is
``None``: the bar of a day spent entirely in maintenance is drawn in the
maintenance colour, one before the component existed grey.

Days are UTC days.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from mailwarden.web.status.db import StatusDB
from mailwarden.web.status.model import ComponentStatus, from_db, opt_from_db, to_db, worst

DOWNTIME_WEIGHT = {
    ComponentStatus.MAJOR_OUTAGE: 1.0,
    ComponentStatus.PARTIAL_OUTAGE: 0.3,
}


@dataclass(frozen=True, slots=True)
class Interval:
    """A stretch of time in one status; ``end`` None means "still"."""

    status: ComponentStatus
    start: datetime
    end: datetime | None


@dataclass(frozen=True, slots=True)
class DayBar:
    """One day of a component's uptime bar."""

    day: date
    uptime: float | None
    """Fraction up, or None when nothing was counted."""
    worst: ComponentStatus
    """Worst status seen that day (maintenance included)."""
    down_minutes: int
    """Minutes of major or partial outage."""

    @property
    def css(self) -> str:
        """Class name for the bar colour."""
        if self.uptime is None and self.worst is not ComponentStatus.UNDER_MAINTENANCE:
            return "nodata"
        return self.worst.value

    @property
    def title(self) -> str:
        """Tooltip text."""
        if self.uptime is None:
            if self.worst is ComponentStatus.UNDER_MAINTENANCE:
                return f"{self.day.isoformat()}: under maintenance all day"
            return f"{self.day.isoformat()}: no data"
        if self.down_minutes:
            return (
                f"{self.day.isoformat()}: {self.uptime * 100:.2f}% up,"
                f" {self.down_minutes} min of outage"
            )
        return f"{self.day.isoformat()}: {self.worst.label}"


def uptime(intervals: list[Interval], start: datetime, end: datetime) -> float | None:
    """Uptime fraction over ``[start, end)`` (see the module docstring)."""
    counted = 0.0
    down = 0.0
    for iv in intervals:
        lo = max(iv.start, start)
        hi = min(iv.end or end, end)
        if hi <= lo:
            continue
        seconds = (hi - lo).total_seconds()
        if iv.status is ComponentStatus.UNDER_MAINTENANCE:
            continue
        counted += seconds
        down += seconds * DOWNTIME_WEIGHT.get(iv.status, 0.0)
    if counted <= 0:
        return None
    return 1.0 - down / counted


def day_bars(intervals: list[Interval], now: datetime, days: int = 90) -> list[DayBar]:
    """One bar per UTC day for the last ``days`` days, today last."""
    today = now.astimezone(UTC).date()
    bars = []
    for offset in range(days - 1, -1, -1):
        day = today - timedelta(days=offset)
        start = datetime.combine(day, time(), UTC)
        end = min(start + timedelta(days=1), now)
        seen = []
        down_seconds = 0.0
        for iv in intervals:
            lo, hi = max(iv.start, start), min(iv.end or end, end)
            if hi > lo:
                seen.append(iv.status)
                if iv.status in DOWNTIME_WEIGHT:
                    down_seconds += (hi - lo).total_seconds()
        bars.append(
            DayBar(
                day=day,
                uptime=uptime(intervals, start, end) if end > start else None,
                worst=worst(seen),
                down_minutes=round(down_seconds / 60),
            )
        )
    return bars


def month_bounds(year: int, month: int) -> tuple[datetime, datetime]:
    """Start of the month and start of the next, in UTC."""
    start = datetime(year, month, 1, tzinfo=UTC)
    nxt = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=UTC)
    return start, nxt


def monthly_uptime(intervals: list[Interval], year: int, month: int, now: datetime) -> float | None:
    """Uptime of one calendar month (up to ``now`` for the current month)."""
    start, end = month_bounds(year, month)
    return uptime(intervals, start, min(end, now))


def load_intervals(db: StatusDB, component_id: int, since: datetime) -> list[Interval]:
    """A component's intervals that reach into ``[since, now]``."""
    rows = db.all(
        "SELECT status, started_at, ended_at FROM status_intervals"
        " WHERE component_id = ? AND (ended_at IS NULL OR ended_at > ?) ORDER BY started_at",
        (component_id, to_db(since)),
    )
    return [
        Interval(ComponentStatus(r["status"]), from_db(r["started_at"]), opt_from_db(r["ended_at"]))
        for r in rows
    ]


def format_percent(value: float | None) -> str:
    """``99.95%``, or an en dash without data."""
    if value is None:
        return "–"
    return f"{value * 100:.2f}%"
