"""``mailwarden queue ...``: look at and prune the outbound queue.

Commands::

    queue list [--json]          every queued message, oldest first
    queue show ID [--raw]        one message's envelope and DSN parameters (or its octets)
    queue remove ID...           drop messages from the queue

The admin functions (:func:`queue_list`, :func:`queue_show`,
:func:`queue_remove`) take a store and return plain data, so the admin API can
call them too.  :func:`register` adds the command group to the main CLI; its
handlers have the ``handler(args, config) -> int`` signature it expects, and
a missing id raises :class:`~mailwarden.store.base.NotFound`, which the main
CLI turns into exit code 3.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from mailwarden.config import Config
from mailwarden.store.base import AdminStore, QueuedMessage, Store

__all__ = ["queue_dict", "queue_list", "queue_remove", "queue_show", "register"]


def queue_dict(q: QueuedMessage) -> dict[str, Any]:
    """A queued message as plain data (times in ISO-8601 UTC)."""
    return {
        "id": q.id,
        "account_id": q.account_id,
        "from": q.mail_from,
        "recipients": list(q.recipients),
        "size": q.size,
        "created": _iso(q.created),
        "next_attempt": _iso(q.next_attempt),
        "attempts": q.attempts,
        "last_error": q.last_error,
        "dsn": json.loads(q.dsn or "{}"),
    }


def _iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


async def queue_list(store: AdminStore) -> list[dict[str, Any]]:
    """Every queued message, oldest first."""
    return [queue_dict(q) for q in await store.list_queue()]


async def queue_show(store: AdminStore, queue_id: int) -> tuple[dict[str, Any], bytes]:
    """One queued message and its octets. Raises NotFound."""
    queued, raw = await store.get_queued(queue_id)
    return queue_dict(queued), raw


async def queue_remove(store: AdminStore, queue_ids: Sequence[int]) -> int:
    """Drop messages from the queue; returns how many. Raises NotFound for a bad id."""
    for queue_id in queue_ids:
        await store.remove_queued(queue_id)
    return len(queue_ids)


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add the ``queue`` command group to the main CLI."""
    queue = subparsers.add_parser("queue", help="the outbound queue")
    actions = queue.add_subparsers(dest="queue_action", required=True)
    lst = actions.add_parser("list", help="list queued messages")
    lst.add_argument("--json", action="store_true", help="machine-readable output")
    lst.set_defaults(handler=_handler(_list))
    show = actions.add_parser("show", help="show one queued message")
    show.add_argument("id", type=int)
    show.add_argument("--raw", action="store_true", help="print the message octets instead")
    show.set_defaults(handler=_handler(_show))
    rm = actions.add_parser("remove", help="drop queued messages")
    rm.add_argument("id", type=int, nargs="+")
    rm.set_defaults(handler=_handler(_remove))


Action = Callable[[argparse.Namespace, Store], Awaitable[int]]


def _handler(action: Action) -> Callable[[argparse.Namespace, Config], int]:
    def run(args: argparse.Namespace, config: Config) -> int:
        from mailwarden.admin import ops

        async def go() -> int:
            store = await ops.open_store(config)
            try:
                return await action(args, store)
            finally:
                await store.close()

        return asyncio.run(go())

    return run


async def _list(args: argparse.Namespace, store: Store) -> int:
    items = await queue_list(store)
    if args.json:
        print(json.dumps(items, indent=2, ensure_ascii=False))
        return 0
    if not items:
        print("the queue is empty")
        return 0
    print(f"{'ID':>6}  {'SIZE':>8}  {'CREATED':25}  {'TRIES':>5}  FROM -> TO")
    for q in items:
        rcpts = ", ".join(q["recipients"])
        print(
            f"{q['id']:>6}  {q['size']:>8}  {q['created']:25}  {q['attempts']:>5}"
            f"  <{q['from']}> -> {rcpts}"
        )
    return 0


async def _show(args: argparse.Namespace, store: Store) -> int:
    info, raw = await queue_show(store, args.id)
    if args.raw:
        sys.stdout.buffer.write(raw)
        sys.stdout.flush()
    else:
        print(json.dumps(info, indent=2, ensure_ascii=False))
    return 0


async def _remove(args: argparse.Namespace, store: Store) -> int:
    count = await queue_remove(store, args.id)
    print(f"removed {count} message{'s' if count != 1 else ''}")
    return 0
