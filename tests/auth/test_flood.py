"""A short, bounded login flood at the auth service: known clients keep getting in.

Two hundred attacking tasks from 256 addresses guess passwords of every
account for two seconds, while known clients log in every 20 ms and a few new
clients log in from clean networks.  Hashing is made slow on purpose (10 ms a
check on each of two workers, as real argon2id parameters are), so the
attack could saturate the pool many times over.  What must hold is behaviour,
not timing: every known login succeeds, no attacker gets in, new clients are
never told their right password is wrong, and the attack ends up refused
before hashing (bans, limits) rather than hashed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
import time
from pathlib import Path

from conftest import FAST, CountingHasher

from mailwarden.auth.passwords import PasswordHasher, VerifyPool
from mailwarden.auth.policy import AuthPolicy
from mailwarden.auth.service import Accepted, AuthService, Lane, Peer, Rejected, Service, TryLater
from mailwarden.mail.address import Address
from mailwarden.store.sqlite import SqliteStore

ACCOUNTS = 20
ATTACKERS = 200
ATTACK_SECONDS = 2.0
PASSWORD = "the right one"


def ip(text: str) -> Peer:
    return Peer(ipaddress.ip_address(text), Service.IMAP)


async def test_known_clients_keep_logging_in_through_a_flood(tmp_path: Path) -> None:
    store = await SqliteStore.open(tmp_path / "db.sqlite", tmp_path / "blobs")
    await store.add_domain("example.test")
    plain = PasswordHasher(FAST)
    users = [f"user{i}@example.test" for i in range(ACCOUNTS)]
    for user in users:
        await store.add_account(Address.parse(user), plain.hash(PASSWORD))
    hasher = CountingHasher(FAST, cost=0.01)
    policy = AuthPolicy(failure_delay_base=0.05, failure_delay_max=0.2, banned_delay=0.2)
    auth = AuthService(store, hasher, VerifyPool(2, 16), policy=policy)
    try:
        # Each user has logged in from home before.
        homes = {user: f"192.0.{i}.10" for i, user in enumerate(users)}
        for user, home in homes.items():
            assert isinstance(await auth.verify(user, PASSWORD, ip(home)), Accepted)

        stop = time.monotonic() + ATTACK_SECONDS
        attacker_outcomes: dict[str, int] = {"accepted": 0, "rejected": 0, "try_later": 0}
        rng = random.Random(5)

        async def attacker(n: int) -> None:
            address = f"10.0.{n % 4}.{n + 1}"  # 200 addresses in four /24s
            guess = 0
            while time.monotonic() < stop:
                guess += 1
                user = rng.choice(users)
                outcome = await auth.verify(user, f"guess {n} {guess}", ip(address))
                match outcome:
                    case Accepted():
                        attacker_outcomes["accepted"] += 1
                    case Rejected():
                        attacker_outcomes["rejected"] += 1
                    case TryLater():
                        attacker_outcomes["try_later"] += 1
                        await asyncio.sleep(0.01)

        known: list[tuple[type, Lane | None, float]] = []
        new: list[Accepted | Rejected | TryLater] = []

        async def known_clients() -> None:
            i = 0
            while time.monotonic() < stop:
                user = users[i % ACCOUNTS]
                started = time.monotonic()
                outcome = await auth.verify(user, PASSWORD, ip(homes[user]))
                lane = outcome.lane if isinstance(outcome, Accepted) else None
                known.append((type(outcome), lane, time.monotonic() - started))
                i += 1
                await asyncio.sleep(0.02)

        async def new_clients() -> None:
            for i in range(10):
                await asyncio.sleep(ATTACK_SECONDS / 12)
                user = users[(i * 7) % ACCOUNTS]
                new.append(await auth.verify(user, PASSWORD, ip(f"172.16.{i}.1")))

        async with asyncio.timeout(30):
            await asyncio.gather(
                *(attacker(n) for n in range(ATTACKERS)), known_clients(), new_clients()
            )

        assert attacker_outcomes["accepted"] == 0
        assert known and all(kind is Accepted and lane is Lane.KNOWN for kind, lane, _ in known)
        assert not any(isinstance(o, Rejected) for o in new)
        assert sum(isinstance(o, Accepted) for o in new) >= 5
        attempts = attacker_outcomes["rejected"] + attacker_outcomes["try_later"]
        # Most guesses were refused without a hash.
        assert hasher.verifications < attempts / 2
        print(
            f"\nflood: {attempts} attacker attempts, {hasher.verifications} hashes,"
            f" {len(auth.state.bans.active(time.time()))} bans, {len(known)} known logins"
            f" (max {max(t for *_, t in known) * 1000:.0f} ms),"
            f" new clients accepted {sum(isinstance(o, Accepted) for o in new)}/10,"
            f" outcomes {attacker_outcomes}"
        )
        assert auth.state.bans.active(time.time())
    finally:
        await auth.close()
        await store.close()
