"""The accept loop every TCP service shares: TLS, connection limits, drain, error boundary.

Theory of operation
-------------------
A :class:`Listener` owns one listening socket and hands each accepted
connection to a protocol's :class:`ConnectionHandler`.  Before the handler sees
it, the listener applies what is the same for every protocol:

* **Per-address limits.**  A :class:`ConnectionLimiter` (shared by the
  listeners of one service, so STARTTLS and implicit-TLS ports count together)
  refuses a connection beyond ``max_per_ip`` from one address with the
  protocol's "busy" greeting, so that no single source fills the server.
* **Pre-login limits.**  For login services the auth service's gate admits
  each connection (bans, per-address and per-network shares of the
  unauthenticated connections); the slot is given back when the session
  logs in (:meth:`Connection.logged_in`) or closes.
* **Drain.**  While draining (maintenance), new connections get the protocol's
  "unavailable" greeting and are closed; sessions already open continue.
* **The one error boundary.**  A connection that dies from the network is
  logged quietly; any other exception is our bug: it is logged at ERROR with a
  short incident id, and the peer gets the protocol's temporary failure naming
  that id (never our exception text).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import logging
import secrets
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

__all__ = [
    "Admission",
    "Connection",
    "ConnectionHandler",
    "ConnectionLimiter",
    "Listener",
    "PreLoginGate",
    "new_incident_id",
    "server_tls_context",
]

log = logging.getLogger(__name__)
_ids = itertools.count(1)
# Pending handshakes the kernel may hold: asyncio's default (100) drops SYNs
# when thousands of clients connect at once (a login flood, a node restart).
BACKLOG = 1024


def new_incident_id() -> str:
    """A short random reference shown to the peer and written in the log."""
    return secrets.token_hex(4)


def server_tls_context(cert_file: str, key_file: str) -> ssl.SSLContext:
    """A server-side TLS context with modern defaults (TLS 1.2 and newer)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert_file, key_file)
    return ctx


class Admission(Protocol):
    """A pre-login slot (see :class:`PreLoginGate`): true when admitted."""

    def __bool__(self) -> bool: ...

    def release(self) -> None:
        """Give the slot back (idempotent)."""
        ...


class PreLoginGate(Protocol):
    """Decides at accept time whether a connection may wait to log in (the auth service)."""

    def admit_connection(self, peer: ipaddress.IPv4Address | ipaddress.IPv6Address) -> Admission:
        """Admit or refuse; an admitted connection holds a slot until released."""
        ...


@dataclass
class Connection:
    """One accepted connection as a protocol handler sees it."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    peer_host: str
    peer_port: int
    local_port: int
    tls: bool
    id: int = field(default_factory=lambda: next(_ids))
    admission: Admission | None = None

    def logged_in(self) -> None:
        """The session has authenticated: it no longer holds a pre-login slot."""
        if self.admission is not None:
            self.admission.release()

    @property
    def peer_ip(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
        """The peer's address."""
        return ipaddress.ip_address(self.peer_host.split("%", 1)[0])

    @property
    def is_loopback(self) -> bool:
        """Whether the peer is on this machine."""
        return self.peer_ip.is_loopback

    async def start_tls(self, context: ssl.SSLContext) -> None:
        """Upgrade to TLS in place (STARTTLS, STLS).

        Octets the client pipelined after the command were sent in the clear
        and must not be taken as said under TLS (command injection,
        CVE-2011-0411, RFC 3207 §4.2): whatever the stream reader holds is
        dropped first.  StreamReader has no public way to empty its buffer;
        ``_buffer`` is the bytearray CPython keeps it in, and nothing awaits
        between the drop and the handshake pausing the transport.
        """
        buffer = getattr(self.reader, "_buffer", None)
        if isinstance(buffer, bytearray) and buffer:
            log.info(
                "connection %d: discarded %d octets pipelined before TLS", self.id, len(buffer)
            )
            buffer.clear()
        await self.writer.start_tls(context)
        self.tls = True

    async def send(self, data: bytes) -> None:
        """Write and wait until the transport drains."""
        if data:
            self.writer.write(data)
            await self.writer.drain()

    def close(self) -> None:
        """Close the transport (idempotent)."""
        if not self.writer.is_closing():
            self.writer.close()


class ConnectionHandler(Protocol):
    """What a protocol provides to the listener."""

    name: str

    async def handle(self, conn: Connection) -> None:
        """Serve one connection until it ends."""
        ...

    def busy_reply(self) -> bytes:
        """Greeting for a connection refused by a limit."""
        ...

    def drain_reply(self) -> bytes:
        """Greeting for a connection refused while draining."""
        ...

    def crash_reply(self, incident: str) -> bytes:
        """Temporary failure sent after an internal error."""
        ...


@dataclass
class ConnectionLimiter:
    """Counts open connections per peer address."""

    max_per_ip: int
    open: dict[str, int] = field(default_factory=dict)

    def acquire(self, host: str) -> bool:
        """Take a slot for ``host``; False when it has too many open already."""
        count = self.open.get(host, 0)
        if count >= self.max_per_ip:
            return False
        self.open[host] = count + 1
        return True

    def release(self, host: str) -> None:
        """Give back a slot."""
        count = self.open.get(host, 0) - 1
        if count <= 0:
            self.open.pop(host, None)
        else:
            self.open[host] = count

    @property
    def total(self) -> int:
        """Connections open across all addresses."""
        return sum(self.open.values())


class Listener:
    """One listening socket for one protocol handler."""

    def __init__(
        self,
        handler: ConnectionHandler,
        host: str,
        port: int,
        *,
        limiter: ConnectionLimiter,
        tls: ssl.SSLContext | None = None,
        is_draining: Callable[[], bool] = lambda: False,
    ) -> None:
        self.handler = handler
        self.host = host
        self.port = port
        self.limiter = limiter
        self.tls = tls
        self.is_draining = is_draining
        self.on_accept: Callable[[], None] | None = None  # e.g. a traffic counter
        # Login services: pre-login connection limits per address and network.
        self.gate: PreLoginGate | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Bind and start accepting; ``self.port`` holds the real port afterwards."""
        self._server = await asyncio.start_server(
            self._accept,
            self.host,
            self.port,
            backlog=BACKLOG,
            ssl=self.tls,
            limit=2**20,
            ssl_handshake_timeout=30 if self.tls else None,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        log.info(
            "%s listening on %s:%d%s",
            self.handler.name,
            self.host,
            self.port,
            " (TLS)" if self.tls else "",
        )

    async def stop(self, grace: float = 5.0) -> None:
        """Stop accepting, give open sessions ``grace`` seconds, then cut them."""
        if self._server is None:
            return
        self._server.close()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=1.0)
        await self._server.wait_closed()
        self._server = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        finally:
            self._tasks.discard(task)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername") or ("0.0.0.0", 0)  # noqa: S104 - placeholder
        sock = writer.get_extra_info("sockname") or ("", 0)
        conn = Connection(
            reader, writer, str(peer[0]), int(peer[1]), int(sock[1]), tls=self.tls is not None
        )
        if self.is_draining():
            await self._refuse(conn, self.handler.drain_reply(), "draining")
            return
        if not self.limiter.acquire(conn.peer_host):
            log.warning("%s: too many connections from %s", self.handler.name, conn.peer_host)
            await self._refuse(conn, self.handler.busy_reply(), "limit")
            return
        if self.gate is not None:
            conn.admission = self.gate.admit_connection(conn.peer_ip)
            if not conn.admission:
                self.limiter.release(conn.peer_host)
                await self._refuse(conn, self.handler.busy_reply(), "pre-login limit")
                return
        if self.on_accept is not None:
            self.on_accept()
        try:
            await self.handler.handle(conn)
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError, ssl.SSLError) as exc:
            log.info(
                "%s: connection %d ended early: %s", self.handler.name, conn.id, type(exc).__name__
            )
        except asyncio.CancelledError:
            raise
        except Exception:  # the one catch-all per connection
            incident = new_incident_id()
            log.exception(
                "%s: internal error on connection %d incident=%s",
                self.handler.name,
                conn.id,
                incident,
            )
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.send(self.handler.crash_reply(incident)), 5)
        finally:
            self.limiter.release(conn.peer_host)
            if conn.admission is not None:
                conn.admission.release()
            conn.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(writer.wait_closed(), 5)

    @staticmethod
    async def _refuse(conn: Connection, reply: bytes, why: str) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(conn.send(reply), 5)
        conn.close()
        log.debug("refused connection %d from %s: %s", conn.id, conn.peer_host, why)
