"""The composition root: builds every part from the configuration and runs the node.

This is the only place that knows how the parts fit together.  It opens the
store, makes the auth service, the TLS context and the protocol listeners, the
web app and (unless told not to) the status page, then runs until SIGINT or
SIGTERM, when it stops accepting, lets open sessions finish briefly, and
closes the store so every committed write is on disk.

Protocol servers plug in through one function each, ``make_listeners(ctx,
config) -> list[Listener]``, found by module name so the node runs with
whatever services exist.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mailwarden.admin import ops
from mailwarden.admin.drain import DrainSwitch
from mailwarden.admin.tokens import AdminTokens
from mailwarden.admin.traffic import TrafficRecorder
from mailwarden.auth.node import open_auth_service
from mailwarden.auth.passwords import PasswordHasher, VerifyPool
from mailwarden.auth.service import AuthService
from mailwarden.config import Config
from mailwarden.delivery.submission import SendingLimits
from mailwarden.logs import setup_logging
from mailwarden.servers.context import ServerContext
from mailwarden.servers.listener import Listener, server_tls_context
from mailwarden.store.base import Store

__all__ = ["Node", "serve"]

log = logging.getLogger(__name__)

# Listeners whose clients log in: their pre-login connections are limited by
# the auth service's gate (the MX port has no login and keeps its own limits).
LOGIN_SERVICES = frozenset({"imap", "imaps", "pop3", "pop3s", "submission", "submissions"})

# Modules providing ``make_listeners(ctx, config)``, in start order.
PROTOCOL_MODULES = (
    "mailwarden.servers.smtp",
    "mailwarden.servers.imap",
    "mailwarden.servers.pop3",
)


@dataclass
class Node:
    """A running Mailwarden node: its store, auth service, listeners and web servers."""

    config: Config
    store: Store
    auth: AuthService
    context: ServerContext
    drain: DrainSwitch
    traffic: TrafficRecorder
    admin_tokens: AdminTokens
    listeners: list[Listener] = field(default_factory=list)
    web_servers: list[Any] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def draining(self) -> bool:
        """Whether the node refuses new sessions (maintenance or ``mailwarden drain on``)."""
        return self.drain.active()

    @classmethod
    async def start(cls, config: Config, *, with_status: bool = True) -> Node:
        """Open the store and start every enabled service."""
        store = await ops.open_store(config)
        hasher = await asyncio.to_thread(PasswordHasher, ops.hash_params(config))
        pool = VerifyPool(config.auth.verify_workers, config.auth.max_pending)
        auth = await open_auth_service(config, store, hasher, pool)
        tls = server_tls_context(str(config.cert_path), str(config.key_path))
        drain = DrainSwitch(config.data_path)
        sub = config.submission
        context = ServerContext(
            store=store,
            auth=auth,
            tls=tls,
            hostname=config.hostname,
            is_draining=drain.active,
            sending_limits=SendingLimits(sub.max_messages_per_hour, sub.max_messages_per_day),
        )
        traffic = TrafficRecorder(config.data_path)
        auth.on_attempt = lambda _service: traffic.count("logins")
        node = cls(config, store, auth, context, drain, traffic, AdminTokens(config.data_path))
        try:
            for name in PROTOCOL_MODULES:
                make = _optional(name, "make_listeners")
                if make is not None:
                    node.listeners += make(context, config)
            for listener in node.listeners:
                listener.on_accept = node._session_counter(listener.handler.name)
                if listener.handler.name in LOGIN_SERVICES:
                    listener.gate = auth
                await listener.start()
            node._tasks.append(asyncio.create_task(node._flush_traffic(), name="traffic"))
            await node._start_web(with_status)
        except BaseException:
            await node.stop()
            raise
        return node

    def _session_counter(self, service: str) -> Callable[[], None]:
        series = "smtp_sessions" if service.startswith(("smtp", "submission")) else None

        def count() -> None:
            self.traffic.count(f"sessions_{service}")
            if series:
                self.traffic.count(series)

        return count

    async def _flush_traffic(self) -> None:
        while True:
            await asyncio.sleep(60)
            await asyncio.to_thread(self.traffic.flush)

    async def _start_web(self, with_status: bool) -> None:
        import uvicorn

        apps: list[tuple[str, Any, int]] = []
        if self.config.web.enabled:
            make_web = _optional("mailwarden.web.app", "make_app")
            if make_web is not None:
                apps.append(("web", make_web(self), self.config.web.port))
        if with_status and self.config.status.enabled:
            make_status = _optional("mailwarden.web.status.app", "make_app")
            if make_status is not None:
                from mailwarden.web.status.settings import StatusSettings

                settings = StatusSettings.from_mapping(dict(self.config.status.options))
                status_app = make_status(self.config.status_db_path, settings)
                apps.append(("status", status_app, self.config.status.port))
        for name, app, port in apps:
            server = uvicorn.Server(
                uvicorn.Config(
                    app,
                    host=self.config.listen,
                    port=port,
                    log_level="warning",
                    lifespan="on",
                    access_log=False,
                )
            )
            task = asyncio.create_task(server.serve(), name=f"uvicorn-{name}")
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError(f"the {name} server did not start on port {port}")
                await asyncio.sleep(0.02)
            log.info("%s listening on http://%s:%d/", name, self.config.listen, port)
            self.web_servers.append((server, task))

    async def stop(self) -> None:
        """Stop accepting, let sessions finish briefly, close the store."""
        for task in self._tasks:
            task.cancel()
        for server, _ in self.web_servers:
            server.should_exit = True
        await asyncio.gather(*(listener.stop() for listener in self.listeners))
        for _, task in self.web_servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 10)
        await self.auth.close()  # also shuts the verification pool
        await asyncio.to_thread(self.traffic.flush)
        await self.store.close()


def _optional(module: str, attribute: str) -> Callable[..., Any] | None:
    """``module.attribute`` if the module exists (services not built yet are skipped)."""
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name == module:
            return None
        raise
    found = getattr(mod, attribute, None)
    return found if callable(found) else None


async def run_node(config: Config, *, with_status: bool = True) -> None:
    """Initialise if needed, start the node and run until SIGINT/SIGTERM."""
    result = await ops.init_data_dir(config)
    if result.created:
        from mailwarden.admin.cli import print_demo_credentials

        print_demo_credentials(result.demo_password or "")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    node = await Node.start(config, with_status=with_status)
    ports = ", ".join(f"{lst.handler.name} {lst.port}" for lst in node.listeners)
    print(
        f"Mailwarden is running on {config.listen}: {ports or 'no protocol services'}", flush=True
    )
    for server, _ in node.web_servers:
        print(f"  http://{config.listen}:{server.config.port}/", flush=True)
    print("Press Ctrl-C to stop.", flush=True)
    await stop.wait()
    print("stopping...", flush=True)
    await node.stop()


def serve(config: Config, *, with_status: bool = True) -> int:
    """Run the node in the foreground; returns the exit code."""
    setup_logging(config.log.level, config.log.format)
    try:
        import uvloop

        runner: Callable[..., Any] = uvloop.run
    except ImportError:
        runner = asyncio.run
    runner(run_node(config, with_status=with_status))
    return 0
