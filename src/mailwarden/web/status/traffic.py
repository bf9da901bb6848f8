"""Hour-of-week traffic profiles and the maintenance windows they suggest.

The node-side contract
======================
Each Mailwarden node counts, per hour of the week in UTC, the logins (all
protocols), SMTP sessions and webmail requests it served, averaged over the
last few weeks, and publishes the result from its admin API as
``GET /api/admin/traffic-profile`` (bearer token), or the operator saves the
same JSON to a file::

    {
      "version": 1,
      "bucket": "hour-of-week",     # index 0 = Monday 00:00-01:00 UTC, 167 = Sunday 23:00
      "timezone": "UTC",
      "weeks": 4,                   # how many weeks were averaged (informational)
      "node": "mx1.example.net",    # informational
      "series": {
        "logins": [168 numbers],
        "smtp_sessions": [168 numbers],
        "webmail_requests": [168 numbers]
      }
    }

Any series name is accepted; every series must have exactly 168 non-negative
numbers.  Profiles of several nodes are added together.

The suggestion
==============
Traffic in an hour is the sum of its series.  A window of L hours starting at
hour h costs the traffic of hours h..h+L-1 (wrapping from Sunday night to
Monday morning).  ``suggest_slots`` ranks the 168 possible starts by cost and
returns the cheapest ones that do not overlap each other.  ``quarterly_dates``
turns the best slot into concrete dates: the second such weekday of every
third month (an RFC 5545 rule the operator can pass straight to
``maintenance schedule --rrule``), the first at least the minimum notice away.
"""

from __future__ import annotations

import json
import math
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from dateutil.rrule import rrulestr  # type: ignore[import-untyped]

from mailwarden.web.status.model import StatusError

HOURS_PER_WEEK = 168
DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_RRULE_DAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")


@dataclass(frozen=True, slots=True)
class TrafficProfile:
    """Hourly traffic totals over one week (168 values, Monday 00:00 UTC first)."""

    hours: tuple[float, ...]
    series: tuple[str, ...]

    @classmethod
    def from_json(cls, data: object) -> TrafficProfile:
        """Validate and sum a profile document (see the module docstring).

        Raises:
            StatusError: not a version 1 hour-of-week profile.
        """
        if not isinstance(data, dict) or data.get("version") != 1:
            raise StatusError("traffic profile: expected an object with version 1")
        if data.get("bucket", "hour-of-week") != "hour-of-week":
            raise StatusError("traffic profile: bucket must be hour-of-week")
        series = data.get("series")
        if not isinstance(series, dict) or not series:
            raise StatusError("traffic profile: series must be a non-empty object")
        totals = [0.0] * HOURS_PER_WEEK
        for name, values in series.items():
            if not isinstance(values, list) or len(values) != HOURS_PER_WEEK:
                raise StatusError(f"traffic profile: series {name!r} needs 168 values")
            for i, value in enumerate(values):
                if (
                    isinstance(value, bool)
                    or not isinstance(value, int | float)
                    or value < 0
                    or not math.isfinite(value)
                ):
                    raise StatusError(f"traffic profile: {name}[{i}] is not a count")
                totals[i] += float(value)
        return cls(tuple(totals), tuple(sorted(series)))

    def __add__(self, other: TrafficProfile) -> TrafficProfile:
        return TrafficProfile(
            tuple(a + b for a, b in zip(self.hours, other.hours, strict=True)),
            tuple(sorted(set(self.series) | set(other.series))),
        )

    @property
    def total(self) -> float:
        """Traffic of the whole week."""
        return sum(self.hours)


def load_profile_file(path: Path) -> TrafficProfile:
    """Read a profile from a JSON file.

    Raises:
        StatusError: unreadable or invalid.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise StatusError(f"cannot read traffic profile {path}: {exc}") from None
    return TrafficProfile.from_json(data)


def fetch_profile(node_url: str, token: str = "", timeout: float = 10.0) -> TrafficProfile:
    """Fetch a node's profile from ``GET {node_url}/api/admin/traffic-profile``.

    Raises:
        StatusError: the node did not answer with a valid profile.
    """
    url = node_url.rstrip("/") + "/api/admin/traffic-profile"
    if not url.startswith(("http://", "https://")):
        raise StatusError(f"node URL must be http(s): {node_url!r}")
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310 - scheme checked
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            data = json.loads(response.read())
    except (OSError, ValueError) as exc:
        raise StatusError(f"cannot fetch traffic profile from {url}: {exc}") from None
    return TrafficProfile.from_json(data)


@dataclass(frozen=True, slots=True)
class Slot:
    """A weekly window: start hour-of-week and length in hours, with its traffic."""

    start_hour: int
    hours: int
    traffic: float
    share: float
    """Fraction of the week's traffic that falls in the window."""

    @property
    def weekday(self) -> int:
        """0 = Monday."""
        return self.start_hour // 24

    @property
    def hour(self) -> int:
        """Hour of day (UTC) the window starts."""
        return self.start_hour % 24

    def describe(self) -> str:
        """``Tuesday 02:00-04:00 UTC``."""
        end = (self.hour + self.hours) % 24
        return f"{DAY_NAMES[self.weekday]} {self.hour:02d}:00-{end:02d}:00 UTC"


def suggest_slots(profile: TrafficProfile, length: timedelta, count: int = 3) -> list[Slot]:
    """Return the ``count`` cheapest non-overlapping weekly windows of ``length``.

    The length is rounded up to whole hours.  Ties go to the earliest start in
    the week, so the answer is deterministic.

    Raises:
        StatusError: a length of a week or more.
    """
    hours = max(1, math.ceil(length.total_seconds() / 3600))
    if hours >= HOURS_PER_WEEK:
        raise StatusError("a maintenance window must be shorter than a week")
    week = profile.hours
    total = profile.total or 1.0
    costs = [
        (sum(week[(start + i) % HOURS_PER_WEEK] for i in range(hours)), start)
        for start in range(HOURS_PER_WEEK)
    ]
    chosen: list[Slot] = []
    taken: set[int] = set()
    for cost, start in sorted(costs):
        span = {(start + i) % HOURS_PER_WEEK for i in range(hours)}
        if span & taken:
            continue
        taken |= span
        chosen.append(Slot(start, hours, cost, cost / total))
        if len(chosen) == count:
            break
    return chosen


def quarterly_rule(slot: Slot) -> str:
    """RFC 5545 rule for "the second <weekday> of every third month at <hour>:00"."""
    return (
        f"FREQ=MONTHLY;INTERVAL=3;BYDAY=+2{_RRULE_DAYS[slot.weekday]};"
        f"BYHOUR={slot.hour};BYMINUTE=0;BYSECOND=0"
    )


def quarterly_dates(
    slot: Slot, now: datetime, min_notice: timedelta, count: int = 4
) -> tuple[str, list[datetime]]:
    """The next ``count`` quarterly starts of ``slot``, the first at least ``min_notice`` away.

    Returns:
        The RRULE and its occurrences; the rule's DTSTART is the first occurrence.
    """
    earliest = now + min_notice
    base = earliest.astimezone(UTC).replace(
        day=1, hour=slot.hour, minute=0, second=0, microsecond=0
    )
    rule = quarterly_rule(slot)
    dates: list[datetime] = []
    # The quarter grid starts at the month of the earliest date; if that
    # month's occurrence is already too soon, the next month's grid is used.
    month_start = base
    for _ in range(3):
        parsed = rrulestr(rule, dtstart=month_start)
        dates = [d for d in parsed.xafter(month_start, count=count + 1, inc=True) if d >= earliest]
        if dates and dates[0] - earliest < timedelta(days=31):
            break
        month_start = (month_start + timedelta(days=32)).replace(day=1)
    return rule, dates[:count]
