"""A child process for the SMTP kill test: the MX listener on a fresh store.

Usage: ``python smtp_kill_server.py DATA_DIR``.  Prints ``port N`` once it
listens, then serves until it is killed.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from smtp_harness import TEST_HASH, populate
from smtp_transcript import HOSTNAME

from mailwarden.auth.passwords import PasswordHasher, VerifyPool
from mailwarden.auth.service import AuthService
from mailwarden.config import Config, SmtpConfig, SubmissionConfig
from mailwarden.servers.context import ServerContext
from mailwarden.servers.listener import server_tls_context
from mailwarden.servers.smtp import make_listeners
from mailwarden.store.sqlite import SqliteStore
from mailwarden.tlscert import make_self_signed


async def main(data: Path) -> None:
    store = await SqliteStore.open(data / "db.sqlite", data / "blobs")
    hasher = PasswordHasher(TEST_HASH)
    await populate(store, hasher)
    make_self_signed(data / "cert.pem", data / "key.pem", "localhost")
    ctx = ServerContext(
        store=store,
        auth=AuthService(store, hasher, VerifyPool(1, 4)),
        tls=server_tls_context(str(data / "cert.pem"), str(data / "key.pem")),
        hostname=HOSTNAME,
    )
    config = Config(
        listen="127.0.0.1",
        smtp=SmtpConfig(port=0, max_connections_per_ip=100),
        submission=SubmissionConfig(enabled=False),
    )
    (listener,) = make_listeners(ctx, config)
    await listener.start()
    print(f"port {listener.port}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))
