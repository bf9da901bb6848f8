"""argon2id password hashing on a bounded pool of threads.

argon2-cffi runs the hash in C through cffi, which releases the GIL for the
call, so a pool of threads (one per core by default) uses every core while the
event loop stays free.  The pool is bounded twice: ``workers`` hashes run at
once, and at most ``max_pending`` more may wait; beyond that :meth:`run`
refuses at once with :class:`PoolSaturated` instead of queueing without limit.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
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
    """Every worker is busy and the waiting line is full."""


class VerifyPool:
    """A bounded thread pool for password hashing."""

    def __init__(self, workers: int = 0, max_pending: int = 64) -> None:
        self.workers = workers or os.cpu_count() or 1
        self.max_pending = max_pending
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="argon2")
        self.in_flight = 0  # running or waiting

    @property
    def capacity(self) -> int:
        """Jobs admitted at once: running plus waiting."""
        return self.workers + self.max_pending

    async def run(self, fn: Callable[[], T], *, reserve: int = 0) -> T:
        """Run ``fn`` on the pool.

        Args:
            fn: the hashing work.
            reserve: slots of the capacity this call must leave free for others
                (a lower-priority lane passes a positive number).

        Raises:
            PoolSaturated: admitting it would exceed the capacity minus ``reserve``.
        """
        if self.in_flight >= self.capacity - reserve:
            raise PoolSaturated
        self.in_flight += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._executor, fn)
        finally:
            self.in_flight -= 1

    def shutdown(self) -> None:
        """Stop the worker threads (waiting jobs finish first)."""
        self._executor.shutdown(wait=True)
