"""Handing a written message to delivery, under the rules of submission.

Webmail must send "through the same rules and limits as submission": the
sender must own the From address, the account's sending limits apply, local
recipients are delivered into the store and remote ones go to the durable
outbound queue.

INTEGRATION POINT: ``mailwarden.delivery`` (the submission policy shared with
SMTP submission) did not exist when this was written, so
:class:`StoreSubmitter` applies the same rules directly on the store.  When
``mailwarden.delivery`` exposes its public submission function, replace the
body of :meth:`StoreSubmitter.submit` with a call to it (mapping its refusal
to :class:`SendRefused`); the rest of webmail only sees the
:class:`Submitter` protocol.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable, Sequence
from gettext import gettext as _
from typing import Protocol

from mailwarden.mail.address import Address, AddressError
from mailwarden.store.base import Account, AccountId, QuotaExceeded, Store

__all__ = ["SendRefused", "StoreSubmitter", "Submitter"]

log = logging.getLogger(__name__)


class SendRefused(Exception):
    """The message was not sent; ``str(exc)`` is safe to show the user."""


class Submitter(Protocol):
    """Sends a finished message on behalf of an account."""

    async def submit(
        self, account: Account, mail_from: str, recipients: Sequence[str], raw: bytes
    ) -> None:
        """Send ``raw`` from ``mail_from`` to ``recipients``.

        Returns only when every recipient's copy is durably stored or queued.

        Raises:
            SendRefused: a rule refused the message; nothing was sent.
        """
        ...


class StoreSubmitter:
    """Submission rules applied on the store (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        *,
        recipients_per_hour: int = 500,
        max_recipients: int = 100,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._per_hour = recipients_per_hour
        self._max_recipients = max_recipients
        self._clock = clock
        self._sent: dict[AccountId, collections.deque[tuple[float, int]]] = {}

    def _charge(self, account: AccountId, count: int) -> None:
        now = self._clock()
        window = self._sent.setdefault(account, collections.deque())
        while window and now - window[0][0] > 3600:
            window.popleft()
        used = sum(n for _, n in window)
        if used + count > self._per_hour:
            raise SendRefused(_("You have reached your sending limit. Try again later."))
        window.append((now, count))

    async def submit(
        self, account: Account, mail_from: str, recipients: Sequence[str], raw: bytes
    ) -> None:
        """Check the sender and limits, then deliver locally and queue the rest."""
        if not recipients:
            raise SendRefused(_("Add at least one recipient."))
        if len(recipients) > self._max_recipients:
            raise SendRefused(_("Too many recipients."))
        owned = {a.lower() for a in await self._store.addresses_of(account.id)}
        if mail_from.lower() not in owned:
            raise SendRefused(_("You may not send as %s.") % mail_from)
        local: set[AccountId] = set()
        remote: list[str] = []
        for rcpt in recipients:
            try:
                address = Address.parse(rcpt)
            except AddressError:
                raise SendRefused(_("Not a valid address: %s") % rcpt) from None
            found = await self._store.resolve_recipient(address)
            if not found.hosted:
                remote.append(str(address))
                continue
            if not found.accounts and not found.external:
                raise SendRefused(_("No such recipient here: %s") % rcpt)
            local.update(found.accounts)
            remote.extend(found.external)
        self._charge(account.id, len(recipients))
        if local:
            try:
                await self._store.deliver(sorted(local), raw)
            except QuotaExceeded:
                log.info("webmail send: a local recipient is over quota")
        if remote:
            await self._store.enqueue_outbound(account.id, mail_from, remote, raw)
        log.info(
            "webmail sent account=%s local=%d remote=%d size=%d",
            account.id,
            len(local),
            len(remote),
            len(raw),
        )
