"""``mailwarden status login|drain|probe``: what operators see from a shell."""

from __future__ import annotations

import argparse
from dataclasses import replace
from datetime import timedelta

from conftest import CHEAP_HASHER

from mailwarden.admin.status_cli import register
from mailwarden.web.status.model import MaintenanceStatus, system_clock
from mailwarden.web.status.probes import Hysteresis, ProbeResult
from mailwarden.web.status.service import StatusService
from mailwarden.web.status.settings import NodeSettings, StatusSettings


def cli(db, *argv):
    parser = argparse.ArgumentParser(prog="mailwarden")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["status", "--db", str(db), *argv])
    return int(args.handler(args, None))


class Probe:
    name = "cluster-a/pop3-login"
    components = ("cluster-a-pop3",)
    slow_ms = 1000


class Unreachable:
    async def set_drain(self, node, request):
        return False


async def test_login_drain_and_probe_commands(tmp_path, capsys):
    db = tmp_path / "status.sqlite3"
    assert cli(db, "init", "--cluster", "Cluster A") == 0
    svc = StatusService.open(
        replace(StatusSettings(), nodes=(NodeSettings("http://node1.test:8080"),)),
        database=str(db),
        drain=Unreachable(),
        probes=[],
        hasher=CHEAP_HASHER,
    )
    try:
        for n in range(5):
            svc.logins.failed("198.51.100.7", f"guess{n}")
        start = system_clock() + timedelta(hours=1)
        (window,) = svc.schedule_maintenance(
            "op", "Disks", start, start + timedelta(hours=1), components=["cluster-a-imap"],
            emergency=True,
        )  # fmt: skip
        svc.move_maintenance("op", window.id, MaintenanceStatus.IN_PROGRESS)
        await svc.tick()  # the node does not answer
        svc.probes.record(Probe(), ProbeResult(True, 12), Hysteresis())
        svc.probes.record(Probe(), ProbeResult(False, None, "ConnectionRefusedError"), Hysteresis())
    finally:
        svc.close()
    capsys.readouterr()

    assert cli(db, "login", "list") == 0
    out = capsys.readouterr().out
    assert "address:198.51.100.7" in out and "5 failures" in out and "locked until" in out
    assert cli(db, "login", "release", "address:198.51.100.7") == 0
    assert cli(db, "login", "release", "address:198.51.100.7") == 3
    capsys.readouterr()
    assert cli(db, "login", "list") == 0
    assert "address:198.51.100.7" not in capsys.readouterr().out

    assert cli(db, "drain", "pending") == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith(f"http://node1.test:8080  on   maintenance {window.id}")
    assert "attempts 1" in line and line.endswith("not acknowledged")

    assert cli(db, "probe", "list") == 0
    out = capsys.readouterr().out
    assert out.startswith("cluster-a/pop3-login") and "last failed at" in out
    assert cli(db, "probe", "history", "--probe", "cluster-a/pop3-login") == 0
    failed, ok = capsys.readouterr().out.splitlines()
    assert "failed" in failed and "ConnectionRefusedError" in failed
    assert " ok " in ok and "12 ms" in ok
    assert cli(db, "audit") == 0
    assert "login.release" in capsys.readouterr().out
