"""The round trip of issue 4: send with swaks, read back with IMAP and POP3.

A whole node (``mailwarden.app.Node``, the composition root the CLI runs) is
started in-process on ephemeral ports.  swaks sends one message we wrote octet
by octet: an RFC 2047 encoded-word subject in UTF-8, a quoted-printable text
part with lines that start with dots (so the client must dot-stuff and we must
un-stuff), and an attachment of random bytes in base64.  It goes once to the
MX port and once through submission after STARTTLS and AUTH.

Python's imaplib (``BODY.PEEK[]``) and poplib (``RETR``) then read it back, and
what they get must be exactly our two trace headers (``Return-Path:`` and
``Received:``, RFC 5321 §4.4) followed by the octets swaks was given: nothing
re-encoded, re-folded or re-ordered.  The decoded subject and the attachment
bytes are checked too, and POP3's ``LIST`` size must be the real size.
"""

from __future__ import annotations

import asyncio
import base64
import email
import email.header
import email.policy
import imaplib
import poplib
import random
import re
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from mailwarden.admin import ops
from mailwarden.app import Node
from mailwarden.auth.passwords import PasswordHasher
from mailwarden.config import Config, load_config

pytestmark = pytest.mark.interop

SWAKS = shutil.which("swaks")
TIMEOUT = 30
USER = "roundtrip@example.test"
PASSWORD = "round-trip-secret"
REMOTE_SENDER = "joerg@remote.example"
SUBJECT = "Grüße aus Köln ✉ — Ünïcödé, 日本語"
ATTACHMENT = random.Random(4).randbytes(20_000) + bytes(range(256))
BOUNDARY = "=-roundtrip-8d0c2f"


def swaks_has_tls() -> bool:
    if SWAKS is None:
        return False
    out = subprocess.run([SWAKS, "--support"], capture_output=True, text=True, check=False)
    return "TLS not available" not in out.stdout + out.stderr


needs_swaks = pytest.mark.skipif(
    SWAKS is None, reason="no swaks; make test installs it and fails on skips"
)


def the_message(sender: str) -> bytes:
    """The message swaks is given, as exact octets (CRLF line ends).

    It has no CRLF after its last line: swaks always ends DATA with
    ``<CRLF>.<CRLF>``, whose CRLF then ends that line (RFC 5321 §4.1.1.4), so
    what the server receives is this plus CRLF.
    """
    subject = email.header.Header(SUBJECT, "utf-8", header_name="Subject").encode(linesep="\r\n")
    assert subject.startswith("=?utf-8?") and subject.isascii() and "\r\n " in subject
    b64 = base64.encodebytes(ATTACHMENT).decode("ascii").splitlines()
    lines = [
        f"From: =?utf-8?q?J=C3=B6rg?= <{sender}>",
        f"To: {USER}",
        f"Subject: {subject}",
        "Date: Thu, 02 May 2024 09:11:00 +0200",
        "Message-ID: <roundtrip.4@remote.example>",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/mixed; boundary="{BOUNDARY}"',
        "",
        "This is a multi-part message in MIME format.",
        "",
        f"--{BOUNDARY}",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: quoted-printable",
        "",
        "Gr=C3=BC=C3=9Fe,",
        ".a line that starts with a dot",
        "..and one with two",
        ".",
        "   trailing spaces stay   ",
        f"--{BOUNDARY}",
        'Content-Type: application/octet-stream; name="random.bin"',
        'Content-Disposition: attachment; filename="random.bin"',
        "Content-Transfer-Encoding: base64",
        "",
        *b64,
        f"--{BOUNDARY}--",
    ]
    return "\r\n".join(lines).encode("ascii")


# --- the node ---------------------------------------------------------------------------


@dataclass
class RunningNode:
    node: Node
    config: Config

    def port(self, name: str) -> int:
        (listener,) = [lst for lst in self.node.listeners if lst.handler.name == name]
        return listener.port

    def client_tls(self) -> ssl.SSLContext:
        """Trusts the node's own certificate (it names "localhost", we dial 127.0.0.1)."""
        ctx = ssl.create_default_context(cafile=str(self.config.cert_path))
        ctx.check_hostname = False
        return ctx


@asynccontextmanager
async def running_node(data_dir: Path) -> AsyncIterator[RunningNode]:
    """The real composition root, every mail service on 127.0.0.1 port 0, no web."""
    overrides: dict[str, object] = {
        "data_dir": str(data_dir),
        "auth.argon2_memory_kib": 64,
        "auth.argon2_time_cost": 1,
        "auth.verify_workers": 1,
        "status.enabled": False,
        "web.enabled": False,
    }
    for key in (
        "smtp.port",
        "submission.port",
        "submission.tls_port",
        "imap.port",
        "imap.tls_port",
        "pop3.port",
        "pop3.tls_port",
    ):
        overrides[key] = 0
    config = load_config(env={}, overrides=overrides)
    await ops.init_data_dir(config, demo=False)
    node = await Node.start(config, with_status=False)
    try:
        await node.store.add_domain("example.test")
        hasher = PasswordHasher(ops.hash_params(config))
        await ops.add_user(node.store, hasher, USER, PASSWORD)
        yield RunningNode(node, config)
    finally:
        await node.stop()


async def swaks(data_file: Path, *args: str) -> str:
    assert SWAKS is not None
    proc = await asyncio.create_subprocess_exec(
        SWAKS,
        "--server",
        "127.0.0.1",
        "--helo",
        "client.remote.example",
        "--timeout",
        str(TIMEOUT),
        "--to",
        USER,
        "--data",
        f"@{data_file}",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(TIMEOUT * 2):
        out, _ = await proc.communicate()
    text = out.decode("utf-8", "replace")
    assert proc.returncode == 0, text
    return text


# --- the readers ------------------------------------------------------------------------


def read_imap(port: int, tls: ssl.SSLContext) -> list[bytes]:
    with imaplib.IMAP4("127.0.0.1", port, timeout=TIMEOUT) as imap:
        imap.starttls(tls)
        imap.login(USER, PASSWORD)
        typ, _ = imap.select("INBOX", readonly=True)
        assert typ == "OK"
        typ, data = imap.uid("SEARCH", "ALL")
        assert typ == "OK"
        out = []
        for uid in data[0].split():
            typ, fetched = imap.uid("FETCH", uid, "(BODY.PEEK[])")
            assert typ == "OK"
            item = fetched[0]
            assert isinstance(item, tuple), fetched
            out.append(item[1])
        imap.logout()
    return out


def read_pop3(port: int, tls: ssl.SSLContext) -> list[bytes]:
    pop = poplib.POP3("127.0.0.1", port, timeout=TIMEOUT)
    try:
        pop.stls(tls)
        pop.user(USER)
        pop.pass_(PASSWORD)
        _, listing, _ = pop.list()
        out = []
        for entry in listing:
            number, size = (int(x) for x in entry.split())
            _, lines, _ = pop.retr(number)  # poplib un-stuffs leading dots
            message = b"".join(line + b"\r\n" for line in lines)
            assert len(message) == size, "LIST must give the exact size (RFC 1939 §5)"
            out.append(message)
    finally:
        pop.quit()  # no DELE: nothing changes
    return out


# --- the checks -------------------------------------------------------------------------

_TRACE = re.compile(
    rb"Return-Path: <(?P<sender>[^>\r\n]*)>\r\n"
    rb"Received: from client\.remote\.example \(\[127\.0\.0\.1\]\)\r\n"
    rb"\tby localhost with (?P<with>[A-Z0-9]+) id [0-9a-f]+\r\n"
    rb"\tfor <roundtrip@example\.test>; [A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4}"
    rb" \d{2}:\d{2}:\d{2} \+0000\r\n"
)


def check_received(received: bytes, sent: bytes, sender: str, protocol: bytes) -> None:
    """``received`` is exactly our two trace headers followed by ``sent``."""
    trace = _TRACE.match(received)
    assert trace is not None, received[:400]
    assert trace["sender"] == sender.encode()
    assert trace["with"] == protocol
    assert received == trace.group(0) + sent
    parsed = email.message_from_bytes(received, policy=email.policy.default)
    assert parsed["Subject"] == SUBJECT
    assert parsed["From"].addresses[0].display_name == "Jörg"
    (text,) = [p for p in parsed.walk() if p.get_content_type() == "text/plain"]
    assert text.get_content().splitlines()[1:4] == [
        ".a line that starts with a dot",
        "..and one with two",
        ".",
    ]
    (attachment,) = parsed.iter_attachments()
    assert attachment.get_filename() == "random.bin"
    assert attachment.get_content() == ATTACHMENT


@needs_swaks
async def test_round_trip_swaks_to_imap_and_pop3(tmp_path: Path) -> None:
    mx_message = the_message(REMOTE_SENDER)
    submitted = the_message(USER)
    (tmp_path / "mx.eml").write_bytes(mx_message)
    (tmp_path / "submitted.eml").write_bytes(submitted)
    mx_message += b"\r\n"  # what goes on the wire (see the_message)
    submitted += b"\r\n"
    async with running_node(tmp_path / "data") as rn:
        # MX: a stranger's server delivers to our mailbox.
        await swaks(tmp_path / "mx.eml", "--port", str(rn.port("smtp")), "--from", REMOTE_SENDER)
        # Submission: the owner sends to themself after STARTTLS and AUTH, if this
        # swaks can do TLS (Debian: libnet-ssleay-perl); else on loopback in clear.
        tls = ("--tls",) if swaks_has_tls() else ()
        out = await swaks(
            tmp_path / "submitted.eml",
            "--port", str(rn.port("submission")), *tls, "--from", USER,
            "--auth", "PLAIN", "--auth-user", USER, "--auth-password", PASSWORD,
        )  # fmt: skip
        assert "235 2.7.0" in out
        client_tls = rn.client_tls()
        by_imap = await asyncio.to_thread(read_imap, rn.port("imap"), client_tls)
        by_pop3 = await asyncio.to_thread(read_pop3, rn.port("pop3"), client_tls)
    assert len(by_imap) == 2
    assert by_imap == by_pop3  # the two readers see the very same octets
    check_received(by_imap[0], mx_message, REMOTE_SENDER, b"ESMTP")
    check_received(by_imap[1], submitted, USER, b"ESMTPSA" if tls else b"ESMTPA")
