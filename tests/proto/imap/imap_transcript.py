"""IMAP transcript files, their parser, and a fake application for the pure core.

A transcript (STYLE.md §12) is a list of steps::

    # comment
    ! cleartext          option for the session (see OPTIONS)
    S: * OK ...          a line the server sends
    C: a1 LOGIN bob x    a line the client sends (CRLF is added)
    ! closed             the server has closed the connection here

Consecutive ``C:`` lines are sent together (pipelined); the ``S:`` lines after
them are the server's answers, in order.  In ``S:`` lines ``{*}`` matches one
word and ``{...}`` the rest of the line.  ``C:`` and ``S:`` text may use
``\\xNN`` escapes (``\\x00``, ``\\x20``); ``C.`` sends a line without CRLF.

Files under ``tests/transcripts/imap`` are replayed against the pure core
(tests/proto/imap) and, unless marked ``! core-only``, over a socket against
the asyncio server (tests/servers/test_imap_transcripts.py), which serves the
same account and INBOX (:data:`MESSAGES`).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mailwarden.proto.imap import commands as c
from mailwarden.proto.imap.events import (
    ConnectionClosed,
    IdleDone,
    NeedData,
    SessionConfig,
    StartTlsRequested,
)
from mailwarden.proto.imap.responses import Tagged, Untagged
from mailwarden.proto.imap.session import ImapSession

TRANSCRIPT_DIR = Path(__file__).resolve().parents[2] / "transcripts" / "imap"

USER = "alice@example.test"
PASSWORD = "secret"

# The INBOX every runner serves to alice (UIDs 1, 2, 3).
MESSAGES: tuple[bytes, ...] = (
    b"From: Bob <bob@example.test>\r\nTo: alice@example.test\r\nSubject: one\r\n"
    b"Date: Mon, 1 Jan 2024 10:00:00 +0000\r\nMessage-ID: <1@example.test>\r\n\r\nHello Alice.\r\n",
    b"From: carol@example.test\r\nTo: alice@example.test\r\nSubject: Re: one\r\n"
    b"Date: Tue, 2 Jan 2024 10:00:00 +0000\r\nMessage-ID: <2@example.test>\r\n"
    b"In-Reply-To: <1@example.test>\r\nReferences: <1@example.test>\r\n\r\nHi.\r\n",
    b"From: dave@example.test\r\nTo: alice@example.test\r\nSubject: three\r\n"
    b"Date: Wed, 3 Jan 2024 10:00:00 +0000\r\nMessage-ID: <3@example.test>\r\n\r\n"
    b"line 1\r\nline 2\r\n",
)

OPTIONS = {"cleartext", "core-only", "server-only", "max-bad-commands", "max-line", "max-literal"}


@dataclass
class Step:
    """One block: octets the client sends, then the lines the server answers."""

    send: bytes = b""
    expect: list[bytes] = field(default_factory=list)
    closed: bool = False


@dataclass
class Transcript:
    name: str
    options: dict[str, str]
    steps: list[Step]

    @property
    def client_bytes(self) -> bytes:
        return b"".join(s.send for s in self.steps)

    @property
    def server_lines(self) -> list[bytes]:
        return [line for s in self.steps for line in s.expect]


def _unescape(text: str) -> bytes:
    # only \xNN escapes: IMAP text is full of backslashes (\Seen)
    return re.sub(
        rb"\\x([0-9a-fA-F]{2})", lambda m: bytes([int(m.group(1), 16)]), text.encode("utf-8")
    )


def parse_transcript(path: Path) -> Transcript:
    options: dict[str, str] = {}
    steps = [Step()]
    for number, raw in enumerate(path.read_text("utf-8").splitlines(), 1):
        if not raw.strip() or raw.startswith("#"):
            continue
        if raw.startswith("! "):
            name, _, value = raw[2:].strip().partition(" ")
            if name == "closed":
                steps[-1].closed = True
            elif name in OPTIONS:
                options[name] = value
            else:
                raise ValueError(f"{path.name}:{number}: unknown option {name!r}")
            continue
        kind, text = raw[:3], raw[3:]
        if kind in ("C: ", "C. "):
            if steps[-1].expect or steps[-1].closed:
                steps.append(Step())
            steps[-1].send += _unescape(text) + (b"\r\n" if kind == "C: " else b"")
        elif kind == "S: " or raw == "S:":
            steps[-1].expect.append(_unescape(text))
        else:
            raise ValueError(f"{path.name}:{number}: cannot read {raw!r}")
    return Transcript(path.stem, options, steps)


def transcripts(runner: str) -> list[Transcript]:
    """Every transcript file that the given runner ("core" or "server") replays."""
    skip = "server-only" if runner == "core" else "core-only"
    out = []
    for path in sorted(TRANSCRIPT_DIR.glob("*.txt")):
        t = parse_transcript(path)
        if skip not in t.options:
            out.append(t)
    return out


def line_matches(pattern: bytes, line: bytes) -> bool:
    parts = re.split(rb"(\{\*\}|\{\.\.\.\})", pattern)
    rx = b"".join(
        rb"[^ ]+" if p == b"{*}" else rb".*" if p == b"{...}" else re.escape(p) for p in parts
    )
    return re.fullmatch(rx, line, re.DOTALL) is not None


def compare(expected: list[bytes], got: list[bytes]) -> str | None:
    """None when the lines match, else a readable diff."""
    ok = len(expected) == len(got) and all(map(line_matches, expected, got))
    if ok:
        return None
    width = max(len(expected), len(got))
    rows = []
    for i in range(width):
        e = expected[i] if i < len(expected) else b"<nothing>"
        g = got[i] if i < len(got) else b"<nothing>"
        mark = "  " if i < min(len(expected), len(got)) and line_matches(e, g) else "!!"
        rows.append(f"{mark} expected {e!r}\n   got      {g!r}")
    return "\n".join(rows)


def split_lines(data: bytes) -> list[bytes]:
    lines = data.split(b"\r\n")
    assert lines[-1] == b"", f"output does not end in CRLF: {data[-40:]!r}"
    return lines[:-1]


# --- chunkers -----------------------------------------------------------------

Chunker = Callable[[bytes], Iterator[bytes]]


def whole(data: bytes) -> Iterator[bytes]:
    if data:
        yield data


def bytewise(data: bytes) -> Iterator[bytes]:
    for i in range(len(data)):
        yield data[i : i + 1]


def random_splits(seed: int) -> Chunker:
    def chunker(data: bytes) -> Iterator[bytes]:
        rng = random.Random(seed)
        i = 0
        while i < len(data):
            n = rng.randint(1, 17)
            yield data[i : i + n]
            i += n

    return chunker


# --- the fake application --------------------------------------------------------


def session_config(options: dict[str, str]) -> SessionConfig:
    return SessionConfig(
        max_line=int(options.get("max-line", 8192)),
        max_literal=int(options.get("max-literal", 1_000_000)),
        max_bad_commands=int(options.get("max-bad-commands", 20)),
        tls_available=True,
        allow_plaintext_login="cleartext" in options,
    )


class FakeApp:
    """Answers the core's events with canned replies (no store).

    Knows one user (:data:`USER`/:data:`PASSWORD`) and one mailbox, INBOX,
    holding :data:`MESSAGES`; everything else it acknowledges with
    ``OK <Command> completed`` so transcripts can exercise the core's framing,
    states and errors.
    """

    def __init__(self, session: ImapSession) -> None:
        self.s = session
        self.events: list[object] = []

    def drive(self) -> None:
        while True:
            ev = self.s.next_event()
            if isinstance(ev, NeedData | ConnectionClosed):
                return
            self.events.append(ev)
            self.handle(ev)

    def handle(self, ev: object) -> None:
        s = self.s
        match ev:
            case StartTlsRequested():
                raise AssertionError("STARTTLS cannot run in a core transcript")
            case c.Login(tag=tag, username=user, password=pw):
                if user == USER and pw == PASSWORD:
                    s.send(Tagged(tag, "OK", "Logged in"))
                else:
                    s.send(Tagged(tag, "NO", "Invalid credentials", "AUTHENTICATIONFAILED"))
            case c.Select() | c.Examine():
                if ev.mailbox != "INBOX":
                    s.send(Tagged(ev.tag, "NO", "No such mailbox", "NONEXISTENT"))
                    return
                s.send(Untagged(b"FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)"))
                s.send(Untagged(b"%d EXISTS" % len(MESSAGES)))
                s.send(Untagged(b"0 RECENT"))
                ro = isinstance(ev, c.Examine)
                name = "EXAMINE" if ro else "SELECT"
                s.send(
                    Tagged(ev.tag, "OK", f"{name} completed", "READ-ONLY" if ro else "READ-WRITE")
                )
            case IdleDone(tag=tag, answered=False):
                s.send(Tagged(tag, "OK", "IDLE terminated"))
            case IdleDone() | c.Idle():
                pass
            case _:
                tag = getattr(ev, "tag")  # noqa: B009
                s.send(Tagged(tag, "OK", f"{type(ev).__name__.upper()} completed"))


def replay_core(t: Transcript, chunker: Chunker) -> str | None:
    """Replay a transcript step by step against the pure core; None when it matches."""
    session = ImapSession(session_config(t.options))
    app = FakeApp(session)
    session.greeting()
    for step in t.steps:
        for chunk in chunker(step.send):
            session.receive_data(chunk)
            app.drive()
        got = split_lines(session.data_to_send()) if step.expect else []
        diff = compare(step.expect, got)
        if diff is not None:
            return f"after sending {step.send!r}:\n{diff}"
        if step.closed != session.closed:
            return f"after sending {step.send!r}: closed={session.closed}, expected {step.closed}"
    return None


def replay_core_whole(t: Transcript, chunker: Chunker) -> str | None:
    """Send all client octets at once (pipelined), then compare all output."""
    session = ImapSession(session_config(t.options))
    app = FakeApp(session)
    session.greeting()
    for chunk in chunker(t.client_bytes):
        session.receive_data(chunk)
        app.drive()
    return compare(t.server_lines, split_lines(session.data_to_send()))
