"""A real IMAP node for socket tests: SQLite store, auth door, TLS, both listeners.

Used by tests/servers/test_imap*.py and tests/interop/test_imap*.py (they put
this directory on sys.path).  Everything listens on 127.0.0.1, ephemeral ports.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from imap_transcript import MESSAGES, PASSWORD, USER

from mailwarden.auth.passwords import HashParams, PasswordHasher, VerifyPool
from mailwarden.auth.service import AuthService
from mailwarden.config import Config, ImapConfig
from mailwarden.mail.address import Address
from mailwarden.servers.context import ServerContext
from mailwarden.servers.imap import make_listeners
from mailwarden.servers.listener import Listener, server_tls_context
from mailwarden.store.base import AccountId
from mailwarden.store.sqlite import SqliteStore
from mailwarden.tlscert import make_self_signed

TEST_HASH = HashParams(memory_kib=64, time_cost=1, parallelism=1)


@dataclass
class ImapNode:
    store: SqliteStore
    ctx: ServerContext
    listeners: list[Listener]
    accounts: dict[str, AccountId]

    @property
    def port(self) -> int:
        return self.listeners[0].port

    @property
    def tls_port(self) -> int:
        return self.listeners[1].port

    async def deliver(self, raw: bytes, user: str = USER, folder: str = "INBOX") -> Any:
        return await self.store.append(self.accounts[user], folder, raw)


def client_tls_context() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


@asynccontextmanager
async def imap_node(
    tmp_path: Path,
    *,
    imap: ImapConfig | None = None,
    trust_loopback: bool = True,
    messages: tuple[bytes, ...] = MESSAGES,
) -> AsyncIterator[ImapNode]:
    """Start a node with alice@example.test (``messages`` in INBOX) and bob@example.test."""
    store = await SqliteStore.open(tmp_path / "db.sqlite", tmp_path / "blobs")
    pool = VerifyPool(2, 16)
    try:
        hasher = PasswordHasher(TEST_HASH)
        await store.add_domain("example.test")
        accounts: dict[str, AccountId] = {}
        for user in (USER, "bob@example.test"):
            account = await store.add_account(Address.parse(user), hasher.hash(PASSWORD))
            accounts[user] = account.id
        for raw in messages:
            await store.append(accounts[USER], "INBOX", raw, internal_date=1704103200)
        cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
        make_self_signed(cert, key, "localhost")
        ctx = ServerContext(
            store=store,
            auth=AuthService(store, hasher, pool),
            tls=server_tls_context(str(cert), str(key)),
            hostname="localhost",
        )
        settings = replace(imap or ImapConfig(), port=0, tls_port=0)
        config = Config(listen="127.0.0.1", imap=settings)
        listeners = make_listeners(ctx, config, trust_loopback=trust_loopback)
        for listener in listeners:
            await listener.start()
        try:
            yield ImapNode(store, ctx, listeners, accounts)
        finally:
            for listener in listeners:
                await listener.stop(grace=2.0)
    finally:
        pool.shutdown()
        await store.close()
