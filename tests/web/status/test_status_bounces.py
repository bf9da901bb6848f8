"""Late hard bounces: DSNs (RFC 3464) read from a bounce mailbox quarantine
subscribers; delays, soft failures and other mail change nothing."""

from __future__ import annotations

import asyncio
import poplib
import smtplib
import ssl
from dataclasses import replace
from datetime import timedelta

import pytest
from conftest import CHEAP_HASHER
from mail_node import require_modules, running_node

from mailwarden.admin import ops
from mailwarden.auth.passwords import PasswordHasher
from mailwarden.web.status.bounces import HardBounce, parse_dsn
from mailwarden.web.status.service import StatusService
from mailwarden.web.status.settings import BounceSettings, StatusSettings


def dsn(*recipients: tuple[str, str, str], report_type: str = "delivery-status") -> bytes:
    """A DSN as relays write it: text part, delivery-status part, returned headers."""
    blocks = "".join(
        f"\r\nFinal-Recipient: rfc822; {address}\r\nAction: {action}\r\n"
        f"Status: {status}\r\nDiagnostic-Code: smtp; 550 5.1.1 <{address}>:\r\n"
        f"    user unknown\r\n"
        for address, action, status in recipients
    )
    return (
        "From: MAILER-DAEMON@relay.example.org\r\n"
        "To: status-bounces@example.test\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type={report_type}; boundary="B"\r\n'
        "\r\n--B\r\nContent-Type: text/plain\r\n\r\nI'm sorry to have to inform you...\r\n"
        "\r\n--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; relay.example.org\r\nArrival-Date: Mon, 1 Apr 2024 12:00:00 +0000\r\n"
        f"{blocks}"
        "\r\n--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        "From: status@example.test\r\nSubject: [Example Status] Investigating\r\n"
        "\r\n--B--\r\n"
    ).encode()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (dsn(("Ann@Example.org", "failed", "5.1.1")),
         [HardBounce("ann@example.org", "5.1.1",
                     "smtp; 550 5.1.1 <Ann@Example.org>: user unknown")]),
        (dsn(("a@example.org", "failed", "5.2.2"), ("b@example.org", "delayed", "4.4.1"),
             ("c@example.org", "failed", "4.4.7"), ("d@example.org", "delivered", "2.0.0")),
         [HardBounce("a@example.org", "5.2.2", "smtp; 550 5.1.1 <a@example.org>: user unknown")]),
        (dsn(("b@example.org", "delayed", "4.4.1")), []),
        (dsn(("a@example.org", "failed", "5.1.1"), report_type="disposition-notification"), None),
        (b"From: someone@example.org\r\nSubject: Out of office\r\n\r\nAway until May.\r\n", None),
        (b"\xff\xfe not mail at all", None),
    ],
)  # fmt: skip
def test_parse_dsn(raw, expected):
    assert parse_dsn(raw) == expected


class FakeMailbox:
    def __init__(self, messages):
        self.messages = list(messages)
        self.fetches = 0

    def fetch(self):
        self.fetches += 1
        taken, self.messages = self.messages, []
        return taken


async def test_bounces_quarantine_subscribers_on_schedule(tmp_path, clock, settings):
    mailbox = FakeMailbox([dsn(("ann@example.org", "failed", "5.1.1")), b"Subject: hi\r\n\r\nx"])
    svc = StatusService.open(
        replace(settings, bounces=BounceSettings("b@example.test", interval=timedelta(minutes=5))),
        clock=clock,
        database=str(tmp_path / "s.sqlite3"),
        probes=[],
        hasher=CHEAP_HASHER,
        bounces=mailbox,
    )
    try:
        for address in ("ann@example.org", "bob@example.org"):
            svc.notifier.confirm(svc.notifier.subscribe(address).token)
        report = await svc.tick()
        assert report.quarantined == ("ann@example.org",)
        ann, bob = sorted(svc.notifier.subscribers(), key=lambda s: s.email)
        assert ann.quarantined_at == clock.now and not ann.active
        assert ann.quarantine_reason.startswith("bounced 5.1.1 smtp; 550 5.1.1")
        assert bob.active
        entry = svc.audit.entries()[0]
        assert (entry.action, entry.target) == ("subscriber.quarantine", f"subscriber {ann.id}")
        clock.advance(minutes=4)
        await svc.tick()
        assert mailbox.fetches == 1  # not due yet
        clock.advance(minutes=1)
        await svc.tick()
        assert mailbox.fetches == 2
    finally:
        svc.close()


def test_bounce_settings_come_from_the_status_table():
    settings = StatusSettings.from_mapping(
        {"relay": {"return_path": "bounces@example.net"},
         "bounces": {"account": "bounces@example.net", "port": 995, "interval": "10m"}}
    )  # fmt: skip
    assert settings.relay.return_path == "bounces@example.net"
    assert settings.bounces == BounceSettings(
        "bounces@example.net", port=995, interval=timedelta(minutes=10)
    )
    assert StatusSettings().bounces is None


async def test_a_dsn_delivered_to_a_real_mailbox_quarantines(tmp_path, clock, settings):
    require_modules("mailwarden.servers.smtp", "mailwarden.servers.pop3")
    async with running_node(tmp_path / "node") as mail:
        hasher = PasswordHasher(ops.hash_params(mail.config))
        await ops.add_user(mail.node.store, hasher, "bounces@example.test", "bounce-secret-1")
        report = dsn(("ann@example.org", "failed", "5.1.1"))

        def relay_returns_the_notice():
            with smtplib.SMTP("127.0.0.1", mail.port("smtp"), timeout=10) as mx:
                mx.sendmail("", ["bounces@example.test"], report)  # null sender, as DSNs are

        await asyncio.to_thread(relay_returns_the_notice)
        bounces = BounceSettings(
            "bounces@example.test", "bounce-secret-1", "127.0.0.1", mail.port("pop3"),
            ca_file=str(mail.config.cert_path),
        )  # fmt: skip
        svc = StatusService.open(
            replace(settings, bounces=bounces),
            clock=clock,
            database=str(tmp_path / "s.sqlite3"),
            probes=[],
            hasher=CHEAP_HASHER,
        )
        try:
            svc.notifier.confirm(svc.notifier.subscribe("ann@example.org").token)
            assert (await svc.tick()).quarantined == ("ann@example.org",)

            def remaining() -> int:
                pop = poplib.POP3("127.0.0.1", mail.port("pop3"), timeout=10)
                pop.stls(ssl.create_default_context(cafile=str(mail.config.cert_path)))
                pop.user("bounces@example.test")
                pop.pass_("bounce-secret-1")
                count, _ = pop.stat()
                pop.quit()
                return count

            assert await asyncio.to_thread(remaining) == 0  # read and deleted
        finally:
            svc.close()
