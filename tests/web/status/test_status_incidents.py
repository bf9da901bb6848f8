"""Incident life cycle: open, update, resolve, report, times, templates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mailwarden.web.status.model import ComponentStatus as S
from mailwarden.web.status.model import Impact, IncidentStatus, NotFound, StatusError


def test_life_cycle_sets_component_statuses_and_times(service, clock):
    incident = service.open_incident(
        "op", "Login failures", "Investigating.", impact=Impact.MAJOR,
        components={"cluster-a-auth": S.MAJOR_OUTAGE},
    )  # fmt: skip
    assert incident.status is IncidentStatus.INVESTIGATING
    assert incident.started_at == clock.now
    assert incident.duration is None and incident.duration_words is None
    assert service.components.get("cluster-a-imap").cause == "Authentication: major outage"

    clock.advance(minutes=20)
    incident = service.update_incident(
        "op", incident.id, "Found it.", status=IncidentStatus.IDENTIFIED,
        components={"cluster-a-auth": S.PARTIAL_OUTAGE},
    )  # fmt: skip
    clock.advance(minutes=25)
    incident = service.update_incident(
        "op", incident.id, "Watching.", status=IncidentStatus.MONITORING
    )
    assert incident.monitoring_at == clock.now
    clock.advance(hours=1, minutes=2)
    incident = service.resolve_incident("op", incident.id, "All good.")
    assert incident.status is IncidentStatus.RESOLVED
    assert incident.duration_words == "1 hour 47 minutes"
    assert [u.status for u in incident.updates] == [
        IncidentStatus.RESOLVED, IncidentStatus.MONITORING,
        IncidentStatus.IDENTIFIED, IncidentStatus.INVESTIGATING,
    ]  # fmt: skip
    # Resolving set the affected component back to operational, and said so.
    assert service.components.get("cluster-a-auth").status is S.OPERATIONAL
    (change,) = incident.updates[0].changes
    assert (change.old_status, change.new_status) == (S.PARTIAL_OUTAGE, S.OPERATIONAL)
    actions = [e.action for e in service.audit.entries()]
    assert actions[:4] == [
        "incident.resolve",
        "incident.update",
        "incident.update",
        "incident.open",
    ]


def test_backdated_updates_are_ordered_by_display_time(service, clock):
    t = datetime(2024, 3, 30, 9, 0, tzinfo=UTC)
    incident = service.open_incident("op", "Old", "first", display_at=t + timedelta(minutes=11),
                                     started_at=t)  # fmt: skip
    service.update_incident("op", incident.id, "third", display_at=t + timedelta(hours=3))
    service.update_incident("op", incident.id, "second", display_at=t + timedelta(hours=1))
    incident = service.resolve_incident(
        "op", incident.id, "done", display_at=t + timedelta(days=1, hours=3, minutes=48),
        ended_at=t + timedelta(days=1, hours=3, minutes=46),
    )  # fmt: skip
    assert [u.body for u in incident.updates] == ["done", "third", "second", "first"]
    assert incident.duration_words == "1 day 3 hours 46 minutes"


def test_refusals(service, clock):
    with pytest.raises(StatusError):
        service.open_incident("op", "", "body")
    with pytest.raises(StatusError):
        service.open_incident("op", "t", "b", status=IncidentStatus.RESOLVED)
    with pytest.raises(StatusError):
        service.open_incident("op", "t", "b", started_at=clock.now + timedelta(minutes=1))
    with pytest.raises(NotFound):
        service.open_incident("op", "t", "b", components={"nope": S.MAJOR_OUTAGE})
    incident = service.open_incident("op", "t", "b")
    with pytest.raises(StatusError):
        service.update_incident("op", incident.id, "b", status=IncidentStatus.RESOLVED)
    with pytest.raises(StatusError):
        service.resolve_incident("op", incident.id, "b", ended_at=clock.now - timedelta(days=1))
    service.resolve_incident("op", incident.id, "b")
    with pytest.raises(StatusError):
        service.resolve_incident("op", incident.id, "again")
    with pytest.raises(StatusError):
        service.update_incident("op", incident.id, "after")
    with pytest.raises(NotFound):
        service.incidents.get(999)


def test_set_times_and_report(service, clock):
    incident = service.open_incident("op", "t", "b")
    clock.advance(hours=2)
    service.resolve_incident("op", incident.id, "ok")
    fixed = service.incidents.set_times(
        incident.id, started_at=clock.now - timedelta(hours=5), ended_at=None
    )
    assert fixed.duration_words == "5 hours"
    report = service.report_incident(
        "op", incident.id, summary="What broke.", client_impact="Slow.", remediation="- Fix"
    ).report
    assert report is not None and report.posted_at == clock.now


def test_templates(service):
    names = [t.name for t in service.incidents.templates()]
    assert {"webmail-slow", "login-failures", "delivery-delays"} <= set(names)
    tpl = service.incidents.template("login-failures")
    assert tpl.impact is Impact.MAJOR
    with pytest.raises(NotFound):
        service.incidents.template("nope")


async def test_markdown_is_rendered_and_sanitised(service, client):
    incident = service.open_incident(
        "op", "XSS?", "**Bold** and [link](https://example.test)\n\n<script>alert(1)</script>"
        "\n\n[bad](javascript:alert(1)) <img src=x onerror=alert(1)>",
    )  # fmt: skip
    page = (await client.get(f"/incidents/{incident.id}")).text
    assert "<strong>Bold</strong>" in page
    assert 'href="https://example.test"' in page
    assert "<script>" not in page
    assert 'href="javascript' not in page  # left as text, never a link
    assert "<img" not in page  # raw HTML is escaped
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
