"""Effective statuses, dependencies, status intervals and uptime arithmetic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mailwarden.web.status.model import ComponentStatus as S
from mailwarden.web.status.uptime import (
    Interval,
    day_bars,
    load_intervals,
    monthly_uptime,
    uptime,
)


def effective(service):
    return {
        c.key.removeprefix("cluster-a-"): (c.effective_status, c.cause)
        for c in service.components.all()
    }


def test_authentication_impairs_its_dependents_with_the_cause(service):
    service.set_component("test", "cluster-a-auth", S.MAJOR_OUTAGE)
    shown = effective(service)
    for key in ("imap", "pop3", "webmail", "smtp-submission"):
        assert shown[key] == (S.MAJOR_OUTAGE, "Authentication: major outage")
    assert shown["smtp-inbound"] == (S.OPERATIONAL, "")
    assert shown["auth"] == (S.MAJOR_OUTAGE, "")
    # A dependent's own worse status wins, without a borrowed cause.
    service.set_component("test", "cluster-a-auth", S.DEGRADED_PERFORMANCE)
    service.set_component("test", "cluster-a-imap", S.PARTIAL_OUTAGE)
    shown = effective(service)
    assert shown["imap"] == (S.PARTIAL_OUTAGE, "")
    assert shown["pop3"] == (S.DEGRADED_PERFORMANCE, "Authentication: degraded performance")
    service.set_component("test", "cluster-a-auth", S.OPERATIONAL)
    assert effective(service)["pop3"] == (S.OPERATIONAL, "")


def test_probe_status_counts_unless_under_maintenance(service, clock):
    service.components.set_probe_status("cluster-a-pop3", S.MAJOR_OUTAGE)
    assert effective(service)["pop3"][0] is S.MAJOR_OUTAGE
    start = clock.now + timedelta(days=8)
    service.schedule_maintenance(
        "test", "POP3 upgrade", start, start + timedelta(hours=2), components=["cluster-a-pop3"]
    )
    clock.advance(days=8)
    service.maintenances.tick()
    assert effective(service)["pop3"][0] is S.UNDER_MAINTENANCE
    # An operator-declared outage still shows through maintenance.
    service.set_component("test", "cluster-a-pop3", S.MAJOR_OUTAGE)
    assert effective(service)["pop3"][0] is S.MAJOR_OUTAGE


def test_intervals_follow_effective_changes(service, clock):
    comp = service.components.get("cluster-a-webmail")
    clock.advance(hours=1)
    service.set_component("test", "cluster-a-webmail", S.MAJOR_OUTAGE)
    clock.advance(minutes=30)
    service.set_component("test", "cluster-a-webmail", S.MAJOR_OUTAGE)  # no change, no row
    clock.advance(minutes=30)
    service.set_component("test", "cluster-a-webmail", S.OPERATIONAL)
    rows = load_intervals(service.db, comp.id, clock.now - timedelta(days=1))
    h12, h13, h14 = (datetime(2024, 4, 1, h, tzinfo=UTC) for h in (12, 13, 14))
    assert [(r.status, r.start, r.end) for r in rows] == [
        (S.OPERATIONAL, h12, h13),
        (S.MAJOR_OUTAGE, h13, h14),
        (S.OPERATIONAL, h14, None),
    ]


T0 = datetime(2024, 6, 1, tzinfo=UTC)


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


@pytest.mark.parametrize(
    ("intervals", "expected"),
    [
        ([Interval(S.OPERATIONAL, at(0), None)], 1.0),
        # 2.4 h of major outage in a day: 90 % up.
        ([Interval(S.OPERATIONAL, at(0), at(10)), Interval(S.MAJOR_OUTAGE, at(10), at(12.4)),
          Interval(S.OPERATIONAL, at(12.4), None)], 0.9),
        # Partial outage counts 30 %: 8 h partial = 2.4 h down.
        ([Interval(S.PARTIAL_OUTAGE, at(0), at(8)), Interval(S.OPERATIONAL, at(8), None)], 0.9),
        # Degraded counts as up.
        ([Interval(S.DEGRADED_PERFORMANCE, at(0), None)], 1.0),
        # Maintenance is left out: 12 h maintenance, 1.2 h outage in the other 12 h.
        ([Interval(S.UNDER_MAINTENANCE, at(0), at(12)), Interval(S.MAJOR_OUTAGE, at(12), at(13.2)),
          Interval(S.OPERATIONAL, at(13.2), None)], 0.9),
        # All maintenance: nothing counted.
        ([Interval(S.UNDER_MAINTENANCE, at(0), None)], None),
        # Component created at noon: only the afternoon counts.
        ([Interval(S.MAJOR_OUTAGE, at(12), at(13.2)),
          Interval(S.OPERATIONAL, at(13.2), None)], 0.9),
    ],
)  # fmt: skip
def test_uptime_arithmetic(intervals, expected):
    result = uptime(intervals, at(0), at(24))
    if expected is None:
        assert result is None
    else:
        assert result == pytest.approx(expected)


def test_day_bars_and_monthly():
    intervals = [
        Interval(S.OPERATIONAL, at(-24 * 40), at(24 * 2 + 6)),
        Interval(S.MAJOR_OUTAGE, at(24 * 2 + 6), at(24 * 2 + 6.5)),
        Interval(S.OPERATIONAL, at(24 * 2 + 6.5), at(24 * 5)),
        Interval(S.UNDER_MAINTENANCE, at(24 * 5), at(24 * 5 + 2)),
        Interval(S.OPERATIONAL, at(24 * 5 + 2), None),
    ]
    now = at(24 * 9 + 12)  # June 10, noon
    bars = day_bars(intervals, now, days=90)
    assert len(bars) == 90
    assert bars[-1].day.isoformat() == "2024-06-10"
    by_day = {b.day.isoformat(): b for b in bars}
    assert by_day["2024-06-03"].worst is S.MAJOR_OUTAGE
    assert by_day["2024-06-03"].down_minutes == 30
    assert by_day["2024-06-03"].uptime == pytest.approx(1 - 0.5 / 24)
    assert by_day["2024-06-06"].worst is S.UNDER_MAINTENANCE
    assert by_day["2024-06-06"].uptime == 1.0
    assert by_day["2024-06-06"].css == "under_maintenance"
    assert by_day["2024-04-01"].uptime is None  # before the component existed
    assert by_day["2024-04-01"].css == "nodata"
    # A day spent entirely in maintenance counts neither way, but is shown as maintenance.
    (day,) = day_bars([Interval(S.OPERATIONAL, at(-24), at(0)),
                       Interval(S.UNDER_MAINTENANCE, at(0), at(24)),
                       Interval(S.OPERATIONAL, at(24), None)], at(36), days=3)[1:2]  # fmt: skip
    assert (day.uptime, day.css, day.title) == (
        None, "under_maintenance", "2024-06-01: under maintenance all day",
    )  # fmt: skip
    # June so far: 9.5 days, minus 2 h maintenance; 30 min down.
    counted_hours = 9.5 * 24 - 2
    assert monthly_uptime(intervals, 2024, 6, now) == pytest.approx(1 - 0.5 / counted_hours)
    assert monthly_uptime(intervals, 2024, 5, now) == 1.0
    assert monthly_uptime(intervals, 2024, 12, now) is None
