"""Traffic profile, admin tokens and the admin API (drain, profile, listings)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from mailwarden.admin.cli import run
from mailwarden.admin.tokens import AdminTokens
from mailwarden.admin.traffic import TrafficRecorder, hour_of_week
from mailwarden.app import Node
from mailwarden.auth.service import Peer, Service
from mailwarden.config import load_config
from mailwarden.web.app import make_app

MONDAY_0900 = 1_704_704_400  # 2024-01-08 09:00 UTC, a Monday


def test_hour_of_week_starts_on_monday() -> None:
    assert hour_of_week(MONDAY_0900 // 3600) == 9
    assert hour_of_week(MONDAY_0900 // 3600 - 10) == 167  # Sunday 23:00


def test_profile_averages_weeks_and_survives_flushes(tmp_path: Path) -> None:
    now = [float(MONDAY_0900)]
    rec = TrafficRecorder(tmp_path, clock=lambda: now[0])
    for week in range(2):
        now[0] = MONDAY_0900 - week * 7 * 86400 + 60
        rec.count("logins", 8)
        rec.count("smtp_sessions", 2)
        rec.flush()
    now[0] = MONDAY_0900 + 1800
    rec.count("webmail_requests", 4)  # pending, not yet flushed
    profile = TrafficRecorder(tmp_path, clock=lambda: now[0]).profile(weeks=2)
    assert profile["version"] == 1 and profile["bucket"] == "hour-of-week"
    assert profile["series"]["logins"][9] == 8.0
    assert profile["series"]["smtp_sessions"][9] == 2.0
    assert sum(profile["series"]["logins"]) == 8.0
    assert rec.profile(weeks=2)["series"]["webmail_requests"][9] == 2.0
    assert all(len(v) == 168 for v in profile["series"].values())


def test_tokens_are_hashed_and_revocable(tmp_path: Path) -> None:
    tokens = AdminTokens(tmp_path)
    token = tokens.create("status-page")
    assert token not in (tmp_path / "admin-tokens.json").read_text()
    assert tokens.verify(token) == "status-page"
    assert tokens.verify(token + "x") is None and tokens.verify("") is None
    with pytest.raises(ValueError, match="exists"):
        tokens.create("status-page")
    assert tokens.revoke("status-page") and not tokens.revoke("status-page")
    assert tokens.verify(token) is None


def test_cli_admin_tokens(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--data-dir", str(tmp_path)]
    assert run([*base, "admin-token", "create", "ops"]) == 0
    token = capsys.readouterr().out.rsplit(" ", 1)[1].strip()
    assert AdminTokens(tmp_path).verify(token) == "ops"
    assert run([*base, "admin-token", "create", "ops"]) == 4
    assert run([*base, "admin-token", "list"]) == 0
    assert capsys.readouterr().out.split() == ["ops"]
    assert run([*base, "admin-token", "revoke", "ops"]) == 0
    assert run([*base, "admin-token", "revoke", "ops"]) == 3


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    from mailwarden.admin.ops import init_data_dir

    config = load_config(
        env={},
        overrides={
            "data_dir": str(tmp_path),
            "auth.argon2_memory_kib": 64,
            "auth.argon2_time_cost": 1,
            "imap.enabled": False,
            "pop3.enabled": False,
            "smtp.enabled": False,
            "submission.enabled": False,
            "web.enabled": False,
            "status.enabled": False,
        },
    )
    await init_data_dir(config)
    n = await Node.start(config, with_status=False)
    yield n
    await n.stop()


async def test_one_sending_allowance_for_smtp_and_webmail(node: Node) -> None:
    from mailwarden.servers.smtp import make_listeners
    from mailwarden.web.app import webmail_deps

    shared = node.context.sending_limits
    assert shared is not None
    assert webmail_deps(node).submitter.limits is shared  # type: ignore[attr-defined]
    config = dataclasses.replace(
        node.config, submission=dataclasses.replace(node.config.submission, enabled=True)
    )
    listeners = make_listeners(node.context, config)
    policies = {id(lst.handler.submission.limits) for lst in listeners if lst.handler.submission}
    assert policies == {id(shared)}


async def test_admin_api(node: Node) -> None:
    token = node.admin_tokens.create("test")
    transport = httpx.ASGITransport(app=make_app(node))
    async with httpx.AsyncClient(transport=transport, base_url="http://node") as client:
        assert (await client.get("/api/admin/drain")).status_code == 401
        bad = await client.get("/api/admin/drain", headers={"Authorization": "Bearer nope"})
        assert bad.status_code == 401
        auth = {"Authorization": f"Bearer {token}"}
        assert (await client.get("/api/admin/drain", headers=auth)).json()["drain"] is False
        on = await client.post(
            "/api/admin/drain", headers=auth, json={"drain": True, "retry_after": 90}
        )
        assert on.json()["drain"] is True and node.drain.read().retry_after == 90
        ready = await client.get("/readyz")
        assert ready.status_code == 503 and ready.headers["retry-after"] == "90"
        login = await client.get("/login")
        assert login.status_code == 503 and login.headers["retry-after"] == "90"
        posted = await client.post("/login", data={"username": "a", "password": "b"})
        assert posted.status_code == 503
        # A user already logged in is not cut off by the drain.
        client.cookies.set("mw_session", "existing")
        assert (await client.get("/login")).status_code != 503
        client.cookies.clear()
        bad_body = await client.post("/api/admin/drain", headers=auth, json={"drain": "yes"})
        assert bad_body.status_code == 400 and "error" in bad_body.json()
        off = await client.post("/api/admin/drain", headers=auth, json={"drain": False})
        assert off.json()["drain"] is False
        node.traffic.count("logins", 3)
        peer = Peer.from_host("127.0.0.1", Service.IMAP)
        await node.auth.verify("demo@example.test", "wrong password", peer, wait=False)
        profile = (await client.get("/api/admin/traffic-profile", headers=auth)).json()
        assert sum(profile["series"]["logins"]) == 1.0  # 3 + 1 attempt over 4 weeks
        assert sum(profile["series"]["webmail_requests"]) == 0.75  # the 3 /login requests
        domains = (await client.get("/api/admin/domains", headers=auth)).json()
        assert [d["name"] for d in domains] == ["example.test"]
        users = await client.get("/api/admin/users?domain=example.test", headers=auth)
        assert [u["address"] for u in users.json()] == ["demo@example.test"]
        missing = await client.get("/api/admin/users?domain=nowhere.test", headers=auth)
        assert missing.status_code == 404
