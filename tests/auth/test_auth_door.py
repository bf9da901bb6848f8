"""The auth door: one answer for bad users and bad passwords, bounded hashing."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mailwarden.auth.passwords import HashParams, PasswordHasher, PoolSaturated, VerifyPool
from mailwarden.auth.service import Accepted, AuthService, Peer, Rejected, Service, TryLater
from mailwarden.mail.address import Address
from mailwarden.store.base import AccountStatus
from mailwarden.store.sqlite import SqliteStore

FAST = HashParams(memory_kib=64, time_cost=1, parallelism=1)
PEER = Peer(ipaddress.ip_address("127.0.0.1"), Service.IMAP)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = await SqliteStore.open(tmp_path / "db.sqlite", tmp_path / "blobs")
    await s.add_domain("example.test")
    hasher = PasswordHasher(FAST)
    await s.add_account(Address.parse("demo@example.test"), hasher.hash("right password"))
    yield s
    await s.close()


async def test_accept_and_reject(store: SqliteStore) -> None:
    auth = AuthService(store, PasswordHasher(FAST), VerifyPool(2, 4))
    ok = await auth.verify("Demo@Example.test", "right password", PEER)
    assert isinstance(ok, Accepted) and ok.account.address == "demo@example.test"
    wrong = await auth.verify("demo@example.test", "wrong", PEER)
    unknown = await auth.verify("nobody@example.test", "right password", PEER)
    assert isinstance(wrong, Rejected) and isinstance(unknown, Rejected)
    assert type(wrong) is type(unknown)
    for user, pw in (("", "x"), ("x" * 400, "y"), ("demo@example.test", "p" * 2000)):
        assert isinstance(await auth.verify(user, pw, PEER), Rejected)


async def test_unknown_users_cost_a_hash_too(store: SqliteStore) -> None:
    calls: list[str] = []

    class Counting(PasswordHasher):
        def verify(self, stored_hash: str, password: str) -> bool:
            calls.append(stored_hash)
            return super().verify(stored_hash, password)

    hasher = Counting(FAST)
    auth = AuthService(store, hasher, VerifyPool(1, 1))
    await auth.verify("nobody@example.test", "whatever", PEER)
    assert calls == [hasher.dummy_hash]


async def test_suspended_accounts_are_rejected(store: SqliteStore) -> None:
    account = await store.find_account("demo@example.test")
    assert account is not None
    await store.set_status(account.id, AccountStatus.SUSPENDED)
    auth = AuthService(store, PasswordHasher(FAST), VerifyPool(1, 1))
    assert isinstance(await auth.verify("demo@example.test", "right password", PEER), Rejected)


async def test_rehash_when_parameters_change(store: SqliteStore) -> None:
    stronger = PasswordHasher(HashParams(memory_kib=128, time_cost=2, parallelism=1))
    auth = AuthService(store, stronger, VerifyPool(1, 1))
    before = await store.find_account("demo@example.test")
    assert before is not None and stronger.needs_rehash(before.password_hash)
    assert isinstance(await auth.verify("demo@example.test", "right password", PEER), Accepted)
    after = await store.find_account("demo@example.test")
    assert after is not None and not stronger.needs_rehash(after.password_hash)
    assert after.credential_version == before.credential_version + 1


async def test_saturated_pool_answers_try_later_at_once(store: SqliteStore) -> None:
    pool = VerifyPool(workers=1, max_pending=1)
    release = asyncio.Event()
    loop = asyncio.get_running_loop()

    def block() -> None:
        asyncio.run_coroutine_threadsafe(release.wait(), loop).result()

    holders = [asyncio.create_task(pool.run(block)) for _ in range(2)]
    await asyncio.sleep(0)
    with pytest.raises(PoolSaturated):
        await pool.run(lambda: None)
    auth = AuthService(store, PasswordHasher(FAST), pool)
    outcome = await auth.verify("demo@example.test", "right password", PEER)
    assert isinstance(outcome, TryLater) and outcome.retry_after > 0
    release.set()
    await asyncio.gather(*holders)
    assert isinstance(await auth.verify("demo@example.test", "right password", PEER), Accepted)
    pool.shutdown()
