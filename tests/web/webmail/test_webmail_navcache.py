"""The folder cache: counts and folder lists follow the store's change notifications."""

from __future__ import annotations

import asyncio
from typing import Any

from webmail_world import ALICE, BOB, World, login, message

from mailwarden.store.base import FlagMode, SpecialUse
from mailwarden.web.webmail import navcache
from mailwarden.web.webmail.navcache import FolderCache


class Counting:
    """The store, counting the reads the cache makes."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self.changes = store.changes
        self.calls: dict[str, int] = {}

    async def list_folders(self, account: Any) -> Any:
        self.calls["list_folders"] = self.calls.get("list_folders", 0) + 1
        return await self._store.list_folders(account)

    async def folder_status(self, account: Any, name: str) -> Any:
        key = f"status {name}"
        self.calls[key] = self.calls.get(key, 0) + 1
        return await self._store.folder_status(account, name)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _by_name(statuses: list[Any]) -> dict[str, tuple[int, int]]:
    return {s.folder.name: (s.messages, s.unseen) for s in statuses}


async def test_counts_are_read_once_and_again_only_for_the_changed_folder(world: World) -> None:
    store = Counting(world.store)
    cache = FolderCache(store)  # type: ignore[arg-type]
    alice = await world.account(ALICE[0])
    first = _by_name(await cache.statuses(alice.id))
    assert first["INBOX"] == (0, 0)
    reads = dict(store.calls)
    assert await cache.statuses(alice.id)
    assert store.calls == reads  # nothing changed: nothing read

    uid = await world.deliver(ALICE[0], message("One"))
    assert _by_name(await cache.statuses(alice.id))["INBOX"] == (1, 1)
    assert store.calls["status INBOX"] == reads["status INBOX"] + 1
    assert store.calls["status Sent"] == reads["status Sent"]  # untouched folders stay

    inbox = await world.store.get_folder(alice.id, "INBOX")
    await world.store.store_flags(alice.id, inbox.id, [uid], ["\\Seen"], FlagMode.ADD)
    assert _by_name(await cache.statuses(alice.id))["INBOX"] == (1, 0)
    await world.store.move(alice.id, inbox.id, [uid], "Trash")
    after = _by_name(await cache.statuses(alice.id))
    assert after["INBOX"] == (0, 0)
    assert after["Trash"] == (1, 0)
    cache.close()


async def test_folder_changes_reload_the_list(world: World) -> None:
    cache = FolderCache(world.store)
    alice = await world.account(ALICE[0])
    names = [f.name for f in await cache.folders(alice.id)]
    assert "Projects" not in names
    await world.store.create_folder(alice.id, "Projects")
    assert "Projects" in [f.name for f in await cache.folders(alice.id)]
    await world.store.rename_folder(alice.id, "Projects", "Work")
    names = [f.name for f in await cache.folders(alice.id)]
    assert "Work" in names
    assert "Projects" not in names
    statuses = _by_name(await cache.statuses(alice.id))
    assert statuses["Work"] == (0, 0)
    await world.store.delete_folder(alice.id, "Work")
    assert "Work" not in _by_name(await cache.statuses(alice.id))
    cache.close()


async def test_accounts_are_kept_apart_and_bounded(world: World) -> None:
    cache = FolderCache(world.store, max_accounts=1)
    alice = await world.account(ALICE[0])
    bob = await world.account(BOB[0])
    await world.deliver(BOB[0], message("For Bob"))
    assert _by_name(await cache.statuses(alice.id))["INBOX"] == (0, 0)
    assert _by_name(await cache.statuses(bob.id))["INBOX"] == (1, 1)
    # Alice's entry went (one account at most), and with it her subscription.
    assert alice.id not in world.store.changes._subs
    assert _by_name(await cache.statuses(alice.id))["INBOX"] == (0, 0)
    cache.close()
    assert not world.store.changes._subs


async def test_old_entries_and_lost_notifications_reload_everything(world: World) -> None:
    store = Counting(world.store)
    clock = Clock()
    cache = FolderCache(store, clock=clock)  # type: ignore[arg-type]
    alice = await world.account(ALICE[0])
    await cache.statuses(alice.id)
    assert store.calls["list_folders"] == 1
    clock.now += navcache.MAX_AGE + 1
    await cache.statuses(alice.id)
    assert store.calls["list_folders"] == 2
    # A subscription that overflowed lost changes: start again.
    (subscription,) = world.store.changes._subs[alice.id]
    subscription.overflowed = True
    await cache.statuses(alice.id)
    assert store.calls["list_folders"] == 3
    cache.close()


async def test_concurrent_requests_share_one_count(world: World) -> None:
    store = Counting(world.store)
    cache = FolderCache(store)  # type: ignore[arg-type]
    alice = await world.account(ALICE[0])
    await cache.statuses(alice.id)
    await world.deliver(ALICE[0], message("One"))
    results = await asyncio.gather(*(cache.statuses(alice.id) for _ in range(5)))
    assert all(_by_name(r)["INBOX"] == (1, 1) for r in results)
    assert store.calls["status INBOX"] == 2  # the first fill and one recount
    cache.close()


async def test_pages_show_fresh_counts_after_actions(world: World) -> None:
    uids = [await world.deliver(ALICE[0], message(f"M{i}")) for i in range(3)]
    inbox = await world.folder_id(ALICE[0])
    async with world.client() as client:
        await login(client)
        page = await client.get(f"/mail/{inbox}")
        assert 'data-unseen="3"' in page.text
        # The reading view shows the count as it is once this message is read.
        page = await client.get(f"/mail/{inbox}/{uids[0]}")
        assert 'data-unseen="2"' in page.text
        page = await client.get(f"/mail/{inbox}")
        assert 'data-unseen="2"' in page.text
        # Reading it again changes nothing.
        page = await client.get(f"/mail/{inbox}/{uids[0]}")
        assert 'data-unseen="2"' in page.text
        # A new folder made elsewhere (IMAP, say) shows up on the next page.
        alice = await world.account(ALICE[0])
        await world.store.create_folder(alice.id, "Receipts")
        await world.store.create_folder(alice.id, "Old", SpecialUse.ARCHIVE)
        page = await client.get(f"/mail/{inbox}")
        assert "Receipts" in page.text
        counts = (await client.get("/mail/counts")).json()
        assert counts[str(inbox)] == {"unseen": 2, "messages": 3}
