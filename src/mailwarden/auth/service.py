"""The one door every login goes through: IMAP, POP3, SMTP AUTH, webmail, admin API.

Theory of operation
-------------------
A protocol hands :meth:`AuthService.verify` what the client said (user name and
password) and who is asking (:class:`Peer`: address, protocol, TLS, device
token).  The answer is one of three outcomes, and each protocol turns it into
its own words:

* :class:`Accepted` — the account, and whether the login was cheap (cached);
* :class:`Rejected` — wrong user, wrong password, banned, locked, suspended:
  the peer always sees the same answer, and an unknown user costs the same
  work and the same delay as a wrong password (no enumeration);
* :class:`TryLater` — not now (verification capacity saturated, the source
  has too many verifications in flight, or the account is held against
  unknown sources); IMAP ``NO [UNAVAILABLE]``, POP3 ``-ERR [SYS/TEMP]``, SMTP
  ``454 4.7.0``, HTTP 503 with ``Retry-After``.

A login is decided cheapest check first, so that a flood is refused before it
costs a hash:

1. **Lane.**  A request is in the *known* lane when its (account, client
   network) logged in successfully within ``known_ttl`` and has not itself
   failed ``known_failures`` times since, or when it carries a valid device
   token of that account (:meth:`issue_device_token`).  Everything else is in
   the *unknown* lane.
2. **Bans** (:mod:`.bans`): refused at once.  Known clients are exempt from the
   automatic bans others caused; admin bans apply to everyone; the allowlist
   is never banned.
3. **Unknown lane only:** an account held by too many distinct failures from
   unknown sources, or a source with ``source_pending`` verifications already
   in flight, is told to try later.  Nothing has been hashed yet.
4. **Account lock** (``auth lock``): refused.
5. **Success cache:** (account, credential version, epoch, keyed digest of
   the password) seen to succeed recently → accepted without argon2.  The key
   contains the credential version, so the entry dies with a password change,
   and the epoch, so it dies with ``auth revoke``.  **Failure cache:** the
   same pair failed recently → rejected without argon2 (the phone with an old
   password costs nothing and counts once).
6. **App passwords** (random, fast digest): accepted for IMAP, POP3 and SMTP,
   never for webmail or the API.
7. **argon2id** on the :class:`~.passwords.VerifyPool`, whose line is ordered:
   known lane first (and ``known_reserve`` slots only it may take), then
   unknown requests by *pressure* — how close their source is to a ban — so a
   new client from a clean network overtakes repeat guessers, and pushes the
   worst of them out of a full line.  A request that finds no room is shed
   with :class:`TryLater` at once.

Every failure is recorded as a keyed digest of (user, password) in sliding
windows per host, site and wide network (:mod:`.limits`), per account (unknown
lane) and per known pair, so only *distinct* wrong passwords count.  Reaching
a network's limit bans it (escalating, explained, stored for the admin tools).

**Delays** after failures are timers: the outcome carries ``delay`` and,
unless the caller passes ``wait=False`` to await it itself, :meth:`verify`
sleeps that long before returning — after the pool slot is given back, so a
delay holds no thread, process or slot, only the attacker's own connection.

**Pre-login connections** are limited per host, site, wide network and in
total by :meth:`admit_connection`, which also refuses banned sources at accept
time.

The reason texts of outcomes are for logs only; the peer sees the protocol's
fixed answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import ipaddress
import itertools
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from mailwarden.auth import metrics
from mailwarden.auth.bans import Ban
from mailwarden.auth.counters import Counters, MemoryCounters
from mailwarden.auth.limits import (
    ConnectionGate,
    IPAddress,
    IPNetwork,
    Scope,
    SourceCounts,
    ban_duration,
    failure_delay,
    known_network,
    pressure,
    scopes_of,
    shed_delay,
    tripped,
)
from mailwarden.auth.passwords import PasswordHasher, PoolSaturated, VerifyPool
from mailwarden.auth.persist import AuthStateStore, KnownClient, StatsSnapshot
from mailwarden.auth.policy import AuthPolicy
from mailwarden.auth.state import AuthState
from mailwarden.auth.stats import Rates, Session, SessionRegistry, TopOffenders
from mailwarden.auth.tokens import (
    DeviceTokens,
    Digests,
    app_password_digest,
    looks_like_app_password,
)
from mailwarden.store.base import Account, AccountStatus, AdminStore, StoreError

__all__ = [
    "Accepted",
    "Admission",
    "AuthOutcome",
    "AuthService",
    "Lane",
    "Peer",
    "Rejected",
    "Service",
    "TryLater",
]

log = logging.getLogger(__name__)

IPAddressType = ipaddress.IPv4Address | ipaddress.IPv6Address


class Service(enum.StrEnum):
    """Which front door a login came through."""

    IMAP = "imap"
    POP3 = "pop3"
    SMTP = "smtp"
    WEB = "web"
    API = "api"


# App passwords are for mail clients; the web and the API want the real password.
_APP_PASSWORD_SERVICES = frozenset({Service.IMAP, Service.POP3, Service.SMTP})


class Lane(enum.StrEnum):
    """Which lane a login was decided in."""

    KNOWN = "known"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Peer:
    """Who is asking to log in."""

    address: IPAddressType
    service: Service
    tls: bool = False
    device_token: str | None = None

    @classmethod
    def from_host(
        cls, host: str, service: Service, *, tls: bool = False, device_token: str | None = None
    ) -> Peer:
        """Build from a socket's host string (``'127.0.0.1'``, ``'::1'``)."""
        return cls(ipaddress.ip_address(host.split("%", 1)[0]), service, tls, device_token)


@dataclass(frozen=True, slots=True)
class Accepted:
    """The credentials are good; ``account`` may use the service.

    Attributes:
        account: the account logged in to.
        cached: decided by the success cache or an app password (no argon2).
        lane: the lane it was decided in.
        app_password: the id of the app password used, if one was.
    """

    account: Account
    cached: bool = False
    lane: Lane = Lane.UNKNOWN
    app_password: int | None = None


@dataclass(frozen=True, slots=True)
class Rejected:
    """Not accepted; ``reason`` is for the log, never for the peer.

    Attributes:
        reason: why, for the log.
        delay: seconds the answer is (or should be) held back (see ``wait``).
        rule: the rule that decided, when it was not the credentials
            (a ban's rule, ``lock``).
    """

    reason: str = field(default="bad credentials")
    delay: float = 0.0
    rule: str = ""


@dataclass(frozen=True, slots=True)
class TryLater:
    """Not decided now; the client should retry after ``retry_after`` seconds.

    Attributes:
        retry_after: seconds (HTTP ``Retry-After``).
        reason: why, for the log.
        delay: seconds the answer is (or should be) held back (see ``wait``).
    """

    retry_after: float = 5.0
    reason: str = "busy"
    delay: float = 0.0


AuthOutcome = Accepted | Rejected | TryLater

# RFC 5321 and friends bound user names well below this; longer is abuse.
MAX_USERNAME = 320
MAX_PASSWORD = 1024


class Admission:
    """The answer of :meth:`AuthService.admit_connection`: true when admitted.

    An admitted connection holds a pre-login slot until :meth:`release` (call
    it when the session logs in or closes, whichever is first; calling it
    again does nothing).
    """

    __slots__ = ("_released", "_service", "address", "refusal")

    def __init__(
        self, service: AuthService | None, address: IPAddress, refusal: Rejected | TryLater | None
    ) -> None:
        self._service = service
        self.address = address
        self.refusal = refusal
        self._released = refusal is not None

    def __bool__(self) -> bool:
        return self.refusal is None

    def release(self) -> None:
        """Give the pre-login slot back (idempotent)."""
        if not self._released and self._service is not None:
            self._released = True
            self._service.release_connection(self.address)


@dataclass
class _Attempt:
    """What one verification learned on its way (for counting and logging)."""

    username: str
    user_key: str
    peer: Peer
    address: IPAddress
    now: float
    lane: Lane = Lane.UNKNOWN
    scopes: tuple[tuple[Scope, IPNetwork], ...] = ()
    known_net: IPNetwork | None = None
    allowed: bool = False
    counts: SourceCounts = field(default_factory=SourceCounts)


def _unmapped(address: IPAddressType) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class AuthService:
    """Verifies credentials for every protocol, and decides before it hashes.

    Args:
        store: accounts (find by address, set a rehashed password).
        hasher: argon2id with the configured parameters.
        pool: the bounded hashing pool.
        policy: limits, delays, lifetimes.
        counters: failure counts, known clients and caches (in-process by default).
        state_store: durable bans, allowlist, locks, app passwords, audit and
            statistics; None keeps everything in memory (tests, tools).
        secret: the server secret that signs device tokens; None makes one
            for this process only.
        clock: wall-clock time in seconds (injected by tests).
        node: this node's name in published statistics.
    """

    def __init__(
        self,
        store: AdminStore,
        hasher: PasswordHasher,
        pool: VerifyPool,
        *,
        policy: AuthPolicy | None = None,
        counters: Counters | None = None,
        state_store: AuthStateStore | None = None,
        secret: bytes | None = None,
        clock: Callable[[], float] = time.time,
        node: str | None = None,
    ) -> None:
        self._store = store
        self.hasher = hasher
        self.pool = pool
        self.policy = policy or AuthPolicy()
        self.counters: Counters = counters or MemoryCounters()
        self.state_store = state_store
        self.state = AuthState()
        self.clock = clock
        self.node = node or f"{socket.gethostname()}:{os.getpid()}"
        self.digests = Digests()
        self.tokens = DeviceTokens(secret or os.urandom(32))
        self.gate = ConnectionGate(self.policy)
        self.sessions = SessionRegistry()
        self.rates = Rates()
        self.top = TopOffenders()
        self.started = clock()
        # Called with the service name at every login attempt (the traffic profile).
        self.on_attempt: Callable[[str], None] | None = None
        self._pending: dict[IPNetwork, int] = {}
        self._shed_seq = itertools.count()
        self._known_written: dict[tuple[int, IPNetwork], float] = {}
        self._known_unsaved: dict[tuple[int, IPNetwork], KnownClient] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._maintainer: asyncio.Task[None] | None = None
        metrics.POOL_WORKERS.set(pool.workers)

    # --- lifecycle ----------------------------------------------------------------

    async def start(self) -> None:
        """Load the durable state and start refreshing it and publishing statistics."""
        if self.state_store is not None:
            now = self.clock()
            self.state.apply(await self.state_store.changes_since(0, now))
            for ban in await self.state_store.ban_history(now - self.policy.ban_memory):
                starts = self.state.bans.history.setdefault(ban.network, [])
                if ban.since not in starts:
                    starts.append(ban.since)
            for client in await self.state_store.known_clients(now - self.policy.known_ttl):
                ttl = client.last_seen + self.policy.known_ttl - now
                value = f"{client.account_id}:{self.state.epoch(client.account_id)}"
                await self.counters.put(
                    self._known_key(client.user_key, client.network), value, now, ttl
                )
                self._known_written[(client.account_id, client.network)] = client.last_seen
        if self._maintainer is None:
            self._maintainer = asyncio.create_task(self._maintain(), name="auth-maintain")

    async def close(self) -> None:
        """Stop background work, save what is pending, shut the pool, close the state store."""
        if self._maintainer is not None:
            self._maintainer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._maintainer
            self._maintainer = None
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(StoreError):
            await self._save_known()
        await asyncio.to_thread(self.pool.shutdown)
        if self.state_store is not None:
            await self.state_store.close()

    async def flush(self) -> None:
        """Wait for background writes (bans) and save the known clients seen so far."""
        while self._tasks:
            await asyncio.gather(*tuple(self._tasks), return_exceptions=True)
        await self._save_known()

    async def _maintain(self) -> None:
        last_stats = -1e18
        while True:
            await asyncio.sleep(self.policy.refresh_interval)
            try:
                await self.refresh()
                now = self.clock()
                if now - last_stats >= self.policy.stats_interval:
                    last_stats = now
                    await self.counters.sweep(now)
                    self.state.bans.expire(now)
                    await self._save_known()
                    await self.publish_stats()
            except StoreError as exc:
                log.warning("auth: cannot refresh state: %s", exc)
            except Exception:
                log.exception("auth: maintenance failed")

    async def refresh(self) -> None:
        """Fold in what the admin tools (and other nodes) changed since the last look."""
        if self.state_store is None:
            return
        changes = await self.state_store.changes_since(self.state.seq, self.clock())
        for account_id in self.state.apply(changes):
            ended = self.sessions.revoke(account_id)
            log.info("auth: account %d revoked; ended %d session(s)", account_id, ended)
        metrics.BANS_ACTIVE.set(len(self.state.bans.table))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("auth: background write failed: %s", task.exception())

    # --- pre-login connections ----------------------------------------------------

    def admit_connection(self, peer: Peer | IPAddressType) -> Admission:
        """Decide at accept time whether a new connection may wait to log in.

        Banned sources are refused (``Rejected``), and so is a source whose
        host, site or wide network already has its share of unauthenticated
        connections open, or any source when the node's total is reached
        (``TryLater``).  An admitted connection must be released once:
        :meth:`Admission.release` or :meth:`release_connection`.
        """
        address = _unmapped(peer.address if isinstance(peer, Peer) else peer)
        now = self.clock()
        if self.state.allowed(address) is None:
            ban = self.state.bans.match(address, now)
            if ban is not None:
                _child(metrics.CONNECTIONS_REFUSED, "banned").inc()
                return Admission(self, address, Rejected("banned", 0.0, ban.rule))
        full = self.gate.admit(address)
        if full is not None:
            _child(metrics.CONNECTIONS_REFUSED, full.value).inc()
            log.warning("auth: pre-login connections of %s full at %s", address, full.value)
            return Admission(
                self,
                address,
                TryLater(self.policy.shed_retry_after, f"pre-login connections full ({full})"),
            )
        metrics.PRELOGIN_OPEN.set(self.gate.total)
        return Admission(self, address, None)

    def release_connection(self, peer: Peer | IPAddressType) -> None:
        """Give back the pre-login slot of an admitted connection (exactly once)."""
        address = _unmapped(peer.address if isinstance(peer, Peer) else peer)
        self.gate.release(address)
        metrics.PRELOGIN_OPEN.set(self.gate.total)

    # --- sessions and device tokens -----------------------------------------------

    def open_session(
        self, account: Account, peer: Peer, on_revoke: Callable[[], None] | None = None
    ) -> Session:
        """Register a logged-in session so ``auth sessions`` lists it and ``auth revoke`` ends it.

        Call :meth:`Session.close` (or use it as a context manager) when it ends.
        """
        return self.sessions.add(
            Session(
                account.id,
                account.address,
                str(peer.address),
                peer.service.value,
                self.clock(),
                on_revoke,
            )
        )

    def issue_device_token(self, account: Account) -> str:
        """A signed token for a webmail or API client that just logged in to ``account``.

        Presented later as :attr:`Peer.device_token`, it puts the client in the
        known lane for ``device_token_ttl``, until ``auth revoke``.
        """
        return self.tokens.issue(
            account.id, self.state.epoch(account.id), self.clock(), _user_key(account.address)
        )

    def _token_valid(self, token: str, user_key: str, now: float) -> bool:
        claim = self.tokens.check(token)
        return (
            claim is not None
            and claim.user_key == user_key
            and claim.epoch == self.state.epoch(claim.account_id)
            and claim.issued + self.policy.device_token_ttl > now
        )

    # --- the door -----------------------------------------------------------------

    async def verify(
        self, username: str, password: str, peer: Peer, *, wait: bool = True
    ) -> AuthOutcome:
        """Check a user name and password.

        Args:
            username: what the client sent.
            password: what the client sent (never logged, never stored).
            peer: who is asking.
            wait: sleep the outcome's ``delay`` before returning (the default).
                Pass False to get the outcome at once and ``await
                asyncio.sleep(outcome.delay)`` yourself before answering.

        Returns:
            Accepted, Rejected or TryLater (see the module docstring).  Never
            raises for bad input: over-long or empty credentials are Rejected.
        """
        started = time.perf_counter()
        if self.on_attempt is not None:
            self.on_attempt(peer.service)
        outcome, lane = await self._decide(username, password, peer)
        _child(metrics.LOGIN_SECONDS, lane.value, type(outcome).__name__.lower()).observe(
            time.perf_counter() - started
        )
        self._log(outcome, username, peer, lane)
        if wait and not isinstance(outcome, Accepted) and outcome.delay > 0:
            await asyncio.sleep(outcome.delay)
        return outcome

    async def _decide(self, username: str, password: str, peer: Peer) -> tuple[AuthOutcome, Lane]:
        now = self.clock()
        address = _unmapped(peer.address)
        service = peer.service.value
        self.rates.add("attempts", now)
        if not username or len(username) > MAX_USERNAME or len(password) > MAX_PASSWORD:
            _child(metrics.ATTEMPTS, service, Lane.UNKNOWN.value).inc()
            return self._fail(
                Rejected("malformed credentials"), service, now, "malformed"
            ), Lane.UNKNOWN
        attempt = _Attempt(username, _user_key(username), peer, address, now)
        attempt.scopes = scopes_of(address)
        attempt.known_net = known_network(address, self.policy)
        attempt.allowed = self.state.allowed(address) is not None
        attempt.lane = await self._lane(attempt)
        _child(metrics.ATTEMPTS, service, attempt.lane.value).inc()

        # 2. bans (known clients only answer to bans made by an operator)
        if not attempt.allowed:
            known = attempt.lane is Lane.KNOWN
            ban = self.state.bans.match(address, now, admin_only=known)
            if ban is not None:
                # `auth explain` gives the whole story; the log line stays cheap.
                outcome = Rejected(f"banned ({ban.network})", self.policy.banned_delay, ban.rule)
                return self._fail(outcome, service, now, "banned"), attempt.lane

        keys = [_source_key(net) for _, net in attempt.scopes]
        attempt.counts = SourceCounts(*await self.counters.count(keys, now, self.policy.window))
        delay = failure_delay(attempt.counts.host, self.policy)
        host_net = attempt.scopes[0][1]
        if attempt.lane is Lane.UNKNOWN:
            (sheds,) = await self.counters.count(
                ["sh:" + _net_text(host_net)], now, self.policy.shed_window
            )
            priority = pressure(attempt.counts, self.policy, sheds)

        # 3. the unknown lane's limits, still before any hashing
        if attempt.lane is Lane.UNKNOWN:
            (held,) = await self.counters.count(
                [_account_key(attempt.user_key)], now, self.policy.window
            )
            if held >= self.policy.account_failures:
                reason = f"account held: {held} distinct failures from unknown sources"
                later = TryLater(self.policy.account_hold_retry, reason, delay)
                return await self._shed(later, service, now, "account", host_net), attempt.lane
            if self._pending.get(host_net, 0) >= self.policy.source_pending:
                later = TryLater(
                    self.policy.shed_retry_after, "too many verifications from this source", delay
                )
                return await self._shed(later, service, now, "source", host_net), attempt.lane

            # Saturated: answer now, before the account lookup costs a database read.
            reserve = min(self.policy.known_reserve, self.pool.capacity // 4)
            if not self.pool.would_admit(reserve=reserve, priority=priority):
                later = TryLater(
                    self.policy.shed_retry_after, "verification capacity saturated", delay
                )
                return await self._shed(later, service, now, "pool", host_net), attempt.lane

        # 4. the account
        try:
            account = await self._store.find_account(username)
        except StoreError as exc:
            log.warning("auth: cannot look up accounts: %s", exc)
            later = TryLater(self.policy.shed_retry_after, "store unavailable")
            return await self._shed(later, service, now, "store"), attempt.lane
        if account is not None and (lock := self.state.lock(account.id)) is not None:
            reason = f"account locked: {lock.reason}" if lock.reason else "account locked"
            return self._fail(Rejected(reason, delay, "lock"), service, now, "locked"), attempt.lane

        # 5. caches
        digest = self.digests.of(attempt.user_key, password)
        version = account.credential_version if account is not None else 0
        subject = str(account.id) if account is not None else "u:" + attempt.user_key
        if account is not None:
            epoch = self.state.epoch(account.id)
            ok_key = f"ok:{account.id}:{version}:{epoch}:{digest}"
            if await self.counters.get(ok_key, now) is not None:
                if account.status is not AccountStatus.ACTIVE:
                    outcome = Rejected("account suspended")
                    return self._fail(outcome, service, now, "suspended"), attempt.lane
                accepted = await self._accepted(attempt, account, cached=True, path="cache")
                return accepted, attempt.lane
        no_key = f"no:{subject}:{version}:{digest}"
        if await self.counters.get(no_key, now) is not None:
            return await self._failed(attempt, digest, "wrong password (cached)"), attempt.lane

        # 6. app passwords
        if (
            account is not None
            and peer.service in _APP_PASSWORD_SERVICES
            and looks_like_app_password(password)
        ):
            app = self.state.apps.get(app_password_digest(password))
            if (
                app is not None
                and app.account_id == account.id
                and account.status is AccountStatus.ACTIVE
            ):
                accepted = await self._accepted(
                    attempt, account, cached=True, path="app_password", app_id=app.id
                )
                return accepted, attempt.lane

        # 7. argon2id on the pool
        stored = account.password_hash if account is not None else self.hasher.dummy_hash
        if attempt.lane is Lane.KNOWN:
            priority, reserve = -1.0, 0
        else:
            # A small pool cannot spare many slots; keep at least 3/4 for everyone.
            reserve = min(self.policy.known_reserve, self.pool.capacity // 4)
            self._pending[host_net] = self._pending.get(host_net, 0) + 1
        self._pool_gauges()
        try:
            ok = await self.pool.run(
                lambda: self.hasher.verify(stored, password), reserve=reserve, priority=priority
            )
        except PoolSaturated:
            later = TryLater(self.policy.shed_retry_after, "verification capacity saturated", delay)
            return await self._shed(later, service, now, "pool", host_net), attempt.lane
        finally:
            if attempt.lane is Lane.UNKNOWN:
                left = self._pending.get(host_net, 0) - 1
                if left > 0:
                    self._pending[host_net] = left
                else:
                    self._pending.pop(host_net, None)
            self._pool_gauges()
        now = attempt.now = self.clock()
        if account is None:
            await self.counters.put(no_key, "1", now, self.policy.failure_cache_ttl)
            return await self._failed(attempt, digest, "unknown user"), attempt.lane
        if not ok:
            await self.counters.put(no_key, "1", now, self.policy.failure_cache_ttl)
            return await self._failed(attempt, digest, "wrong password"), attempt.lane
        if account.status is not AccountStatus.ACTIVE:
            return self._fail(
                Rejected("account suspended"), service, now, "suspended"
            ), attempt.lane
        if self.hasher.needs_rehash(account.password_hash):
            account = await self._rehash(account, password)
            version = account.credential_version
        epoch = self.state.epoch(account.id)
        ok_key = f"ok:{account.id}:{version}:{epoch}:{digest}"
        await self.counters.put(ok_key, "1", now, self.policy.success_cache_ttl)
        return await self._accepted(attempt, account, cached=False, path="hash"), attempt.lane

    async def _lane(self, attempt: _Attempt) -> Lane:
        assert attempt.known_net is not None
        known = False
        token = attempt.peer.device_token
        if token and self._token_valid(token, attempt.user_key, attempt.now):
            known = True
        else:
            value = await self.counters.get(
                self._known_key(attempt.user_key, attempt.known_net), attempt.now
            )
            if value is not None:
                account_id, _, epoch = value.partition(":")
                known = epoch == str(self.state.epoch(int(account_id)))
        if not known:
            return Lane.UNKNOWN
        # A known pair that keeps failing is not the client we knew.
        (own,) = await self.counters.count(
            [self._known_fail_key(attempt.user_key, attempt.known_net)],
            attempt.now,
            self.policy.window,
        )
        return Lane.KNOWN if own < self.policy.known_failures else Lane.UNKNOWN

    async def _failed(self, attempt: _Attempt, digest: str, reason: str) -> Rejected:
        """Count a failed (user, password) pair everywhere it counts; maybe ban."""
        now, policy = attempt.now, self.policy
        counts = attempt.counts
        if not attempt.allowed:
            added = [
                await self.counters.add(_source_key(net), digest, now, policy.window)
                for _, net in attempt.scopes
            ]
            counts = SourceCounts(*added)
        if attempt.lane is Lane.UNKNOWN:
            await self.counters.add(_account_key(attempt.user_key), digest, now, policy.window)
        elif attempt.known_net is not None:
            await self.counters.add(
                self._known_fail_key(attempt.user_key, attempt.known_net),
                digest,
                now,
                policy.window,
            )
        self.top.add("addresses", str(attempt.address), now)
        self.top.add("networks", str(attempt.scopes[1][1]), now)
        self.top.add("accounts", attempt.user_key[:128], now)
        if not attempt.allowed and attempt.lane is Lane.UNKNOWN:
            for scope in tripped(counts, policy):
                network = dict(attempt.scopes)[scope]
                if not self.state.allowed_network(network):
                    await self._ban(network, scope, counts, now)
        outcome = Rejected(reason, failure_delay(counts.host, policy))
        return self._fail(outcome, attempt.peer.service.value, now, "credentials")

    async def _ban(
        self, network: IPNetwork, scope: Scope, counts: SourceCounts, now: float
    ) -> None:
        if self.state.bans.get(network, now) is not None:
            return
        policy = self.policy
        earlier = self.state.bans.earlier(network, now, policy.ban_memory)
        limit = {Scope.HOST: policy.host_failures, Scope.SITE: policy.site_failures}
        ban = Ban(
            network=network,
            since=now,
            until=now + ban_duration(earlier, policy),
            rule=f"{scope.value}-failures",
            reason=(
                f"{counts.of(scope)} distinct failed logins within {policy.window:g} s"
                f" (limit {limit.get(scope, policy.wide_failures)})"
            ),
            level=earlier,
            counts=(("host", counts.host), ("site", counts.site), ("wide", counts.wide)),
        )
        self.state.bans.add(ban)
        # The ban is the consequence; start the network's count afresh for when it ends.
        await self.counters.delete(_source_key(network))
        _child(metrics.BANS_MADE, ban.rule).inc()
        metrics.BANS_ACTIVE.set(len(self.state.bans.table))
        log.warning("auth: %s", ban.explain())
        if self.state_store is not None:
            self._spawn(self._store_ban(ban))

    async def _store_ban(self, ban: Ban) -> None:
        assert self.state_store is not None
        stored = await self.state_store.add_ban(ban)
        self.state.add_ban(stored)

    async def _accepted(
        self,
        attempt: _Attempt,
        account: Account,
        *,
        cached: bool,
        path: str,
        app_id: int | None = None,
    ) -> Accepted:
        now = attempt.now
        service = attempt.peer.service.value
        if attempt.known_net is not None:
            await self._remember_known(account, attempt.user_key, attempt.known_net, now)
        self.rates.add("successes", now)
        _child(metrics.SUCCESSES, service, attempt.lane.value, path).inc()
        return Accepted(account, cached, attempt.lane, app_id)

    async def _remember_known(
        self, account: Account, user_key: str, net: IPNetwork, now: float
    ) -> None:
        value = f"{account.id}:{self.state.epoch(account.id)}"
        await self.counters.put(self._known_key(user_key, net), value, now, self.policy.known_ttl)
        pair = (account.id, net)
        if now - self._known_written.get(pair, -1e18) > 86400:
            self._known_written[pair] = now
            self._known_unsaved[pair] = KnownClient(account.id, user_key, net, now)

    async def _save_known(self) -> None:
        if self.state_store is None or not self._known_unsaved:
            self._known_unsaved.clear()
            return
        batch = list(self._known_unsaved.values())
        self._known_unsaved.clear()
        await self.state_store.remember_known(batch)

    def _fail(self, outcome: Rejected, service: str, now: float, reason: str) -> Rejected:
        self.rates.add("failures", now)
        _child(metrics.FAILURES, service, reason).inc()
        return outcome

    async def _shed(
        self,
        outcome: TryLater,
        service: str,
        now: float,
        reason: str,
        host: IPNetwork | None = None,
    ) -> TryLater:
        self.rates.add("sheds", now)
        _child(metrics.SHEDS, service, reason).inc()
        if host is None:
            return outcome
        # The first "try later" is immediate; a source that keeps asking at
        # once is answered more and more slowly (a timer, not a slot).
        recent = await self.counters.add(
            "sh:" + _net_text(host), str(next(self._shed_seq)), now, self.policy.shed_window
        )
        delay = shed_delay(recent, self.policy)
        return replace(outcome, delay=delay) if delay > outcome.delay else outcome

    def _pool_gauges(self) -> None:
        metrics.QUEUE_DEPTH.set(self.pool.waiting)
        metrics.POOL_RUNNING.set(self.pool.running)

    async def _rehash(self, account: Account, password: str) -> Account:
        try:
            new_hash = await self.pool.run(lambda: self.hasher.hash(password), priority=-1.0)
        except PoolSaturated:
            return account  # next login will do it
        updated = await self._store.set_password_hash(account.id, new_hash)
        log.info("rehashed the password of %s with current parameters", account.address)
        return updated

    async def hash_password(self, password: str) -> str:
        """Hash a new password on the pool (waits for capacity rather than failing)."""
        return await self.pool.run(lambda: self.hasher.hash(password), reserve=-(2**30))

    # --- explanations and statistics ----------------------------------------------

    async def explain(self, address: IPAddressType) -> dict[str, Any]:
        """Why this node treats ``address`` as it does: bans, allowlist, counts, connections."""
        address = _unmapped(address)
        now = self.clock()
        scopes = scopes_of(address)
        counts = await self.counters.count(
            [_source_key(net) for _, net in scopes], now, self.policy.window
        )
        ban = self.state.bans.match(address, now)
        allowed = self.state.allowed(address)
        limits = {
            Scope.HOST: self.policy.host_failures,
            Scope.SITE: self.policy.site_failures,
            Scope.WIDE: self.policy.wide_failures,
        }
        return {
            "address": str(address),
            "allowlisted": None if allowed is None else str(allowed.network),
            "ban": None if ban is None else ban.explain(),
            "failures": {
                f"{scope.value} {net}": {"count": n, "limit": limits[scope]}
                for (scope, net), n in zip(scopes, counts, strict=True)
            },
            "prelogin_connections": self.gate.count(net for _, net in scopes),
            "next_failure_delay": failure_delay(counts[0] + 1, self.policy),
        }

    def snapshot(self) -> dict[str, Any]:
        """Live statistics as plain data (what ``auth status`` shows)."""
        now = self.clock()
        rates = {
            event: {
                "per_s_10s": round(self.rates.per_second(event, now, 10), 2),
                "per_s_60s": round(self.rates.per_second(event, now, 59), 2),
                "total": self.rates.totals[event],
            }
            for event in ("attempts", "successes", "failures", "sheds")
        }
        return {
            "node": self.node,
            "at": now,
            "started": self.started,
            "rates": rates,
            "pool": {
                "workers": self.pool.workers,
                "running": self.pool.running,
                "waiting": self.pool.waiting,
                "capacity": self.pool.capacity,
                "evicted": self.pool.evicted,
            },
            "prelogin_connections": self.gate.total,
            "bans_active": len(self.state.bans.active(now)),
            "top": {
                kind: self.top.top(kind, now, 10) for kind in ("addresses", "networks", "accounts")
            },
            "sessions": [s.as_dict() for s in self.sessions.all(10_000)],
        }

    async def publish_stats(self) -> None:
        """Write this node's snapshot where ``auth status`` reads it."""
        import json

        data = self.snapshot()
        self._pool_gauges()
        metrics.BANS_ACTIVE.set(data["bans_active"])
        if self.state_store is not None:
            await self.state_store.publish_stats(
                StatsSnapshot(self.node, data["at"], json.dumps(data))
            )

    # --- keys and logs ----------------------------------------------------------------

    @staticmethod
    def _known_key(user_key: str, net: IPNetwork) -> str:
        return f"kn:{user_key}:{_net_text(net)}"

    @staticmethod
    def _known_fail_key(user_key: str, net: IPNetwork) -> str:
        return f"kf:{user_key}:{_net_text(net)}"

    @staticmethod
    def _log(outcome: AuthOutcome, username: str, peer: Peer, lane: Lane) -> None:
        user = username[:64].encode("unicode_escape").decode("ascii")
        match outcome:
            case Accepted(cached=cached):
                log.info(
                    "login ok user=%s peer=%s service=%s lane=%s cached=%s",
                    user,
                    peer.address,
                    peer.service,
                    lane,
                    cached,
                )
            case Rejected(reason=reason, delay=delay):
                log.info(
                    "login failed user=%s peer=%s service=%s lane=%s reason=%r delay=%.1f",
                    user,
                    peer.address,
                    peer.service,
                    lane,
                    reason,
                    delay,
                )
            case TryLater(reason=reason):
                log.info(
                    "login deferred user=%s peer=%s service=%s lane=%s reason=%r",
                    user,
                    peer.address,
                    peer.service,
                    lane,
                    reason,
                )


def _user_key(username: str) -> str:
    """The form of a user name that counts and known clients are keyed by."""
    return username.strip().casefold()


@functools.lru_cache(maxsize=65536)
def _net_text(network: IPNetwork) -> str:
    return str(network)


def _source_key(network: IPNetwork) -> str:
    return "fs:" + _net_text(network)


_children: dict[tuple[int, tuple[str, ...]], Any] = {}


def _child(metric: Any, *labels: str) -> Any:
    """``metric.labels(*labels)``, remembered (the lookup costs microseconds)."""
    key = (id(metric), labels)
    child = _children.get(key)
    if child is None:
        child = _children[key] = metric.labels(*labels)
    return child


def _account_key(user_key: str) -> str:
    return f"fa:{user_key}"
