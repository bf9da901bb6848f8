"""The webmail bench's node: web app on uvicorn plus IMAP, one process (not a test).

Run by ``bench.py`` as a child process::

    python bench/webmail/server.py DATA_DIR [--profile FILE] [--verify-workers N]

It opens the prepared store, builds the auth service with the node's argon2id
parameters and its default policy, the node's web app (health, admin API,
webmail behind its gate) served by uvicorn as ``mailwarden serve`` does, and
the IMAP listeners on the same store and auth service (the target of the
flood).  One line of JSON on stdout gives the ports.

**Server time** is measured by :class:`Timing`, the outermost ASGI layer:
from the moment uvicorn hands a parsed request to the app to the moment the
last body octet is handed back, per request kind.  It includes waiting for the
event loop and for store threads while other requests run, so it is the time
the node spends on the request; it excludes only HTTP parsing and socket
writes.  A request to ``/__bench/phase?name=X`` (answered by the wrapper, not
the app) starts a new phase and returns the previous phase's samples and the
process's CPU use as JSON.
"""

from __future__ import annotations

import asyncio
import cProfile
import json
import re
import signal
import socket
import time
import types
import urllib.parse
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
_VIEW = re.compile(r"/mail/\d+/\d+")
_LIST = re.compile(r"/mail/\d+")
_BODY = re.compile(r"/mail/\d+/\d+/body")


def kind_of(path: str) -> str:
    """The bench's name for a request path."""
    if _LIST.fullmatch(path):
        return "list"
    if _VIEW.fullmatch(path):
        return "view"
    if _BODY.fullmatch(path):
        return "body"
    if path == "/mail/counts":
        return "counts"
    return "other"


class Timing:
    """Outermost ASGI layer: server time per request kind, and the phase switch."""

    def __init__(self, app: Any, profile: str | None) -> None:
        self.app = app
        self.samples: dict[str, list[float]] = {}
        self.phase = "warmup"
        self.cpu = time.process_time()
        self.wall = time.perf_counter()
        self.profile_path = profile
        self.profiler = cProfile.Profile() if profile else None
        self.lags: list[float] = []

    async def watch_loop(self) -> None:
        """Record how late the event loop wakes a 10 ms sleep (time it was busy elsewhere)."""
        while True:
            started = time.perf_counter()
            await asyncio.sleep(0.01)
            self.lags.append((time.perf_counter() - started - 0.01) * 1000)

    def _switch(self, name: str) -> bytes:
        now_cpu, now_wall = time.process_time(), time.perf_counter()
        report = {
            "phase": self.phase,
            "samples": self.samples,
            "cpu_cores": (now_cpu - self.cpu) / max(1e-9, now_wall - self.wall),
            "loop_lag": self.lags,
        }
        if self.profiler is not None:
            if self.phase.startswith(("calm", "flood")):
                self.profiler.disable()
                self.profiler.dump_stats(f"{self.profile_path}.{self.phase}")
            if name.startswith(("calm", "flood")):
                self.profiler = cProfile.Profile()
                self.profiler.enable()
        self.samples, self.phase, self.cpu, self.wall = {}, name, now_cpu, now_wall
        self.lags = []
        return json.dumps(report).encode()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path == "/__bench/phase":
            query = urllib.parse.parse_qs(scope["query_string"].decode())
            body = self._switch(query.get("name", ["idle"])[0])
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        started = time.perf_counter()
        await self.app(scope, receive, send)
        self.samples.setdefault(kind_of(path), []).append((time.perf_counter() - started) * 1000)


def free_port() -> int:
    """A port nothing listens on right now (loopback)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def serve(directory: Path, profile: str | None, verify_workers: int) -> None:
    """Run the node until SIGTERM."""
    import logging

    import uvicorn

    logging.basicConfig(level=logging.ERROR)  # a log line per refused login would dominate
    from mailwarden.admin.drain import DrainSwitch
    from mailwarden.admin.traffic import TrafficRecorder
    from mailwarden.auth.passwords import HashParams, PasswordHasher, VerifyPool
    from mailwarden.auth.service import AuthService
    from mailwarden.config import Config, ImapConfig
    from mailwarden.delivery import Delivery, SendingLimits
    from mailwarden.servers import imap
    from mailwarden.servers.context import ServerContext
    from mailwarden.servers.listener import server_tls_context
    from mailwarden.store.sqlite import SqliteStore
    from mailwarden.tlscert import make_self_signed
    from mailwarden.web.app import make_app
    from mailwarden.web.webmail import WebmailDeps
    from mailwarden.web.webmail.prefs import SqlitePrefs
    from mailwarden.web.webmail.send import DeliverySubmitter
    from mailwarden.web.webmail.sessions import MemorySessions

    store = await SqliteStore.open(directory / "db.sqlite", directory / "blobs")
    auth = AuthService(store, PasswordHasher(HashParams(19456, 2, 1)), VerifyPool(verify_workers))
    prefs = SqlitePrefs(directory / "webmail.db")
    deps = WebmailDeps(
        store=store,
        auth=auth,
        # The node allows 50 sessions per account; the bench may put 100 on one.
        sessions=MemorySessions(idle=3600.0, max_per_account=1000),
        prefs=prefs,
        submitter=DeliverySubmitter(store, Delivery(store, "bench"), SendingLimits(10, 10)),
    )
    node = types.SimpleNamespace(
        store=store,
        auth=auth,
        draining=False,
        drain=DrainSwitch(directory),
        traffic=TrafficRecorder(directory),
    )
    app = Timing(make_app(node, deps), profile)  # type: ignore[arg-type]
    make_self_signed(directory / "cert.pem", directory / "key.pem", "localhost")
    ctx = ServerContext(
        store=store,
        auth=auth,
        tls=server_tls_context(str(directory / "cert.pem"), str(directory / "key.pem")),
        hostname="localhost",
    )
    config = Config(listen="127.0.0.1", imap=replace(ImapConfig(), port=0, tls_port=0))
    listeners = imap.make_listeners(ctx, config)
    for listener in listeners:
        await listener.start()
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="on",
            access_log=False,
            backlog=4096,
        )
    )
    watcher = asyncio.create_task(app.watch_loop())
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    print(json.dumps({"web": port, "imap": listeners[0].port}), flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    # Connections cut off at exit (attackers sleeping in the auth delay) would
    # each log a CancelledError: not what this bench is about.
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    server.should_exit = True
    await task
    watcher.cancel()
    for listener in listeners:
        await listener.stop(grace=1.0)
    prefs.close()
    await auth.close()
    await store.close()


def main() -> None:
    """Entry point of the child process."""
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("directory", type=Path)
    parser.add_argument("--profile")
    parser.add_argument("--verify-workers", type=int, default=0)
    args = parser.parse_args()
    main = serve(args.directory, args.profile, args.verify_workers)
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


if __name__ == "__main__":
    main()
