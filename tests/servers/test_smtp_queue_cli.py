"""``mailwarden queue list|show|remove`` against a real store."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from mailwarden.admin.cli import run
from mailwarden.config import Config
from mailwarden.delivery.queue_cli import queue_list
from mailwarden.store.sqlite import SqliteStore


async def _enqueue(data_dir: Path) -> int:
    config = Config(data_dir=str(data_dir))
    store = await SqliteStore.open(config.sqlite_path, config.blob_path)
    try:
        queued = await store.enqueue_outbound(
            None,
            "a@example.test",
            ["x@remote.example"],
            b"Subject: q\r\n\r\nbody\r\n",
            '{"ret": "HDRS"}',
        )
        return queued.id
    finally:
        await store.close()


async def _ids(data_dir: Path) -> list[int]:
    config = Config(data_dir=str(data_dir))
    store = await SqliteStore.open(config.sqlite_path, config.blob_path)
    try:
        return [item["id"] for item in await queue_list(store)]
    finally:
        await store.close()


def test_queue_list_show_remove(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--data-dir", str(tmp_path)]
    assert run([*base, "queue", "list"]) == 0
    assert "the queue is empty" in capsys.readouterr().out
    qid = asyncio.run(_enqueue(tmp_path))

    assert run([*base, "queue", "list"]) == 0
    out = capsys.readouterr().out
    assert "<a@example.test> -> x@remote.example" in out

    assert run([*base, "queue", "list", "--json"]) == 0
    (item,) = json.loads(capsys.readouterr().out)
    assert item["id"] == qid and item["recipients"] == ["x@remote.example"]
    assert item["dsn"] == {"ret": "HDRS"}

    assert run([*base, "queue", "show", str(qid)]) == 0
    assert json.loads(capsys.readouterr().out)["size"] == len(b"Subject: q\r\n\r\nbody\r\n")
    assert run([*base, "queue", "show", str(qid), "--raw"]) == 0
    capsys.readouterr()

    assert run([*base, "queue", "remove", str(qid)]) == 0
    assert "removed 1 message" in capsys.readouterr().out
    assert asyncio.run(_ids(tmp_path)) == []
    assert run([*base, "queue", "remove", str(qid)]) == 3  # not found
    assert run([*base, "queue", "show", "12345"]) == 3
