"""Operator actions on authentication, shared by the CLI and (later) the admin API.

Every action that changes something writes it to the durable auth state,
which a running node reads within ``refresh_interval`` (a second by default),
and appends one line to the audit log: who, when, what, on what, with which
details.  Actions that only read (status, lists) are not audited.

Errors are :class:`AuthAdminError` with a text fit for an operator and an
exit code class (``not_found``, ``exists``, ``refused``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mailwarden.auth.bans import ADMIN_RULE, AllowEntry, Ban
from mailwarden.auth.limits import IPNetwork, parse_network
from mailwarden.auth.persist import AppPassword, AuditEntry, AuthStateStore
from mailwarden.auth.tokens import app_password_digest, generate_app_password
from mailwarden.store.base import Account, AdminStore

__all__ = ["AuthAdmin", "AuthAdminError", "parse_duration"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class AuthAdminError(Exception):
    """An operator request that cannot be done.

    Attributes:
        kind: ``refused``, ``not_found`` or ``exists`` (the CLI's exit code).
    """

    def __init__(self, message: str, kind: str = "refused") -> None:
        super().__init__(message)
        self.kind = kind


def parse_duration(text: str) -> float | None:
    """``90``, ``30m``, ``2h``, ``1d``, ``1w`` → seconds; ``forever`` → None.

    Raises:
        AuthAdminError: anything else, or a duration that is not positive.
    """
    text = text.strip().lower()
    if text in ("forever", "never", "permanent"):
        return None
    unit = _UNITS.get(text[-1:], 0)
    number = text[:-1] if unit else text
    try:
        value = float(number) * (unit or 1)
    except ValueError:
        raise AuthAdminError(f"not a duration: {text!r} (use e.g. 90, 30m, 2h, 1d)") from None
    if not value > 0 or value != value or value == float("inf"):
        raise AuthAdminError("a duration must be positive")
    return value


def _network(text: str) -> IPNetwork:
    try:
        return parse_network(text)
    except ValueError as exc:
        raise AuthAdminError(f"not a network: {text} ({exc})") from None


@dataclass
class AuthAdmin:
    """Operator actions on one auth state store (and the accounts of one store)."""

    state: AuthStateStore
    store: AdminStore | None
    actor: str
    clock: Callable[[], float] = time.time

    async def _audit(self, action: str, target: str, detail: str = "") -> None:
        await self.state.audit(AuditEntry(self.clock(), self.actor, action, target, detail))

    async def _account(self, address: str) -> Account:
        if self.store is None:
            raise AuthAdminError("no store to look accounts up in")
        account = await self.store.find_account(address)
        if account is None:
            raise AuthAdminError(f"no such mailbox: {address}", "not_found")
        return account

    # --- bans and the allowlist ---------------------------------------------------

    async def bans(self, *, include_ended: bool = False) -> list[Ban]:
        """Bans in force (or every ban on record)."""
        return await self.state.bans(self.clock(), include_ended=include_ended)

    async def ban(self, network_text: str, duration: float | None, reason: str = "") -> Ban:
        """Ban a network by hand (applies to known clients too)."""
        network = _network(network_text)
        for entry in await self.state.allowlist():
            if entry.network.version == network.version and (
                network.subnet_of(entry.network)  # type: ignore[arg-type]
                or entry.network.subnet_of(network)  # type: ignore[arg-type]
            ):
                raise AuthAdminError(
                    f"{network} overlaps the allowlisted {entry.network}; disallow it first"
                )
        now = self.clock()
        ban = await self.state.add_ban(
            Ban(network, now, None if duration is None else now + duration, ADMIN_RULE, reason)
        )
        detail = "forever" if duration is None else f"for {duration:g} s"
        await self._audit("ban", str(network), f"{detail}; {reason}" if reason else detail)
        return ban

    async def unban(self, network_text: str) -> int:
        """Lift the bans of exactly a network; returns how many were lifted."""
        network = _network(network_text)
        lifted = await self.state.lift_ban(network, self.clock())
        if not lifted:
            raise AuthAdminError(f"{network} is not banned", "not_found")
        await self._audit("unban", str(network), f"{lifted} ban(s) lifted")
        return lifted

    async def allowlist(self) -> list[AllowEntry]:
        """The allowlist."""
        return await self.state.allowlist()

    async def allow(self, network_text: str, note: str = "") -> AllowEntry:
        """Put a network on the allowlist (never banned automatically or by hand)."""
        network = _network(network_text)
        entry = AllowEntry(network, note, self.clock())
        await self.state.allow(entry)
        await self._audit("allow", str(network), note)
        return entry

    async def disallow(self, network_text: str) -> None:
        """Take a network off the allowlist."""
        network = _network(network_text)
        if not await self.state.disallow(network):
            raise AuthAdminError(f"{network} is not on the allowlist", "not_found")
        await self._audit("disallow", str(network))

    # --- accounts -----------------------------------------------------------------

    async def lock(self, address: str, reason: str = "") -> Account:
        """Refuse every login of an account until unlocked (mail still arrives)."""
        account = await self._account(address)
        await self.state.set_lock(account.id, True, reason, self.clock())
        await self._audit("lock", account.address, reason)
        return account

    async def unlock(self, address: str) -> Account:
        """Undo :meth:`lock`."""
        account = await self._account(address)
        flags = await self.state.account_flags(account.id)
        if not flags.locked:
            raise AuthAdminError(f"{account.address} is not locked")
        await self.state.set_lock(account.id, False, "", self.clock())
        await self._audit("unlock", account.address)
        return account

    async def revoke(self, address: str) -> int:
        """End an account's sessions, void its device tokens, known clients and cached logins.

        Returns:
            The account's new epoch.
        """
        account = await self._account(address)
        epoch = await self.state.bump_epoch(account.id)
        await self._audit("revoke", account.address, f"epoch {epoch}")
        return epoch

    async def sessions(self, address: str) -> dict[str, Any]:
        """What can log in to an account without a full check, and what is logged in now."""
        account = await self._account(address)
        now = self.clock()
        flags = await self.state.account_flags(account.id)
        known = await self.state.known_clients(0.0, account.id)
        apps = [a for a in await self.state.app_passwords(account.id) if not a.revoked]
        live: list[dict[str, Any]] = []
        for snapshot in await self.state.stats():
            data = json.loads(snapshot.data)
            live += [
                {**s, "node": snapshot.node}
                for s in data.get("sessions", ())
                if s.get("account_id") == account.id
            ]
        return {
            "account": account.address,
            "locked": flags.locked,
            "lock_reason": flags.reason,
            "epoch": flags.epoch,
            "sessions": live,
            "known_clients": [
                {"network": str(k.network), "last_seen": k.last_seen, "age_s": now - k.last_seen}
                for k in known
            ],
            "app_passwords": [{"id": a.id, "label": a.label, "created": a.created} for a in apps],
        }

    # --- app passwords ------------------------------------------------------------

    async def add_app_password(self, address: str, label: str = "") -> tuple[AppPassword, str]:
        """Make an app password for IMAP, POP3 and SMTP; returns it and its text (shown once)."""
        account = await self._account(address)
        password = generate_app_password()
        app = await self.state.add_app_password(
            account.id, label, app_password_digest(password), self.clock()
        )
        await self._audit("app-password add", account.address, f"id {app.id} {label}".strip())
        return app, password

    async def app_passwords(self, address: str) -> list[AppPassword]:
        """An account's app passwords that are not revoked."""
        account = await self._account(address)
        return [a for a in await self.state.app_passwords(account.id) if not a.revoked]

    async def revoke_app_password(self, address: str, app_id: int) -> None:
        """Revoke one app password."""
        account = await self._account(address)
        if not await self.state.revoke_app_password(account.id, app_id):
            raise AuthAdminError(f"{account.address} has no app password {app_id}", "not_found")
        await self._audit("app-password revoke", account.address, f"id {app_id}")

    # --- reading ------------------------------------------------------------------

    async def status(self) -> list[dict[str, Any]]:
        """Every node's latest statistics, with their age in seconds."""
        now = self.clock()
        out = []
        for snapshot in await self.state.stats():
            data = json.loads(snapshot.data)
            data["age_s"] = now - snapshot.at
            out.append(data)
        return out

    async def explain(self, address_text: str) -> dict[str, Any]:
        """Why an address is refused or not: bans and allowlist entries covering it."""
        network = _network(address_text)
        address = network.network_address
        now = self.clock()
        bans = [
            b.explain()
            for b in await self.state.bans(now)
            if b.network.version == address.version and address in b.network
        ]
        allowed = [
            str(e.network)
            for e in await self.state.allowlist()
            if e.network.version == address.version and address in e.network
        ]
        offender: dict[str, int] = {}
        for data in await self.status():
            for kind, rows in data.get("top", {}).items():
                if kind == "accounts":
                    continue
                for key, count in rows:
                    try:
                        covered = parse_network(key)
                    except ValueError:
                        continue
                    if covered.version == address.version and address in covered:
                        offender[f"{kind} {key}"] = offender.get(f"{kind} {key}", 0) + count
        return {
            "address": str(address),
            "allowlisted_by": allowed,
            "banned_by": bans,
            "recent_failures": offender,
            "verdict": (
                "allowlisted: never banned"
                if allowed
                else ("refused: banned" if bans else "not banned")
            ),
        }

    async def audit_log(self, limit: int = 50, target: str | None = None) -> list[AuditEntry]:
        """The latest audit entries, newest first."""
        return await self.state.audit_log(limit, target)
