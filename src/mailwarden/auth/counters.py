"""Counters and short-lived values behind a narrow interface (in-process by default).

Theory of operation
-------------------
The auth service keeps its fast-changing state — failure counts, known
clients, cached logins — behind :class:`Counters`, a protocol of a few
operations chosen so that each maps onto one Redis command (or one pipeline):

* :meth:`Counters.add` records a *member* in a sliding-window set and returns
  how many distinct members are in the window (``ZADD key now member``,
  ``ZREMRANGEBYSCORE key -inf now-window``, ``ZCARD``, ``EXPIRE``).  Adding a
  member that is already there refreshes it and does not raise the count: that
  is how distinct wrong passwords are counted.
* :meth:`Counters.count` reads several such sets at once (a pipeline of
  ``ZCOUNT``).
* :meth:`Counters.put` / :meth:`Counters.get` / :meth:`Counters.delete` keep a
  string under a key for a while (``SET key value PX ttl``, ``GET``, ``DEL``).

Every method takes ``now`` from the caller, so the limiter's behaviour over
time is tested with a fake clock and no sleeps.  :class:`MemoryCounters` is
the single-node implementation; a cluster puts a Redis one in its place, and
``tests/auth/counters_contract.py`` is the suite both must pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

__all__ = ["Counters", "MemoryCounters"]


class Counters(Protocol):
    """Sliding-window distinct counts and expiring values, shared by a node or a cluster."""

    async def add(self, key: str, member: str, now: float, window: float) -> int:
        """Record ``member`` under ``key`` at ``now``.

        Returns:
            The number of distinct members recorded under ``key`` in
            ``(now - window, now]``, this one included.
        """
        ...

    async def count(self, keys: Sequence[str], now: float, window: float) -> list[int]:
        """Distinct members of each key in ``(now - window, now]``, in order (0 if absent)."""
        ...

    async def put(self, key: str, value: str, now: float, ttl: float) -> None:
        """Keep ``value`` under ``key`` until ``now + ttl``."""
        ...

    async def get(self, key: str, now: float) -> str | None:
        """The value under ``key`` if it has not expired, else None."""
        ...

    async def delete(self, key: str) -> None:
        """Forget a value or a set (no error if absent)."""
        ...

    async def sweep(self, now: float) -> None:
        """Drop what has expired (a no-op where the backend expires keys itself)."""
        ...


class MemoryCounters:
    """:class:`Counters` in this process's memory, bounded in size.

    Args:
        max_members: members kept per set; the oldest go first.  Limits are far
            below this, so a count that reaches it has decided long ago.
        max_values: values kept; beyond it the oldest-written are dropped (the
            values are caches and hints, safe to lose).
        max_sets: sets kept; beyond it :meth:`sweep` drops the stalest.
    """

    def __init__(
        self, *, max_members: int = 1024, max_values: int = 500_000, max_sets: int = 500_000
    ) -> None:
        self.max_members = max_members
        self.max_values = max_values
        self.max_sets = max_sets
        # key -> (member -> last seen); members in insertion (= time) order.
        self._sets: dict[str, dict[str, float]] = {}
        # key -> latest window it was read or written with, for sweeping.
        self._windows: dict[str, float] = {}
        self._values: dict[str, tuple[str, float]] = {}

    def _trim(self, members: dict[str, float], cutoff: float) -> None:
        # Members are kept in the order they were last seen, so stale ones lead.
        while members:
            first = next(iter(members))
            if members[first] > cutoff:
                break
            del members[first]

    async def add(self, key: str, member: str, now: float, window: float) -> int:
        members = self._sets.get(key)
        if members is None:
            members = self._sets[key] = {}
        members.pop(member, None)
        members[member] = now
        self._windows[key] = window
        self._trim(members, now - window)
        while len(members) > self.max_members:
            del members[next(iter(members))]
        return len(members)

    async def count(self, keys: Sequence[str], now: float, window: float) -> list[int]:
        out: list[int] = []
        cutoff = now - window
        for key in keys:
            members = self._sets.get(key)
            if not members:
                out.append(0)
                continue
            # Counting without trimming: another caller may use a longer window.
            if next(iter(members.values())) > cutoff:
                out.append(len(members))
            else:
                out.append(sum(1 for seen in members.values() if seen > cutoff))
        return out

    async def put(self, key: str, value: str, now: float, ttl: float) -> None:
        self._values.pop(key, None)
        self._values[key] = (value, now + ttl)
        if len(self._values) > self.max_values:
            await self.sweep(now)
            while len(self._values) > self.max_values:
                del self._values[next(iter(self._values))]

    async def get(self, key: str, now: float) -> str | None:
        found = self._values.get(key)
        if found is None:
            return None
        value, expires = found
        if expires <= now:
            del self._values[key]
            return None
        return value

    async def delete(self, key: str) -> None:
        self._values.pop(key, None)
        self._sets.pop(key, None)
        self._windows.pop(key, None)

    async def sweep(self, now: float) -> None:
        for key in [k for k, (_, expires) in self._values.items() if expires <= now]:
            del self._values[key]
        for key in list(self._sets):
            members = self._sets[key]
            self._trim(members, now - self._windows.get(key, 0.0))
            if not members:
                del self._sets[key]
                self._windows.pop(key, None)
        if len(self._sets) > self.max_sets:
            stalest = sorted(self._sets, key=lambda k: next(reversed(self._sets[k].values())))
            for key in stalest[: len(self._sets) - self.max_sets]:
                del self._sets[key]
                self._windows.pop(key, None)

    def __len__(self) -> int:
        return len(self._sets) + len(self._values)
