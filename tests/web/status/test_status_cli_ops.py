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


def test_component_incident_and_maintenance_commands(tmp_path, capsys):
    db = tmp_path / "status.sqlite3"
    assert cli(db, "init", "--cluster", "Cluster A") == 0
    assert cli(db, "component", "set", "cluster-a-auth", "partial_outage") == 0
    assert cli(db, "component", "set", "cluster-a-nope", "major_outage") == 3
    capsys.readouterr()
    assert cli(db, "component", "list") == 0
    listed = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    services = ("webmail", "imap", "pop3", "smtp-inbound", "smtp-submission", "auth")
    assert list(listed) == [f"cluster-a-{k}" for k in services]
    assert "partial_outage" in listed["cluster-a-auth"]
    assert listed["cluster-a-imap"].endswith(
        "Hosted Email (Cluster A, IMAP)  (Authentication: partial outage)"
    )
    assert "operational" in listed["cluster-a-smtp-inbound"]

    assert cli(db, "incident", "open", "Login trouble", "--body", "Looking.", "--impact", "major",
               "--component", "cluster-a-auth=major_outage") == 0  # fmt: skip
    assert cli(db, "incident", "open", "Old one", "--body", "x") == 0
    assert cli(db, "incident", "resolve", "2", "--body", "Fine.") == 0
    capsys.readouterr()
    assert cli(db, "incident", "list") == 0
    (line,) = capsys.readouterr().out.splitlines()
    assert line.split() == ["1", "investigating", "major", "Login", "trouble"]
    assert cli(db, "incident", "list", "--all") == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
    assert cli(db, "incident", "update", "1", "--body", "Found it.", "--status", "identified") == 0
    assert cli(db, "incident", "resolve", "1", "--body", "Fixed.") == 0
    capsys.readouterr()
    assert cli(db, "incident", "list") == 0
    assert capsys.readouterr().out == ""

    start = system_clock() + timedelta(days=8)
    assert cli(db, "maintenance", "schedule", "Too soon", "--start",
               (system_clock() + timedelta(days=2)).isoformat(), "--length", "2h",
               "--component", "cluster-a-imap") == 1  # fmt: skip
    assert "7 days notice" in capsys.readouterr().err
    assert cli(db, "maintenance", "schedule", "Disk swap", "--start", start.isoformat(),
               "--length", "2h", "--component", "cluster-a-imap", "--component",
               "cluster-a-pop3", "--body", "New disks.") == 0  # fmt: skip
    assert cli(db, "maintenance", "schedule", "Quarterly", "--start",
               (start + timedelta(days=1)).isoformat(), "--end",
               (start + timedelta(days=1, hours=1)).isoformat(), "--component", "cluster-a-imap",
               "--rrule", "FREQ=MONTHLY;INTERVAL=3") == 0  # fmt: skip
    capsys.readouterr()
    assert cli(db, "maintenance", "list") == 0
    windows = capsys.readouterr().out.splitlines()
    assert windows[0].split()[:2] == ["1", "scheduled"] and windows[0].endswith(
        "(2 hours)  Disk swap"
    )
    assert len(windows) == 6  # the window and five quarters within the horizon
    assert all(w.endswith("Quarterly  [FREQ=MONTHLY;INTERVAL=3]") for w in windows[1:])
    assert cli(db, "maintenance", "cancel", "1") == 0
    assert cli(db, "maintenance", "cancel", "2", "--series") == 0
    assert cli(db, "maintenance", "cancel", "99") == 3
    capsys.readouterr()
    assert cli(db, "maintenance", "list") == 0
    assert capsys.readouterr().out == ""
    assert cli(db, "maintenance", "list", "--all") == 0
    assert all(" cancelled " in w for w in capsys.readouterr().out.splitlines())

    # Every change is in the audit log, as done from the shell.
    assert cli(db, "audit") == 0
    audit = capsys.readouterr().out
    for action in ("component.set", "incident.open", "incident.update", "incident.resolve",
                   "maintenance.schedule", "maintenance.cancel"):  # fmt: skip
        assert action in audit
    assert "cli:" in audit
