"""The store contract against the SQLite backend, plus SQLite-specific checks."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from store_contract import *  # noqa: F403 - the shared contract tests run here
from store_contract import make_account, message

from mailwarden.store.base import Store, StoreUnavailable
from mailwarden.store.sqlite import SqliteStore


@pytest.fixture(params=["inline", "files"])
async def store(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Store]:
    """The SQLite store, with small messages inline (default) and with every blob in a file."""
    inline_max = 0 if request.param == "files" else 256 * 1024
    s = await SqliteStore.open(tmp_path / "db.sqlite", tmp_path / "blobs", inline_max=inline_max)
    yield s
    await s.close()


async def test_database_is_in_wal_mode_and_survives_reopen(tmp_path: Path) -> None:
    s = await SqliteStore.open(tmp_path / "db.sqlite", tmp_path / "blobs")
    account = await make_account(s)
    await s.append(account.id, "INBOX", message("kept"))
    await s.close()
    assert (tmp_path / "db.sqlite-wal").exists() or (tmp_path / "db.sqlite").exists()
    s = await SqliteStore.open(tmp_path / "db.sqlite", tmp_path / "blobs")
    inbox = await s.get_folder(account.id, "INBOX")
    assert await s.read_message(account.id, inbox.id, 1) == message("kept")
    await s.close()
    with pytest.raises(StoreUnavailable):
        await s.list_domains()


async def test_orphaned_blobs_are_removed_at_open(tmp_path: Path) -> None:
    s = await SqliteStore.open(tmp_path / "db.sqlite", tmp_path / "blobs")
    account = await make_account(s)
    await s.append(account.id, "INBOX", message("kept"))
    await s.close()
    orphan_dir = tmp_path / "blobs" / "ff"
    orphan_dir.mkdir(exist_ok=True)
    orphan = orphan_dir / "ff00orphan"
    orphan.write_bytes(b"never committed")
    old = time.time() - 7200
    os.utime(orphan, (old, old))
    s = await SqliteStore.open(tmp_path / "db.sqlite", tmp_path / "blobs")
    assert not orphan.exists()
    inbox = await s.get_folder(account.id, "INBOX")
    assert await s.read_message(account.id, inbox.id, 1) == message("kept")
    await s.close()


async def test_expunged_messages_release_their_blob_files(tmp_path: Path) -> None:
    s = await SqliteStore.open(tmp_path / "db.sqlite", tmp_path / "blobs", inline_max=0)
    account = await make_account(s)
    await s.append(account.id, "INBOX", message("gone"), flags=["\\Deleted"])
    inbox = await s.get_folder(account.id, "INBOX")
    files = [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()]
    assert len(files) == 1
    await s.expunge(account.id, inbox.id)
    assert not files[0].exists()
    await s.close()


async def test_many_concurrent_appends_share_commits(tmp_path: Path) -> None:
    import asyncio

    s = await SqliteStore.open(tmp_path / "db.sqlite", tmp_path / "blobs")
    account = await make_account(s)
    results = await asyncio.gather(
        *(s.append(account.id, "INBOX", message(f"n{i}")) for i in range(200))
    )
    assert sorted(r.uid for r in results) == list(range(1, 201))
    await s.close()


async def test_small_messages_are_inline_and_large_ones_in_files(tmp_path: Path) -> None:
    s = await SqliteStore.open(tmp_path / "db.sqlite", tmp_path / "blobs", inline_max=1000)
    account = await make_account(s)
    await s.append(account.id, "INBOX", message("small"))
    assert not [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()]
    big = message("big", body="y" * 2000)
    await s.append(account.id, "INBOX", big)
    assert len([p for p in (tmp_path / "blobs").rglob("*") if p.is_file()]) == 1
    inbox = await s.get_folder(account.id, "INBOX")
    assert await s.read_messages(account.id, inbox.id, [1, 2]) == {1: message("small"), 2: big}
    await s.close()
