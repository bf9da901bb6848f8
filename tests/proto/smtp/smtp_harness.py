"""A real SMTP node for socket tests: SQLite store, auth door, TLS, all three listeners.

Used by tests/servers/test_smtp_*.py and tests/interop/test_smtp_*.py (they put
this directory on sys.path).  The store holds the shared world of
smtp_transcript.py, so the transcripts replay unchanged.  Everything listens on
127.0.0.1 with ephemeral ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from smtp_transcript import ALIASES, HOSTED, HOSTNAME, MAX_SIZE, PASSWORD

from mailwarden.auth.passwords import HashParams, PasswordHasher, VerifyPool
from mailwarden.auth.service import AuthService
from mailwarden.config import Config, SmtpConfig, SubmissionConfig
from mailwarden.mail.address import Address
from mailwarden.servers.context import ServerContext
from mailwarden.servers.listener import Listener, server_tls_context
from mailwarden.servers.smtp import make_listeners
from mailwarden.store.base import AccountId
from mailwarden.store.sqlite import SqliteStore
from mailwarden.tlscert import make_self_signed

# Cheap argon2id so tests spend no time hashing.
TEST_HASH = HashParams(memory_kib=64, time_cost=1, parallelism=1)
STEP_TIMEOUT = 30  # generous: only hit when something is broken


@dataclass
class SmtpNode:
    """A running SMTP node and what tests need to reach it."""

    store: SqliteStore
    ctx: ServerContext
    listeners: list[Listener]
    accounts: dict[str, AccountId]

    @property
    def port(self) -> int:
        """The MX port."""
        return self.listeners[0].port

    @property
    def submission_port(self) -> int:
        """Submission with STARTTLS."""
        return self.listeners[1].port

    @property
    def submissions_port(self) -> int:
        """Submission with implicit TLS."""
        return self.listeners[2].port

    async def inbox(self, user: str) -> list[bytes]:
        """The raw messages in a user's INBOX, in UID order."""
        account = self.accounts[user]
        folder = await self.store.get_folder(account, "INBOX")
        entries = await self.store.list_entries(account, folder.id)
        return [await self.store.read_message(account, folder.id, e.uid) for e in entries]


def client_tls_context() -> ssl.SSLContext:
    """A client context that accepts the node's self-signed certificate."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


async def populate(store: SqliteStore, hasher: PasswordHasher) -> dict[str, AccountId]:
    """Create the shared world: example.test with alice, bob, full and the aliases."""
    await store.add_domain(HOSTED)
    accounts: dict[str, AccountId] = {}
    for local in ("alice", "bob", "full"):
        account = await store.add_account(
            Address(local, HOSTED),
            hasher.hash(PASSWORD),
            quota_messages=1 if local == "full" else 0,
        )
        accounts[local] = account.id
    await store.append(accounts["full"], "INBOX", b"Subject: filler\r\n\r\nfull now\r\n")
    for source, target in ALIASES.items():
        await store.add_alias(f"{source}@{HOSTED}", [f"{target}@{HOSTED}"])
    return accounts


@asynccontextmanager
async def smtp_node(
    tmp_path: Path,
    *,
    smtp: SmtpConfig | None = None,
    submission: SubmissionConfig | None = None,
    trust_loopback: bool = False,
    auth: Any = None,
    store: SqliteStore | None = None,
    clock: Callable[[], float] | None = None,
) -> AsyncIterator[SmtpNode]:
    """Start the three SMTP listeners on a store holding the shared world."""
    own_store = store is None
    if store is None:
        store = await SqliteStore.open(tmp_path / "db.sqlite", tmp_path / "blobs")
    pool = VerifyPool(2, 16)
    try:
        hasher = PasswordHasher(TEST_HASH)
        accounts = await populate(store, hasher)
        cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
        make_self_signed(cert, key, "localhost")
        ctx = ServerContext(
            store=store,
            auth=auth or AuthService(store, hasher, pool),
            tls=server_tls_context(str(cert), str(key)),
            hostname=HOSTNAME,
        )
        config = Config(
            listen="127.0.0.1",
            smtp=replace(smtp or SmtpConfig(max_message_size=MAX_SIZE), port=0),
            submission=replace(submission or SubmissionConfig(), port=0, tls_port=0),
        )
        extra = {"clock": clock} if clock else {}
        listeners = make_listeners(ctx, config, trust_loopback=trust_loopback, **extra)
        for listener in listeners:
            await listener.start()
        try:
            yield SmtpNode(store, ctx, listeners, accounts)
        finally:
            for listener in listeners:
                await listener.stop(grace=2.0)
    finally:
        pool.shutdown()
        if own_store:
            await store.close()


class Client:
    """A raw SMTP client over asyncio streams (replies read line by line)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int, *, tls: bool = False) -> Client:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client_tls_context() if tls else None
        )
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def line(self) -> bytes:
        async with asyncio.timeout(STEP_TIMEOUT):
            return await self.reader.readline()

    async def lines(self, n: int) -> bytes:
        return b"".join([await self.line() for _ in range(n)])

    async def reply(self) -> bytes:
        """One whole (possibly multi-line) reply."""
        out = b""
        while True:
            line = await self.line()
            assert line, f"connection closed after {out!r}"
            out += line
            if line[3:4] != b"-":
                return out

    async def command(self, line: bytes) -> bytes:
        await self.send(line + b"\r\n")
        return await self.reply()

    async def eof(self) -> bool:
        async with asyncio.timeout(STEP_TIMEOUT):
            return await self.reader.read() == b""

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError, ssl.SSLError):
            await self.writer.wait_closed()
