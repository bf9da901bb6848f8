"""Drain requests are durable: queued with the window's move, kept until a node
acknowledges, retried with back-off, and never lift a drain another window needs."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from conftest import CHEAP_HASHER, RecordingDrain

from mailwarden.web.status.model import MaintenanceStatus as M
from mailwarden.web.status.service import StatusService
from mailwarden.web.status.settings import NodeSettings

NODE = NodeSettings("http://node1.test:8080", "tok", "cluster-a")
OTHER = NodeSettings("http://node2.test:8080", "tok", "cluster-b")


def open_service(path, settings, clock, drain, nodes=(NODE, OTHER)):
    svc = StatusService.open(
        replace(settings, nodes=nodes),
        clock=clock,
        database=str(path),
        drain=drain,
        probes=[],
        hasher=CHEAP_HASHER,
    )
    if not svc.components.all():
        svc.add_cluster("test", "Cluster A")
    return svc


def schedule(svc, clock, *, days=8, hours=2, title="Storage upgrade"):
    start = clock.now + timedelta(days=days)
    (window,) = svc.schedule_maintenance(
        "op", title, start, start + timedelta(hours=hours), components=["cluster-a-imap"]
    )
    return window


async def test_unacknowledged_drain_survives_a_restart(tmp_path, settings, clock):
    path = tmp_path / "status.sqlite3"
    down = RecordingDrain()
    down.acknowledge = False
    first = open_service(path, settings, clock, down)
    window = schedule(first, clock)
    clock.set(window.planned_start)
    report = await first.tick()
    assert [(c.node_url, c.drain, c.acknowledged) for c in report.drain_calls] == [
        (NODE.url, True, False)
    ]
    (pending,) = first.drains.pending()
    assert (pending.drain, pending.attempts, pending.last_error) == (True, 1, "not acknowledged")
    first.close()  # the status process stops before the node answered

    clock.advance(seconds=30)
    up = RecordingDrain()
    second = open_service(path, settings, clock, up)
    try:
        report = await second.tick()
        ((url, request),) = up.calls
        assert url == NODE.url and request.drain is True
        assert request.maintenance_id == window.id
        assert request.retry_after == 2 * 3600 - 30
        assert second.drains.pending() == []
        entry = second.audit.entries()[0]
        assert (entry.actor, entry.action, entry.target) == ("scheduler", "drain.on", NODE.url)
    finally:
        second.close()


async def test_a_window_moved_from_another_process_is_drained(tmp_path, settings, clock):
    path = tmp_path / "status.sqlite3"
    drain = RecordingDrain()
    serving = open_service(path, settings, clock, drain)
    cli = open_service(
        path, settings, clock, RecordingDrain()
    )  # `mailwarden status maintenance move`
    try:
        window = schedule(cli, clock)
        cli.move_maintenance("cli:op", window.id, M.IN_PROGRESS)
        await serving.tick()
        assert [(u, r.drain) for u, r in drain.calls] == [(NODE.url, True)]
        cli.move_maintenance("cli:op", window.id, M.COMPLETED)
        await serving.tick()
        assert [(u, r.drain) for u, r in drain.calls] == [(NODE.url, True), (NODE.url, False)]
        assert cli.drain.calls == []  # type: ignore[attr-defined]
    finally:
        cli.close()
        serving.close()


async def test_off_replaces_an_unsent_on_and_back_off_is_bounded(tmp_path, settings, clock):
    drain = RecordingDrain()
    drain.acknowledge = False
    svc = open_service(tmp_path / "s.sqlite3", settings, clock, drain)
    try:
        window = schedule(svc, clock, hours=1)
        clock.set(window.planned_start)
        await svc.tick()
        waits = []
        for _ in range(6):
            (pending,) = svc.drains.pending()
            waits.append(pending.next_attempt_at - clock.now)
            clock.set(pending.next_attempt_at)
            await svc.tick()
        assert [int(w.total_seconds()) for w in waits] == [30, 60, 120, 240, 300, 300]
        clock.set(window.planned_end)
        drain.acknowledge = True
        await svc.tick()
        # One row per (node, window): the "off" replaced the "on" and went out at once.
        assert svc.drains.pending() == []
        assert drain.calls[-1][1].drain is False  # type: ignore[attr-defined]
    finally:
        svc.close()


async def test_off_is_held_while_another_window_drains_the_node(tmp_path, settings, clock):
    drain = RecordingDrain()
    svc = open_service(tmp_path / "s.sqlite3", settings, clock, drain)
    try:
        first = schedule(svc, clock, hours=1, title="Disks")
        second = schedule(svc, clock, hours=3, title="Network")
        clock.set(first.planned_start)
        await svc.tick()
        assert [(u, r.drain, r.maintenance_id) for u, r in drain.calls] == [
            (NODE.url, True, first.id),
            (NODE.url, True, second.id),
        ]
        clock.set(first.planned_end)
        report = await svc.tick()
        (call,) = report.drain_calls
        assert not call.acknowledged and call.note == f"still drained for maintenance {second.id}"
        assert len(drain.calls) == 2  # nothing sent: the node stays drained
        clock.set(second.planned_end)
        await svc.tick()
        assert [(r.drain, r.maintenance_id) for _, r in drain.calls][-1] == (False, second.id)
        assert svc.drains.pending() == []
    finally:
        svc.close()


async def test_a_node_removed_from_the_settings_keeps_its_request(tmp_path, settings, clock):
    drain = RecordingDrain()
    svc = open_service(tmp_path / "s.sqlite3", settings, clock, drain)
    try:
        window = schedule(svc, clock)
        svc.settings = replace(svc.settings, nodes=(OTHER,))
        clock.set(window.planned_start)
        # Queued for the nodes configured when the window started: none of cluster-a now.
        assert (await svc.tick()).drain_calls == ()
        svc.settings = replace(svc.settings, nodes=(NODE,))
        drain.acknowledge = False
        clock.set(window.planned_end)
        await svc.tick()  # the "off" for NODE is queued and not acknowledged ...
        svc.settings = replace(svc.settings, nodes=())
        clock.advance(minutes=1)
        (call,) = (await svc.tick()).drain_calls  # ... and NODE has since left the settings
        assert call.note == "node is no longer configured" and len(drain.calls) == 1
        assert svc.drains.pending()[0].last_error == "node is no longer configured"
    finally:
        svc.close()


async def test_windows_without_drain_call_no_node(tmp_path, settings, clock):
    drain = RecordingDrain()
    svc = open_service(tmp_path / "s.sqlite3", settings, clock, drain)
    try:
        start = clock.now + timedelta(days=8)
        svc.schedule_maintenance(
            "op", "Docs", start, start + timedelta(hours=1), components=["cluster-a-imap"],
            drain=False,
        )  # fmt: skip
        clock.set(start)
        await svc.tick()
        clock.advance(hours=1)
        await svc.tick()
        assert drain.calls == [] and svc.drains.pending() == []
    finally:
        svc.close()


async def test_dashboard_lists_unacknowledged_drains(service, client, clock, drain):
    from mailwarden.web.status.model import Role

    service.settings = replace(service.settings, nodes=(NODE,))
    drain.acknowledge = False
    window = schedule(service, clock)
    clock.set(window.planned_start)
    await service.tick()
    service.users.add("ed", "editor-password", Role.EDITOR)
    await client.post("/admin/login", data={"username": "ed", "password": "editor-password"})
    page = (await client.get("/admin")).text
    assert "Drain requests waiting for a node" in page
    assert f"<code>{NODE.url}</code>" in page and "not acknowledged" in page
    drain.acknowledge = True
    clock.advance(seconds=30)
    await service.tick()
    assert "Drain requests waiting" not in (await client.get("/admin")).text
