"""Subscribers, mail through a real (in-test) SMTP relay, webhooks with
signatures and back-off; the clock is hand-set, nothing sleeps."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from status_servers import HttpReceiver, SmtpSink

from mailwarden.web.status.model import ComponentStatus as S
from mailwarden.web.status.model import Impact, StatusError
from mailwarden.web.status.notify import Notifier, TemporaryFailure, UrllibPoster, verify_signature
from mailwarden.web.status.settings import RelaySettings, StatusSettings


@pytest.fixture
async def sink():
    server = await SmtpSink().start()
    yield server
    await server.stop()


@pytest.fixture
async def receiver():
    server = await HttpReceiver().start()
    yield server
    await server.stop()


@pytest.fixture
def relay_notifier(service, clock, sink):
    """A notifier on the service's database that sends through the SMTP sink."""
    settings = StatusSettings(
        public_url="https://status.example.test",
        page_name="Example Status",
        relay=RelaySettings(host="127.0.0.1", port=sink.port, sender="status@example.test"),
    )
    notifier = Notifier(service.db, clock, settings)
    # Route the service's listeners to this notifier instead of the recording one.
    service.incidents._listeners = [notifier]
    service.maintenances._listeners = [notifier]
    service.notifier = notifier
    return notifier


async def test_double_opt_in_notice_and_one_click_unsubscribe(
    service, client, clock, sink, relay_notifier
):
    response = await client.post(
        "/subscribe", data={"email": "ann@example.org", "component": ["cluster-a-webmail"]}
    )
    assert response.status_code == 200
    service.open_incident("op", "Quiet", "before confirming", components={})
    report = await relay_notifier.deliver_due()
    assert (report.delivered, report.skipped) == (1, 0)  # no notice before opt-in
    ((rcpt, confirm),) = sink.messages
    assert rcpt == "ann@example.org"
    assert "List-Unsubscribe" not in confirm
    link = re.search(
        r"https://status\.example\.test(/subscribe/confirm/\S+)", confirm.get_content()
    )
    path = link.group(1)
    # GET only shows a button (link scanners); POST confirms.
    assert "Confirm subscription" in (await client.get(path)).text
    assert relay_notifier.subscribers()[0].confirmed_at is None
    await client.post(path)
    assert relay_notifier.subscribers()[0].active

    # A notice for an incident touching Webmail arrives; one on IMAP only does not.
    service.open_incident(
        "op", "Webmail slow", "We are **looking**.", impact=Impact.MINOR,
        components={"cluster-a-webmail": S.DEGRADED_PERFORMANCE},
    )  # fmt: skip
    service.open_incident("op", "IMAP only", "x", components={"cluster-a-imap": S.PARTIAL_OUTAGE})
    await relay_notifier.deliver_due()
    assert len(sink.messages) == 2
    _, notice = sink.messages[1]
    assert notice["Subject"] == "[Example Status] Webmail slow - Investigating"
    assert notice["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsubscribe = notice["List-Unsubscribe"].strip().strip("<>")
    assert unsubscribe.startswith("https://status.example.test/unsubscribe/")
    assert "This incident affects: Hosted Email (Cluster A, Webmail)." in notice.get_content()

    # RFC 8058: one POST with List-Unsubscribe=One-Click, no cookies, no questions.
    path = unsubscribe.removeprefix("https://status.example.test")
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    response = await client.post(path, content=b"List-Unsubscribe=One-Click", headers=form)
    assert response.status_code == 200
    assert relay_notifier.subscribers()[0].unsubscribed_at is not None
    service.open_incident("op", "After", "x", components={"cluster-a-webmail": S.MAJOR_OUTAGE})
    await relay_notifier.deliver_due()
    assert len(sink.messages) == 2


async def test_hard_bounce_quarantines_the_address(service, clock, sink, relay_notifier):
    sub = relay_notifier.subscribe("bounce@example.org")
    report = await relay_notifier.deliver_due()
    assert report.failed == 1
    sub = relay_notifier.subscriber(sub.id)
    assert sub.quarantined_at is not None and "550" in sub.quarantine_reason
    with pytest.raises(StatusError, match="bounced"):
        relay_notifier.subscribe("bounce@example.org")
    relay_notifier.release(sub.id)
    assert relay_notifier.subscriber(sub.id).quarantined_at is None


async def test_relay_down_is_retried_with_back_off(service, clock, relay_notifier, sink):
    relay_notifier.subscribe("ann@example.org")
    await sink.stop()  # nothing listens on the relay port now
    report = await relay_notifier.deliver_due()
    assert report.retried == 1
    row = service.db.one("SELECT * FROM outbox")
    assert row["attempts"] == 1
    assert row["next_attempt_at"] == (clock.now + timedelta(minutes=1)).isoformat()


def test_subscribe_refuses_nonsense(service):
    for bad in ["", "no-at-sign", "a@b", "a b@example.org"]:
        with pytest.raises(StatusError):
            service.notifier.subscribe(bad)


async def test_webhooks_are_signed_and_retried_with_back_off(service, clock, receiver):
    service.notifier._poster = UrllibPoster(timeout=5)
    hook = service.notifier.add_webhook(receiver.url + "/hook")
    receiver.answers = [500, 503]
    incident = service.open_incident("op", "Outage", "Down.", impact=Impact.MAJOR)

    assert (await service.notifier.deliver_due()).retried == 1
    clock.advance(seconds=59)
    assert (await service.notifier.deliver_due()).retried == 0  # not due yet
    clock.advance(seconds=1)
    assert (await service.notifier.deliver_due()).retried == 1  # second failure
    clock.advance(minutes=1, seconds=59)
    assert (await service.notifier.deliver_due()).delivered == 0  # back-off doubled: 2 min
    clock.advance(seconds=1)
    assert (await service.notifier.deliver_due()).delivered == 1
    assert len(receiver.requests) == 3

    line, headers, body = receiver.requests[-1]
    assert line == "POST /hook"
    assert headers["x-mailwarden-event"] == "incident.investigating"
    assert verify_signature(hook.secret, headers["x-mailwarden-signature"], body)
    assert not verify_signature("wrong", headers["x-mailwarden-signature"], body)
    assert not verify_signature(hook.secret, headers["x-mailwarden-signature"], body + b" ")
    payload = json.loads(body)
    assert payload["incident"]["id"] == str(incident.id)
    assert payload["incident"]["incident_updates"][0]["body"] == "Down."


async def test_webhook_gives_up_after_max_attempts(service, clock, poster):
    def failing(url, body, headers):
        raise TemporaryFailure("HTTP 500")

    poster.post = failing
    service.notifier.add_webhook("https://hooks.example.test/x")
    service.open_incident("op", "Outage", "Down.")
    failed = 0
    for _ in range(20):
        report = await service.notifier.deliver_due()
        failed += report.failed
        clock.advance(hours=7)
    assert failed == 1
    assert service.notifier.pending() == 0


async def test_maintenance_events_reach_subscribers(service, clock, sender):
    sub = service.notifier.subscribe("ops@example.org", ["cluster-a-imap"])
    service.notifier.confirm(sub.token)
    start = clock.now + timedelta(days=8)
    service.schedule_maintenance(
        "op", "Storage", start, start + timedelta(hours=2), components=["cluster-a-imap"]
    )
    clock.set(start - timedelta(hours=24))
    await service.tick()
    clock.set(start - timedelta(hours=1))
    await service.tick()
    clock.set(start)
    await service.tick()
    clock.set(start + timedelta(hours=2))
    await service.tick()
    subjects = [message["Subject"] for _, message in sender.sent]
    assert subjects == [
        "Confirm your subscription to Example Status",
        "[Example Status] Scheduled maintenance: Storage",
        "[Example Status] Reminder: maintenance starts in 24 hours: Storage",
        "[Example Status] Reminder: maintenance starts in 1 hour: Storage",
        "[Example Status] Maintenance in progress: Storage",
        "[Example Status] Maintenance completed: Storage",
    ]
