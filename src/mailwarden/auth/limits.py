"""Pure limit arithmetic: networks of an address, thresholds, delays, priorities.

Theory of operation
-------------------
Nothing here reads a clock, a counter store or a socket: every function takes
the counts and ``now`` it needs and returns a value, so the rules can be read
and tested on one screen (mox's limiter takes time as an argument too).

* **Scopes.**  A source is seen at three widths: its *host* (IPv4 /32, IPv6
  /64: one customer line), its *site* (/24, /48: one office, one hosting
  rack) and its *wide* network (/16, /32: one provider's block).  Failures are
  counted at each width; reaching a width's limit bans that network.
* **Distinct failures.**  Counts are of distinct (user, password) pairs, so a
  phone retrying an old password costs its office one failure, not hundreds.
* **Pressure** is how close a source is to a ban, 0 for a source with no
  failures, plus a little for each recent "try later"; the verification queue
  serves low pressure first, so a new client from a clean network overtakes a
  guesser that already failed or keeps knocking on a full line.
* **Delays** after failures double with the host's failures (the first is
  free: a typo), up to a maximum;
  they are timers in the caller, never held threads or pool slots.
* **Sheds** ("try later") are immediate the first time; a source that keeps
  retrying at once is answered after a growing delay, so a spinning client
  costs timers rather than the event loop.
* **Bans** last ``ban_base`` and grow by ``ban_factor`` for each earlier ban of
  the same network still remembered, up to ``ban_max``.
* **Pre-login connections** are counted per host, site and wide network and in
  total by :class:`ConnectionGate`, so no source can fill a node's capacity.
"""

from __future__ import annotations

import enum
import functools
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from mailwarden.auth.policy import AuthPolicy

__all__ = [
    "PREFIXES",
    "ConnectionGate",
    "IPAddress",
    "IPNetwork",
    "Scope",
    "SourceCounts",
    "ban_duration",
    "failure_delay",
    "known_network",
    "network_of",
    "parse_network",
    "pressure",
    "scopes_of",
    "shed_delay",
    "tripped",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class Scope(enum.StrEnum):
    """How wide a network a count or a limit covers."""

    HOST = "host"  # IPv4 /32, IPv6 /64
    SITE = "site"  # IPv4 /24, IPv6 /48
    WIDE = "wide"  # IPv4 /16, IPv6 /32
    TOTAL = "total"  # every source (pre-login connections only)


# Prefix lengths of each scope by IP version.  An IPv6 /64 is one subscriber
# line (RFC 6177 hands each site at least a /64), so it counts as one host.
PREFIXES: dict[int, dict[Scope, int]] = {
    4: {Scope.HOST: 32, Scope.SITE: 24, Scope.WIDE: 16},
    6: {Scope.HOST: 64, Scope.SITE: 48, Scope.WIDE: 32},
}
_SOURCE_SCOPES = (Scope.HOST, Scope.SITE, Scope.WIDE)


# Building an ipaddress network costs microseconds, and a flood asks for the
# same few thousand addresses over and over: remember the recent ones.
_CACHE = 65536


@functools.lru_cache(maxsize=_CACHE)
def network_of(address: IPAddress, prefix: int) -> IPNetwork:
    """The network of ``prefix`` bits containing ``address``."""
    return ipaddress.ip_network((address, prefix), strict=False)


def _unmapped(address: IPAddress) -> IPAddress:
    # An IPv4 peer on a dual-stack socket arrives as ::ffff:a.b.c.d; count it as IPv4.
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@functools.lru_cache(maxsize=_CACHE)
def scopes_of(address: IPAddress) -> tuple[tuple[Scope, IPNetwork], ...]:
    """The host, site and wide networks of an address."""
    address = _unmapped(address)
    prefixes = PREFIXES[address.version]
    return tuple((scope, network_of(address, prefixes[scope])) for scope in _SOURCE_SCOPES)


def known_network(address: IPAddress, policy: AuthPolicy) -> IPNetwork:
    """The client network a known (account, network) pair is remembered by."""
    address = _unmapped(address)
    prefix = policy.known_prefix_v4 if address.version == 4 else policy.known_prefix_v6
    return network_of(address, prefix)


def parse_network(text: str) -> IPNetwork:
    """Parse ``192.0.2.0/24``, ``2001:db8::/32`` or a bare address (a host network).

    Raises:
        ValueError: not an address or network; or host bits set (``10.1.2.3/8``).
    """
    return ipaddress.ip_network(text.strip(), strict=True)


@dataclass(frozen=True, slots=True)
class SourceCounts:
    """Distinct failures in the window of a source's host, site and wide networks."""

    host: int = 0
    site: int = 0
    wide: int = 0

    def of(self, scope: Scope) -> int:
        """The count of one scope."""
        match scope:
            case Scope.HOST:
                return self.host
            case Scope.SITE:
                return self.site
            case Scope.WIDE:
                return self.wide
            case _:
                return 0


def limit_of(scope: Scope, policy: AuthPolicy) -> int:
    """The failure limit of a scope."""
    match scope:
        case Scope.HOST:
            return policy.host_failures
        case Scope.SITE:
            return policy.site_failures
        case _:
            return policy.wide_failures


def tripped(counts: SourceCounts, policy: AuthPolicy) -> tuple[Scope, ...]:
    """The scopes whose failures reached their limit, widest first."""
    return tuple(
        scope for scope in reversed(_SOURCE_SCOPES) if counts.of(scope) >= limit_of(scope, policy)
    )


def pressure(counts: SourceCounts, policy: AuthPolicy, recent_sheds: int = 0) -> float:
    """How suspect a source is, for ordering the verification line: lower goes first.

    0 for a source with no failures and no recent "try later"; the share of
    the way to a ban (up to 1) for failures, plus 0.1 per recent shed (up to
    1 more), so that sources which keep knocking on a full line fall behind
    one that arrives for the first time.
    """
    failures = max(counts.of(scope) / max(1, limit_of(scope, policy)) for scope in _SOURCE_SCOPES)
    return min(1.0, failures) + min(1.0, 0.1 * max(0, recent_sheds))


def failure_delay(host_failures: int, policy: AuthPolicy) -> float:
    """Seconds to wait before answering a source with ``host_failures`` failures."""
    # One typo is free; from the second failure on the delay doubles.
    if host_failures <= 1 or policy.failure_delay_base <= 0:
        return 0.0
    # Cap the exponent before computing, so huge counts cannot overflow.
    doubling = min(host_failures - 2, 30)
    return float(min(policy.failure_delay_max, policy.failure_delay_base * 2.0**doubling))


def shed_delay(recent_sheds: int, policy: AuthPolicy) -> float:
    """Seconds to hold back a "try later" for a source shed ``recent_sheds`` times lately.

    The first is answered at once (a new client learns immediately that it
    should come back); a source that retries at once is slowed, doubling.
    """
    if recent_sheds <= 1 or policy.shed_delay_base <= 0:
        return 0.0
    doubling = min(recent_sheds - 2, 30)
    return float(min(policy.failure_delay_max, policy.shed_delay_base * 2.0**doubling))


def ban_duration(earlier_bans: int, policy: AuthPolicy) -> float:
    """Length of a new automatic ban given the network's earlier bans still remembered."""
    level = min(max(0, earlier_bans), 30)
    return float(min(policy.ban_max, policy.ban_base * policy.ban_factor**level))


class ConnectionGate:
    """Counts unauthenticated connections per host, site, wide network and in total.

    Pure bookkeeping (no clock): :meth:`admit` takes a slot in every scope or
    none, :meth:`release` gives them back.
    """

    def __init__(self, policy: AuthPolicy) -> None:
        self.policy = policy
        self.open: dict[IPNetwork, int] = {}
        self.total = 0

    def _limits(self) -> dict[Scope, int]:
        p = self.policy
        return {
            Scope.HOST: p.prelogin_host,
            Scope.SITE: p.prelogin_site,
            Scope.WIDE: p.prelogin_wide,
        }

    def admit(self, address: IPAddress) -> Scope | None:
        """Take a slot for ``address``; returns None, or the scope that is full."""
        if self.total >= self.policy.prelogin_total:
            return Scope.TOTAL
        limits = self._limits()
        networks = scopes_of(address)
        for scope, network in networks:
            if self.open.get(network, 0) >= limits[scope]:
                return scope
        for _, network in networks:
            self.open[network] = self.open.get(network, 0) + 1
        self.total += 1
        return None

    def release(self, address: IPAddress) -> None:
        """Give back the slot taken by :meth:`admit` for ``address``."""
        for _, network in scopes_of(address):
            left = self.open.get(network, 0) - 1
            if left <= 0:
                self.open.pop(network, None)
            else:
                self.open[network] = left
        self.total = max(0, self.total - 1)

    def count(self, networks: Iterable[IPNetwork]) -> dict[str, int]:
        """Open connections of some networks (for explanations)."""
        return {str(n): self.open.get(n, 0) for n in networks}
