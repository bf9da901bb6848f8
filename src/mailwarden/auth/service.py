"""The one door every login goes through: IMAP, POP3, SMTP AUTH, webmail, admin API.

Theory of operation
-------------------
A protocol hands :meth:`AuthService.verify` what the client said (user name and
password) and who is asking (:class:`Peer`: address, protocol, TLS, device
token).  The answer is one of three outcomes, and each protocol turns it into
its own words:

* :class:`Accepted` — the account, and whether the login was cheap (cached);
* :class:`Rejected` — wrong user, wrong password, suspended: the peer always
  sees the same answer, and the same hashing work was done (no enumeration);
* :class:`TryLater` — not now (verification capacity saturated or the source is
  held back); IMAP ``NO [UNAVAILABLE]``, POP3 ``-ERR [SYS/TEMP]``, SMTP
  ``454 4.7.0``, HTTP 503 with ``Retry-After``.

Password hashing never runs on the event loop: it goes to the bounded
:class:`~mailwarden.auth.passwords.VerifyPool`.  The reason text of a rejection
is for the log only.
"""

from __future__ import annotations

import enum
import ipaddress
import logging
from dataclasses import dataclass, field

from mailwarden.auth.passwords import PasswordHasher, PoolSaturated, VerifyPool
from mailwarden.store.base import Account, AccountStatus, AdminStore

__all__ = [
    "Accepted",
    "AuthOutcome",
    "AuthService",
    "Peer",
    "Rejected",
    "Service",
    "TryLater",
]

log = logging.getLogger(__name__)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Service(enum.StrEnum):
    """Which front door a login came through."""

    IMAP = "imap"
    POP3 = "pop3"
    SMTP = "smtp"
    WEB = "web"
    API = "api"


@dataclass(frozen=True, slots=True)
class Peer:
    """Who is asking to log in."""

    address: IPAddress
    service: Service
    tls: bool = False
    device_token: str | None = None

    @classmethod
    def from_host(cls, host: str, service: Service, *, tls: bool = False) -> Peer:
        """Build from a socket's host string (``'127.0.0.1'``, ``'::1'``)."""
        return cls(ipaddress.ip_address(host.split("%", 1)[0]), service, tls)


@dataclass(frozen=True, slots=True)
class Accepted:
    """The credentials are good; ``account`` may use the service."""

    account: Account
    cached: bool = False


@dataclass(frozen=True, slots=True)
class Rejected:
    """Not accepted; ``reason`` is for the log, never for the peer."""

    reason: str = field(default="bad credentials")


@dataclass(frozen=True, slots=True)
class TryLater:
    """Not decided now; the client should retry after ``retry_after`` seconds."""

    retry_after: float = 5.0
    reason: str = "busy"


AuthOutcome = Accepted | Rejected | TryLater

# RFC 5321 and friends bound user names well below this; longer is abuse.
MAX_USERNAME = 320
MAX_PASSWORD = 1024


class AuthService:
    """Verifies credentials for every protocol."""

    def __init__(self, store: AdminStore, hasher: PasswordHasher, pool: VerifyPool) -> None:
        self._store = store
        self.hasher = hasher
        self.pool = pool

    async def verify(self, username: str, password: str, peer: Peer) -> AuthOutcome:
        """Check a user name and password.

        Returns:
            Accepted, Rejected or TryLater (see the module docstring).  Never raises
            for bad input: over-long or empty credentials are Rejected.
        """
        if not username or len(username) > MAX_USERNAME or len(password) > MAX_PASSWORD:
            return self._log(Rejected("malformed credentials"), username, peer)
        account = await self._store.find_account(username)
        stored = account.password_hash if account is not None else self.hasher.dummy_hash
        try:
            ok = await self.pool.run(lambda: self.hasher.verify(stored, password))
        except PoolSaturated:
            return self._log(TryLater(2.0, "verification capacity saturated"), username, peer)
        if account is None:
            return self._log(Rejected("unknown user"), username, peer)
        if not ok:
            return self._log(Rejected("wrong password"), username, peer)
        if account.status is not AccountStatus.ACTIVE:
            return self._log(Rejected("account suspended"), username, peer)
        if self.hasher.needs_rehash(account.password_hash):
            await self._rehash(account, password)
        return self._log(Accepted(account), username, peer)

    async def _rehash(self, account: Account, password: str) -> None:
        try:
            new_hash = await self.pool.run(lambda: self.hasher.hash(password))
        except PoolSaturated:
            return  # next login will do it
        await self._store.set_password_hash(account.id, new_hash)
        log.info("rehashed the password of %s with current parameters", account.address)

    async def hash_password(self, password: str) -> str:
        """Hash a new password on the pool (waits for capacity rather than failing)."""
        return await self.pool.run(lambda: self.hasher.hash(password), reserve=-(2**30))

    @staticmethod
    def _log(outcome: AuthOutcome, username: str, peer: Peer) -> AuthOutcome:
        user = username[:64].encode("unicode_escape").decode("ascii")
        match outcome:
            case Accepted():
                log.info("login ok user=%s peer=%s service=%s", user, peer.address, peer.service)
            case Rejected(reason=reason):
                log.info(
                    "login failed user=%s peer=%s service=%s reason=%r",
                    user,
                    peer.address,
                    peer.service,
                    reason,
                )
            case TryLater(reason=reason):
                log.warning(
                    "login deferred user=%s peer=%s service=%s reason=%r",
                    user,
                    peer.address,
                    peer.service,
                    reason,
                )
        return outcome
