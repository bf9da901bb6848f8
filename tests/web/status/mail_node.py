"""A real Mailwarden node started in-process for the status service's end-to-end
tests: every protocol on 127.0.0.1 port 0, tiny argon2 parameters, a probe
mailbox, and helpers to read greetings and to run blocking clients."""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from mailwarden.admin import ops
from mailwarden.app import Node
from mailwarden.auth.passwords import PasswordHasher
from mailwarden.config import Config, load_config
from mailwarden.servers.listener import Listener
from mailwarden.web.status.settings import ProbeSettings

PROBE_ACCOUNT = "probe@example.test"
PROBE_PASSWORD = "probe-secret-1"


def module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def require_modules(*names: str) -> None:
    """Skip (naming the module) when a node service is not in the tree yet."""
    for name in names:
        if not module_exists(name):
            pytest.skip(f"{name} is not in the tree yet; this test needs it")


@dataclass
class MailNode:
    node: Node
    config: Config

    def listeners(self, *names: str) -> list[Listener]:
        return [lst for lst in self.node.listeners if lst.handler.name in names]

    def port(self, name: str) -> int:
        (listener,) = self.listeners(name)
        return listener.port

    def has(self, name: str) -> bool:
        return bool(self.listeners(name))

    @property
    def has_webmail(self) -> bool:
        return bool(self.node.web_servers) and module_exists("mailwarden.web.webmail")

    def _url(self, task_name: str) -> str:
        for server, task in self.node.web_servers:
            if task.get_name() == task_name:
                host, port = server.servers[0].sockets[0].getsockname()[:2]
                return f"http://{host}:{port}"
        raise LookupError(f"the node runs no {task_name}")

    @property
    def web_url(self) -> str:
        return self._url("uvicorn-web")

    @property
    def status_url(self) -> str:
        return self._url("uvicorn-status")

    def probe_settings(self, cluster: str = "cluster-a", **overrides: object) -> ProbeSettings:
        """Probes of this node, STARTTLS verified against its self-signed certificate."""
        base = ProbeSettings(
            cluster,
            host="127.0.0.1",
            imap_port=self.port("imap") if self.has("imap") else 1,
            pop3_port=self.port("pop3"),
            submission_port=self.port("submission") if self.has("submission") else 1,
            webmail_url=f"{self.web_url}/login" if self.has_webmail else "",
            account=PROBE_ACCOUNT,
            password=PROBE_PASSWORD,
            starttls=True,
            ca_file=str(self.config.cert_path),
            timeout=10,
            roundtrip_timeout=20,
            failures_for_outage=2,
            slow_for_degraded=2,
            successes_to_recover=2,
        )
        return replace(base, **overrides)  # type: ignore[arg-type]


@asynccontextmanager
async def running_node(data_dir: Path, *, status: bool = False) -> AsyncIterator[MailNode]:
    """Start a node with every service on an ephemeral port and a probe mailbox.

    With ``status`` the node also serves its status page, as ``make run`` does
    (``MailNode.status_url``); the status tests otherwise run their own.
    """
    overrides: dict[str, object] = {
        "data_dir": str(data_dir),
        "auth.argon2_memory_kib": 64,
        "auth.argon2_time_cost": 1,
        "auth.verify_workers": 1,
        "status.enabled": status,
    }
    for key in (
        "imap.port",
        "imap.tls_port",
        "pop3.port",
        "pop3.tls_port",
        "smtp.port",
        "submission.port",
        "submission.tls_port",
        "web.port",
        "status.port",
    ):
        overrides[key] = 0
    config = load_config(env={}, overrides=overrides)
    await ops.init_data_dir(config)
    node = await Node.start(config, with_status=status)
    try:
        hasher = PasswordHasher(ops.hash_params(config))
        await ops.add_user(node.store, hasher, PROBE_ACCOUNT, PROBE_PASSWORD)
        yield MailNode(node, config)
    finally:
        await node.stop()


async def greeting(port: int) -> bytes:
    """Connect and return the first line the server sends (then hang up)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        async with asyncio.timeout(10):
            return await reader.readline()
    finally:
        writer.close()
        await writer.wait_closed()
