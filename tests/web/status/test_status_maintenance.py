"""Maintenance windows driven by a hand-set clock: notice, transitions,
reminders, recurrence, cancellation, drain calls and muted probes."""

from __future__ import annotations

from datetime import timedelta

import pytest

from mailwarden.web.status.maintenance import MaintenanceEventKind as K
from mailwarden.web.status.model import ComponentStatus as S
from mailwarden.web.status.model import MaintenanceStatus as M
from mailwarden.web.status.model import StatusError
from mailwarden.web.status.service import StatusService
from mailwarden.web.status.settings import NodeSettings, StatusSettings


def schedule(service, clock, days=8, hours=2, **kwargs):
    start = clock.now + timedelta(days=days)
    kwargs.setdefault("components", ["cluster-a-imap", "cluster-a-pop3"])
    return service.schedule_maintenance(
        "op", "Storage upgrade", start, start + timedelta(hours=hours), **kwargs
    )


def test_minimum_notice_is_enforced(service, clock):
    with pytest.raises(StatusError, match="7 days notice"):
        schedule(service, clock, days=6)
    with pytest.raises(StatusError, match="past"):
        schedule(service, clock, days=-1)
    (window,) = schedule(service, clock, days=1, emergency=True)
    assert window.status is M.SCHEDULED
    assert "emergency" in service.audit.entries()[0].detail
    with pytest.raises(StatusError):
        schedule(service, clock, hours=0)
    with pytest.raises(StatusError):
        schedule(service, clock, components=[])


def test_minimum_notice_comes_from_the_settings(tmp_path, clock):
    settings = StatusSettings.from_mapping({"min_notice": "3d", "reminders": ["2h"]})
    svc = StatusService.open(settings, clock=clock, database=str(tmp_path / "s.db"), probes=[])
    try:
        svc.add_cluster("op", "Cluster A")
        start = clock.now + timedelta(days=3, hours=-1)
        with pytest.raises(StatusError, match="3 days notice; this starts in 2 days 23 hours"):
            svc.schedule_maintenance(
                "op", "Soon", start, start + timedelta(hours=1), components=["cluster-a-imap"]
            )
        (window,) = schedule(svc, clock, days=3)
        assert svc.maintenances.min_notice == timedelta(days=3)
        # The reminder leads come from the settings too: one, two hours ahead.
        clock.set(window.planned_start - timedelta(hours=3))
        assert svc.maintenances.tick() == []
        clock.set(window.planned_start - timedelta(hours=2))
        ((event,),) = [svc.maintenances.tick()]
        assert (event.kind, event.lead) == (K.REMINDER, timedelta(hours=2))
    finally:
        svc.close()


async def test_automatic_transitions_reminders_and_drain(service, clock, drain, sender):
    service.settings = service.settings.__class__(
        **{**{f: getattr(service.settings, f) for f in service.settings.__dataclass_fields__},
           "nodes": (NodeSettings("http://node1.test:8080", "tok", "cluster-a"),
                     NodeSettings("http://other.test:8080", "tok", "cluster-b"))},
    )  # fmt: skip
    (window,) = schedule(service, clock)
    start = window.planned_start
    kinds = []
    leads = []

    async def tick_at(moment):
        clock.set(moment)
        report = await service.tick()
        kinds.extend(e.kind for e in report.events)
        leads.extend(e.lead for e in report.events if e.kind is K.REMINDER)
        return report

    await tick_at(start - timedelta(days=2))
    assert kinds == []
    await tick_at(start - timedelta(hours=24))
    assert kinds == [K.REMINDER]
    await tick_at(start - timedelta(hours=23))
    assert kinds == [K.REMINDER]  # once per lead time
    await tick_at(start - timedelta(minutes=59))
    assert kinds == [K.REMINDER, K.REMINDER]
    assert leads == [timedelta(hours=24), timedelta(minutes=60)]
    assert drain.calls == []

    report = await tick_at(start + timedelta(seconds=30))
    assert kinds[-1] is K.STARTED
    window = service.maintenances.get(window.id)
    assert window.status is M.IN_PROGRESS
    assert window.actual_start == start + timedelta(seconds=30)
    assert window.planned_start == start  # planned and actual kept apart
    # Only the node of the affected cluster is drained, with Retry-After = rest of window.
    ((url, request),) = drain.calls
    assert url == "http://node1.test:8080"
    assert request.drain is True and request.maintenance_id == window.id
    assert request.retry_after == 2 * 3600 - 30
    assert [(c.node_url, c.drain, c.acknowledged) for c in report.drain_calls] == [
        ("http://node1.test:8080", True, True)
    ]
    assert service.components.get("cluster-a-imap").effective_status is S.UNDER_MAINTENANCE
    assert service.components.get("cluster-a-webmail").effective_status is S.OPERATIONAL

    service.move_maintenance("op", window.id, M.VERIFYING)
    await tick_at(window.planned_end)
    window = service.maintenances.get(window.id)
    assert window.status is M.COMPLETED
    assert window.actual_end == window.planned_end
    assert drain.calls[-1][1].drain is False
    assert service.components.get("cluster-a-imap").effective_status is S.OPERATIONAL
    assert kinds == [K.REMINDER, K.REMINDER, K.STARTED, K.COMPLETED]


async def test_unacknowledged_drain_is_retried_next_tick(service, clock, drain):
    service.settings = service.settings.__class__(
        **{**{f: getattr(service.settings, f) for f in service.settings.__dataclass_fields__},
           "nodes": (NodeSettings("http://node1.test:8080"),)},
    )  # fmt: skip
    (window,) = schedule(service, clock)
    drain.acknowledge = False
    clock.set(window.planned_start)
    await service.tick()
    clock.advance(seconds=30)
    drain.acknowledge = True
    await service.tick()
    clock.advance(seconds=30)
    await service.tick()
    assert [c[1].drain for c in drain.calls] == [True, True]


async def test_short_notice_window_sends_only_the_nearest_reminder(service, clock):
    (window,) = schedule(service, clock, days=0, hours=1, emergency=True)
    # Scheduled "now" (0 days ahead) would be in the past; use 30 minutes instead.
    service.cancel_maintenance("op", window.id)
    start = clock.now + timedelta(minutes=30)
    (window,) = service.schedule_maintenance(
        "op", "Urgent", start, start + timedelta(hours=1), components=["cluster-a-imap"],
        emergency=True,
    )  # fmt: skip
    events = service.maintenances.tick()
    reminders = [e for e in events if e.kind is K.REMINDER]
    assert len(reminders) == 1 and reminders[0].lead == timedelta(minutes=60)
    assert service.maintenances.tick() == []


def test_illegal_moves_are_refused(service, clock):
    (window,) = schedule(service, clock)
    with pytest.raises(StatusError):
        service.move_maintenance("op", window.id, M.VERIFYING)
    with pytest.raises(StatusError):
        service.move_maintenance("op", window.id, M.COMPLETED)
    service.move_maintenance("op", window.id, M.IN_PROGRESS)
    with pytest.raises(StatusError):
        service.cancel_maintenance("op", window.id)
    service.move_maintenance("op", window.id, M.COMPLETED)
    with pytest.raises(StatusError):
        service.move_maintenance("op", window.id, M.IN_PROGRESS)


def test_quarterly_series_is_written_out_and_cancellable(service, clock):
    start = clock.now.replace(month=4, day=9, hour=2, minute=0) + timedelta(days=7)  # Tue Apr 16
    windows = service.schedule_maintenance(
        "op", "Quarterly maintenance", start, start + timedelta(hours=2),
        components=["cluster-a-imap"], rrule="FREQ=MONTHLY;INTERVAL=3;BYDAY=+3TU;BYHOUR=2",
    )  # fmt: skip
    starts = [w.planned_start.date().isoformat() for w in windows]
    assert starts == ["2024-04-16", "2024-07-16", "2024-10-15", "2025-01-21", "2025-04-15"]
    assert all(w.rrule and w.series_id == windows[0].series_id for w in windows)
    assert all(w.planned_end - w.planned_start == timedelta(hours=2) for w in windows)
    # As time passes, the series is extended past the horizon.
    clock.advance(days=100)
    service.maintenances.tick()
    planned = [w.planned_start.date().isoformat() for w in service.maintenances.search()]
    assert planned[-1] == "2025-07-15"
    # Cancelling the series cancels every occurrence still scheduled.
    upcoming = service.maintenances.upcoming()
    cancelled = service.cancel_maintenance("op", upcoming[0].id, series=True)
    assert {w.status for w in cancelled} == {M.CANCELLED}
    assert service.maintenances.upcoming() == []
    clock.advance(days=400)
    service.maintenances.tick()
    assert service.maintenances.upcoming() == []


def test_bad_rrule_is_refused(service, clock):
    with pytest.raises(StatusError, match="RRULE"):
        schedule(service, clock, rrule="FREQ=SOMETIMES")
