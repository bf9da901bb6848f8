"""The SMTP server over real sockets: delivery, headers, queue, policies, failures."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "proto" / "smtp"))

from smtp_harness import Client, client_tls_context, smtp_node

from mailwarden.auth.service import TryLater
from mailwarden.config import SmtpConfig, SubmissionConfig
from mailwarden.mail.address import Address
from mailwarden.store.base import StoreUnavailable
from mailwarden.store.sqlite import SqliteStore

PLAIN = b"AUTH PLAIN " + base64.b64encode(b"\0alice@example.test\0secret")
BODY = b"From: sender@example.org\r\nSubject: hi\r\n\r\nline one\r\n.dot line\r\n"


async def greet(port: int, *, tls: bool = False) -> Client:
    client = await Client.connect(port, tls=tls)
    assert (await client.reply()).startswith(b"220 ")
    assert (await client.command(b"EHLO client.example.org")).startswith(b"250-")
    return client


async def send_message(client: Client, sender: bytes, rcpts: list[bytes], body: bytes) -> bytes:
    assert (await client.command(b"MAIL FROM:<" + sender + b">")).startswith(b"250")
    for rcpt in rcpts:
        reply = await client.command(b"RCPT TO:<" + rcpt + b">")
        assert reply.startswith(b"250"), reply
    assert (await client.command(b"DATA")).startswith(b"354")
    stuffed = body.replace(b"\r\n.", b"\r\n..")
    return await client.command(stuffed + b".")


async def test_inbound_delivery_headers_and_one_copy_per_mailbox(tmp_path: Path) -> None:
    async with smtp_node(tmp_path) as node:
        client = await greet(node.port)
        reply = await send_message(
            client,
            b"sender@example.org",
            [b"alice@example.test", b"info@example.test", b"bob@example.test"],
            BODY,
        )
        assert reply == b"250 2.0.0 Message accepted\r\n"
        await client.command(b"QUIT")
        await client.close()
        (alice,) = await node.inbox("alice")  # alias to alice: still one copy
        (bob,) = await node.inbox("bob")
        assert alice == bob
        assert alice.startswith(
            b"Return-Path: <sender@example.org>\r\n"
            b"Received: from client.example.org ([127.0.0.1])\r\n"
            b"\tby mx.example.test with ESMTP id "
        )
        assert alice.endswith(b"\r\n" + BODY)  # dot-unstuffed, byte-identical


async def test_domain_alias_and_catch_all(tmp_path: Path) -> None:
    async with smtp_node(tmp_path) as node:
        await node.store.add_domain("alias.test", alias_of="example.test")
        await node.store.add_domain("catch.test")
        await node.store.add_alias("@catch.test", ["bob@example.test"])
        client = await greet(node.port)
        reply = await send_message(
            client, b"", [b"alice@alias.test", b"whoever@catch.test"], b"Subject: x\r\n\r\nx\r\n"
        )
        assert reply.startswith(b"250")
        assert len(await node.inbox("alice")) == 1
        assert len(await node.inbox("bob")) == 1
        await client.close()


async def test_quota_refusals_at_rcpt(tmp_path: Path) -> None:
    async with smtp_node(tmp_path) as node:
        await node.store.set_quota(node.accounts["bob"], quota_bytes=2000, quota_messages=0)
        client = await greet(node.port)
        assert (await client.command(b"MAIL FROM:<> SIZE=5000")).startswith(b"250")
        assert await client.command(b"RCPT TO:<bob@example.test>") == b"552 5.2.2 Mailbox full\r\n"
        assert await client.command(b"RCPT TO:<full@example.test>") == b"452 4.2.2 Mailbox full\r\n"
        await client.close()


class FailingDeliveries:
    """The real store, except that delivery fails as a full disk would."""

    def __init__(self, store: SqliteStore) -> None:
        self._store = store
        self.fail = True

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def deliver_and_queue(self, *args: Any, **kw: Any) -> Any:
        if self.fail:
            raise StoreUnavailable("disk full")
        return await self._store.deliver_and_queue(*args, **kw)


async def test_store_failure_is_451_and_nothing_half_delivered(tmp_path: Path) -> None:
    async with smtp_node(tmp_path, trust_loopback=True) as node:
        failing = FailingDeliveries(node.store)
        object.__setattr__(node.ctx, "store", failing)
        for listener in node.listeners:
            listener.handler.delivery.store = failing  # type: ignore[attr-defined]
        client = await greet(node.submission_port)
        assert (await client.command(PLAIN)).startswith(b"235")
        reply = await send_message(
            client,
            b"alice@example.test",
            [b"bob@example.test", b"friend@remote.example"],
            b"From: alice@example.test\r\n\r\nhi\r\n",
        )
        assert reply == b"451 4.3.0 Local error in processing, try again later\r\n"
        assert await node.inbox("bob") == []
        assert await node.store.list_queue() == []  # one commit: nothing was queued
        failing.fail = False
        reply = await send_message(
            client,
            b"alice@example.test",
            [b"bob@example.test", b"friend@remote.example"],
            b"From: alice@example.test\r\n\r\nhi\r\n",
        )
        assert reply.startswith(b"250")
        assert len(await node.inbox("bob")) == 1
        await client.close()


async def test_submission_queues_remote_recipients_with_dsn(tmp_path: Path) -> None:
    async with smtp_node(tmp_path) as node:
        client = await greet(node.submission_port)
        assert (await client.command(b"STARTTLS")).startswith(b"220")
        await client.writer.start_tls(client_tls_context())
        await client.command(b"EHLO client.example.org")
        assert (await client.command(PLAIN)).startswith(b"235")
        assert (
            await client.command(b"MAIL FROM:<alice@example.test> RET=HDRS ENVID=e1")
        ).startswith(b"250")
        assert (
            await client.command(
                b"RCPT TO:<a@remote.example> NOTIFY=FAILURE ORCPT=rfc822;a@remote.example"
            )
        ).startswith(b"250")
        assert (await client.command(b"RCPT TO:<b@other.example>")).startswith(b"250")
        assert (await client.command(b"RCPT TO:<bob@example.test>")).startswith(b"250")
        assert (await client.command(b"DATA")).startswith(b"354")
        assert (
            await client.command(b"From: Alice <alice@example.test>\r\n\r\nout\r\n.")
        ).startswith(b"250")
        await client.close()
        (queued,) = await node.store.list_queue()
        assert queued.mail_from == "alice@example.test"
        assert set(queued.recipients) == {"a@remote.example", "b@other.example"}
        assert queued.account_id == node.accounts["alice"]
        dsn = json.loads(queued.dsn)
        assert dsn["ret"] == "HDRS" and dsn["envid"] == "e1"
        assert dsn["recipients"]["a@remote.example"] == {
            "notify": ["FAILURE"],
            "orcpt": "rfc822;a@remote.example",
        }
        _, raw = await node.store.get_queued(queued.id)
        assert raw.startswith(
            b"Received: from client.example.org ([127.0.0.1])\r\n"
            b"\tby mx.example.test with ESMTPSA id "
        )
        assert b"Return-Path" not in raw
        (local,) = await node.inbox("bob")
        assert local.startswith(b"Return-Path: <alice@example.test>\r\n")


async def test_submission_from_header_must_be_owned(tmp_path: Path) -> None:
    async with smtp_node(tmp_path) as node:
        client = await greet(node.submissions_port, tls=True)
        assert (await client.command(PLAIN)).startswith(b"235")
        reply = await send_message(
            client,
            b"alice@example.test",
            [b"bob@example.test"],
            b"From: bob@example.test\r\n\r\nforged\r\n",
        )
        assert reply == b"553 5.7.1 Sender address not owned by you\r\n"
        reply = await send_message(
            client,
            b"alice@example.test",
            [b"bob@example.test"],
            b"From: Info <info@example.test>, alice@example.test\r\n\r\nok\r\n",
        )
        assert reply.startswith(b"250")
        assert len(await node.inbox("bob")) == 1
        await client.close()


async def test_sending_limits_with_a_fake_clock(tmp_path: Path) -> None:
    now = [1_000_000.0]
    sub = SubmissionConfig(max_messages_per_hour=2, max_messages_per_day=3, max_recipients=2)
    async with smtp_node(tmp_path, submission=sub, clock=lambda: now[0]) as node:
        client = await greet(node.submissions_port, tls=True)
        assert (await client.command(PLAIN)).startswith(b"235")
        body = b"From: alice@example.test\r\n\r\nx\r\n"
        for _ in range(2):
            assert (
                await send_message(client, b"alice@example.test", [b"bob@example.test"], body)
            ).startswith(b"250")
        assert (
            await client.command(b"MAIL FROM:<alice@example.test>")
            == b"451 4.7.1 Sending limit reached, try again later\r\n"
        )
        now[0] += 3601  # an hour later the hourly window has room again
        assert (await client.command(b"MAIL FROM:<alice@example.test>")).startswith(b"250")
        assert (await client.command(b"RCPT TO:<bob@example.test>")).startswith(b"250")
        assert (await client.command(b"RCPT TO:<x@remote.example>")).startswith(b"250")
        assert (
            await client.command(b"RCPT TO:<y@remote.example>")
            == b"452 4.7.1 Too many recipients for one message\r\n"
        )
        assert await client.command(b"RSET") == b"250 2.0.0 OK\r\n"
        assert (
            await send_message(client, b"alice@example.test", [b"bob@example.test"], body)
        ).startswith(b"250")
        # The day's three are used up, whatever the hour says.
        now[0] += 3601
        assert (await client.command(b"MAIL FROM:<alice@example.test>")).startswith(b"451 4.7.1")
        await client.close()


class SlowAuth:
    async def verify(self, *args: Any) -> Any:
        return TryLater()


async def test_auth_try_later_and_foreign_authzid(tmp_path: Path) -> None:
    async with smtp_node(tmp_path, auth=SlowAuth()) as node:
        client = await greet(node.submissions_port, tls=True)
        assert await client.command(PLAIN) == b"454 4.7.0 Temporary authentication failure\r\n"
        other = b"AUTH PLAIN " + base64.b64encode(b"bob@example.test\0alice@example.test\0secret")
        assert (await client.command(other)).startswith(b"535 5.7.8")
        await client.close()


async def test_command_timeout_closes_with_421(tmp_path: Path) -> None:
    async with smtp_node(tmp_path, smtp=SmtpConfig(command_timeout=1)) as node:
        client = await Client.connect(node.port)
        await client.reply()
        assert await client.reply() == b"421 4.4.2 Timeout, closing connection\r\n"
        assert await client.eof()
        await client.close()


async def test_connection_limit_per_address(tmp_path: Path) -> None:
    async with smtp_node(tmp_path, smtp=SmtpConfig(max_connections_per_ip=1)) as node:
        first = await Client.connect(node.port)
        await first.reply()
        second = await Client.connect(node.port)
        assert (await second.reply()).startswith(b"421 4.7.0 ")
        assert await second.eof()
        await first.close()
        await second.close()


class BrokenResolver(FailingDeliveries):
    async def resolve_recipient(self, address: Address) -> Any:
        raise RuntimeError("secret internal detail")


async def test_internal_error_gives_421_with_reference_not_exception_text(tmp_path: Path) -> None:
    async with smtp_node(tmp_path) as node:
        broken = BrokenResolver(node.store)
        for listener in node.listeners:
            listener.handler.delivery.store = broken  # type: ignore[attr-defined]
        client = await greet(node.port)
        await client.command(b"MAIL FROM:<>")
        reply = await client.command(b"RCPT TO:<alice@example.test>")
        assert reply.startswith(b"421 4.3.0 Internal error, try again later (reference ")
        assert b"secret" not in reply and b"RuntimeError" not in reply
        assert await client.eof()
        await client.close()


async def test_starttls_injection_over_the_socket(tmp_path: Path) -> None:
    async with smtp_node(tmp_path) as node:
        client = await greet(node.port)
        await client.send(b"STARTTLS\r\nMAIL FROM:<evil@example.org>\r\n")
        assert await client.reply() == b"220 2.0.0 Ready to start TLS\r\n"
        await client.writer.start_tls(client_tls_context())
        assert (
            await client.command(b"RCPT TO:<alice@example.test>")
            == b"503 5.5.1 Send EHLO or HELO first\r\n"
        )
        await client.close()


@pytest.mark.parametrize("port_name", ["port", "submission_port"])
async def test_command_line_limit_over_socket(tmp_path: Path, port_name: str) -> None:
    async with smtp_node(tmp_path) as node:
        client = await greet(getattr(node, port_name))
        assert await client.command(b"NOOP " + b"x" * 600) == b"500 5.5.2 Line too long\r\n"
        assert await client.command(b"NOOP") == b"250 2.0.0 OK\r\n"
        await client.close()
