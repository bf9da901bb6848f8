"""The webmail bench's data: accounts with large mailboxes in a SQLite store (not a test).

:func:`prepare` builds (or reuses, when a previous run left it complete) a data
directory holding the store: ``--accounts`` bench accounts (``bench0@...``),
each with the same ``--messages`` messages in INBOX, delivered once per
message to every account (stored once, shared, as real deliveries are).  The
mix is like a real inbox: mostly plain text, a quarter ``multipart/alternative``
with an HTML part (with a remote image, so the blocking path runs), one in
twenty with a small PDF attachment, and some replies that form conversations.

With ``flood`` the 1,000 accounts of ``bench/flood`` (``user0@...`` with its
cached argon2id hashes) are added too, so its attackers guess at real
mailboxes.
"""

from __future__ import annotations

import asyncio
import base64
import importlib.util
import json
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DOMAIN = "example.test"
PASSWORD = "bench password 1"
WORDS = [
    *("mail", "report", "lunch", "plan", "budget", "meeting", "quarterly", "numbers"),
    *("review", "draft", "invoice", "holiday", "schedule", "release", "notes"),
    *("server", "outage", "coffee", "design", "proposal"),
]


def load_flood() -> Any:
    """``bench/flood/bench.py`` as a module (its helpers: users, hashes, attackers)."""
    spec = importlib.util.spec_from_file_location("flood_bench", ROOT / "bench/flood/bench.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["flood_bench"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def bench_user(i: int) -> str:
    """The login address of bench account ``i``."""
    return f"bench{i}@{DOMAIN}"


def _words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def message(i: int) -> bytes:
    """Message ``i`` of every bench mailbox (deterministic)."""
    rng = random.Random(i)
    sender = i % 97
    topic = _words(rng, 4)
    thread = i // 5 if i % 5 else None  # some replies: conversations of a few messages
    subject = f"Re: Thread {thread} {topic}" if thread is not None else f"Message {i} {topic}"
    head = (
        f"From: Sender {sender} <s{sender}@remote.test>\r\nTo: {bench_user(0)}\r\n"
        f"Subject: {subject}\r\n"
        f"Date: Tue, {1 + i % 28:02d} Nov 2023 {i % 24:02d}:{i % 60:02d}:00 +0000\r\n"
        f"Message-ID: <{i}@remote.test>\r\nMIME-Version: 1.0\r\n"
    )
    if thread is not None:
        head += (
            f"In-Reply-To: <{thread * 5}@remote.test>\r\nReferences: <{thread * 5}@remote.test>\r\n"
        )
    paragraphs = [_words(rng, 60) for _ in range(6)]
    text = "\r\n\r\n".join(paragraphs) + "\r\n"
    if i % 20 == 7:
        pdf = base64.encodebytes(bytes(rng.getrandbits(8) for _ in range(6000))).decode()
        body = (
            'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
            f"--b1\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n"
            f"--b1\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n"
            f'Content-Disposition: attachment; filename="report-{i}.pdf"\r\n\r\n'
            f"{pdf.replace(chr(10), chr(13) + chr(10))}\r\n--b1--\r\n"
        )
    elif i % 4 == 1:
        html = "".join(f"<p style='margin:0 0 1em'>{p}</p>" for p in paragraphs)
        html = (
            f"<html><body><h2>{topic}</h2>{html}"
            f'<img src="https://tracker.remote.test/{i}.png" width="1" height="1"></body></html>'
        )
        body = (
            'Content-Type: multipart/alternative; boundary="b2"\r\n\r\n'
            f"--b2\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n"
            f"--b2\r\nContent-Type: text/html; charset=utf-8\r\n\r\n{html}\r\n--b2--\r\n"
        )
    else:
        body = f"Content-Type: text/plain; charset=utf-8\r\n\r\n{text}"
    return (head + body).encode()


async def _fill(directory: Path, messages: int, accounts: int, flood: bool) -> None:
    from mailwarden.auth.passwords import HashParams, PasswordHasher
    from mailwarden.mail.address import Address
    from mailwarden.store.sqlite import SqliteStore

    store = await SqliteStore.open(directory / "db.sqlite", directory / "blobs")
    try:
        # The node's argon2id parameters (config defaults), so logins cost what they do.
        hasher = PasswordHasher(HashParams(19456, 2, 1))
        await store.add_domain(DOMAIN)
        ids = []
        for i in range(accounts):
            account = await store.add_account(Address.parse(bench_user(i)), hasher.hash(PASSWORD))
            await store.set_quota(account.id, quota_bytes=0, quota_messages=0)
            ids.append(account.id)
        sem = asyncio.Semaphore(32)

        async def one(i: int) -> None:
            async with sem:
                await store.deliver(ids, message(i))

        started = time.perf_counter()
        for start in range(0, messages, 1000):
            await asyncio.gather(*(one(i) for i in range(start, min(messages, start + 1000))))
            print(f"  filled {min(messages, start + 1000)}/{messages}", file=sys.stderr)
        print(f"  fill took {time.perf_counter() - started:.1f}s", file=sys.stderr)
        if flood:
            flood_bench = load_flood()
            cache = Path("/tmp/mailwarden-flood-hashes.json")  # bench/flood's cache
            print("  hashing bench/flood's 1,000 passwords (cached)...", file=sys.stderr)
            for i, stored in enumerate(flood_bench.hashes(cache)):
                await store.add_account(Address.parse(flood_bench.user(i)), stored)
    finally:
        await store.close()


def prepare(directory: Path, messages: int, accounts: int, flood: bool) -> None:
    """Make ``directory`` hold the bench store, reusing a complete earlier one."""
    marker = directory / "ready.json"
    wanted = {"messages": messages, "accounts": accounts, "flood": flood, "version": 2}
    if marker.exists():
        found = json.loads(marker.read_text())
        if found == wanted or (flood is False and found == {**wanted, "flood": True}):
            print(f"  reusing the bench store in {directory}", file=sys.stderr)
            return
    directory.mkdir(parents=True, exist_ok=True)
    for path in directory.iterdir():  # only what an earlier run made
        if path.name.startswith(("db", "ready", "webmail", "drain", "traffic")):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    shutil.rmtree(directory / "blobs", ignore_errors=True)
    asyncio.run(_fill(directory, messages, accounts, flood))
    marker.write_text(json.dumps(wanted))
