"""Bans and the allowlist: data with reasons, looked up per address in microseconds.

Theory of operation
-------------------
A :class:`Ban` is a record, not a flag: the network, when it started and ends,
the rule that made it (``host-failures``, ``site-failures``,
``wide-failures`` or ``admin``), the counts that tripped the rule and its
escalation level.  Anyone asking "why is this address refused?" gets that
record back (:meth:`Ban.explain`).

Bans and allowlist entries live in the database (so the admin tools, which run
in another process, see and change them) and in a :class:`NetworkTable` in the
node's memory, which answers "which entries contain this address?" by looking
up each prefix length in use: a handful of dict lookups.

Automatic bans escalate: the node remembers when each network was banned
(:class:`BanList` keeps that history), and :func:`~.limits.ban_duration` makes
each new ban of a network longer than the one before.  The allowlist wins over
automatic bans: an allowlisted network is never banned automatically, and the
admin tool refuses to ban it by hand until it is taken off the list.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from mailwarden.auth.limits import IPAddress, IPNetwork, network_of

__all__ = ["ADMIN_RULE", "AllowEntry", "Ban", "BanList", "NetworkTable"]

T = TypeVar("T")
ADMIN_RULE = "admin"


def _when(ts: float | None) -> str:
    if ts is None:
        return "until lifted"
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(ts))


@dataclass(frozen=True, slots=True)
class Ban:
    """One network refused until a time, and why.

    Attributes:
        network: the banned network (a host is a /32 or /128).
        since: when the ban started (epoch seconds).
        until: when it ends; None for an admin ban without an end.
        rule: what made it: ``host-failures``, ``site-failures``,
            ``wide-failures`` or ``admin``.
        reason: words for the operator (the admin's note, or the counts).
        level: 0 for a first ban, +1 for each earlier ban remembered.
        counts: the counts that tripped the rule, e.g. ``(("host", 10),)``.
        id: the database row (0 before it is stored).
    """

    network: IPNetwork
    since: float
    until: float | None
    rule: str
    reason: str = ""
    level: int = 0
    counts: tuple[tuple[str, int], ...] = ()
    id: int = 0

    @property
    def by_admin(self) -> bool:
        """Whether an operator made it (such bans apply to known clients too)."""
        return self.rule == ADMIN_RULE

    def active(self, now: float) -> bool:
        """Whether it refuses at ``now``."""
        return self.since <= now and (self.until is None or now < self.until)

    def explain(self) -> str:
        """One line: network, rule, since, until, counts, reason."""
        counts = ", ".join(f"{k}={v}" for k, v in self.counts)
        parts = [
            f"{self.network} banned by rule {self.rule}",
            f"since {_when(self.since)}",
            f"until {_when(self.until)}",
        ]
        if self.level:
            parts.append(f"escalation level {self.level}")
        if counts:
            parts.append(f"counts {counts}")
        if self.reason:
            parts.append(f"reason: {self.reason}")
        return "; ".join(parts)


@dataclass(frozen=True, slots=True)
class AllowEntry:
    """A network that is never banned automatically."""

    network: IPNetwork
    note: str = ""
    created: float = 0.0


class NetworkTable(Generic[T]):
    """Values keyed by network; finds every value whose network contains an address."""

    def __init__(self) -> None:
        # (version, prefix length) -> network -> value
        self._by_prefix: dict[tuple[int, int], dict[IPNetwork, T]] = {}

    def __len__(self) -> int:
        return sum(len(t) for t in self._by_prefix.values())

    def __iter__(self) -> Iterator[tuple[IPNetwork, T]]:
        for table in self._by_prefix.values():
            yield from table.items()

    def set(self, network: IPNetwork, value: T) -> None:
        """Add or replace the value of a network."""
        self._by_prefix.setdefault((network.version, network.prefixlen), {})[network] = value

    def get(self, network: IPNetwork) -> T | None:
        """The value of exactly this network."""
        return self._by_prefix.get((network.version, network.prefixlen), {}).get(network)

    def remove(self, network: IPNetwork) -> T | None:
        """Remove exactly this network; returns its value."""
        key = (network.version, network.prefixlen)
        table = self._by_prefix.get(key)
        if table is None:
            return None
        value = table.pop(network, None)
        if not table:
            del self._by_prefix[key]
        return value

    def matches(self, address: IPAddress) -> list[T]:
        """Values of every network containing ``address``, narrowest first."""
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        found: list[tuple[int, T]] = []
        for (version, prefix), table in self._by_prefix.items():
            if version != address.version:
                continue
            value = table.get(network_of(address, prefix))
            if value is not None:
                found.append((prefix, value))
        found.sort(key=lambda pair: -pair[0])
        return [value for _, value in found]


@dataclass
class BanList:
    """The node's view of the bans, with each network's ban history for escalation."""

    table: NetworkTable[Ban] = field(default_factory=NetworkTable)
    history: dict[IPNetwork, list[float]] = field(default_factory=dict)

    def add(self, ban: Ban) -> None:
        """Install a ban (replacing one of the same network) and remember it."""
        self.table.set(ban.network, ban)
        starts = self.history.setdefault(ban.network, [])
        if ban.since not in starts:
            starts.append(ban.since)

    def lift(self, network: IPNetwork) -> Ban | None:
        """Remove the ban of exactly ``network``."""
        return self.table.remove(network)

    def match(self, address: IPAddress, now: float, *, admin_only: bool = False) -> Ban | None:
        """The active ban covering ``address`` that lasts longest, or None."""
        best: Ban | None = None
        for ban in self.table.matches(address):
            if not ban.active(now) or (admin_only and not ban.by_admin):
                continue
            if best is None or (
                best.until is not None and (ban.until is None or ban.until > best.until)
            ):
                best = ban
        return best

    def get(self, network: IPNetwork, now: float) -> Ban | None:
        """The active ban of exactly ``network``."""
        ban = self.table.get(network)
        return ban if ban is not None and ban.active(now) else None

    def earlier(self, network: IPNetwork, now: float, memory: float) -> int:
        """How many bans of ``network`` started within ``memory`` seconds before ``now``."""
        starts = [t for t in self.history.get(network, []) if t > now - memory]
        if starts:
            self.history[network] = starts
        else:
            self.history.pop(network, None)
        return len(starts)

    def active(self, now: float) -> list[Ban]:
        """Every ban in force, soonest to end first."""
        bans = [ban for _, ban in self.table if ban.active(now)]
        bans.sort(key=lambda b: (b.until is None, b.until or 0.0, str(b.network)))
        return bans

    def expire(self, now: float) -> int:
        """Drop bans that have ended; returns how many."""
        ended = [net for net, ban in self.table if ban.until is not None and ban.until <= now]
        for net in ended:
            self.table.remove(net)
        return len(ended)
