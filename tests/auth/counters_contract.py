"""The contract every :class:`~mailwarden.auth.counters.Counters` backend must pass.

A backend's test module calls :func:`contract_tests` with a factory; the
in-process one is tested in ``test_counters.py``, a Redis one will be too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from mailwarden.auth.counters import Counters

Factory = Callable[[], Awaitable[Counters]]


async def distinct_members_are_counted_once(counters: Counters) -> None:
    assert await counters.add("k", "a", 100.0, 60.0) == 1
    assert await counters.add("k", "a", 101.0, 60.0) == 1
    assert await counters.add("k", "b", 102.0, 60.0) == 2
    assert await counters.count(["k", "other"], 103.0, 60.0) == [2, 0]


async def members_leave_the_window(counters: Counters) -> None:
    await counters.add("k", "a", 100.0, 60.0)
    await counters.add("k", "b", 130.0, 60.0)
    assert await counters.count(["k"], 159.0, 60.0) == [2]
    assert await counters.count(["k"], 161.0, 60.0) == [1]
    assert await counters.add("k", "c", 200.0, 60.0) == 1
    # Re-adding refreshes a member's time.
    await counters.add("k", "c", 250.0, 60.0)
    assert await counters.count(["k"], 300.0, 60.0) == [1]


async def values_expire(counters: Counters) -> None:
    await counters.put("v", "1", 100.0, 10.0)
    assert await counters.get("v", 109.0) == "1"
    assert await counters.get("v", 110.0) is None
    await counters.put("v", "2", 200.0, 10.0)
    await counters.put("v", "3", 201.0, 10.0)
    assert await counters.get("v", 205.0) == "3"


async def delete_forgets_values_and_sets(counters: Counters) -> None:
    await counters.put("v", "1", 100.0, 10.0)
    await counters.add("s", "a", 100.0, 10.0)
    await counters.delete("v")
    await counters.delete("s")
    await counters.delete("never-there")
    assert await counters.get("v", 101.0) is None
    assert await counters.count(["s"], 101.0, 10.0) == [0]


async def sweep_keeps_what_is_live(counters: Counters) -> None:
    await counters.put("old", "1", 100.0, 10.0)
    await counters.put("new", "1", 100.0, 1000.0)
    await counters.add("s", "a", 100.0, 10.0)
    await counters.add("t", "a", 100.0, 1000.0)
    await counters.sweep(500.0)
    assert await counters.get("old", 500.0) is None
    assert await counters.get("new", 500.0) == "1"
    assert await counters.count(["s", "t"], 500.0, 1000.0) == [0, 1]


CONTRACT = (
    distinct_members_are_counted_once,
    members_leave_the_window,
    values_expire,
    delete_forgets_values_and_sets,
    sweep_keeps_what_is_live,
)
