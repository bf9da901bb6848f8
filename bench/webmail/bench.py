"""Webmail benchmark: list and view latency with many sessions on a large mailbox.

Not a test.  Builds a SQLite store in a temporary directory with one account
holding ``--messages`` messages (default 10,000), logs in ``--sessions``
browsers (default 100), then has every session load message-list pages and
message views concurrently through the ASGI app in-process.  Server time is
measured inside the app (from the request reaching the app to the last body
byte), so it includes queueing on the event loop but no client or network
cost.  Also reports first-load page weight (login page, inbox, CSS, JS).

    .venv/bin/python bench/webmail/bench.py [--messages N] [--sessions N] [--rounds N]

Goals from issue 6: p95 <= 50 ms server time; first load <= 150 KB.  The
"while bench/flood runs" figure needs bench/flood (not present when this was
written): run it in another shell against the same node and rerun this.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import statistics
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Any

import httpx

from mailwarden.admin.drain import DrainSwitch
from mailwarden.admin.traffic import TrafficRecorder
from mailwarden.auth.passwords import HashParams, PasswordHasher, VerifyPool
from mailwarden.auth.service import AuthService
from mailwarden.delivery import Delivery, SendingLimits
from mailwarden.mail.address import Address
from mailwarden.store.sqlite import SqliteStore
from mailwarden.web.app import make_app
from mailwarden.web.webmail import WebmailDeps
from mailwarden.web.webmail.prefs import SqlitePrefs
from mailwarden.web.webmail.send import DeliverySubmitter
from mailwarden.web.webmail.sessions import MemorySessions

USER = ("bench@example.test", "bench password 1")


class Timing:
    """ASGI wrapper recording server time per request kind."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.samples: dict[str, list[float]] = {}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        kind = "list" if re.fullmatch(r"/mail/\d+", path) else "other"
        if re.fullmatch(r"/mail/\d+/\d+", path):
            kind = "view"
        started = time.perf_counter()
        await self.app(scope, receive, send)
        self.samples.setdefault(kind, []).append((time.perf_counter() - started) * 1000)


def _message(i: int) -> bytes:
    words = " ".join(
        random.choice(["mail", "report", "lunch", "plan", "budget"]) for _ in range(60)
    )
    return (
        f"From: Sender {i % 97} <s{i % 97}@remote.test>\r\nTo: {USER[0]}\r\n"
        f"Subject: Message number {i} about {words[:30]}\r\n"
        f"Date: Tue, 14 Nov 2023 {i % 24:02d}:{i % 60:02d}:00 +0000\r\n"
        f"Message-ID: <{i}@remote.test>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        f"{words}\r\n" * 4
    ).encode()


async def _fill(store: SqliteStore, account: Any, count: int) -> None:
    sem = asyncio.Semaphore(64)

    async def one(i: int) -> None:
        async with sem:
            await store.append(account.id, "INBOX", _message(i))

    started = time.perf_counter()
    for start in range(0, count, 1000):
        await asyncio.gather(*(one(i) for i in range(start, min(count, start + 1000))))
        print(f"  filled {min(count, start + 1000)}/{count}", file=sys.stderr)
    print(f"  fill took {time.perf_counter() - started:.1f}s", file=sys.stderr)


async def _login(client: httpx.AsyncClient) -> None:
    page = await client.get("/login")
    token = re.search(r'name="pre_csrf" value="([^"]+)"', page.text)
    assert token
    r = await client.post(
        "/login", data={"pre_csrf": token.group(1), "username": USER[0], "password": USER[1]}
    )
    assert r.status_code == 303, r.status_code


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        store = await SqliteStore.open(tmp / "db.sqlite", tmp / "blobs")
        hasher = PasswordHasher(HashParams(memory_kib=64, time_cost=1, parallelism=1))
        await store.add_domain("example.test")
        account = await store.add_account(Address.parse(USER[0]), hasher.hash(USER[1]))
        await _fill(store, account, args.messages)
        auth = AuthService(store, hasher, VerifyPool(2, 256))
        prefs = SqlitePrefs(tmp / "webmail.db")
        deps = WebmailDeps(
            store=store,
            auth=auth,
            sessions=MemorySessions(idle=3600.0, max_per_account=1000),
            prefs=prefs,
            submitter=DeliverySubmitter(store, Delivery(store, "bench"), SendingLimits(10, 10)),
        )
        node = types.SimpleNamespace(
            store=store,
            auth=auth,
            draining=False,
            drain=DrainSwitch(tmp),
            traffic=TrafficRecorder(tmp),
        )
        app = Timing(make_app(node, deps))  # type: ignore[arg-type]
        transport = httpx.ASGITransport(app=app)
        clients = [
            httpx.AsyncClient(transport=transport, base_url="http://bench.test")
            for _ in range(args.sessions)
        ]
        await asyncio.gather(*(_login(c) for c in clients))
        inbox = (await store.get_folder(account.id, "INBOX")).id

        # First-load weight: login page, then inbox page with its CSS and JS.
        first = clients[0]
        weight = len((await first.get("/login")).content)
        inbox_page = await first.get(f"/mail/{inbox}")
        weight += len(inbox_page.content)
        for asset in re.findall(r'(?:href|src)="(/static/webmail/[^"]+)"', inbox_page.text):
            weight += len((await first.get(asset)).content)

        app.samples.clear()
        statuses: dict[int, int] = {}
        pages = max(1, args.messages // 50)

        async def browse(client: httpx.AsyncClient) -> None:
            for _ in range(args.rounds):
                page = random.randint(1, min(pages, 20))
                sort = random.choice(["date", "date", "from", "subject", "size"])
                r = await client.get(f"/mail/{inbox}?page={page}&sort={sort}")
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                uid = random.randint(1, args.messages)
                r = await client.get(f"/mail/{inbox}/{uid}")
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1

        started = time.perf_counter()
        await asyncio.gather(*(browse(c) for c in clients))
        elapsed = time.perf_counter() - started
        for c in clients:
            await c.aclose()
        print(
            f"webmail bench: {args.messages} messages, {args.sessions} concurrent sessions,"
            f" {args.rounds} rounds"
        )
        for kind in ("list", "view"):
            values = app.samples.get(kind, [])
            print(
                f"  {kind:5s} n={len(values):5d} p50={statistics.median(values):7.1f} ms"
                f" p95={_pct(values, 0.95):7.1f} ms p99={_pct(values, 0.99):7.1f} ms"
                f" max={max(values):7.1f} ms"
            )
        total = sum(len(v) for v in app.samples.values())
        print(f"  statuses {statuses}")
        print(f"  throughput {total / elapsed:.0f} requests/s over {elapsed:.1f}s")
        print(f"  first-load weight {weight / 1024:.1f} KB (login + inbox + CSS + JS)")
        prefs.close()
        await auth.close()
        await store.close()


if __name__ == "__main__":
    asyncio.run(main())
