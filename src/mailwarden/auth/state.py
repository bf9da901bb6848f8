"""The node's in-memory copy of the durable auth state, kept fresh by polling.

:class:`AuthState` answers the questions a login asks before any hashing —
is this address banned or allowlisted, is this account locked, what is its
token epoch, is this an app password — from dicts, in microseconds.
:meth:`AuthState.apply` folds in a :class:`~.persist.Changes` read from the
database (the admin tools' changes, and bans other nodes made) and reports
which accounts were revoked so their sessions can be ended.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mailwarden.auth.bans import AllowEntry, Ban, BanList, NetworkTable
from mailwarden.auth.limits import IPAddress, IPNetwork
from mailwarden.auth.persist import AccountFlags, AppPassword, Changes

__all__ = ["AuthState"]


@dataclass
class AuthState:
    """Bans, allowlist, account flags and app passwords as this node knows them."""

    bans: BanList = field(default_factory=BanList)
    allow: NetworkTable[AllowEntry] = field(default_factory=NetworkTable)
    flags: dict[int, AccountFlags] = field(default_factory=dict)
    apps: dict[str, AppPassword] = field(default_factory=dict)
    seq: int = 0

    def apply(self, changes: Changes) -> list[int]:
        """Fold in changes; returns the accounts whose epoch rose (revoked)."""
        for network in changes.lifted:
            self.bans.lift(network)
        for ban in changes.bans:
            self.add_ban(ban)
        for entry in changes.allowed:
            self.allow.set(entry.network, entry)
        for network in changes.disallowed:
            self.allow.remove(network)
        revoked: list[int] = []
        for flags in changes.flags:
            before = self.flags.get(flags.account_id)
            if flags.epoch > (0 if before is None else before.epoch):
                revoked.append(flags.account_id)
            self.flags[flags.account_id] = flags
        for app in changes.app_passwords:
            if app.revoked:
                self.apps.pop(app.digest, None)
            else:
                self.apps[app.digest] = app
        self.seq = max(self.seq, changes.seq)
        return revoked

    def add_ban(self, ban: Ban) -> None:
        """Install a ban unless one of the same network already lasts longer."""
        current = self.bans.table.get(ban.network)
        if current is not None and current.id and ban.id and current.id > ban.id:
            return
        self.bans.add(ban)

    def allowed(self, address: IPAddress) -> AllowEntry | None:
        """The allowlist entry covering ``address``, if any."""
        found = self.allow.matches(address)
        return found[0] if found else None

    def allowed_network(self, network: IPNetwork) -> bool:
        """Whether a whole network lies within an allowlisted one."""
        for allowed, _ in self.allow:
            if allowed.version == network.version and network.subnet_of(allowed):  # type: ignore[arg-type]
                return True
        return False

    def epoch(self, account_id: int) -> int:
        """The account's token epoch (0 if never revoked)."""
        flags = self.flags.get(account_id)
        return 0 if flags is None else flags.epoch

    def lock(self, account_id: int) -> AccountFlags | None:
        """The account's flags if it is locked."""
        flags = self.flags.get(account_id)
        return flags if flags is not None and flags.locked else None
