"""Live statistics of one node: rates per second, top offenders, open sessions.

Theory of operation
-------------------
:class:`Rates` keeps one bucket per second for the last minute per event kind
(attempts, successes, failures, sheds), so "how many per second over the last
10 s and 60 s" is a sum over at most 60 small ints.  :class:`TopOffenders`
counts failures per address, network and targeted account in two rotating
periods (current and previous), so the top lists follow the attack as it moves
and forget it afterwards.  Neither decides anything: decisions use
:mod:`.counters`; these only feed ``auth status`` and the metrics.

:class:`SessionRegistry` holds the sessions the protocol servers register
after a login, so ``auth sessions`` can list them and ``auth revoke`` can end
them.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["EVENTS", "Rates", "Session", "SessionRegistry", "TopOffenders"]

EVENTS = ("attempts", "successes", "failures", "sheds")
_SPAN = 60


class Rates:
    """Events per second over the last minute, one bucket per second."""

    def __init__(self) -> None:
        self._buckets: dict[str, list[int]] = {e: [0] * _SPAN for e in EVENTS}
        self._stamp: list[int] = [-1] * _SPAN
        self.totals: Counter[str] = Counter()

    def _slot(self, now: float) -> int:
        second = math.floor(now)
        slot = second % _SPAN
        if self._stamp[slot] != second:
            self._stamp[slot] = second
            for buckets in self._buckets.values():
                buckets[slot] = 0
        return slot

    def add(self, event: str, now: float, n: int = 1) -> None:
        """Count ``n`` events of a kind at ``now``."""
        self._buckets[event][self._slot(now)] += n
        self.totals[event] += n

    def per_second(self, event: str, now: float, span: int = 10) -> float:
        """Mean rate over the ``span`` whole seconds before ``now``."""
        span = max(1, min(span, _SPAN - 1))
        second = math.floor(now)
        total = 0
        for back in range(1, span + 1):
            slot = (second - back) % _SPAN
            if self._stamp[slot] == second - back:
                total += self._buckets[event][slot]
        return total / span


class TopOffenders:
    """Failure counts per key in the current and previous period."""

    def __init__(self, period: float = 300.0) -> None:
        self.period = period
        self._start = -math.inf
        self._current: dict[str, Counter[str]] = {}
        self._previous: dict[str, Counter[str]] = {}

    def _rotate(self, now: float) -> None:
        if now - self._start >= self.period:
            gone = now - self._start >= 2 * self.period
            self._previous = {} if gone else self._current
            self._current = {}
            self._start = now

    def add(self, kind: str, key: str, now: float) -> None:
        """Count one failure of ``key`` (an address, a network, an account)."""
        self._rotate(now)
        self._current.setdefault(kind, Counter())[key] += 1

    def top(self, kind: str, now: float, n: int = 10) -> list[tuple[str, int]]:
        """The ``n`` keys of a kind with most failures in the last one to two periods."""
        self._rotate(now)
        merged: Counter[str] = Counter()
        merged.update(self._previous.get(kind, Counter()))
        merged.update(self._current.get(kind, Counter()))
        return merged.most_common(n)


_session_ids = itertools.count(1)


@dataclass(eq=False)
class Session:
    """A logged-in session a protocol server registered.

    Attributes:
        account_id: whose session it is.
        address: the account's address (for listings).
        peer: the client's address.
        service: imap, pop3, smtp, web or api.
        started: when it logged in.
        on_revoke: called (on the event loop) when an operator revokes the
            account; the server should end the session.
    """

    account_id: int
    address: str
    peer: str
    service: str
    started: float
    on_revoke: Callable[[], None] | None = None
    id: int = field(default_factory=lambda: next(_session_ids))
    registry: SessionRegistry | None = field(default=None, repr=False)

    def close(self) -> None:
        """Unregister (idempotent); call when the session ends."""
        if self.registry is not None:
            self.registry.remove(self)
            self.registry = None

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def as_dict(self) -> dict[str, object]:
        """Plain data for the statistics snapshot."""
        return {
            "id": self.id,
            "account_id": self.account_id,
            "address": self.address,
            "peer": self.peer,
            "service": self.service,
            "started": self.started,
        }


class SessionRegistry:
    """Open sessions by account."""

    def __init__(self) -> None:
        self._by_account: dict[int, set[Session]] = {}

    def add(self, session: Session) -> Session:
        """Register a session."""
        session.registry = self
        self._by_account.setdefault(session.account_id, set()).add(session)
        return session

    def remove(self, session: Session) -> None:
        """Unregister a session."""
        sessions = self._by_account.get(session.account_id)
        if sessions is not None:
            sessions.discard(session)
            if not sessions:
                del self._by_account[session.account_id]

    def of(self, account_id: int) -> list[Session]:
        """Sessions of one account, oldest first."""
        return sorted(self._by_account.get(account_id, ()), key=lambda s: s.started)

    def all(self, limit: int = 10_000) -> list[Session]:
        """Up to ``limit`` sessions of every account."""
        return list(
            itertools.islice(itertools.chain.from_iterable(self._by_account.values()), limit)
        )

    def __len__(self) -> int:
        return sum(len(s) for s in self._by_account.values())

    def revoke(self, account_id: int) -> int:
        """End every session of an account (their ``on_revoke``); returns how many."""
        sessions = self._by_account.pop(account_id, set())
        for session in sessions:
            session.registry = None
            if session.on_revoke is not None:
                session.on_revoke()
        return len(sessions)
