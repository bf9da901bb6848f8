"""The webmail test world: a real SQLite store, the real auth door, the app in-process."""

from __future__ import annotations

import re
import types
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from mailwarden.admin.drain import DrainSwitch
from mailwarden.admin.traffic import TrafficRecorder
from mailwarden.auth.passwords import HashParams, PasswordHasher, VerifyPool
from mailwarden.auth.service import AuthService
from mailwarden.delivery import Delivery, SendingLimits
from mailwarden.mail.address import Address
from mailwarden.store.sqlite import SqliteStore
from mailwarden.store.sqlite_auth import SqliteAuthState
from mailwarden.web.app import make_app
from mailwarden.web.webmail import WebmailDeps
from mailwarden.web.webmail.prefs import SqlitePrefs
from mailwarden.web.webmail.send import DeliverySubmitter
from mailwarden.web.webmail.sessions import MemorySessions

FAST = HashParams(memory_kib=64, time_cost=1, parallelism=1)
ALICE = ("alice@example.test", "alice password 1")
BOB = ("bob@example.test", "bob password 22")


class Clock:
    """A wall clock the test moves."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


class World:
    """Everything a webmail test touches."""

    def __init__(self, store: SqliteStore, auth: AuthService, deps: WebmailDeps, app: object):
        self.store = store
        self.auth = auth
        self.deps = deps
        self.app = app

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app, client=("203.0.113.5", 40000)),
            base_url="http://mail.example.test",
        )

    async def account(self, address: str):
        found = await self.store.find_account(address)
        assert found is not None
        return found

    async def deliver(self, address: str, raw: bytes, folder: str = "INBOX") -> int:
        account = await self.account(address)
        result = await self.store.append(account.id, folder, raw)
        return result.uid

    async def folder_id(self, address: str, name: str = "INBOX") -> int:
        account = await self.account(address)
        return int((await self.store.get_folder(account.id, name)).id)


@asynccontextmanager
async def make_world(tmp_path: Path) -> AsyncIterator[World]:
    store = await SqliteStore.open(tmp_path / "db.sqlite", tmp_path / "blobs")
    hasher = PasswordHasher(FAST)
    await store.add_domain("example.test")
    for address, password in (ALICE, BOB):
        await store.add_account(Address.parse(address), hasher.hash(password))
    state = await SqliteAuthState.open(tmp_path / "db.sqlite")
    auth = AuthService(store, hasher, VerifyPool(2, 8), state_store=state)
    prefs = SqlitePrefs(tmp_path / "webmail.db")
    clock = Clock()
    deps = WebmailDeps(
        store=store,
        auth=auth,
        sessions=MemorySessions(idle=3600.0),
        prefs=prefs,
        submitter=DeliverySubmitter(
            store, Delivery(store, "mail.example.test"), SendingLimits(20, 100), clock=clock
        ),
        hostname="mail.example.test",
        clock=clock,
    )
    node = types.SimpleNamespace(
        store=store,
        auth=auth,
        draining=False,
        drain=DrainSwitch(tmp_path),
        traffic=TrafficRecorder(tmp_path),
    )
    app = make_app(node, deps)  # type: ignore[arg-type]
    try:
        yield World(store, auth, deps, app)
    finally:
        prefs.close()
        await auth.close()
        await store.close()


_PRE_RE = re.compile(r'name="pre_csrf" value="([^"]+)"')
_CSRF_RE = re.compile(r'data-csrf="([^"]+)"')


async def login(client: httpx.AsyncClient, who: tuple[str, str] = ALICE) -> str:
    """Log in and return the session's CSRF token."""
    page = await client.get("/login")
    match = _PRE_RE.search(page.text)
    assert match, page.text
    response = await client.post(
        "/login", data={"pre_csrf": match.group(1), "username": who[0], "password": who[1]}
    )
    assert response.status_code == 303, response.text
    home = await client.get("/mail", follow_redirects=True)
    found = _CSRF_RE.search(home.text)
    assert found, home.text
    return found.group(1)


def message(
    subject: str = "Hello",
    body: str = "Hi there.",
    sender: str = "Carol <carol@remote.test>",
    to: str = "alice@example.test",
    extra: str = "",
) -> bytes:
    return (
        f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n"
        "Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
        f"Message-ID: <{abs(hash(subject))}@remote.test>\r\n"
        f"{extra}MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n"
    ).encode()
