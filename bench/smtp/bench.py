"""SMTP inbound acceptance rate: Mailwarden against Postfix (a benchmark, not a test).

Usage: python bench/smtp/bench.py [--clients C] [--seconds S] [--size BYTES]

Both servers take the same load: C concurrent senders (50 by default), each on
its own connection, sending 10 KB messages for S seconds to ten local
mailboxes, with the envelope pipelined (RFC 2920) as real MTAs do.  A message
counts when its final ``250`` arrives.

* Mailwarden runs the real MX shell (``servers/smtp.py``) on its SQLite store in
  a separate process, with uvloop when installed, as ``mailwarden serve`` does.
  Its ``250`` means: parsed, blob fsynced, delivered to the INBOX, committed.
* Postfix runs from a temporary configuration (its own queue, loopback port,
  no chroot) delivering with ``virtual(8)`` into a Maildir.  Its ``250`` means:
  queued (fsynced); delivery into the Maildir follows, so the time until every
  accepted message is in the Maildir is printed too.

Printed: messages/s for each, and the ratio Mailwarden/Postfix.  Needs root
(Postfix's master runs as root and drops to ``postfix``) and the postfix package.
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
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
USERS = [f"user{i}@bench.test" for i in range(10)]

MW_SERVER = """
import asyncio, sys
from pathlib import Path
from mailwarden.auth.passwords import HashParams, PasswordHasher, VerifyPool
from mailwarden.auth.service import AuthService
from mailwarden.config import Config, SmtpConfig, SubmissionConfig
from mailwarden.mail.address import Address
from mailwarden.servers.context import ServerContext
from mailwarden.servers.listener import server_tls_context
from mailwarden.servers.smtp import make_listeners
from mailwarden.store.sqlite import SqliteStore
from mailwarden.tlscert import make_self_signed

async def main(data, users):
    store = await SqliteStore.open(data / "db.sqlite", data / "blobs")
    hasher = PasswordHasher(HashParams(memory_kib=64, time_cost=1, parallelism=1))
    await store.add_domain("bench.test")
    for user in users:
        await store.add_account(Address.parse(user), hasher.hash("x"))
    make_self_signed(data / "cert.pem", data / "key.pem", "localhost")
    ctx = ServerContext(store=store, auth=AuthService(store, hasher, VerifyPool(1, 4)),
        tls=server_tls_context(str(data / "cert.pem"), str(data / "key.pem")),
        hostname="mx.bench.test")
    config = Config(listen="127.0.0.1", smtp=SmtpConfig(port=0, max_connections_per_ip=1000),
        submission=SubmissionConfig(enabled=False))
    (listener,) = make_listeners(ctx, config)
    await listener.start()
    print(f"port {listener.port}", flush=True)
    await asyncio.Event().wait()

try:
    import uvloop
    run = uvloop.run
except ImportError:
    run = asyncio.run
run(main(Path(sys.argv[1]), sys.argv[2:]))
"""


def make_message(rng: random.Random, size: int, n: int) -> bytes:
    """A text message of about ``size`` octets, CRLF lines, some starting with '.'."""
    words = ["mail", "warden", "smtp", "postfix", "queue", "deliver", ".dot", "octet"]
    lines = [f"Subject: bench {n}".encode(), b"From: load@sender.test", b""]
    total = 60
    while total < size:
        line = " ".join(rng.choice(words) for _ in range(12)).encode()
        lines.append(line)
        total += len(line) + 2
    return b"\r\n".join(lines) + b"\r\n"


@dataclass
class Tally:
    accepted: int = 0
    refused: int = 0


async def _reply(reader: asyncio.StreamReader) -> bytes:
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("server closed the connection")
        if line[3:4] != b"-":
            return line


async def sender(port: int, index: int, size: int, deadline: float, tally: Tally) -> None:
    rng = random.Random(index)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await _reply(reader)
    writer.write(b"EHLO load.sender.test\r\n")
    await _reply(reader)
    n = 0
    while time.monotonic() < deadline:
        body = make_message(rng, size, n).replace(b"\r\n.", b"\r\n..")
        rcpt = USERS[(index + n) % len(USERS)].encode()
        writer.write(b"MAIL FROM:<load@sender.test>\r\nRCPT TO:<" + rcpt + b">\r\nDATA\r\n")
        codes = [(await _reply(reader))[:1] for _ in range(3)]
        if codes != [b"2", b"2", b"3"]:
            tally.refused += 1
            writer.write(b"RSET\r\n")
            await _reply(reader)
            continue
        writer.write(body + b".\r\n")
        if (await _reply(reader)).startswith(b"250"):
            tally.accepted += 1
        else:
            tally.refused += 1
        n += 1
    writer.write(b"QUIT\r\n")
    await _reply(reader)
    writer.close()


async def load(port: int, clients: int, size: int, seconds: float) -> tuple[float, Tally]:
    tally = Tally()
    start = time.monotonic()
    deadline = start + seconds
    await asyncio.gather(*(sender(port, i, size, deadline, tally) for i in range(clients)))
    return time.monotonic() - start, tally


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 30) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port}")


# --- Postfix -------------------------------------------------------------------


def postfix_config(d: Path, port: int) -> Path:
    pw = pwd.getpwnam("postfix")
    etc, spool, data, mail = d / "etc", d / "spool", d / "data", d / "mail"
    for p in (etc, spool, data, mail):
        p.mkdir(parents=True)
    os.chown(data, pw.pw_uid, pw.pw_gid)
    os.chown(mail, pw.pw_uid, pw.pw_gid)
    (etc / "main.cf").write_text(
        f"""compatibility_level = 3.6
queue_directory = {spool}
data_directory = {data}
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = mx.bench.localhost
mydestination =
mynetworks = 127.0.0.0/8
virtual_mailbox_domains = bench.test
virtual_mailbox_base = {mail}
virtual_mailbox_maps = static:maildir/
virtual_uid_maps = static:{pw.pw_uid}
virtual_gid_maps = static:{pw.pw_gid}
virtual_minimum_uid = 1
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_recipient_restrictions = permit_mynetworks, reject
alias_maps =
alias_database =
local_recipient_maps =
maillog_file = {d}/maillog
maillog_file_prefixes = {d}
default_process_limit = 200
message_size_limit = 52428800
virtual_mailbox_limit = 0
smtputf8_enable = yes
biff = no
"""
    )
    master = []
    for line in Path("/etc/postfix/master.cf").read_text().splitlines():
        fields = line.split()
        if fields and not line[0].isspace() and not line.startswith("#") and len(fields) >= 8:
            if fields[:2] == ["smtp", "inet"]:
                fields[0] = f"127.0.0.1:{port}"
            fields[4] = "n"  # no chroot: the temporary queue has no chroot tree
            line = "  ".join(fields)
        master.append(line)
    (etc / "master.cf").write_text("\n".join(master) + "\n")
    return etc


def maildir_count(d: Path) -> int:
    return (
        sum(1 for _ in (d / "mail" / "maildir" / "new").glob("*"))
        if (d / "mail" / "maildir" / "new").exists()
        else 0
    )


def bench_postfix(args: argparse.Namespace, tmp: Path) -> tuple[float, float] | None:
    if shutil.which("postfix") is None or os.geteuid() != 0:
        print("postfix: skipped (needs the postfix package and root)")
        return None
    d = tmp / "postfix"
    port = free_port()
    etc = postfix_config(d, port)
    for action in (["set-permissions", "create-missing"], ["start"]):
        subprocess.run(["postfix", "-c", str(etc), *action], check=True, capture_output=True)
    try:
        wait_port(port)
        asyncio.run(load(port, 2, args.size, 1.0))  # warm-up
        base = maildir_count(d)
        elapsed, tally = asyncio.run(load(port, args.clients, args.size, args.seconds))
        rate = tally.accepted / elapsed
        start = time.monotonic()
        while maildir_count(d) - base < tally.accepted and time.monotonic() - start < 120:
            time.sleep(0.1)
        drained = time.monotonic() - start
        delivered = maildir_count(d) - base
        print(
            f"postfix:    {tally.accepted:6d} accepted in {elapsed:5.1f} s = {rate:7.1f} msg/s"
            f"  (refused {tally.refused}; all {delivered} in the Maildir {drained:.1f} s later,"
            f" {delivered / (elapsed + drained):.1f} msg/s end to end)"
        )
        return rate, delivered / (elapsed + drained)
    finally:
        subprocess.run(["postfix", "-c", str(etc), "stop"], check=False, capture_output=True)


def bench_mailwarden(args: argparse.Namespace, tmp: Path) -> float:
    d = tmp / "mailwarden"
    d.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    child = subprocess.Popen(
        [sys.executable, "-c", MW_SERVER, str(d), *USERS],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert child.stdout is not None
        port = int(child.stdout.readline().split()[1])
        asyncio.run(load(port, 2, args.size, 1.0))  # warm-up
        elapsed, tally = asyncio.run(load(port, args.clients, args.size, args.seconds))
        rate = tally.accepted / elapsed
        print(
            f"mailwarden: {tally.accepted:6d} accepted in {elapsed:5.1f} s = {rate:7.1f} msg/s"
            f"  (refused {tally.refused}; each in its INBOX and committed before its 250)"
        )
        return rate
    finally:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--size", type=int, default=10_000)
    args = parser.parse_args()
    print(f"{args.clients} senders, {args.size}-octet messages, {args.seconds:.0f} s each")
    with tempfile.TemporaryDirectory(prefix="mw-smtp-bench-") as name:
        tmp = Path(name)
        os.chmod(tmp, 0o755)
        mw = bench_mailwarden(args, tmp)
        pf = bench_postfix(args, tmp)
    if pf is not None:
        print(f"ratio mailwarden/postfix (acceptance): {mw / pf[0]:.2f}")
        print(f"ratio mailwarden/postfix (end to end): {mw / pf[1]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
