"""``mailwarden auth ...`` and ``app-password ...``: each command, its exit codes and audit line."""

from __future__ import annotations

import asyncio
import io
import ipaddress
import json
import sys
from pathlib import Path

import pytest

from mailwarden.admin.cli import run
from mailwarden.auth.node import open_auth_service
from mailwarden.auth.passwords import PasswordHasher, VerifyPool
from mailwarden.auth.service import Accepted, Peer, Rejected, Service
from mailwarden.config import load_config

FAST_ENV = {
    "MAILWARDEN_AUTH_ARGON2_MEMORY_KIB": "64",
    "MAILWARDEN_AUTH_ARGON2_TIME_COST": "1",
}
DEMO = "demo@example.test"


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    for key, value in FAST_ENV.items():
        monkeypatch.setenv(key, value)
    data = str(tmp_path / "data")

    def call(*args: str, stdin: str = "") -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        code = run(["--data-dir", data, *args])
        out, err = capsys.readouterr()
        return code, out, err

    code, out, _ = call("init")
    assert code == 0
    call.demo_password = out.split("password:")[1].split()[0]  # type: ignore[attr-defined]
    call.data = data  # type: ignore[attr-defined]
    return call


def audit(cli) -> list[tuple[str, str]]:
    code, out, _ = cli("auth", "audit", "--json")
    assert code == 0
    return [(e["action"], e["target"]) for e in json.loads(out)]


def test_ban_bans_unban_and_explain(cli) -> None:
    code, out, _ = cli("auth", "ban", "192.0.2.0/24", "--for", "2h", "--reason", "scanner")
    assert code == 0 and "banned 192.0.2.0/24 until" in out
    code, out, _ = cli("auth", "bans", "--json")
    (ban,) = json.loads(out)
    assert ban["network"] == "192.0.2.0/24" and ban["rule"] == "admin"
    assert ban["until"] - ban["since"] == 7200 and ban["reason"] == "scanner"
    code, out, _ = cli("auth", "bans")
    assert "192.0.2.0/24 banned by rule admin" in out and "reason: scanner" in out
    code, out, _ = cli("auth", "explain", "192.0.2.77")
    assert code == 0 and "refused: banned" in out and "scanner" in out
    assert cli("auth", "ban", "2001:db8::/32", "--for", "forever")[0] == 0
    assert cli("auth", "unban", "192.0.2.0/24")[0] == 0
    code, _, err = cli("auth", "unban", "192.0.2.0/24")
    assert code == 3 and "not banned" in err
    code, out, _ = cli("auth", "bans", "--json")
    assert [b["network"] for b in json.loads(out)] == ["2001:db8::/32"]
    code, out, _ = cli("auth", "bans", "--all", "--json")
    assert len(json.loads(out)) == 2
    for bad in (
        ("auth", "ban", "10.1.2.3/8"),
        ("auth", "ban", "x"),
        ("auth", "ban", "1.2.3.4", "--for", "-5"),
    ):
        code, _, err = cli(*bad)
        assert code == 1 and err.startswith("mailwarden: ") and "Traceback" not in err
    assert audit(cli) == [
        ("unban", "192.0.2.0/24"),
        ("ban", "2001:db8::/32"),
        ("ban", "192.0.2.0/24"),
    ]


def test_allow_and_disallow(cli) -> None:
    assert cli("auth", "allow", "10.0.0.0/8", "--note", "office")[0] == 0
    code, out, _ = cli("auth", "allow", "--json")
    assert json.loads(out) == [{"network": "10.0.0.0/8", "note": "office"}]
    code, _, err = cli("auth", "ban", "10.9.0.0/16")
    assert code == 1 and "allowlisted" in err
    code, out, _ = cli("auth", "explain", "10.1.1.1", "--json")
    assert json.loads(out)["verdict"] == "allowlisted: never banned"
    assert cli("auth", "disallow", "10.0.0.0/8")[0] == 0
    assert cli("auth", "disallow", "10.0.0.0/8")[0] == 3
    assert cli("auth", "ban", "10.9.0.0/16")[0] == 0
    assert audit(cli)[:3] == [
        ("ban", "10.9.0.0/16"),
        ("disallow", "10.0.0.0/8"),
        ("allow", "10.0.0.0/8"),
    ]


def test_lock_unlock_revoke_sessions(cli) -> None:
    assert cli("auth", "lock", DEMO, "--reason", "phished")[0] == 0
    code, out, _ = cli("auth", "sessions", DEMO, "--json")
    info = json.loads(out)
    assert info["locked"] and info["lock_reason"] == "phished" and info["epoch"] == 0
    assert cli("auth", "unlock", DEMO)[0] == 0
    code, _, err = cli("auth", "unlock", DEMO)
    assert code == 1 and "not locked" in err
    code, out, _ = cli("auth", "revoke", DEMO)
    assert code == 0 and "epoch 1" in out
    code, out, _ = cli("auth", "sessions", DEMO)
    assert code == 0 and "not locked, epoch 1" in out and "known clients (0)" in out
    for action in ("lock", "unlock", "sessions", "revoke"):
        code, _, err = cli("auth", action, "nobody@example.test")
        assert code == 3 and "no such mailbox" in err
    assert audit(cli) == [("revoke", DEMO), ("unlock", DEMO), ("lock", DEMO)]


def test_app_passwords(cli) -> None:
    code, out, _ = cli("app-password", "add", DEMO, "--label", "phone")
    assert code == 0 and "password: " in out
    secret = out.split("password: ")[1].split()[0]
    code, out, _ = cli("app-password", "list", DEMO, "--json")
    (app,) = json.loads(out)
    assert app["label"] == "phone"
    assert cli("app-password", "revoke", DEMO, str(app["id"]))[0] == 0
    assert cli("app-password", "revoke", DEMO, str(app["id"]))[0] == 3
    code, out, _ = cli("app-password", "list", DEMO, "--json")
    assert json.loads(out) == []
    assert secret not in json.dumps(audit(cli))
    assert audit(cli) == [("app-password revoke", DEMO), ("app-password add", DEMO)]


def test_status_without_a_node(cli) -> None:
    code, out, _ = cli("auth", "status")
    assert code == 3 and "no node has published" in out


def test_a_running_node_follows_the_tools_and_publishes_status(cli) -> None:
    config = load_config(env=FAST_ENV, overrides={"data_dir": cli.data})
    demo_password = cli.demo_password

    async def node_side(step: str) -> object:
        store_mod = __import__("mailwarden.admin.ops", fromlist=["open_store"])
        store = await store_mod.open_store(config)
        auth = await open_auth_service(
            config, store, PasswordHasher(store_mod.hash_params(config)), VerifyPool(1, 4)
        )
        try:
            office = Peer(ipaddress.ip_address("192.0.2.5"), Service.IMAP)
            if step == "login":
                outcome = await auth.verify(DEMO, demo_password, office)
                app = await auth.verify(DEMO, app_secret[0], office)
                await auth.publish_stats()
                await auth.flush()
                return outcome, app
            return await auth.verify(DEMO, demo_password, office, wait=False)
        finally:
            await auth.close()
            await store.close()

    code, out, _ = cli("app-password", "add", DEMO)
    app_secret = [out.split("password: ")[1].split()[0]]
    outcome, app = asyncio.run(node_side("login"))
    assert isinstance(outcome, Accepted) and isinstance(app, Accepted) and app.cached
    code, out, _ = cli("auth", "status")
    assert code == 0 and "attempts" in out and "total 2" in out
    code, out, _ = cli("auth", "sessions", DEMO, "--json")
    assert [k["network"] for k in json.loads(out)["known_clients"]] == ["192.0.2.0/24"]
    assert cli("auth", "ban", "192.0.2.0/24")[0] == 0
    refused = asyncio.run(node_side("again"))
    assert isinstance(refused, Rejected) and refused.rule == "admin"
