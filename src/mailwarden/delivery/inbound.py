"""Where accepted mail goes: the recipient check at RCPT and the delivery after DATA.

Theory of operation
-------------------
**At RCPT** (:meth:`Delivery.check_recipient`) the store's resolver expands the
address through domain aliases, aliases and catch-alls
(:meth:`~mailwarden.store.base.AdminStore.resolve_recipient`) and we decide:

* not one of our domains: on the MX port that is relaying, refused with
  ``550 5.7.1`` whoever asks (never an open relay); on submission, after
  AUTH, the address goes to the outbound queue;
* one of ours but nobody there: ``550 5.1.1``;
* every mailbox it reaches is over quota: ``452 4.2.2`` (try later), or
  ``552 5.2.2`` when the declared SIZE could never fit (RFC 3463 §3.3);
* otherwise accepted, remembering the accounts and any external forwarding
  targets an alias names.

**After DATA** (:meth:`Delivery.deliver`) the message is stored once:

1. Remote recipients (and alias forwards) go into the durable outbound queue
   with a ``Received:`` header and the DSN parameters (RFC 3461) as JSON.
2. Local mailboxes get ``Return-Path:`` and ``Received:`` (RFC 5321 §4.4)
   and the message is delivered to every INBOX in one transaction
   (:meth:`~mailwarden.store.base.MailStore.deliver`), which parses it once.
3. Steps 1 and 2 are one commit (:meth:`~mailwarden.store.base.MailStore.deliver_and_queue`),
   and only then does the caller send ``250``.  If the store fails, the reply
   is ``451 4.3.0`` and nothing is kept: a crash or error stores both or
   neither, so a retried message is never duplicated.

Before any of that, a message that already carries more than
:data:`~mailwarden.delivery.headers.MAX_HOPS` ``Received:`` fields is refused
with ``554 5.4.6``: it is going round in a loop (RFC 5321 §6.3), for instance
between an alias here that forwards to a remote address and a forward there
that points back.

**Reports after 250** (:mod:`mailwarden.delivery.dsn`).  Mailboxes that fill
up between RCPT and the end of DATA are left out by the store; when that
leaves nobody, the reply is ``452 4.2.2`` and nothing is stored.  Otherwise
the reply is ``250`` and each recipient that reached nobody gets a ``failed``
(``5.2.2``) block in a delivery status notification to the envelope sender;
recipients delivered here get a ``delivered`` block (or ``expanded`` for an
alias with several targets) when their NOTIFY asks for SUCCESS.  NOTIFY, RET,
ENVID and ORCPT are honoured as RFC 3461 says; the null sender ``<>`` never
gets a report.  A recipient that reached only remote addresses is left to the
outbound queue, which keeps its DSN parameters (:func:`dsn_json`).

An alias with several targets counts as delivered when any local target got
the message; a full mailbox among them is logged, not reported, so a report
never names the private mailboxes behind an alias (RFC 3461 §6.2.7.3).

The report goes where mail for the sender would go: into local mailboxes (with
``Return-Path: <>``) when the sender is ours, into the outbound queue (null
reverse path) otherwise.  It is a second commit after the message's own:
a crash between the two loses the report, never the message, and a store
failure while reporting is logged and changes nothing in the ``250``.

**The postmaster** (RFC 5321 §4.5.1).  ``RCPT TO:<Postmaster>`` must be
accepted, and so must postmaster at every domain we serve.  The core turns the
bare form into postmaster at our host name
(:func:`~mailwarden.proto.smtp.postmaster_address`).  A postmaster address
(any case) that the resolver places nowhere is then delivered to the node's
postmaster, when its domain is hosted here or is our host name:

1. the ``postmaster`` address given to :class:`Delivery`, if any (local or
   remote: it is the operator's choice, so queueing it is not relaying);
2. else postmaster at our host name, if that domain is hosted and has one;
3. else postmaster at the first hosted domain (by name, alias domains
   skipped) whose postmaster reaches someone;
4. else nobody: ``550 5.1.1``, with a warning in the log.

So a domain without a postmaster mailbox or alias still has one, the
operator's, and a ``postmaster@`` mailbox or alias that a tenant set up for
their own domain is always theirs.
"""

from __future__ import annotations

import itertools
import json
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from mailwarden.delivery.dsn import (
    Action,
    Dsn,
    RecipientReport,
    build_dsn,
    notify_requested,
    orcpt_for,
)
from mailwarden.delivery.headers import (
    MAX_HOPS,
    count_received,
    received_header,
    return_path_header,
    with_protocol,
)
from mailwarden.mail.address import Address
from mailwarden.proto.smtp import Envelope, Recipient, Reply, postmaster_address
from mailwarden.proto.smtp import replies as r
from mailwarden.store.base import AccountId, OutboundCopy, Resolution, Store, StoreError

__all__ = ["Delivery", "RecipientDecision", "dsn_json", "new_queue_id"]

log = logging.getLogger(__name__)


_ID_PREFIX = secrets.token_hex(3)
_ID_COUNTER = itertools.count(1)


def new_queue_id() -> str:
    """A short id for one accepted message, shown in Received: and in logs.

    A random per-process prefix and a counter: unique enough to find the
    message in the logs, and no system call per message (``os.urandom`` showed
    up in the benchmark's profile).
    """
    return f"{_ID_PREFIX}{next(_ID_COUNTER):06x}"


@dataclass(frozen=True, slots=True)
class RecipientDecision:
    """The answer to one RCPT and, if accepted, where its mail goes.

    Attributes:
        reply: what to send the client.
        accounts: local accounts that receive the mail.
        external: addresses outside our domains to queue for.
    """

    reply: Reply
    accounts: tuple[AccountId, ...] = ()
    external: tuple[str, ...] = ()

    @property
    def accepted(self) -> bool:
        """Whether the recipient was accepted."""
        return self.reply.code < 300


def dsn_json(envelope: Envelope, decisions: Sequence[RecipientDecision] | None = None) -> str:
    """The RFC 3461 parameters of a transaction, as the queue keeps them.

    Args:
        envelope: the transaction.
        decisions: the recipients' decisions in envelope order; when given,
            the parameters are keyed by the remote addresses queued for
            (``external``), so an alias forward carries its recipient's NOTIFY
            and an ORCPT naming the address the sender used (RFC 3461 §6.2.7.1).
            Without them they are keyed by the envelope recipients.
    """
    p = envelope.params
    rcpts: dict[str, dict[str, object]] = {}

    def params(rc: Recipient, orcpt: str | None, expanded: bool = False) -> dict[str, object]:
        notify = [n.value for n in rc.params.notify] if rc.params.notify else None
        if expanded and notify and "SUCCESS" in notify:
            # The sender hears "expanded" from us; the targets report only
            # trouble (RFC 3461 §6.2.7.3).
            notify = [n for n in notify if n != "SUCCESS"] or ["NEVER"]
        return {"notify": notify, "orcpt": orcpt}

    if decisions is None or len(decisions) != len(envelope.recipients):
        for rc in envelope.recipients:
            rcpts[str(rc.address)] = params(rc, rc.params.orcpt)
    else:
        for rc, decision in zip(envelope.recipients, decisions, strict=True):
            expanded = len(decision.accounts) + len(decision.external) > 1
            for target in decision.external:
                forwarded = target != str(rc.address)
                orcpt = rc.params.orcpt or (orcpt_for(rc.address) if forwarded else None)
                rcpts.setdefault(target, params(rc, orcpt, expanded))
    return json.dumps(
        {
            "ret": p.ret.value if p.ret else None,
            "envid": p.envid,
            "body": p.body.value if p.body else None,
            "smtputf8": p.smtputf8,
            "recipients": rcpts,
        },
        ensure_ascii=False,
        sort_keys=True,
    )


def _report_on(
    recipient: Recipient, decision: RecipientDecision, delivered: set[AccountId]
) -> RecipientReport | None:
    """What to tell the sender about one recipient after the commit, if anything."""
    if not decision.accounts:
        return None  # only remote addresses: the outbound queue reports on them
    reached = any(a in delivered for a in decision.accounts)
    if not reached and not decision.external:
        return RecipientReport(recipient, Action.FAILED, "5.2.2", "mailbox full")
    if len(decision.accounts) + len(decision.external) > 1:
        return RecipientReport(recipient, Action.EXPANDED, "2.0.0", "delivered to the alias")
    return RecipientReport(recipient, Action.DELIVERED, "2.0.0", "delivered to the mailbox")


def _report_params(dsn: Dsn, recipient: str) -> str:
    """The queue's DSN parameters for a report: nothing asked, body type declared."""
    return json.dumps(
        {
            "ret": None,
            "envid": None,
            "body": "8BITMIME" if dsn.eight_bit else None,
            "smtputf8": dsn.smtputf8,
            "recipients": {recipient: {"notify": None, "orcpt": None}},
        },
        ensure_ascii=False,
        sort_keys=True,
    )


class Delivery:
    """Recipient checks and delivery for one node (shared by its SMTP listeners)."""

    def __init__(self, store: Store, hostname: str, *, postmaster: Address | None = None) -> None:
        """Deliver into ``store``.

        Args:
            store: the mail store.
            hostname: our name, written in Received: headers and reports.
            postmaster: where the node's postmaster mail goes (see the module
                docstring); derived from the hosted domains if None.
        """
        self.store = store
        self.hostname = hostname
        self.postmaster = postmaster
        self._own_domain = postmaster_address(hostname).domain

    async def check_recipient(
        self, rcpt: Address, *, relay_allowed: bool, size: int | None
    ) -> RecipientDecision:
        """Decide one RCPT TO.

        Args:
            rcpt: the recipient as the client gave it.
            relay_allowed: addresses outside our domains may be queued (an
                authenticated submission session); False on the MX port.
            size: the SIZE the client declared, if any.

        Raises:
            StoreError: the store could not answer (the caller says 451).
        """
        resolution = await self.store.resolve_recipient(rcpt)
        if (
            rcpt.local.lower() == "postmaster"
            and not (resolution.accounts or resolution.external)
            and (resolution.hosted or rcpt.domain == self._own_domain)
        ):
            resolution = await self._node_postmaster(rcpt)
        if not resolution.hosted:
            if relay_allowed:
                return RecipientDecision(r.R250_RCPT_OK, external=(str(rcpt),))
            return RecipientDecision(r.R550_RELAY_DENIED)
        if not resolution.accounts and not resolution.external:
            return RecipientDecision(r.R550_NO_SUCH_USER)
        fitting = []
        never_fits = bool(resolution.accounts)
        quotas = resolution.quotas or tuple(
            [await self.store.quota(account) for account in resolution.accounts]
        )
        for account, usage in zip(resolution.accounts, quotas, strict=True):
            if usage.allows(size or 1):
                fitting.append(account)
            if not (size and usage.limit_bytes and size > usage.limit_bytes):
                never_fits = False
        if resolution.accounts and not fitting and not resolution.external:
            return RecipientDecision(r.R552_QUOTA if never_fits else r.R452_QUOTA)
        return RecipientDecision(
            r.R250_RCPT_OK, accounts=tuple(fitting), external=resolution.external
        )

    async def _node_postmaster(self, asked: Address) -> Resolution:
        """Where mail for the node's postmaster goes (the rule in the module docstring)."""
        if self.postmaster is not None:
            found = await self.store.resolve_recipient(self.postmaster)
            if found.hosted:
                return found
            return Resolution(hosted=True, external=(str(self.postmaster),))
        domains = [self._own_domain]
        domains += [d.name for d in await self.store.list_domains() if d.alias_of is None]
        for domain in dict.fromkeys(domains):
            candidate = Address("postmaster", domain)
            if candidate.key == asked.key:
                continue
            found = await self.store.resolve_recipient(candidate)
            if found.accounts or found.external:
                return found
        log.warning("mail for <%s> refused: no postmaster mailbox or alias anywhere", asked)
        return Resolution(hosted=True)

    async def deliver(
        self,
        envelope: Envelope,
        data: bytes,
        decisions: Sequence[RecipientDecision],
        *,
        peer_ip: str,
        account: AccountId | None = None,
        queue_id: str | None = None,
    ) -> Reply:
        """Store an accepted message for its recipients; return the final reply.

        Args:
            envelope: the transaction from the SMTP core.
            data: the message content.
            decisions: the accepted recipients' decisions, one for each
                envelope recipient and in the same order (reports on the
                recipients need the pairing; without it none are sent).
            peer_ip: the client's address (for Received:).
            account: the submitting account, if authenticated.
            queue_id: the id to use (a new one if None).

        Returns:
            ``250`` once everything is committed; ``451 4.3.0`` if the store
            failed (nothing kept); ``452 4.2.2`` if every mailbox filled up;
            ``554 5.4.6`` for a message in a mail loop (nothing kept).
        """
        qid = queue_id or new_queue_id()
        hops = count_received(data)
        if hops > MAX_HOPS:
            log.warning("id=%s refused: %d Received: fields, a mail loop", qid, hops)
            return r.R554_TOO_MANY_HOPS
        arrived = datetime.now(UTC)
        accounts = list(dict.fromkeys(a for d in decisions for a in d.accounts))
        external = list(dict.fromkeys(x for d in decisions for x in d.external))
        only = envelope.recipients[0].address if len(envelope.recipients) == 1 else None
        received = received_header(
            helo=envelope.helo,
            peer_ip=peer_ip,
            hostname=self.hostname,
            protocol=with_protocol(
                esmtp=envelope.esmtp,
                tls=envelope.tls,
                authenticated=envelope.authenticated is not None,
                smtputf8=envelope.params.smtputf8,
            ),
            queue_id=qid,
            when=arrived,
            recipient=only,
        )
        sender = str(envelope.sender) if envelope.sender is not None else ""
        outbound = None
        if external:
            outbound = OutboundCopy(
                account, sender, tuple(external), received + data, dsn_json(envelope, decisions)
            )
        raw = return_path_header(envelope.sender) + received + data if accounts else b""
        try:
            delivered, queued = await self.store.deliver_and_queue(accounts, raw, outbound)
        except StoreError as exc:
            log.warning("id=%s: the store failed: %s", qid, exc)
            return r.R451_LOCAL_ERROR
        if accounts and not delivered and queued is None:
            log.info("id=%s not delivered: every mailbox is full", qid)
            return r.R452_QUOTA
        missed = len(accounts) - len(delivered)
        if missed:
            log.warning("id=%s: %d mailbox(es) filled up before delivery", qid, missed)
        if envelope.sender is not None:  # never a report to <> (RFC 3461 §6.1)
            await self._report(envelope, decisions, set(delivered), received + data, arrived, qid)
        log.info(
            "id=%s accepted from=<%s> local=%d remote=%d size=%d",
            qid,
            sender,
            len(accounts),
            len(external),
            len(data),
        )
        return r.R250_DATA_OK

    async def _report(
        self,
        envelope: Envelope,
        decisions: Sequence[RecipientDecision],
        delivered: set[AccountId],
        original: bytes,
        arrived: datetime,
        qid: str,
    ) -> None:
        """Send the sender the report on this delivery that NOTIFY asks for, if any."""
        if len(decisions) != len(envelope.recipients):
            log.warning("id=%s: recipients and decisions do not pair; no report", qid)
            return
        reports = []
        for recipient, decision in zip(envelope.recipients, decisions, strict=True):
            report = _report_on(recipient, decision, delivered)
            if report is not None and notify_requested(recipient.params, report.action):
                reports.append(report)
        if not reports:
            return
        dsn = build_dsn(
            reporting_mta=self.hostname,
            envelope=envelope,
            reports=reports,
            original=original,
            arrival=arrived,
        )
        assert envelope.sender is not None
        await self.send_report(envelope.sender, dsn, qid)

    async def send_report(self, sender: Address, dsn: Dsn, qid: str) -> None:
        """Deliver a report to ``sender`` as mail for it would go, with a null sender.

        Local mailboxes get it with ``Return-Path: <>``; a remote sender (or
        an alias forwarding to one) gets it through the outbound queue.  Store
        failures are logged: the message the report is about is already kept.
        """
        try:
            resolution = await self.store.resolve_recipient(sender)
        except StoreError as exc:
            log.warning("id=%s: report to <%s> lost: %s", qid, sender, exc)
            return
        remote = resolution.external if resolution.hosted else (str(sender),)
        if resolution.hosted and not (resolution.accounts or remote):
            log.info("id=%s: report not sent: nobody at <%s>", qid, sender)
            return
        outbound = None
        if remote:
            params = _report_params(dsn, remote[0])
            outbound = OutboundCopy(None, "", tuple(remote), dsn.raw, params)
        local = list(resolution.accounts)
        raw = return_path_header(None) + dsn.raw if local else b""
        try:
            delivered, _queued = await self.store.deliver_and_queue(local, raw, outbound)
        except StoreError as exc:
            log.warning("id=%s: report to <%s> lost: %s", qid, sender, exc)
            return
        if len(delivered) < len(local):
            log.info("id=%s: report to <%s> not delivered: mailbox full", qid, sender)
        log.info("id=%s: delivery report sent to <%s>", qid, sender)
