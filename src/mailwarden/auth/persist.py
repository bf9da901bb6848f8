"""Durable auth state shared by the node and the admin tools: the interface and its records.

Theory of operation
-------------------
The admin tools run in another process than the node, so everything an
operator changes — bans, the allowlist, account locks, revocations, app
passwords — goes through the database, and so does the log of what they did.
The node keeps a copy in memory and asks :meth:`AuthStateStore.changes_since`
every second (``AuthPolicy.refresh_interval``) for the rows changed after the
last change it saw: every write takes the next number of one sequence, so that
question is one indexed query, however large the tables.

The node also writes here: the bans it makes (so ``auth bans`` sees them and
they survive a restart), the (account, network) pairs that logged in (known
clients, written at most once a day per pair), and a snapshot of its live
statistics every few seconds, which ``auth status`` reads.

:mod:`mailwarden.store.sqlite_auth` implements this on the store's SQLite file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from mailwarden.auth.bans import AllowEntry, Ban
from mailwarden.auth.limits import IPNetwork

__all__ = [
    "AccountFlags",
    "AppPassword",
    "AuditEntry",
    "AuthStateStore",
    "Changes",
    "KnownClient",
    "StatsSnapshot",
]


@dataclass(frozen=True, slots=True)
class AccountFlags:
    """What the admin tools set on an account for the auth service.

    Attributes:
        account_id: the account.
        locked: every login is refused (``auth lock``).
        reason: the operator's note for the lock.
        since: when it was locked (epoch seconds; 0 if not locked).
        epoch: raised by ``auth revoke``: device tokens, known clients and cached
            logins of earlier epochs are void, and sessions are ended.
    """

    account_id: int
    locked: bool = False
    reason: str = ""
    since: float = 0.0
    epoch: int = 0


@dataclass(frozen=True, slots=True)
class AppPassword:
    """A random password for one account's mail clients (never for webmail).

    Attributes:
        id: number within the database, shown by ``list`` and used by ``revoke``.
        account_id: the account it logs in to.
        label: the operator's or user's name for it ("phone", "laptop").
        digest: hex SHA-256 of the password (see :mod:`.tokens`).
        created: when it was made.
        revoked: whether it has been revoked (kept for the record).
    """

    id: int
    account_id: int
    label: str
    digest: str
    created: float
    revoked: bool = False


@dataclass(frozen=True, slots=True)
class KnownClient:
    """An account that logged in from a client network, and when last."""

    account_id: int
    user_key: str
    network: IPNetwork
    last_seen: float


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One administrative action."""

    at: float
    actor: str
    action: str
    target: str
    detail: str = ""
    id: int = 0


@dataclass(frozen=True, slots=True)
class StatsSnapshot:
    """Live statistics a node published, as JSON text."""

    node: str
    at: float
    data: str


@dataclass(frozen=True, slots=True)
class Changes:
    """Rows changed after a sequence number.

    Attributes:
        seq: the highest sequence number included (ask again with it).
        bans: bans made or changed; ``lifted`` ones are to be removed.
        lifted: networks whose bans were lifted by an operator.
        allowed: allowlist entries added.
        disallowed: networks taken off the allowlist.
        flags: account flags changed (locks, epochs).
        app_passwords: app passwords added or revoked.
    """

    seq: int
    bans: Sequence[Ban] = ()
    lifted: Sequence[IPNetwork] = ()
    allowed: Sequence[AllowEntry] = ()
    disallowed: Sequence[IPNetwork] = ()
    flags: Sequence[AccountFlags] = ()
    app_passwords: Sequence[AppPassword] = field(default_factory=tuple)


class AuthStateStore(Protocol):
    """Durable auth state (SQLite by default; PostgreSQL in a cluster)."""

    async def changes_since(self, seq: int, now: float) -> Changes:
        """Everything changed after ``seq`` (``seq=0``: the whole current state).

        Bans that ended before ``now`` are left out of a full load.
        """
        ...

    async def add_ban(self, ban: Ban) -> Ban:
        """Store a ban; returns it with its ``id``."""
        ...

    async def lift_ban(self, network: IPNetwork, now: float) -> int:
        """End the active bans of exactly ``network`` at ``now``; returns how many."""
        ...

    async def bans(self, now: float, *, include_ended: bool = False) -> list[Ban]:
        """Bans in force at ``now`` (with ``include_ended``: also past ones), newest first."""
        ...

    async def ban_history(self, since: float) -> list[Ban]:
        """Every ban that started after ``since`` (for escalation after a restart)."""
        ...

    async def allow(self, entry: AllowEntry) -> None:
        """Add (or re-note) an allowlist entry."""
        ...

    async def disallow(self, network: IPNetwork) -> bool:
        """Take a network off the allowlist; False if it was not on it."""
        ...

    async def allowlist(self) -> list[AllowEntry]:
        """The allowlist, by network."""
        ...

    async def account_flags(self, account_id: int) -> AccountFlags:
        """An account's flags (defaults if none were ever set)."""
        ...

    async def set_lock(self, account_id: int, locked: bool, reason: str, now: float) -> None:
        """Lock or unlock an account."""
        ...

    async def bump_epoch(self, account_id: int) -> int:
        """Raise an account's epoch (revoke); returns the new epoch."""
        ...

    async def add_app_password(
        self, account_id: int, label: str, digest: str, now: float
    ) -> AppPassword:
        """Store a new app password's digest."""
        ...

    async def app_passwords(self, account_id: int) -> list[AppPassword]:
        """An account's app passwords (revoked ones included), oldest first."""
        ...

    async def revoke_app_password(self, account_id: int, app_id: int) -> bool:
        """Revoke one; False if the account has no such app password (or it is revoked)."""
        ...

    async def remember_known(self, clients: Sequence[KnownClient]) -> None:
        """Record (or refresh) known clients."""
        ...

    async def known_clients(self, since: float, account_id: int | None = None) -> list[KnownClient]:
        """Known clients seen after ``since``, of one account or all."""
        ...

    async def forget_known(self, account_id: int) -> None:
        """Forget an account's known clients (revoke)."""
        ...

    async def audit(self, entry: AuditEntry) -> None:
        """Append to the audit log."""
        ...

    async def audit_log(self, limit: int = 100, target: str | None = None) -> list[AuditEntry]:
        """The latest entries, newest first, optionally about one target."""
        ...

    async def publish_stats(self, snapshot: StatsSnapshot) -> None:
        """Replace this node's statistics snapshot."""
        ...

    async def stats(self) -> list[StatsSnapshot]:
        """Every node's latest snapshot."""
        ...

    async def close(self) -> None:
        """Finish pending writes and close."""
        ...
