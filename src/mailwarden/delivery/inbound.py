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

Mailboxes that fill up between RCPT and the end of DATA are left out by the
store; when that leaves nobody, the reply is ``452 4.2.2`` and nothing is
stored.
"""

from __future__ import annotations

import itertools
import json
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from mailwarden.delivery.headers import received_header, return_path_header, with_protocol
from mailwarden.mail.address import Address
from mailwarden.proto.smtp import Envelope, Reply
from mailwarden.proto.smtp import replies as r
from mailwarden.store.base import AccountId, OutboundCopy, Store, StoreError

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


def dsn_json(envelope: Envelope) -> str:
    """The RFC 3461 parameters of a transaction, as the queue keeps them."""
    p = envelope.params
    rcpts = {
        str(rc.address): {
            "notify": [n.value for n in rc.params.notify] if rc.params.notify else None,
            "orcpt": rc.params.orcpt,
        }
        for rc in envelope.recipients
    }
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


class Delivery:
    """Recipient checks and delivery for one node (shared by its SMTP listeners)."""

    def __init__(self, store: Store, hostname: str) -> None:
        """Deliver into ``store``, writing ``hostname`` in Received: headers."""
        self.store = store
        self.hostname = hostname

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
        if not resolution.hosted:
            if relay_allowed:
                return RecipientDecision(r.R250_RCPT_OK, external=(str(rcpt),))
            return RecipientDecision(r.R550_RELAY_DENIED)
        if not resolution.accounts and not resolution.external:
            return RecipientDecision(r.R550_NO_SUCH_USER)
        fitting = []
        never_fits = bool(resolution.accounts)
        for account in resolution.accounts:
            usage = await self.store.quota(account)
            if usage.allows(size or 1):
                fitting.append(account)
            if not (size and usage.limit_bytes and size > usage.limit_bytes):
                never_fits = False
        if resolution.accounts and not fitting and not resolution.external:
            return RecipientDecision(r.R552_QUOTA if never_fits else r.R452_QUOTA)
        return RecipientDecision(
            r.R250_RCPT_OK, accounts=tuple(fitting), external=resolution.external
        )

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
            decisions: the accepted recipients' decisions, in any order.
            peer_ip: the client's address (for Received:).
            account: the submitting account, if authenticated.
            queue_id: the id to use (a new one if None).

        Returns:
            ``250`` once everything is committed; ``451 4.3.0`` if the store
            failed (nothing kept); ``452 4.2.2`` if every mailbox filled up.
        """
        qid = queue_id or new_queue_id()
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
            recipient=only,
        )
        sender = str(envelope.sender) if envelope.sender is not None else ""
        outbound = None
        if external:
            outbound = OutboundCopy(
                account, sender, tuple(external), received + data, dsn_json(envelope)
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
            # TODO(issue 4 follow-up): bounce (RFC 3464) for these.
            log.warning("id=%s: %d mailbox(es) filled up before delivery", qid, missed)
        log.info(
            "id=%s accepted from=<%s> local=%d remote=%d size=%d",
            qid,
            sender,
            len(accounts),
            len(external),
            len(data),
        )
        return r.R250_DATA_OK
