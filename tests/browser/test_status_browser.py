"""The status page in a real browser (Debian's Chromium through Playwright):
the public page on a desktop and a phone, and an operator's incident flow.
Screenshots go to ``test-artifacts/status/``."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from argon2 import PasswordHasher

from mailwarden.web.status.app import create_app
from mailwarden.web.status.model import ComponentStatus, Impact, Role
from mailwarden.web.status.probes import Hysteresis, ProbeResult, RoundTripProbe
from mailwarden.web.status.service import StatusService
from mailwarden.web.status.settings import ProbeSettings, StatusSettings

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "status"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip

sync_api = pytest.importorskip("playwright.sync_api")
uvicorn = pytest.importorskip("uvicorn")
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="no chromium; make test installs it and fails on skips"
)

NOW = datetime(2024, 5, 6, 13, 0, tzinfo=UTC)


class ImapProbe:
    name = "cluster-a/imap-login"
    components = ("cluster-a-imap",)
    slow_ms = 2000


@pytest.fixture
def server(tmp_path) -> Iterator[str]:
    roundtrip = RoundTripProbe(ProbeSettings("cluster-a", roundtrip_degraded_ms=10_000))
    service = StatusService.open(
        StatusSettings(page_name="Mailwarden Status", public_url="http://127.0.0.1"),
        clock=lambda: NOW,
        database=str(tmp_path / "status.sqlite3"),
        probes=[(roundtrip, Hysteresis())],
        hasher=PasswordHasher(time_cost=1, memory_cost=64, parallelism=1),
    )
    service.add_cluster("test", "Cluster A")
    service.users.add("ed", "editor-password", Role.EDITOR)
    service.set_component("test", "cluster-a-auth", ComponentStatus.DEGRADED_PERFORMANCE)
    service.open_incident(
        "test", "Webmail slowness", "Webmail is **slow** for some users.", impact=Impact.MINOR,
        components={"cluster-a-webmail": ComponentStatus.DEGRADED_PERFORMANCE},
        started_at=NOW - timedelta(hours=3, minutes=46),
    )  # fmt: skip
    for result in (ProbeResult(True, 38), ProbeResult(False, None, "ConnectionRefusedError")):
        service.probes.record(ImapProbe(), result, Hysteresis())
    delivery = [3900, 4400, None, 12_800, 5200, 2100]  # ms; None: the message did not arrive
    for n, ms in enumerate(delivery):
        result = ProbeResult(ms is not None, ms, "" if ms else "ProbeFailed: not delivered")
        service.probes.record(
            roundtrip, result, Hysteresis(), now=NOW - timedelta(minutes=len(delivery) - n)
        )
    start = NOW + timedelta(days=8)
    service.schedule_maintenance(
        "test", "Quarterly maintenance", start, start + timedelta(hours=2),
        components=["cluster-a-imap", "cluster-a-pop3"],
    )  # fmt: skip
    config = uvicorn.Config(
        create_app(service), host="127.0.0.1", port=0, log_level="warning", lifespan="off"
    )
    web = uvicorn.Server(config)
    thread = threading.Thread(target=web.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not web.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        assert thread.is_alive(), "uvicorn died"
        time.sleep(0.02)
    port = web.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        web.should_exit = True
        thread.join(10)
        service.close()


def test_public_page_and_admin_flow(server):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.set_default_timeout(10_000)
            page.goto(server + "/")
            assert "Minor Service Outage" in page.inner_text(".banner")
            assert page.locator("#component-cluster-a-imap .cause").inner_text() == (
                "Impacted: Authentication: degraded performance"
            )
            assert page.locator("#component-cluster-a-webmail .bar").count() == 90
            assert "Quarterly maintenance" in page.inner_text("body")
            delivery = page.locator("#component-cluster-a-smtp-submission .delivery")
            assert "Mail delivery time: 2.1 s" in delivery.inner_text()
            assert delivery.locator("rect").count() == 6
            assert delivery.locator("rect.fail").count() == 1
            page.screenshot(path=str(ARTIFACTS / "public-desktop.png"), full_page=True)

            phone = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
            phone.goto(server + "/")
            overflow = phone.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, "the page scrolls sideways on a phone"
            chart = phone.locator("#component-cluster-a-smtp-submission svg.spark").bounding_box()
            assert chart is not None and chart["width"] == 48 and chart["height"] == 24
            # Nothing sticks out of its box: a long name pushes the badge to a new line.
            sticking_out = phone.evaluate(
                """[...document.querySelectorAll('.component *')].filter(e =>
                     e.getBoundingClientRect().right >
                     e.closest('.component').getBoundingClientRect().right + 0.5
                   ).map(e => e.textContent)"""
            )
            assert sticking_out == []
            phone.screenshot(path=str(ARTIFACTS / "public-phone.png"), full_page=True)

            # An editor logs in, posts an update and resolves the incident.
            page.goto(server + "/admin/login")
            page.fill("input[name=username]", "ed")
            page.fill("input[name=password]", "editor-password")
            page.click("button[type=submit]")
            page.wait_for_url(server + "/admin")
            page.screenshot(path=str(ARTIFACTS / "admin-dashboard.png"), full_page=True)
            page.click("text=Webmail slowness")
            page.select_option("select[name=status]", "resolved")
            page.fill("textarea[name=body]", "Webmail response times are back to normal.")
            page.click("text=Post update")
            page.wait_for_selector("text=Total duration: 3 hours 46 minutes")
            page.click("text=Public page")
            body = page.inner_text("body")
            assert "Resolved" in body and "Investigating" in body
            assert "Total duration: 3 hours 46 minutes" in body
            assert "This incident affected: Hosted Email (Cluster A, Webmail)." in body
            page.screenshot(path=str(ARTIFACTS / "incident.png"), full_page=True)
            page.goto(server + "/")
            assert "All Systems Operational" not in page.inner_text(".banner")  # auth degraded

            # The editor rewords a template, and it is offered for the next incident.
            page.goto(server + "/admin/templates")
            page.click("a[href='/admin/templates/webmail-slow']")
            page.fill("input[name=title]", "Webmail is slow")
            page.click("text=Save template")
            page.wait_for_url(server + "/admin/templates")
            assert "Webmail is slow" in page.inner_text("table")
            page.screenshot(path=str(ARTIFACTS / "admin-templates.png"), full_page=True)
            page.goto(server + "/admin/incidents/new?template=webmail-slow")
            assert page.input_value("input[name=title]") == "Webmail is slow"

            # The probe history shows each result with its latency.
            page.goto(server + "/admin/probes")
            body = page.inner_text("body")
            assert "38 ms" in body and "ConnectionRefusedError" in body
            page.screenshot(path=str(ARTIFACTS / "admin-probes.png"), full_page=True)
        finally:
            browser.close()
