"""Durability: SIGKILL the SMTP server mid-burst; every message that got 250 survives once.

20 senders pipe messages over their own connections; each message carries a
unique id and the SHA-256 of its body.  The server process is killed with
SIGKILL once a good part of the burst has been acknowledged.  Reopening the
store afterwards (what a restart does) must show every acknowledged message in
its INBOX exactly once and intact, and nothing half-written.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import signal
import sys
from pathlib import Path

import pytest

from mailwarden.store.sqlite import SqliteStore

pytestmark = [pytest.mark.interop, pytest.mark.slow]

HERE = Path(__file__).resolve().parents[1] / "proto" / "smtp"
SENDERS = 20
PER_SENDER = 50  # a burst of 1,000 messages
KILL_AFTER = 400  # acknowledgements before the kill
TIMEOUT = 60


def make_message(sender: int, n: int) -> tuple[str, bytes]:
    msg_id = f"k{sender}-{n}"
    body = (f"line {n} of sender {sender} ".encode() * 40 + b"\r\n") * 8
    digest = hashlib.sha256(body).hexdigest()
    head = f"Message-ID: <{msg_id}@kill.test>\r\nX-Body-SHA256: {digest}\r\nSubject: {msg_id}\r\n"
    return msg_id, head.encode() + b"\r\n" + body


async def reply(reader: asyncio.StreamReader) -> bytes:
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("closed")
        if line[3:4] != b"-":
            return line


async def sender(port: int, index: int, acked: dict[str, bytes], enough: asyncio.Event) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        await reply(reader)
        writer.write(b"EHLO kill.test\r\n")
        await reply(reader)
        for n in range(PER_SENDER):
            msg_id, raw = make_message(index, n)
            rcpt = b"alice@example.test" if n % 2 else b"bob@example.test"
            # RFC 2920: the envelope and DATA in one write; the content after 354.
            writer.write(b"MAIL FROM:<s@kill.test>\r\nRCPT TO:<" + rcpt + b">\r\nDATA\r\n")
            for _ in range(3):
                assert (await reply(reader))[:1] in b"23"
            writer.write(raw + b".\r\n")
            if (await reply(reader)).startswith(b"250 "):
                acked[msg_id] = raw
                if len(acked) >= KILL_AFTER:
                    enough.set()
    finally:
        writer.close()


async def test_sigkill_during_smtp_burst_keeps_every_acknowledged_message(tmp_path: Path) -> None:
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        str(HERE / "smtp_kill_server.py"),
        str(tmp_path),
        stdout=asyncio.subprocess.PIPE,
    )
    acked: dict[str, bytes] = {}
    try:
        assert child.stdout is not None
        line = (await asyncio.wait_for(child.stdout.readline(), TIMEOUT)).decode()
        match = re.fullmatch(r"port (\d+)\n", line)
        assert match, line
        port = int(match.group(1))
        enough = asyncio.Event()
        tasks = [asyncio.create_task(sender(port, i, acked, enough)) for i in range(SENDERS)]
        waiter = asyncio.create_task(enough.wait())
        done, _ = await asyncio.wait(
            [waiter, asyncio.gather(*tasks, return_exceptions=True)],
            timeout=TIMEOUT,
            return_when=asyncio.FIRST_COMPLETED,
        )
        assert waiter in done, "the burst did not reach the kill point in time"
        os.kill(child.pid, signal.SIGKILL)  # mid-burst: deliveries are in flight
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert any(isinstance(r, ConnectionError | OSError) for r in results)
    finally:
        with contextlib.suppress(ProcessLookupError):
            child.kill()
        await child.wait()
    assert len(acked) >= KILL_AFTER

    store = await SqliteStore.open(tmp_path / "db.sqlite", tmp_path / "blobs")
    try:
        found: dict[str, list[bytes]] = {}
        for user in ("alice@example.test", "bob@example.test"):
            account = await store.find_account(user)
            assert account is not None
            inbox = await store.get_folder(account.id, "INBOX")
            for entry in await store.list_entries(account.id, inbox.id):
                raw = await store.read_message(account.id, inbox.id, entry.uid)
                assert len(raw) == entry.size
                m = re.search(rb"Message-ID: <(k\d+-\d+)@kill.test>", raw)
                assert m, raw[:200]
                found.setdefault(m.group(1).decode(), []).append(raw)
        for msg_id, sent in acked.items():
            copies = found.get(msg_id, [])
            assert len(copies) == 1, f"{msg_id}: {len(copies)} copies"
            assert copies[0].endswith(b"\r\n" + sent)  # after Return-Path and Received
        # Nothing stored twice, acknowledged or not, and every copy is whole.
        for msg_id, copies in found.items():
            assert len(copies) == 1, msg_id
            head, _, body = copies[0].partition(b"\r\n\r\n")
            digest = re.search(rb"X-Body-SHA256: ([0-9a-f]{64})", head)
            assert digest and hashlib.sha256(body).hexdigest().encode() == digest.group(1)
    finally:
        with contextlib.suppress(Exception):
            await store.close()
