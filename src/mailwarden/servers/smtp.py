"""The SMTP servers: an asyncio shell around :class:`mailwarden.proto.smtp.SmtpSession`.

Theory of operation
-------------------
Three listeners share this shell: the MX port (2525, 25 in production) in
inbound mode, and submission with STARTTLS (2587/587) and with implicit TLS
(2465/465).  Each connection runs one loop: read what the client sent, feed
the core, answer the core's events, write what the core queued.  The core
decides everything about the protocol (see :mod:`mailwarden.proto.smtp.session`
for why it is ours and not aiosmtpd); this module answers only what needs the
outside world:

* **AUTH** goes through the one door, :meth:`AuthService.verify`: ``Accepted``
  is ``235``, ``Rejected`` ``535 5.7.8``, ``TryLater`` ``454 4.7.0``.  An
  authorization identity different from the login is refused.
* **MAIL FROM** on submission must be an address the account owns
  (``553 5.7.1``) and within the account's sending limits (``451 4.7.1``).
* **RCPT TO** is decided by :class:`~mailwarden.delivery.inbound.Delivery`:
  unknown ``550 5.1.1``, relaying ``550 5.7.1``, quota ``452 4.2.2``/``552 5.2.2``;
  ``<Postmaster>`` and postmaster at any hosted domain reach the node's
  postmaster (RFC 5321 §4.5.1).
* **The message** is stored once by
  :meth:`~mailwarden.delivery.inbound.Delivery.deliver`; ``250`` is written
  only after the commit, ``451 4.3.0`` if the store fails, ``554 5.4.6`` for
  a mail loop.  Recipients whose mailbox filled up after RCPT are reported to
  the sender in a DSN (:mod:`mailwarden.delivery.dsn`).  On submission the
  ``From:`` header must be owned too.
* **STARTTLS**: the core already dropped what it had received after the
  command; what the stream reader buffered but nobody read yet is dropped here
  before the handshake (RFC 3207 §5, CVE-2011-0411).
* **Timeouts** (RFC 5321 §4.5.3.2): ``command_timeout`` seconds for a command,
  ``data_timeout`` for each read inside DATA/BDAT; then ``421 4.4.2``.
* **Logs**: AUTH lines never reach the trace (the core masks them); refusals
  of bare CR/LF content are logged as a smuggling signal.

The accept loop, per-address connection limits, drain and the error boundary
(``421 4.3.0`` with an incident id, never exception text) are the shared
:class:`~mailwarden.servers.listener.Listener`'s.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from mailwarden.auth.service import Accepted, Peer, Rejected, Service, TryLater
from mailwarden.config import Config, SmtpConfig, SubmissionConfig
from mailwarden.delivery.inbound import Delivery, RecipientDecision, new_queue_id
from mailwarden.delivery.submission import (
    R451_RATE_LIMITED,
    R452_RECIPIENT_LIMIT,
    SendingLimits,
    from_header_owned,
    owned_keys,
)
from mailwarden.logs import TRACE, conn_context
from mailwarden.proto.smtp import (
    Auth,
    BodyFault,
    Closed,
    MailFrom,
    Message,
    MessageRefused,
    Mode,
    NeedData,
    RcptTo,
    Reply,
    SessionConfig,
    SmtpSession,
    StartTls,
    State,
)
from mailwarden.proto.smtp import replies as r
from mailwarden.servers.context import ServerContext
from mailwarden.servers.listener import Connection, ConnectionLimiter, Listener
from mailwarden.store.base import Account, StoreError

__all__ = ["SmtpHandler", "make_listeners"]

log = logging.getLogger(__name__)

READ_SIZE = 65536
# RFC 5321 §4.5.3.1.8: at least 100 recipients must be accepted per message;
# the submission policy limit is applied by the application with 4.7.1.
CORE_MAX_RECIPIENTS = 1000


@dataclass
class SubmissionPolicy:
    """What the submission listeners share: the config slice and the counters."""

    config: SubmissionConfig
    limits: SendingLimits
    clock: Callable[[], float] = time.time


class SmtpHandler:
    """Serves SMTP on connections accepted by a :class:`Listener`."""

    def __init__(
        self,
        ctx: ServerContext,
        smtp: SmtpConfig,
        delivery: Delivery,
        *,
        mode: Mode,
        implicit_tls: bool = False,
        submission: SubmissionPolicy | None = None,
        trust_loopback: bool = True,
    ) -> None:
        """Make a handler.

        Args:
            ctx: the store, auth service, TLS context and host name.
            smtp: limits and timeouts (the ``[smtp]`` section).
            delivery: recipient checks and delivery, shared by the listeners.
            mode: inbound (MX) or submission.
            implicit_tls: the listener speaks TLS from the first byte (465).
            submission: the submission policy (required in submission mode).
            trust_loopback: offer AUTH without TLS to loopback peers.
        """
        if mode is Mode.SUBMISSION and submission is None:
            raise ValueError("submission mode needs a SubmissionPolicy")
        self.name = {
            Mode.INBOUND: "smtp",
            Mode.SUBMISSION: "submissions" if implicit_tls else "submission",
        }[mode]
        self.ctx = ctx
        self.smtp = smtp
        self.delivery = delivery
        self.mode = mode
        self.implicit_tls = implicit_tls
        self.submission = submission
        self.trust_loopback = trust_loopback

    # --- ConnectionHandler -----------------------------------------------------

    def busy_reply(self) -> bytes:
        """Greeting for a connection over the per-address limit."""
        return Reply.of(421, "4.7.0", f"{self.ctx.hostname} Too many connections").render()

    def drain_reply(self) -> bytes:
        """Greeting while the node is draining for maintenance."""
        return Reply.of(421, "4.3.2", f"{self.ctx.hostname} Service not available").render()

    def crash_reply(self, incident: str) -> bytes:
        """Temporary failure after an internal error (never our exception text)."""
        return Reply.of(
            421, "4.3.0", f"Internal error, try again later (reference {incident})"
        ).render()

    def session_config(self, conn: Connection) -> SessionConfig:
        """The core's configuration for one connection."""
        plaintext_auth = False
        max_recipients = self.smtp.max_recipients
        if self.submission is not None:
            plaintext_auth = self.submission.config.allow_plaintext_auth or (
                self.trust_loopback and conn.is_loopback
            )
            max_recipients = max(CORE_MAX_RECIPIENTS, self.submission.config.max_recipients)
        return SessionConfig(
            hostname=self.ctx.hostname,
            mode=self.mode,
            max_message_size=self.smtp.max_message_size,
            max_recipients=max_recipients,
            max_errors=self.smtp.max_errors,
            starttls=not conn.tls,
            auth_without_tls=plaintext_auth,
            trace=log.isEnabledFor(TRACE),
        )

    async def handle(self, conn: Connection) -> None:
        """Serve one connection until the client quits, times out or goes away."""
        conn_context.set({"conn": str(conn.id), "peer": conn.peer_host, "proto": self.name})
        session = SmtpSession(self.session_config(conn), tls=conn.tls)
        await _Served(self, conn, session).run()


@dataclass
class _Served:
    """One connection being served: the socket, the core and the transaction."""

    handler: SmtpHandler
    conn: Connection
    session: SmtpSession
    account: Account | None = None
    owned: frozenset[str] = frozenset()
    decisions: list[RecipientDecision] = field(default_factory=list)

    async def run(self) -> None:
        session = self.session
        while True:
            event = session.next_event()
            self._trace()
            match event:
                case NeedData():
                    await self._flush()
                    data = await self._read()
                    if data is None:
                        continue
                    session.receive_data(data)
                case Auth():
                    session.send(await self._auth(event))
                case MailFrom():
                    self.decisions = []
                    session.send(await self._mail(event))
                case RcptTo():
                    session.send(await self._rcpt(event))
                case Message():
                    reply = await self._message(event)
                    self.decisions = []
                    session.send(reply)
                case MessageRefused(fault=fault, size=size):
                    self.decisions = []
                    if fault is BodyFault.BARE_LINE_END:
                        log.warning("refused a message with bare CR/LF (%d octets)", size)
                    else:
                        log.info("refused a message: %s (%d octets)", fault.value, size)
                case StartTls():
                    await self._flush()
                    await self.conn.start_tls(self.handler.ctx.tls)
                    session.tls_established()
                    self.account = None
                case Closed(reason=reason):
                    await self._flush()
                    log.debug("session closed: %s", reason.value)
                    return
                case _:
                    pass  # Ehlo, Helo, Rset, Quit: the core has answered

    async def _read(self) -> bytes | None:
        """Read from the peer; None after a timeout (the session is then aborted)."""
        smtp = self.handler.smtp
        in_content = self.session.state in (State.DATA, State.BDAT)
        timeout = smtp.data_timeout if in_content else smtp.command_timeout
        try:
            async with asyncio.timeout(timeout):
                return await self.conn.reader.read(READ_SIZE)
        except TimeoutError:
            log.info("no input for %d s; closing", timeout)
            self.session.abort(r.R421_TIMEOUT)
            return None

    async def _flush(self) -> None:
        data = self.session.data_to_send()
        if data:
            # A client that stops reading must not hold the session forever.
            async with asyncio.timeout(self.handler.smtp.command_timeout):
                await self.conn.send(data)

    def _trace(self) -> None:
        for line in self.session.take_trace():
            log.log(TRACE, "%s", line)

    # --- the application's answers ------------------------------------------------

    async def _auth(self, event: Auth) -> Reply:
        creds = event.credentials
        if creds.authzid and creds.authzid != creds.authcid:
            log.info("AUTH with a different authorization identity refused")
            return r.R535_AUTH_FAILED
        peer = Peer.from_host(self.conn.peer_host, Service.SMTP, tls=self.session.tls)
        outcome = await self.handler.ctx.auth.verify(creds.authcid, creds.password, peer)
        match outcome:
            case Rejected():
                return r.R535_AUTH_FAILED
            case TryLater():
                return r.R454_AUTH_UNAVAILABLE
            case Accepted(account=account):
                pass
        try:
            addresses = await self.handler.ctx.store.addresses_of(account.id)
        except StoreError:
            log.warning("cannot list the addresses of %s", account.address, exc_info=True)
            return r.R454_AUTH_UNAVAILABLE
        self.account = account
        self.owned = owned_keys(addresses)
        self.conn.logged_in()
        conn_context.set({**conn_context.get({}), "account": account.address})
        return r.R235_AUTH_OK

    async def _mail(self, event: MailFrom) -> Reply:
        policy = self.handler.submission
        if policy is None:
            return r.R250_MAIL_OK
        assert self.account is not None  # the core requires AUTH before MAIL
        if event.sender is None or event.sender.key not in self.owned:
            log.info("MAIL FROM <%s> not owned by the account", event.sender or "")
            return r.R553_SENDER_NOT_OWNED
        if not policy.limits.allows(self.account.id, policy.clock()):
            log.warning("sending limit reached")
            return R451_RATE_LIMITED
        return r.R250_MAIL_OK

    async def _rcpt(self, event: RcptTo) -> Reply:
        policy = self.handler.submission
        if policy is not None and len(self.decisions) >= policy.config.max_recipients:
            return R452_RECIPIENT_LIMIT
        envelope = self.session.envelope
        try:
            decision = await self.handler.delivery.check_recipient(
                event.recipient,
                relay_allowed=self.account is not None,
                size=envelope.params.size,
            )
        except StoreError:
            log.warning("recipient check failed", exc_info=True)
            return r.R451_LOCAL_ERROR
        if decision.accepted:
            self.decisions.append(decision)
        return decision.reply

    async def _message(self, event: Message) -> Reply:
        policy = self.handler.submission
        account = self.account
        if policy is not None:
            assert account is not None
            if not from_header_owned(event.data, self.owned):
                log.info("From: header not owned by the account")
                return r.R553_SENDER_NOT_OWNED
        qid = new_queue_id()
        reply = await self.handler.delivery.deliver(
            event.envelope,
            event.data,
            self.decisions,
            peer_ip=self.conn.peer_host,
            account=account.id if account is not None else None,
            queue_id=qid,
        )
        if policy is not None and account is not None and reply.code == 250:
            policy.limits.record(account.id, policy.clock())
        return reply


# --- composition ----------------------------------------------------------------------


def make_listeners(
    ctx: ServerContext,
    config: Config,
    *,
    trust_loopback: bool = True,
    is_draining: Callable[[], bool] | None = None,
    clock: Callable[[], float] = time.time,
) -> list[Listener]:
    """The SMTP listeners of a node: MX, submission (STARTTLS) and submissions (TLS).

    Args:
        ctx: shared dependencies from the composition root.
        config: the whole configuration (uses ``listen``, ``smtp`` and ``submission``).
        trust_loopback: offer AUTH without TLS to loopback peers on submission.
        is_draining: overrides ``ctx.is_draining``.
        clock: time source for the sending limits.

    Returns:
        The listeners (not started): MX if ``smtp.enabled``, the two submission
        ports if ``submission.enabled``.  The submission ports share one
        per-address limiter and one set of sending counters.
    """
    draining = is_draining or ctx.is_draining
    delivery = Delivery(ctx.store, ctx.hostname, postmaster=config.postmaster)
    listeners = []
    smtp, sub = config.smtp, config.submission
    if smtp.enabled:
        handler = SmtpHandler(ctx, smtp, delivery, mode=Mode.INBOUND)
        limiter = ConnectionLimiter(smtp.max_connections_per_ip)
        listeners.append(
            Listener(handler, config.listen, smtp.port, limiter=limiter, is_draining=draining)
        )
    if sub.enabled:
        limits = ctx.sending_limits or SendingLimits(
            sub.max_messages_per_hour, sub.max_messages_per_day
        )
        policy = SubmissionPolicy(sub, limits, clock)
        limiter = ConnectionLimiter(smtp.max_connections_per_ip)
        for implicit in (False, True):
            handler = SmtpHandler(
                ctx,
                smtp,
                delivery,
                mode=Mode.SUBMISSION,
                implicit_tls=implicit,
                submission=policy,
                trust_loopback=trust_loopback,
            )
            listeners.append(
                Listener(
                    handler,
                    config.listen,
                    sub.tls_port if implicit else sub.port,
                    limiter=limiter,
                    tls=ctx.tls if implicit else None,
                    is_draining=draining,
                )
            )
    return listeners
