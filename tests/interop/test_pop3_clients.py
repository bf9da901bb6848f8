"""POP3 against clients nobody here wrote: Python's poplib and fetchmail."""

from __future__ import annotations

import asyncio
import base64
import functools
import imaplib
import os
import poplib
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "proto" / "pop3"))

from pop3_harness import Pop3Node, client_tls_context, pop3_node
from pop3_transcript import MESSAGES, PASSWORD

pytestmark = pytest.mark.interop

USER = "alice@example.test"
TIMEOUT = 30


def lines_of(message: bytes) -> list[bytes]:
    return message.split(b"\r\n")[:-1]


def raw_command(pop: poplib.POP3, line: str) -> bytes:
    """Send a command poplib has no method for; return the status line (raises on -ERR)."""
    reply: bytes = pop._shortcmd(line)  # type: ignore[attr-defined]
    return reply


def read_all(pop: poplib.POP3) -> list[list[bytes]]:
    count, size = pop.stat()
    assert count == len(MESSAGES)
    assert size == sum(len(m) for m in MESSAGES)
    return [pop.retr(n)[1] for n in range(1, count + 1)]


def poplib_plain(port: int) -> list[list[bytes]]:
    pop = poplib.POP3("127.0.0.1", port, timeout=TIMEOUT)
    try:
        assert pop.getwelcome().startswith(b"+OK")
        caps = pop.capa()
        assert {"TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "USER"} <= set(caps)
        pop.user(USER)
        pop.pass_(PASSWORD)
        messages = read_all(pop)
        _, listing, _ = pop.list()
        assert listing == [f"{n} {len(m)}".encode() for n, m in enumerate(MESSAGES, 1)]
        _, uidls, _ = pop.uidl()
        assert len({u.split()[1] for u in uidls}) == len(MESSAGES)
        _, top, _ = pop.top(3, 1)
        assert top == [b"From: carol@example.test", b"Subject: three", b"", b"line 1"]
        pop.dele(1)
        return messages
    finally:
        pop.quit()


async def test_poplib_plain_on_loopback(tmp_path: Path) -> None:
    async with pop3_node(tmp_path) as node:
        messages = await asyncio.to_thread(poplib_plain, node.port)
        assert messages == [lines_of(m) for m in MESSAGES]  # poplib un-stuffs the dots
        assert len(await node.uids(USER)) == len(MESSAGES) - 1  # DELE 1 + QUIT


def poplib_stls(port: int) -> list[list[bytes]]:
    pop = poplib.POP3("127.0.0.1", port, timeout=TIMEOUT)
    try:
        assert "STLS" in pop.capa()
        assert "USER" not in pop.capa()  # no cleartext logins before TLS
        with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
            pop.user(USER)
        pop.stls(client_tls_context())
        caps = pop.capa()
        assert "STLS" not in caps
        assert caps["SASL"] == ["PLAIN"]
        pop.user(USER)
        pop.pass_(PASSWORD)
        return read_all(pop)
    finally:
        pop.quit()


async def test_poplib_stls(tmp_path: Path) -> None:
    async with pop3_node(tmp_path, trust_loopback=False) as node:
        messages = await asyncio.to_thread(poplib_stls, node.port)
        assert messages == [lines_of(m) for m in MESSAGES]


def poplib_implicit_tls_auth_plain(port: int) -> tuple[list[list[bytes]], bytes]:
    pop = poplib.POP3_SSL("127.0.0.1", port, context=client_tls_context(), timeout=TIMEOUT)
    try:
        # poplib has no AUTH; send RFC 5034 AUTH PLAIN with an initial response by hand.
        wrong = base64.b64encode(f"\0{USER}\0nope".encode()).decode()
        with pytest.raises(poplib.error_proto) as info:
            raw_command(pop, "AUTH PLAIN " + wrong)
        refusal = info.value.args[0]
        token = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()
        assert raw_command(pop, "AUTH PLAIN " + token).startswith(b"+OK Logged in")
        return read_all(pop), refusal
    finally:
        pop.quit()


async def test_poplib_implicit_tls_and_auth_plain(tmp_path: Path) -> None:
    async with pop3_node(tmp_path, trust_loopback=False) as node:
        messages, refusal = await asyncio.to_thread(poplib_implicit_tls_auth_plain, node.tls_port)
        assert messages == [lines_of(m) for m in MESSAGES]
        assert refusal == b"-ERR [AUTH] Authentication failed"


def poplib_auth_continuation(port: int) -> bytes:
    pop = poplib.POP3_SSL("127.0.0.1", port, context=client_tls_context(), timeout=TIMEOUT)
    try:
        assert raw_command(pop, "AUTH PLAIN") == b"+ "
        token = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()
        reply = raw_command(pop, token)
        pop.stat()
        return reply
    finally:
        pop.quit()


async def test_poplib_auth_plain_continuation(tmp_path: Path) -> None:
    async with pop3_node(tmp_path, trust_loopback=False) as node:
        reply = await asyncio.to_thread(poplib_auth_continuation, node.tls_port)
        assert reply.startswith(b"+OK Logged in")


# --- fetchmail ---------------------------------------------------------------------

FETCHMAIL = shutil.which("fetchmail")
needs_fetchmail = pytest.mark.skipif(
    FETCHMAIL is None, reason="no fetchmail; make test installs it and fails on skips"
)


async def run_fetchmail(
    node: Pop3Node, tmp_path: Path, *, port: int, options: str, server_options: str = ""
) -> tuple[int, str, bytes]:
    """Run fetchmail once; return its exit code, its log and what it delivered."""
    out = tmp_path / "delivered.mbox"
    rc = tmp_path / "fetchmailrc"
    rc.write_text(
        "set no bouncemail\n"
        f"poll 127.0.0.1 with protocol POP3 {server_options} service {port} auth password\n"
        f'  user "{USER}" there with password "{PASSWORD}" is "tester" here\n'
        f"  options {options} no sslcertck\n"
        f'  mda "cat >> {out}; echo >> {out}"\n'
    )
    rc.chmod(0o600)
    env = {**os.environ, "HOME": str(tmp_path), "FETCHMAILHOME": str(tmp_path)}
    assert FETCHMAIL is not None
    proc = await asyncio.create_subprocess_exec(
        FETCHMAIL,
        "-v",
        "--nodetach",
        "--nosyslog",
        "-f",
        str(rc),
        "--idfile",
        str(tmp_path / "fetchids"),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    async with asyncio.timeout(60):
        log, _ = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, log.decode(errors="replace"), out.read_bytes() if out.exists() else b""


def assert_delivered(delivered: bytes) -> None:
    # fetchmail hands the MDA LF line endings and adds its own Received header.
    for message in MESSAGES:
        body = message.split(b"\r\n\r\n", 1)[1].replace(b"\r\n", b"\n")
        assert body in delivered
    assert delivered.count(b"Subject: ") == len(MESSAGES)


@needs_fetchmail
async def test_fetchmail_implicit_tls_fetches_and_deletes(tmp_path: Path) -> None:
    async with pop3_node(tmp_path, trust_loopback=False) as node:
        code, log, delivered = await run_fetchmail(
            node, tmp_path, port=node.tls_port, options="ssl fetchall no keep"
        )
        assert code == 0, log
        assert_delivered(delivered)
        assert await node.uids(USER) == []  # deleted, and expunged at QUIT


@needs_fetchmail
async def test_fetchmail_stls_keeps_and_tracks_uidls(tmp_path: Path) -> None:
    async with pop3_node(tmp_path, trust_loopback=False) as node:
        options = "sslproto 'TLS1.2+' keep"
        run = functools.partial(
            run_fetchmail, node, tmp_path, port=node.port, options=options, server_options="uidl"
        )
        code, log, delivered = await run()
        assert code == 0, log
        assert "POP3> STLS" in log
        assert_delivered(delivered)
        assert len(await node.uids(USER)) == len(MESSAGES)
        # Second run: the UIDLs are the same, so nothing is new (exit code 1: no mail).
        code, log, again = await run()
        assert code == 1, log
        assert again == delivered


# --- POP3 and IMAP on the same maildrop -----------------------------------------------


async def test_imap_sees_what_pop3_deleted(tmp_path: Path) -> None:
    imap_server = pytest.importorskip("mailwarden.servers.imap")
    from dataclasses import replace

    from mailwarden.config import Config, ImapConfig

    async with pop3_node(tmp_path) as node:
        config = Config(listen="127.0.0.1", imap=replace(ImapConfig(), port=0, tls_port=0))
        listeners = imap_server.make_listeners(node.ctx, config)
        for listener in listeners:
            await listener.start()
        try:
            imap = await asyncio.to_thread(imaplib.IMAP4, "127.0.0.1", listeners[0].port, TIMEOUT)
            await asyncio.to_thread(imap.login, USER, PASSWORD)
            typ, data = await asyncio.to_thread(imap.select, "INBOX")
            assert typ == "OK"
            assert data == [str(len(MESSAGES)).encode()]

            def pop3_delete_first_and_quit() -> None:
                pop = poplib.POP3("127.0.0.1", node.port, timeout=TIMEOUT)
                pop.user(USER)
                pop.pass_(PASSWORD)
                pop.dele(1)
                pop.quit()

            await asyncio.to_thread(pop3_delete_first_and_quit)
            typ, _ = await asyncio.to_thread(imap.noop)
            assert typ == "OK"
            assert imap.untagged_responses.get("EXPUNGE") == [b"1"]
            typ, data = await asyncio.to_thread(imap.search, None, "ALL")
            assert data == [b" ".join(str(n).encode() for n in range(1, len(MESSAGES)))]
            await asyncio.to_thread(imap.logout)
        finally:
            for listener in listeners:
                await listener.stop(grace=1.0)
