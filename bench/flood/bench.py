"""Login flood: legitimate IMAP/POP3 logins while attackers guess passwords (not a test).

Usage:
    python bench/flood/bench.py [--seconds S] [--connections 50,200,1000]
        [--addresses 1,256,4096] [--protocols imap,pop3] [--targets mailwarden,dovecot]

Reproduces the incident of issue 5 on loopback.  Both servers get the same
1,000 mailboxes with the same argon2id hashes (m=19 MiB, t=2, p=1, each
password different).  For every row (attacking connections x attacking
addresses) and protocol, each server is started afresh and then:

1. **Warm-up**: each of 100 legitimate users logs in once from its *home*
   address (127.200.x.y), so it is a known client where that means anything.
2. **Attack**: C connections loop wrong-password logins against random
   mailboxes, from A addresses in 127.0.0.0/8 (1 address; 256 addresses in
   256 /24s of 127.10.0.0/16; 4,096 addresses in 4,096 /24s of
   127.16.0.0/12), reconnecting whenever the server closes.
3. **Legitimate load**, at the same time: 5 sessions a second, 80 % from the
   user's home address (known clients), 20 % from an address never seen
   (127.201.x.y, new clients) by users that did not log in during the
   warm-up, so nothing is cached for them and a full hash is needed;
   IMAP: LOGIN, SELECT INBOX, FETCH 1 header, LOGOUT; POP3: USER, PASS,
   STAT, TOP 1 0, QUIT.  A session succeeds when it completes within 30 s;
   latency is connect to login answer.

Printed per row: legitimate success rate and p50/p95/p99 login latency for
known and new clients, attacker attempts answered per second, sheds
(temporary failures and busy greetings), and server CPU (cores).  Mailwarden
runs its real IMAP and POP3 shells and auth service (default policy) in its
own process; Dovecot runs from a temporary configuration with its default
auth and login-process settings, a passwd-file of the same hashes.  Needs root
and the dovecot-imapd and dovecot-pop3d packages.
"""

from __future__ import annotations

import argparse
import asyncio
import json
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
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ACCOUNTS = 1000
LEGIT_USERS = 100
DOMAIN = "example.test"
RATE = 5.0  # legitimate sessions per second
SESSION_TIMEOUT = 30.0
MESSAGE = (
    b"From: a@example.test\r\nTo: b@example.test\r\nSubject: hello\r\n"
    b"Date: Mon, 1 Jan 2024 10:00:00 +0000\r\nMessage-ID: <1@example.test>\r\n\r\nhi\r\n"
)


def user(i: int) -> str:
    return f"user{i}@{DOMAIN}"


def password(i: int) -> str:
    return f"pw-{i}-Mailwarden!"


def _hash(i: int) -> str:
    import argon2

    hasher = argon2.PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
    return hasher.hash(password(i))


def hashes(cache: Path) -> list[str]:
    """argon2id hashes of every account's password (computed once, cached)."""
    if cache.exists():
        found: list[str] = json.loads(cache.read_text())
        if len(found) == ACCOUNTS:
            return found
    with ProcessPoolExecutor(os.cpu_count() or 1) as pool:
        found = list(pool.map(_hash, range(ACCOUNTS), chunksize=25))
    cache.write_text(json.dumps(found))
    return found


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def cpu_seconds(pids: list[int]) -> float:
    """utime+stime of the processes (and their reaped children) in seconds."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(x) for x in fields[11:15])
    return total / tick


def tree(root: int) -> list[int]:
    """A process and all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += children.get(pid, [])
    return out


# --- the servers ------------------------------------------------------------------


async def serve_mailwarden(directory: Path) -> None:
    """Child process: the store, the auth service and the IMAP and POP3 listeners."""
    import logging

    # One warning per refused connection would make the log the bottleneck.
    logging.basicConfig(level=logging.ERROR)
    sys.path.insert(0, str(ROOT / "src"))
    from dataclasses import replace

    from mailwarden.auth.passwords import HashParams, PasswordHasher, VerifyPool
    from mailwarden.auth.service import AuthService
    from mailwarden.config import Config, ImapConfig, Pop3Config
    from mailwarden.mail.address import Address
    from mailwarden.servers import imap, pop3
    from mailwarden.servers.context import ServerContext
    from mailwarden.servers.listener import server_tls_context
    from mailwarden.store.sqlite import SqliteStore
    from mailwarden.tlscert import make_self_signed

    store = await SqliteStore.open(directory / "db.sqlite", directory / "blobs")
    hasher = PasswordHasher(HashParams(19456, 2, 1))
    await store.add_domain(DOMAIN)
    for i, stored in enumerate(json.loads((directory / "hashes.json").read_text())):
        account = await store.add_account(Address.parse(user(i)), stored)
        if i < 2 * LEGIT_USERS:
            await store.append(account.id, "INBOX", MESSAGE)
    make_self_signed(directory / "cert.pem", directory / "key.pem", "localhost")
    auth = AuthService(store, hasher, VerifyPool())
    ctx = ServerContext(
        store=store,
        auth=auth,
        tls=server_tls_context(str(directory / "cert.pem"), str(directory / "key.pem")),
        hostname="localhost",
    )
    config = Config(
        listen="127.0.0.1",
        imap=replace(ImapConfig(), port=0, tls_port=0),
        pop3=replace(Pop3Config(), port=0, tls_port=0),
    )
    listeners = imap.make_listeners(ctx, config) + pop3.make_listeners(ctx, config)
    for listener in listeners:
        await listener.start()
    print(json.dumps({"imap": listeners[0].port, "pop3": listeners[2].port}), flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    print(json.dumps(auth.snapshot()["rates"]), flush=True)
    for listener in listeners:
        await listener.stop(grace=1.0)
    await auth.close()
    await store.close()


@dataclass
class Server:
    name: str
    ports: dict[str, int]
    pids: list[int]
    stop: object


def start_mailwarden(directory: Path) -> Server:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve-mailwarden", str(directory)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    ports = json.loads(proc.stdout.readline())

    def stop() -> str:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
        return out

    return Server("mailwarden", ports, [proc.pid], stop)


DOVECOT_CONF = """\
base_dir = {dir}/run
state_dir = {dir}/state
log_path = {dir}/dovecot.log
protocols = imap pop3
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 1
mail_location = maildir:~/Maildir
passdb {{
  driver = passwd-file
  args = scheme=ARGON2ID {dir}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={dir}/home/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {pop3}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
"""


def start_dovecot(directory: Path, stored: list[str]) -> Server:
    dovecot = shutil.which("dovecot") or "/usr/sbin/dovecot"
    nobody = pwd.getpwnam("nobody")
    for sub in ("run", "state"):
        (directory / sub).mkdir()
    lines = [f"{user(i)}:{{ARGON2ID}}{h}::::::\n" for i, h in enumerate(stored)]
    (directory / "passwd").write_text("".join(lines))
    for i in range(2 * LEGIT_USERS):
        maildir = directory / "home" / user(i) / "Maildir"
        for sub in ("cur", "new", "tmp"):
            (maildir / sub).mkdir(parents=True)
        (maildir / "cur" / f"1700000000.M1P1.bench,S={len(MESSAGE)}:2,S").write_bytes(MESSAGE)
    for path in [directory / "home", *(directory / "home").rglob("*")]:
        os.chown(path, nobody.pw_uid, nobody.pw_gid)
    directory.chmod(0o755)
    ports = {"imap": free_port(), "pop3": free_port()}
    conf = directory / "dovecot.conf"
    conf.write_text(
        DOVECOT_CONF.format(dir=directory, uid=nobody.pw_uid, gid=nobody.pw_gid, **ports)
    )
    # Dovecot daemonises: keep it off our stdout, or a pipe reading us never ends.
    subprocess.run(
        [dovecot, "-c", str(conf)],
        check=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    pid_file = directory / "run" / "master.pid"
    deadline = time.monotonic() + 20
    while not pid_file.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    pid = int(pid_file.read_text())
    for port in ports.values():
        wait_for_port(port)

    def stop() -> str:
        subprocess.run([dovecot, "-c", str(conf), "stop"], check=False)
        return ""

    return Server("dovecot", ports, [pid], stop)


# --- the clients --------------------------------------------------------------------


class Conn:
    """A line-oriented client connection from a chosen source address."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int, source: str) -> Conn:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, local_addr=(source, 0), limit=2**20
        )
        return cls(reader, writer)

    async def line(self) -> bytes:
        got = await self.reader.readline()
        if not got:
            raise ConnectionError("closed")
        return got

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def until_tag(self, tag: bytes) -> bytes:
        while True:
            got = await self.line()
            if got.startswith(tag + b" "):
                return got

    def close(self) -> None:
        self.writer.close()


TEMPORARY = (b"[UNAVAILABLE]", b"[SYS/TEMP]", b"[IN-USE]")


@dataclass
class Tally:
    attempts: int = 0
    sheds: int = 0
    refused_connections: int = 0
    accepted: int = 0
    errors: int = 0
    legit: list[tuple[str, bool, float]] = field(default_factory=list)


def attacker_addresses(count: int) -> list[str]:
    if count == 1:
        return ["127.10.0.1"]
    if count <= 256:
        return [f"127.10.{i}.1" for i in range(count)]
    return [f"127.{16 + i // 256}.{i % 256}.1" for i in range(count)]


async def login(conn: Conn, proto: str, name: str, secret: str) -> bytes:
    if proto == "imap":
        await conn.send(b'a LOGIN "' + name.encode() + b'" "' + secret.encode() + b'"\r\n')
        return await conn.until_tag(b"a")
    await conn.send(b"USER " + name.encode() + b"\r\n")
    first = await conn.line()
    if not first.startswith(b"+OK"):
        return first
    await conn.send(b"PASS " + secret.encode() + b"\r\n")
    return await conn.line()


def ok(reply: bytes, proto: str) -> bool:
    return reply.startswith(b"a OK") if proto == "imap" else reply.startswith(b"+OK")


async def attacker(
    n: int, conns: int, port: int, proto: str, addrs: list[str], stop: float, tally: Tally
) -> None:
    rng = random.Random(n)
    k = 0
    while time.monotonic() < stop:
        source = addrs[(n + k * conns) % len(addrs)]
        k += 1
        try:
            async with asyncio.timeout(10):
                conn = await Conn.open(port, source)
        except (OSError, TimeoutError):
            await asyncio.sleep(0.05)
            continue
        try:
            async with asyncio.timeout(max(0.0, stop - time.monotonic()) + 20):
                await hammer(conn, proto, rng, stop, tally)
        except (ConnectionError, OSError, TimeoutError):
            tally.errors += 1
        finally:
            conn.close()


async def hammer(conn: Conn, proto: str, rng: random.Random, stop: float, tally: Tally) -> None:
    """One attacking connection: guess until the end, the server closes, or refuses."""
    greeting = await conn.line()
    if any(t in greeting for t in TEMPORARY) or b"BYE" in greeting[:8]:
        tally.refused_connections += 1
        await asyncio.sleep(0.5)  # back off, or the load generator is the bottleneck
        return
    while time.monotonic() < stop:
        target = rng.randrange(ACCOUNTS)
        reply = await login(conn, proto, user(target), f"guess-{rng.random()}")
        tally.attempts += 1
        if ok(reply, proto):
            tally.accepted += 1
            return
        if any(t in reply for t in TEMPORARY):
            tally.sheds += 1


async def session(port: int, proto: str, i: int, source: str) -> tuple[bool, float]:
    started = time.monotonic()
    latency = SESSION_TIMEOUT
    try:
        async with asyncio.timeout(SESSION_TIMEOUT):
            conn = await Conn.open(port, source)
            try:
                await conn.line()
                reply = await login(conn, proto, user(i), password(i))
                latency = time.monotonic() - started
                if not ok(reply, proto):
                    return False, latency
                if proto == "imap":
                    await conn.send(b"b SELECT INBOX\r\n")
                    if not (await conn.until_tag(b"b")).startswith(b"b OK"):
                        return False, latency
                    await conn.send(b"c FETCH 1 (BODY.PEEK[HEADER])\r\n")
                    if not (await conn.until_tag(b"c")).startswith(b"c OK"):
                        return False, latency
                    await conn.send(b"d LOGOUT\r\n")
                    await conn.until_tag(b"d")
                else:
                    await conn.send(b"STAT\r\n")
                    if not (await conn.line()).startswith(b"+OK"):
                        return False, latency
                    await conn.send(b"TOP 1 0\r\n")
                    if not (await conn.line()).startswith(b"+OK"):
                        return False, latency
                    while await conn.line() != b".\r\n":
                        pass
                    await conn.send(b"QUIT\r\n")
                    await conn.line()
                return True, latency
            finally:
                conn.close()
    except (TimeoutError, ConnectionError, OSError):
        return False, latency


def home(i: int) -> str:
    return f"127.200.{i // 200}.{i % 200 + 1}"


async def run_row(
    port: int, proto: str, conns: int, addresses: int, seconds: float, tally: Tally
) -> None:
    # Warm-up: every legitimate user logs in once from home, a few at a time.
    paced = asyncio.Semaphore(4)

    async def warm(i: int) -> None:
        async with paced:
            await session(port, proto, i, home(i))

    await asyncio.gather(*(warm(i) for i in range(LEGIT_USERS)))
    stop = time.monotonic() + seconds
    addrs = attacker_addresses(addresses)
    attack = [
        asyncio.create_task(attacker(n, conns, port, proto, addrs, stop, tally))
        for n in range(conns)
    ]
    await asyncio.sleep(min(2.0, seconds / 5))  # let the attack build up
    rng = random.Random(7)
    legit: list[asyncio.Task[tuple[bool, float]]] = []
    kinds: list[str] = []
    fresh = 0
    while time.monotonic() < stop:
        i = rng.randrange(LEGIT_USERS)
        if rng.random() < 0.8:
            kinds.append("known")
            source = home(i)
        else:
            # A new client of a user not seen during the warm-up: nothing is
            # cached for it anywhere, so the server must do a full argon2id check.
            kinds.append("new")
            i = LEGIT_USERS + fresh % LEGIT_USERS
            fresh += 1
            source = f"127.201.{fresh // 250}.{fresh % 250 + 1}"
        legit.append(asyncio.create_task(session(port, proto, i, source)))
        await asyncio.sleep(1 / RATE)
    results = await asyncio.gather(*legit)
    tally.legit = [(kind, good, lat) for kind, (good, lat) in zip(kinds, results, strict=True)]
    await asyncio.gather(*attack, return_exceptions=True)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def summary(tally: Tally, kind: str) -> str:
    rows = [(good, lat) for k, good, lat in tally.legit if k == kind]
    if not rows:
        return "-"
    rate = 100 * sum(g for g, _ in rows) / len(rows)
    lats = [lat * 1000 for _, lat in rows]
    return (
        f"{rate:5.1f}% {pct(lats, 0.5):6.0f}/{pct(lats, 0.95):6.0f}/{pct(lats, 0.99):6.0f} ms"
        f" (n={len(rows)})"
    )


async def absorb(seconds: float, attackers: int, addresses: int) -> None:
    """In-process: how many refused guesses per second the auth service answers.

    Attackers that never wait for delays (as if each guess came on a new
    connection) call the service flat out from ``addresses`` sources, while
    known clients log in 5 times a second; argon2id has the real parameters.
    """
    import ipaddress

    sys.path.insert(0, str(ROOT / "src"))
    from mailwarden.auth.passwords import HashParams, PasswordHasher, VerifyPool
    from mailwarden.auth.service import Accepted, AuthService, Peer, Service
    from mailwarden.mail.address import Address
    from mailwarden.store.sqlite import SqliteStore

    stored = hashes(Path(tempfile.gettempdir()) / "mailwarden-flood-hashes.json")
    with tempfile.TemporaryDirectory(prefix="absorb-") as tmp:
        store = await SqliteStore.open(Path(tmp) / "db.sqlite", Path(tmp) / "blobs")
        await store.add_domain(DOMAIN)
        for i, h in enumerate(stored):
            await store.add_account(Address.parse(user(i)), h)
        auth = AuthService(store, PasswordHasher(HashParams(19456, 2, 1)), VerifyPool())
        peers = [Peer(ipaddress.ip_address(a), Service.IMAP) for a in attacker_addresses(addresses)]
        for i in range(LEGIT_USERS):  # known clients
            await auth.verify(
                user(i), password(i), Peer(ipaddress.ip_address(home(i)), Service.IMAP)
            )
        stop = time.monotonic() + seconds
        refused = 0
        known: list[float] = []

        async def attack(n: int) -> None:
            nonlocal refused
            rng = random.Random(n)
            while time.monotonic() < stop:
                target = rng.randrange(ACCOUNTS)
                peer = peers[(n + refused) % len(peers)]
                outcome = await auth.verify(user(target), f"g{rng.random()}", peer, wait=False)
                assert not isinstance(outcome, Accepted)
                refused += 1
                await asyncio.sleep(0)  # a socket would yield here

        async def legit() -> None:
            rng = random.Random(1)
            while time.monotonic() < stop:
                i = rng.randrange(LEGIT_USERS)
                t = time.monotonic()
                outcome = await auth.verify(
                    user(i), password(i), Peer(ipaddress.ip_address(home(i)), Service.IMAP)
                )
                known.append((time.monotonic() - t) if isinstance(outcome, Accepted) else 1e9)
                await asyncio.sleep(1 / RATE)

        cpu0 = time.process_time()
        await asyncio.gather(*(attack(n) for n in range(attackers)), legit())
        cpu = (time.process_time() - cpu0) / seconds
        ok = sum(x < 1e9 for x in known)
        lat = [x * 1000 for x in known if x < 1e9]
        print(
            f"absorb {attackers} x {addresses}: {refused / seconds:,.0f} refused guesses/s;"
            f" known clients {ok}/{len(known)} ok, p50/p99 {pct(lat, 0.5):.1f}/{pct(lat, 0.99):.1f}"
            f" ms; {len(auth.state.bans.active(time.time()))} bans; CPU {cpu:.2f} cores"
        )
        await auth.close()
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--connections", default="50,200,1000")
    parser.add_argument("--addresses", default="1,256,4096")
    parser.add_argument("--protocols", default="imap,pop3")
    parser.add_argument("--targets", default="mailwarden,dovecot")
    parser.add_argument("--serve-mailwarden", metavar="DIR")
    parser.add_argument(
        "--absorb", action="store_true", help="only the in-process refused-guesses rate"
    )
    args = parser.parse_args()
    if args.absorb:
        for conns in (int(x) for x in args.connections.split(",")):
            for addresses in (int(x) for x in args.addresses.split(",")):
                run(absorb(args.seconds, conns, addresses))
        return
    if args.serve_mailwarden:
        run(serve_mailwarden(Path(args.serve_mailwarden)))
        return
    cache = Path(tempfile.gettempdir()) / "mailwarden-flood-hashes.json"
    print("hashing 1,000 passwords with argon2id m=19 MiB t=2 (cached)...", flush=True)
    stored = hashes(cache)
    print(
        "row: attackers x addresses | legit known: ok% p50/p95/p99 | legit new: ok% p50/p95/p99"
        " | attacker answers/s | sheds | busy greetings | CPU cores",
        flush=True,
    )
    results: dict[tuple[str, str, int, int], float] = {}
    for conns in (int(x) for x in args.connections.split(",")):
        for addresses in (int(x) for x in args.addresses.split(",")):
            for proto in args.protocols.split(","):
                for target in args.targets.split(","):
                    with tempfile.TemporaryDirectory(prefix="flood-") as tmp:
                        directory = Path(tmp)
                        (directory / "hashes.json").write_text(json.dumps(stored))
                        server = (
                            start_mailwarden(directory)
                            if target == "mailwarden"
                            else start_dovecot(directory, stored)
                        )
                        tally = Tally()
                        try:
                            cpu0 = cpu_seconds(tree(server.pids[0]))
                            t0 = time.monotonic()
                            run(
                                run_row(
                                    server.ports[proto],
                                    proto,
                                    conns,
                                    addresses,
                                    args.seconds,
                                    tally,
                                )
                            )
                            elapsed = time.monotonic() - t0
                            cpu = (cpu_seconds(tree(server.pids[0])) - cpu0) / elapsed
                        finally:
                            server.stop()  # type: ignore[operator]
                    known = [g for k, g, _ in tally.legit if k == "known"]
                    results[(target, proto, conns, addresses)] = (
                        sum(known) / len(known) if known else 0.0
                    )
                    print(
                        f"{target:<10} {proto:<4} {conns:>5} x {addresses:<5} |"
                        f" known {summary(tally, 'known')} | new {summary(tally, 'new')} |"
                        f" {tally.attempts / args.seconds:8.0f}/s | {tally.sheds:6d} |"
                        f" {tally.refused_connections:6d} | {cpu:4.2f}"
                        f" | load {Path('/proc/loadavg').read_text().split()[0]}"
                        + (f" | ATTACKER GOT IN {tally.accepted}x" if tally.accepted else ""),
                        flush=True,
                    )
    for (target, proto, conns, addresses), rate in results.items():
        if target != "mailwarden":
            continue
        other = results.get(("dovecot", proto, conns, addresses))
        if other is not None:
            ratio = f"{rate / other:.1f}x" if other else "inf (Dovecot 0%)"
            print(
                f"known-client success {proto} {conns}x{addresses}: Mailwarden"
                f" {100 * rate:.1f}% vs Dovecot {100 * other:.1f}% ({ratio})"
            )


def run(coro):  # type: ignore[no-untyped-def]
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


if __name__ == "__main__":
    main()
