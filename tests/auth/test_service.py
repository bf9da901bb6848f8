"""The auth door's mechanisms, each on its own, with a fake clock and no sleeps."""

from __future__ import annotations

import asyncio
import ipaddress

from conftest import PASSWORD, QUICK, USERS, World, peer
from prometheus_client import REGISTRY

from mailwarden.auth.passwords import VerifyPool
from mailwarden.auth.policy import AuthPolicy
from mailwarden.auth.service import Accepted, Lane, Rejected, Service, TryLater
from mailwarden.store.base import AccountStatus

ALICE = USERS[0]


async def fail(auth, address: str, user: str = ALICE, password: str = "wrong", **kw):
    return await auth.verify(user, password, peer(address, **kw))


async def test_host_limit_bans_after_distinct_failures_only(world: World) -> None:
    auth = world.auth(host_failures=3)
    # The same wrong password again and again counts once (and costs one hash).
    for _ in range(10):
        assert isinstance(await fail(auth, "198.51.100.7"), Rejected)
    assert world.hasher.verifications == 1
    assert auth.state.bans.match(ipaddress.ip_address("198.51.100.7"), world.clock()) is None
    for n in range(2):
        await fail(auth, "198.51.100.7", password=f"guess {n}")
    ban = auth.state.bans.match(ipaddress.ip_address("198.51.100.7"), world.clock())
    assert ban is not None and str(ban.network) == "198.51.100.7/32"
    assert ban.rule == "host-failures" and dict(ban.counts)["host"] == 3
    # Banned: refused before any hashing, even with the right password.
    before = world.hasher.verifications
    outcome = await auth.verify(ALICE, PASSWORD, peer("198.51.100.7"))
    assert isinstance(outcome, Rejected) and outcome.rule == "host-failures"
    assert world.hasher.verifications == before
    # A neighbour is not affected.
    assert isinstance(await auth.verify(ALICE, PASSWORD, peer("198.51.100.8")), Accepted)


async def test_site_and_wide_limits_ban_networks(world: World) -> None:
    auth = world.auth(host_failures=100, site_failures=4, wide_failures=6, account_failures=100)
    for i in range(4):
        await fail(auth, f"203.0.113.{i + 1}", password=f"p{i}")
    site = auth.state.bans.match(ipaddress.ip_address("203.0.113.200"), world.clock())
    assert site is not None and str(site.network) == "203.0.113.0/24"
    for i in range(2):
        await fail(auth, f"203.0.{i + 1}.9", password=f"q{i}")
    wide = auth.state.bans.match(ipaddress.ip_address("203.0.77.1"), world.clock())
    assert wide is not None and str(wide.network) == "203.0.0.0/16" and wide.rule == "wide-failures"


async def test_ipv6_counts_a_64_as_one_host(world: World) -> None:
    auth = world.auth(host_failures=2)
    await fail(auth, "2001:db8:0:1::1", password="a")
    await fail(auth, "2001:db8:0:1::2", password="b")
    ban = auth.state.bans.match(ipaddress.ip_address("2001:db8:0:1::99"), world.clock())
    assert ban is not None and str(ban.network) == "2001:db8:0:1::/64"


async def test_bans_expire_and_escalate(world: World) -> None:
    auth = world.auth(host_failures=2, ban_base=100.0, ban_factor=3.0)
    address = ipaddress.ip_address("192.0.2.50")
    for n in range(2):
        await fail(auth, str(address), password=f"x{n}")
    first = auth.state.bans.match(address, world.clock())
    assert first is not None and first.until == first.since + 100 and first.level == 0
    world.clock.advance(101)
    assert auth.state.bans.match(address, world.clock()) is None
    assert isinstance(await auth.verify(USERS[1], PASSWORD, peer(str(address))), Accepted)
    for n in range(2):
        await fail(auth, str(address), password=f"y{n}")
    second = auth.state.bans.match(address, world.clock())
    assert second is not None and second.level == 1 and second.until == second.since + 300


async def test_allowlisted_networks_are_never_banned(world: World) -> None:
    from mailwarden.auth.bans import AllowEntry

    auth = world.auth(host_failures=2, site_failures=2, wide_failures=2)
    auth.state.allow.set(
        ipaddress.ip_network("10.0.0.0/8"), AllowEntry(ipaddress.ip_network("10.0.0.0/8"))
    )
    for n in range(5):
        await fail(auth, "10.1.2.3", password=f"z{n}")
    assert auth.state.bans.active(world.clock()) == []
    assert isinstance(await auth.verify(ALICE, PASSWORD, peer("10.1.2.3")), Accepted)


async def test_account_limit_holds_unknown_sources_but_not_known_clients(world: World) -> None:
    auth = world.auth(account_failures=3, host_failures=100, site_failures=100, wide_failures=100)
    # Alice logs in from home: her (account, /24) becomes known.
    home = "192.0.2.10"
    ok = await auth.verify(ALICE, PASSWORD, peer(home))
    assert isinstance(ok, Accepted) and ok.lane is Lane.UNKNOWN
    # Attackers from all over guess her password.
    for n in range(3):
        await fail(auth, f"198.51.{n}.1", password=f"guess{n}")
    held = await auth.verify(ALICE, PASSWORD, peer("203.0.113.5"))
    assert isinstance(held, TryLater) and "held" in held.reason
    # The same answer for an unknown user held the same way (no enumeration).
    for n in range(3):
        await fail(auth, f"198.51.{n}.1", user="ghost@example.test", password=f"guess{n}")
    ghost = await auth.verify("ghost@example.test", PASSWORD, peer("203.0.113.5"))
    assert isinstance(ghost, TryLater) and ghost.retry_after == held.retry_after
    # Her home client is in the known lane and is not held.
    again = await auth.verify(ALICE, PASSWORD, peer("192.0.2.99"))
    assert isinstance(again, Accepted) and again.lane is Lane.KNOWN
    # Bob is not affected.
    assert isinstance(await auth.verify(USERS[1], PASSWORD, peer("203.0.113.5")), Accepted)


async def test_known_lane_survives_an_attack_on_its_account_and_network(world: World) -> None:
    auth = world.auth(host_failures=3, site_failures=5, account_failures=100)
    office = "192.0.2.20"
    assert isinstance(await auth.verify(ALICE, PASSWORD, peer(office)), Accepted)
    # A guesser in the same office /24 gets the /24 banned...
    for n in range(5):
        await fail(auth, f"192.0.2.{30 + n % 2}", user=USERS[2], password=f"g{n}")
    assert auth.state.bans.match(ipaddress.ip_address(office), world.clock()) is not None
    # ...a stranger there is refused, Alice's known client is not.
    assert isinstance(await auth.verify(USERS[1], PASSWORD, peer("192.0.2.21")), Rejected)
    known = await auth.verify(ALICE, PASSWORD, peer(office))
    assert isinstance(known, Accepted) and known.lane is Lane.KNOWN


async def test_admin_bans_apply_to_known_clients_too(world: World) -> None:
    from mailwarden.auth.bans import Ban

    auth = world.auth()
    assert isinstance(await auth.verify(ALICE, PASSWORD, peer("192.0.2.20")), Accepted)
    auth.state.bans.add(Ban(ipaddress.ip_network("192.0.2.0/24"), world.clock(), None, "admin"))
    outcome = await auth.verify(ALICE, PASSWORD, peer("192.0.2.20"))
    assert isinstance(outcome, Rejected) and outcome.rule == "admin"


async def test_a_known_pair_that_keeps_failing_loses_its_lane(world: World) -> None:
    auth = world.auth(known_failures=2, host_failures=100)
    assert isinstance(await auth.verify(ALICE, PASSWORD, peer("192.0.2.20")), Accepted)
    for n in range(2):
        await fail(auth, "192.0.2.21", password=f"k{n}")
    outcome = await auth.verify(ALICE, PASSWORD, peer("192.0.2.20"))
    assert isinstance(outcome, Accepted) and outcome.lane is Lane.UNKNOWN


async def test_success_cache_spares_the_hash_and_dies_with_the_password(world: World) -> None:
    auth = world.auth()
    first = await auth.verify(ALICE, PASSWORD, peer("192.0.2.1"))
    assert isinstance(first, Accepted) and not first.cached
    hashes = world.hasher.verifications
    again = await auth.verify(ALICE, PASSWORD, peer("192.0.2.1"))
    assert isinstance(again, Accepted) and again.cached
    assert world.hasher.verifications == hashes
    # A wrong password is never served from the cache.
    assert isinstance(await fail(auth, "192.0.2.1"), Rejected)
    # The password changes: the old one is refused (after a full check).
    account = await world.account()
    await world.store.set_password_hash(account.id, world.hasher.hash("new password!"))
    hashes = world.hasher.verifications
    assert isinstance(await auth.verify(ALICE, PASSWORD, peer("192.0.2.1")), Rejected)
    assert world.hasher.verifications == hashes + 1
    assert isinstance(await auth.verify(ALICE, "new password!", peer("192.0.2.1")), Accepted)


async def test_suspension_wins_over_the_cache(world: World) -> None:
    auth = world.auth()
    assert isinstance(await auth.verify(ALICE, PASSWORD, peer("192.0.2.1")), Accepted)
    account = await world.account()
    await world.store.set_status(account.id, AccountStatus.SUSPENDED)
    assert isinstance(await auth.verify(ALICE, PASSWORD, peer("192.0.2.1")), Rejected)


async def test_unknown_users_get_the_same_answer_work_and_delay(world: World) -> None:
    policy = AuthPolicy(failure_delay_base=1.0)
    outcomes = []
    for user in (ALICE, "nobody@example.test"):
        auth = world.auth(policy)
        before = world.hasher.verifications
        for n in range(3):
            outcomes.append(
                (user, await auth.verify(user, f"w{n}", peer("192.0.2.77"), wait=False))
            )
        assert world.hasher.verifications - before == 3
    mine = [(type(o), o.delay, o.rule) for u, o in outcomes if u == ALICE]
    theirs = [(type(o), o.delay, o.rule) for u, o in outcomes if u != ALICE]
    assert mine == theirs == [(Rejected, 0.0, ""), (Rejected, 1.0, ""), (Rejected, 2.0, "")]


async def test_delays_are_timers_after_the_slot_is_given_back(world: World) -> None:
    pool = VerifyPool(1, 2)
    auth = world.auth(AuthPolicy(failure_delay_base=0.05), pool=pool)
    await fail(auth, "192.0.2.5", password="a")
    slow = asyncio.create_task(fail(auth, "192.0.2.5", password="b"))
    for _ in range(50):
        await asyncio.sleep(0.01)
        if world.hasher.verifications == 2 and pool.in_flight == 0:
            break
    # The second failure is hashed and the slot is free while its answer waits.
    assert world.hasher.verifications == 2 and pool.in_flight == 0
    outcome = await slow
    assert isinstance(outcome, Rejected) and outcome.delay == 0.05


async def test_app_passwords_work_for_mail_but_not_for_webmail(world: World) -> None:
    from mailwarden.auth.persist import AppPassword
    from mailwarden.auth.tokens import app_password_digest, generate_app_password

    auth = world.auth()
    account = await world.account()
    secret = generate_app_password()
    app = AppPassword(9, account.id, "phone", app_password_digest(secret), 0.0)
    auth.state.apps[app.digest] = app
    for service in (Service.IMAP, Service.POP3, Service.SMTP):
        outcome = await auth.verify(ALICE, secret, peer("192.0.2.1", service))
        assert isinstance(outcome, Accepted) and outcome.app_password == 9
    assert world.hasher.verifications == 0  # no argon2 for app passwords
    assert isinstance(await auth.verify(ALICE, secret, peer("192.0.2.1", Service.WEB)), Rejected)
    # Another account's app password does not open this one.
    assert isinstance(await auth.verify(USERS[1], secret, peer("192.0.2.1")), Rejected)


async def test_device_tokens_put_a_client_in_the_known_lane(world: World) -> None:
    auth = world.auth(account_failures=1)
    account = await world.account()
    token = auth.issue_device_token(account)
    await fail(auth, "198.51.100.1")  # holds the account for unknown sources
    stranger = await auth.verify(ALICE, PASSWORD, peer("203.0.113.9", Service.WEB))
    assert isinstance(stranger, TryLater)
    device = await auth.verify(ALICE, PASSWORD, peer("203.0.113.9", Service.WEB, token))
    assert isinstance(device, Accepted) and device.lane is Lane.KNOWN
    # A token for another user, or a forged one, is no pass.
    bob_token = auth.issue_device_token(await world.account(USERS[1]))
    for bad in (bob_token, token[:-2] + "xx"):
        outcome = await auth.verify(ALICE, PASSWORD, peer("203.0.114.9", Service.WEB, bad))
        assert isinstance(outcome, TryLater)
    # Tokens expire (the failure that held the account has left the window too).
    world.clock.advance(auth.policy.device_token_ttl + 1)
    late = await auth.verify(ALICE, PASSWORD, peer("203.0.115.9", Service.WEB, token))
    assert isinstance(late, Accepted) and late.lane is Lane.UNKNOWN


async def test_locked_accounts_are_refused_without_hashing(world: World) -> None:
    from mailwarden.auth.persist import AccountFlags

    auth = world.auth()
    account = await world.account()
    auth.state.flags[account.id] = AccountFlags(account.id, locked=True, reason="stolen laptop")
    outcome = await auth.verify(ALICE, PASSWORD, peer("192.0.2.1"))
    assert isinstance(outcome, Rejected) and outcome.rule == "lock"
    assert world.hasher.verifications == 0


async def test_per_source_verifications_in_flight_are_bounded(world: World) -> None:
    auth = world.auth(source_pending=1)
    host = ipaddress.ip_network("192.0.2.1/32")
    auth._pending[host] = 1  # one verification of this host is running
    outcome = await auth.verify(ALICE, PASSWORD, peer("192.0.2.1"))
    assert isinstance(outcome, TryLater) and "this source" in outcome.reason
    assert isinstance(await auth.verify(ALICE, PASSWORD, peer("192.0.2.2")), Accepted)


async def test_saturation_sheds_the_unknown_lane_and_serves_the_known(world: World) -> None:
    import threading

    pool = VerifyPool(1, 3)  # capacity 4: the unknown lane may hold 3
    auth = world.auth(pool=pool)
    # Bob's office has logged in before; then the password changed cache-wise by a new client.
    assert isinstance(await auth.verify(USERS[1], PASSWORD, peer("192.0.2.40")), Accepted)
    gate = threading.Event()
    blocking = [asyncio.create_task(pool.run(lambda: gate.wait(10), reserve=1)) for _ in range(3)]
    await asyncio.sleep(0)
    shed = await auth.verify(ALICE, PASSWORD, peer("203.0.113.1"))
    assert isinstance(shed, TryLater) and "saturated" in shed.reason and shed.retry_after > 0
    known = asyncio.create_task(auth.verify(USERS[1], "wrong, needs a hash", peer("192.0.2.40")))
    await asyncio.sleep(0.05)
    assert not known.done() and pool.in_flight == 4  # waiting in line, not shed
    gate.set()
    await asyncio.gather(*blocking)
    assert isinstance(await known, Rejected)


async def test_a_source_that_keeps_asking_after_a_shed_is_slowed(world: World) -> None:
    auth = world.auth(source_pending=0)  # every unknown request is shed
    delays = [
        (await auth.verify(ALICE, PASSWORD, peer("192.0.2.1"), wait=False)).delay for _ in range(3)
    ]
    assert delays == [0.0, 0.25, 0.5]
    other = await auth.verify(ALICE, PASSWORD, peer("192.0.2.2"), wait=False)
    assert isinstance(other, TryLater) and other.delay == 0.0


async def test_admit_connection_limits_and_refuses_banned_sources(world: World) -> None:
    from mailwarden.auth.bans import Ban

    auth = world.auth(prelogin_host=2)
    first = auth.admit_connection(peer("192.0.2.1"))
    second = auth.admit_connection(ipaddress.ip_address("192.0.2.1"))
    assert first and second
    third = auth.admit_connection(peer("192.0.2.1"))
    assert not third and isinstance(third.refusal, TryLater)
    first.release()
    first.release()  # idempotent
    fourth = auth.admit_connection(peer("192.0.2.1"))
    assert fourth
    auth.state.bans.add(Ban(ipaddress.ip_network("198.51.100.0/24"), world.clock(), None, "admin"))
    banned = auth.admit_connection(peer("198.51.100.3"))
    assert not banned and isinstance(banned.refusal, Rejected)
    banned.release()  # nothing to give back
    second.release()
    fourth.release()
    assert auth.gate.total == 0


async def test_explain_says_why(world: World) -> None:
    auth = world.auth(host_failures=2)
    for n in range(2):
        await fail(auth, "192.0.2.9", password=f"e{n}")
    info = await auth.explain(ipaddress.ip_address("192.0.2.9"))
    assert "host-failures" in info["ban"] and info["allowlisted"] is None
    assert set(info["failures"]) == {"host 192.0.2.9/32", "site 192.0.2.0/24", "wide 192.0.0.0/16"}
    assert info["failures"]["site 192.0.2.0/24"] == {"count": 2, "limit": 30}


async def test_malformed_credentials_are_rejected_cheaply(world: World) -> None:
    auth = world.auth()
    for user, password in (("", "x"), ("x" * 400, "y"), (ALICE, "p" * 2000)):
        assert isinstance(await auth.verify(user, password, peer("192.0.2.1")), Rejected)
    assert world.hasher.verifications == 0


async def test_revoke_ends_sessions_and_voids_the_known_lane_and_cache(world: World) -> None:
    from mailwarden.auth.persist import AccountFlags

    auth = world.auth()
    account = await world.account()
    assert isinstance(await auth.verify(ALICE, PASSWORD, peer("192.0.2.1")), Accepted)
    token = auth.issue_device_token(account)
    ended: list[str] = []
    session = auth.open_session(account, peer("192.0.2.1"), lambda: ended.append("bye"))
    assert [s.id for s in auth.sessions.of(account.id)] == [session.id]
    from mailwarden.auth.persist import Changes

    auth.state.flags[account.id] = AccountFlags(account.id)
    revoked = auth.state.apply(Changes(seq=1, flags=[AccountFlags(account.id, epoch=1)]))
    for account_id in revoked:
        auth.sessions.revoke(account_id)
    assert ended == ["bye"] and auth.sessions.of(account.id) == []
    outcome = await auth.verify(ALICE, PASSWORD, peer("192.0.2.1", Service.WEB, token))
    assert isinstance(outcome, Accepted) and outcome.lane is Lane.UNKNOWN and not outcome.cached


async def test_metrics_count_attempts_successes_failures(world: World) -> None:
    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    auth = world.auth()
    before = (
        sample("mailwarden_auth_attempts_total", service="pop3", lane="unknown"),
        sample("mailwarden_auth_successes_total", service="pop3", lane="unknown", path="hash"),
        sample("mailwarden_auth_failures_total", service="pop3", reason="credentials"),
    )
    await auth.verify(ALICE, PASSWORD, peer("192.0.2.1", Service.POP3))
    await auth.verify(ALICE, "nope", peer("192.0.2.1", Service.POP3))
    after = (
        sample("mailwarden_auth_attempts_total", service="pop3", lane="unknown"),
        sample("mailwarden_auth_successes_total", service="pop3", lane="unknown", path="hash"),
        sample("mailwarden_auth_failures_total", service="pop3", reason="credentials"),
    )
    # The second attempt is in the known lane (the first succeeded from there).
    assert after[0] - before[0] == 1 and after[1] - before[1] == 1
    assert after[2] - before[2] == 1
    snapshot = auth.snapshot()
    assert snapshot["rates"]["attempts"]["total"] == 2
    assert snapshot["top"]["accounts"] == [(ALICE, 1)]


async def test_quick_policy_is_the_default_but_for_delays() -> None:
    assert QUICK.host_failures == AuthPolicy().host_failures
