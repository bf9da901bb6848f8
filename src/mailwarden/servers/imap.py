"""The IMAP server: asyncio shell around :class:`mailwarden.proto.imap.ImapSession`.

Theory of operation.  One :class:`_Served` per connection reads octets, feeds
the sans-I/O core, and answers each command event from the store
(:mod:`mailwarden.store.base`) through the helpers in
:mod:`mailwarden.servers.imap_mailbox` (selected-state commands).  Time lives
here: the autologout timers (RFC 3501 §5.4: a short one before login, at least
30 minutes after) and IDLE's wait for either the client's DONE or a change
notification from the store's :class:`~mailwarden.store.base.ChangeHub`, so an
idling client hears about new mail as soon as it is committed.  The handlers
of a node share two things across sessions: folder snapshots (so idle
sessions on one folder hold one copy) and the ``\\Recent`` boundaries
(:mod:`mailwarden.servers.imap_recent`).  Responses are written with one
vectored write per flush (:meth:`ImapSession.data_to_send_parts`).

Errors: store domain errors become ``NO`` with the RFC 5530 code
(:func:`reply_for`); anything else inside a command is our bug: it is logged
with an incident id and the client gets ``NO [SERVERBUG]`` naming the id and
the session goes on.  A failure outside a command reaches the listener's
error boundary, which sends ``* BYE [UNAVAILABLE]`` with an incident id.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from mailwarden.auth.service import Accepted, Peer, Rejected, Service, TryLater
from mailwarden.config import Config, ImapConfig
from mailwarden.logs import TRACE, conn_context
from mailwarden.proto.imap import commands as c
from mailwarden.proto.imap.events import (
    ConnectionClosed,
    IdleDone,
    NeedData,
    SessionConfig,
    StartTlsRequested,
    State,
)
from mailwarden.proto.imap.listing import ListFolder, list_lines, lsub_lines, status_line
from mailwarden.proto.imap.responses import (
    RawLines,
    Tagged,
    Untagged,
    UntaggedStatus,
    mailbox_name,
)
from mailwarden.proto.imap.session import ImapSession
from mailwarden.servers.context import ServerContext
from mailwarden.servers.imap_mailbox import SelectedFolder, SnapshotCache, folder_list, reply_for
from mailwarden.servers.imap_recent import RecentTracker
from mailwarden.servers.listener import (
    Connection,
    ConnectionLimiter,
    Listener,
    new_incident_id,
)
from mailwarden.store.base import (
    AccountId,
    Folder,
    NotFound,
    SpecialUse,
    StoreError,
    Subscription,
)

__all__ = ["ImapHandler", "UserLimiter", "make_listeners"]

log = logging.getLogger(__name__)

_READ_SIZE = 65536
_STATUS_ORDER = (
    "MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "HIGHESTMODSEQ", "SIZE", "DELETED",
    "APPENDLIMIT",
)  # fmt: skip


@dataclass
class UserLimiter:
    """Open sessions per account, shared by the IMAP listeners of a node."""

    max_per_user: int
    open: dict[AccountId, int] = field(default_factory=dict)

    def acquire(self, account: AccountId) -> bool:
        n = self.open.get(account, 0)
        if n >= self.max_per_user:
            return False
        self.open[account] = n + 1
        return True

    def release(self, account: AccountId) -> None:
        n = self.open.get(account, 0) - 1
        if n <= 0:
            self.open.pop(account, None)
        else:
            self.open[account] = n


class ImapHandler:
    """Serves IMAP on connections accepted by a :class:`Listener`."""

    def __init__(
        self,
        ctx: ServerContext,
        config: ImapConfig,
        *,
        implicit_tls: bool,
        users: UserLimiter,
        trust_loopback: bool = True,
        snapshots: SnapshotCache | None = None,
        recent: RecentTracker | None = None,
    ) -> None:
        """Make a handler.

        Args:
            ctx: the store, auth service, TLS context and host name.
            config: the IMAP section of the configuration.
            implicit_tls: the listener speaks TLS from the first byte (993).
            users: the per-account session counter shared by the listeners.
            trust_loopback: allow logins without TLS from loopback peers (the
                embedded default); turn off when a local proxy forwards remote
                clients over loopback.
            snapshots: folder snapshots shared by the sessions of the node.
            recent: the node's ``\\Recent`` boundaries (shared likewise).
        """
        self.name = "imaps" if implicit_tls else "imap"
        self.ctx = ctx
        self.config = config
        self.implicit_tls = implicit_tls
        self.users = users
        self.trust_loopback = trust_loopback
        self.snapshots = snapshots if snapshots is not None else SnapshotCache()
        self.recent = recent if recent is not None else RecentTracker()

    def busy_reply(self) -> bytes:
        return b"* BYE [UNAVAILABLE] Too many connections from your address\r\n"

    def drain_reply(self) -> bytes:
        return b"* BYE [UNAVAILABLE] Server is under maintenance; try again later\r\n"

    def crash_reply(self, incident: str) -> bytes:
        # RFC 5530 UNAVAILABLE: temporary, with a reference for the operator
        return b"* BYE [UNAVAILABLE] Internal error; try again later (reference %s)\r\n" % (
            incident.encode("ascii")
        )

    def session_config(self, conn: Connection) -> SessionConfig:
        cfg = self.config
        return SessionConfig(
            max_line=cfg.max_line,
            max_literal=cfg.max_literal,
            max_bad_commands=cfg.max_bad_commands,
            tls_available=not conn.tls,
            allow_plaintext_login=cfg.allow_plaintext_auth
            or (self.trust_loopback and conn.is_loopback),
        )

    async def handle(self, conn: Connection) -> None:
        """Serve one connection until LOGOUT, BYE, timeout or the peer goes away."""
        conn_context.set({"conn": str(conn.id), "peer": conn.peer_host, "proto": self.name})
        served = _Served(self, conn)
        try:
            await served.run()
        finally:
            served.close()


class _Served:
    """One connection: socket, core, and the logged-in account's state."""

    def __init__(self, handler: ImapHandler, conn: Connection) -> None:
        self.handler = handler
        self.conn = conn
        self.store = handler.ctx.store
        self.session = ImapSession(handler.session_config(conn), tls_active=conn.tls)
        self.account: AccountId | None = None
        self.sub: Subscription | None = None
        self.selected: SelectedFolder | None = None
        self._held_slot = False

    def close(self) -> None:
        if self.sub is not None:
            self.sub.close()
            self.sub = None
        if self._held_slot and self.account is not None:
            self.handler.users.release(self.account)
            self._held_slot = False

    async def flush(self) -> None:
        parts = self.session.data_to_send_parts()
        if parts:
            # one vectored write: message octets are not copied into one buffer
            writer = self.conn.writer
            writer.writelines(parts)
            await writer.drain()

    def _timeout(self) -> float:
        cfg = self.handler.config
        if self.session.state is State.NOT_AUTHENTICATED:
            return float(cfg.login_timeout)
        return float(cfg.idle_timeout)

    async def _read(self) -> bytes | None:
        """Octets from the peer; None when the autologout timer fired."""
        try:
            async with asyncio.timeout(self._timeout()):
                return await self.conn.reader.read(_READ_SIZE)
        except TimeoutError:
            return None

    async def run(self) -> None:
        s = self.session
        s.greeting()
        await self.flush()
        while True:
            ev = s.next_event()
            match ev:
                case NeedData():
                    await self.flush()  # continuations and the core's own answers
                    data = await self._read()
                    if data is None:
                        s.autologout()
                        await self.flush()
                        return
                    s.receive_data(data)
                    continue
                case ConnectionClosed():
                    await self.flush()
                    return
                case StartTlsRequested():
                    await self.flush()
                    await self.conn.start_tls(self.handler.ctx.tls)
                    s.tls_established()
                    continue
                case IdleDone():
                    continue  # only seen outside IDLE when the app already answered
                case c.Idle():
                    await self._idle(ev)
                case _:
                    await self._command(ev)
            await self.flush()

    # --- dispatch -----------------------------------------------------------------

    async def _command(self, cmd: c.Command) -> None:
        if log.isEnabledFor(TRACE):
            log.log(TRACE, "C: %r", cmd)
        try:
            await self._dispatch(cmd)
        except StoreError as exc:
            self._finish(cmd.tag, *reply_for(exc))
        except (ConnectionError, asyncio.CancelledError):
            raise
        except Exception:
            incident = new_incident_id()
            log.exception("imap: internal error in %s incident=%s", type(cmd).__name__, incident)
            self._finish(cmd.tag, "NO", f"Internal error (reference {incident})", "SERVERBUG")

    def _finish(self, tag: str, status: str, text: str, code: str | None = None) -> None:
        assert status in ("OK", "NO", "BAD")
        self.session.send(Tagged(tag, status, text, code))  # type: ignore[arg-type]

    def _untagged(self, data: bytes) -> None:
        self.session.send(Untagged(data))

    def _lines(self, data: bytes) -> None:
        if data:
            self.session.send(RawLines(data))

    async def _dispatch(self, cmd: c.Command) -> None:
        match cmd:
            case c.Login():
                await self._login(cmd)
                return
            case c.Noop() | c.Check():
                await self._refresh(allow_expunge=True)
                self._finish(cmd.tag, "OK", f"{type(cmd).__name__.upper()} completed")
                return
            case c.Enable():
                if self.selected is not None and self.session.condstore:
                    code = f"HIGHESTMODSEQ {self.selected.view.highestmodseq}"
                    self.session.send(UntaggedStatus("OK", "Highest", code))
                self._finish(cmd.tag, "OK", "ENABLE completed")
                return
        assert self.account is not None
        account = self.account
        match cmd:
            case c.Select() | c.Examine():
                await self._select(cmd, account)
            case c.Create():
                await self._create(cmd, account)
            case c.Delete():
                await self._delete(cmd, account)
            case c.Rename():
                await self.store.rename_folder(account, cmd.old, cmd.new.rstrip("/"))
                self._finish(cmd.tag, "OK", "RENAME completed")
            case c.Subscribe() | c.Unsubscribe():
                subscribe = isinstance(cmd, c.Subscribe)
                await self.store.set_subscribed(account, cmd.mailbox, subscribe)
                self._finish(cmd.tag, "OK", f"{type(cmd).__name__.upper()} completed")
            case c.List():
                await self._list(cmd, account)
            case c.Lsub():
                folders = await self._folders(account)
                for line in lsub_lines(folders, cmd.reference, cmd.pattern, utf8=self.session.utf8):
                    self._untagged(line)
                self._finish(cmd.tag, "OK", "LSUB completed")
            case c.Status():
                self._untagged(await self._status(account, cmd.mailbox, cmd.items))
                self._finish(cmd.tag, "OK", "STATUS completed")
            case c.Append():
                await self._append(cmd, account)
            case c.GetQuotaRoot() | c.GetQuota():
                await self._quota(cmd, account)
            case c.SetQuota():
                self._finish(cmd.tag, "NO", "Quotas are set by the administrator", "NOPERM")
            case c.Close() | c.Unselect():
                sel = self.selected
                self.selected = None
                if isinstance(cmd, c.Close) and sel is not None and not sel.view.readonly:
                    # RFC 3501 §6.4.2: CLOSE expunges silently
                    await self.store.expunge(account, sel.folder_id)
                self._finish(cmd.tag, "OK", f"{type(cmd).__name__.upper()} completed")
            case _:
                sel = self.selected
                assert sel is not None
                await self._refresh(allow_expunge=False)
                await sel.run(cmd, self.session, self._flush_partial)
                await self._refresh(allow_expunge=_may_expunge(cmd))
                if self.session.closed:
                    return

    async def _flush_partial(self) -> None:
        await self.flush()

    # --- login ----------------------------------------------------------------------

    async def _login(self, cmd: c.Login) -> None:
        peer = Peer.from_host(self.conn.peer_host, Service.IMAP, tls=self.conn.tls)
        if cmd.authzid and cmd.authzid != cmd.username:
            self._finish(cmd.tag, "NO", "Not authorized to act as that user", "AUTHORIZATIONFAILED")
            return
        outcome = await self.handler.ctx.auth.verify(cmd.username, cmd.password, peer)
        match outcome:
            case Accepted(account=account):
                if not self.handler.users.acquire(account.id):
                    self._finish(cmd.tag, "NO", "Too many sessions for this account", "LIMIT")
                    return
                self._held_slot = True
                self.conn.logged_in()
                self.account = account.id
                self.sub = self.store.changes.subscribe(account.id)
                conn_context.set({**conn_context.get({}), "account": account.address})
                self._finish(cmd.tag, "OK", "Logged in")
            case Rejected():
                self._finish(cmd.tag, "NO", "Invalid credentials", "AUTHENTICATIONFAILED")
            case TryLater():
                self._finish(cmd.tag, "NO", "Try again later", "UNAVAILABLE")

    # --- mailboxes --------------------------------------------------------------------

    async def _folders(self, account: AccountId) -> list[ListFolder]:
        return await folder_list(self.store, account)

    async def _select(self, cmd: c.Select | c.Examine, account: AccountId) -> None:
        if self.selected is not None:
            # RFC 7162 §3.2.11: the previous mailbox is closed
            self.selected = None
            self.session.send(UntaggedStatus("OK", "Previous mailbox closed", "CLOSED"))
        sel = await SelectedFolder.open(
            self.store, account, cmd, self.session, self.handler.snapshots, self.handler.recent
        )
        self.selected = sel
        self._drain_changes()
        code = "READ-ONLY" if sel.view.readonly else "READ-WRITE"
        self._finish(cmd.tag, "OK", f"{type(cmd).__name__.upper()} completed", code)

    async def _create(self, cmd: c.Create, account: AccountId) -> None:
        use: SpecialUse | None = None
        if cmd.special_use:
            try:
                (use,) = (SpecialUse("\\" + u[1:].capitalize()) for u in cmd.special_use)
            except ValueError:
                # RFC 6154 §6: USEATTR for an attribute we cannot give
                self._finish(cmd.tag, "NO", "Unsupported special-use attribute", "USEATTR")
                return
        name = cmd.mailbox.rstrip("/")  # RFC 3501 §6.3.3: a trailing delimiter is a hint
        await self.store.create_folder(account, name, use)
        self._finish(cmd.tag, "OK", "CREATE completed")

    async def _delete(self, cmd: c.Delete, account: AccountId) -> None:
        folder = await self.store.get_folder(account, cmd.mailbox)
        prefix = folder.name + "/"
        if any(f.name.startswith(prefix) for f in await self._folders(account)):
            # RFC 9051 §7.1 HASCHILDREN: deleting it would leave its children
            # under a name that is no mailbox; delete them first (as Dovecot asks)
            self._finish(cmd.tag, "NO", "Mailbox has children, delete them first", "HASCHILDREN")
            return
        await self.store.delete_folder(account, cmd.mailbox)
        self._finish(cmd.tag, "OK", "DELETE completed")

    async def _list(self, cmd: c.List, account: AccountId) -> None:
        folders = await self._folders(account)
        lines = list_lines(
            folders,
            cmd.reference,
            cmd.patterns,
            select_opts=cmd.select_opts,
            return_opts=cmd.return_opts,
            utf8=self.session.utf8,
        )
        for name, line in lines:
            self._untagged(line)
            if "STATUS" in cmd.return_opts and name:
                # RFC 5819 §2: a STATUS response after each selectable mailbox
                with contextlib.suppress(StoreError):
                    self._untagged(await self._status(account, name, cmd.status_items))
        self._finish(cmd.tag, "OK", "LIST completed")

    async def _status(self, account: AccountId, name: str, items: tuple[str, ...]) -> bytes:
        st = await self.store.folder_status(account, name)
        recent = 0
        if "RECENT" in items:
            recent = await self._recent_count(account, st.folder)
        values = {
            "MESSAGES": st.messages,
            "RECENT": recent,
            "UIDNEXT": st.folder.uidnext,
            "UIDVALIDITY": st.folder.uidvalidity,
            "UNSEEN": st.unseen,
            "HIGHESTMODSEQ": st.folder.highestmodseq,
            "SIZE": st.size,
            "DELETED": st.deleted,
            "APPENDLIMIT": self.handler.config.max_literal,
        }
        picked = [(k, values[k]) for k in _STATUS_ORDER if k in items]
        return status_line(st.folder.name, picked, utf8=self.session.utf8)

    async def _recent_count(self, account: AccountId, folder: Folder) -> int:
        """STATUS RECENT (RFC 3501 §6.3.10): messages above the folder's recent boundary.

        Read-only (STATUS takes nothing away); only entries added since the
        boundary was set are read (see :mod:`mailwarden.servers.imap_recent`).
        """
        if self.session.rev2:
            return 0  # RFC 9051 has no \Recent
        top = folder.uidnext - 1
        b = self.handler.recent.boundary(
            account, folder.id, folder.uidvalidity, top, folder.highestmodseq
        )
        if top <= b.uid:
            return 0
        changed, _ = await self.store.changes_since(account, folder.id, b.modseq)
        return sum(1 for e in changed if e.uid > b.uid)

    async def _append(self, cmd: c.Append, account: AccountId) -> None:
        if not cmd.message:
            self._finish(cmd.tag, "NO", "Empty message")
            return
        when = int(cmd.internal_date.timestamp()) if cmd.internal_date is not None else None
        flags = [f for f in cmd.flags if f.upper() != "\\RECENT"]
        try:
            res = await self.store.append(
                account, cmd.mailbox, cmd.message, flags=flags, internal_date=when
            )
        except NotFound:
            # RFC 3501 §6.3.11: no such mailbox, and the client may create it
            self._finish(cmd.tag, "NO", "No such mailbox", "TRYCREATE")
            return
        if self.selected is not None:
            await self._refresh(allow_expunge=True)
        # RFC 4315 §3: APPENDUID uidvalidity uid
        self._finish(cmd.tag, "OK", "APPEND completed", f"APPENDUID {res.uidvalidity} {res.uid}")

    async def _quota(self, cmd: c.GetQuota | c.GetQuotaRoot, account: AccountId) -> None:
        # RFC 9208: one quota root, "", for the whole account
        usage = await self.store.quota(account)
        resources = []
        if usage.limit_bytes:
            resources.append(f"STORAGE {usage.used_bytes // 1024} {usage.limit_bytes // 1024}")
        if usage.limit_messages:
            resources.append(f"MESSAGE {usage.used_messages} {usage.limit_messages}")
        if isinstance(cmd, c.GetQuotaRoot):
            await self.store.get_folder(account, cmd.mailbox)
            root = b' ""' if resources else b""
            self._untagged(b"QUOTAROOT " + mailbox_name(cmd.mailbox) + root)
        elif cmd.root != "" or not resources:
            self._finish(cmd.tag, "NO", "No such quota root", "NONEXISTENT")
            return
        if resources:
            self._untagged(b'QUOTA "" (' + " ".join(resources).encode("ascii") + b")")
        self._finish(cmd.tag, "OK", f"{type(cmd).__name__.upper()} completed")

    # --- changes and IDLE ----------------------------------------------------------------

    def _drain_changes(self) -> None:
        """Mark the selected folder dirty if the hub announced changes to it."""
        sel = self.selected
        if self.sub is None or sel is None:
            return
        for change in self.sub.drain():
            if change.folder is None or change.folder == sel.folder_id:
                sel.dirty = True
        if self.sub.overflowed:
            self.sub.overflowed = False
            sel.dirty = True

    async def _refresh(self, *, allow_expunge: bool) -> None:
        sel = self.selected
        if sel is None:
            return
        self._drain_changes()
        self._lines(await sel.refresh(self.session, allow_expunge=allow_expunge))

    async def _idle(self, cmd: c.Idle) -> None:
        """RFC 2177: push updates until DONE, within moments of each commit."""
        await self._refresh(allow_expunge=True)
        await self.flush()
        reader = self.conn.reader
        read: asyncio.Task[bytes] | None = None
        change: asyncio.Task[object] | None = None
        try:
            while True:
                if read is None:
                    read = asyncio.ensure_future(reader.read(_READ_SIZE))
                if change is None and self.sub is not None:
                    change = asyncio.ensure_future(self.sub.get())
                waiting: set[asyncio.Future[object]] = {read}  # type: ignore[arg-type]
                if change is not None:
                    waiting.add(change)
                done, _ = await asyncio.wait(
                    waiting, timeout=self._timeout(), return_when=asyncio.FIRST_COMPLETED
                )
                if not done:
                    self.session.autologout()
                    return
                if change is not None and change in done:
                    got = change.result()
                    change = None
                    sel = self.selected
                    folder = getattr(got, "folder", None)
                    if sel is not None and (folder is None or folder == sel.folder_id):
                        sel.dirty = True
                        await self._refresh(allow_expunge=True)
                        await self.flush()
                if read in done:
                    data = read.result()
                    read = None
                    self.session.receive_data(data)
                    ev = self.session.next_event()
                    if isinstance(ev, IdleDone):
                        if not ev.answered:
                            await self._refresh(allow_expunge=True)
                            self._finish(ev.tag, "OK", "IDLE terminated")
                        return
                    if isinstance(ev, ConnectionClosed):
                        return
        finally:
            for task in (read, change):
                if task is not None and not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task


def _may_expunge(cmd: c.Command) -> bool:
    """RFC 3501 §7.4.1: no EXPUNGE during FETCH, STORE, SEARCH (UID forms allowed)."""
    if isinstance(cmd, c.Fetch | c.Store | c.Search | c.Sort | c.Thread):
        return cmd.uid
    return True


# --- composition -------------------------------------------------------------------


def make_listeners(
    ctx: ServerContext,
    config: Config,
    *,
    trust_loopback: bool = True,
    is_draining: Callable[[], bool] | None = None,
) -> list[Listener]:
    """The IMAP listeners: STARTTLS on ``imap.port``, implicit TLS on ``imap.tls_port``.

    Args:
        ctx: shared dependencies from the composition root.
        config: the whole configuration (uses ``listen`` and ``imap``).
        trust_loopback: see :class:`ImapHandler`.
        is_draining: overrides ``ctx.is_draining``.

    Returns:
        Two listeners (not started) sharing the per-address and per-account
        limits; none when IMAP is disabled.
    """
    imap = config.imap
    if not imap.enabled:
        return []
    limiter = ConnectionLimiter(imap.max_connections_per_ip)
    users = UserLimiter(imap.max_connections_per_user)
    draining = is_draining or ctx.is_draining
    snaps, recent = SnapshotCache(), RecentTracker()  # shared by both listeners
    plain = ImapHandler(
        ctx, imap, implicit_tls=False, users=users, trust_loopback=trust_loopback,
        snapshots=snaps, recent=recent,
    )  # fmt: skip
    tls = ImapHandler(
        ctx, imap, implicit_tls=True, users=users, trust_loopback=trust_loopback,
        snapshots=snaps, recent=recent,
    )  # fmt: skip
    return [
        Listener(plain, config.listen, imap.port, limiter=limiter, is_draining=draining),
        Listener(
            tls, config.listen, imap.tls_port, limiter=limiter, tls=ctx.tls, is_draining=draining
        ),
    ]
