"""The numbers behind every login decision, in one frozen dataclass.

:class:`AuthPolicy` is the auth service's slice of the configuration: every
field is also a setting of ``[auth]`` (``mailwarden.config.AuthConfig``, with
the same defaults), and :func:`policy_from_config` copies them.

The defaults are chosen for a provider's front door on the public Internet:

* a single address gets 10 distinct wrong passwords per 15 minutes before it
  is banned, a /24 gets 30, a /16 gets 100 (IPv6: /64, /48, /32);
* one account takes 30 distinct wrong passwords per 15 minutes from sources
  it has never logged in from before its *unknown* lane is held (its known
  clients keep working);
* bans start at 10 minutes and grow fourfold for each earlier ban of the same
  network within a week, up to a day.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from mailwarden.config import Config

__all__ = ["AuthPolicy", "policy_from_config"]


@dataclass(frozen=True, slots=True)
class AuthPolicy:
    """Limits, delays and lifetimes of the auth service (all times in seconds).

    Attributes:
        window: how long a failure counts towards a limit (sliding window).
        host_failures: distinct failures of one IPv4 address or IPv6 /64 before a ban.
        site_failures: distinct failures of one IPv4 /24 or IPv6 /48 before a ban.
        wide_failures: distinct failures of one IPv4 /16 or IPv6 /32 before a ban.
        account_failures: distinct failures of one account from unknown sources
            before its unknown lane is held (TryLater) while they stay in the window.
        account_hold_retry: ``retry_after`` told to clients of a held account.
        ban_base: length of a first ban.
        ban_factor: each earlier ban of the network within ``ban_memory`` multiplies by this.
        ban_max: the longest automatic ban.
        ban_memory: how far back earlier bans count for escalation.
        failure_delay_base: delay before answering the first failure of a source.
        failure_delay_max: the longest delay; it doubles with each failure of the host.
        banned_delay: delay before answering a banned source that is still connected.
        known_ttl: how long a successful (account, client network) stays known.
        known_prefix_v4: prefix length of a known client's IPv4 network.
        known_prefix_v6: prefix length of a known client's IPv6 network.
        known_failures: distinct failures a known (account, network) may make
            before it loses its lane until they leave the window.
        device_token_ttl: lifetime of a signed device token.
        success_cache_ttl: how long a successful login spares the next one a hash.
        failure_cache_ttl: how long a failed (account, password) pair is answered
            without hashing again (the phone with an old password).
        known_reserve: verification slots the unknown lane may not take.
        source_pending: verifications one host may have queued or running at once.
        shed_retry_after: ``retry_after`` of a request shed by admission control.
        shed_delay_base: delay of a source's second "try later" within
            ``shed_window``; it doubles with each one after (first: none).
        shed_window: how long a shed counts towards that delay.
        prelogin_host: unauthenticated connections open at once from one host.
        prelogin_site: the same for one /24 (IPv6 /48).
        prelogin_wide: the same for one /16 (IPv6 /32).
        prelogin_total: unauthenticated connections open at once on this node.
        refresh_interval: how often the node reads changes made by the admin tools.
        stats_interval: how often the node publishes its live statistics.
    """

    window: float = 900.0
    host_failures: int = 10
    site_failures: int = 30
    wide_failures: int = 100
    account_failures: int = 30
    account_hold_retry: float = 60.0
    ban_base: float = 600.0
    ban_factor: float = 4.0
    ban_max: float = 86400.0
    ban_memory: float = 7 * 86400.0
    failure_delay_base: float = 1.0
    failure_delay_max: float = 15.0
    banned_delay: float = 15.0
    known_ttl: float = 30 * 86400.0
    known_prefix_v4: int = 24
    known_prefix_v6: int = 64
    known_failures: int = 5
    device_token_ttl: float = 90 * 86400.0
    success_cache_ttl: float = 12 * 3600.0
    failure_cache_ttl: float = 900.0
    known_reserve: int = 8
    source_pending: int = 4
    shed_retry_after: float = 5.0
    shed_delay_base: float = 0.25
    shed_window: float = 10.0
    prelogin_host: int = 32
    prelogin_site: int = 128
    prelogin_wide: int = 512
    prelogin_total: int = 20_000
    refresh_interval: float = 1.0
    stats_interval: float = 2.0


def policy_from_config(config: Config) -> AuthPolicy:
    """The policy of a configuration's ``[auth]`` table."""
    auth = config.auth
    extra: dict[str, Any] = {}
    for name in AuthPolicy.__dataclass_fields__:
        if hasattr(auth, name):
            extra[name] = getattr(auth, name)
    return replace(AuthPolicy(), **extra)
