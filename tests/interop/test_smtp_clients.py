"""SMTP against clients nobody here wrote: Python's smtplib and swaks."""

from __future__ import annotations

import asyncio
import email
import email.policy
import shutil
import smtplib
import subprocess
import sys
from email.message import EmailMessage
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "proto" / "smtp"))

from smtp_harness import client_tls_context, smtp_node
from smtp_transcript import PASSWORD

pytestmark = pytest.mark.interop

USER = "alice@example.test"
TIMEOUT = 30
ATTACHMENT = bytes(range(256)) * 64  # every octet value, 16 KiB


def body_of(stored: bytes) -> bytes:
    """The message as the client sent it: what follows our two trace headers."""
    assert stored.startswith(b"Return-Path: ")
    received = stored.index(b"\r\nReceived: ")
    end = stored.index(b"\r\n", stored.index(b"; ", received)) + 2
    return stored[end:]


def international_message() -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = USER
    msg["To"] = "bob@example.test"
    msg["Subject"] = "Grüße aus Köln ✉"
    msg.set_content("Hällo Bob,\nanbei die Datei.\n.\nEine Zeile mit Punkt.\n", cte="8bit")
    msg.add_attachment(
        ATTACHMENT, maintype="application", subtype="octet-stream", filename="blob.bin"
    )
    return msg


def check_attachment(stored: bytes) -> None:
    parsed = email.message_from_bytes(stored, policy=email.policy.default)
    assert parsed["Subject"] == "Grüße aus Köln ✉"
    parts = list(parsed.iter_attachments())
    assert len(parts) == 1
    assert parts[0].get_content() == ATTACHMENT


# --- smtplib --------------------------------------------------------------------------


def smtplib_inbound(port: int) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=TIMEOUT) as smtp:
        code, _ = smtp.ehlo("client.example.org")
        assert code == 250
        for ext in ("pipelining", "size", "8bitmime", "smtputf8", "starttls", "chunking", "dsn"):
            assert smtp.has_extn(ext), ext
        assert not smtp.has_extn("auth")
        refused = smtp.sendmail(
            "sender@example.org",
            ["alice@example.test", "nobody@example.test"],
            "Subject: caf\u00e9\r\n\r\n8-bit body: caf\u00e9\r\n".encode(),
            mail_options=["BODY=8BITMIME"],
        )
        assert refused == {"nobody@example.test": (550, b"5.1.1 No such user here")}
        with pytest.raises(smtplib.SMTPRecipientsRefused) as info:
            smtp.sendmail(
                "sender@example.org", ["victim@remote.example"], b"Subject: relay\r\n\r\n"
            )
        assert info.value.recipients["victim@remote.example"] == (550, b"5.7.1 Relaying denied")
        # SMTPUTF8 (RFC 6531): non-ASCII envelope and headers.
        smtp.sendmail(
            "jörg@bücher.example",
            ["alice@example.test"],
            "From: jörg@bücher.example\r\nSubject: grüße\r\n\r\nhi\r\n".encode(),
            mail_options=["SMTPUTF8", "BODY=8BITMIME"],
        )


async def test_smtplib_inbound_8bitmime_smtputf8(tmp_path: Path) -> None:
    async with smtp_node(tmp_path) as node:
        await asyncio.to_thread(smtplib_inbound, node.port)
        first, second = await node.inbox("alice")
        assert body_of(first) == "Subject: caf\u00e9\r\n\r\n8-bit body: caf\u00e9\r\n".encode()
        assert b"with UTF8SMTP id" in second
        assert body_of(second).startswith("From: jörg@bücher.example\r\n".encode())


def smtplib_starttls_login(port: int, mechanism: str) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=TIMEOUT) as smtp:
        smtp.ehlo("client.example.org")
        assert not smtp.has_extn("auth")  # not before TLS
        smtp.starttls(context=client_tls_context())
        smtp.ehlo("client.example.org")
        assert smtp.esmtp_features["auth"].split() == ["PLAIN", "LOGIN"]
        authobject = smtp.auth_plain if mechanism == "PLAIN" else smtp.auth_login
        smtp.user, smtp.password = USER, PASSWORD
        code, _ = smtp.auth(mechanism, authobject, initial_response_ok=mechanism == "PLAIN")
        assert code == 235
        smtp.send_message(international_message())


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
async def test_smtplib_starttls_auth_and_attachment(tmp_path: Path, mechanism: str) -> None:
    async with smtp_node(tmp_path) as node:
        await asyncio.to_thread(smtplib_starttls_login, node.submission_port, mechanism)
        (stored,) = await node.inbox("bob")
        check_attachment(stored)
        assert b"with ESMTPSA id" in stored


def smtplib_implicit_tls(port: int) -> None:
    with smtplib.SMTP_SSL("127.0.0.1", port, timeout=TIMEOUT, context=client_tls_context()) as smtp:
        smtp.login(USER, PASSWORD)
        with pytest.raises(smtplib.SMTPSenderRefused) as info:
            smtp.sendmail("bob@example.test", ["bob@example.test"], b"Subject: forged\r\n\r\n")
        assert info.value.smtp_code == 553
        refused = smtp.sendmail(
            USER,
            ["friend@remote.example", "bob@example.test"],
            b"From: alice@example.test\r\n\r\nx\r\n",
        )
        assert refused == {}


async def test_smtplib_implicit_tls_login_and_queue(tmp_path: Path) -> None:
    async with smtp_node(tmp_path) as node:
        await asyncio.to_thread(smtplib_implicit_tls, node.submissions_port)
        (queued,) = await node.store.list_queue()
        assert queued.recipients == ("friend@remote.example",)
        assert len(await node.inbox("bob")) == 1


# --- swaks ------------------------------------------------------------------------------

SWAKS = shutil.which("swaks")
needs_swaks = pytest.mark.skipif(
    SWAKS is None, reason="no swaks; make test installs it and fails on skips"
)


def swaks_has_tls() -> bool:
    if SWAKS is None:
        return False
    out = subprocess.run([SWAKS, "--support"], capture_output=True, text=True, check=False)
    return "TLS not available" not in out.stdout + out.stderr


needs_swaks_tls = pytest.mark.skipif(
    not swaks_has_tls(), reason="swaks without TLS (needs the Debian package libnet-ssleay-perl)"
)


async def swaks(*args: str) -> tuple[int, str]:
    assert SWAKS is not None
    proc = await asyncio.create_subprocess_exec(
        SWAKS,
        "--server",
        "127.0.0.1",
        "--helo",
        "client.example.org",
        "--timeout",
        str(TIMEOUT),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(TIMEOUT * 2):
        out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode("utf-8", "replace")


@needs_swaks
async def test_swaks_plain_pipelining_8bit(tmp_path: Path) -> None:
    async with smtp_node(tmp_path) as node:
        port = str(node.port)
        code, out = await swaks("--port", port, "--from", "s@example.org", "--to", USER)
        assert code == 0, out
        code, out = await swaks(
            "--port", port, "--pipeline", "--from", "s@example.org",
            "--to", "alice@example.test,bob@example.test",
            "--header", "Subject: caf\u00e9", "--body", "8-bit: caf\u00e9 \u2713",
        )  # fmt: skip
        assert code == 0, out
        assert "PIPELINING" in out
        alice = await node.inbox("alice")
        assert len(alice) == 2
        assert "8-bit: café ✓".encode() in alice[1]
        assert alice[1] == (await node.inbox("bob"))[0]
        # swaks of this age cannot say SMTPUTF8, so a UTF-8 sender is refused (RFC 6531).
        code, out = await swaks("--port", port, "--from", "jörg@bücher.example", "--to", USER)
        assert code != 0
        assert "553 5.6.7" in out


@needs_swaks
@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
async def test_swaks_auth_and_attachment(tmp_path: Path, mechanism: str) -> None:
    blob = tmp_path / "blob.bin"
    blob.write_bytes(ATTACHMENT)
    # Without TLS in this swaks, AUTH is offered in clear text to loopback only.
    async with smtp_node(tmp_path, trust_loopback=True) as node:
        code, out = await swaks(
            "--port", str(node.submission_port), "--auth", mechanism,
            "--auth-user", USER, "--auth-password", PASSWORD,
            "--from", USER, "--to", "bob@example.test",
            "--header", "From: alice@example.test",
            "--attach-type", "application/octet-stream", "--attach", f"@{blob}",
        )  # fmt: skip
        assert code == 0, out
        assert "235 2.7.0" in out
        (stored,) = await node.inbox("bob")
        parsed = email.message_from_bytes(stored, policy=email.policy.default)
        (part,) = [p for p in parsed.walk() if p.get_content_type() == "application/octet-stream"]
        assert part.get_content() == ATTACHMENT
        code, out = await swaks(
            "--port", str(node.submission_port), "--auth", mechanism,
            "--auth-user", USER, "--auth-password", "wrong", "--to", "bob@example.test",
        )  # fmt: skip
        assert code != 0
        assert "535 5.7.8" in out


@needs_swaks_tls
async def test_swaks_starttls_and_implicit_tls(tmp_path: Path) -> None:
    async with smtp_node(tmp_path) as node:
        common = (
            *("--auth", "PLAIN", "--auth-user", USER, "--auth-password", PASSWORD),
            *("--from", USER, "--to", "bob@example.test", "--header", "From: " + USER),
        )
        code, out = await swaks("--port", str(node.submission_port), "--tls", *common)
        assert code == 0, out
        code, out = await swaks("--port", str(node.submissions_port), "--tls-on-connect", *common)
        assert code == 0, out
        assert len(await node.inbox("bob")) == 2
