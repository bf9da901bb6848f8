"""The POP3 server over real sockets: transcripts, locking, UPDATE, TLS, limits."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "proto" / "pop3"))

from pop3_harness import client_tls_context, pop3_node
from pop3_transcript import (
    MESSAGES,
    Transcript,
    all_transcripts,
    expected_pattern,
)

from mailwarden.auth.service import Rejected, TryLater
from mailwarden.config import Pop3Config
from mailwarden.store.base import ChangeKind, FlagMode

SOCKET_TRANSCRIPTS = [t for t in all_transcripts() if "core-only" not in t.options]
STEP_TIMEOUT = 30  # generous: only hit when something is broken


class Client:
    """A raw POP3 client over asyncio streams."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int, *, tls: bool = False) -> Client:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client_tls_context() if tls else None
        )
        return cls(reader, writer)

    async def send(self, *lines: bytes) -> None:
        self.writer.write(b"".join(line + b"\r\n" for line in lines))
        await self.writer.drain()

    async def line(self) -> bytes:
        async with asyncio.timeout(STEP_TIMEOUT):
            return await self.reader.readline()

    async def lines(self, n: int) -> bytes:
        return b"".join([await self.line() for _ in range(n)])

    async def multiline(self) -> list[bytes]:
        out = []
        while (line := await self.line()) != b".\r\n":
            assert line, "connection closed inside a multi-line response"
            out.append(line)
        return out

    async def command(self, line: bytes) -> bytes:
        await self.send(line)
        return await self.line()

    async def login(self, user: bytes = b"alice@example.test") -> bytes:
        assert (await self.command(b"USER " + user)).startswith(b"+OK")
        return await self.command(b"PASS secret")

    async def eof(self) -> bool:
        async with asyncio.timeout(STEP_TIMEOUT):
            return await self.reader.read() == b""

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()


def pop3_config(transcript: Transcript) -> Pop3Config:
    options = transcript.options
    return Pop3Config(
        max_bad_commands=int(options.get("max-bad-commands") or 20),
        max_line=int(options.get("max-line") or 512),
    )


@pytest.mark.parametrize("transcript", SOCKET_TRANSCRIPTS, ids=[t.name for t in SOCKET_TRANSCRIPTS])
async def test_transcript_over_socket(tmp_path: Path, transcript: Transcript) -> None:
    tls = "tls" in transcript.options
    async with pop3_node(
        tmp_path,
        pop3=pop3_config(transcript),
        trust_loopback="cleartext" in transcript.options,
    ) as node:
        client = await Client.connect(node.tls_port if tls else node.port, tls=tls)
        try:
            for number, step in enumerate(transcript.steps):
                await client.send(*step.send)
                got = await client.lines(len(step.expect))
                pattern = expected_pattern(step.expect)
                assert pattern.fullmatch(got), f"step {number}: got {got!r}"
                if b"STLS" in step.send and b"+OK Begin TLS negotiation" in step.expect:
                    await client.writer.start_tls(client_tls_context())
                if step.closed:
                    assert await client.eof(), f"step {number}: still open"
        finally:
            await client.close()


async def test_uidls_stable_and_maildrop_locked(tmp_path: Path) -> None:
    async with pop3_node(tmp_path) as node:
        first = await Client.connect(node.port)
        await first.line()
        assert (await first.login()).startswith(b"+OK Logged in")
        await first.send(b"UIDL")
        assert (await first.line()).startswith(b"+OK")
        uidls = await first.multiline()
        assert len(uidls) == len(MESSAGES)

        # RFC 1939 §8 / RFC 2449 §8.1.1: one session per maildrop, also via the TLS port.
        second = await Client.connect(node.tls_port, tls=True)
        await second.line()
        reply = await second.login()
        assert reply == b"-ERR [IN-USE] Maildrop is locked by another session\r\n"
        await first.send(b"QUIT")
        assert await first.line() == b"+OK Bye\r\n"
        assert await first.eof()
        await first.close()

        # The lock went with the first session; the UIDLs are the same.
        assert (await second.login()).startswith(b"+OK Logged in")
        await second.send(b"UIDL")
        await second.line()
        assert await second.multiline() == uidls
        await second.close()


async def test_dele_takes_effect_only_in_update(tmp_path: Path) -> None:
    async with pop3_node(tmp_path) as node:
        user = "alice@example.test"
        before = await node.uids(user)
        # A session that ends without QUIT removes nothing (RFC 1939 §6).
        client = await Client.connect(node.port)
        await client.line()
        await client.login()
        assert await client.command(b"DELE 1") == b"+OK Message 1 deleted\r\n"
        await client.close()
        # The lock is released once the server notices the disconnect.
        for _ in range(200):
            if not node.handler.locks.held(node.accounts[user]):
                break
            await asyncio.sleep(0.01)
        assert await node.uids(user) == before

        # With QUIT, the marked messages go; IMAP sessions learn it from the hub.
        with node.store.changes.subscribe(node.accounts[user]) as changes:
            client = await Client.connect(node.port)
            await client.line()
            await client.login()
            await client.send(b"RETR 2")
            assert await client.line() == f"+OK {len(MESSAGES[1])} octets\r\n".encode()
            await client.multiline()
            await client.send(b"DELE 1", b"DELE 3", b"QUIT")
            assert await client.lines(3) == (
                b"+OK Message 1 deleted\r\n+OK Message 3 deleted\r\n+OK Bye\r\n"
            )
            assert await client.eof()
            await client.close()
            kinds = set()
            async with asyncio.timeout(STEP_TIMEOUT):
                while ChangeKind.EXPUNGE not in kinds:
                    kinds.add((await changes.get()).kind)
        assert await node.uids(user) == [before[1]]
        entries = await node.store.list_entries(node.accounts[user], await node.folder_id(user))
        assert "\\Seen" in entries[0].flags  # RETR marks as read, for IMAP users


async def test_expunged_by_imap_meanwhile(tmp_path: Path) -> None:
    async with pop3_node(tmp_path) as node:
        user = "alice@example.test"
        client = await Client.connect(node.port)
        await client.line()
        await client.login()
        # An IMAP session expunges message 1 while POP3 holds the maildrop.
        account, folder = node.accounts[user], await node.folder_id(user)
        uid = (await node.uids(user))[0]
        await node.store.store_flags(account, folder, [uid], ["\\Deleted"], FlagMode.ADD)
        await node.store.expunge(account, folder, [uid])
        assert await client.command(b"RETR 1") == b"-ERR Message is no longer available\r\n"
        await client.send(b"DELE 1", b"QUIT")
        assert await client.lines(2) == b"+OK Message 1 deleted\r\n+OK Bye\r\n"
        await client.close()
        assert len(await node.uids(user)) == len(MESSAGES) - 1


async def test_auth_outcomes_map_to_response_codes(tmp_path: Path) -> None:
    class FakeAuth:
        def __init__(self) -> None:
            self.outcome: object = TryLater()

        async def verify(self, username: str, password: str, peer: object) -> object:
            return self.outcome

        def open_session(self, account: object, peer: object, on_revoke: object) -> object:
            raise AssertionError("no login succeeds here")

    auth = FakeAuth()
    async with pop3_node(tmp_path, auth=auth) as node:
        client = await Client.connect(node.port)
        await client.line()
        assert await client.login() == b"-ERR [SYS/TEMP] Temporary failure; try again later\r\n"
        auth.outcome = Rejected("suspended")
        assert await client.login() == b"-ERR [AUTH] Authentication failed\r\n"
        await client.close()


async def test_sessions_are_listed_and_revocable(tmp_path: Path) -> None:
    async with pop3_node(tmp_path) as node:
        user = "alice@example.test"
        client = await Client.connect(node.port)
        await client.line()
        await client.login()
        await client.command(b"DELE 1")
        account = node.accounts[user]
        [session] = node.auth.sessions.of(account)
        assert session.service == "pop3"
        assert node.auth.sessions.revoke(account) == 1
        assert await client.eof()  # cut at once, without UPDATE
        await client.close()
        for _ in range(200):
            if not node.auth.sessions.of(account):
                break
            await asyncio.sleep(0.01)
        assert node.auth.sessions.of(account) == []
        assert len(await node.uids(user)) == len(MESSAGES)


async def test_idle_timeout(tmp_path: Path) -> None:
    # The shell's timer: silence ends the session without UPDATE.
    async with pop3_node(tmp_path, pop3=Pop3Config(timeout=1)) as node:
        client = await Client.connect(node.port)
        await client.line()
        await client.login()
        await client.command(b"DELE 1")
        assert await client.line() == b"-ERR Disconnected for inactivity\r\n"
        assert await client.eof()
        await client.close()
        assert len(await node.uids("alice@example.test")) == len(MESSAGES)


async def test_connection_limit_per_address(tmp_path: Path) -> None:
    async with pop3_node(tmp_path, pop3=Pop3Config(max_connections_per_ip=1)) as node:
        first = await Client.connect(node.port)
        assert (await first.line()).startswith(b"+OK")
        second = await Client.connect(node.tls_port, tls=True)  # both ports count together
        assert await second.line() == b"-ERR [SYS/TEMP] Too many connections from your address\r\n"
        assert await second.eof()
        await second.close()
        await first.close()


async def test_stls_injection_in_separate_packets(tmp_path: Path) -> None:
    async with pop3_node(tmp_path, trust_loopback=False) as node:
        client = await Client.connect(node.port)
        await client.line()
        await client.send(b"STLS")
        await client.send(b"USER alice@example.test")  # a second write, still plaintext
        assert await client.line() == b"+OK Begin TLS negotiation\r\n"
        await asyncio.sleep(0)  # let the server read whatever it will
        await client.writer.start_tls(client_tls_context())
        assert await client.command(b"PASS secret") == b"-ERR Send USER first\r\n"
        assert (await client.login()).startswith(b"+OK Logged in")
        await client.close()


async def test_large_message_and_pipelined_retr(tmp_path: Path) -> None:
    body = b"".join(b"." + str(i).encode() * 20 + b"\r\n" for i in range(20000))
    big = b"Subject: big\r\n\r\n" + body
    async with pop3_node(tmp_path, messages=(big, big, big)) as node:
        client = await Client.connect(node.port)
        await client.line()
        await client.login()
        await client.send(b"RETR 1", b"RETR 2", b"RETR 3", b"QUIT")
        for _ in range(3):
            assert await client.line() == f"+OK {len(big)} octets\r\n".encode()
            lines = await client.multiline()
            data = b"".join(line[1:] if line.startswith(b".") else line for line in lines)
            assert data == big
        assert await client.line() == b"+OK Bye\r\n"
        await client.close()


async def test_stls_discards_what_the_reader_holds(tmp_path: Path) -> None:
    # More than one read's worth pipelined after STLS: part of it can only be
    # in the stream reader's buffer, never seen by the core.  None of it may be
    # answered after the handshake (or the handshake fails on the leftovers).
    async with pop3_node(tmp_path, trust_loopback=False) as node:
        client = await Client.connect(node.port)
        await client.line()
        await client.send(b"STLS", *([b"NOOP"] * 30000))
        assert await client.line() == b"+OK Begin TLS negotiation\r\n"
        try:
            await client.writer.start_tls(client_tls_context())
        except (ssl.SSLError, ConnectionError):
            return  # the server's TLS layer choked on plaintext: nothing was answered
        await client.send(b"CAPA")
        assert await client.line() == b"+OK Capability list follows\r\n"
        await client.close()


async def test_read_ahead_follows_the_client(tmp_path: Path) -> None:
    # RETR 1 reads 2 ahead; asking for 3 instead drops it; 2 still comes right later.
    async with pop3_node(tmp_path) as node:
        client = await Client.connect(node.port)
        await client.line()
        await client.login()
        for number in (1, 3, 2, 2, 3):
            await client.send(b"RETR %d" % number)
            assert await client.line() == b"+OK %d octets\r\n" % len(MESSAGES[number - 1])
            body = b"".join(await client.multiline())
            assert body.replace(b"\r\n..", b"\r\n.") == MESSAGES[number - 1]
        await client.send(b"RETR 1")  # its read-ahead is still pending when we hang up
        await client.close()
