"""Admin login throttling: per address and per user, with lockouts that double.

The admin pages are the one place on the status host that takes passwords, so
they get the same treatment as the mail node's door, scaled down:

* **Per address.**  ``address_failures`` failed logins from one address (an
  IPv6 client counts by its /64, since one host holds a whole /64) within
  ``window`` of each other lock that address out for ``lockout``; every
  further failure after a lock doubles it, up to ``lockout_max``.
* **Per user.**  ``user_failures`` failed logins for one user name (from
  anywhere) lock that name the same way, so a botnet spreading guesses over
  many addresses still stalls.  Unknown names are counted like real ones, so
  the lock says nothing about which names exist.
* **Known addresses are exempt from the user lock.**  An address an operator
  logged in from successfully (within ``known_for``) is not held by the user
  lock, so a flood against ``admin`` from elsewhere cannot lock the real admin
  out of the office.  The address lock still applies to it.
* A locked attempt is refused before the password is checked: no hashing
  work, and no way to keep guessing through a lock.  A success clears the
  counters of its address and user.  Counting restarts after ``window`` with
  no failure.

Every refusal is explainable: ``Lock.explain`` says which rule, how many
failures, and when to try again (the page shows it and sends
``Retry-After``); a lock starting is written to the audit log, and admins see
and can release current locks on ``/admin/logins`` or with ``mailwarden
status login list|release``.  State lives in the status database
(``login_failures``), so a restart does not reset an attacker's count.
"""

from __future__ import annotations

import enum
import ipaddress
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from mailwarden.web.status.db import StatusDB
from mailwarden.web.status.model import Clock, duration_words, from_db, opt_from_db, to_db
from mailwarden.web.status.settings import LoginSettings

_MINUTE = timedelta(minutes=1)


class Scope(enum.Enum):
    """What a throttle counts."""

    ADDRESS = "address"
    USER = "user"


def address_key(host: str) -> str:
    """The address a client is counted by: IPv4 as is, IPv6 by its /64.

    Anything that is not an IP address (a test client's ``testclient``) is
    counted by its text.
    """
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host[:100]
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is None:
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def client_address(peer: str, forwarded_for: str, trusted: Iterable[str]) -> str:
    """The client's address, looking through trusted reverse proxies.

    ``X-Forwarded-For`` is believed only when the peer is a trusted proxy; it
    is read from the right, skipping further trusted proxies, so a client
    cannot choose its own address by sending the header itself.

    Args:
        peer: the address of the TCP peer.
        forwarded_for: the ``X-Forwarded-For`` header ('' when absent).
        trusted: networks of the proxies in front of the status app.
    """
    networks = []
    for text in trusted:
        networks.append(ipaddress.ip_network(text, strict=False))

    def is_trusted(host: str) -> bool:
        try:
            ip = ipaddress.ip_address(host.strip())
        except ValueError:
            return False
        return any(ip in net for net in networks)

    if not networks or not is_trusted(peer):
        return peer
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        if not is_trusted(hop):
            return hop
    return peer


def _user_key(username: str) -> str:
    return username.strip().lower()[:64]


@dataclass(frozen=True, slots=True)
class Lock:
    """A refusal, with everything needed to explain it."""

    scope: Scope
    subject: str
    """The address (or /64) or user name that is locked."""
    failures: int
    until: datetime
    limit: int
    window_words: str

    def retry_after(self, now: datetime) -> int:
        """Seconds until the lock ends (at least 1), for ``Retry-After``."""
        return max(1, math.ceil((self.until - now).total_seconds()))

    def explain(self, now: datetime) -> str:
        """Words for the person at the login form."""
        wait = duration_words(self.until - now) if self.until - now >= _MINUTE else "a minute"
        if self.scope is Scope.ADDRESS:
            return (
                f"Too many failed logins from your address ({self.failures}; the limit is"
                f" {self.limit} within {self.window_words}). Try again in {wait}."
            )
        return (
            f"Too many failed logins for this user name from unfamiliar addresses"
            f" ({self.failures}; the limit is {self.limit} within {self.window_words})."
            f" Try again in {wait}, or from an address you have logged in from before."
        )


@dataclass(frozen=True, slots=True)
class ThrottleEntry:
    """One counted key, as admins see it."""

    key: str
    failures: int
    first_failure_at: datetime
    last_failure_at: datetime
    locked_until: datetime | None

    @property
    def scope(self) -> Scope:
        """Address or user."""
        return Scope(self.key.split(":", 1)[0])

    @property
    def subject(self) -> str:
        """The address or user name."""
        return self.key.split(":", 1)[1]


class LoginThrottle:
    """Counts failed admin logins and decides who has to wait.

    Args:
        db: the status database.
        clock: injected time source.
        settings: the limits.
    """

    def __init__(self, db: StatusDB, clock: Clock, settings: LoginSettings) -> None:
        self._db = db
        self._clock = clock
        self.settings = settings

    def _limit(self, scope: Scope) -> int:
        s = self.settings
        return s.address_failures if scope is Scope.ADDRESS else s.user_failures

    def _keys(self, address: str, username: str) -> list[tuple[Scope, str, str]]:
        addr = address_key(address)
        user = _user_key(username)
        return [
            (Scope.ADDRESS, addr, f"address:{addr}"),
            (Scope.USER, user, f"user:{user}"),
        ]

    def _known(self, address: str, username: str, now: datetime) -> bool:
        row = self._db.one(
            "SELECT last_success_at FROM login_known_addresses WHERE username = ? AND address = ?",
            (_user_key(username), address_key(address)),
        )
        return row is not None and from_db(row[0]) >= now - self.settings.known_for

    def check(self, address: str, username: str) -> Lock | None:
        """The lock holding this attempt back, or None to go ahead and verify.

        When both the address and the user are locked, the lock that ends
        last is returned.
        """
        now = self._clock()
        locks = []
        for scope, subject, key in self._keys(address, username):
            if scope is Scope.USER and self._known(address, username, now):
                continue
            row = self._db.one("SELECT * FROM login_failures WHERE key = ?", (key,))
            until = opt_from_db(row["locked_until"]) if row else None
            if row is not None and until is not None and until > now:
                locks.append(self._lock(scope, subject, row["failures"], until))
        return max(locks, key=lambda lock: lock.until, default=None)

    def _lock(self, scope: Scope, subject: str, failures: int, until: datetime) -> Lock:
        return Lock(
            scope,
            subject,
            failures,
            until,
            self._limit(scope),
            duration_words(self.settings.window),
        )

    def failed(self, address: str, username: str) -> list[Lock]:
        """Count a failed login.

        Returns:
            The locks this failure started or lengthened (empty if none).
        """
        now = self._clock()
        started = []
        with self._db.transaction() as conn:
            # Forget keys idle for a window whose lock has run out: the table stays
            # as small as the current attack.
            conn.execute(
                "DELETE FROM login_failures WHERE last_failure_at < ?"
                " AND (locked_until IS NULL OR locked_until <= ?)",
                (to_db(now - self.settings.window), to_db(now)),
            )
            for scope, subject, key in self._keys(address, username):
                row = conn.execute("SELECT * FROM login_failures WHERE key = ?", (key,)).fetchone()
                failures = (row["failures"] if row else 0) + 1
                first = row["first_failure_at"] if row else to_db(now)
                limit = self._limit(scope)
                until = opt_from_db(row["locked_until"]) if row else None
                if failures >= limit:
                    length = min(
                        self.settings.lockout * 2 ** (failures - limit), self.settings.lockout_max
                    )
                    until = now + length
                    started.append(self._lock(scope, subject, failures, until))
                conn.execute(
                    "INSERT INTO login_failures (key, failures, first_failure_at,"
                    " last_failure_at, locked_until) VALUES (?, ?, ?, ?, ?)"
                    " ON CONFLICT(key) DO UPDATE SET failures = excluded.failures,"
                    " last_failure_at = excluded.last_failure_at,"
                    " locked_until = excluded.locked_until",
                    (key, failures, first, to_db(now), to_db(until) if until else None),
                )
        if self._known(address, username, now):
            started = [lock for lock in started if lock.scope is Scope.ADDRESS]
        return started

    def succeeded(self, address: str, username: str) -> None:
        """Clear the counters of this address and user; remember the address."""
        now = self._clock()
        with self._db.transaction() as conn:
            for _, _, key in self._keys(address, username):
                conn.execute("DELETE FROM login_failures WHERE key = ?", (key,))
            conn.execute(
                "INSERT INTO login_known_addresses (username, address, last_success_at)"
                " VALUES (?, ?, ?) ON CONFLICT(username, address)"
                " DO UPDATE SET last_success_at = excluded.last_success_at",
                (_user_key(username), address_key(address), to_db(now)),
            )
            conn.execute(
                "DELETE FROM login_known_addresses WHERE last_success_at < ?",
                (to_db(now - self.settings.known_for),),
            )

    def entries(self) -> list[ThrottleEntry]:
        """Every counted key, locked ones first, then by latest failure."""
        now = to_db(self._clock())
        rows = self._db.all(
            "SELECT *, (locked_until IS NOT NULL AND locked_until > ?) AS locked"
            " FROM login_failures ORDER BY locked DESC, last_failure_at DESC",
            (now,),
        )
        return [
            ThrottleEntry(
                r["key"],
                r["failures"],
                from_db(r["first_failure_at"]),
                from_db(r["last_failure_at"]),
                opt_from_db(r["locked_until"]),
            )
            for r in rows
        ]

    def release(self, key: str) -> bool:
        """Forget one key (``address:203.0.113.7`` or ``user:alice``); whether it existed."""
        with self._db.transaction() as conn:
            return conn.execute("DELETE FROM login_failures WHERE key = ?", (key,)).rowcount > 0
