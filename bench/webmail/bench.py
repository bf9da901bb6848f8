"""Webmail benchmark: list and view latency, 100 sessions, a 10,000-message mailbox (not a test).

Usage::

    .venv/bin/python bench/webmail/bench.py [--messages 10000] [--accounts 1]
        [--sessions 100] [--seconds 20] [--shapes people,saturated] [--flood]
        [--flood-connections 1000] [--flood-addresses 4096] [--data DIR]
        [--profile FILE] [--verify-workers N]

What runs where (three processes on loopback):

* **the node** (``server.py``): the web app on uvicorn and IMAP, on one store
  and one auth service, as ``mailwarden serve`` builds them;
* **the browsers** (this process): ``--sessions`` logged-in sessions on
  ``--accounts`` accounts (session ``i`` uses account ``i % accounts``), each
  on its own keep-alive HTTP connection, through a small HTTP/1.1 client (so
  the load generator costs little CPU next to the node);
* **the flood** (with ``--flood``): ``bench/flood``'s attacker loop, with its
  1,000-connection row by default, guessing passwords over IMAP against the
  *same* node (same process, event loop and auth service) while the webmail
  figures are taken again.

Two load shapes, each for ``--seconds``:

* ``people``: every session browses like a person: a list page (mostly page
  1, sometimes another page or sort order), a think time drawn uniformly from
  1-3 s, a message from that page (plus its HTML body frame when it has one,
  as a browser loads it), think again, and so on.  About 50 requests/s for
  100 sessions.  This is the shape the issue's goal is about.
* ``saturated``: every session requests list pages and message views back to
  back with no think time: the most the node can serve.  Latency here is
  queueing (Little's law: sessions / throughput), not the cost of a request.

For each shape and request kind the bench prints *server time* (measured
inside the node, see ``server.py``) and *client time* (request written to
response read, including HTTP parsing and loopback), p50/p95/p99/max,
throughput and the node's CPU use.  First-load page weight is the login page
plus the inbox page plus the CSS and JS it links (uncompressed).

Goals from issue 6: p95 <= 50 ms server time; first load <= 150 KB; with the
flood running, within 2x of the calm figures.

The store is built in ``--data`` (default: a temporary directory) and reused
by later runs that ask for the same mailbox.  ``--profile FILE`` writes a
cProfile of the node during each shape to ``FILE.calm-<shape>`` and
``FILE.flood-<shape>``.
``--verify-workers N`` sizes the auth service's argon2id pool (the node's
``auth.verify_workers``; 0, the default, is one per core).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from data import PASSWORD, bench_user, load_flood, prepare
from server import kind_of

HERE = Path(__file__).resolve().parent


class Http:
    """One keep-alive HTTP/1.1 connection with a cookie jar (a browser tab, minus the browser)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.cookies: dict[str, str] = {}
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, body: bytes = b"", form: bool = False
    ) -> tuple[int, dict[str, str], bytes]:
        """Send a request and read the whole response; reconnects once if the server closed."""
        for attempt in (1, 2):
            if self._writer is None:
                self._reader, self._writer = await asyncio.open_connection(
                    "127.0.0.1", self.port, limit=2**22
                )
            head = f"{method} {path} HTTP/1.1\r\nHost: bench.test\r\n"
            if self.cookies:
                head += "Cookie: " + "; ".join(f"{k}={v}" for k, v in self.cookies.items()) + "\r\n"
            if body or method == "POST":
                head += f"Content-Length: {len(body)}\r\n"
            if form:
                head += "Content-Type: application/x-www-form-urlencoded\r\n"
            try:
                self._writer.write(head.encode() + b"\r\n" + body)
                return await self._response()
            except (ConnectionError, asyncio.IncompleteReadError):
                self.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    async def _response(self) -> tuple[int, dict[str, str], bytes]:
        assert self._reader is not None
        status_line = await self._reader.readuntil(b"\r\n")
        status = int(status_line.split()[1])
        headers: dict[str, str] = {}
        while (line := await self._reader.readuntil(b"\r\n")) != b"\r\n":
            name, _, value = line.decode("latin-1").partition(":")
            name, value = name.strip().lower(), value.strip()
            if name == "set-cookie":
                cookie, _, _ = value.partition(";")
                key, _, val = cookie.partition("=")
                if val:
                    self.cookies[key] = val
                else:
                    self.cookies.pop(key, None)
            headers[name] = value
        if "content-length" in headers:
            data = await self._reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding") == "chunked":
            chunks = []
            while size := int((await self._reader.readuntil(b"\r\n")).strip(), 16):
                chunks.append(await self._reader.readexactly(size + 2))
            await self._reader.readuntil(b"\r\n")
            data = b"".join(c[:-2] for c in chunks)
        else:
            data = b""
        if headers.get("connection") == "close":
            self.close()
        return status, headers, data

    def close(self) -> None:
        """Drop the connection (the next request opens another)."""
        if self._writer is not None:
            self._writer.close()
        self._reader = self._writer = None


@dataclass
class Tally:
    """Client-side observations of one phase."""

    client: dict[str, list[float]] = field(default_factory=dict)
    statuses: dict[int, int] = field(default_factory=dict)

    async def get(self, http: Http, path: str) -> bytes:
        """GET ``path`` and record its client time under its kind."""
        started = time.perf_counter()
        status, _, data = await http.request("GET", path)
        elapsed = (time.perf_counter() - started) * 1000
        self.client.setdefault(kind_of(path.split("?", 1)[0]), []).append(elapsed)
        self.statuses[status] = self.statuses.get(status, 0) + 1
        return data


async def login(port: int, user: str) -> tuple[Http, int]:
    """A logged-in session and the id of its INBOX."""
    http = Http(port)
    _, _, page = await http.request("GET", "/login")
    found = re.search(rb'name="pre_csrf" value="([^"]+)"', page)
    assert found, "no pre-login token on the login page"
    form = urllib.parse.urlencode(
        {"pre_csrf": found.group(1).decode(), "username": user, "password": PASSWORD}
    ).encode()
    status, _, _ = await http.request("POST", "/login", form, form=True)
    assert status == 303, f"login answered {status}"
    status, headers, _ = await http.request("GET", "/mail")
    assert status == 303, f"/mail answered {status}"
    return http, int(headers["location"].rsplit("/", 1)[1])


_UID = re.compile(rb'data-uid="(\d+)"')
_FRAME = re.compile(rb'class="body-frame"[^>]*src="([^"]+)"')


def _list_path(rng: random.Random, inbox: int, pages: int) -> str:
    if rng.random() < 0.7:
        return f"/mail/{inbox}"
    sort = rng.choice(["date", "date", "from", "subject", "size"])
    return f"/mail/{inbox}?page={rng.randint(1, min(pages, 20))}&sort={sort}"


async def _think(rng: random.Random, stop: float) -> None:
    await asyncio.sleep(max(0.0, min(rng.uniform(1, 3), stop - time.monotonic())))


async def person(http: Http, inbox: int, pages: int, stop: float, tally: Tally, n: int) -> None:
    """A person: list, think 1-3 s, open a message (and its body frame), think, ..."""
    rng = random.Random(n)
    await asyncio.sleep(rng.uniform(0, 3))  # people do not all start in the same instant
    while time.monotonic() < stop:
        page = await tally.get(http, _list_path(rng, inbox, pages))
        uids = _UID.findall(page)
        await _think(rng, stop)
        if not uids or time.monotonic() >= stop:
            continue
        view = await tally.get(http, f"/mail/{inbox}/{int(rng.choice(uids))}")
        frame = _FRAME.search(view)
        if frame:
            await tally.get(http, frame.group(1).decode().replace("&amp;", "&"))
        await _think(rng, stop)


async def hammer(
    http: Http, inbox: int, pages: int, messages: int, stop: float, tally: Tally, n: int
) -> None:
    """A closed loop with no think time: list page, message view, again."""
    rng = random.Random(n)
    while time.monotonic() < stop:
        await tally.get(http, _list_path(rng, inbox, pages))
        await tally.get(http, f"/mail/{inbox}/{rng.randint(1, messages)}")


def pct(values: list[float], q: float) -> float:
    """The ``q`` quantile (nearest rank) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def line(label: str, values: list[float]) -> str:
    """One row of figures."""
    if not values:
        return f"    {label:<14} n=0"
    return (
        f"    {label:<14} n={len(values):5d}  p50 {statistics.median(values):7.1f}"
        f"  p95 {pct(values, 0.95):7.1f}  p99 {pct(values, 0.99):7.1f}"
        f"  max {max(values):7.1f} ms"
    )


async def phase(
    port: int,
    sessions: list[tuple[Http, int]],
    shape: str,
    args: argparse.Namespace,
    label: str,
) -> dict[str, dict[str, float]]:
    """Run one load shape and print its figures; returns p95s for the summary."""
    control = Http(port)
    await control.request("GET", f"/__bench/phase?name={urllib.parse.quote(label)}")
    tally = Tally()
    pages = max(1, args.messages // 50)
    started = time.monotonic()
    stop = started + args.seconds
    if shape == "people":
        runners = [
            person(http, inbox, pages, stop, tally, n) for n, (http, inbox) in enumerate(sessions)
        ]
    else:
        runners = [
            hammer(http, inbox, pages, args.messages, stop, tally, n)
            for n, (http, inbox) in enumerate(sessions)
        ]
    await asyncio.gather(*runners)
    elapsed = time.monotonic() - started
    _, _, raw = await control.request("GET", "/__bench/phase?name=idle")
    control.close()
    report = json.loads(raw)
    server: dict[str, list[float]] = report["samples"]
    total = sum(len(v) for v in tally.client.values())
    lag = report["loop_lag"]
    print(
        f"  {label}: {total} requests in {elapsed:.1f}s = {total / elapsed:.0f}/s;"
        f" node CPU {report['cpu_cores']:.2f} cores"
        f" ({1000 * report['cpu_cores'] * elapsed / max(total, 1):.1f} ms a request);"
        f" event-loop lag p50/p99/max {pct(lag, 0.5):.0f}/{pct(lag, 0.99):.0f}"
        f"/{max(lag or [0]):.0f} ms; statuses {tally.statuses}"
    )
    out: dict[str, dict[str, float]] = {}
    for kind in ("list", "view", "body"):
        if kind in server or kind in tally.client:
            print(line(f"{kind} server", server.get(kind, [])))
            print(line(f"{kind} client", tally.client.get(kind, [])))
            out[kind] = {
                "server": pct(server.get(kind, []), 0.95),
                "client": pct(tally.client.get(kind, []), 0.95),
            }
    return out


async def first_load(port: int, user: str) -> int:
    """Octets a first visit downloads: login page, inbox page, its CSS and JS."""
    http = Http(port)
    _, _, login_page = await http.request("GET", "/login")
    weight = len(login_page)
    for asset in set(re.findall(rb'(?:href|src)="(/static/webmail/[^"]+)"', login_page)):
        weight += len((await http.request("GET", asset.decode()))[2])
    http.close()
    logged, inbox = await login(port, user)
    _, _, page = await logged.request("GET", f"/mail/{inbox}")
    weight += len(page)
    for asset in set(re.findall(rb'(?:href|src)="(/static/webmail/[^"]+)"', page)):
        if asset not in login_page:
            weight += len((await logged.request("GET", asset.decode()))[2])
    logged.close()
    return weight


def start_flood(port: int, seconds: float, args: argparse.Namespace) -> subprocess.Popen[str]:
    """bench/flood's attackers against the node's IMAP port, in their own process."""
    return subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--flood-child",
            f"{port},{seconds},{args.flood_connections},{args.flood_addresses}",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )


def flood_child(spec: str) -> None:
    """Child process: run bench/flood's attacker loop for a while; print its tally."""
    port_s, seconds_s, conns_s, addrs_s = spec.split(",")
    flood = load_flood()
    tally = flood.Tally()
    conns, seconds = int(conns_s), float(seconds_s)
    addrs = flood.attacker_addresses(int(addrs_s))

    async def attack() -> None:
        stop = time.monotonic() + seconds
        tasks = [
            asyncio.ensure_future(flood.attacker(n, conns, int(port_s), "imap", addrs, stop, tally))
            for n in range(conns)
        ]
        # An attacker waiting on a slowed-down reply would hold the bench past
        # its time: whatever is still running then is cut off.
        _, pending = await asyncio.wait(tasks, timeout=seconds + 2)
        for task in pending:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    cpu = time.process_time()
    flood.run(attack())
    cpu = time.process_time() - cpu
    print(
        json.dumps(
            {
                "attempts_per_s": round(tally.attempts / seconds),
                "attacker_cpu_cores": round(cpu / seconds, 2),
                "sheds": tally.sheds,
                "busy": tally.refused_connections,
                "errors": tally.errors,
                "accepted": tally.accepted,
            }
        ),
        flush=True,
    )


async def run(args: argparse.Namespace, ports: dict[str, int]) -> None:
    """Log the sessions in, then run every shape (calm, then under the flood)."""
    port = ports["web"]
    weight = await first_load(port, bench_user(0))
    gate = asyncio.Semaphore(8)

    async def one(i: int) -> tuple[Http, int]:
        async with gate:
            return await login(port, bench_user(i % args.accounts))

    t = time.monotonic()
    sessions = await asyncio.gather(*(one(i) for i in range(args.sessions)))
    print(
        f"webmail bench: {args.messages} messages in each of {args.accounts} mailbox(es),"
        f" {args.sessions} logged-in sessions ({time.monotonic() - t:.1f}s to log in),"
        f" {args.seconds:.0f}s per shape"
    )
    print(f"  first-load weight {weight / 1024:.1f} KB (login + inbox + CSS + JS; goal <= 150 KB)")
    shapes = args.shapes.split(",")
    calm: dict[str, dict[str, dict[str, float]]] = {}
    for shape in shapes:
        calm[shape] = await phase(port, sessions, shape, args, f"calm-{shape}")
    if args.flood:
        print(
            f"  -- while bench/flood runs {args.flood_connections} attacking IMAP connections"
            f" from {args.flood_addresses} addresses against the same node --"
        )
        for shape in shapes:
            warm = 3.0
            flood = start_flood(ports["imap"], args.seconds + warm + 2, args)
            await asyncio.sleep(warm)  # let the attack build up
            under = await phase(port, sessions, shape, args, f"flood-{shape}")
            out, _ = await asyncio.to_thread(flood.communicate)
            print(f"    flood: {out.strip()}")
            for kind, figures in under.items():
                before = calm[shape].get(kind)
                if before:
                    print(
                        f"    {kind} p95 under flood / calm: server"
                        f" {figures['server'] / max(before['server'], 1e-9):.1f}x,"
                        f" client {figures['client'] / max(before['client'], 1e-9):.1f}x"
                        " (goal <= 2x)"
                    )
    for http, _ in sessions:
        http.close()


def main() -> None:
    """Parse arguments, prepare the store, start the node and measure."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--accounts", type=int, default=1)
    parser.add_argument("--sessions", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--shapes", default="people,saturated")
    parser.add_argument("--flood", action="store_true")
    parser.add_argument("--flood-connections", type=int, default=1000)
    parser.add_argument("--flood-addresses", type=int, default=4096)
    parser.add_argument("--data", type=Path)
    parser.add_argument("--profile", metavar="FILE")
    parser.add_argument(
        "--verify-workers",
        type=int,
        default=0,
        help="argon2id threads of the node's auth service (default: one per core, as the node)",
    )
    parser.add_argument("--flood-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    if args.flood_child:
        flood_child(args.flood_child)
        return
    with tempfile.TemporaryDirectory(prefix="webmail-bench-") as tmp:
        directory = args.data or Path(tmp)
        prepare(directory, args.messages, args.accounts, args.flood)
        command = [sys.executable, str(HERE / "server.py"), str(directory)]
        if args.profile:
            command += ["--profile", args.profile]
        if args.verify_workers:
            command += ["--verify-workers", str(args.verify_workers)]
        node = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        try:
            assert node.stdout is not None
            ports = json.loads(node.stdout.readline())
            asyncio.run(run(args, ports))
        finally:
            node.send_signal(signal.SIGTERM)
            node.wait(timeout=60)


if __name__ == "__main__":
    main()
