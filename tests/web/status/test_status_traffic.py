"""Traffic profiles and the maintenance windows they suggest."""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import re
import shlex
from datetime import UTC, datetime, timedelta

import pytest
from status_servers import HttpReceiver

from mailwarden.admin.status_cli import register
from mailwarden.web.status.model import StatusError
from mailwarden.web.status.traffic import (
    TrafficProfile,
    fetch_profile,
    quarterly_dates,
    suggest_slots,
)


def weekly(base: float = 100.0, quiet: dict[int, float] | None = None) -> list[float]:
    hours = [base] * 168
    for hour, value in (quiet or {}).items():
        hours[hour] = value
    return hours


def profile_doc(**series: list[float]) -> dict:
    return {"version": 1, "bucket": "hour-of-week", "timezone": "UTC", "series": series}


def test_profile_sums_series_and_validates():
    doc = profile_doc(logins=weekly(10), smtp_sessions=weekly(5), webmail_requests=weekly(1))
    profile = TrafficProfile.from_json(doc)
    assert profile.hours[0] == 16 and profile.total == 16 * 168
    for bad in [
        {"version": 2, "series": {"a": weekly()}},
        profile_doc(),
        profile_doc(a=[1] * 167),
        profile_doc(a=[-1] + [1] * 167),
        profile_doc(a=["x"] + [1] * 167),
        profile_doc(a=[True] + [1] * 167),
        {**profile_doc(a=weekly()), "bucket": "hour-of-day"},
    ]:
        with pytest.raises(StatusError):
            TrafficProfile.from_json(bad)


def test_suggests_the_lowest_contiguous_block():
    # Tuesday 02:00-04:00 (hours 26, 27) is the quietest two-hour block;
    # Saturday 03:00 (hour 123) is quiet alone but its neighbours are busy.
    quiet = {26: 3, 27: 4, 28: 60, 123: 1, 124: 90, 122: 90, 75: 20, 76: 20}
    profile = TrafficProfile.from_json(profile_doc(logins=weekly(100, quiet)))
    best, second, third = suggest_slots(profile, timedelta(hours=2), count=3)
    assert (best.weekday, best.hour, best.hours) == (1, 2, 2)
    assert best.describe() == "Tuesday 02:00-04:00 UTC"
    assert best.traffic == 7
    assert second.describe() == "Thursday 03:00-05:00 UTC"  # hours 75, 76
    assert not {second.start_hour, second.start_hour + 1} & {26, 27}
    assert third.traffic > second.traffic
    # Lengths round up to whole hours.
    (one,) = suggest_slots(profile, timedelta(minutes=30), count=1)
    assert (one.start_hour, one.hours) == (123, 1)


def test_blocks_wrap_from_sunday_night_to_monday_morning():
    profile = TrafficProfile.from_json(profile_doc(a=weekly(50, {167: 0, 0: 0, 1: 0})))
    (slot,) = suggest_slots(profile, timedelta(hours=3), count=1)
    assert slot.start_hour == 167 and slot.traffic == 0
    assert slot.describe() == "Sunday 23:00-02:00 UTC"
    with pytest.raises(StatusError):
        suggest_slots(profile, timedelta(days=7))


def test_quarterly_dates_respect_the_minimum_notice():
    profile = TrafficProfile.from_json(profile_doc(a=weekly(100, {26: 0, 27: 0})))
    (slot,) = suggest_slots(profile, timedelta(hours=2), count=1)
    now = datetime(2024, 5, 10, 14, 37, tzinfo=UTC)
    rule, dates = quarterly_dates(slot, now, timedelta(days=7))
    assert rule == "FREQ=MONTHLY;INTERVAL=3;BYDAY=+2TU;BYHOUR=2;BYMINUTE=0;BYSECOND=0"
    # May 14 (second Tuesday of May) is 3.5 days away: too soon, so June starts the grid.
    assert [d.date().isoformat() for d in dates] == [
        "2024-06-11", "2024-09-10", "2024-12-10", "2025-03-11",
    ]  # fmt: skip
    assert all(d.weekday() == 1 and d.hour == 2 for d in dates)
    _, dates = quarterly_dates(slot, datetime(2024, 5, 1, tzinfo=UTC), timedelta(days=7))
    assert dates[0].date().isoformat() == "2024-05-14"


async def test_fetches_a_node_profile_and_cli_suggests(tmp_path, capsys):
    doc = profile_doc(logins=weekly(100, {26: 1, 27: 1}))
    node = await HttpReceiver(body_for_get=json.dumps(doc).encode()).start()
    try:
        import asyncio

        profile = await asyncio.to_thread(fetch_profile, node.url, "tok")
    finally:
        await node.stop()
    assert profile.hours[26] == 1
    ((line, headers, _),) = node.requests
    assert line == "GET /api/admin/traffic-profile"
    assert headers["authorization"] == "Bearer tok"

    path = tmp_path / "profile.json"
    path.write_text(json.dumps(doc))
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    argv = ["status", "--db", str(tmp_path / "s.db"), "maintenance", "suggest",
            "--length", "2h", "--quarterly", "--profile", str(path)]  # fmt: skip
    args = parser.parse_args(argv)
    assert args.handler(args, None) == 0
    out = capsys.readouterr().out
    assert "1. Tuesday 02:00-04:00 UTC" in out
    assert "FREQ=MONTHLY;INTERVAL=3;BYDAY=+2TU;BYHOUR=2" in out
    args = parser.parse_args([*argv, "--json"])
    assert args.handler(args, None) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["slots"][0]["describe"] == "Tuesday 02:00-04:00 UTC"
    assert len(result["quarterly"]["dates"]) == 4


async def test_suggest_command_reads_the_configured_nodes_and_its_rule_schedules(tmp_path, capsys):
    """``mailwarden status maintenance suggest --length 2h --quarterly`` as an operator
    types it: the nodes come from the config, their profiles are added up, and
    the command it proposes schedules the quarterly series."""
    from mailwarden.admin.cli import run

    # Node 1 is quiet on Tuesday 02:00-04:00 and on Sunday 04:00-06:00; node 2 is
    # busy on that Tuesday morning, so together Sunday wins.
    one = profile_doc(logins=weekly(100, {26: 0, 27: 0, 148: 10, 149: 10}))
    two = profile_doc(smtp_sessions=weekly(10, {26: 500, 27: 500, 148: 0, 149: 0}))
    nodes = [
        await HttpReceiver(body_for_get=json.dumps(doc).encode()).start() for doc in (one, two)
    ]
    config = tmp_path / "mailwarden.toml"
    config.write_text(
        '[status]\nmin_notice = "7d"\nnodes = ['
        + ", ".join(f'{{ url = "{n.url}", token = "tok{i}" }}' for i, n in enumerate(nodes))
        + "]\n"
    )
    base = ["--config", str(config), "--data-dir", str(tmp_path / "var")]
    before = datetime.now(UTC)
    try:
        code = await asyncio.to_thread(
            run, [*base, "status", "maintenance", "suggest", "--length", "2h", "--quarterly"]
        )
    finally:
        for node in nodes:
            await node.stop()
    out = capsys.readouterr().out
    assert code == 0, out
    assert [r[1]["authorization"] for n in nodes for r in n.requests] == [
        "Bearer tok0",
        "Bearer tok1",
    ]
    lines = out.splitlines()
    assert lines[0] == "Lowest-traffic 2 hours windows:"
    assert lines[1].startswith("  1. Sunday 04:00-06:00 UTC  (")
    assert "Quarterly: FREQ=MONTHLY;INTERVAL=3;BYDAY=+2SU;BYHOUR=4;BYMINUTE=0;BYSECOND=0" in lines
    dates = [
        datetime.strptime(line.strip(), "%b %d, %Y - %H:%M UTC").replace(tzinfo=UTC)
        for line in lines
        if re.fullmatch(r"  \w{3} \d\d, \d{4} - \d\d:\d\d UTC", line)
    ]
    assert len(dates) == 4
    assert dates[0] >= before + timedelta(days=7)  # the minimum notice
    assert all(d.weekday() == 6 and d.hour == 4 and 8 <= d.day <= 14 for d in dates)
    assert [
        (b.year * 12 + b.month) - (a.year * 12 + a.month) for a, b in itertools.pairwise(dates)
    ] == [3, 3, 3]

    # The proposed command, with a title and a component filled in, schedules the series.
    proposed = shlex.split(lines[lines.index("Schedule with:") + 1])
    assert proposed[:4] == ["mailwarden", "status", "maintenance", "schedule"]
    argv = [a for a in proposed[4:] if a not in ("TITLE", "--component", "KEY")]
    assert await asyncio.to_thread(run, [*base, "status", "init", "--cluster", "Cluster A"]) == 0
    code = await asyncio.to_thread(
        run, [*base, "status", "maintenance", "schedule", "Quarterly maintenance", *argv,
              "--component", "cluster-a-imap"],
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0, out
    scheduled = [line for line in out.splitlines() if line.startswith("scheduled")]
    assert len(scheduled) >= 4
    assert all("FREQ=MONTHLY;INTERVAL=3;BYDAY=+2SU" in line for line in scheduled)
    for date, line in zip(dates, scheduled, strict=False):
        assert f"{date:%b %d, %Y - %H:%M} UTC (2 hours)" in line
