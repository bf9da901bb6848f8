"""POP3 RETR throughput: Mailwarden against Dovecot's pop3d (a benchmark, not a test).

Usage: python bench/pop3/bench.py [--clients C] [--messages M] [--seconds S]

Both servers get the same content: C mailboxes (one per concurrent client,
because POP3 locks a maildrop per session), each holding the same M messages
of 2 to 40 KB (about 10 KB on average, some lines starting with "." so that
byte-stuffing has work to do).  Dovecot runs from a temporary configuration on
loopback with Maildir storage, plaintext logins and no TLS; Mailwarden runs
the real POP3 shell (``servers/pop3.py``) on its SQLite store in a separate
process, with uvloop when installed, as ``mailwarden serve`` does.

Each client loops for S seconds: connect, USER/PASS, RETR 1..M one at a time
(as fetchmail does), QUIT without deleting.  One warm-up pass first (Dovecot
builds its index then).  Printed: messages/s and MB/s for each server and the
ratio Mailwarden/Dovecot.  Needs the dovecot-pop3d package and root (Dovecot
drops to ``nobody`` for the mail processes).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
PASSWORD = "secret"
ROOT = Path(__file__).resolve().parents[2]


def make_messages(count: int) -> list[bytes]:
    """Deterministic text messages, 2-40 KB, CRLF, some lines starting with '.'."""
    rng = random.Random(1939)
    words = [
        "mail",
        "warden",
        "pop",
        "retrieve",
        "octet",
        "maildrop",
        "update",
        "quit",
        ".dot",
    ]
    out = []
    for i in range(count):
        size = rng.choice([2_000, 4_000, 6_000, 8_000, 10_000, 12_000, 16_000, 40_000])
        header = (
            f"From: Bench <bench@x.test>\r\nTo: user@example.test\r\nSubject: message {i}\r\n"
            f"Message-ID: <{i}.pop3bench@x.test>\r\nDate: Mon, 02 Jan 2023 10:00:00 +0000\r\n"
            "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
        ).encode()
        body = bytearray()
        while len(body) < size:
            line = " ".join(rng.choice(words) for _ in range(rng.randint(3, 12)))
            body += line.encode() + b"\r\n"
        out.append(header + bytes(body))
    return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# --- the load ----------------------------------------------------------------------


@dataclass
class Tally:
    messages: int = 0
    octets: int = 0


async def client(
    port: int, user: str, count: int, deadline: float, tally: Tally, *, once: bool = False
) -> None:
    """Fetch the whole maildrop over and over until the deadline (or just once)."""
    while once or time.monotonic() < deadline:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            await reader.readline()
            writer.write(f"USER {user}\r\nPASS {PASSWORD}\r\n".encode())
            await reader.readline()
            status = await reader.readline()
            if not status.startswith(b"+OK"):
                raise RuntimeError(f"login failed for {user}: {status!r}")
            for n in range(1, count + 1):
                writer.write(b"RETR %d\r\n" % n)
                status = await reader.readline()
                if not status.startswith(b"+OK"):
                    raise RuntimeError(f"RETR {n} failed: {status!r}")
                body = await reader.readuntil(b"\r\n.\r\n")
                tally.messages += 1
                tally.octets += len(body)
                if not once and time.monotonic() >= deadline:
                    break
            writer.write(b"QUIT\r\n")
            await reader.readline()
        finally:
            writer.close()
            await writer.wait_closed()
        if once:
            return


async def load(port: int, users: list[str], count: int, seconds: float) -> tuple[float, Tally]:
    # Warm-up: one full pass per mailbox (Dovecot indexes the Maildir then).
    await asyncio.gather(*(client(port, u, count, 0.0, Tally(), once=True) for u in users))
    tally = Tally()
    start = time.monotonic()
    await asyncio.gather(*(client(port, u, count, start + seconds, tally) for u in users))
    return time.monotonic() - start, tally


def report(name: str, elapsed: float, tally: Tally) -> float:
    rate = tally.messages / elapsed
    print(
        f"{name:<11} {rate:10.0f} msg/s {tally.octets / elapsed / 1e6:8.1f} MB/s"
        f"   ({tally.messages} messages in {elapsed:.1f} s)"
    )
    return rate


# --- Dovecot -----------------------------------------------------------------------

DOVECOT_CONF = """\
base_dir = {dir}/run
state_dir = {dir}/state
log_path = {dir}/dovecot.log
protocols = pop3
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
first_valid_uid = 1
mail_location = maildir:~/Maildir
passdb {{
  driver = static
  args = password={password}
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={dir}/home/%u
}}
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
"""


def start_dovecot(
    directory: Path, users: list[str], messages: list[bytes]
) -> tuple[int, subprocess.Popen[bytes]]:
    """Start a temporary Dovecot in the foreground; return (port, its master process)."""
    dovecot = shutil.which("dovecot") or "/usr/sbin/dovecot"
    nobody = pwd.getpwnam("nobody")
    port = free_port()
    for sub in ("run", "state"):
        (directory / sub).mkdir()
    for user in users:
        maildir = directory / "home" / user / "Maildir"
        for sub in ("cur", "new", "tmp"):
            (maildir / sub).mkdir(parents=True)
        for i, raw in enumerate(messages):
            name = f"{1_700_000_000 + i}.M{i}P1.bench,S={len(raw)}:2,S"
            (maildir / "cur" / name).write_bytes(raw)
    for path in [directory / "home", *(directory / "home").rglob("*")]:
        os.chown(path, nobody.pw_uid, nobody.pw_gid)
    directory.chmod(0o755)
    conf = directory / "dovecot.conf"
    conf.write_text(
        DOVECOT_CONF.format(
            dir=directory,
            password=PASSWORD,
            uid=nobody.pw_uid,
            gid=nobody.pw_gid,
            port=port,
        )
    )
    proc = subprocess.Popen(
        [dovecot, "-F", "-c", str(conf)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
    except BaseException:
        stop(proc)
        raise
    return port, proc


def stop(proc: subprocess.Popen[Any]) -> None:
    """Stop a server we started (SIGTERM, then SIGKILL)."""
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


# --- Mailwarden (its own process) ---------------------------------------------------


async def serve_mailwarden(directory: Path, users: int, messages: int) -> None:
    """Child process: a store with the bench content and the POP3 shell on a free port."""
    sys.path.insert(0, str(ROOT / "src"))
    from mailwarden.auth.passwords import HashParams, PasswordHasher, VerifyPool
    from mailwarden.auth.policy import AuthPolicy
    from mailwarden.auth.service import AuthService
    from mailwarden.config import Pop3Config
    from mailwarden.mail.address import Address
    from mailwarden.servers.context import ServerContext
    from mailwarden.servers.listener import ConnectionLimiter, Listener, server_tls_context
    from mailwarden.servers.pop3 import MaildropLocks, Pop3Handler
    from mailwarden.store.sqlite import SqliteStore
    from mailwarden.tlscert import make_self_signed

    store = await SqliteStore.open(directory / "db.sqlite", directory / "blobs")
    # Logins are a small part of this benchmark; keep argon2id cheap like Dovecot's static passdb.
    hasher = PasswordHasher(HashParams(memory_kib=1024, time_cost=1, parallelism=1))
    await store.add_domain("example.test")
    accounts = []
    for i in range(users):
        account = await store.add_account(
            Address.parse(f"user{i}@example.test"), hasher.hash(PASSWORD)
        )
        accounts.append(account.id)
    for raw in make_messages(messages):
        await store.deliver(accounts, raw)
    make_self_signed(directory / "cert.pem", directory / "key.pem", "localhost")
    ctx = ServerContext(
        store=store,
        # All clients come from 127.0.0.1: let them log in at once (Dovecot's
        # static passdb does not throttle either).
        auth=AuthService(store, hasher, VerifyPool(2, 64), policy=AuthPolicy(source_pending=64)),
        tls=server_tls_context(str(directory / "cert.pem"), str(directory / "key.pem")),
        hostname="localhost",
    )
    config = Pop3Config(max_connections_per_ip=1000)
    handler = Pop3Handler(ctx, config, implicit_tls=False, locks=MaildropLocks())
    listener = Listener(handler, "127.0.0.1", 0, limiter=ConnectionLimiter(1000))
    await listener.start()
    print(listener.port, flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await listener.stop(grace=1.0)
    await store.close()


def start_mailwarden(
    directory: Path, users: int, messages: int
) -> tuple[int, subprocess.Popen[str]]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve-mailwarden", str(directory), str(users), str(messages)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    try:
        port = int(proc.stdout.readline())
    except BaseException:
        stop(proc)
        raise
    return port, proc


# --- main ----------------------------------------------------------------------------


def run_loop(coro: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    result: T = uvloop.run(coro)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--serve-mailwarden", nargs=3, metavar=("DIR", "USERS", "MESSAGES"))
    args = parser.parse_args()
    if args.serve_mailwarden:
        directory, users, messages = args.serve_mailwarden
        run_loop(serve_mailwarden(Path(directory), int(users), int(messages)))
        return

    messages = make_messages(args.messages)
    total = sum(len(m) for m in messages)
    print(
        f"{args.clients} clients, {args.messages} messages per maildrop "
        f"({total / args.messages / 1024:.1f} KB on average), {args.seconds:.0f} s per server"
    )
    with tempfile.TemporaryDirectory(prefix="pop3bench-") as tmp:
        base = Path(tmp)
        (base / "dovecot").mkdir()
        (base / "mailwarden").mkdir()
        base.chmod(0o755)

        users = [f"user{i}@example.test" for i in range(args.clients)]
        port, dovecot = start_dovecot(base / "dovecot", users, messages)
        try:
            elapsed, tally = run_loop(load(port, users, args.messages, args.seconds))
        finally:
            stop(dovecot)
        dovecot_rate = report("dovecot", elapsed, tally)

        port, proc = start_mailwarden(base / "mailwarden", args.clients, args.messages)
        try:
            elapsed, tally = run_loop(load(port, users, args.messages, args.seconds))
        finally:
            stop(proc)
        mailwarden_rate = report("mailwarden", elapsed, tally)
    print(f"ratio mailwarden/dovecot: {mailwarden_rate / dovecot_rate:.2f}")


if __name__ == "__main__":
    main()
