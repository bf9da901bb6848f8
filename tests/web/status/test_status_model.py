"""Durations in words, time parsing, grouping phrases, settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mailwarden.web.status.components import affected_phrase
from mailwarden.web.status.model import (
    ComponentStatus,
    StatusError,
    duration_words,
    format_posted,
    parse_length,
    parse_time,
    worst,
)
from mailwarden.web.status.settings import StatusSettings


@pytest.mark.parametrize(
    ("length", "words"),
    [
        (timedelta(days=4, hours=3, minutes=46), "4 days 3 hours 46 minutes"),
        (datetime(2024, 5, 6, 12, 46) - datetime(2024, 5, 2, 9, 0), "4 days 3 hours 46 minutes"),
        (timedelta(days=1), "1 day"),
        (timedelta(hours=1, minutes=1), "1 hour 1 minute"),
        (timedelta(days=2, minutes=5), "2 days 5 minutes"),
        (timedelta(minutes=59, seconds=59), "59 minutes"),
        (timedelta(seconds=30), "0 minutes"),
        (timedelta(0), "0 minutes"),
        (timedelta(seconds=-5), "0 minutes"),
    ],
)
def test_duration_words(length, words):
    assert duration_words(length) == words


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-02T09:11Z", datetime(2024, 5, 2, 9, 11, tzinfo=UTC)),
        ("2024-05-02 09:11", datetime(2024, 5, 2, 9, 11, tzinfo=UTC)),
        ("2024-05-02T11:11:00+02:00", datetime(2024, 5, 2, 9, 11, tzinfo=UTC)),
        ("2024-05-02T09:11:07.5+00:00", datetime(2024, 5, 2, 9, 11, 7, tzinfo=UTC)),
    ],
)
def test_parse_time(text, expected):
    assert parse_time(text) == expected


@pytest.mark.parametrize("bad", ["", "yesterday", "2024-13-01", "09:11"])
def test_parse_time_rejects(bad):
    with pytest.raises(StatusError):
        parse_time(bad)


@pytest.mark.parametrize(
    ("text", "length"),
    [("2h", timedelta(hours=2)), ("90m", timedelta(minutes=90)), ("1h30m", timedelta(minutes=90)),
     ("1d", timedelta(days=1)), ("45min", timedelta(minutes=45))],
)  # fmt: skip
def test_parse_length(text, length):
    assert parse_length(text) == length


@pytest.mark.parametrize("bad", ["", "0h", "2x", "h", "-1h"])
def test_parse_length_rejects(bad):
    with pytest.raises(StatusError):
        parse_length(bad)


def test_posted_format():
    assert format_posted(datetime(2024, 5, 2, 9, 11, tzinfo=UTC)) == "May 02, 2024 - 09:11 UTC"


def test_worst_orders_by_severity():
    assert worst([]) is ComponentStatus.OPERATIONAL
    assert (
        worst([ComponentStatus.UNDER_MAINTENANCE, ComponentStatus.DEGRADED_PERFORMANCE])
        is ComponentStatus.DEGRADED_PERFORMANCE
    )
    assert worst(list(ComponentStatus)) is ComponentStatus.MAJOR_OUTAGE


def test_affected_phrase_groups(service):
    comps = {c.key: c for c in service.components.all()}
    webmail, imap = comps["cluster-a-webmail"], comps["cluster-a-imap"]
    assert affected_phrase([webmail]) == "Hosted Email (Cluster A, Webmail)"
    assert affected_phrase([webmail, imap]) == "Hosted Email (Cluster A, Webmail, IMAP)"
    billing = service.components.add("api", "API", group="Billing")
    lone = service.components.add("dns", "DNS")
    assert affected_phrase([billing, lone]) == "DNS, Billing (API)"


def test_settings_from_mapping_reads_and_reports_every_problem():
    settings = StatusSettings.from_mapping(
        {
            "database": "x.db",
            "min_notice": "3d",
            "reminders": ["24h", "60m"],
            "relay": {"host": "relay.test", "port": 587, "starttls": True},
            "nodes": [{"url": "http://n1:8080", "token": "t", "cluster": "cluster-a"}],
            "probes": [{"cluster": "cluster-a", "interval": 30}],
        }
    )
    assert settings.min_notice == timedelta(days=3)
    assert settings.reminders == (timedelta(hours=24), timedelta(minutes=60))
    assert settings.relay.port == 587
    assert settings.nodes[0].cluster == "cluster-a"
    assert settings.probes[0].interval == timedelta(seconds=30)
    with pytest.raises(StatusError) as err:
        StatusSettings.from_mapping({"colour": "red", "min_notice": "soon", "relay": {"hst": 1}})
    message = str(err.value)
    assert "status.colour" in message
    assert "min_notice" in message
    assert "relay.hst" in message


def test_the_relay_must_be_independent_of_the_cluster():
    probes = [{"cluster": "cluster-a", "host": "mail-a.example.net", "submission_port": 587}]
    nodes = [{"url": "https://10.0.0.5:8080", "cluster": "cluster-a"}]
    for relay, complaint in [
        ({"host": "mail-a.example.net", "port": 587}, "is the submission service of cluster-a"),
        ({"host": "mail-a.example.net", "port": 25}, "mail-a.example.net is a host of cluster-a"),
        ({"host": "10.0.0.5", "port": 25}, "10.0.0.5 is a host of cluster-a"),
    ]:
        with pytest.raises(StatusError, match=complaint):
            StatusSettings.from_mapping({"relay": relay, "probes": probes, "nodes": nodes})
    ok = StatusSettings.from_mapping(
        {"relay": {"host": "relay.example.org", "port": 587}, "probes": probes, "nodes": nodes}
    )
    assert ok.relay.host == "relay.example.org"
    # One machine (a demo): loopback may be shared, the probed submission port may not.
    local = [{"cluster": "cluster-a", "host": "127.0.0.1", "submission_port": 2587}]
    assert StatusSettings.from_mapping({"probes": local}).relay.host == "127.0.0.1"
    with pytest.raises(StatusError, match="submission service"):
        StatusSettings.from_mapping({"probes": local, "relay": {"port": 2587}})


def test_the_status_package_sees_the_cluster_only_from_outside():
    """It may run on another host: nothing of the mail node (store, auth, servers)
    is imported, only the status package itself and third-party libraries."""
    import ast
    from pathlib import Path

    import mailwarden.web.status.app as status_app

    package = Path(status_app.__file__).parent
    modules = sorted(package.glob("*.py"))
    assert len(modules) >= 15
    for module in modules:
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                if name.startswith("mailwarden"):
                    assert name.startswith("mailwarden.web.status"), (module.name, name)
