"""Durability: SIGKILL during a burst of appends loses nothing that was acknowledged."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from mailwarden.store.sqlite import SqliteStore

HERE = Path(__file__).parent


def append_then_kill(data: Path, inline_max: int) -> dict[int, str]:
    """Run the appender, SIGKILL it mid-burst; return {uid: sha256} it acknowledged."""
    child = subprocess.Popen(
        [sys.executable, str(HERE / "kill_appender.py"), str(data), str(inline_max)],
        stdout=subprocess.PIPE,
        text=True,
    )
    acknowledged: dict[int, str] = {}
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        while len(acknowledged) < 300:
            line = child.stdout.readline()
            assert line, "the appender died on its own"
            uid, sha = line.split()
            acknowledged[int(uid)] = sha
        os.kill(child.pid, signal.SIGKILL)  # mid-burst: 8 appends are in flight
        # Lines the child wrote before dying also count as acknowledged.
        for line in child.stdout:
            if line.endswith("\n"):
                uid, sha = line.split()
                acknowledged[int(uid)] = sha
    finally:
        child.kill()
        child.wait()
        if child.stdout is not None:
            child.stdout.close()
    return acknowledged


@pytest.mark.parametrize("inline_max", [0, 1 << 20], ids=["files", "inline"])
async def test_sigkill_during_appends_keeps_every_acknowledged_message(
    tmp_path: Path, inline_max: int
) -> None:
    acknowledged = append_then_kill(tmp_path, inline_max)

    store = await SqliteStore.open(tmp_path / "db.sqlite", tmp_path / "blobs")
    try:
        account = await store.find_account("demo@example.test")
        assert account is not None
        inbox = await store.get_folder(account.id, "INBOX")
        entries = {e.uid: e for e in await store.list_entries(account.id, inbox.id)}
        for uid, sha in acknowledged.items():
            assert uid in entries, f"acknowledged UID {uid} is missing"
            raw = await store.read_message(account.id, inbox.id, uid)
            assert hashlib.sha256(raw).hexdigest() == sha
        # No half-written message is visible: every entry reads back whole.
        conn = sqlite3.connect(tmp_path / "db.sqlite")
        expected = dict(
            conn.execute(
                "SELECT e.uid, m.sha256 FROM entries e JOIN messages m ON m.id = e.message_id"
            ).fetchall()
        )
        conn.close()
        assert set(expected) == set(entries)
        for uid, sha in expected.items():
            raw = await store.read_message(account.id, inbox.id, uid)
            assert hashlib.sha256(raw).hexdigest() == sha
            assert entries[uid].size == len(raw)
    finally:
        await store.close()
