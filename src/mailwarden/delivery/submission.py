"""Rules for mail that our own users submit (RFC 6409): who may send as whom, how much.

* **Sender ownership.** The envelope sender (MAIL FROM) and every address in
  the ``From:`` header must be one the authenticated account owns: its own
  address or an alias that reaches only it
  (:meth:`~mailwarden.store.base.AdminStore.addresses_of`).  Anything else is
  ``553 5.7.1``, so an account cannot forge its neighbours or the bank.
* **Sending limits.** Messages per hour and per day, per account, counted when
  a message is accepted; over either, MAIL gets ``451 4.7.1`` (try later).
  Recipients per message beyond the limit get ``452 4.7.1``.  The clock is
  passed in, so tests need no sleeping.  The counters live in this process: a
  node with several workers or a cluster needs them in the shared
  ``Counters`` store instead.
"""

from __future__ import annotations

import email.parser
import email.policy
import email.utils
from collections import deque
from collections.abc import Iterable

from mailwarden.mail.address import Address, AddressError
from mailwarden.proto.smtp import Reply
from mailwarden.store.base import AccountId

__all__ = [
    "R451_RATE_LIMITED",
    "R452_RECIPIENT_LIMIT",
    "SendingLimits",
    "from_header_owned",
    "owned_keys",
]

R451_RATE_LIMITED = Reply.of(451, "4.7.1", "Sending limit reached, try again later")
R452_RECIPIENT_LIMIT = Reply.of(452, "4.7.1", "Too many recipients for one message")

HOUR = 3600.0
DAY = 86400.0

_HEADERS = email.parser.BytesHeaderParser(policy=email.policy.compat32)


def owned_keys(addresses: Iterable[str]) -> frozenset[str]:
    """The lookup keys (:attr:`Address.key`) of the addresses an account owns."""
    keys = set()
    for text in addresses:
        try:
            keys.add(Address.parse(text).key)
        except AddressError:
            continue
    return frozenset(keys)


def from_header_owned(message: bytes, owned: frozenset[str]) -> bool:
    """Whether every address in the message's From: header(s) is owned.

    A message without a From: header passes (the client's own problem, and
    RFC 6409 §8.1 lets an MSA leave it); an unparsable or foreign address fails.
    """
    end = message.find(b"\r\n\r\n")
    head = message if end < 0 else message[: end + 2]
    values = _HEADERS.parsebytes(head).get_all("From") or []
    if not values:
        return True
    found = email.utils.getaddresses([str(v) for v in values])
    if not found:
        return False
    for _name, addr in found:
        try:
            if Address.parse(addr).key not in owned:
                return False
        except AddressError:
            return False
    return True


class SendingLimits:
    """Per-account message counters over a sliding hour and day."""

    def __init__(self, per_hour: int, per_day: int) -> None:
        """Allow ``per_hour`` messages in any hour and ``per_day`` in any day."""
        self.per_hour = per_hour
        self.per_day = per_day
        self._sent: dict[AccountId, deque[float]] = {}

    def _window(self, account: AccountId, now: float) -> deque[float]:
        times = self._sent.setdefault(account, deque())
        while times and times[0] <= now - DAY:
            times.popleft()
        return times

    def allows(self, account: AccountId, now: float) -> bool:
        """Whether ``account`` may start another message at ``now``."""
        times = self._window(account, now)
        if len(times) >= self.per_day:
            return False
        last_hour = sum(1 for t in times if t > now - HOUR)
        return last_hour < self.per_hour

    def record(self, account: AccountId, now: float) -> None:
        """Count one accepted message."""
        self._window(account, now).append(now)
