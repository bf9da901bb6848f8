"""End to end against a real Mailwarden node started in-process.

The status service probes the node like a client (IMAP, POP3, webmail login,
submission → delivery → IMAP fetch), and a maintenance window drains it
through the node's admin API.  The status clock is a hand-set one; only the
node runs in real time, and nothing sleeps.
"""

from __future__ import annotations

import asyncio
import imaplib
import poplib
import re
import smtplib
import ssl
from dataclasses import replace
from datetime import timedelta
from email.message import EmailMessage

import httpx
from conftest import CHEAP_HASHER
from mail_node import (
    PROBE_ACCOUNT,
    PROBE_PASSWORD,
    greeting,
    require_modules,
    running_node,
)

from mailwarden.admin import ops
from mailwarden.auth.passwords import PasswordHasher
from mailwarden.web.status.model import ComponentStatus as S
from mailwarden.web.status.model import MaintenanceStatus as M
from mailwarden.web.status.service import StatusService
from mailwarden.web.status.settings import NodeSettings

CLUSTER_KEYS = ("imap", "pop3", "webmail", "smtp-submission", "smtp-inbound")


def open_status(path, settings, clock, **changes):
    svc = StatusService.open(
        replace(settings, **changes),
        clock=clock,
        database=str(path),
        hasher=CHEAP_HASHER,
    )
    if not svc.components.all():
        svc.add_cluster("test", "Cluster A")
    return svc


async def tick(svc, clock, minutes=1):
    clock.advance(minutes=minutes)
    return await svc.tick()


def latest(svc):
    """The newest history entry of each probe."""
    found = {}
    for entry in svc.probes.history():
        found.setdefault(entry.probe, entry)
    return found


def shown(svc, suffix):
    return svc.components.get(f"cluster-a-{suffix}").effective_status


async def test_login_probes_against_a_real_node(tmp_path, settings, clock):
    require_modules("mailwarden.servers.imap", "mailwarden.servers.pop3", "mailwarden.web.webmail")
    async with running_node(tmp_path / "node") as mail:
        probe = mail.probe_settings(degraded_ms=60_000)
        svc = open_status(tmp_path / "status.sqlite3", settings, clock, probes=(probe,))
        try:
            report = await tick(svc, clock)
            assert report.probes_ran
            results = latest(svc)
            for name in ("imap-login", "pop3-login", "webmail-login"):
                entry = results[f"cluster-a/{name}"]
                assert entry.ok, (name, entry.detail)
                assert entry.latency_ms is not None and 0 <= entry.latency_ms < 60_000
                assert not entry.muted and entry.at == clock.now
            # A wrong password is a failure at every door, with the server's answer kept.
            wrong = replace(probe, password="not-the-password", cluster="wrong")
            from mailwarden.web.status.probes import (
                ImapLoginProbe,
                Pop3LoginProbe,
                WebmailLoginProbe,
            )

            imap = await ImapLoginProbe(wrong).run()
            pop = await Pop3LoginProbe(wrong).run()
            web = await WebmailLoginProbe(wrong).run()
            assert not imap.ok and "AUTHENTICATIONFAILED" in imap.detail
            assert not pop.ok and "-ERR" in pop.detail
            assert not web.ok and web.detail == "LoginRefused: login answered HTTP 401"
            # Each says the service answered and refused: a matter for Authentication.
            assert imap.login_refused and pop.login_refused and web.login_refused
            # TLS is verified: without the node's certificate the STARTTLS probes fail.
            untrusted = await Pop3LoginProbe(replace(probe, ca_file="")).run()
            assert not untrusted.ok and "CERTIFICATE_VERIFY_FAILED" in untrusted.detail
        finally:
            svc.close()


async def test_roundtrip_probe_against_a_real_node(tmp_path, settings, clock):
    require_modules("mailwarden.servers.smtp", "mailwarden.servers.imap")
    async with running_node(tmp_path / "node") as mail:
        probe = mail.probe_settings(webmail_url="", roundtrip_degraded_ms=60_000)
        svc = open_status(tmp_path / "status.sqlite3", settings, clock, probes=(probe,))
        try:
            await tick(svc, clock)
            entry = latest(svc)["cluster-a/roundtrip"]
            assert entry.ok, entry.detail
            assert entry.latency_ms is not None and 0 <= entry.latency_ms < 60_000
            assert shown(svc, "smtp-submission") is S.OPERATIONAL

            def inbox_count() -> int:
                with imaplib.IMAP4("127.0.0.1", probe.imap_port, timeout=10) as imap:
                    imap.starttls(ssl.create_default_context(cafile=probe.ca_file))
                    imap.login(PROBE_ACCOUNT, PROBE_PASSWORD)
                    _, data = imap.select("INBOX")
                    imap.logout()
                return int(data[0] or 0)

            # The probe deletes its message once it has seen it arrive.
            assert await asyncio.to_thread(inbox_count) == 0
        finally:
            svc.close()


async def test_components_follow_a_real_outage_with_hysteresis(tmp_path, settings, clock):
    require_modules("mailwarden.servers.pop3")
    async with running_node(tmp_path / "node") as mail:
        probe = mail.probe_settings(degraded_ms=60_000, roundtrip_degraded_ms=60_000)
        svc = open_status(tmp_path / "status.sqlite3", settings, clock, probes=(probe,))
        try:
            await tick(svc, clock)
            assert all(e.ok for e in latest(svc).values()), latest(svc)
            (pop3,) = mail.listeners("pop3")
            await pop3.stop()  # POP3 goes down; nothing else does

            await tick(svc, clock)
            failed = latest(svc)["cluster-a/pop3-login"]
            assert not failed.ok and "ConnectionRefusedError" in failed.detail
            assert failed.latency_ms is None
            assert shown(svc, "pop3") is S.OPERATIONAL  # one failure is not an outage

            await tick(svc, clock)
            assert shown(svc, "pop3") is S.MAJOR_OUTAGE
            assert svc.probes.state("cluster-a/pop3-login").failures == 2
            others = [k for k in CLUSTER_KEYS if k != "pop3"]
            if not mail.has("imap"):
                others.remove("imap")
            assert {k: shown(svc, k) for k in others} == dict.fromkeys(others, S.OPERATIONAL)

            await pop3.start()  # same port, back up
            await tick(svc, clock)
            assert latest(svc)["cluster-a/pop3-login"].ok
            assert shown(svc, "pop3") is S.MAJOR_OUTAGE  # one success does not recover
            await tick(svc, clock)
            assert shown(svc, "pop3") is S.OPERATIONAL
            # The outage is on the record as a status interval (what uptime is computed from).
            rows = svc.db.all(
                "SELECT si.status FROM status_intervals si JOIN components c"
                " ON c.id = si.component_id WHERE c.key = 'cluster-a-pop3' ORDER BY si.id"
            )
            assert [r["status"] for r in rows] == ["operational", "major_outage", "operational"]
        finally:
            svc.close()


async def test_refused_logins_are_blamed_on_authentication(tmp_path, settings, clock):
    require_modules("mailwarden.servers.imap", "mailwarden.servers.pop3")
    async with running_node(tmp_path / "node") as mail:
        probe = mail.probe_settings(
            degraded_ms=60_000, roundtrip_degraded_ms=60_000, webmail_url=""
        )
        svc = open_status(tmp_path / "status.sqlite3", settings, clock, probes=(probe,))
        hasher = PasswordHasher(ops.hash_params(mail.config))
        account = await ops.require_account(mail.node.store, PROBE_ACCOUNT)
        try:
            await tick(svc, clock)
            assert latest(svc)["cluster-a/auth"].ok
            # The probe account's password changes under the probes' feet: every
            # door answers, and every door says no.
            await ops.change_password(mail.node.store, hasher, account, "another-password-1")
            await tick(svc, clock)
            await tick(svc, clock)
            assert shown(svc, "auth") is S.MAJOR_OUTAGE
            imap = svc.components.get("cluster-a-imap")
            assert imap.probe_status is S.OPERATIONAL  # not IMAP's own fault ...
            assert imap.effective_status is S.MAJOR_OUTAGE  # ... but its users are hit
            assert imap.cause == "Authentication: major outage"
            entry = latest(svc)["cluster-a/imap-login"]
            assert not entry.ok and entry.detail.endswith("(counted against cluster-a-auth)")
            assert "were refused" in latest(svc)["cluster-a/auth"].detail

            account = await ops.require_account(mail.node.store, PROBE_ACCOUNT)
            await ops.change_password(mail.node.store, hasher, account, PROBE_PASSWORD)
            await tick(svc, clock)
            await tick(svc, clock)
            assert shown(svc, "auth") is S.OPERATIONAL
            assert {k: shown(svc, k) for k in ("imap", "pop3")} == dict.fromkeys(
                ("imap", "pop3"), S.OPERATIONAL
            )
        finally:
            svc.close()


class OpenSessions:
    """Sessions opened before the drain, driven from threads (blocking clients)."""

    def __init__(self, mail):
        self.mail = mail
        self.tls = ssl.create_default_context(cafile=str(mail.config.cert_path))
        self.pop = None
        self.imap = None
        self.smtp = None

    def open(self):
        self.pop = poplib.POP3("127.0.0.1", self.mail.port("pop3"), timeout=10)
        self.pop.user(PROBE_ACCOUNT)
        self.pop.pass_(PROBE_PASSWORD)
        if self.mail.has("imap"):
            self.imap = imaplib.IMAP4("127.0.0.1", self.mail.port("imap"), timeout=10)
            self.imap.starttls(self.tls)
            self.imap.login(PROBE_ACCOUNT, PROBE_PASSWORD)
        if self.mail.has("submission"):
            self.smtp = smtplib.SMTP("127.0.0.1", self.mail.port("submission"), timeout=10)
            self.smtp.starttls(context=self.tls)
            self.smtp.login(PROBE_ACCOUNT, PROBE_PASSWORD)

    def still_work(self):
        """Each open session does real work while the node drains."""
        assert self.pop is not None
        assert self.pop.noop().startswith(b"+OK")
        count, _ = self.pop.stat()
        if self.imap is not None:
            status, _ = self.imap.select("INBOX")
            assert status == "OK"
        if self.smtp is not None:
            msg = EmailMessage()
            msg["From"] = msg["To"] = PROBE_ACCOUNT
            msg["Subject"] = "sent during the drain"
            msg.set_content("The session was open before the window started.\n")
            assert self.smtp.send_message(msg) == {}
        return count

    def close(self):
        for session, method in ((self.pop, "quit"), (self.imap, "logout"), (self.smtp, "quit")):
            if session is not None:
                getattr(session, method)()


async def test_a_maintenance_window_drains_a_real_node(tmp_path, settings, clock):
    require_modules("mailwarden.servers.pop3")
    async with running_node(tmp_path / "node") as mail:
        token = mail.node.admin_tokens.create("status-page")
        node = NodeSettings(mail.web_url, "not-the-token", "cluster-a")
        probe = mail.probe_settings(degraded_ms=60_000, roundtrip_degraded_ms=60_000)
        path = tmp_path / "status.sqlite3"
        svc = open_status(path, settings, clock, nodes=(node,), probes=(probe,))
        start = clock.now + timedelta(days=8)
        (window,) = svc.schedule_maintenance(
            "op", "Storage upgrade", start, start + timedelta(hours=2),
            components=[f"cluster-a-{k}" for k in CLUSTER_KEYS],
        )  # fmt: skip
        sessions = OpenSessions(mail)
        await asyncio.to_thread(sessions.open)
        webmail = httpx.AsyncClient(base_url=mail.web_url)
        if mail.has_webmail:
            form = await webmail.get("/login")
            pre_csrf = re.search(r'name="pre_csrf" value="([^"]+)"', form.text).group(1)
            logged_in = await webmail.post(
                "/login",
                data={"pre_csrf": pre_csrf, "username": PROBE_ACCOUNT, "password": PROBE_PASSWORD},
            )
            assert logged_in.status_code == 303, logged_in.text
        try:
            # The window starts, but the status service holds a bad token: the node
            # answers 401 and the request stays queued while the process restarts.
            clock.set(start)
            report = await svc.tick()
            assert [(c.drain, c.acknowledged) for c in report.drain_calls] == [(True, False)]
            assert not mail.node.draining
            svc.close()
            svc = open_status(
                path, settings, clock, nodes=(replace(node, token=token),), probes=(probe,)
            )
            report = await tick(svc, clock)
            assert [(c.drain, c.acknowledged) for c in report.drain_calls] == [(True, True)]
            assert mail.node.draining
            state = mail.node.drain.read()
            assert state.reason == f"maintenance {window.id}: Storage upgrade"
            assert state.retry_after == 2 * 3600 - 60

            # New sessions get each protocol's "come back later" greeting ...
            assert (await greeting(mail.port("pop3"))).startswith(b"-ERR [SYS/TEMP]")
            if mail.has("imap"):
                assert (await greeting(mail.port("imap"))).startswith(b"* BYE [UNAVAILABLE]")
            for service in ("smtp", "submission"):
                if mail.has(service):
                    assert (await greeting(mail.port(service))).startswith(b"421 4.3.2")
            async with httpx.AsyncClient(base_url=mail.web_url) as web:
                ready = await web.get("/readyz")
                assert ready.status_code == 503 and int(ready.headers["retry-after"]) > 0
                if mail.has_webmail:
                    login_page = await web.get("/login")
                    assert login_page.status_code == 503
                    assert login_page.headers["retry-after"] == str(state.retry_after)
            # ... while the sessions opened before the window keep working.
            await asyncio.to_thread(sessions.still_work)
            if mail.has_webmail:
                inbox = await webmail.get("/", follow_redirects=True)
                assert inbox.status_code == 200 and "sent during the drain" in inbox.text

            # The probes fail against the drained node, but they are muted: the page
            # says "under maintenance", not "major outage".
            for _ in range(3):
                await tick(svc, clock)
            pop_results = [h for h in svc.probes.history("cluster-a/pop3-login")][:3]
            assert all(not h.ok and h.muted for h in pop_results)
            assert {k: shown(svc, k) for k in CLUSTER_KEYS} == dict.fromkeys(
                CLUSTER_KEYS, S.UNDER_MAINTENANCE
            )

            # The window completes on time and the drain is lifted.
            clock.set(window.planned_end)
            report = await svc.tick()
            assert [(c.drain, c.acknowledged) for c in report.drain_calls] == [(False, True)]
            assert svc.maintenances.get(window.id).status is M.COMPLETED
            assert not mail.node.draining
            assert (await greeting(mail.port("pop3"))).startswith(b"+OK")
            if mail.has("imap"):
                assert (await greeting(mail.port("imap"))).startswith(b"* OK")
            async with httpx.AsyncClient(base_url=mail.web_url) as web:
                assert (await web.get("/readyz")).status_code == 200
            await asyncio.to_thread(sessions.still_work)
            actions = [(e.action, e.target) for e in svc.audit.entries()[:2]]
            assert actions == [("drain.off", mail.web_url), ("drain.on", mail.web_url)]
        finally:
            await webmail.aclose()
            await asyncio.to_thread(sessions.close)
            svc.close()


async def test_the_node_serves_the_status_page_with_its_own_database(tmp_path):
    """What ``make run`` starts: the node serves the status page on its own port,
    from its own database (``status init`` sets up the components)."""
    from mailwarden.admin.cli import run

    async with running_node(tmp_path / "node", status=True) as mail:
        assert mail.status_url != mail.web_url
        data = ["--data-dir", str(mail.config.data_path)]
        code = await asyncio.to_thread(run, [*data, "status", "init", "--cluster", "Cluster A"])
        assert code == 0
        assert mail.config.status_db_path.exists()
        async with httpx.AsyncClient(base_url=mail.status_url) as client:
            page = await client.get("/")
            summary = (await client.get("/api/v2/summary.json")).json()
        assert page.status_code == 200 and "Hosted Email (Cluster A)" in page.text
        assert summary["status"]["indicator"] == "none"
        assert len(summary["components"]) == 7
