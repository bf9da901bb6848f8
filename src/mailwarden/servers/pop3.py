"""The POP3 server: an asyncio shell around :class:`mailwarden.proto.pop3.Pop3Session`.

Theory of operation
-------------------
Each connection runs one loop: read what the client sent, feed the core,
handle the core's events, write what the core queued.  The core decides
everything about the protocol; this module supplies only what needs the
outside world:

* **Credentials** go through the one door, :meth:`AuthService.verify`:
  ``Accepted`` opens the maildrop, ``Rejected`` is ``-ERR [AUTH]``,
  ``TryLater`` is ``-ERR [SYS/TEMP]`` (RFC 3206).
* **The maildrop** is the account's INBOX, listed once at login (RFC 1939
  §8: the listing is fixed for the session).  Its UIDLs are
  ``<UIDVALIDITY>.<UID>``: stable across sessions, never reused, and new
  whenever the store gives the folder a new UIDVALIDITY (so clients fetch
  again exactly when IMAP clients would).
* **Locking** (RFC 1939 §8): one POP3 session per maildrop.  The lock is held
  in a :class:`MaildropLocks` shared by both POP3 listeners of the node; a
  second login gets ``-ERR [IN-USE]`` (RFC 2449 §8.1.1).  IMAP may still
  change the INBOX meanwhile: a message it expunged answers RETR with
  ``-ERR`` and is simply gone at UPDATE.
* **UPDATE** (RFC 1939 §6): on QUIT after login, the messages marked with
  DELE are flagged ``\\Deleted`` and expunged by UID (only those: other
  ``\\Deleted`` messages belong to IMAP clients), and those read with RETR are
  flagged ``\\Seen`` as IMAP users expect.  The store announces the expunge
  on its change hub, so IMAP IDLE sessions see it at once.  A session that
  ends any other way changes nothing.
* **Sessions** are registered with the auth service once logged in, so
  ``mailwarden auth sessions`` lists them and ``auth revoke`` ends them (the
  connection is cut; no UPDATE happens).
* **TLS.** Port 1110 (110) offers STLS, port 1995 (995) is TLS from the first
  byte.  Logins without TLS are refused unless configured or from loopback.
  Before the STLS handshake the bytes the client already pipelined are
  dropped, including those still waiting in the stream reader, which the core
  never saw (RFC 2595 §4, CVE-2011-0411).
* **Timeouts.** ``Pop3Config.timeout`` seconds of silence (RFC 1939 §3: at
  least ten minutes) end the session with ``-ERR`` and without UPDATE.

The accept loop, per-address limits, drain and the error boundary are the
shared :class:`~mailwarden.servers.listener.Listener`'s.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from mailwarden.auth.service import Accepted, Peer, Rejected, Service, TryLater
from mailwarden.auth.stats import Session as AuthSession
from mailwarden.config import Config, Pop3Config
from mailwarden.logs import TRACE, conn_context
from mailwarden.proto.pop3 import (
    AuthAccepted,
    Authenticate,
    AuthRejected,
    Closed,
    MaildropEntry,
    MessageContent,
    MessageUnavailable,
    NeedData,
    Pop3Session,
    Pop3Settings,
    RespCode,
    Retrieve,
    StartTls,
    Update,
    UpdateDone,
    UpdateFailed,
)
from mailwarden.proto.pop3.replies import err
from mailwarden.servers.context import ServerContext
from mailwarden.servers.listener import Connection, ConnectionLimiter, Listener
from mailwarden.store.base import (
    AccountId,
    FlagMode,
    FolderId,
    MailStore,
    MessageEntry,
    NotFound,
    StoreError,
)

__all__ = ["MaildropLocks", "Pop3Handler", "make_listeners", "uidl_for"]

log = logging.getLogger(__name__)

# Octets read from the socket at a time.
READ_SIZE = 65536
# Pipelined RETRs: flush the queued answers once they pass this many octets.
FLUSH_AT = 256 * 1024
# Read-ahead after RETR: at most this many messages, and this many octets
# (but always one), per store call.
READ_AHEAD = 16
READ_AHEAD_OCTETS = 1024 * 1024

MAILDROP = "INBOX"


def uidl_for(uidvalidity: int, uid: int) -> str:
    """The unique-id listing of a message: stable while the folder's UIDVALIDITY is."""
    return f"{uidvalidity}.{uid}"


class MaildropLocks:
    """Which accounts have a POP3 session in TRANSACTION on this node (RFC 1939 §8).

    Shared by the STLS and implicit-TLS listeners.  A node with several worker
    processes, or a cluster, needs this in the store instead (see the module
    docstring of :mod:`mailwarden.servers.pop3` and the issue notes).
    """

    def __init__(self) -> None:
        self._held: set[AccountId] = set()

    def acquire(self, account: AccountId) -> bool:
        """Take the lock of ``account``; False if another session holds it."""
        if account in self._held:
            return False
        self._held.add(account)
        return True

    def release(self, account: AccountId) -> None:
        """Give the lock back (idempotent)."""
        self._held.discard(account)

    def held(self, account: AccountId) -> bool:
        """Whether a session holds the lock of ``account``."""
        return account in self._held


@dataclass
class _Maildrop:
    """The open maildrop of one session: what its message numbers mean."""

    account: AccountId
    folder: FolderId
    uids: list[int]
    sizes: list[int]
    retrieved: set[int] = field(default_factory=set)


class Pop3Handler:
    """Serves POP3 on connections accepted by a :class:`Listener`."""

    def __init__(
        self,
        ctx: ServerContext,
        config: Pop3Config,
        *,
        implicit_tls: bool,
        locks: MaildropLocks,
        trust_loopback: bool = True,
    ) -> None:
        """Make a handler.

        Args:
            ctx: the store, auth service, TLS context and host name.
            config: the POP3 section of the configuration.
            implicit_tls: the listener speaks TLS from the first byte (995).
            locks: the maildrop locks shared by every POP3 listener of the node.
            trust_loopback: allow logins without TLS from loopback peers (the
                embedded default).  Turn it off when a local proxy forwards
                remote clients over loopback.
        """
        self.name = "pop3s" if implicit_tls else "pop3"
        self.ctx = ctx
        self.config = config
        self.implicit_tls = implicit_tls
        self.locks = locks
        self.trust_loopback = trust_loopback

    # --- ConnectionHandler -----------------------------------------------------

    def busy_reply(self) -> bytes:
        """Greeting for a connection over the per-address limit."""
        return err("Too many connections from your address", RespCode.SYS_TEMP)

    def drain_reply(self) -> bytes:
        """Greeting while the node is draining for maintenance."""
        return err("Server is under maintenance; try again later", RespCode.SYS_TEMP)

    def crash_reply(self, incident: str) -> bytes:
        """Temporary failure after an internal error (never our exception text)."""
        return err(f"Internal error; try again later (reference {incident})", RespCode.SYS_TEMP)

    def settings_for(self, conn: Connection) -> Pop3Settings:
        """The core's settings for one connection."""
        return Pop3Settings(
            max_line=self.config.max_line,
            max_bad_commands=self.config.max_bad_commands,
            tls_active=conn.tls,
            stls_available=not conn.tls,
            allow_cleartext=self.config.allow_plaintext_auth
            or (self.trust_loopback and conn.is_loopback),
            greeting="Mailwarden POP3 server ready",
            trace=log.isEnabledFor(TRACE),
        )

    async def handle(self, conn: Connection) -> None:
        """Serve one connection until the client quits, times out or goes away."""
        conn_context.set({"conn": str(conn.id), "peer": conn.peer_host, "proto": self.name})
        served = _Served(self, conn, Pop3Session(self.settings_for(conn)))
        try:
            await served.run()
        finally:
            await served.cancel_prefetch()
            if served.maildrop is not None:
                self.locks.release(served.maildrop.account)
            if served.auth_session is not None:
                served.auth_session.close()


class _Served:
    """One connection being served: the socket, the core and the open maildrop."""

    def __init__(self, handler: Pop3Handler, conn: Connection, session: Pop3Session) -> None:
        self.handler = handler
        self.ctx = handler.ctx
        self.timeout = handler.config.timeout
        self.conn = conn
        self.session = session
        self.maildrop: _Maildrop | None = None
        self.auth_session: AuthSession | None = None
        self._out = bytearray()
        # RETR n is usually followed by RETR n+1, n+2...: those messages are
        # read ahead in one store call while the client is busy.
        self._ahead: dict[int, bytes] = {}
        self._ahead_task: asyncio.Task[dict[int, bytes]] | None = None
        self._ahead_uids: frozenset[int] = frozenset()

    async def run(self) -> None:
        session = self.session
        while True:
            event = session.next_event()
            self._trace()
            match event:
                case NeedData():
                    await self._flush()
                    try:
                        async with asyncio.timeout(self.timeout):
                            data = await self.conn.reader.read(READ_SIZE)
                    except TimeoutError:
                        log.info("idle for %d s; closing", self.timeout)
                        session.close_idle()
                        continue
                    session.receive_data(data)
                case Authenticate():
                    session.send(await self._authenticate(event))
                case Retrieve():
                    assert self.maildrop is not None
                    session.send(await self._retrieve(self.maildrop, event))
                    self._out += session.data_to_send()
                    if len(self._out) >= FLUSH_AT:
                        await self._flush()
                case Update():
                    assert self.maildrop is not None
                    session.send(await self._update(self.maildrop, event))
                case StartTls():
                    await self._flush()
                    await self.conn.start_tls(self.ctx.tls)
                    session.tls_started()
                case Closed(reason=reason):
                    await self._flush()
                    log.debug("session closed: %s", reason.value)
                    return

    async def _flush(self) -> None:
        self._out += self.session.data_to_send()
        if self._out:
            data = bytes(self._out)
            self._out.clear()
            # A client that stops reading must not hold the session forever.
            async with asyncio.timeout(self.timeout):
                await self.conn.send(data)

    def _trace(self) -> None:
        for line in self.session.take_trace():
            log.log(TRACE, "%s: %s", line.direction, line.line.decode("utf-8", "replace"))

    # --- the application's answers ------------------------------------------------

    async def _authenticate(self, event: Authenticate) -> AuthAccepted | AuthRejected:
        peer = Peer.from_host(self.conn.peer_host, Service.POP3, tls=self.session.tls)
        outcome = await self.ctx.auth.verify(event.username, event.password, peer)
        match outcome:
            case Rejected():
                return AuthRejected(RespCode.AUTH)
            case TryLater():
                return AuthRejected(RespCode.SYS_TEMP)
            case Accepted(account=account):
                self.conn.logged_in()
        locks = self.handler.locks
        if not locks.acquire(account.id):
            log.info("maildrop of %s is in use", account.address)
            return AuthRejected(RespCode.IN_USE)
        try:
            self.maildrop, entries = await open_maildrop(self.ctx.store, account.id)
        except StoreError:
            locks.release(account.id)
            log.warning("cannot open the maildrop of %s", account.address, exc_info=True)
            return AuthRejected(RespCode.SYS_TEMP, "Cannot open the maildrop now")
        conn_context.set({**conn_context.get({}), "account": account.address})
        # Listed by `auth sessions`; `auth revoke` cuts the connection, and a
        # session cut short never reaches UPDATE, so nothing is deleted.
        self.auth_session = self.ctx.auth.open_session(account, peer, on_revoke=self.conn.close)
        return AuthAccepted(entries)

    async def _retrieve(
        self, maildrop: _Maildrop, event: Retrieve
    ) -> MessageContent | MessageUnavailable:
        uid = maildrop.uids[event.number - 1]
        try:
            data = await self._read(maildrop, uid)
        except NotFound:
            # Expunged by an IMAP session since the listing was made.
            return MessageUnavailable()
        except StoreError:
            log.warning("cannot read message uid=%d", uid, exc_info=True)
            return MessageUnavailable(RespCode.SYS_TEMP, "Cannot read the message now")
        if event.lines is None:
            maildrop.retrieved.add(uid)
            self._read_ahead(maildrop, event.number)
        return MessageContent(data)

    async def _read(self, maildrop: _Maildrop, uid: int) -> bytes:
        """The octets of ``uid``, from the read-ahead when it has them.

        Raises:
            StoreError: NotFound if the message is gone.
        """
        if uid in self._ahead:
            return self._ahead.pop(uid)
        task = self._ahead_task
        if task is not None and uid in self._ahead_uids:
            self._ahead_task = None
            self._ahead = await task
            if uid not in self._ahead:
                raise NotFound(f"message uid {uid} is gone")
            return self._ahead.pop(uid)
        await self.cancel_prefetch()  # the client went its own way
        return await self.ctx.store.read_message(maildrop.account, maildrop.folder, uid)

    def _read_ahead(self, maildrop: _Maildrop, number: int) -> None:
        """After RETR ``number``, start reading the next messages if nothing covers them."""
        if number >= len(maildrop.uids):
            return
        if maildrop.uids[number] in self._ahead or self._ahead_task is not None:
            return
        batch: list[int] = []
        octets = 0
        for n in range(number, min(number + READ_AHEAD, len(maildrop.uids))):
            if batch and octets + maildrop.sizes[n] > READ_AHEAD_OCTETS:
                break
            batch.append(maildrop.uids[n])
            octets += maildrop.sizes[n]
        self._ahead_uids = frozenset(batch)
        self._ahead_task = asyncio.ensure_future(
            self.ctx.store.read_messages(maildrop.account, maildrop.folder, batch)
        )

    async def cancel_prefetch(self) -> None:
        """Drop a read-ahead the client will not ask for."""
        self._ahead = {}
        task, self._ahead_task = self._ahead_task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _update(self, maildrop: _Maildrop, event: Update) -> UpdateDone | UpdateFailed:
        deleted = [maildrop.uids[n - 1] for n in event.deleted]
        seen = sorted(maildrop.retrieved.difference(deleted))
        try:
            await apply_update(self.ctx.store, maildrop.account, maildrop.folder, deleted, seen)
        except StoreError:
            log.warning("UPDATE failed for %d messages", len(deleted), exc_info=True)
            return UpdateFailed()
        if deleted:
            log.info("expunged %d messages", len(deleted))
        return UpdateDone()


# --- store adapter -------------------------------------------------------------------
# The POP3 view of the store, kept here so the Store protocol stays as it is.


async def open_maildrop(
    store: MailStore, account: AccountId
) -> tuple[_Maildrop, list[MaildropEntry]]:
    """List the INBOX of ``account`` as a POP3 maildrop.

    Raises:
        StoreError: the store cannot answer (NotFound if there is no INBOX).
    """
    folder = await store.get_folder(account, MAILDROP)
    entries: list[MessageEntry] = await store.list_entries(account, folder.id)
    maildrop = _Maildrop(account, folder.id, [e.uid for e in entries], [e.size for e in entries])
    listing = [MaildropEntry(uidl_for(folder.uidvalidity, e.uid), e.size) for e in entries]
    return maildrop, listing


async def apply_update(
    store: MailStore,
    account: AccountId,
    folder: FolderId,
    deleted: list[int],
    seen: list[int],
) -> None:
    """RFC 1939 §6 UPDATE: expunge ``deleted`` (and nothing else), flag ``seen`` as read.

    Messages already expunged by IMAP are skipped silently by the store.

    Raises:
        StoreError: the store failed; some deletions may not have happened.
    """
    if seen:
        await store.store_flags(account, folder, seen, ["\\Seen"], FlagMode.ADD)
    if deleted:
        await store.store_flags(account, folder, deleted, ["\\Deleted"], FlagMode.ADD)
        await store.expunge(account, folder, deleted)


# --- composition ----------------------------------------------------------------------


def make_listeners(
    ctx: ServerContext,
    config: Config,
    *,
    trust_loopback: bool = True,
    is_draining: Callable[[], bool] | None = None,
) -> list[Listener]:
    """The POP3 listeners of a node: STLS on ``pop3.port``, implicit TLS on ``pop3.tls_port``.

    Args:
        ctx: shared dependencies from the composition root.
        config: the whole configuration (uses ``listen`` and ``pop3``).
        trust_loopback: see :class:`Pop3Handler`.
        is_draining: overrides ``ctx.is_draining``.

    Returns:
        Two listeners sharing one per-address limiter and one set of maildrop
        locks, not started; none if POP3 is disabled.
    """
    pop3 = config.pop3
    if not pop3.enabled:
        return []
    limiter = ConnectionLimiter(pop3.max_connections_per_ip)
    locks = MaildropLocks()
    draining = is_draining or ctx.is_draining
    plain = Pop3Handler(ctx, pop3, implicit_tls=False, locks=locks, trust_loopback=trust_loopback)
    tls = Pop3Handler(ctx, pop3, implicit_tls=True, locks=locks, trust_loopback=trust_loopback)
    return [
        Listener(plain, config.listen, pop3.port, limiter=limiter, is_draining=draining),
        Listener(
            tls, config.listen, pop3.tls_port, limiter=limiter, tls=ctx.tls, is_draining=draining
        ),
    ]
