"""Store append and read rates with 10 KB messages (a benchmark, not a test).

Usage: python bench/store.py [--messages N] [--concurrency C]

Appends N messages of 10 KB to one mailbox through the Store interface (blob
fsync + committed transaction per append, C appends in flight), then reads them
all back (raw octets) and fetches their facts, and prints messages per second.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

from mailwarden.mail.address import Address
from mailwarden.store.sqlite import SqliteStore


def make_message(i: int) -> bytes:
    body = (os.urandom(5000).hex() + "\r\n").encode()
    lines = b"".join(body[j : j + 76] + b"\r\n" for j in range(0, len(body), 76))
    header = (
        f"From: Bench <bench@x.test>\r\nTo: demo@example.test\r\nSubject: message {i}\r\n"
        f"Message-ID: <{i}@x.test>\r\nDate: Mon, 02 Jan 2023 10:00:00 +0000\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
    ).encode()
    return (header + lines)[:10240]


async def run(messages: int, concurrency: int, directory: Path) -> None:
    store = await SqliteStore.open(directory / "db.sqlite", directory / "blobs")
    await store.add_domain("example.test")
    account = await store.add_account(Address.parse("demo@example.test"), "x")
    payloads = [make_message(i) for i in range(messages)]
    queue = list(enumerate(payloads))

    async def worker() -> None:
        while queue:
            _, raw = queue.pop()
            await store.append(account.id, "INBOX", raw)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    append_s = time.perf_counter() - start

    inbox = await store.get_folder(account.id, "INBOX")
    entries = await store.list_entries(account.id, inbox.id)
    uids = [e.uid for e in entries]
    start = time.perf_counter()
    pending = list(uids)

    async def reader() -> None:
        while pending:
            await store.read_message(account.id, inbox.id, pending.pop())

    await asyncio.gather(*(reader() for _ in range(concurrency)))
    read_s = time.perf_counter() - start
    start = time.perf_counter()
    for i in range(0, len(uids), 500):
        await store.get_facts(account.id, inbox.id, uids[i : i + 500])
    facts_s = time.perf_counter() - start

    single = payloads[:200]
    start = time.perf_counter()
    for raw in single:
        await store.append(account.id, "Archive", raw)
    serial_s = time.perf_counter() - start
    await store.close()

    print(f"messages: {messages} x {len(payloads[0])} bytes, concurrency {concurrency}")
    print(f"append (concurrent): {messages / append_s:8.0f} msg/s")
    print(f"append (one at a time): {len(single) / serial_s:8.0f} msg/s")
    print(f"read raw (concurrent): {messages / read_s:8.0f} msg/s")
    print(f"read facts (batches of 500): {messages / facts_s:8.0f} msg/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--dir", type=Path, help="where to put the store (default: a temp dir)")
    args = parser.parse_args()
    if args.dir:
        args.dir.mkdir(parents=True, exist_ok=True)
        asyncio.run(run(args.messages, args.concurrency, args.dir))
    else:
        with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
            asyncio.run(run(args.messages, args.concurrency, Path(tmp)))


if __name__ == "__main__":
    main()
