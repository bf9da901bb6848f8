"""The in-process counters pass the Counters contract, and stay bounded."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from counters_contract import CONTRACT

from mailwarden.auth.counters import MemoryCounters


@pytest.mark.parametrize("case", CONTRACT, ids=lambda c: c.__name__)
async def test_memory_counters_contract(case) -> None:
    await case(MemoryCounters())


async def test_memory_counters_are_bounded() -> None:
    counters = MemoryCounters(max_members=4, max_values=10, max_sets=3)
    for i in range(10):
        assert await counters.add("k", f"m{i}", 100.0 + i, 1000.0) == min(i + 1, 4)
    for i in range(50):
        await counters.put(f"v{i}", "x", 100.0, 1000.0)
    assert await counters.get("v49", 101.0) == "x"
    assert await counters.get("v0", 101.0) is None
    for i in range(6):
        await counters.add(f"s{i}", "a", 200.0 + i, 1000.0)
    await counters.sweep(300.0)
    assert await counters.count(["s5", "s0"], 300.0, 1000.0) == [1, 0]
