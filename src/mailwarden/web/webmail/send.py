"""Handing a written message to delivery, under the rules of submission.

Webmail sends "through the same rules and limits as submission" by using the
same code as the SMTP submission service (:mod:`mailwarden.delivery`):

* **Sender ownership:** the envelope sender and the ``From:`` header must be
  addresses the account owns (:func:`~mailwarden.delivery.submission.owned_keys`,
  :func:`~mailwarden.delivery.submission.from_header_owned`).
* **Sending limits:** a :class:`~mailwarden.delivery.submission.SendingLimits`
  (messages per hour and per day) and the recipients-per-message limit from
  ``[submission]``.  The composition root should hand webmail the *same*
  ``SendingLimits`` object the submission listeners use, so that both paths
  draw on one allowance (see :func:`mailwarden.web.app.webmail_deps`).
* **Recipients and delivery:** each recipient is decided by
  :meth:`~mailwarden.delivery.inbound.Delivery.check_recipient` exactly as an
  authenticated RCPT (relay allowed, quotas checked), and the message is
  stored by :meth:`~mailwarden.delivery.inbound.Delivery.deliver` (local
  mailboxes with ``Return-Path``/``Received``, remote ones into the durable
  outbound queue), with an envelope shaped like an authenticated ESMTP
  submission over TLS from the browser's address.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from mailwarden.delivery.inbound import Delivery, RecipientDecision
from mailwarden.delivery.submission import SendingLimits, from_header_owned, owned_keys
from mailwarden.mail.address import Address, AddressError
from mailwarden.proto.smtp.commands import MailParams
from mailwarden.proto.smtp.events import Envelope, Recipient
from mailwarden.store.base import Account, Store, StoreError
from mailwarden.web.webmail.i18n import _

__all__ = ["DeliverySubmitter", "SendRefused", "Submitter"]

log = logging.getLogger(__name__)


class SendRefused(Exception):
    """The message was not sent; ``str(exc)`` is safe to show the user."""


class Submitter(Protocol):
    """Sends a finished message on behalf of an account."""

    async def submit(
        self,
        account: Account,
        mail_from: str,
        recipients: Sequence[str],
        raw: bytes,
        *,
        peer_ip: str = "127.0.0.1",
    ) -> None:
        """Send ``raw`` from ``mail_from`` to ``recipients``.

        Returns only when every recipient's copy is durably stored or queued.

        Raises:
            SendRefused: a rule refused the message; nothing was sent.
        """
        ...


class DeliverySubmitter:
    """Submission rules and delivery shared with the SMTP submission service."""

    def __init__(
        self,
        store: Store,
        delivery: Delivery,
        limits: SendingLimits,
        *,
        max_recipients: int = 100,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Send through ``delivery``, counting against ``limits``.

        Args:
            store: where the account's owned addresses are looked up.
            delivery: the node's delivery (recipient checks, storing, queueing).
            limits: the per-account sending counters (share submission's).
            max_recipients: recipients one message may have.
            clock: the time source ``limits`` is counted with.
        """
        self._store = store
        self._delivery = delivery
        self.limits = limits
        self._max_recipients = max_recipients
        self._clock = clock

    async def submit(
        self,
        account: Account,
        mail_from: str,
        recipients: Sequence[str],
        raw: bytes,
        *,
        peer_ip: str = "127.0.0.1",
    ) -> None:
        """Check ownership, limits and recipients, then deliver and queue."""
        if not recipients:
            raise SendRefused(_("Add at least one recipient."))
        if len(recipients) > self._max_recipients:
            raise SendRefused(_("Too many recipients (at most %d).") % self._max_recipients)
        owned = owned_keys(await self._store.addresses_of(account.id))
        try:
            sender = Address.parse(mail_from)
        except AddressError:
            raise SendRefused(_("You may not send as %s.") % mail_from) from None
        if sender.key not in owned or not from_header_owned(raw, owned):
            raise SendRefused(_("You may not send as %s.") % mail_from)
        now = self._clock()
        if not self.limits.allows(account.id, now):
            raise SendRefused(_("You have reached your sending limit. Try again later."))
        addresses: list[Address] = []
        decisions: list[RecipientDecision] = []
        for rcpt in recipients:
            try:
                address = Address.parse(rcpt)
            except AddressError:
                raise SendRefused(_("Not a valid address: %s") % rcpt) from None
            try:
                decision = await self._delivery.check_recipient(
                    address, relay_allowed=True, size=len(raw)
                )
            except StoreError:
                raise SendRefused(_("Sending failed for now. Try again shortly.")) from None
            if not decision.accepted:
                if decision.reply.code in (552, 452):
                    raise SendRefused(_("The mailbox of %s is full.") % rcpt)
                raise SendRefused(_("No such recipient here: %s") % rcpt)
            addresses.append(address)
            decisions.append(decision)
        envelope = Envelope(
            helo="webmail",
            esmtp=True,
            tls=True,
            authenticated=account.address,
            sender=sender,
            params=MailParams(size=len(raw), smtputf8=not raw.isascii()),
            recipients=tuple(Recipient(a) for a in addresses),
        )
        reply = await self._delivery.deliver(
            envelope, raw, decisions, peer_ip=peer_ip, account=account.id
        )
        if reply.code >= 400:
            log.info("webmail send refused by delivery: %d account=%s", reply.code, account.id)
            raise SendRefused(_("Sending failed for now. Try again shortly."))
        self.limits.record(account.id, now)
