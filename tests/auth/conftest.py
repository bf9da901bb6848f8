"""Shared pieces of the auth tests: a fake clock, a store with accounts, a counting hasher."""

from __future__ import annotations

import ipaddress
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from mailwarden.auth.passwords import HashParams, PasswordHasher, VerifyPool
from mailwarden.auth.policy import AuthPolicy
from mailwarden.auth.service import AuthService, Peer, Service
from mailwarden.mail.address import Address
from mailwarden.store.sqlite import SqliteStore
from mailwarden.store.sqlite_auth import SqliteAuthState

FAST = HashParams(memory_kib=64, time_cost=1, parallelism=1)
PASSWORD = "correct horse battery"
USERS = ("alice@example.test", "bob@example.test", "carol@example.test")
# Delays are timers the tests need not sit through; their values are tested apart.
QUICK = AuthPolicy(failure_delay_base=0.0, banned_delay=0.0)


class Clock:
    """Wall-clock time that moves only when told to."""

    def __init__(self, start: float = 1_750_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class CountingHasher(PasswordHasher):
    """argon2id that counts verifications and can be made slow (as real parameters are)."""

    def __init__(self, params: HashParams = FAST, cost: float = 0.0) -> None:
        super().__init__(params)
        self.verifications = 0
        self.cost = cost
        self._lock = threading.Lock()

    def verify(self, stored_hash: str, password: str) -> bool:
        with self._lock:
            self.verifications += 1
        if self.cost:
            time.sleep(self.cost)  # stands for the CPU time of real parameters
        return super().verify(stored_hash, password)


def peer(address: str, service: Service = Service.IMAP, token: str | None = None) -> Peer:
    """A peer from an address string."""
    return Peer(ipaddress.ip_address(address), service, device_token=token)


@dataclass
class World:
    """A store with three accounts and an auth service built on it."""

    store: SqliteStore
    hasher: CountingHasher
    clock: Clock
    tmp_path: Path
    services: list[AuthService]

    def auth(
        self,
        policy: AuthPolicy = QUICK,
        *,
        pool: VerifyPool | None = None,
        state: SqliteAuthState | None = None,
        **changes: float,
    ) -> AuthService:
        """A new auth service (closed by the fixture)."""
        service = AuthService(
            self.store,
            self.hasher,
            pool or VerifyPool(2, 16),
            policy=replace(policy, **changes),
            state_store=state,
            clock=self.clock,
        )
        self.services.append(service)
        return service

    async def account(self, address: str = USERS[0]):
        found = await self.store.find_account(address)
        assert found is not None
        return found


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    store = await SqliteStore.open(tmp_path / "db.sqlite", tmp_path / "blobs")
    hasher = CountingHasher()
    await store.add_domain("example.test")
    for user in USERS:
        await store.add_account(Address.parse(user), hasher.hash(PASSWORD))
    w = World(store, hasher, Clock(), tmp_path, [])
    try:
        yield w
    finally:
        for service in w.services:
            await service.close()
        await store.close()


@pytest.fixture
def make_state(world: World) -> Callable[[], object]:
    async def make() -> SqliteAuthState:
        return await SqliteAuthState.open(world.tmp_path / "db.sqlite")

    return make
