"""The public page, the Statuspage-shaped JSON API, feeds, and the admin pages."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from conftest import CHEAP_HASHER

from mailwarden.web.status.app import create_app
from mailwarden.web.status.model import ComponentStatus as S
from mailwarden.web.status.model import Impact, IncidentStatus, Role
from mailwarden.web.status.probes import Hysteresis, ProbeResult, RoundTripProbe
from mailwarden.web.status.service import StatusService
from mailwarden.web.status.settings import ProbeSettings

ATOM = "{http://www.w3.org/2005/Atom}"


async def test_public_page_shows_status_bars_and_incidents(service, client, clock):
    page = await client.get("/")
    assert page.status_code == 200
    assert "All Systems Operational" in page.text
    assert page.text.count('class="bar ') == 6 * 90
    assert "default-src 'none'" in page.headers["content-security-policy"]
    service.set_component("op", "cluster-a-auth", S.MAJOR_OUTAGE)
    incident = service.open_incident("op", "Login trouble", "Looking into it.",
                                     impact=Impact.MAJOR)  # fmt: skip
    text = (await client.get("/")).text
    assert "Major System Outage" in text
    assert "Impacted: Authentication: major outage" in text
    assert f'href="/incidents/{incident.id}"' in text
    assert (await client.get("/incidents/999")).status_code == 404
    assert (await client.get("/nowhere")).status_code == 404


async def test_api_shapes(service, client, clock):
    service.set_component("op", "cluster-a-webmail", S.PARTIAL_OUTAGE)
    incident = service.open_incident(
        "op", "Webmail", "Slow.", components={"cluster-a-webmail": S.DEGRADED_PERFORMANCE}
    )
    start = clock.now + timedelta(days=8)
    service.schedule_maintenance(
        "op", "Upgrade", start, start + timedelta(hours=2), components=["cluster-a-imap"]
    )
    summary = (await client.get("/api/v2/summary.json")).json()
    assert set(summary) == {"page", "components", "incidents", "scheduled_maintenances", "status"}
    assert summary["page"]["name"] == "Example Status"
    assert summary["status"] == {"indicator": "minor", "description": "Minor Service Outage"}
    group = summary["components"][0]
    assert group["group"] is True and group["name"] == "Hosted Email (Cluster A)"
    assert len(group["components"]) == 6
    webmail = next(c for c in summary["components"] if c["id"] == "cluster-a-webmail")
    assert webmail["status"] == "degraded_performance"
    assert webmail["group_id"] == group["id"]
    assert [i["id"] for i in summary["incidents"]] == [str(incident.id)]
    (window,) = summary["scheduled_maintenances"]
    assert window["status"] == "scheduled"
    assert window["scheduled_for"] == start.isoformat()

    status = (await client.get("/api/v2/status.json")).json()
    assert set(status) == {"page", "status"}
    unresolved = (await client.get("/api/v2/incidents/unresolved.json")).json()
    assert len(unresolved["incidents"]) == 1
    update = unresolved["incidents"][0]["incident_updates"][0]
    assert update["affected_components"][0]["new_status"] == "degraded_performance"
    service.resolve_incident("op", incident.id, "Fine.")
    unresolved = (await client.get("/api/v2/incidents/unresolved.json")).json()
    assert unresolved["incidents"] == []
    everything = (await client.get("/api/v2/incidents.json")).json()
    assert everything["incidents"][0]["status"] == "resolved"
    upcoming = (await client.get("/api/v2/scheduled-maintenances/upcoming.json")).json()
    assert len(upcoming["scheduled_maintenances"]) == 1
    all_windows = (await client.get("/api/v2/scheduled-maintenances.json")).json()
    assert len(all_windows["scheduled_maintenances"]) == 1
    components = (await client.get("/api/v2/components.json")).json()
    assert len(components["components"]) == 7
    assert components["components"][1]["status"] == "operational"


async def test_feeds(service, client, clock):
    incident = service.open_incident("op", "Outage <1>", "Down & out.")
    clock.advance(hours=1)
    service.resolve_incident("op", incident.id, "Back.")
    atom = await client.get("/history.atom")
    assert atom.headers["content-type"].startswith("application/atom+xml")
    root = ET.fromstring(atom.content)
    (entry,) = root.findall(f"{ATOM}entry")
    assert entry.find(f"{ATOM}title").text == "Outage <1>"
    assert entry.find(f"{ATOM}link").get("href").endswith(f"/incidents/{incident.id}")
    content = entry.find(f"{ATOM}content").text
    assert "Down &amp; out." in content and "Total duration: 1 hour" in content
    rss = await client.get("/history.rss")
    root = ET.fromstring(rss.content)
    (item,) = root.findall("channel/item")
    assert item.find("title").text == "Outage <1>"
    assert item.find("guid").text.startswith("tag:status.example.test,")


async def login(client, username, password):
    response = await client.post("/admin/login", data={"username": username, "password": password})
    return response


async def csrf_of(client, path="/admin"):
    page = await client.get(path)
    return re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)


async def test_admin_login_roles_csrf_and_audit(service, client):
    service.users.add("ed", "editor-password", Role.EDITOR)
    service.users.add("root", "admin-password", Role.ADMIN)
    assert (await client.get("/admin")).status_code == 303
    assert (await login(client, "ed", "wrong-password")).status_code == 401
    assert (await login(client, "nobody", "wrong-password")).status_code == 401
    response = await login(client, "ed", "editor-password")
    assert response.status_code == 303
    cookie = response.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/admin" in cookie

    token = await csrf_of(client)
    # Without the CSRF token nothing happens.
    refused = await client.post("/admin/components/cluster-a-pop3", data={"status": "major_outage"})
    assert refused.status_code == 403
    done = await client.post(
        "/admin/components/cluster-a-pop3", data={"status": "major_outage", "csrf": token}
    )
    assert done.status_code == 303
    assert service.components.get("cluster-a-pop3").status is S.MAJOR_OUTAGE

    opened = await client.post(
        "/admin/incidents",
        data={"csrf": token, "title": "POP3 down", "impact": "major", "status": "investigating",
              "comp_cluster-a-pop3": "major_outage", "body": "Looking.", "notify": "on",
              "started_at": "2024-04-01 11:50"},
    )  # fmt: skip
    assert opened.status_code == 303
    incident_path = opened.headers["location"]
    resolved = await client.post(
        incident_path + "/updates",
        data={"csrf": token, "status": "resolved", "body": "Fixed.", "notify": "on"},
    )
    assert resolved.status_code == 303
    incident = service.incidents.search()[0]
    assert incident.resolved and incident.duration_words == "10 minutes"
    assert service.components.get("cluster-a-pop3").status is S.OPERATIONAL

    # Editors cannot see the audit log or manage people.
    assert (await client.get("/admin/audit")).status_code == 403
    assert (await client.get("/admin/people")).status_code == 403
    await client.post("/admin/logout", data={"csrf": token})
    assert (await client.get("/admin")).status_code == 303

    await login(client, "root", "admin-password")
    audit = await client.get("/admin/audit")
    assert audit.status_code == 200
    for action in ("component.set", "incident.open", "incident.resolve", "login.failed"):
        assert action in audit.text
    assert "web:ed" in audit.text


async def test_admin_schedules_maintenance_and_bad_input_is_refused(service, client, clock):
    service.users.add("ed", "editor-password", Role.EDITOR)
    await login(client, "ed", "editor-password")
    token = await csrf_of(client)
    too_soon = await client.post(
        "/admin/maintenance",
        data={"csrf": token, "title": "Now", "start": "2024-04-02 02:00", "length": "2h",
              "component": "cluster-a-imap", "drain": "on"},
    )  # fmt: skip
    assert too_soon.status_code == 400
    assert "notice" in too_soon.text
    ok = await client.post(
        "/admin/maintenance",
        data={"csrf": token, "title": "Disk swap", "start": "2024-04-16 02:00", "length": "2h",
              "component": "cluster-a-imap", "drain": "on"},
    )  # fmt: skip
    assert ok.status_code == 303
    (window,) = service.maintenances.upcoming()
    assert window.title == "Disk swap" and window.drain
    page = await client.get(ok.headers["location"])
    assert "Apr 16, 2024 - 02:00 UTC to Apr 16, 2024 - 04:00 UTC (2 hours)" in page.text


@pytest.mark.parametrize("path", ["/subscribe/confirm/nope", "/unsubscribe/nope"])
async def test_unknown_tokens(client, path):
    assert (await client.get(path)).status_code == 404
    assert (await client.post(path)).status_code == 404


@pytest.fixture
def roundtrip_service(tmp_path, clock, settings, sender, poster, drain):
    """A service with a configured round-trip probe (never run: results are recorded)."""
    probe = RoundTripProbe(
        ProbeSettings(
            "cluster-a", host="mx-internal.example.net", submission_port=2587,
            account="probe@example.test", password="probe-secret", roundtrip_degraded_ms=10_000,
        )
    )  # fmt: skip
    svc = StatusService.open(
        settings, clock=clock, database=str(tmp_path / "status.sqlite3"), sender=sender,
        poster=poster, drain=drain, probes=[(probe, Hysteresis())], hasher=CHEAP_HASHER,
    )  # fmt: skip
    svc.add_cluster("test", "Cluster A")
    yield svc, probe
    svc.close()


def component_html(page: str, key: str) -> str:
    start = page.index(f'id="component-{key}"')
    return page[start : page.index('<div class="component"', start + 1)]


def text_of(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


async def test_public_page_shows_delivery_latency_without_internals(roundtrip_service, clock):
    svc, probe = roundtrip_service
    transport = httpx.ASGITransport(app=create_app(svc))
    async with httpx.AsyncClient(transport=transport, base_url="http://status.test") as client:
        # No round trip has run yet: nothing to show.
        assert "Mail delivery time" not in (await client.get("/")).text
        failure = "ProbeFailed: probe message not delivered in time (mx-internal.example.net)"
        for result in [ProbeResult(True, 4200), ProbeResult(True, 3800),
                       ProbeResult(False, None, failure), ProbeResult(True, 12_500),
                       ProbeResult(True, 2100)]:  # fmt: skip
            clock.advance(minutes=1)
            svc.probes.record(probe, result, Hysteresis())
        page = (await client.get("/")).text

        submission = component_html(page, "cluster-a-smtp-submission")
        assert "Mail delivery time: <strong>2.1 s</strong>" in submission
        assert "checked Apr 01, 2024 - 12:05 UTC ; median 4.0 s over the last 5 checks" in (
            text_of(submission)
        )  # the median of the four delivered
        bars = re.findall(r'<rect class="(\w+)" x="(\d+)" y="(\d+)" width="3" height="(\d+)">'
                          r"<title>([^<]*)</title>", submission)  # fmt: skip
        assert [b[0] for b in bars] == ["ok", "ok", "fail", "slow", "ok"]
        assert [int(b[3]) for b in bars] == [8, 7, 24, 24, 4]  # relative to the slowest (12.5 s)
        assert bars[0][4] == "Apr 01, 2024 - 12:01 UTC: delivered in 4.2 s"
        assert bars[2][4] == "Apr 01, 2024 - 12:03 UTC: not delivered"
        # Shown once, under the component the probe belongs to.
        assert page.count('class="delivery"') == 1
        # Nothing internal reaches the public page.
        for secret in ("cluster-a/roundtrip", "mx-internal", "probe@example.test", "ProbeFailed",
                       "not delivered in time", "2587"):  # fmt: skip
            assert secret not in page

        clock.advance(minutes=1)
        svc.probes.record(probe, ProbeResult(False, None, failure), Hysteresis())
        submission = component_html((await client.get("/")).text, "cluster-a-smtp-submission")
        assert "Latest delivery check: <strong>not delivered</strong>" in submission

        # During maintenance the checks are muted, and the page says they are paused.
        start = clock.now + timedelta(days=8)
        svc.schedule_maintenance(
            "op", "Mail store", start, start + timedelta(hours=1), components=["cluster-a-imap"]
        )
        clock.set(start)
        svc.maintenances.tick()
        svc.probes.record(probe, ProbeResult(False, None, failure), Hysteresis())
        submission = component_html((await client.get("/")).text, "cluster-a-smtp-submission")
        assert "Delivery checks paused for maintenance" in submission
        assert submission.count('class="muted"') == 1
        # Muted, because the round trip fetches over IMAP: submission is not in outage.
        assert svc.components.get("cluster-a-smtp-submission").effective_status is S.OPERATIONAL


async def test_the_notify_switch_is_per_update(service, client, clock, sender, poster):
    everything = service.notifier.subscribe("all@example.org")  # no choice: every component
    service.notifier.confirm(everything.token)
    service.notifier.add_webhook("https://hooks.example.test/status")
    await service.notifier.deliver_due()
    sender.sent.clear()

    incident = service.open_incident(
        "op", "POP3 errors", "Written after the fact.", notify=False,
        components={"cluster-a-pop3": S.PARTIAL_OUTAGE},
    )  # fmt: skip
    service.update_incident("op", incident.id, "Found it.", status=IncidentStatus.IDENTIFIED)
    service.update_incident("op", incident.id, "Typo fixed.", notify=False)
    # The admin form: an update posted with the box unticked tells nobody.
    service.users.add("ed", "editor-password", Role.EDITOR)
    await login(client, "ed", "editor-password")
    token = await csrf_of(client)
    for data in ({"status": "monitoring", "body": "Quietly watching."},
                 {"status": "resolved", "body": "Fixed.", "notify": "on"}):  # fmt: skip
        posted = await client.post(f"/admin/incidents/{incident.id}/updates",
                                   data={"csrf": token, **data})  # fmt: skip
        assert posted.status_code == 303
    await service.notifier.deliver_due()

    assert [m["Subject"] for _, m in sender.sent] == [
        "[Example Status] POP3 errors - Identified",
        "[Example Status] POP3 errors - Resolved",
    ]
    assert [h["X-Mailwarden-Event"] for _, _, h in poster.posts] == [
        "incident.identified", "incident.resolved",
    ]  # fmt: skip
    updates = (await client.get("/api/v2/incidents.json")).json()["incidents"][0][
        "incident_updates"
    ]
    assert [u["deliver_notifications"] for u in updates] == [True, False, False, True, False]


async def test_history_page_and_permalinks(service, client, clock):
    march = service.open_incident(
        "op", "March trouble", "x", display_at=clock.now - timedelta(days=20),
        started_at=clock.now - timedelta(days=20, minutes=10),
    )  # fmt: skip
    service.resolve_incident("op", march.id, "ok", display_at=clock.now - timedelta(days=19))
    april = service.open_incident("op", "April trouble", "y")
    start = clock.now + timedelta(days=8)
    (window,) = service.schedule_maintenance(
        "op", "Disk swap", start, start + timedelta(hours=2), components=["cluster-a-imap"]
    )
    clock.set(window.planned_end)
    service.maintenances.tick()

    text = text_of((await client.get("/history")).text)
    assert (text.index("April 2024") < text.index("April trouble") < text.index("ongoing")
            < text.index("March 2024") < text.index("March trouble"))  # fmt: skip
    assert "Mar 12, 2024 - 11:50 UTC - Mar 13, 2024 - 12:00 UTC · 1 day 10 minutes" in text
    assert "Past maintenance Disk swap Apr 09, 2024 - 12:00 UTC · completed" in text
    for path, title in ((f"/incidents/{april.id}", "April trouble"),
                        (f"/incidents/{march.id}", "March trouble"),
                        (f"/maintenance/{window.id}", "Disk swap")):  # fmt: skip
        page = await client.get(path)
        assert page.status_code == 200 and f"<h1>{title}</h1>" in page.text
    page = text_of((await client.get(f"/maintenance/{window.id}")).text)
    # Planned and actual times apart: the first tick after the start came at the end.
    assert "Scheduled: Apr 09, 2024 - 12:00 UTC to Apr 09, 2024 - 14:00 UTC (2 hours)" in page
    assert "Started: Apr 09, 2024 - 14:00 UTC Completed: Apr 09, 2024 - 14:00 UTC" in page


async def test_uptime_on_the_page_leaves_maintenance_out(service, client, clock):
    # Created Apr 1 12:00.  Apr 2 00:00-02:00 under maintenance, 12:00-13:00 down.
    start = clock.now.replace(hour=0) + timedelta(days=1)
    service.schedule_maintenance(
        "op", "Webmail upgrade", start, start + timedelta(hours=2),
        components=["cluster-a-webmail"], emergency=True,
    )  # fmt: skip
    for moment in (start, start + timedelta(hours=2)):
        clock.set(moment)
        service.maintenances.tick()
    clock.set(start + timedelta(hours=12))
    service.set_component("op", "cluster-a-webmail", S.MAJOR_OUTAGE)
    clock.advance(hours=1)
    service.set_component("op", "cluster-a-webmail", S.OPERATIONAL)

    clock.set(start + timedelta(days=1, hours=12))  # Apr 3 12:00: 46 h counted, 1 h down
    webmail = component_html((await client.get("/")).text, "cluster-a-webmail")
    assert "97.83% uptime · this month 97.83%" in webmail  # 98.96% had maintenance counted
    bars = re.findall(r'class="bar (\w+)" title="([^"]+)"', webmail)
    assert len(bars) == 90
    assert bars[-3:] == [
        ("operational", "2024-04-01: operational"),
        ("major_outage", "2024-04-02: 95.45% up, 60 min of outage"),  # 1 h of 22 counted
        ("operational", "2024-04-03: operational"),
    ]
    assert {css for css, _ in bars[:-3]} == {"nodata"}  # before the component existed

    clock.set(datetime(2024, 5, 1, 6, tzinfo=UTC))  # a new month: 712 h counted in 90 days
    webmail = component_html((await client.get("/")).text, "cluster-a-webmail")
    assert "99.86% uptime · this month 100.00%" in webmail
