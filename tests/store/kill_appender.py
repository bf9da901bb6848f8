"""Child process for the kill test: appends forever, reporting each append that returned.

Usage: python kill_appender.py DATA_DIR INLINE_MAX
Prints "ready" once, then one line "UID SHA256" per append *after* it returned.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import sys
from pathlib import Path

from mailwarden.mail.address import Address
from mailwarden.store.sqlite import SqliteStore


async def main(data: Path, inline_max: int) -> None:
    store = await SqliteStore.open(data / "db.sqlite", data / "blobs", inline_max=inline_max)
    await store.add_domain("example.test")
    account = await store.add_account(Address.parse("demo@example.test"), "h")
    print("ready", flush=True)

    async def writer(n: int) -> None:
        i = 0
        while True:
            i += 1
            body = os.urandom(5000).hex().encode()
            raw = b"Subject: w%d-%d\r\n\r\n%s\r\n" % (n, i, body)
            result = await store.append(account.id, "INBOX", raw)
            sys.stdout.write(f"{result.uid} {hashlib.sha256(raw).hexdigest()}\n")
            sys.stdout.flush()

    await asyncio.gather(*(writer(n) for n in range(8)))


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), int(sys.argv[2])))
