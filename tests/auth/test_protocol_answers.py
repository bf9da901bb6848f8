"""A shed login gets each protocol's temporary failure, over real sockets.

The auth service is a real one whose policy sheds every unknown-lane request
(``source_pending=0``); each server must turn ``TryLater`` into its own words:
IMAP ``NO [UNAVAILABLE]`` (RFC 5530), POP3 ``-ERR [SYS/TEMP]`` (RFC 3206),
SMTP ``454 4.7.0`` (RFC 4954).  A banned source gets the ordinary failure.
"""

from __future__ import annotations

import asyncio
import base64
import importlib
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest
from conftest import FAST, PASSWORD, USERS

from mailwarden.auth.passwords import PasswordHasher, VerifyPool
from mailwarden.auth.policy import AuthPolicy
from mailwarden.auth.service import AuthService
from mailwarden.config import Config, ImapConfig, Pop3Config, SmtpConfig, SubmissionConfig
from mailwarden.mail.address import Address
from mailwarden.servers.context import ServerContext
from mailwarden.servers.listener import server_tls_context
from mailwarden.store.sqlite import SqliteStore
from mailwarden.tlscert import make_self_signed

SHED_ALL = AuthPolicy(source_pending=0, failure_delay_base=0.0, banned_delay=0.0)


async def started(tmp_path: Path, module: str, policy: AuthPolicy):
    servers = pytest.importorskip(f"mailwarden.servers.{module}")
    store = await SqliteStore.open(tmp_path / "db.sqlite", tmp_path / "blobs")
    hasher = PasswordHasher(FAST)
    await store.add_domain("example.test")
    await store.add_account(Address.parse(USERS[0]), hasher.hash(PASSWORD))
    auth = AuthService(store, hasher, VerifyPool(1, 4), policy=policy)
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    make_self_signed(cert, key, "localhost")
    ctx = ServerContext(
        store=store,
        auth=auth,
        tls=server_tls_context(str(cert), str(key)),
        hostname="localhost",
    )
    config = Config(
        listen="127.0.0.1",
        imap=replace(ImapConfig(), port=0, tls_port=0),
        pop3=replace(Pop3Config(), port=0, tls_port=0),
        smtp=replace(SmtpConfig(), port=0),
        submission=replace(SubmissionConfig(), port=0, tls_port=0),
    )
    listeners = servers.make_listeners(ctx, config)
    for listener in listeners:
        await listener.start()
    return store, auth, listeners


@pytest.fixture
async def node(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[tuple]:
    module, policy = request.param
    store, auth, listeners = await started(tmp_path, module, policy)
    try:
        yield auth, listeners
    finally:
        for listener in listeners:
            await listener.stop(grace=1.0)
        await auth.close()
        await store.close()


async def exchange(port: int, lines: list[bytes], replies: int) -> list[bytes]:
    """Send each line after reading the greeting; return every line read."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    out: list[bytes] = []
    try:
        async with asyncio.timeout(20):
            out.append(await reader.readline())
            for line in lines:
                writer.write(line + b"\r\n")
                await writer.drain()
                while True:
                    got = await reader.readline()
                    out.append(got)
                    # multi-line SMTP replies continue with "-"
                    if not (got[:3].isdigit() and got[3:4] == b"-"):
                        break
            while len(out) < replies:
                out.append(await reader.readline())
    finally:
        writer.close()
    return out


def plain(user: str, password: str) -> bytes:
    return base64.b64encode(f"\0{user}\0{password}".encode())


@pytest.mark.parametrize("node", [("imap", SHED_ALL)], indirect=True)
async def test_imap_says_unavailable(node) -> None:
    _, listeners = node
    out = await exchange(listeners[0].port, [f'a LOGIN {USERS[0]} "{PASSWORD}"'.encode()], 2)
    assert out[-1].startswith(b"a NO [UNAVAILABLE]")


@pytest.mark.parametrize("node", [("pop3", SHED_ALL)], indirect=True)
async def test_pop3_says_sys_temp(node) -> None:
    _, listeners = node
    out = await exchange(
        listeners[0].port, [f"USER {USERS[0]}".encode(), f"PASS {PASSWORD}".encode()], 3
    )
    assert out[-1].startswith(b"-ERR [SYS/TEMP]")


@pytest.mark.parametrize("node", [("smtp", SHED_ALL)], indirect=True)
async def test_smtp_says_454(node) -> None:
    _, listeners = node
    submission = next(lst for lst in listeners if lst.handler.name.startswith("submission"))
    out = await exchange(
        submission.port, [b"EHLO client.test", b"AUTH PLAIN " + plain(USERS[0], PASSWORD)], 3
    )
    assert out[-1].startswith(b"454 4.7.0")


@pytest.mark.parametrize(
    "node",
    [("pop3", AuthPolicy(host_failures=1, failure_delay_base=0.0, banned_delay=0.0))],
    indirect=True,
)
async def test_a_banned_source_gets_the_ordinary_failure(node) -> None:
    auth, listeners = node
    await exchange(listeners[0].port, [f"USER {USERS[0]}".encode(), b"PASS wrong"], 3)
    assert auth.state.bans.active(auth.clock())
    out = await exchange(
        listeners[0].port, [f"USER {USERS[0]}".encode(), f"PASS {PASSWORD}".encode()], 3
    )
    assert out[-1].startswith(b"-ERR [AUTH]")


def test_every_protocol_module_maps_try_later() -> None:
    for module in ("imap", "pop3", "smtp"):
        try:
            source = importlib.import_module(f"mailwarden.servers.{module}").__file__
        except ModuleNotFoundError:
            continue
        assert source is not None
        assert "TryLater" in Path(source).read_text(encoding="utf-8")
