"""Admin login throttling (per address, per user, known addresses), the
incident-template editor, the probe-history page, and their settings."""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
import pytest
from conftest import CHEAP_HASHER

from mailwarden.web.status.app import create_app
from mailwarden.web.status.model import ComponentStatus as S
from mailwarden.web.status.model import Impact, IncidentStatus, Role, StatusError
from mailwarden.web.status.probes import Hysteresis, ProbeResult
from mailwarden.web.status.service import StatusService
from mailwarden.web.status.settings import LoginSettings, StatusSettings
from mailwarden.web.status.throttle import LoginThrottle, Scope, address_key, client_address

RULES = LoginSettings(
    address_failures=3,
    user_failures=5,
    window=timedelta(minutes=15),
    lockout=timedelta(minutes=1),
    lockout_max=timedelta(minutes=8),
    known_for=timedelta(days=30),
)


@pytest.fixture
def throttle(service, clock):
    return LoginThrottle(service.db, clock, RULES)


def fail(throttle, address, user, times=1):
    locks = []
    for _ in range(times):
        locks = throttle.failed(address, user)
    return locks


def test_address_lock_doubles_and_is_capped(throttle, clock):
    assert fail(throttle, "198.51.100.7", "alice", 2) == []
    assert throttle.check("198.51.100.7", "alice") is None
    (lock,) = fail(throttle, "198.51.100.7", "bob")  # names vary; the address is counted
    assert (lock.scope, lock.subject, lock.failures) == (Scope.ADDRESS, "198.51.100.7", 3)
    assert lock.until == clock.now + timedelta(minutes=1)
    held = throttle.check("198.51.100.7", "carol")
    assert held is not None and held.retry_after(clock.now) == 60
    assert held.explain(clock.now) == (
        "Too many failed logins from your address (3; the limit is 3 within 15 minutes)."
        " Try again in 1 minute."
    )
    assert throttle.check("198.51.100.8", "carol") is None  # other addresses are not held
    lengths = []
    for n in range(5):
        clock.set(throttle.check("198.51.100.7", f"x{n}").until)
        (lock,) = fail(throttle, "198.51.100.7", f"x{n}")
        lengths.append(int((lock.until - clock.now).total_seconds() // 60))
    assert lengths == [2, 4, 8, 8, 8]


def test_counting_restarts_after_a_quiet_window_and_after_success(throttle, clock):
    fail(throttle, "198.51.100.7", "alice", 2)
    clock.advance(minutes=16)
    assert fail(throttle, "198.51.100.7", "alice", 2) == []  # the old two were forgotten
    throttle.succeeded("198.51.100.7", "alice")
    assert throttle.entries() == []
    assert fail(throttle, "198.51.100.7", "alice", 2) == []


def test_user_lock_spans_addresses_but_spares_known_ones(throttle, clock):
    throttle.succeeded("192.0.2.10", "Admin")  # the real admin's office
    locks = []
    for n in range(5):
        locks = throttle.failed(f"203.0.113.{n}", "admin")
    (lock,) = locks
    assert (lock.scope, lock.subject, lock.failures) == (Scope.USER, "admin", 5)
    held = throttle.check("203.0.113.99", "ADMIN")
    assert held is not None and held.scope is Scope.USER
    assert "from unfamiliar addresses" in held.explain(clock.now)
    assert throttle.check("192.0.2.10", "admin") is None  # known address: not held
    # ... until it has not been used for longer than known_for.
    clock.advance(days=31)
    for n in range(5):
        throttle.failed(f"203.0.113.{n}", "admin")
    assert throttle.check("192.0.2.10", "admin") is not None


def test_ipv6_clients_count_by_slash_64(throttle):
    assert address_key("2001:db8:1:2:aaaa::1") == "2001:db8:1:2::/64"
    assert address_key("::ffff:198.51.100.7") == "198.51.100.7"
    assert address_key("testclient") == "testclient"
    fail(throttle, "2001:db8:1:2::1", "a")
    fail(throttle, "2001:db8:1:2::2", "b")
    (lock,) = fail(throttle, "2001:db8:1:2:ffff::3", "c")
    assert lock.subject == "2001:db8:1:2::/64"
    assert throttle.check("2001:db8:1:3::1", "d") is None


def test_forwarded_for_is_believed_only_from_trusted_proxies():
    trusted = ["10.0.0.0/8"]
    assert client_address("10.0.0.5", "198.51.100.7", trusted) == "198.51.100.7"
    # A client cannot pick its address by sending the header through the proxy.
    assert client_address("10.0.0.5", "1.2.3.4, 198.51.100.7", trusted) == "198.51.100.7"
    assert client_address("10.0.0.5", "198.51.100.7, 10.0.0.9", trusted) == "198.51.100.7"
    assert client_address("198.51.100.7", "1.2.3.4", trusted) == "198.51.100.7"
    assert client_address("10.0.0.5", "1.2.3.4", []) == "10.0.0.5"
    assert client_address("10.0.0.5", "", trusted) == "10.0.0.5"


def test_login_settings_come_from_the_status_table():
    settings = StatusSettings.from_mapping(
        {"login": {"address_failures": 4, "window": "30m", "lockout_max": 3600},
         "trusted_proxies": ["127.0.0.1", "10.0.0.0/8"]}
    )  # fmt: skip
    assert settings.login.address_failures == 4
    assert settings.login.window == timedelta(minutes=30)
    assert settings.login.lockout_max == timedelta(hours=1)
    assert settings.login.user_failures == 10
    assert settings.trusted_proxies == ("127.0.0.1", "10.0.0.0/8")
    with pytest.raises(StatusError) as caught:
        StatusSettings.from_mapping(
            {"login": {"address_failures": 0, "window": "soon", "lockout": "1m", "nope": 1},
             "trusted_proxies": ["proxy.example"]}
        )  # fmt: skip
    text = str(caught.value)
    for problem in (
        "status.login.address_failures: expected a positive integer",
        "status.login.window: not a length",
        "status.login.nope: unknown setting",
        "status.trusted_proxies: 'proxy.example' is not an address",
    ):
        assert problem in text


@pytest.fixture
async def throttled(tmp_path, clock, settings):
    svc = StatusService.open(
        StatusSettings(public_url=settings.public_url, login=RULES, trusted_proxies=("127.0.0.1",)),
        clock=clock,
        database=str(tmp_path / "t.sqlite3"),
        probes=[],
        hasher=CHEAP_HASHER,
    )
    svc.users.add("root", "admin-password", Role.ADMIN)
    svc.users.add("ed", "editor-password", Role.EDITOR)
    transport = httpx.ASGITransport(app=create_app(svc), client=("127.0.0.1", 4000))
    async with httpx.AsyncClient(transport=transport, base_url="http://status.test") as c:
        yield svc, c
    svc.close()


async def login(client, username, password, address="198.51.100.7"):
    return await client.post(
        "/admin/login",
        data={"username": username, "password": password},
        headers={"X-Forwarded-For": address},
    )


async def csrf_of(client, path="/admin"):
    page = await client.get(path)
    return re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)


async def test_login_page_throttles_and_explains(throttled, clock):
    svc, client = throttled
    assert (await login(client, "root", "guess-1")).status_code == 401
    assert (await login(client, "root", "guess-2")).status_code == 401
    third = await login(client, "root", "guess-3")
    assert third.status_code == 429 and third.headers["retry-after"] == "60"
    assert "Wrong username or password. Too many failed logins from your address" in third.text
    # Locked: even the right password is not checked, and the reason is given.
    locked = await login(client, "root", "admin-password")
    assert locked.status_code == 429 and "Try again in 1 minute" in locked.text
    assert "mw_status_session" not in locked.headers.get("set-cookie", "")
    # Another address is not held back.
    elsewhere = await login(client, "ed", "editor-password", address="192.0.2.1")
    assert elsewhere.status_code == 303
    clock.advance(minutes=1)
    ok = await login(client, "root", "admin-password")
    assert ok.status_code == 303
    entries = svc.audit.entries()
    actions = [e.action for e in entries]
    assert actions.count("login.failed") == 3 and "login.locked" in actions
    locked_entry = next(e for e in entries if e.action == "login.locked")
    assert locked_entry.target == "address 198.51.100.7" and "3 failures" in locked_entry.detail


async def test_admins_see_and_release_locks(throttled, clock):
    svc, client = throttled
    for n in range(3):
        await login(client, "ghost", f"guess-{n}", address="203.0.113.9")
    assert (await login(client, "ed", "editor-password", address="192.0.2.1")).status_code == 303
    assert (await client.get("/admin/logins")).status_code == 403  # editors may not
    await client.post("/admin/logout", data={"csrf": await csrf_of(client)})
    assert (await login(client, "root", "admin-password", address="192.0.2.1")).status_code == 303
    page = await client.get("/admin/logins")
    assert page.status_code == 200
    assert "3 failed logins from one address" in page.text
    assert "address <code>203.0.113.9</code>" in page.text
    assert "user <code>ghost</code>" in page.text
    token = await csrf_of(client, "/admin/logins")
    released = await client.post(
        "/admin/logins", data={"csrf": token, "key": "address:203.0.113.9"}
    )
    assert released.status_code == 303
    assert svc.logins.check("203.0.113.9", "ghost") is None
    again = await client.post("/admin/logins", data={"csrf": token, "key": "address:203.0.113.9"})
    assert again.status_code == 404
    assert svc.audit.entries()[0].action == "login.release"


async def test_editors_edit_incident_templates(service, client):
    service.users.add("ed", "editor-password", Role.EDITOR)
    await client.post("/admin/login", data={"username": "ed", "password": "editor-password"})
    page = await client.get("/admin/templates")
    assert page.status_code == 200 and "login-failures" in page.text
    token = await csrf_of(client, "/admin/templates")
    made = await client.post(
        "/admin/templates",
        data={"csrf": token, "name": "pop3-down", "title": "POP3 unavailable",
              "impact": "major", "status": "identified", "body": "POP3 logins fail."},
    )  # fmt: skip
    assert made.status_code == 303
    tpl = service.incidents.template("pop3-down")
    assert (tpl.title, tpl.impact, tpl.status) == (
        "POP3 unavailable", Impact.MAJOR, IncidentStatus.IDENTIFIED,
    )  # fmt: skip
    edit = await client.get("/admin/templates/pop3-down")
    assert 'value="POP3 unavailable"' in edit.text and "POP3 logins fail." in edit.text
    await client.post(
        "/admin/templates",
        data={"csrf": token, "name": "pop3-down", "title": "POP3 down", "impact": "critical",
              "status": "investigating", "body": "Nobody can fetch mail over POP3."},
    )  # fmt: skip
    assert service.incidents.template("pop3-down").impact is Impact.CRITICAL
    offered = await client.get("/admin/incidents/new?template=pop3-down")
    assert 'value="POP3 down"' in offered.text and "Nobody can fetch mail" in offered.text
    bad = await client.post(
        "/admin/templates",
        data={"csrf": token, "name": "Bad Name", "title": "x", "body": "y"},
    )
    assert bad.status_code == 400 and "lower-case" in bad.text
    resolved = await client.post(
        "/admin/templates",
        data={"csrf": token, "name": "done", "title": "x", "body": "y", "status": "resolved"},
    )
    assert resolved.status_code == 400
    stale = await client.post("/admin/templates/pop3-down/delete", data={"csrf": "nope"})
    assert stale.status_code == 403
    gone = await client.post("/admin/templates/pop3-down/delete", data={"csrf": token})
    assert gone.status_code == 303
    assert (await client.get("/admin/templates/pop3-down")).status_code == 404
    actions = [e.action for e in service.audit.entries()[:3]]
    assert actions == ["template.delete", "template.update", "template.add"]


class FakeProbe:
    def __init__(self, name, components, slow_ms=1000):
        self.name = name
        self.components = components
        self.slow_ms = slow_ms
        self.results = []

    async def run(self):
        return self.results.pop(0)


async def test_probe_history_page(tmp_path, clock, settings):
    imap = FakeProbe("cluster-a/imap-login", ("cluster-a-imap",))
    svc = StatusService.open(
        settings,
        clock=clock,
        database=str(tmp_path / "p.sqlite3"),
        probes=[(imap, Hysteresis(2, 2, 2))],
        hasher=CHEAP_HASHER,
    )
    try:
        svc.add_cluster("test", "Cluster A")
        svc.users.add("ed", "editor-password", Role.EDITOR)
        imap.results = [ProbeResult(True, 42), ProbeResult(False, None, "ConnectionRefusedError")]
        imap.results.append(ProbeResult(False, None, "timed out"))
        for _ in range(3):
            await svc.probes.run_all()
            clock.advance(minutes=1)
        assert svc.components.get("cluster-a-imap").effective_status is S.MAJOR_OUTAGE
        transport = httpx.ASGITransport(app=create_app(svc))
        async with httpx.AsyncClient(transport=transport, base_url="http://status.test") as c:
            assert (await c.get("/admin/probes")).status_code == 303  # login first
            await c.post("/admin/login", data={"username": "ed", "password": "editor-password"})
            page = await c.get("/admin/probes")
            assert page.status_code == 200
            assert "<code>cluster-a/imap-login</code>" in page.text
            assert "2 failed · 0 slow · 0 fast" in page.text
            assert "ok" in page.text and "42 ms" in page.text
            assert "ConnectionRefusedError" in page.text and "timed out" in page.text
            one = await c.get("/admin/probes?probe=cluster-a/imap-login&limit=1")
            assert one.text.count("<td><code>cluster-a/imap-login</code></td>") == 1
            assert "timed out" in one.text and "42 ms" not in one.text
            nav = await c.get("/admin")
            assert 'href="/admin/probes"' in nav.text and 'href="/admin/templates"' in nav.text
    finally:
        svc.close()
