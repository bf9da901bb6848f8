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


async def _logged_in(node: ImapNode, n: int) -> list[Client]:
    clients = [await Client.connect(node.port) for _ in range(n)]
    for c in clients:
        await c.login()
    return clients


async def test_recent_goes_to_one_session(tmp_path: Path) -> None:
    # RFC 3501 §2.3.2: the first read-write session told about new mail gets
    # \Recent; another selected session hears EXISTS only, EXAMINE sees none left
    async with imap_node(tmp_path) as node:
        a, b, c = await _logged_in(node, 3)
        try:
            await a.command(b"SELECT INBOX")
            await b.command(b"SELECT INBOX")
            await node.deliver(b"Subject: new\r\n\r\nnew\r\n")
            noop = await a.command(b"NOOP")
            assert noop[:2] == [b"* 4 EXISTS", b"* 1 RECENT"], noop
            noop = await b.command(b"NOOP")
            assert noop == [b"* 4 EXISTS", b"t OK NOOP completed"], noop
            assert (await a.command(b"FETCH 4 FLAGS"))[0] == b"* 4 FETCH (FLAGS (\\Recent))"
            assert (await b.command(b"FETCH 4 FLAGS"))[0] == b"* 4 FETCH (FLAGS ())"
            assert b"* 0 RECENT" in await c.command(b"EXAMINE INBOX")
            status = await c.command(b"STATUS INBOX (RECENT)")
            assert status[0] == b'* STATUS "INBOX" (RECENT 0)'
        finally:
            for cl in (a, b, c):
                await cl.close()


async def test_rev2_unsolicited_fetch_has_uid(tmp_path: Path) -> None:
    # RFC 9051 §7.5.2 / Appendix E: every unsolicited FETCH carries the UID
    async with imap_node(tmp_path) as node:
        a, b = await _logged_in(node, 2)
        try:
            await a.command(b"ENABLE IMAP4rev2")
            await a.command(b"SELECT INBOX")
            await b.command(b"SELECT INBOX")
            await b.command(b"STORE 2 +FLAGS.SILENT (\\Flagged)")
            noop = await a.command(b"NOOP")
            assert noop[0] == b"* 2 FETCH (UID 2 FLAGS (\\Flagged))", noop
            await b.command(b"STORE 1 +FLAGS.SILENT (\\Deleted)")
            await b.command(b"EXPUNGE")
            assert (await a.command(b"NOOP"))[0] == b"* 1 EXPUNGE"
        finally:
            await a.close()
            await b.close()


def _code(lines: list[bytes], name: bytes) -> bytes:
    m = re.search(rb"\[" + name + rb" (\d+)\]", b"\n".join(lines))
    assert m is not None, lines
    return m.group(1)


async def _qresync_select(node: ImapNode, params: bytes) -> list[bytes]:
    (c,) = await _logged_in(node, 1)
    try:
        await c.command(b"ENABLE QRESYNC")
        return await c.command(b"SELECT INBOX (QRESYNC (" + params + b"))")
    finally:
        await c.close()


async def test_qresync_sequence_match_data(tmp_path: Path) -> None:
    # RFC 7162 §3.2.5.2: up to the first (number, UID) pair that no longer
    # holds, the client knows every expunge; VANISHED (EARLIER) starts above it
    async with imap_node(tmp_path) as node:
        await node.deliver(b"Subject: four\r\n\r\n4\r\n")
        await node.deliver(b"Subject: five\r\n\r\n5\r\n")
        (a,) = await _logged_in(node, 1)
        try:
            await a.command(b"ENABLE QRESYNC")
            sel = await a.command(b"SELECT INBOX")
            uv, ms = (_code(sel, name) for name in (b"UIDVALIDITY", b"HIGHESTMODSEQ"))
            await a.command(b"UID STORE 1,4 +FLAGS.SILENT (\\Deleted)")
            await a.command(b"EXPUNGE")
            await a.command(b"UID STORE 5 +FLAGS.SILENT (\\Flagged)")
        finally:
            await a.close()
        base = uv + b" " + ms
        # no match data: every expunge since the modseq, every change
        got = await _qresync_select(node, base)
        assert b"* VANISHED (EARLIER) 1,4" in got
        assert b"* 3 FETCH (UID 5 FLAGS (\\Flagged) MODSEQ (" in b"\n".join(got)
        # known UIDs 1:3: VANISHED and FETCH only about those
        got = await _qresync_select(node, base + b" 1:3")
        assert b"* VANISHED (EARLIER) 1" in got
        assert not any(b"FETCH" in line for line in got)
        # both pairs still hold (now 2,3,5 are messages 1,2,3): nothing to say
        got = await _qresync_select(node, base + b" 1:5 (2,3 3,5)")
        assert not any(b"VANISHED" in line for line in got)
        # the second pair fails: expunges above UID 3 only
        got = await _qresync_select(node, base + b" 1:5 (2,3 3,4)")
        assert b"* VANISHED (EARLIER) 4" in got
        # the first pair fails: everything
        got = await _qresync_select(node, base + b" 1:5 (1 1)")
        assert b"* VANISHED (EARLIER) 1,4" in got
