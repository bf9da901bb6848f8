"""Re-create the Cluster A outage page (the seed) through the CLI and check the page.

The seed (``data/cluster-a-outage.txt``, a copy of ``shared/seed``) lists the
updates newest first, each followed by its ``Posted`` line, and starts with
the incident report.  The test parses it, replays every update through
``mailwarden status incident ...`` with its posted time, and then reads the
rendered permalink.
"""

from __future__ import annotations

import argparse
import html
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx

from mailwarden.admin.status_cli import register
from mailwarden.web.status.app import create_app
from mailwarden.web.status.service import StatusService
from mailwarden.web.status.settings import StatusSettings

SEED = Path(__file__).parent / "data" / "cluster-a-outage.txt"
POSTED = re.compile(r"^Posted (\w{3} \d{2}, \d{4} - \d{2}:\d{2}) UTC$")

# The seed page shows no status words; these follow its text (investigating,
# then "identified the problem", "implemented a fix" = monitoring, closed).
STATUSES = ["investigating"] + ["identified"] * 7 + ["monitoring"] * 4 + ["resolved"]
# Webmail's status as the story goes: down, slow, then back.
WEBMAIL = ["major_outage"] * 8 + ["degraded_performance"] * 4 + [None]


@dataclass
class SeedUpdate:
    posted: datetime
    body: str


@dataclass
class Seed:
    title: str
    summary: str
    client_impact: str
    remediation: str
    report_posted: datetime
    updates: list[SeedUpdate]  # oldest first
    start: datetime
    end: datetime
    affected: str


def _time(text: str) -> datetime:
    return datetime.strptime(text, "%b %d, %Y - %H:%M").replace(tzinfo=UTC)


def parse_seed() -> Seed:
    lines = SEED.read_text(encoding="utf-8").splitlines()
    title = lines[0].strip()
    text = "\n".join(lines)
    summary = re.search(r"Summary: (.*)", text).group(1).strip()
    impact = re.search(r"Client Impact: (.*)", text).group(1).strip()
    remediation = text.split("Remediation: ", 1)[1].split("\nThank you,", 1)[0].strip()
    remediation = "\n".join(
        "- " + line.strip().lstrip("•").strip() if line.strip().startswith("•") else line
        for line in remediation.splitlines()
    )
    blocks: list[tuple[datetime, list[str]]] = []
    current: list[str] = []
    for line in lines:
        match = POSTED.match(line.strip())
        if match:
            blocks.append((_time(match.group(1)), current))
            current = []
        else:
            current.append(line)
    affected = current[-1].strip()
    report_posted = blocks[0][0]
    updates = []
    start = end = None
    for posted, body_lines in blocks[1:]:
        kept = []
        for line in body_lines:
            if line.startswith("Start Time: "):
                start = datetime.strptime(line[12:], "%m/%d/%Y %H:%M UTC").replace(tzinfo=UTC)
            elif line.startswith("End Time: "):
                end = datetime.strptime(line[10:], "%m/%d/%Y %H:%M UTC").replace(tzinfo=UTC)
            elif not line.startswith("Total duration:"):
                kept.append(line)
        updates.append(SeedUpdate(posted, "\n".join(kept).strip()))
    updates.reverse()
    assert start is not None and end is not None
    return Seed(title, summary, impact, remediation, report_posted, updates, start, end, affected)


def cli(db: Path, *argv: str) -> int:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["status", "--db", str(db), *argv])
    return int(args.handler(args, None))


def page_text(body: str) -> str:
    text = re.sub(r"<[^>]+>", " ", body)
    return re.sub(r"\s+", " ", html.unescape(text))


def flat(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


async def test_seed_incident_recreated_through_the_cli(tmp_path, capsys):
    seed = parse_seed()
    assert len(seed.updates) == 13
    db = tmp_path / "status.sqlite3"
    assert cli(db, "init", "--cluster", "Cluster A") == 0

    first = seed.updates[0]
    assert (
        cli(
            db, "incident", "open", seed.title, "--impact", "major",
            "--body", first.body, "--at", first.posted.isoformat(),
            "--started-at", seed.start.isoformat(),
            "--component", "cluster-a-webmail=major_outage",
        )
        == 0
    )  # fmt: skip
    for n, update in enumerate(seed.updates[1:-1], start=1):
        argv = ["incident", "update", "1", "--status", STATUSES[n], "--body", update.body,
                "--at", update.posted.isoformat()]  # fmt: skip
        if WEBMAIL[n] != WEBMAIL[n - 1]:
            argv += ["--component", f"cluster-a-webmail={WEBMAIL[n]}"]
        assert cli(db, *argv) == 0
    last = seed.updates[-1]
    assert (
        cli(
            db, "incident", "resolve", "1", "--body", last.body,
            "--at", last.posted.isoformat(), "--ended-at", seed.end.isoformat(),
        )
        == 0
    )  # fmt: skip
    assert "Total duration: 4 days 3 hours 46 minutes" in capsys.readouterr().out
    assert (
        cli(
            db, "incident", "report", "1", "--summary", seed.summary,
            "--client-impact", seed.client_impact, "--remediation", seed.remediation,
            "--at", seed.report_posted.isoformat(),
        )
        == 0
    )  # fmt: skip

    svc = StatusService.open(StatusSettings(database=db, page_name="OpenSRS"), probes=[])
    try:
        transport = httpx.ASGITransport(app=create_app(svc))
        async with httpx.AsyncClient(transport=transport, base_url="http://s.test") as client:
            response = await client.get("/incidents/1")
            api = (await client.get("/api/v2/incidents.json")).json()
    finally:
        svc.close()
    assert response.status_code == 200
    text = page_text(response.text)

    # The report first, as on the seed page.
    assert "Incident Report for OpenSRS" in text
    assert flat(seed.summary) in text
    assert flat(seed.client_impact) in text
    assert "Posted May 10, 2024 - 14:37 UTC" in text
    # Every update, newest first, each with its body and posted time.
    position = text.index("Posted May 10, 2024 - 14:37 UTC")
    for update in reversed(seed.updates):
        stamp = f"Posted {update.posted:%b %d, %Y - %H:%M} UTC"
        body_at = text.index(flat(update.body), position)
        stamp_at = text.index(stamp, body_at)
        position = stamp_at
    assert "Start time: May 02, 2024 - 09:00 UTC" in text
    assert "End time: May 06, 2024 - 12:46 UTC" in text
    assert "Total duration: 4 days 3 hours 46 minutes" in text
    assert seed.affected == "This incident affected: Hosted Email (Cluster A, Webmail)."
    assert seed.affected in text

    # The API has the same story.
    (incident,) = api["incidents"]
    assert incident["name"] == "Cluster A Outage"
    assert incident["status"] == "resolved"
    assert incident["impact"] == "major"
    assert incident["started_at"] == "2024-05-02T09:00:00+00:00"
    assert incident["resolved_at"] == "2024-05-06T12:46:00+00:00"
    displayed = [u["display_at"] for u in incident["incident_updates"]]
    assert displayed == sorted(displayed, reverse=True)
    assert len(displayed) == 13
    assert [u["status"] for u in reversed(incident["incident_updates"])] == STATUSES
    assert incident["components"][0]["id"] == "cluster-a-webmail"
    # Resolving put Webmail back to operational.
    assert incident["incident_updates"][0]["affected_components"] == [
        {
            "code": "cluster-a-webmail",
            "name": "Webmail",
            "old_status": "degraded_performance",
            "new_status": "operational",
        }
    ]


def test_cli_show_prints_the_timeline(tmp_path, capsys):
    db = tmp_path / "s.sqlite3"
    assert cli(db, "init", "--cluster", "Cluster A") == 0
    assert cli(db, "incident", "open", "Slow webmail", "--body", "Looking.",
               "--at", "2024-05-02T09:11Z", "--started-at", "2024-05-02T09:00Z") == 0  # fmt: skip
    assert cli(db, "incident", "resolve", "1", "--body", "Fixed.", "--at", "2024-05-02 10:02") == 0
    capsys.readouterr()
    assert cli(db, "incident", "show", "1") == 0
    out = capsys.readouterr().out
    assert out.index("Fixed.") < out.index("Looking.")
    assert "Total duration: 1 hour 2 minutes" in out
    assert cli(db, "incident", "update", "1", "--body", "more") == 1  # resolved already
    assert cli(db, "incident", "show", "99") == 3
