"""The IMAP server over real sockets: transcripts, chunking, concurrency, IDLE, limits."""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "proto" / "imap"))

from imap_harness import ImapNode, client_tls_context, imap_node
from imap_transcript import Transcript, compare, transcripts

from mailwarden.config import ImapConfig

SOCKET_TRANSCRIPTS = transcripts("server")
STEP_TIMEOUT = 30  # generous: only reached when something is broken


class Client:
    """A raw IMAP client over asyncio streams."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int, *, tls: bool = False) -> Client:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client_tls_context() if tls else None
        )
        return cls(reader, writer)

    async def send(self, data: bytes, chunks: int = 1) -> None:
        if chunks == 1:
            self.writer.write(data)
            await self.writer.drain()
            return
        rng = random.Random(len(data))
        i = 0
        while i < len(data):
            n = rng.randint(1, max(1, len(data) // chunks))
            self.writer.write(data[i : i + n])
            await self.writer.drain()
            i += n

    async def line(self) -> bytes:
        async with asyncio.timeout(STEP_TIMEOUT):
            line = await self.reader.readline()
        assert line.endswith(b"\r\n"), f"connection closed mid-line: {line!r}"
        return line[:-2]

    async def until_tagged(self, tag: bytes) -> list[bytes]:
        out = []
        while True:
            line = await self.line()
            out.append(line)
            if line.startswith(tag + b" "):
                return out

    async def command(self, text: bytes, tag: bytes = b"t") -> list[bytes]:
        await self.send(tag + b" " + text + b"\r\n")
        return await self.until_tagged(tag)

    async def login(self) -> None:
        await self.line()
        reply = await self.command(b"LOGIN alice@example.test secret", b"L")
        assert reply[-1].startswith(b"L OK"), reply

    async def eof(self) -> bool:
        async with asyncio.timeout(STEP_TIMEOUT):
            return await self.reader.read() == b""

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()


def imap_config(t: Transcript) -> ImapConfig:
    o = t.options
    return ImapConfig(
        max_bad_commands=int(o.get("max-bad-commands") or 20),
        max_line=int(o.get("max-line") or 8192),
        max_literal=int(o.get("max-literal") or 1_000_000),
    )


async def _replay(node: ImapNode, t: Transcript, chunks: int) -> None:
    client = await Client.connect(node.port)
    try:
        for number, step in enumerate(t.steps):
            if step.send:
                await client.send(step.send, chunks)
            got = [await client.line() for _ in step.expect]
            diff = compare(step.expect, got)
            assert diff is None, f"{t.name} step {number}:\n{diff}"
            if step.closed:
                assert await client.eof(), f"step {number}: still open"
    finally:
        await client.close()


@pytest.mark.parametrize("chunks", [1, 7])
@pytest.mark.parametrize("t", SOCKET_TRANSCRIPTS, ids=[t.name for t in SOCKET_TRANSCRIPTS])
async def test_transcript_over_socket(tmp_path: Path, t: Transcript, chunks: int) -> None:
    async with imap_node(
        tmp_path, imap=imap_config(t), trust_loopback="cleartext" in t.options
    ) as node:
        await _replay(node, t, chunks)


async def test_byte_by_byte_over_socket(tmp_path: Path) -> None:
    t = next(t for t in SOCKET_TRANSCRIPTS if t.name == "mailbox")
    async with imap_node(tmp_path, trust_loopback=True) as node:
        await _replay(node, t, 10_000)  # one octet per write


async def test_sessions_see_each_other(tmp_path: Path) -> None:
    async with imap_node(tmp_path) as node:
        a = await Client.connect(node.port)
        b = await Client.connect(node.port)
        try:
            await a.login()
            await b.login()
            await a.command(b"SELECT INBOX")
            await b.command(b"SELECT INBOX")
            # b changes flags and expunges; a hears about it by the RFC's rules
            await b.command(b"STORE 1 +FLAGS.SILENT (\\Deleted)")
            await b.command(b"STORE 2 +FLAGS.SILENT (\\Flagged)")
            fetch = await a.command(b"FETCH 1:* (FLAGS)")
            # no EXPUNGE during FETCH (RFC 3501 §7.4.1), but the flag news arrives
            assert not any(b"EXPUNGE" in line for line in fetch)
            assert any(re.search(rb"\* 2 FETCH \(FLAGS \(\\Flagged\)\)", x) for x in fetch)
            await b.command(b"EXPUNGE")
            noop = await a.command(b"NOOP")
            assert b"* 1 EXPUNGE" in noop, noop
            await node.deliver(b"Subject: new\r\n\r\nnew\r\n")
            noop = await a.command(b"NOOP")
            assert b"* 3 EXISTS" in noop, noop
        finally:
            await a.close()
            await b.close()


async def test_idle_hears_new_mail_within_a_second(tmp_path: Path) -> None:
    async with imap_node(tmp_path) as node:
        a = await Client.connect(node.port)
        try:
            await a.login()
            await a.command(b"SELECT INBOX")
            await a.send(b"i IDLE\r\n")
            assert await a.line() == b"+ idling"
            await node.deliver(b"Subject: pushed\r\n\r\nhello\r\n")
            async with asyncio.timeout(1.0):
                assert await a.line() == b"* 4 EXISTS"
            await a.send(b"DONE\r\n")
            assert (await a.until_tagged(b"i"))[-1] == b"i OK IDLE terminated"
        finally:
            await a.close()


async def test_per_user_limit(tmp_path: Path) -> None:
    async with imap_node(tmp_path, imap=ImapConfig(max_connections_per_user=1)) as node:
        a = await Client.connect(node.port)
        b = await Client.connect(node.port)
        try:
            await a.login()
            await b.line()
            reply = await b.command(b"LOGIN alice@example.test secret")
            assert reply[-1] == b"t NO [LIMIT] Too many sessions for this account"
        finally:
            await a.close()
            await b.close()


async def test_implicit_tls_and_starttls(tmp_path: Path) -> None:
    async with imap_node(tmp_path, trust_loopback=False) as node:
        c = await Client.connect(node.tls_port, tls=True)
        try:
            greeting = await c.line()
            assert b"AUTH=PLAIN" in greeting
            assert b"STARTTLS" not in greeting
            assert (await c.command(b"LOGIN alice@example.test secret"))[-1].startswith(b"t OK")
        finally:
            await c.close()
        p = await Client.connect(node.port)
        try:
            assert b"LOGINDISABLED" in await p.line()
            await p.send(b"s STARTTLS\r\n")
            assert await p.line() == b"s OK Begin TLS negotiation now"
            await p.writer.start_tls(client_tls_context())
            caps = await p.command(b"CAPABILITY")
            assert b"AUTH=PLAIN" in caps[0]
            assert (await p.command(b"LOGIN alice@example.test secret"))[-1].startswith(b"t OK")
        finally:
            await p.close()


async def test_autologout_before_login(tmp_path: Path) -> None:
    async with imap_node(tmp_path, imap=ImapConfig(login_timeout=1)) as node:
        c = await Client.connect(node.port)
        try:
            await c.line()
            assert await c.line() == b"* BYE Autologout; idle for too long"
            assert await c.eof()
        finally:
            await c.close()
