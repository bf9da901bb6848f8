"""Tiny loopback servers for the status tests: an SMTP sink, an HTTP receiver,
and just enough IMAP and POP3 to log in.  Each listens on 127.0.0.1 port 0."""

from __future__ import annotations

import asyncio
import email
import email.policy
from dataclasses import dataclass, field


@dataclass
class SmtpSink:
    """Accepts mail; refuses with 550 any recipient containing 'bounce'."""

    messages: list[tuple[str, email.message.EmailMessage]] = field(default_factory=list)
    server: asyncio.Server | None = None
    port: int = 0

    async def start(self) -> SmtpSink:
        self.server = await asyncio.start_server(self._session, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _session(self, reader, writer) -> None:
        def reply(line: str) -> None:
            writer.write(line.encode() + b"\r\n")

        reply("220 sink.test ESMTP")
        recipients: list[str] = []
        try:
            while line := await reader.readline():
                command = line.decode().strip()
                verb = command[:4].upper()
                if verb in ("EHLO", "HELO"):
                    reply("250 sink.test")
                elif verb == "MAIL":
                    recipients = []
                    reply("250 2.1.0 ok")
                elif verb == "RCPT":
                    address = command.split(":", 1)[1].strip("<> ")
                    if "bounce" in address:
                        reply("550 5.1.1 no such user")
                    else:
                        recipients.append(address)
                        reply("250 2.1.5 ok")
                elif verb == "DATA":
                    reply("354 go on")
                    data = await reader.readuntil(b"\r\n.\r\n")
                    message = email.message_from_bytes(data[:-3], policy=email.policy.default)
                    for rcpt in recipients:
                        self.messages.append((rcpt, message))
                    reply("250 2.0.0 queued")
                elif verb == "QUIT":
                    reply("221 bye")
                    break
                else:
                    reply("250 ok")
                await writer.drain()
        finally:
            await writer.drain()
            writer.close()


@dataclass
class HttpReceiver:
    """Records POSTs and answers with the next status from ``answers`` (then 200)."""

    answers: list[int] = field(default_factory=list)
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    body_for_get: bytes = b"{}"
    server: asyncio.Server | None = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> HttpReceiver:
        self.server = await asyncio.start_server(self._session, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _session(self, reader, writer) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        self.requests.append((f"{method} {path}", headers, body))
        status = self.answers.pop(0) if self.answers else 200
        payload = self.body_for_get if method == "GET" else b"{}"
        writer.write(
            f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
            + payload
        )
        await writer.drain()
        writer.close()


@dataclass
class LoginServer:
    """Just enough IMAP or POP3 for a login: accepts one password, counts logins."""

    protocol: str  # "imap" or "pop3"
    password: str = "probe-secret"
    logins: int = 0
    server: asyncio.Server | None = None
    port: int = 0

    async def start(self) -> LoginServer:
        self.server = await asyncio.start_server(self._session, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _session(self, reader, writer) -> None:
        try:
            if self.protocol == "imap":
                await self._imap(reader, writer)
            else:
                await self._pop3(reader, writer)
            await writer.drain()
        finally:
            writer.close()

    async def _imap(self, reader, writer) -> None:
        writer.write(b"* OK [CAPABILITY IMAP4rev1] ready\r\n")
        while line := await reader.readline():
            tag, command, *rest = line.decode().strip().split(" ")
            command = command.upper()
            if command == "CAPABILITY":
                writer.write(b"* CAPABILITY IMAP4rev1\r\n" + f"{tag} OK done\r\n".encode())
            elif command == "LOGIN":
                if rest[-1].strip('"') == self.password:
                    self.logins += 1
                    writer.write(f"{tag} OK logged in\r\n".encode())
                else:
                    writer.write(f"{tag} NO [AUTHENTICATIONFAILED] bad\r\n".encode())
            elif command == "LOGOUT":
                writer.write(b"* BYE bye\r\n" + f"{tag} OK done\r\n".encode())
                return
            else:
                writer.write(f"{tag} BAD unknown\r\n".encode())
            await writer.drain()

    async def _pop3(self, reader, writer) -> None:
        writer.write(b"+OK ready\r\n")
        while line := await reader.readline():
            command, *rest = line.decode().strip().split(" ", 1)
            command = command.upper()
            if command == "USER":
                writer.write(b"+OK send PASS\r\n")
            elif command == "PASS":
                if rest and rest[0] == self.password:
                    self.logins += 1
                    writer.write(b"+OK logged in\r\n")
                else:
                    writer.write(b"-ERR [AUTH] bad\r\n")
            elif command == "QUIT":
                writer.write(b"+OK bye\r\n")
                return
            else:
                writer.write(b"-ERR unknown\r\n")
            await writer.drain()
