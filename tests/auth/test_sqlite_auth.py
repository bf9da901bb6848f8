"""Durable auth state on SQLite, and a node following it (what the admin tools change)."""

from __future__ import annotations

import ipaddress
import json

from conftest import PASSWORD, USERS, World, peer

from mailwarden.auth.bans import AllowEntry, Ban
from mailwarden.auth.persist import AuditEntry, KnownClient, StatsSnapshot
from mailwarden.auth.service import Accepted, Lane, Rejected
from mailwarden.store.sqlite_auth import SqliteAuthState

net = ipaddress.ip_network


async def test_changes_since_is_incremental(world: World, make_state) -> None:
    state: SqliteAuthState = await make_state()
    try:
        full = await state.changes_since(0, 0.0)
        assert full.seq == 0 and not full.bans
        ban = await state.add_ban(
            Ban(net("192.0.2.0/24"), 10.0, 100.0, "site-failures", counts=(("site", 30),))
        )
        assert ban.id > 0
        await state.add_ban(Ban(net("198.51.100.0/24"), 10.0, 20.0, "admin"))
        await state.allow(AllowEntry(net("10.0.0.0/8"), "office", 5.0))
        await state.set_lock(1, True, "x", 50.0)
        app = await state.add_app_password(1, "phone", "ab" * 32, 60.0)
        first = await state.changes_since(0, 50.0)
        assert [str(b.network) for b in first.bans] == ["192.0.2.0/24"]  # ended ban skipped
        assert first.bans[0].counts == (("site", 30),)
        assert [str(e.network) for e in first.allowed] == ["10.0.0.0/8"]
        assert first.flags[0].locked and first.app_passwords == [app]
        assert await state.changes_since(first.seq, 50.0) == type(first)(first.seq)
        assert await state.lift_ban(net("192.0.2.0/24"), 60.0) == 1
        assert await state.disallow(net("10.0.0.0/8"))
        assert not await state.disallow(net("10.0.0.0/8"))
        assert await state.bump_epoch(1) == 1
        assert await state.revoke_app_password(1, app.id)
        assert not await state.revoke_app_password(1, app.id)
        later = await state.changes_since(first.seq, 60.0)
        assert [str(n) for n in later.lifted] == ["192.0.2.0/24"]
        assert [str(n) for n in later.disallowed] == ["10.0.0.0/8"]
        assert later.flags[0].epoch == 1 and later.flags[0].locked
        assert later.app_passwords[0].revoked
        assert await state.bans(60.0) == []
        assert len(await state.bans(60.0, include_ended=True)) == 2
        assert [b.rule for b in await state.ban_history(0.0)] == ["site-failures"]
    finally:
        await state.close()


async def test_known_clients_audit_and_stats(world: World, make_state) -> None:
    state: SqliteAuthState = await make_state()
    try:
        await state.remember_known([KnownClient(1, "a@x", net("192.0.2.0/24"), 100.0)])
        await state.remember_known([KnownClient(1, "a@x", net("192.0.2.0/24"), 50.0)])
        known = await state.known_clients(0.0, 1)
        assert [(str(k.network), k.last_seen) for k in known] == [("192.0.2.0/24", 100.0)]
        assert await state.known_clients(100.0) == []
        await state.forget_known(1)
        assert await state.known_clients(0.0) == []
        await state.audit(AuditEntry(1.0, "cli:root", "ban", "192.0.2.0/24", "for 60 s"))
        await state.audit(AuditEntry(2.0, "cli:root", "lock", "a@x"))
        assert [e.action for e in await state.audit_log()] == ["lock", "ban"]
        assert [e.action for e in await state.audit_log(target="a@x")] == ["lock"]
        await state.publish_stats(StatsSnapshot("n1", 1.0, "{}"))
        await state.publish_stats(StatsSnapshot("n1", 2.0, '{"a": 1}'))
        assert await state.stats() == [StatsSnapshot("n1", 2.0, '{"a": 1}')]
    finally:
        await state.close()


async def test_node_follows_the_database_and_persists_its_own_bans(
    world: World, make_state
) -> None:
    auth = world.auth(host_failures=2, state=await make_state())
    await auth.start()
    account = await world.account()
    tools: SqliteAuthState = await make_state()
    try:
        # An automatic ban is stored for the admin tools to see.
        for n in range(2):
            await auth.verify(USERS[1], f"bad{n}", peer("203.0.113.4"))
        await auth.flush()
        stored = await tools.bans(world.clock())
        assert [(str(b.network), b.rule) for b in stored] == [("203.0.113.4/32", "host-failures")]
        # The tools lock Alice and lift the ban; the node sees it at its next refresh.
        await tools.set_lock(account.id, True, "by test", world.clock())
        await tools.lift_ban(net("203.0.113.4/32"), world.clock())
        await auth.refresh()
        assert isinstance(await auth.verify(USERS[0], PASSWORD, peer("192.0.2.1")), Rejected)
        assert auth.state.bans.match(ipaddress.ip_address("203.0.113.4"), world.clock()) is None
        await tools.set_lock(account.id, False, "", world.clock())
        await auth.refresh()
        ok = await auth.verify(USERS[0], PASSWORD, peer("192.0.2.1"))
        assert isinstance(ok, Accepted)
        # Statistics reach the database.
        await auth.publish_stats()
        (snapshot,) = await tools.stats()
        data = json.loads(snapshot.data)
        assert data["rates"]["successes"]["total"] == 1 and data["node"] == auth.node
    finally:
        await tools.close()


async def test_known_clients_survive_a_restart(world: World, make_state) -> None:
    first = world.auth(state=await make_state())
    await first.start()
    assert isinstance(await first.verify(USERS[0], PASSWORD, peer("192.0.2.1")), Accepted)
    await first.close()
    world.services.remove(first)
    second = world.auth(state=await make_state())
    await second.start()
    outcome = await second.verify(USERS[0], PASSWORD, peer("192.0.2.77"))
    assert isinstance(outcome, Accepted) and outcome.lane is Lane.KNOWN


async def test_revoke_from_the_tools_ends_the_nodes_sessions(world: World, make_state) -> None:
    auth = world.auth(state=await make_state())
    await auth.start()
    account = await world.account()
    ok = await auth.verify(USERS[0], PASSWORD, peer("192.0.2.1"))
    assert isinstance(ok, Accepted)
    ended: list[int] = []
    auth.open_session(account, peer("192.0.2.1"), lambda: ended.append(account.id))
    tools: SqliteAuthState = await make_state()
    try:
        assert await tools.bump_epoch(account.id) == 1
        await auth.refresh()
    finally:
        await tools.close()
    assert ended == [account.id]
    again = await auth.verify(USERS[0], PASSWORD, peer("192.0.2.1"))
    assert isinstance(again, Accepted) and again.lane is Lane.UNKNOWN and not again.cached
