"""Value types of the status service: statuses, impacts, and how time is shown.

Every status word is the one the Atlassian Statuspage public API uses, so the
JSON API can hand enum values straight to tools that already read that API.
Severity is an ordering over component statuses: the page, the dependency rule
and the overall indicator all take "the worst of" a set of statuses, and
``ComponentStatus.severity`` is that one ordering.

Times are aware UTC datetimes everywhere.  The database stores them as
ISO-8601 text in one fixed shape (``2024-05-02T09:00:00+00:00``) so that text
order is time order; ``to_db`` and ``from_db`` are the only converters.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

Clock = Callable[[], datetime]
"""A callable returning the current time as an aware UTC datetime (injected everywhere)."""


def system_clock() -> datetime:
    """Return the wall-clock time in UTC, truncated to whole seconds."""
    return datetime.now(UTC).replace(microsecond=0)


class ComponentStatus(enum.Enum):
    """What a component's users experience, from best to worst."""

    OPERATIONAL = "operational"
    """Working as expected."""
    UNDER_MAINTENANCE = "under_maintenance"
    """Announced work is in progress; probes are muted."""
    DEGRADED_PERFORMANCE = "degraded_performance"
    """Working but slow (probe latency over its threshold)."""
    PARTIAL_OUTAGE = "partial_outage"
    """Failing for some users or some of the time."""
    MAJOR_OUTAGE = "major_outage"
    """Not working for most users."""

    @property
    def severity(self) -> int:
        """Rank used to take the worst of several statuses (higher is worse)."""
        return _SEVERITY[self]

    @property
    def label(self) -> str:
        """Words shown to people: ``"partial outage"``."""
        return self.value.replace("_", " ")


_SEVERITY = {
    ComponentStatus.OPERATIONAL: 0,
    ComponentStatus.UNDER_MAINTENANCE: 1,
    ComponentStatus.DEGRADED_PERFORMANCE: 2,
    ComponentStatus.PARTIAL_OUTAGE: 3,
    ComponentStatus.MAJOR_OUTAGE: 4,
}


def worst(statuses: list[ComponentStatus]) -> ComponentStatus:
    """Return the most severe of ``statuses`` (operational for an empty list)."""
    return max(statuses, key=lambda s: s.severity, default=ComponentStatus.OPERATIONAL)


class Impact(enum.Enum):
    """How bad an incident is, as the operator judges it."""

    NONE = "none"
    MINOR = "minor"
    MAJOR = "major"
    CRITICAL = "critical"


class IncidentStatus(enum.Enum):
    """Stage of an incident; every update carries one."""

    INVESTIGATING = "investigating"
    IDENTIFIED = "identified"
    MONITORING = "monitoring"
    RESOLVED = "resolved"


class MaintenanceStatus(enum.Enum):
    """Stage of a maintenance window.

    ``scheduled → in_progress → verifying → completed``; ``cancelled`` may be
    reached from ``scheduled`` only.  The legal moves are ``MAINTENANCE_MOVES``.
    """

    SCHEDULED = "scheduled"
    IN_PROGRESS = "in_progress"
    VERIFYING = "verifying"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


MAINTENANCE_MOVES: dict[MaintenanceStatus, frozenset[MaintenanceStatus]] = {
    MaintenanceStatus.SCHEDULED: frozenset(
        {MaintenanceStatus.IN_PROGRESS, MaintenanceStatus.CANCELLED}
    ),
    MaintenanceStatus.IN_PROGRESS: frozenset(
        {MaintenanceStatus.VERIFYING, MaintenanceStatus.COMPLETED}
    ),
    MaintenanceStatus.VERIFYING: frozenset({MaintenanceStatus.COMPLETED}),
    MaintenanceStatus.COMPLETED: frozenset(),
    MaintenanceStatus.CANCELLED: frozenset(),
}


class Role(enum.Enum):
    """Operator roles on the admin pages.

    Editors run incidents, maintenance and component statuses; admins also
    manage users, subscribers, webhooks and read the audit log.
    """

    ADMIN = "admin"
    EDITOR = "editor"


class StatusError(Exception):
    """A request the status service refuses; the text is safe to show an operator."""


class NotFound(StatusError):
    """No such incident, maintenance, component, subscriber or user."""


def to_db(moment: datetime) -> str:
    """Return the stored text form of an aware datetime (UTC, whole seconds).

    Raises:
        ValueError: ``moment`` is naive.
    """
    if moment.tzinfo is None:
        raise ValueError("naive datetime")
    return moment.astimezone(UTC).replace(microsecond=0).isoformat()


def from_db(text: str) -> datetime:
    """Inverse of ``to_db``."""
    return datetime.fromisoformat(text).astimezone(UTC)


def opt_from_db(text: str | None) -> datetime | None:
    """``from_db`` for nullable columns."""
    return None if text is None else from_db(text)


def parse_time(text: str) -> datetime:
    """Parse an operator-typed time: ISO-8601, with ``Z``/offset or taken as UTC.

    Accepts ``2024-05-02T09:11Z``, ``2024-05-02 09:11``, ``2024-05-02T09:11:00+02:00``.

    Raises:
        StatusError: the text is not such a time.
    """
    value = text.strip().replace(" ", "T", 1)
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise StatusError(f"not a time: {text!r} (use 2024-05-02T09:11Z)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(microsecond=0)


_LENGTH_RE = re.compile(r"(?:(\d+)d)?\s*(?:(\d+)h)?\s*(?:(\d+)m(?:in)?)?", re.IGNORECASE)


def parse_length(text: str) -> timedelta:
    """Parse a length such as ``2h``, ``90m``, ``1h30m`` or ``1d``.

    Raises:
        StatusError: empty, zero or unparseable.
    """
    match = _LENGTH_RE.fullmatch(text.strip())
    if not match or not any(match.groups()):
        raise StatusError(f"not a length: {text!r} (use 2h, 90m or 1h30m)")
    days, hours, minutes = (int(g) if g else 0 for g in match.groups())
    length = timedelta(days=days, hours=hours, minutes=minutes)
    if length <= timedelta(0):
        raise StatusError("length must be positive")
    return length


def _plural(count: int, unit: str) -> str:
    return f"{count} {unit}" if count == 1 else f"{count} {unit}s"


def duration_words(length: timedelta) -> str:
    """Say a duration in words, to the minute: ``4 days 3 hours 46 minutes``.

    Zero parts are left out (``2 hours``), singulars are singular (``1 day``),
    seconds are dropped, and anything under a minute is ``0 minutes``.
    Negative lengths are treated as zero.
    """
    total_minutes = max(int(length.total_seconds()) // 60, 0)
    days, rest = divmod(total_minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    parts = []
    if days:
        parts.append(_plural(days, "day"))
    if hours:
        parts.append(_plural(hours, "hour"))
    if minutes or not parts:
        parts.append(_plural(minutes, "minute"))
    return " ".join(parts)


def format_latency(milliseconds: int) -> str:
    """Say a latency the way people read it: ``850 ms``, ``4.2 s``, ``2.5 min``."""
    if milliseconds < 1000:
        return f"{max(milliseconds, 0)} ms"
    if milliseconds < 60_000:
        return f"{milliseconds / 1000:.1f} s"
    return f"{milliseconds / 60_000:.1f} min"


def format_posted(moment: datetime) -> str:
    """Format a time as the page shows it: ``May 02, 2024 - 09:11 UTC``."""
    return moment.astimezone(UTC).strftime("%b %d, %Y - %H:%M UTC")


def slugify(text: str) -> str:
    """Lower-case ASCII slug: ``Cluster A`` → ``cluster-a``."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug or "x"
