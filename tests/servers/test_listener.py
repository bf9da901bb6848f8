"""The shared accept loop: per-address limits, drain, TLS and the error boundary."""

from __future__ import annotations

import asyncio
import logging
import ssl
from pathlib import Path

import pytest

from mailwarden.servers.listener import (
    Connection,
    ConnectionLimiter,
    Listener,
    server_tls_context,
)
from mailwarden.tlscert import make_self_signed


class Echo:
    name = "echo"

    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def handle(self, conn: Connection) -> None:
        await conn.send(b"hello %s\r\n" % conn.peer_host.encode())
        line = await conn.reader.readline()
        if line == b"crash\r\n":
            raise RuntimeError("secret internal detail")
        await conn.send(b"echo " + line)
        await self.release.wait()

    def busy_reply(self) -> bytes:
        return b"busy\r\n"

    def drain_reply(self) -> bytes:
        return b"draining\r\n"

    def crash_reply(self, incident: str) -> bytes:
        return f"crashed ref {incident}\r\n".encode()


async def open_from(port: int, source: str):
    return await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))


async def test_per_address_limit_and_other_addresses(monkeypatch: pytest.MonkeyPatch) -> None:
    handler = Echo()
    listener = Listener(handler, "127.0.0.1", 0, limiter=ConnectionLimiter(max_per_ip=2))
    await listener.start()
    try:
        conns = [await open_from(listener.port, "127.0.0.1") for _ in range(2)]
        for reader, _ in conns:
            assert await reader.readline() == b"hello 127.0.0.1\r\n"
        reader, writer = await open_from(listener.port, "127.0.0.1")
        assert await reader.readline() == b"busy\r\n"
        assert await reader.read() == b""
        writer.close()
        other_r, other_w = await open_from(listener.port, "127.0.0.2")
        assert await other_r.readline() == b"hello 127.0.0.2\r\n"
        other_w.close()
        handler.release.set()
        for _, w in conns:
            w.close()
    finally:
        await listener.stop(grace=1)


async def test_internal_errors_get_an_incident_id_not_our_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    listener = Listener(Echo(), "127.0.0.1", 0, limiter=ConnectionLimiter(10))
    await listener.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        await reader.readline()
        with caplog.at_level(logging.ERROR):
            writer.write(b"crash\r\n")
            reply = await reader.readline()
            assert await reader.read() == b""
        assert reply.startswith(b"crashed ref ") and b"secret" not in reply
        incident = reply.split()[-1].decode()
        assert any(incident in r.getMessage() for r in caplog.records)
        writer.close()
        # The server lives on.
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        assert (await reader.readline()).startswith(b"hello")
        writer.close()
    finally:
        await listener.stop(grace=0.5)


async def test_draining_refuses_new_sessions_only() -> None:
    draining = False
    handler = Echo()
    listener = Listener(
        handler, "127.0.0.1", 0, limiter=ConnectionLimiter(10), is_draining=lambda: draining
    )
    await listener.start()
    try:
        old_r, old_w = await asyncio.open_connection("127.0.0.1", listener.port)
        await old_r.readline()
        draining = True
        new_r, new_w = await asyncio.open_connection("127.0.0.1", listener.port)
        assert await new_r.readline() == b"draining\r\n"
        new_w.close()
        old_w.write(b"still here\r\n")
        assert await old_r.readline() == b"echo still here\r\n"
        handler.release.set()
        old_w.close()
    finally:
        await listener.stop(grace=1)


async def test_implicit_tls_with_the_self_signed_certificate(tmp_path: Path) -> None:
    make_self_signed(tmp_path / "cert.pem", tmp_path / "key.pem", "mail.example.test")
    ctx = server_tls_context(str(tmp_path / "cert.pem"), str(tmp_path / "key.pem"))
    handler = Echo()
    listener = Listener(handler, "127.0.0.1", 0, limiter=ConnectionLimiter(10), tls=ctx)
    await listener.start()
    try:
        client = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))
        for name in ("localhost", "127.0.0.1"):
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", listener.port, ssl=client, server_hostname=name
            )
            assert (await reader.readline()).startswith(b"hello")
            writer.close()
        handler.release.set()
    finally:
        await listener.stop(grace=1)


class StartTls:
    name = "starttls"

    def __init__(self, ctx: ssl.SSLContext) -> None:
        self.ctx = ctx
        self.after_tls: list[bytes] = []

    async def handle(self, conn: Connection) -> None:
        assert await conn.reader.readline() == b"STARTTLS\r\n"
        await conn.send(b"go ahead\r\n")
        await conn.start_tls(self.ctx)
        self.after_tls.append(await conn.reader.readline())
        await conn.send(b"bye\r\n")

    def busy_reply(self) -> bytes:
        return b"busy\r\n"

    def drain_reply(self) -> bytes:
        return b"draining\r\n"

    def crash_reply(self, incident: str) -> bytes:
        return b"crashed\r\n"


async def test_start_tls_drops_what_was_pipelined_in_the_clear(tmp_path: Path) -> None:
    make_self_signed(tmp_path / "cert.pem", tmp_path / "key.pem", "mail.example.test")
    ctx = server_tls_context(str(tmp_path / "cert.pem"), str(tmp_path / "key.pem"))
    handler = StartTls(ctx)
    listener = Listener(handler, "127.0.0.1", 0, limiter=ConnectionLimiter(10))
    await listener.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        writer.write(b"STARTTLS\r\nINJECTED COMMAND\r\n")  # one segment, before the handshake
        await writer.drain()
        assert await reader.readline() == b"go ahead\r\n"
        client = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))
        await writer.start_tls(client, server_hostname="localhost")
        writer.write(b"said under TLS\r\n")
        assert await reader.readline() == b"bye\r\n"
        assert handler.after_tls == [b"said under TLS\r\n"]
        writer.close()
    finally:
        await listener.stop(grace=1)


class Slot:
    def __init__(self, gate: FakeGate, ok: bool) -> None:
        self.gate, self.ok, self.released = gate, ok, False

    def __bool__(self) -> bool:
        return self.ok

    def release(self) -> None:
        if self.ok and not self.released:
            self.released = True
            self.gate.open -= 1


class FakeGate:
    """Admits at most ``limit`` unauthenticated connections at once."""

    def __init__(self, limit: int) -> None:
        self.limit, self.open = limit, 0

    def admit_connection(self, peer: object) -> Slot:
        if self.open >= self.limit:
            return Slot(self, False)
        self.open += 1
        return Slot(self, True)


class LogsIn(Echo):
    name = "login"

    async def handle(self, conn: Connection) -> None:
        await conn.send(b"hello\r\n")
        if await conn.reader.readline() == b"login\r\n":
            conn.logged_in()
            await conn.send(b"welcome\r\n")
        await self.release.wait()


async def test_pre_login_slots_are_held_until_login_or_close() -> None:
    gate = FakeGate(limit=1)
    handler = LogsIn()
    listener = Listener(handler, "127.0.0.1", 0, limiter=ConnectionLimiter(10))
    listener.gate = gate
    await listener.start()
    try:
        r1, w1 = await asyncio.open_connection("127.0.0.1", listener.port)
        assert await r1.readline() == b"hello\r\n"
        r2, w2 = await asyncio.open_connection("127.0.0.1", listener.port)
        assert await r2.readline() == b"busy\r\n"  # the one pre-login slot is taken
        w2.close()
        w1.write(b"login\r\n")
        assert await r1.readline() == b"welcome\r\n"
        assert gate.open == 0  # logging in gave the slot back
        r3, w3 = await asyncio.open_connection("127.0.0.1", listener.port)
        assert await r3.readline() == b"hello\r\n"
        w3.close()
        handler.release.set()
        w1.close()
    finally:
        await listener.stop(grace=1)
    assert gate.open == 0  # and closing gives back what was never logged in
