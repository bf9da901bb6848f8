"""IMAP against clients nobody here wrote: Python's imaplib, imapclient, and mbsync.

The synchronous clients run in a thread (``asyncio.to_thread``) while the
server runs on the test's event loop.
"""

from __future__ import annotations

import asyncio
import email
import imaplib
import shutil
import ssl
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "proto" / "imap"))

from imap_harness import ImapNode, client_tls_context, imap_node
from imap_transcript import MESSAGES, PASSWORD, USER

from mailwarden.store.base import FlagMode

pytestmark = pytest.mark.interop

TIMEOUT = 30


def imaplib_session(port: int) -> None:
    m = imaplib.IMAP4("127.0.0.1", port, timeout=TIMEOUT)
    try:
        assert "IMAP4REV1" in m.capabilities
        m.starttls(ssl_context=client_tls_context())
        m.login(USER, PASSWORD)
        typ, data = m.select("INBOX")
        assert (typ, data) == ("OK", [b"3"])
        typ, data = m.search(None, "ALL")
        assert data == [b"1 2 3"]
        typ, data = m.fetch("1:3", "(RFC822)")
        bodies = [part[1] for part in data if isinstance(part, tuple)]
        assert bodies == list(MESSAGES)
        msg = email.message_from_bytes(bodies[0])
        assert msg["Subject"] == "one"
        typ, data = m.uid("SEARCH", "SUBJECT", "three")
        assert data == [b"3"]
        typ, data = m.store("1", "+FLAGS", r"(\Flagged)")
        assert typ == "OK"
        assert b"\\Flagged" in data[0]
        m.append("INBOX", r"(\Seen)", None, b"Subject: appended\r\n\r\nbody\r\n")
        typ, data = m.status("INBOX", "(MESSAGES UNSEEN)")
        assert data == [b'"INBOX" (MESSAGES 4 UNSEEN 0)']
        assert m.create("Projects/2024")[0] == "OK"
        typ, data = m.list()
        names = [line.split(b' "/" ')[1] for line in data]
        assert b'"Projects/2024"' in names
        assert m.copy("2", "Projects/2024")[0] == "OK"
        assert m.store("2", "+FLAGS", r"(\Deleted)")[0] == "OK"
        typ, data = m.expunge()
        assert data == [b"2"]
        typ, data = m.sort("(REVERSE DATE)", "UTF-8", "ALL")
        assert data == [b"3 2 1"]
        typ, data = m.thread("REFERENCES", "UTF-8", "ALL")
        assert typ == "OK"
        assert m.rename("Projects/2024", "Projects/Done")[0] == "OK"
        assert m.delete("Projects/Done")[0] == "OK"
        m.close()
    finally:
        m.logout()


async def test_imaplib(tmp_path: Path) -> None:
    async with imap_node(tmp_path, trust_loopback=False) as node:
        await asyncio.to_thread(imaplib_session, node.port)


def imaplib_ssl(port: int) -> None:
    m = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=client_tls_context(), timeout=TIMEOUT)
    try:
        m.authenticate("PLAIN", lambda _: f"\0{USER}\0{PASSWORD}".encode())
        m.select("INBOX", readonly=True)
        _, data = m.fetch("2", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert data[0][1] == b"Subject: Re: one\r\n\r\n"  # type: ignore[index]
        typ, data = m.store("1", "+FLAGS", r"(\Seen)")
        assert (typ, data) == ("NO", [b"[READ-ONLY] Mailbox is read-only"])
    finally:
        m.logout()


async def test_imaplib_implicit_tls_authenticate(tmp_path: Path) -> None:
    async with imap_node(tmp_path, trust_loopback=False) as node:
        await asyncio.to_thread(imaplib_ssl, node.tls_port)


BINARY_MESSAGE = (
    b"From: bob@example.test\r\nSubject: bin\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\n"
    b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    b"AAECAw==\r\n--XX--\r\n"
)


def imaplib_extensions(port: int, deliver: Callable[[bytes], None]) -> None:
    """imaplib against \\Recent, BINARY, SEARCHRES, ESORT and IMAP4rev2 (raw verbs)."""
    m = imaplib.IMAP4("127.0.0.1", port, timeout=TIMEOUT)
    try:
        m.login(USER, PASSWORD)
        assert m.select("INBOX") == ("OK", [b"3"])
        assert m.response("RECENT") == ("RECENT", [b"0"])  # nothing new since the node began
        deliver(BINARY_MESSAGE)
        assert m.recent() == ("OK", [b"1"])  # RFC 3501 §7.3.2, after * 4 EXISTS
        _, data = m.fetch("4", "(FLAGS BINARY.PEEK[1] BINARY.SIZE[1])")
        head, body = data[0]  # type: ignore[misc]
        assert b"\\Recent" in head and b"BINARY.SIZE[1] 4" in data[1]  # type: ignore[operator]
        assert body == b"\x00\x01\x02\x03"  # a literal8, decoded from base64
        # SEARCHRES: keep the result, then use it as "$"
        assert m.uid("SEARCH", "RETURN", "(SAVE)", "FROM", "bob") == ("OK", [None])
        _, data = m.fetch("$", "(UID)")
        assert data == [b"1 (UID 1)", b"4 (UID 4)"]
        # ESORT: ESEARCH in sort order
        typ, _ = m.uid("SORT", "RETURN", "(MIN ALL)", "(REVERSE", "ARRIVAL)", "UTF-8", "ALL")
        assert typ == "OK"
        assert m.response("ESEARCH")[1][0].endswith(b"UID MIN 4 ALL 4,1:3")
        m.logout()
        # a second client that enables IMAP4rev2
        m = imaplib.IMAP4("127.0.0.1", port, timeout=TIMEOUT)
        m.login(USER, PASSWORD)
        assert m.enable("IMAP4rev2") == ("OK", [b"ENABLE completed"])
        assert m.select("INBOX") == ("OK", [b"4"])
        assert m.response("RECENT") == ("RECENT", [None])  # no \\Recent in IMAP4rev2
        assert m.search(None, "ALL") == ("OK", [None])  # the answer is an ESEARCH
        (answer,) = m.response("ESEARCH")[1]
        assert answer.startswith(b'(TAG "') and answer.endswith(b'") ALL 1:4'), answer
    finally:
        m.logout()


async def test_imaplib_extensions(tmp_path: Path) -> None:
    async with imap_node(tmp_path) as node:
        loop = asyncio.get_running_loop()

        def deliver(raw: bytes) -> None:
            asyncio.run_coroutine_threadsafe(node.deliver(raw), loop).result(TIMEOUT)

        await asyncio.to_thread(imaplib_extensions, node.port, deliver)


def imapclient_session(port: int) -> None:
    from imapclient import IMAPClient

    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with IMAPClient("127.0.0.1", port=port, ssl=True, ssl_context=ctx, timeout=TIMEOUT) as c:
        c.login(USER, PASSWORD)
        caps = c.capabilities()
        for cap in (b"IDLE", b"MOVE", b"UIDPLUS", b"CONDSTORE", b"QRESYNC", b"ESEARCH", b"SORT"):
            assert cap in caps
        c.enable("CONDSTORE")
        info = c.select_folder("INBOX")
        assert info[b"EXISTS"] == 3
        assert b"HIGHESTMODSEQ" in info
        uids = c.search(["ALL"])
        assert uids == [1, 2, 3]
        data = c.fetch(uids, ["ENVELOPE", "BODYSTRUCTURE", "FLAGS", "MODSEQ", "RFC822.SIZE"])
        assert data[1][b"ENVELOPE"].subject == b"one"
        assert data[3][b"RFC822.SIZE"] == len(MESSAGES[2])
        c.add_flags([1], [b"\\Seen", b"$Important"])
        assert set(c.get_flags([1])[1]) == {b"\\Seen", b"$Important"}
        c.create_folder("Archive/2024")
        c.move([2], "Archive/2024")
        assert c.search(["ALL"]) == [1, 3]
        folders = {f[2] for f in c.list_folders()}
        assert {"INBOX", "Archive/2024", "Sent", "Trash"} <= folders
        special = {f[2]: f[0] for f in c.list_folders()}
        assert b"\\Sent" in special["Sent"]
        c.create_folder("Entwürfe ☃")
        assert "Entwürfe ☃" in {f[2] for f in c.list_folders()}
        status = c.folder_status("Archive/2024", [b"MESSAGES", b"UIDNEXT"])
        assert status[b"MESSAGES"] == 1
        assert c.thread(algorithm="REFERENCES") is not None
        assert c.sort(["SUBJECT"]) == [1, 3]
        c.idle()
        c.idle_done()
        c.unselect_folder()


async def test_imapclient(tmp_path: Path) -> None:
    async with imap_node(tmp_path) as node:
        await asyncio.to_thread(imapclient_session, node.tls_port)


def imapclient_idle(port: int, ready: asyncio.Event, loop: asyncio.AbstractEventLoop) -> list:
    from imapclient import IMAPClient

    with IMAPClient("127.0.0.1", port=port, ssl=False, timeout=TIMEOUT) as c:
        c.login(USER, PASSWORD)
        c.select_folder("INBOX")
        c.idle()
        loop.call_soon_threadsafe(ready.set)
        responses = c.idle_check(timeout=10)
        c.idle_done()
        return responses


async def test_imapclient_idle_push(tmp_path: Path) -> None:
    async with imap_node(tmp_path) as node:
        ready = asyncio.Event()
        task = asyncio.create_task(
            asyncio.to_thread(imapclient_idle, node.port, ready, asyncio.get_running_loop())
        )
        await ready.wait()
        await node.deliver(b"Subject: pushed\r\n\r\nhi\r\n")
        responses = await task
        assert (4, b"EXISTS") in responses


MBSYNC = shutil.which("mbsync")


def _mbsyncrc(tmp_path: Path, port: int) -> Path:
    maildir = tmp_path / "Mail"
    maildir.mkdir(exist_ok=True)
    rc = tmp_path / "mbsyncrc"
    rc.write_text(
        f"""IMAPAccount test
Host 127.0.0.1
Port {port}
User {USER}
Pass {PASSWORD}
SSLType STARTTLS
CertificateFile {tmp_path / "cert.pem"}
Timeout 20

IMAPStore remote
Account test

MaildirStore local
Path {maildir}/
Inbox {maildir}/INBOX
SubFolders Verbatim

Channel sync
Far :remote:
Near :local:
Patterns *
Create Both
Expunge Both
SyncState *
Sync All
"""
    )
    return rc


def _mbsync(rc: Path) -> str:
    proc = subprocess.run(
        [MBSYNC or "mbsync", "-c", str(rc), "-a", "-V"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


def _norm(body: bytes) -> bytes:
    """mbsync stores LF line ends and adds an X-TUID header while syncing."""
    lines = body.replace(b"\r\n", b"\n").split(b"\n")
    return b"\n".join(line for line in lines if not line.startswith(b"X-TUID: "))


def _maildir_state(root: Path) -> dict[str, list[tuple[str, bytes]]]:
    state: dict[str, list[tuple[str, bytes]]] = {}
    for box in sorted(p for p in root.rglob("cur") if p.is_dir()):
        entries = []
        for sub in ("cur", "new"):
            for f in sorted((box.parent / sub).iterdir()):
                flags = f.name.rsplit(":2,", 1)[1] if ":2," in f.name else ""
                entries.append((flags, f.read_bytes()))
        state[str(box.parent.relative_to(root))] = sorted(entries, key=lambda e: e[1])
    return state


async def _server_state(node: ImapNode) -> dict[str, list[tuple[frozenset[str], int]]]:
    account = node.accounts[USER]
    out = {}
    for folder in await node.store.list_folders(account):
        entries = await node.store.list_entries(account, folder.id)
        out[folder.name] = [(e.flags, e.size) for e in entries]
    return out


@pytest.mark.skipif(MBSYNC is None, reason="no mbsync; make test installs isync and fails on skips")
async def test_mbsync_two_way_sync(tmp_path: Path) -> None:
    async with imap_node(tmp_path, trust_loopback=False) as node:
        account = node.accounts[USER]
        inbox_id = (await node.store.get_folder(account, "INBOX")).id
        await node.store.store_flags(account, inbox_id, [2], ["\\Flagged"], FlagMode.ADD)
        rc = _mbsyncrc(tmp_path, node.port)
        await asyncio.to_thread(_mbsync, rc)
        maildir = tmp_path / "Mail"
        local = _maildir_state(maildir)
        assert sorted(_norm(body) for _, body in local["INBOX"]) == sorted(map(_norm, MESSAGES))
        assert ("F", _norm(MESSAGES[1])) in [(f, _norm(b)) for f, b in local["INBOX"]]
        # local changes: mark one seen, add a new message, delete one
        inbox = maildir / "INBOX"
        files = sorted((inbox / "cur").iterdir()) + sorted((inbox / "new").iterdir())
        by_body = {_norm(f.read_bytes()): f for f in files}
        seen = by_body[_norm(MESSAGES[0])]
        base = seen.name.split(":2,")[0]
        seen.rename(inbox / "cur" / f"{base}:2,S")
        gone = by_body[_norm(MESSAGES[2])]
        trashed = gone.name.split(":2,")[0]
        gone.rename(inbox / "cur" / f"{trashed}:2,T")
        (inbox / "new" / "1700000000.local.test").write_bytes(
            b"Subject: written offline\r\n\r\nhello\r\n"
        )
        await asyncio.to_thread(_mbsync, rc)
        server = await _server_state(node)
        inbox_flags = sorted(server["INBOX"], key=lambda e: e[1])
        assert len(inbox_flags) == 3  # 3 - 1 expunged + 1 new
        assert any("\\Seen" in f for f, _ in inbox_flags)
        # a second sync with nothing changed changes nothing on either side
        before_local = _maildir_state(maildir)
        before_server = await _server_state(node)
        await asyncio.to_thread(_mbsync, rc)
        assert _maildir_state(maildir) == before_local
        assert await _server_state(node) == before_server
