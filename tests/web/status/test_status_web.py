"""The public page, the Statuspage-shaped JSON API, feeds, and the admin pages."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import timedelta

import pytest

from mailwarden.web.status.model import ComponentStatus as S
from mailwarden.web.status.model import Impact, Role

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
