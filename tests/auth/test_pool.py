"""The verification pool: bounded, ordered by priority, reserves slots, pushes the worst out."""

from __future__ import annotations

import asyncio
import threading

import pytest

from mailwarden.auth.passwords import PoolSaturated, VerifyPool


class Gate:
    """Jobs that block their worker thread until released."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.order: list[str] = []

    def job(self, name: str):
        def run() -> str:
            self.event.wait(10)
            self.order.append(name)
            return name

        return run


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_line_is_served_by_priority_then_arrival() -> None:
    pool = VerifyPool(workers=1, max_pending=8)
    gate = Gate()
    try:
        blocker = asyncio.create_task(pool.run(gate.job("first")))
        await settle()
        tasks = [
            asyncio.create_task(pool.run(gate.job(name), priority=prio))
            for name, prio in (("c", 0.5), ("a", 0.0), ("known", -1.0), ("b", 0.0), ("d", 0.9))
        ]
        await settle()
        assert pool.running == 1 and pool.waiting == 5 and pool.in_flight == 6
        gate.event.set()
        await asyncio.gather(blocker, *tasks)
        assert gate.order == ["first", "known", "a", "b", "c", "d"]
        assert pool.in_flight == 0
    finally:
        gate.event.set()
        pool.shutdown()


async def test_reserve_keeps_slots_for_others_and_a_better_job_pushes_the_worst_out() -> None:
    pool = VerifyPool(workers=1, max_pending=3)  # capacity 4
    gate = Gate()
    try:
        held = [asyncio.create_task(pool.run(gate.job("x"), reserve=1, priority=0.5))]
        await settle()
        held += [
            asyncio.create_task(pool.run(gate.job(f"u{i}"), reserve=1, priority=0.5))
            for i in range(2)
        ]
        await settle()
        assert pool.in_flight == 3
        # The unknown lane (reserve 1) cannot take the last slot...
        with pytest.raises(PoolSaturated):
            await pool.run(gate.job("late"), reserve=1, priority=0.5)
        # ...but the known lane can.
        known = asyncio.create_task(pool.run(gate.job("known"), priority=-1.0))
        await settle()
        assert pool.in_flight == 4
        # A full line: a fresh source (priority 0) pushes out a worse waiting job.
        fresh = asyncio.create_task(pool.run(gate.job("fresh"), reserve=1, priority=0.0))
        await settle()
        assert pool.evicted == 1
        gate.event.set()
        results = await asyncio.gather(*held, known, fresh, return_exceptions=True)
        assert sum(isinstance(r, PoolSaturated) for r in results) == 1
        assert "fresh" in gate.order and "known" in gate.order
        assert gate.order.index("known") < gate.order.index("fresh")
    finally:
        gate.event.set()
        pool.shutdown()


async def test_cancelled_waiters_leave_the_line_and_pass_their_turn_on() -> None:
    pool = VerifyPool(workers=1, max_pending=4)
    gate = Gate()
    try:
        blocker = asyncio.create_task(pool.run(gate.job("first")))
        await settle()
        waiting = asyncio.create_task(pool.run(gate.job("cancelled")))
        after = asyncio.create_task(pool.run(gate.job("after")))
        await settle()
        waiting.cancel()
        await settle()
        assert pool.waiting == 1
        gate.event.set()
        await asyncio.gather(blocker, after)
        assert gate.order == ["first", "after"]
        assert pool.in_flight == 0
    finally:
        gate.event.set()
        pool.shutdown()


async def test_jobs_never_run_on_the_event_loop_thread() -> None:
    pool = VerifyPool(workers=2, max_pending=2)
    try:
        names = await asyncio.gather(
            *(pool.run(lambda: threading.current_thread().name) for _ in range(4))
        )
        assert all(name.startswith("argon2") for name in names)
    finally:
        pool.shutdown()
