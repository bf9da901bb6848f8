"""Bans as data: lookup by address, expiry, escalation history, explanations; the node's state."""

from __future__ import annotations

import ipaddress

from mailwarden.auth.bans import AllowEntry, Ban, BanList, NetworkTable
from mailwarden.auth.persist import AccountFlags, AppPassword, Changes
from mailwarden.auth.state import AuthState

net = ipaddress.ip_network
ip = ipaddress.ip_address


def test_network_table_finds_every_containing_network() -> None:
    table: NetworkTable[str] = NetworkTable()
    table.set(net("10.0.0.0/8"), "wide")
    table.set(net("10.1.2.0/24"), "site")
    table.set(net("2001:db8::/32"), "v6")
    assert table.matches(ip("10.1.2.3")) == ["site", "wide"]
    assert table.matches(ip("::ffff:10.1.2.3")) == ["site", "wide"]
    assert table.matches(ip("10.9.9.9")) == ["wide"]
    assert table.matches(ip("2001:db8::1")) == ["v6"]
    assert table.matches(ip("192.0.2.1")) == []
    assert table.remove(net("10.0.0.0/8")) == "wide"
    assert table.remove(net("10.0.0.0/8")) is None
    assert len(table) == 2


def test_ban_list_matches_active_bans_and_expires_them() -> None:
    bans = BanList()
    bans.add(Ban(net("192.0.2.7/32"), 100.0, 200.0, "host-failures", counts=(("host", 10),)))
    bans.add(Ban(net("192.0.2.0/24"), 100.0, 500.0, "site-failures"))
    bans.add(Ban(net("198.51.100.0/24"), 100.0, None, "admin", "by hand"))
    hit = bans.match(ip("192.0.2.7"), 150.0)
    assert hit is not None and hit.rule == "site-failures"  # the one lasting longest
    assert bans.match(ip("192.0.2.7"), 150.0, admin_only=True) is None
    admin = bans.match(ip("198.51.100.1"), 10**9)
    assert admin is not None and admin.by_admin and admin.until is None
    assert bans.match(ip("192.0.2.7"), 99.0) is None  # not yet
    assert bans.expire(300.0) == 1
    assert bans.match(ip("192.0.2.7"), 300.0) is not None
    assert bans.expire(600.0) == 1
    assert bans.match(ip("192.0.2.7"), 600.0) is None
    assert [str(b.network) for b in bans.active(600.0)] == ["198.51.100.0/24"]


def test_ban_history_counts_earlier_bans_within_memory() -> None:
    bans = BanList()
    network = net("192.0.2.0/24")
    bans.add(Ban(network, 100.0, 200.0, "site-failures"))
    bans.add(Ban(network, 1000.0, 2000.0, "site-failures", level=1))
    assert bans.earlier(network, 3000.0, 10_000.0) == 2
    assert bans.earlier(network, 10_500.0, 10_000.0) == 1
    assert bans.earlier(network, 10**6, 10_000.0) == 0


def test_explanation_names_rule_times_counts_and_reason() -> None:
    ban = Ban(
        net("192.0.2.0/24"),
        0.0,
        600.0,
        "site-failures",
        "30 distinct failed logins",
        level=2,
        counts=(("host", 3), ("site", 30)),
    )
    text = ban.explain()
    for part in (
        "192.0.2.0/24",
        "site-failures",
        "1970-01-01 00:00:00Z",
        "00:10:00Z",
        "level 2",
        "site=30",
        "30 distinct",
    ):
        assert part in text
    assert "until lifted" in Ban(net("192.0.2.0/24"), 0.0, None, "admin").explain()


def test_state_applies_changes_and_reports_revocations() -> None:
    state = AuthState()
    app = AppPassword(1, 7, "phone", "d" * 64, 0.0)
    state.apply(
        Changes(
            seq=5,
            bans=[Ban(net("192.0.2.0/24"), 0.0, None, "admin", id=1)],
            allowed=[AllowEntry(net("10.0.0.0/8"))],
            flags=[AccountFlags(7, locked=True, reason="x")],
            app_passwords=[app],
        )
    )
    assert state.seq == 5
    assert state.bans.match(ip("192.0.2.1"), 1.0) is not None
    assert state.allowed(ip("10.2.3.4")) is not None
    assert state.allowed_network(net("10.2.0.0/16")) and not state.allowed_network(net("0.0.0.0/0"))
    assert state.lock(7) is not None and state.epoch(7) == 0
    assert state.apps["d" * 64] == app
    revoked = state.apply(
        Changes(
            seq=6,
            lifted=[net("192.0.2.0/24")],
            disallowed=[net("10.0.0.0/8")],
            flags=[AccountFlags(7, epoch=1)],
            app_passwords=[AppPassword(1, 7, "phone", "d" * 64, 0.0, revoked=True)],
        )
    )
    assert revoked == [7]
    # An account never seen before whose epoch rose was revoked too.
    assert state.apply(Changes(seq=7, flags=[AccountFlags(8, epoch=1)])) == [8]
    assert state.bans.match(ip("192.0.2.1"), 1.0) is None
    assert state.allowed(ip("10.2.3.4")) is None
    assert state.lock(7) is None and state.epoch(7) == 1
    assert state.apps == {}
