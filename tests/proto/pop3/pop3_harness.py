"""A real POP3 node for socket tests: SQLite store, auth door, TLS, both listeners.

Used by tests/servers/test_pop3_server.py and tests/interop/test_pop3_clients.py
(they put this directory on sys.path).  Everything listens on 127.0.0.1 with
ephemeral ports.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from pop3_transcript import MESSAGES, PASSWORD

from mailwarden.auth.passwords import HashParams, PasswordHasher, VerifyPool
from mailwarden.auth.service import AuthService
from mailwarden.config import Config, Pop3Config
from mailwarden.mail.address import Address
from mailwarden.servers.context import ServerContext
from mailwarden.servers.listener import Listener, server_tls_context
from mailwarden.servers.pop3 import Pop3Handler, make_listeners
from mailwarden.store.base import AccountId
from mailwarden.store.sqlite import SqliteStore
from mailwarden.tlscert import make_self_signed

# Cheap argon2id so tests spend no time hashing.
TEST_HASH = HashParams(memory_kib=64, time_cost=1, parallelism=1)


@dataclass
class Pop3Node:
    """A running POP3 node and what tests need to reach it."""

    store: SqliteStore
    auth: Any
    ctx: ServerContext
    listeners: list[Listener]
    accounts: dict[str, AccountId]
    cert_path: Path

    @property
    def port(self) -> int:
        """The STLS port."""
        return self.listeners[0].port

    @property
    def tls_port(self) -> int:
        """The implicit-TLS port."""
        return self.listeners[1].port

    @property
    def handler(self) -> Pop3Handler:
        handler = self.listeners[0].handler
        assert isinstance(handler, Pop3Handler)
        return handler

    async def folder_id(self, user: str) -> Any:
        return (await self.store.get_folder(self.accounts[user], "INBOX")).id

    async def uids(self, user: str) -> list[int]:
        account = self.accounts[user]
        entries = await self.store.list_entries(account, await self.folder_id(user))
        return [e.uid for e in entries]


def client_tls_context() -> ssl.SSLContext:
    """A client context that accepts the node's self-signed certificate."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


@asynccontextmanager
async def pop3_node(
    tmp_path: Path,
    *,
    pop3: Pop3Config | None = None,
    trust_loopback: bool = True,
    auth: Any = None,
    messages: tuple[bytes, ...] = MESSAGES,
) -> AsyncIterator[Pop3Node]:
    """Start a node with alice@example.test (``messages``) and empty@example.test (none)."""
    store = await SqliteStore.open(tmp_path / "db.sqlite", tmp_path / "blobs")
    pool = VerifyPool(2, 16)
    try:
        hasher = PasswordHasher(TEST_HASH)
        await store.add_domain("example.test")
        accounts: dict[str, AccountId] = {}
        for user in ("alice@example.test", "empty@example.test"):
            account = await store.add_account(Address.parse(user), hasher.hash(PASSWORD))
            accounts[user] = account.id
        for raw in messages:
            await store.append(accounts["alice@example.test"], "INBOX", raw)
        cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
        make_self_signed(cert, key, "localhost")
        ctx = ServerContext(
            store=store,
            auth=auth or AuthService(store, hasher, pool),
            tls=server_tls_context(str(cert), str(key)),
            hostname="localhost",
        )
        settings = replace(pop3 or Pop3Config(), port=0, tls_port=0)
        config = Config(listen="127.0.0.1", pop3=settings)
        listeners = make_listeners(ctx, config, trust_loopback=trust_loopback)
        for listener in listeners:
            await listener.start()
        try:
            yield Pop3Node(store, ctx.auth, ctx, listeners, accounts, cert)
        finally:
            for listener in listeners:
                await listener.stop(grace=2.0)
    finally:
        pool.shutdown()
        await store.close()
