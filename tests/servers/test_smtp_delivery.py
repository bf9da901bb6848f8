"""Unit tests of the delivery helpers: trace headers, submission rules, sending limits."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "proto" / "smtp"))

from smtp_harness import TEST_HASH, populate

from mailwarden.auth.passwords import PasswordHasher
from mailwarden.delivery import Delivery, SendingLimits
from mailwarden.delivery.headers import (
    MAX_HOPS,
    count_received,
    received_header,
    return_path_header,
    with_protocol,
)
from mailwarden.delivery.submission import from_header_owned, owned_keys
from mailwarden.mail.address import Address
from mailwarden.proto.smtp import Envelope, MailParams, Recipient
from mailwarden.proto.smtp import replies as r
from mailwarden.store.base import AccountId
from mailwarden.store.sqlite import SqliteStore

WHEN = datetime(2024, 5, 2, 9, 11, 0, tzinfo=UTC)


def test_with_protocol_names() -> None:
    assert with_protocol(esmtp=False, tls=True, authenticated=True, smtputf8=False) == "SMTP"
    assert with_protocol(esmtp=True, tls=False, authenticated=False, smtputf8=False) == "ESMTP"
    assert with_protocol(esmtp=True, tls=True, authenticated=True, smtputf8=False) == "ESMTPSA"
    assert with_protocol(esmtp=True, tls=True, authenticated=False, smtputf8=True) == "UTF8SMTPS"


def test_received_header_is_folded_and_sanitised() -> None:
    header = received_header(
        helo="evil\r\nX-Injected: yes (",
        peer_ip="192.0.2.1",
        hostname="mx.test",
        protocol="ESMTP",
        queue_id="abc123",
        when=WHEN,
        recipient=Address("alice", "example.test"),
    )
    assert header == (
        b"Received: from evil??X-Injected:?yes?? ([192.0.2.1])\r\n"
        b"\tby mx.test with ESMTP id abc123\r\n"
        b"\tfor <alice@example.test>; Thu, 02 May 2024 09:11:00 +0000\r\n"
    )
    assert received_header(
        helo="", peer_ip="::1", hostname="mx.test", protocol="SMTP", queue_id="q", when=WHEN
    ).startswith(b"Received: from unknown ([::1])\r\n")
    assert return_path_header(None) == b"Return-Path: <>\r\n"
    assert return_path_header(Address("a", "b.test")) == b"Return-Path: <a@b.test>\r\n"


def test_from_header_ownership() -> None:
    owned = owned_keys(["Alice@Example.test", "info@example.test", "not an address"])
    assert owned == frozenset({"alice@example.test", "info@example.test"})
    assert from_header_owned(b"From: A <alice@example.test>\r\n\r\nbody", owned)
    assert from_header_owned(b"From: ALICE@example.test, info@example.test\r\n\r\n", owned)
    assert from_header_owned(b"Subject: no from\r\n\r\nFrom: x@y.test\r\n", owned)
    assert not from_header_owned(b"From: bob@example.test\r\n\r\n", owned)
    assert not from_header_owned(
        b"From: alice@example.test\r\nFrom: bob@example.test\r\n\r\n", owned
    )
    assert not from_header_owned(b"From: undisclosed\r\n\r\n", owned)
    assert not from_header_owned(b"From: \r\n\r\n", owned)


def test_sending_limits_slide() -> None:
    limits = SendingLimits(per_hour=2, per_day=3)
    a, b = AccountId(1), AccountId(2)
    t = 1_000_000.0
    assert limits.allows(a, t)
    limits.record(a, t)
    limits.record(a, t + 1)
    assert not limits.allows(a, t + 2)
    assert limits.allows(b, t + 2)  # per account
    assert limits.allows(a, t + 3601)
    limits.record(a, t + 3601)
    assert not limits.allows(a, t + 7300)  # three in the last day
    assert limits.allows(a, t + 86401)


async def test_recipient_decisions(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "db.sqlite", tmp_path / "blobs")
    try:
        accounts = await populate(store, PasswordHasher(TEST_HASH))
        delivery = Delivery(store, "mx.test")
        alice = Address("alice", "example.test")
        ok = await delivery.check_recipient(alice, relay_allowed=False, size=None)
        assert ok.accepted
        assert ok.accounts == (accounts["alice"],)
        relay = await delivery.check_recipient(
            Address("x", "remote.test"), relay_allowed=False, size=None
        )
        assert relay.reply == r.R550_RELAY_DENIED
        queued = await delivery.check_recipient(
            Address("x", "remote.test"), relay_allowed=True, size=None
        )
        assert queued.accepted
        assert queued.external == ("x@remote.test",)
        unknown = await delivery.check_recipient(
            Address("nobody", "example.test"), relay_allowed=True, size=None
        )
        assert unknown.reply == r.R550_NO_SUCH_USER
        full = await delivery.check_recipient(
            Address("full", "example.test"), relay_allowed=False, size=10
        )
        assert full.reply == r.R452_QUOTA
        await store.set_quota(accounts["bob"], quota_bytes=100, quota_messages=0)
        too_big = await delivery.check_recipient(
            Address("bob", "example.test"), relay_allowed=False, size=101
        )
        assert too_big.reply == r.R552_QUOTA
    finally:
        await store.close()


def test_count_received_reads_only_the_header_section() -> None:
    assert count_received(b"Subject: x\r\n\r\nReceived: in the body\r\n") == 0
    head = b"Received: a\r\n\tfolded Received: b\r\nRECEIVED : c\r\nX-Received: d\r\n"
    assert count_received(head + b"\r\nReceived: e\r\n") == 2
    assert count_received(b"received:x\r\nreceived:y") == 2  # no body at all


async def test_mail_loops_are_refused(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "db.sqlite", tmp_path / "blobs")
    try:
        accounts = await populate(store, PasswordHasher(TEST_HASH))
        delivery = Delivery(store, "mx.test")
        alice = Address("alice", "example.test")
        decision = await delivery.check_recipient(alice, relay_allowed=False, size=None)
        envelope = Envelope(
            helo="c.test",
            esmtp=True,
            tls=False,
            authenticated=None,
            sender=Address("s", "remote.test"),
            params=MailParams(),
            recipients=(Recipient(alice),),
        )
        hop = b"Received: from a by b; Thu, 02 May 2024 09:11:00 +0000\r\n"
        body = b"Subject: loop\r\n\r\nround and round\r\n"
        looped = await delivery.deliver(
            envelope, hop * (MAX_HOPS + 1) + body, [decision], peer_ip="192.0.2.1"
        )
        assert looped == r.R554_TOO_MANY_HOPS
        folder = await store.get_folder(accounts["alice"], "INBOX")
        assert await store.list_entries(accounts["alice"], folder.id) == []
        ok = await delivery.deliver(envelope, hop * MAX_HOPS + body, [decision], peer_ip="::1")
        assert ok == r.R250_DATA_OK
        assert len(await store.list_entries(accounts["alice"], folder.id)) == 1
    finally:
        await store.close()
