"""Logging in and out: the auth door, sessions, cookies, CSRF and redirects."""

from __future__ import annotations

import pytest
from webmail_world import ALICE, BOB, World, login

from mailwarden.auth.passwords import PoolSaturated
from mailwarden.auth.service import Accepted, TryLater
from mailwarden.web.webmail.core import safe_next


async def _pre(client) -> str:
    page = await client.get("/login")
    assert page.status_code == 200
    import re

    return re.search(r'name="pre_csrf" value="([^"]+)"', page.text).group(1)


async def test_login_sets_a_fresh_httponly_samesite_session(world: World) -> None:
    async with world.client() as client:
        assert (await client.get("/mail")).headers["location"].startswith("/login?next=")
        token = await _pre(client)
        client.cookies.set("mw_session", "attacker-chosen-id", domain="mail.example.test")
        response = await client.post(
            "/login", data={"pre_csrf": token, "username": ALICE[0], "password": ALICE[1]}
        )
        assert response.status_code == 303
        cookie = response.headers["set-cookie"]
        assert "mw_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
        assert "Secure" not in cookie  # secure_cookies is off in this world
        session_id = response.cookies["mw_session"]
        assert session_id != "attacker-chosen-id" and len(session_id) >= 40
        assert (await client.get("/mail")).headers["location"].startswith("/mail/")
        inbox = await client.get("/mail", follow_redirects=True)
        assert inbox.status_code == 200 and "alice@example.test" in inbox.text


async def test_secure_cookies_when_configured(world: World) -> None:
    world.deps.secure_cookies = True
    async with world.client() as client:
        token = await _pre(client)
        response = await client.post(
            "/login", data={"pre_csrf": token, "username": ALICE[0], "password": ALICE[1]}
        )
        assert "Secure" in response.headers["set-cookie"]


async def test_wrong_password_and_unknown_user_look_the_same(world: World) -> None:
    async with world.client() as client:
        answers = []
        for user, password in ((ALICE[0], "wrong"), ("nobody@example.test", ALICE[1])):
            token = await _pre(client)
            r = await client.post(
                "/login", data={"pre_csrf": token, "username": user, "password": password}
            )
            answers.append((r.status_code, "Wrong address or password." in r.text))
            assert "mw_session" not in r.cookies
        assert answers == [(401, True), (401, True)]


async def test_login_needs_the_prelogin_token(world: World) -> None:
    async with world.client() as client:
        r = await client.post(
            "/login", data={"pre_csrf": "forged", "username": ALICE[0], "password": ALICE[1]}
        )
        assert r.status_code == 403 and "mw_session" not in r.cookies


async def test_try_later_is_503_with_retry_after(world: World, monkeypatch) -> None:
    async def saturated(*args, **kwargs):
        raise PoolSaturated()

    monkeypatch.setattr(world.auth.pool, "run", saturated)
    async with world.client() as client:
        token = await _pre(client)
        r = await client.post(
            "/login", data={"pre_csrf": token, "username": ALICE[0], "password": ALICE[1]}
        )
        assert r.status_code == 503
        assert int(r.headers["retry-after"]) >= 1
        assert "try again" in r.text.lower()
        assert "mw_session" not in r.cookies


async def test_try_later_outcome_carries_its_delay(world: World, monkeypatch) -> None:
    async def later(*args, **kwargs):
        return TryLater(12.5, "held back")

    monkeypatch.setattr(world.auth, "verify", later)
    async with world.client() as client:
        token = await _pre(client)
        r = await client.post(
            "/login", data={"pre_csrf": token, "username": ALICE[0], "password": ALICE[1]}
        )
        assert (r.status_code, r.headers["retry-after"]) == (503, "13")


async def test_logout_needs_csrf_and_ends_the_session(world: World) -> None:
    async with world.client() as client:
        csrf = await login(client)
        assert (await client.post("/logout", data={})).status_code == 403
        assert (await client.post("/logout", data={"csrf": csrf})).status_code == 303
        assert (await client.get("/mail")).headers["location"].startswith("/login")


async def test_sessions_expire_when_idle(world: World) -> None:
    async with world.client() as client:
        await login(client)
        world.deps.clock.now += 3000  # type: ignore[attr-defined]
        assert (await client.get("/mail")).status_code == 303
        assert (await client.get("/settings")).status_code == 200
        world.deps.clock.now += 3601  # type: ignore[attr-defined]
        assert (await client.get("/settings")).headers["location"].startswith("/login")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/mail/3?page=2", "/mail/3?page=2"),
        ("//evil.example/", "/mail"),
        ("/\\evil.example", "/mail"),
        ("https://evil.example/", "/mail"),
        ("javascript:alert(1)", "/mail"),
        ("/mail\r\nSet-Cookie: x=1", "/mail"),
        ("", "/mail"),
        (None, "/mail"),
        ("mail", "/mail"),
    ],
)
def test_safe_next(value, expected) -> None:
    assert safe_next(value) == expected


async def test_no_open_redirect_after_login(world: World) -> None:
    async with world.client() as client:
        await client.get("/login")
        token = client.cookies["mw_pre"]
        r = await client.post(
            "/login?next=//evil.example/x",
            data={"pre_csrf": token, "username": ALICE[0], "password": ALICE[1]},
        )
        assert r.headers["location"] == "/mail"


async def test_password_change_ends_other_sessions(world: World) -> None:
    async with world.client() as one, world.client() as two:
        csrf = await login(one)
        await login(two)
        bad = await one.post(
            "/settings/password",
            data={"csrf": csrf, "current": "nope", "new": "x" * 12, "confirm": "x" * 12},
            follow_redirects=True,
        )
        assert "The current password is wrong." in bad.text
        r = await one.post(
            "/settings/password",
            data={
                "csrf": csrf,
                "current": ALICE[1],
                "new": "a brand new password",
                "confirm": "a brand new password",
            },
        )
        assert r.status_code == 303
        assert (await one.get("/settings")).status_code == 200
        assert (await two.get("/settings")).headers["location"].startswith("/login")
        ok = await world.auth.verify(ALICE[0], "a brand new password", _peer())
        assert isinstance(ok, Accepted)


async def test_suspended_account_loses_its_session(world: World) -> None:
    from mailwarden.store.base import AccountStatus

    async with world.client() as client:
        await login(client, BOB)
        bob = await world.account(BOB[0])
        await world.store.set_status(bob.id, AccountStatus.SUSPENDED)
        assert (await client.get("/settings")).headers["location"].startswith("/login")


def _peer():
    from mailwarden.auth.service import Peer, Service

    return Peer.from_host("127.0.0.1", Service.WEB)


async def test_health_routes_still_work(world: World) -> None:
    async with world.client() as client:
        assert (await client.get("/healthz")).text == "ok\n"
        assert (await client.get("/readyz")).json() == {"ready": True}
        assert (await client.get("/metrics")).status_code == 200


async def test_webmail_deps_for_a_node(world: World, tmp_path) -> None:
    import types

    from mailwarden.admin.drain import DrainSwitch
    from mailwarden.admin.traffic import TrafficRecorder
    from mailwarden.config import Config
    from mailwarden.web.app import make_app, webmail_deps

    node = types.SimpleNamespace(
        config=Config(data_dir=str(tmp_path / "var")),
        store=world.store,
        auth=world.auth,
        draining=False,
        drain=DrainSwitch(tmp_path),
        traffic=TrafficRecorder(tmp_path),
        context=types.SimpleNamespace(sending_limits=None),
    )
    deps = webmail_deps(node)  # type: ignore[arg-type]
    assert deps.sessions.idle == 12 * 3600  # type: ignore[attr-defined]
    assert deps.secure_cookies is False
    app = make_app(node)  # type: ignore[arg-type]
    import httpx

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://x") as client:
        assert (await client.get("/login")).status_code == 200
        assert (await client.get("/healthz")).status_code == 200
    deps.prefs.close()  # type: ignore[attr-defined]
