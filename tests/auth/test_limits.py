"""Pure limit arithmetic: networks, thresholds, pressure, delays, ban lengths, the gate."""

from __future__ import annotations

import ipaddress

import pytest

from mailwarden.auth.limits import (
    ConnectionGate,
    Scope,
    SourceCounts,
    ban_duration,
    failure_delay,
    known_network,
    parse_network,
    pressure,
    scopes_of,
    shed_delay,
    tripped,
)
from mailwarden.auth.policy import AuthPolicy, policy_from_config
from mailwarden.config import Config

ip = ipaddress.ip_address
POLICY = AuthPolicy()


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("198.51.100.7", ("198.51.100.7/32", "198.51.100.0/24", "198.51.0.0/16")),
        ("::ffff:198.51.100.7", ("198.51.100.7/32", "198.51.100.0/24", "198.51.0.0/16")),
        ("2001:db8:1:2:3::4", ("2001:db8:1:2::/64", "2001:db8:1::/48", "2001:db8::/32")),
    ],
)
def test_scopes_of_ipv4_and_ipv6(address: str, expected: tuple[str, ...]) -> None:
    scopes = scopes_of(ip(address))
    assert [s for s, _ in scopes] == [Scope.HOST, Scope.SITE, Scope.WIDE]
    assert tuple(str(n) for _, n in scopes) == expected


def test_known_network() -> None:
    assert str(known_network(ip("192.0.2.9"), POLICY)) == "192.0.2.0/24"
    assert str(known_network(ip("2001:db8::9"), POLICY)) == "2001:db8::/64"


def test_parse_network() -> None:
    assert str(parse_network("192.0.2.7")) == "192.0.2.7/32"
    assert str(parse_network(" 2001:db8::/32 ")) == "2001:db8::/32"
    for bad in ("10.1.2.3/8", "nope", "300.1.1.1"):
        with pytest.raises(ValueError, match=r"\S"):
            parse_network(bad)


def test_tripped_and_pressure() -> None:
    assert tripped(SourceCounts(9, 29, 99), POLICY) == ()
    assert tripped(SourceCounts(10, 5, 5), POLICY) == (Scope.HOST,)
    assert tripped(SourceCounts(10, 30, 100), POLICY) == (Scope.WIDE, Scope.SITE, Scope.HOST)
    assert pressure(SourceCounts(), POLICY) == 0.0
    assert pressure(SourceCounts(5, 0, 0), POLICY) == 0.5
    assert pressure(SourceCounts(0, 0, 1000), POLICY) == 1.0
    # Knocking on a full line again and again counts against a source too.
    assert pressure(SourceCounts(), POLICY, recent_sheds=3) == pytest.approx(0.3)
    assert pressure(SourceCounts(0, 0, 1000), POLICY, recent_sheds=50) == 2.0


def test_failure_delay_doubles_after_a_free_typo() -> None:
    assert [failure_delay(n, POLICY) for n in range(7)] == [0, 0, 1, 2, 4, 8, 15]
    assert failure_delay(10**9, POLICY) == POLICY.failure_delay_max
    assert failure_delay(5, AuthPolicy(failure_delay_base=0)) == 0


def test_shed_delay_spares_the_first_and_slows_spinners() -> None:
    assert [shed_delay(n, POLICY) for n in range(6)] == [0, 0, 0.25, 0.5, 1.0, 2.0]
    assert shed_delay(10**9, POLICY) == POLICY.failure_delay_max


def test_ban_duration_escalates_to_a_maximum() -> None:
    assert [ban_duration(n, POLICY) for n in range(5)] == [600, 2400, 9600, 38400, 86400]
    assert ban_duration(10**6, POLICY) == POLICY.ban_max


def test_connection_gate_limits_each_scope_and_the_total() -> None:
    gate = ConnectionGate(
        AuthPolicy(prelogin_host=2, prelogin_site=3, prelogin_wide=4, prelogin_total=5)
    )
    a, b = ip("10.0.0.1"), ip("10.0.0.2")
    assert gate.admit(a) is None and gate.admit(a) is None
    assert gate.admit(a) is Scope.HOST
    assert gate.admit(b) is None
    assert gate.admit(b) is Scope.SITE  # 10.0.0.0/24 holds 3
    assert gate.admit(ip("10.0.1.1")) is None
    assert gate.admit(ip("10.0.2.1")) is Scope.WIDE  # 10.0.0.0/16 holds 4
    assert gate.admit(ip("10.1.0.1")) is None
    assert gate.admit(ip("10.2.0.1")) is Scope.TOTAL  # 5 open
    gate.release(a)
    assert gate.admit(ip("10.2.0.1")) is None
    for address in (a, b, ip("10.0.1.1"), ip("10.1.0.1"), ip("10.2.0.1")):
        gate.release(address)
    assert gate.total == 0 and gate.open == {}


def test_policy_from_config_keeps_defaults() -> None:
    assert policy_from_config(Config()) == AuthPolicy()
