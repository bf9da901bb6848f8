"""Reports after 250 and the postmaster, over real sockets and on Delivery itself.

A mailbox that fills up between RCPT and the end of DATA is skipped by the
store; the sender then hears about it in a delivery status notification
(RFC 3464) that honours NOTIFY, RET, ENVID and ORCPT (RFC 3461).  Mailboxes
are filled "in between" by lowering a quota while the client waits after RCPT.

The postmaster (RFC 5321 §4.5.1): ``<Postmaster>`` without a domain, and
postmaster at our host name or at any hosted domain, reach someone.
"""

from __future__ import annotations

import email
import email.policy
import json
import sys
from collections.abc import Awaitable, Callable
from email.message import Message
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "proto" / "smtp"))

from smtp_harness import TEST_HASH, Client, SmtpNode, client_tls_context, populate, smtp_node

from mailwarden.auth.passwords import PasswordHasher
from mailwarden.delivery import Delivery
from mailwarden.mail.address import Address
from mailwarden.proto.smtp import (
    Envelope,
    MailParams,
    Notify,
    RcptParams,
    Recipient,
    postmaster_address,
)
from mailwarden.proto.smtp import replies as r
from mailwarden.store.base import AccountId
from mailwarden.store.sqlite import SqliteStore

BODY = b"From: s@example.org\r\nSubject: to several\r\n\r\nhello\r\n"


async def greet(port: int, *, tls: bool = False) -> Client:
    client = await Client.connect(port, tls=tls)
    assert (await client.reply()).startswith(b"220 ")
    assert (await client.command(b"EHLO client.example.org")).startswith(b"250-")
    return client


async def transact(
    client: Client,
    mail: bytes,
    rcpts: list[bytes],
    *,
    between: Callable[[], Awaitable[object]] | None = None,
    body: bytes = BODY,
) -> bytes:
    """One transaction; ``between`` runs after the last RCPT, before DATA."""
    assert (await client.command(b"MAIL FROM:" + mail)).startswith(b"250")
    for rcpt in rcpts:
        reply = await client.command(b"RCPT TO:" + rcpt)
        assert reply.startswith(b"250"), reply
    if between is not None:
        await between()
    assert (await client.command(b"DATA")).startswith(b"354")
    return await client.command(body + b".")


def fill(node: SmtpNode, user: str) -> Callable[[], Awaitable[object]]:
    """Make ``user``'s mailbox too small for anything (quota of one octet)."""
    return lambda: node.store.set_quota(node.accounts[user], quota_bytes=1, quota_messages=0)


def report_parts(raw: bytes) -> tuple[Message, list[Message], Message]:
    """The report's header, its recipient blocks and its returned part."""
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    assert msg.get_content_type() == "multipart/report"
    _text, status, returned = msg.get_payload()  # type: ignore[misc]
    blocks = status.get_payload()
    return msg, blocks, returned


async def test_partial_failure_reported_to_a_remote_sender(tmp_path: Path) -> None:
    async with smtp_node(tmp_path) as node:
        client = await greet(node.port)
        reply = await transact(
            client,
            b"<s@example.org> RET=HDRS ENVID=env+2B1",
            [
                b"<alice@example.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;Alice@example.test",
                b"<bob@example.test>",
            ],
            between=fill(node, "bob"),
        )
        assert reply == b"250 2.0.0 Message accepted\r\n"
        await client.close()
        assert len(await node.inbox("alice")) == 1
        assert await node.inbox("bob") == []
        (queued,) = await node.store.list_queue()
        assert (queued.mail_from, queued.recipients) == ("", ("s@example.org",))
        assert queued.account_id is None
        assert json.loads(queued.dsn)["recipients"] == {
            "s@example.org": {"notify": None, "orcpt": None}
        }
        _, raw = await node.store.get_queued(queued.id)
        msg, blocks, returned = report_parts(raw)
        assert msg["To"] == "<s@example.org>"
        assert msg["Subject"] == "Delivery Status Notification"
        assert blocks[0]["Original-Envelope-Id"] == "env+1"
        assert blocks[0]["Reporting-MTA"] == "dns;mx.example.test"
        alice, bob = blocks[1:]
        assert alice["Original-Recipient"] == "rfc822;Alice@example.test"
        assert (alice["Action"], alice["Status"]) == ("delivered", "2.0.0")
        assert bob["Original-Recipient"] is None
        assert (bob["Final-Recipient"], bob["Action"], bob["Status"]) == (
            "rfc822;bob@example.test",
            "failed",
            "5.2.2",
        )
        # RET=HDRS: our Received: header and the sender's headers, no body.
        assert returned.get_content_type() == "text/rfc822-headers"
        assert b"Subject: to several\r\n" in raw and b"hello" not in raw


async def test_no_report_when_none_is_asked_or_possible(tmp_path: Path) -> None:
    async with smtp_node(tmp_path) as node:
        client = await greet(node.port)
        # NOTIFY=NEVER for the full mailbox; the default (no SUCCESS) for the other.
        reply = await transact(
            client,
            b"<s@example.org>",
            [b"<alice@example.test>", b"<bob@example.test> NOTIFY=NEVER"],
            between=fill(node, "bob"),
        )
        assert reply.startswith(b"250")
        # The null sender never gets a report (RFC 3461 §6.1): no bounce loops.
        await node.store.set_quota(node.accounts["bob"], quota_bytes=0, quota_messages=0)
        reply = await transact(
            client,
            b"<>",
            [b"<alice@example.test>", b"<bob@example.test>"],
            between=fill(node, "bob"),
        )
        assert reply.startswith(b"250")
        # NOTIFY=DELAY only: a failure is not a delay.
        await node.store.set_quota(node.accounts["bob"], quota_bytes=0, quota_messages=0)
        reply = await transact(
            client,
            b"<s@example.org>",
            [b"<alice@example.test>", b"<bob@example.test> NOTIFY=DELAY"],
            between=fill(node, "bob"),
        )
        assert reply.startswith(b"250")
        # Everybody full: the client hears 452 and no report is needed.
        reply = await transact(
            client, b"<s@example.org>", [b"<bob@example.test>"], between=fill(node, "bob")
        )
        assert reply.startswith(b"452 4.2.2")
        await client.close()
        assert len(await node.inbox("alice")) == 3
        assert await node.store.list_queue() == []


async def test_local_sender_gets_the_report_in_its_inbox(tmp_path: Path) -> None:
    async with smtp_node(tmp_path) as node:
        client = await greet(node.submission_port)
        assert (await client.command(b"STARTTLS")).startswith(b"220")
        await client.writer.start_tls(client_tls_context())
        await client.command(b"EHLO client.example.org")
        plain = b"AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABzZWNyZXQ="
        assert (await client.command(plain)).startswith(b"235")
        reply = await transact(
            client,
            b"<alice@example.test>",
            [b"<bob@example.test>", b"<friend@remote.example>"],
            between=fill(node, "bob"),
            body=b"From: alice@example.test\r\nSubject: out\r\n\r\nbig news\r\n",
        )
        assert reply.startswith(b"250")
        await client.close()
        # The remote copy is queued as usual; the report is not queued but
        # delivered to alice, from the null sender.
        (queued,) = await node.store.list_queue()
        assert queued.mail_from == "alice@example.test"
        (report,) = await node.inbox("alice")
        assert report.startswith(b"Return-Path: <>\r\nFrom: Mail Delivery System <MAILER-DAEMON@")
        msg, blocks, returned = report_parts(report)
        assert msg["Subject"] == "Undelivered Mail Returned to Sender"
        (bob,) = blocks[1:]
        assert (bob["Final-Recipient"], bob["Action"]) == ("rfc822;bob@example.test", "failed")
        # No RET: the whole message comes back.
        assert returned.get_content_type() == "message/rfc822"
        assert b"big news" in report


async def test_bare_postmaster_over_the_socket(tmp_path: Path) -> None:
    # mx.example.test is not hosted; example.test has postmaster -> alice.
    async with smtp_node(tmp_path) as node:
        client = await greet(node.port)
        reply = await transact(
            client,
            b"<s@example.org>",
            [b"<Postmaster>", b"<POSTMASTER@mx.example.test>"],
            body=b"Subject: abuse report\r\n\r\nlook at this\r\n",
        )
        assert reply.startswith(b"250")
        assert (await client.command(b"MAIL FROM:<s@example.org>")).startswith(b"250")
        refused = await client.command(b"RCPT TO:<postmaster@elsewhere.example>")
        assert refused == b"550 5.7.1 Relaying denied\r\n"
        await client.close()
        (stored,) = await node.inbox("alice")
        assert b"\tfor <" not in stored  # two recipients: no "for" clause
        assert stored.endswith(b"Subject: abuse report\r\n\r\nlook at this\r\n")


# --- Delivery directly: aliases and the postmaster rule ----------------------------------


@pytest.fixture
async def world(tmp_path: Path):  # type: ignore[no-untyped-def]
    store = await SqliteStore.open(tmp_path / "db.sqlite", tmp_path / "blobs")
    try:
        accounts = await populate(store, PasswordHasher(TEST_HASH))
        yield store, accounts
    finally:
        await store.close()


def envelope(sender: str | None, *recipients: Recipient) -> Envelope:
    return Envelope(
        helo="c.example.org",
        esmtp=True,
        tls=False,
        authenticated=None,
        sender=Address.parse(sender) if sender else None,
        params=MailParams(),
        recipients=recipients,
    )


async def test_alias_with_a_full_member_is_expanded_not_failed(world) -> None:  # type: ignore[no-untyped-def]
    store, accounts = world
    await store.add_alias("team@example.test", ["alice@example.test", "bob@example.test"])
    delivery = Delivery(store, "mx.example.test")
    team = Recipient(Address("team", "example.test"), RcptParams(notify=(Notify.SUCCESS,)))
    decision = await delivery.check_recipient(team.address, relay_allowed=False, size=None)
    assert set(decision.accounts) == {accounts["alice"], accounts["bob"]}
    await store.set_quota(accounts["bob"], quota_bytes=1, quota_messages=0)
    reply = await delivery.deliver(
        envelope("carol@example.org", team), BODY, [decision], peer_ip="192.0.2.1"
    )
    assert reply == r.R250_DATA_OK
    (queued,) = await store.list_queue()
    _, raw = await store.get_queued(queued.id)
    _, blocks, _ = report_parts(raw)
    (block,) = blocks[1:]
    # The alias is reported, never the mailboxes behind it.
    assert (block["Final-Recipient"], block["Action"]) == ("rfc822;team@example.test", "expanded")
    assert b"bob@" not in raw.split(b"\r\n\r\n", 1)[1].split(b"Received:")[0]


async def test_expanded_alias_passes_no_success_request_on(world) -> None:  # type: ignore[no-untyped-def]
    store, _ = world
    await store.add_alias("list@example.test", ["alice@example.test", "x@remote.example"])
    await store.add_alias("only@example.test", ["y@remote.example"])
    delivery = Delivery(store, "mx.example.test")
    success = RcptParams(notify=(Notify.SUCCESS,))
    both = RcptParams(notify=(Notify.SUCCESS, Notify.FAILURE))
    rcpts = (
        Recipient(Address("list", "example.test"), success),
        Recipient(Address("only", "example.test"), both),
    )
    decisions = [
        await delivery.check_recipient(rc.address, relay_allowed=False, size=None) for rc in rcpts
    ]
    reply = await delivery.deliver(
        envelope("s@example.org", *rcpts), BODY, decisions, peer_ip="192.0.2.1"
    )
    assert reply == r.R250_DATA_OK
    forward, report = sorted(await store.list_queue(), key=lambda q: q.mail_from == "")
    assert json.loads(forward.dsn)["recipients"] == {
        # The list was reported "expanded"; its remote member reports only failure.
        "x@remote.example": {"notify": ["NEVER"], "orcpt": "rfc822;list@example.test"},
        # A one-target forward passes the request on unchanged.
        "y@remote.example": {"notify": ["SUCCESS", "FAILURE"], "orcpt": "rfc822;only@example.test"},
    }
    _, raw = await store.get_queued(report.id)
    _, blocks, _ = report_parts(raw)
    assert [(b["Final-Recipient"], b["Action"]) for b in blocks[1:]] == [
        ("rfc822;list@example.test", "expanded")
    ]


async def test_report_to_a_full_local_sender_is_dropped_quietly(world) -> None:  # type: ignore[no-untyped-def]
    store, accounts = world
    delivery = Delivery(store, "mx.example.test")
    bob = Recipient(Address("bob", "example.test"))
    alice = Recipient(Address("alice", "example.test"))
    decisions = [
        await delivery.check_recipient(rc.address, relay_allowed=False, size=None)
        for rc in (bob, alice)
    ]
    for user in ("alice", "bob"):
        await store.set_quota(accounts[user], quota_bytes=1, quota_messages=0)
    await store.add_alias("fwd@example.test", ["x@remote.example"])
    fwd = Recipient(Address("fwd", "example.test"))
    decisions.append(await delivery.check_recipient(fwd.address, relay_allowed=False, size=None))
    reply = await delivery.deliver(
        envelope("full@example.test", bob, alice, fwd), BODY, decisions, peer_ip="192.0.2.1"
    )
    assert reply == r.R250_DATA_OK  # the forward was queued
    (queued,) = await store.list_queue()  # the forward, and no report
    assert queued.recipients == ("x@remote.example",)
    # The forward carries its recipient's DSN parameters, with an ORCPT naming
    # the address the sender used (RFC 3461 §6.2.7.1).
    assert json.loads(queued.dsn)["recipients"] == {
        "x@remote.example": {"notify": None, "orcpt": "rfc822;fwd@example.test"}
    }


async def test_postmaster_rule(world) -> None:  # type: ignore[no-untyped-def]
    store, accounts = world

    async def where(
        delivery: Delivery, text: str
    ) -> tuple[int, tuple[AccountId, ...], tuple[str, ...]]:
        bare = postmaster_address(delivery.hostname)
        rcpt = Address.parse(text) if "@" in text else bare
        d = await delivery.check_recipient(rcpt, relay_allowed=False, size=None)
        return d.reply.code, d.accounts, d.external

    alice, bob = accounts["alice"], accounts["bob"]
    await store.add_domain("other.test")
    carol = (await store.add_account(Address("carol", "other.test"), "x")).id
    await store.add_domain("zz-alias.test", alias_of="other.test")

    # Single-label host name (the default "localhost"): the bare form still works
    # and goes to the first hosted domain whose postmaster reaches someone.
    plain = Delivery(store, "localhost")
    assert await where(plain, "<Postmaster>") == (250, (alice,), ())
    # A hosted domain without a postmaster of its own gets the node's.
    assert await where(plain, "postmaster@other.test") == (250, (alice,), ())
    assert await where(plain, "PostMaster@zz-alias.test") == (250, (alice,), ())
    # Other names at hosted domains are unaffected; foreign postmasters are relaying.
    assert (await where(plain, "nobody@other.test"))[0] == 550
    assert (await where(plain, "postmaster@remote.example")) == (550, (), ())

    # A configured postmaster wins over derivation, local or remote.
    configured = Delivery(store, "mx.example.test", postmaster=Address("bob", "example.test"))
    assert await where(configured, "postmaster@mx.example.test") == (250, (bob,), ())
    assert await where(configured, "postmaster@other.test") == (250, (bob,), ())
    remote = Delivery(store, "mx.example.test", postmaster=Address("ops", "noc.example"))
    assert await where(remote, "postmaster@other.test") == (250, (), ("ops@noc.example",))
    # ... but never over a tenant's own postmaster.
    assert await where(configured, "postmaster@example.test") == (250, (alice,), ())
    await store.add_alias("postmaster@other.test", ["carol@other.test"])
    assert await where(configured, "postmaster@other.test") == (250, (carol,), ())

    # Our host name hosted: its postmaster comes first.
    await store.add_domain("mx.example.test")
    await store.add_alias("postmaster@mx.example.test", ["bob@example.test"])
    named = Delivery(store, "MX.Example.Test.")
    assert await where(named, "postmaster@example.test") == (250, (alice,), ())
    await store.remove_alias("postmaster@example.test")
    assert await where(named, "postmaster@example.test") == (250, (bob,), ())

    # Nobody anywhere: refused (and logged), not accepted into the void.
    await store.remove_alias("postmaster@mx.example.test")
    await store.remove_alias("postmaster@other.test")
    await store.remove_domain("zz-alias.test")
    assert await where(plain, "<Postmaster>") == (550, (), ())
