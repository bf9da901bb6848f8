"""argon2id password hashing on a bounded pool of threads.

argon2-cffi runs the hash in C through cffi, which releases the GIL for the
call, so a pool of threads (one per core by default) uses every core while the
event loop stays free.  The pool is bounded twice: ``workers`` hashes run at
once, and at most ``max_pending`` more may wait; beyond that :meth:`run`
refuses at once with :class:`PoolSaturated` instead of queueing without limit.

The waiting line is the pool's own priority queue on the event loop, never the
executor's FIFO: a job is handed to a thread only when a thread is free, so a
known client's login can overtake a line of guesses (see :class:`VerifyPool`).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

import argon2
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = ["HashParams", "PasswordHasher", "PoolSaturated", "VerifyPool"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class HashParams:
    """argon2id cost parameters."""

    memory_kib: int = 19456
    time_cost: int = 2
    parallelism: int = 1


class PasswordHasher:
    """Hash and check passwords with argon2id (synchronous; run it on a pool)."""

    def __init__(self, params: HashParams) -> None:
        self.params = params
        self._hasher = argon2.PasswordHasher(
            time_cost=params.time_cost,
            memory_cost=params.memory_kib,
            parallelism=params.parallelism,
            type=argon2.Type.ID,
        )
        # Checked when the user is unknown so that the answer costs the same.
        self.dummy_hash = self._hasher.hash(os.urandom(16).hex())

    def hash(self, password: str) -> str:
        """A new argon2id hash of ``password``."""
        return self._hasher.hash(password)

    def verify(self, stored_hash: str, password: str) -> bool:
        """Whether ``password`` matches ``stored_hash``; False for malformed hashes."""
        try:
            return self._hasher.verify(stored_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored_hash: str) -> bool:
        """Whether the hash was made with other parameters than the current ones."""
        try:
            return self._hasher.check_needs_rehash(stored_hash)
        except InvalidHashError:
            return True


class PoolSaturated(Exception):
    """Every worker is busy and the waiting line is full (or this job was pushed out of it)."""


@dataclass(order=True)
class _Waiter:
    priority: float
    seq: int
    future: asyncio.Future[None] = field(compare=False)


class VerifyPool:
    """A bounded pool of hashing threads with a priority line in front of it.

    At most ``workers`` hashes run at once (one thread each), and at most
    ``max_pending`` more wait in a line kept on the event loop — not in the
    executor's FIFO, so the line can be reordered:

    * jobs wait in order of ``priority`` (lower first), then arrival;
    * a job with ``reserve`` may only be admitted while that many slots of the
      capacity stay free for others (the unknown lane passes a positive
      number; the known lane 0);
    * when the line is full, a newcomer with a better priority than the worst
      waiting job pushes that one out (it gets :class:`PoolSaturated` at once),
      so a full line of repeat guessers cannot keep a new client out.
    """

    def __init__(self, workers: int = 0, max_pending: int = 64) -> None:
        self.workers = workers or os.cpu_count() or 1
        self.max_pending = max_pending
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="argon2")
        self.running = 0
        self._line: list[_Waiter] = []
        self._seq = itertools.count()
        self.evicted = 0

    @property
    def capacity(self) -> int:
        """Jobs admitted at once: running plus waiting."""
        return self.workers + self.max_pending

    @property
    def in_flight(self) -> int:
        """Jobs running or waiting."""
        return self.running + len(self._line)

    @property
    def waiting(self) -> int:
        """Jobs waiting for a worker."""
        return len(self._line)

    def would_admit(self, *, reserve: int = 0, priority: float = 0.0) -> bool:
        """Whether :meth:`run` would take a job now (to refuse before costly preparation)."""
        if self.in_flight < self.capacity - reserve:
            return True
        return bool(self._line) and max(self._line).priority > priority

    async def run(self, fn: Callable[[], T], *, reserve: int = 0, priority: float = 0.0) -> T:
        """Run ``fn`` on a worker thread, waiting in line if every worker is busy.

        Args:
            fn: the hashing work (runs on a thread; must not touch the event loop).
            reserve: slots of the capacity this call must leave free for others
                (a lower-priority lane passes a positive number; negative
                numbers let a job past a full line, for administrative hashing).
            priority: lower runs first; ties in order of arrival.

        Raises:
            PoolSaturated: there is no room, now or later while waiting (a
                better job pushed this one out of the line).
        """
        if self.in_flight >= self.capacity - reserve and not self._evict_worse(priority):
            raise PoolSaturated
        if self.running < self.workers and not self._line:
            self.running += 1
        else:
            await self._wait_turn(priority)
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, fn)
        finally:
            self.running -= 1
            self._dispatch()

    async def _wait_turn(self, priority: float) -> None:
        loop = asyncio.get_running_loop()
        waiter = _Waiter(priority, next(self._seq), loop.create_future())
        heapq.heappush(self._line, waiter)
        try:
            await waiter.future
        except asyncio.CancelledError:
            if waiter.future.done() and not waiter.future.cancelled():
                # Our turn came as we were cancelled: hand it on.
                self.running -= 1
                self._dispatch()
            else:
                self._remove(waiter)
            raise

    def _remove(self, waiter: _Waiter) -> None:
        try:
            self._line.remove(waiter)
        except ValueError:
            return
        heapq.heapify(self._line)

    def _dispatch(self) -> None:
        while self._line and self.running < self.workers:
            waiter = heapq.heappop(self._line)
            if waiter.future.done():
                continue
            self.running += 1
            waiter.future.set_result(None)

    def _evict_worse(self, priority: float) -> bool:
        """Push the worst waiting job out if it is worse than ``priority``."""
        if not self._line:
            return False
        worst = max(self._line)
        if worst.priority <= priority:
            return False
        self._remove(worst)
        if not worst.future.done():
            worst.future.set_exception(PoolSaturated())
        self.evicted += 1
        return True

    def shutdown(self) -> None:
        """Stop the worker threads (running jobs finish first)."""
        for waiter in self._line:
            if not waiter.future.done():
                waiter.future.set_exception(PoolSaturated())
        self._line.clear()
        self._executor.shutdown(wait=True)
