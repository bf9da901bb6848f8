"""Load the next chunks of messages while the current one is being answered.

FETCH and SEARCH work through a folder in chunks: load (the store, on its
own threads), then render or evaluate (the event loop).  Keeping a load or
two in flight lets the store's reading overlap the loop's work and the
socket, instead of the two taking turns.  At most ``depth`` loads are
pending, so memory stays bounded by the chunk size; loads still in flight
when the consumer stops early (an error, a closed connection) are cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from typing import TypeVar

__all__ = ["chunked", "load_ahead"]

T = TypeVar("T")
R = TypeVar("R")


def chunked(items: Sequence[T], size: int, first: int = 64) -> list[Sequence[T]]:
    """``items`` in chunks of ``size``, the first ones smaller so output starts soon.

    The chunk sizes go ``first``, ``2 * first``, ... up to ``size``.
    """
    out: list[Sequence[T]] = []
    i, n = 0, max(1, min(first, size))
    while i < len(items):
        out.append(items[i : i + n])
        i += n
        n = min(size, n * 2)
    return out


@contextlib.asynccontextmanager
async def load_ahead(
    chunks: Sequence[T], load: Callable[[T], Awaitable[R]], depth: int = 2
) -> AsyncIterator[AsyncIterator[tuple[T, R]]]:
    """Iterate ``(chunk, load(chunk))`` in order with up to ``depth`` loads in flight.

    Use as ``async with load_ahead(chunks, load) as loaded: async for chunk, data
    in loaded: ...``; leaving the block cancels what is still loading.
    """
    pending: deque[asyncio.Future[R]] = deque()

    async def run() -> AsyncGenerator[tuple[T, R], None]:
        started = 0
        for chunk in chunks:
            while started < len(chunks) and len(pending) < depth:
                pending.append(asyncio.ensure_future(load(chunks[started])))
                started += 1
            yield chunk, await pending.popleft()

    gen = run()
    try:
        yield gen
    finally:
        await gen.aclose()
        for fut in pending:
            fut.cancel()
        for fut in pending:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await fut
