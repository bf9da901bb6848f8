"""IMAP: Mailwarden against Dovecot on the same content (a benchmark, not a test).

Usage: python bench/imap/bench.py [--messages N] [--idle C] [--dovecot-idle D] [--skip-dovecot]

Both servers get the same mailbox of N messages (100,000 by default, 2-6 KB
each, generated with a fixed seed) and the same client, a raw asyncio IMAP
client over loopback.  Measured, in this order:

* SELECT INBOX (warm: the second SELECT after a first one built any index);
* ``UID FETCH 1:* (UID FLAGS RFC822.SIZE)`` over the whole mailbox;
* full-body FETCH throughput: ``FETCH 1:1000 BODY.PEEK[]`` in MB/s, the first
  body FETCH of the run, then ``FETCH 1001:2000`` once the servers are warm;
* APPEND rate: 1,000 APPENDs of 4 KB, one at a time, messages/s;
* ``SEARCH 1:10000 TEXT <word>`` over 10,000 messages;
* C concurrent IDLE connections (10,000 by default): the server's memory (PSS
  of all its processes) with them idling, minus before they connected; also
  per connection.  ``--dovecot-idle`` opens fewer to Dovecot (one process per
  connection does not fit every machine at 10,000) and scales its figure.

Mailwarden runs the real IMAP shell (``servers/imap.py``) on its SQLite store in
a separate process (uvloop when installed), seeded through ``Store.append``.
Dovecot (Debian's dovecot-imapd) runs from a temporary configuration on
loopback with a Maildir holding the same files, in its high-performance login
mode, one imap process per connection as Debian ships it.  Printed: each
figure for both and the ratio (how many times better Mailwarden is).  Needs
root (Dovecot) and a high open-files limit for the IDLE test (raised here).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pwd
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
USER = "bench@bench.test"
PASSWORD = "benchpass"
WORDS = [
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
    "mike",
    "november",
    "oscar",
    "papa",
    "quebec",
    "romeo",
    "sierra",
    "tango",
    "uniform",
    "victor",
    "whiskey",
    "xray",
]

MW_SERVER = """
import asyncio, sys, time
from pathlib import Path
from mailwarden.auth.passwords import HashParams, PasswordHasher, VerifyPool
from mailwarden.auth.service import AuthService
from mailwarden.config import Config, ImapConfig
from mailwarden.mail.address import Address
from mailwarden.servers.context import ServerContext
from mailwarden.servers.listener import server_tls_context
from mailwarden.servers.imap import make_listeners
from mailwarden.store.sqlite import SqliteStore
from mailwarden.tlscert import make_self_signed

async def main(data, maildir, user, password):
    store = await SqliteStore.open(data / "db.sqlite", data / "blobs")
    hasher = PasswordHasher(HashParams(memory_kib=64, time_cost=1, parallelism=1))
    await store.add_domain("bench.test")
    account = await store.add_account(Address.parse(user), hasher.hash(password))
    files = sorted((maildir / "cur").iterdir())
    sem = asyncio.Semaphore(64)
    async def one(i, f):
        async with sem:
            await store.append(account.id, "INBOX", f.read_bytes(), internal_date=1700000000 + i)
    await asyncio.gather(*(one(i, f) for i, f in enumerate(files)))
    # let the background text index catch up (it follows every commit within a
    # second; a freshly seeded store has all of it to do at once)
    t = time.perf_counter()
    await store.sync_search_index()
    print(f"text index caught up in {time.perf_counter() - t:.1f}s", file=sys.stderr, flush=True)
    cert, key = data / "cert.pem", data / "key.pem"
    make_self_signed(cert, key, "localhost")
    ctx = ServerContext(store=store, auth=AuthService(store, hasher, VerifyPool(2, 64)),
                        tls=server_tls_context(str(cert), str(key)), hostname="localhost")
    imap = ImapConfig(port=0, tls_port=0, max_connections_per_ip=10**6,
                      max_connections_per_user=10**6, idle_timeout=3600)
    listeners = make_listeners(ctx, Config(listen="127.0.0.1", imap=imap))
    for listener in listeners:
        await listener.start()
    print(listeners[0].port, flush=True)
    await asyncio.Event().wait()

try:
    import uvloop
    run = uvloop.run
except ImportError:
    run = asyncio.run
run(main(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], sys.argv[4]))
"""

DOVECOT_CONF = """
base_dir = {base}/run
state_dir = {base}/state
log_path = {base}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain
mail_location = maildir:{base}/mail/%u
first_valid_uid = {uid}
mail_uid = dovecot
mail_gid = dovecot
default_internal_user = dovecot
default_login_user = dovenull
passdb {{
  driver = static
  args = password={password}
}}
userdb {{
  driver = static
  args = uid=dovecot gid=dovecot home={base}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
  service_count = 0
  process_min_avail = 1
  client_limit = {clients}
}}
service imap {{
  process_limit = {clients}
}}
service anvil {{
  client_limit = {anvil}
}}
service auth {{
  client_limit = {anvil}
}}
default_process_limit = {clients}
default_client_limit = {clients}
mail_max_userip_connections = {clients}
"""


def make_message(rng: random.Random, i: int) -> bytes:
    words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(300, 900)))
    body = "\r\n".join(words[j : j + 72] for j in range(0, len(words), 72))
    return (
        f"From: Sender {i % 97} <sender{i % 97}@example.org>\r\n"
        f"To: {USER}\r\nSubject: message {i} {rng.choice(WORDS)}\r\n"
        f"Date: Tue, 14 Nov 2023 22:13:20 +0000\r\nMessage-ID: <{i}@bench.test>\r\n"
        f"\r\n{body}\r\n"
    ).encode()


def write_maildir(path: Path, n: int) -> None:
    rng = random.Random(1)
    for sub in ("cur", "new", "tmp"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (path / "cur" / f"{1700000000 + i}.{i}.bench:2,").write_bytes(make_message(rng, i))


class Client:
    """A minimal IMAP client: commands with tags, responses read until the tag."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.r, self.w, self.n = reader, writer, 0

    @classmethod
    async def connect(cls, port: int, attempts: int = 5) -> Client:
        """Connect and read the greeting, retrying a connection that never greets.

        With thousands of clients connecting at once, a server's accept queue
        (its listen backlog) overflows and the kernel drops the handshake's last
        ACK: the client believes it is connected and waits forever.  A greeting
        that does not come within 15 s is such a case; connect again.
        """
        for attempt in range(attempts):
            r, w = await asyncio.open_connection("127.0.0.1", port, limit=2**24)
            try:
                async with asyncio.timeout(15):
                    greeting = await r.readline()
                if greeting:
                    return cls(r, w)
            except TimeoutError:
                pass
            w.close()
            await asyncio.sleep(0.1 * (attempt + 1))
        raise ConnectionError("no greeting")

    async def cmd(self, text: bytes, literal: bytes | None = None) -> bytes:
        self.n += 1
        tag = b"b%d" % self.n
        if literal is None:
            self.w.write(tag + b" " + text + b"\r\n")
        else:
            self.w.write(tag + b" " + text + b" {%d+}\r\n" % len(literal) + literal + b"\r\n")
        total = 0
        while True:
            line = await self.r.readline()
            if not line:
                raise ConnectionError("server closed")
            total += len(line)
            if line.endswith(b"}\r\n") and b"{" in line:
                size = int(line[line.rindex(b"{") + 1 : -3])
                await self.r.readexactly(size)
                total += size
                continue
            if line.startswith(tag + b" "):
                if not line.startswith(tag + b" OK"):
                    raise RuntimeError(line.decode(errors="replace"))
                return b"%d" % total

    async def close(self) -> None:
        self.w.close()


def rss_of(pids: list[int]) -> int:
    """Memory of the processes in octets: PSS where the kernel reports it, else RSS.

    PSS (proportional set size) charges each shared page to the processes
    sharing it in equal parts, so a server of many processes (Dovecot: one
    per connection) is not charged its shared libraries once per process, as
    summing RSS would.  For one process (Mailwarden) the two hardly differ.
    """
    total = 0
    for pid in pids:
        try:
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
            key = "Pss:"
        except OSError:
            try:
                rollup = Path(f"/proc/{pid}/status").read_text().splitlines()
                key = "VmRSS:"
            except OSError:
                continue
        for line in rollup:
            if line.startswith(key):
                total += int(line.split()[1]) * 1024
                break
    return total


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (one scan of /proc)."""
    children: dict[int, list[int]] = {}
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                ppid = int(Path(p, "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(p.name))
    out, todo = [], [pid]
    while todo:
        cur = todo.pop()
        out.append(cur)
        todo += children.get(cur, [])
    return out


async def measure(
    port: int, pids: list[int], n: int, idle: int, full_idle: int
) -> dict[str, float]:
    """Run every measurement against one server.

    Args:
        idle: IDLE connections to open.
        full_idle: the count to report memory for (``idle`` scaled linearly
            when fewer were opened, as for Dovecot when the machine cannot hold
            one process per connection at the full count).
    """
    out: dict[str, float] = {}
    c = await Client.connect(port)
    await c.cmd(f"LOGIN {USER} {PASSWORD}".encode())
    await c.cmd(b"SELECT INBOX")
    await c.cmd(b"UNSELECT")
    t = time.perf_counter()
    await c.cmd(b"SELECT INBOX")
    out["SELECT (s)"] = time.perf_counter() - t
    t = time.perf_counter()
    await c.cmd(b"UID FETCH 1:* (UID FLAGS RFC822.SIZE)")
    out["UID FETCH 1:* (s)"] = time.perf_counter() - t
    count = min(1000, n)
    t = time.perf_counter()
    size = int(await c.cmd(b"FETCH 1:%d BODY.PEEK[]" % count))
    out["body FETCH (MB/s)"] = size / 1e6 / (time.perf_counter() - t)
    if n >= 2 * count:
        # the next 1,000: the server's caches and threads are up by now
        t = time.perf_counter()
        size = int(await c.cmd(b"FETCH %d:%d BODY.PEEK[]" % (count + 1, 2 * count)))
        out["body FETCH, next (MB/s)"] = size / 1e6 / (time.perf_counter() - t)
    t = time.perf_counter()
    await c.cmd(b"SEARCH 1:%d TEXT zzzneedle" % min(10000, n))
    out["SEARCH TEXT 10k (s)"] = time.perf_counter() - t
    rng = random.Random(2)
    msgs = [make_message(rng, 10**6 + i)[:4096] for i in range(1000)]
    await c.cmd(b"CREATE Bench")
    t = time.perf_counter()
    for m in msgs:
        await c.cmd(b"APPEND Bench", m)
    out["APPEND (msg/s)"] = len(msgs) / (time.perf_counter() - t)
    await c.cmd(b"LOGOUT")
    await c.close()
    if idle:
        before = rss_of(pids_now(pids))
        conns = []
        sem = asyncio.Semaphore(200)

        async def idler() -> None:
            async with sem:
                cl = await Client.connect(port)
                await cl.cmd(f"LOGIN {USER} {PASSWORD}".encode())
                await cl.cmd(b"SELECT INBOX")
                cl.w.write(b"i IDLE\r\n")
                await cl.r.readline()
                conns.append(cl)

        await asyncio.gather(*(idler() for _ in range(idle)))
        await asyncio.sleep(2)
        grown = rss_of(pids_now(pids)) - before
        out["IDLE memory per conn (KB)"] = grown / idle / 1e3
        out[f"memory with {full_idle} IDLE (MB)"] = grown / idle * full_idle / 1e6
        for cl in conns:
            cl.w.close()
    return out


def cpu_ticks(pids: list[int]) -> int:
    """User and system clock ticks used so far by the processes."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, ValueError, IndexError):
            pass
    return total


def settle(roots: list[int], name: str, limit: float = 300.0) -> None:
    """Wait until the server is idle (seeding leaves work behind: checkpoints, indexes).

    Idle: under 5% of a core for two seconds in a row.  Measurements then
    show steady-state costs, not the tail of the seeding.
    """
    t = time.perf_counter()
    quiet = 0
    before = cpu_ticks(pids_now(roots))
    while quiet < 2 and time.perf_counter() - t < limit:
        time.sleep(1)
        now = cpu_ticks(pids_now(roots))
        quiet = quiet + 1 if now - before < 0.05 * os.sysconf("SC_CLK_TCK") else 0
        before = now
    print(f"{name} settled in {time.perf_counter() - t:.1f}s")


def pids_now(roots: list[int]) -> list[int]:
    return [p for r in roots for p in tree(r)]


def start_mailwarden(base: Path, maildir: Path) -> tuple[subprocess.Popen[str], int]:
    data = base / "mw"
    data.mkdir()
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    proc = subprocess.Popen(
        [sys.executable, "-c", MW_SERVER, str(data), str(maildir), USER, PASSWORD],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    return proc, port


def start_dovecot(base: Path, maildir: Path, clients: int) -> tuple[subprocess.Popen[str], int]:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dbase = base / "dovecot"
    for sub in ("run", "state", "home"):
        (dbase / sub).mkdir(parents=True)
    shutil.copytree(maildir, dbase / "mail" / USER)
    conf = dbase / "dovecot.conf"
    conf.write_text(
        DOVECOT_CONF.format(
            base=dbase,
            port=port,
            password=PASSWORD,
            clients=clients + 100,
            anvil=3 * clients + 400,
            uid=pwd.getpwnam("dovecot").pw_uid,
        )
    )
    # the mail processes run as the dovecot user and must own the mail
    subprocess.run(
        ["chown", "-R", "dovecot:dovecot", str(dbase / "mail"), str(dbase / "home")], check=True
    )
    proc = subprocess.Popen(["dovecot", "-F", "-c", str(conf)], text=True)
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            import socket as sk

            with sk.create_connection(("127.0.0.1", port), 1):
                break
        except OSError:
            time.sleep(0.2)
    return proc, port


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--idle", type=int, default=10_000)
    ap.add_argument("--skip-dovecot", action="store_true")
    ap.add_argument(
        "--dovecot-idle",
        type=int,
        default=0,
        help="open at most this many IDLE connections to Dovecot (one process each) and "
        "scale its memory to --idle; 0: as many as --idle",
    )
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, 3 * args.idle + 1000))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    base = Path(tempfile.mkdtemp(prefix="bench-imap-"))
    base.chmod(0o755)  # Dovecot's mail processes run as the dovecot user
    try:
        maildir = base / "maildir"
        t = time.perf_counter()
        write_maildir(maildir, args.messages)
        print(f"content: {args.messages} messages ({time.perf_counter() - t:.1f}s to write)")
        results: dict[str, dict[str, float]] = {}
        t = time.perf_counter()
        mw, port = start_mailwarden(base, maildir)
        print(f"mailwarden seeded and listening in {time.perf_counter() - t:.1f}s")
        settle([mw.pid], "mailwarden")
        try:
            results["mailwarden"] = asyncio.run(
                measure(port, [mw.pid], args.messages, args.idle, args.idle)
            )
        finally:
            mw.send_signal(signal.SIGTERM)
            mw.wait(30)
        if not args.skip_dovecot and shutil.which("dovecot"):
            dv_idle = min(args.idle, args.dovecot_idle or args.idle)
            dv, port = start_dovecot(base, maildir, dv_idle)
            settle([dv.pid], "dovecot")
            try:
                results["dovecot"] = asyncio.run(
                    measure(port, [dv.pid], args.messages, dv_idle, args.idle)
                )
                if dv_idle < args.idle:
                    print(
                        f"dovecot: {dv_idle} IDLE connections opened, memory scaled to {args.idle}"
                    )
            except Exception:
                log = base / "dovecot" / "dovecot.log"
                print(log.read_text()[-3000:] if log.exists() else "no dovecot log")
                raise
            finally:
                dv.send_signal(signal.SIGTERM)
                dv.wait(30)
        names = list(results["mailwarden"])
        print(f"{'':28} {'mailwarden':>12} {'dovecot':>12} {'ratio':>8}")
        for name in names:
            mwv = results["mailwarden"][name]
            dvv = results.get("dovecot", {}).get(name)
            higher_better = "MB/s" in name or "msg/s" in name
            ratio = ""
            if dvv:
                r = (mwv / dvv) if higher_better else (dvv / mwv if mwv else 0.0)
                ratio = f"{r:.2f}x"
            dv_text = f"{dvv:12.3f}" if dvv is not None else f"{'-':>12}"
            print(f"{name:28} {mwv:12.3f} {dv_text} {ratio:>8}")
        print("ratio > 1: Mailwarden better (faster, or less memory)")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
