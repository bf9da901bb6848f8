"""Probes: the hysteresis state machine, muting in maintenance, and real
IMAP/POP3 logins against tiny loopback servers."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from status_servers import LoginServer

from mailwarden.web.status.model import ComponentStatus as S
from mailwarden.web.status.probes import (
    Hysteresis,
    ImapLoginProbe,
    Pop3LoginProbe,
    ProbeMonitor,
    ProbeResult,
    ProbeState,
    RoundTripProbe,
    Verdict,
    step,
)
from mailwarden.web.status.settings import ProbeSettings

RULES = Hysteresis(failures_for_outage=3, slow_for_degraded=2, successes_to_recover=2)
G, W, F = Verdict.GOOD, Verdict.SLOW, Verdict.FAIL


def run(verdicts):
    state = ProbeState()
    seen = []
    for verdict in verdicts:
        state = step(state, verdict, RULES)
        seen.append(state.status)
    return seen


@pytest.mark.parametrize(
    ("verdicts", "final"),
    [
        ([F, F], S.OPERATIONAL),  # two failures are not an outage
        ([F, F, F], S.MAJOR_OUTAGE),
        ([F, F, G, F, F], S.OPERATIONAL),  # not consecutive
        ([F, F, F, G], S.MAJOR_OUTAGE),  # one success does not recover
        ([F, F, F, G, G], S.OPERATIONAL),
        ([F, F, F, G, W], S.DEGRADED_PERFORMANCE),  # recovering but slow
        ([W], S.OPERATIONAL),
        ([W, W], S.DEGRADED_PERFORMANCE),
        ([W, W, G], S.DEGRADED_PERFORMANCE),
        ([W, W, G, G], S.OPERATIONAL),
        ([W, W, G, W, G], S.DEGRADED_PERFORMANCE),  # flapping does not recover
        ([W, W, F, F, F], S.MAJOR_OUTAGE),
    ],
)
def test_hysteresis(verdicts, final):
    assert run(verdicts)[-1] is final


@given(
    verdicts=st.lists(st.sampled_from(list(Verdict)), max_size=60),
    rules=st.builds(Hysteresis, *(st.integers(1, 5) for _ in range(3))),
)
@settings(max_examples=150, deadline=None)
def test_status_never_flaps(verdicts, rules):
    """Every change of status needs a run of at least the smallest threshold of
    results since the last change: one odd result never moves the page, and
    alternating good and bad results move it at most once."""
    apart = min(rules.failures_for_outage, rules.slow_for_degraded, rules.successes_to_recover)
    state, last_change = ProbeState(), 0
    for n, verdict in enumerate(verdicts, start=1):
        after = step(state, verdict, rules)
        if after.status is not state.status:
            assert n - last_change >= apart, (verdicts[:n], rules)
            last_change = n
        state = after
    if apart >= 2:
        state = ProbeState()
        for verdict in [G, F] * 10:
            state = step(state, verdict, rules)
        assert state.status is S.OPERATIONAL


class FakeProbe:
    def __init__(self, name, components, slow_ms=1000):
        self.name = name
        self.components = components
        self.slow_ms = slow_ms
        self.results: list[ProbeResult] = []

    async def run(self):
        return self.results.pop(0)


async def test_monitor_sets_components_and_mutes_in_maintenance(service, clock):
    imap = FakeProbe("a/imap", ("cluster-a-imap",))
    monitor = ProbeMonitor(service.db, clock, service.components, [(imap, RULES)],
                           interval=timedelta(minutes=1))  # fmt: skip
    imap.results = [ProbeResult(False, None, "refused")] * 3
    for n in range(3):
        clock.advance(minutes=n and 1)
        assert await monitor.run_due()
    comp = service.components.get("cluster-a-imap")
    assert comp.probe_status is S.MAJOR_OUTAGE and comp.effective_status is S.MAJOR_OUTAGE
    imap.results = [ProbeResult(True, 50)]
    clock.advance(seconds=30)
    assert not await monitor.run_due()  # the interval has not passed

    start = clock.now + timedelta(days=8)
    (window,) = service.schedule_maintenance(
        "op", "IMAP work", start, start + timedelta(hours=1), components=["cluster-a-imap"]
    )
    clock.set(start)
    service.maintenances.tick()
    imap.results = [ProbeResult(True, 50), ProbeResult(True, 50)]
    await monitor.run_all()
    await monitor.run_all()
    # Muted: the history has them, the state did not move.
    assert monitor.state("a/imap").status is S.MAJOR_OUTAGE
    assert [h.muted for h in monitor.history("a/imap")][:2] == [True, True]
    assert service.components.get("cluster-a-imap").effective_status is S.UNDER_MAINTENANCE

    clock.set(window.planned_end)
    service.maintenances.tick()
    imap.results = [ProbeResult(True, 50), ProbeResult(True, 50)]
    await monitor.run_all()
    await monitor.run_all()
    assert service.components.get("cluster-a-imap").effective_status is S.OPERATIONAL
    assert len(monitor.history("a/imap")) == 7
    clock.advance(days=91)
    assert monitor.prune() == 7


async def test_slow_logins_mark_degraded(service, clock):
    probe = FakeProbe("a/pop3", ("cluster-a-pop3",), slow_ms=2000)
    monitor = ProbeMonitor(service.db, clock, service.components, [(probe, RULES)])
    probe.results = [ProbeResult(True, 2500), ProbeResult(True, 3000)]
    await monitor.run_all()
    await monitor.run_all()
    assert service.components.get("cluster-a-pop3").effective_status is S.DEGRADED_PERFORMANCE


async def test_real_imap_and_pop3_login_probes():
    imap = await LoginServer("imap").start()
    pop = await LoginServer("pop3").start()
    try:
        ports = {"imap_port": imap.port, "pop3_port": pop.port, "timeout": 5}
        good = ProbeSettings("a", account="p@example.test", password="probe-secret", **ports)
        bad = ProbeSettings("a", account="p@example.test", password="wrong", **ports)
        ok_imap = await ImapLoginProbe(good).run()
        ok_pop = await Pop3LoginProbe(good).run()
        bad_imap = await ImapLoginProbe(bad).run()
        bad_pop = await Pop3LoginProbe(bad).run()
    finally:
        await imap.stop()
        await pop.stop()
    assert ok_imap.ok and ok_imap.latency_ms is not None
    assert ok_pop.ok
    assert (imap.logins, pop.logins) == (1, 1)
    assert not bad_imap.ok and "AUTHENTICATIONFAILED" in bad_imap.detail
    assert not bad_pop.ok
    down = ProbeSettings(cluster="a", imap_port=imap.port, timeout=2)  # server stopped
    result = await ImapLoginProbe(down).run()
    assert not result.ok


class LoginProbe(FakeProbe):
    def __init__(self, name, component):
        super().__init__(f"a/{name}", (f"cluster-a-{component}",))
        self.auth_component = "cluster-a-auth"


REFUSED = ProbeResult(False, None, "NO [AUTHENTICATIONFAILED]", login_refused=True)
DOWN = ProbeResult(False, None, "ConnectionRefusedError")
OK = ProbeResult(True, 20)


async def test_authentication_is_inferred_from_refused_logins(service, clock):
    imap, pop, web = (LoginProbe("imap-login", "imap"), LoginProbe("pop3-login", "pop3"),
                      LoginProbe("webmail-login", "webmail"))  # fmt: skip
    monitor = ProbeMonitor(service.db, clock, service.components,
                           [(p, RULES) for p in (imap, pop, web)])  # fmt: skip

    async def run(*results):
        for probe, result in zip((imap, pop, web), results, strict=True):
            probe.results = [result]
        return await monitor.run_all()

    def shown(key):
        return service.components.get(f"cluster-a-{key}")

    states = await run(OK, OK, OK)
    assert (
        states["cluster-a/auth"].status is S.OPERATIONAL
        and monitor.state("cluster-a/auth").fast == 1
    )
    # One refusal alone is that service's (the others got in): no verdict on auth.
    for _ in range(3):
        await run(REFUSED, OK, OK)
    assert shown("imap").probe_status is S.MAJOR_OUTAGE
    assert shown("auth").effective_status is S.OPERATIONAL
    await run(OK, OK, OK)
    await run(OK, OK, OK)
    assert shown("imap").effective_status is S.OPERATIONAL
    # Unreachable services are their own problem, whatever their number.
    for _ in range(3):
        await run(DOWN, DOWN, OK)
    assert shown("auth").effective_status is S.OPERATIONAL
    assert shown("pop3").probe_status is S.MAJOR_OUTAGE
    for _ in range(3):
        await run(OK, OK, OK)
    # Two doors refusing: Authentication is down, and everything behind it shows it.
    await run(REFUSED, REFUSED, DOWN)
    await run(REFUSED, REFUSED, REFUSED)
    assert shown("auth").effective_status is S.OPERATIONAL  # hysteresis: 3 in a row
    await run(REFUSED, REFUSED, REFUSED)
    assert shown("auth").effective_status is S.MAJOR_OUTAGE
    for key in ("imap", "pop3", "webmail"):
        comp = shown(key)
        assert comp.effective_status is S.MAJOR_OUTAGE
        assert comp.cause == "Authentication: major outage"
    assert shown("imap").probe_status is S.OPERATIONAL
    assert shown("smtp-inbound").effective_status is S.OPERATIONAL  # needs no login
    (latest, *_) = monitor.history("a/imap-login")
    assert latest.detail == "NO [AUTHENTICATIONFAILED] (counted against cluster-a-auth)"
    assert [o.name for o in monitor.overview()][-1] == "cluster-a/auth"
    # Authentication under maintenance: the derived probe is muted too.
    start = clock.now + timedelta(days=8)
    service.schedule_maintenance(
        "op", "Auth upgrade", start, start + timedelta(hours=1), components=["cluster-a-auth"]
    )
    clock.set(start)
    service.maintenances.tick()
    await run(OK, OK, OK)
    assert monitor.history("cluster-a/auth")[0].muted
    clock.advance(hours=1)
    service.maintenances.tick()
    await run(OK, OK, OK)
    await run(OK, OK, OK)
    assert shown("auth").effective_status is S.OPERATIONAL
    assert shown("imap").effective_status is S.OPERATIONAL


async def test_history_is_pruned_daily(service, clock):
    probe = FakeProbe("a/pop3", ("cluster-a-pop3",))
    monitor = ProbeMonitor(service.db, clock, service.components, [(probe, RULES)],
                           history=timedelta(days=2))  # fmt: skip
    for _ in range(4):
        probe.results = [ProbeResult(True, 5)]
        assert await monitor.run_due()
        clock.advance(days=1)
    # Runs at day 0, 1, 2, 3; the prune at day 3 drops what is older than two days.
    assert [h.at for h in monitor.history()] == [clock.now - timedelta(days=d) for d in (1, 2, 3)]


async def test_drains_and_the_services_a_probe_relies_on_mute_it(service, clock):
    service.add_cluster("op", "Cluster B")
    a, b = ProbeSettings("cluster-a"), ProbeSettings("cluster-b")
    pop_a, roundtrip_a, pop_b = Pop3LoginProbe(a), RoundTripProbe(a), Pop3LoginProbe(b)
    monitor = ProbeMonitor(service.db, clock, service.components,
                           [(p, RULES) for p in (pop_a, roundtrip_a, pop_b)])  # fmt: skip

    def muted():
        return [monitor.muted(p) for p in (pop_a, roundtrip_a, pop_b)]

    start = clock.now + timedelta(days=8)
    # IMAP work without a drain: the round trip (it fetches over IMAP) is muted, POP3 is not.
    service.schedule_maintenance(
        "op", "IMAP index rebuild", start, start + timedelta(hours=1),
        components=["cluster-a-imap"], drain=False,
    )  # fmt: skip
    # Cluster A's Authentication, later: every login of cluster A relies on it.
    later = start + timedelta(days=1)
    service.schedule_maintenance(
        "op", "Auth upgrade", later, later + timedelta(hours=1),
        components=["cluster-a-auth"], drain=False,
    )  # fmt: skip
    # IMAP work with a drain, later still: the node refuses new sessions on every
    # protocol, so every probe of cluster A is muted; cluster B is not touched.
    last = later + timedelta(days=1)
    service.schedule_maintenance(
        "op", "Disk swap", last, last + timedelta(hours=1), components=["cluster-a-imap"]
    )
    assert muted() == [False, False, False]
    clock.set(start)
    service.maintenances.tick()
    assert muted() == [False, True, False]
    clock.set(later)
    service.maintenances.tick()
    assert muted() == [True, True, False]
    clock.set(last)
    service.maintenances.tick()
    assert muted() == [True, True, False]
    for _ in range(3):  # the drained node refuses POP3: kept in the history, not counted
        monitor.record(pop_a, ProbeResult(False, None, "error_proto: -ERR [SYS/TEMP]"), RULES)
        monitor.record(pop_b, ProbeResult(False, None, "ConnectionRefusedError"), RULES)
    assert all(h.muted for h in monitor.history("cluster-a/pop3-login"))
    assert service.components.get("cluster-a-pop3").effective_status is S.OPERATIONAL
    assert service.components.get("cluster-b-pop3").effective_status is S.MAJOR_OUTAGE
    clock.advance(hours=1)
    service.maintenances.tick()
    assert muted() == [False, False, False]
