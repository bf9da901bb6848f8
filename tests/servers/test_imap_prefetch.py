"""Chunks and loads kept in flight ahead of the consumer (servers/imap_prefetch.py)."""

from __future__ import annotations

import asyncio

import pytest

from mailwarden.servers.imap_prefetch import chunked, load_ahead


def test_chunked_starts_small() -> None:
    sizes = [len(c) for c in chunked(list(range(1000)), 256, first=64)]
    assert sizes == [64, 128, 256, 256, 256, 40]
    assert chunked([], 256) == []
    assert [len(c) for c in chunked(list(range(5)), 2, first=8)] == [2, 2, 1]


async def test_loads_in_order_with_bounded_lookahead() -> None:
    started: list[int] = []
    in_flight = 0
    most = 0

    async def load(chunk: int) -> int:
        nonlocal in_flight, most
        started.append(chunk)
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0)
        in_flight -= 1
        return chunk * 10

    got = []
    async with load_ahead([1, 2, 3, 4], load, depth=2) as loaded:
        async for chunk, value in loaded:
            got.append((chunk, value))
    assert got == [(1, 10), (2, 20), (3, 30), (4, 40)]
    assert started == [1, 2, 3, 4]
    assert most <= 2


async def test_leaving_early_cancels_what_is_loading() -> None:
    gate = asyncio.Event()
    cancelled = []

    async def load(chunk: int) -> int:
        if chunk > 1:
            try:
                await gate.wait()
            except asyncio.CancelledError:
                cancelled.append(chunk)
                raise
        return chunk

    async def consume() -> None:
        async with load_ahead([1, 2, 3], load, depth=2) as loaded:
            async for chunk, _ in loaded:
                assert chunk == 1
                raise RuntimeError("the connection went away")

    with pytest.raises(RuntimeError):
        await consume()
    assert cancelled == [2]
