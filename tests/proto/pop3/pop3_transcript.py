"""Transcript files for POP3 and a fake application that answers the core's events.

A transcript (STYLE.md §12) is a list of steps::

    # comment
    ! cleartext          option for the session (see OPTIONS)
    S: +OK ...           a line the server sends (``{*}`` matches one word)
    C: USER alice        a line the client sends (CRLF is added)
    ! closed             the server has closed the connection here

Consecutive ``C:`` lines are sent together (pipelined); the ``S:`` lines
after them are the server's answers to all of them, in order.  ``C:`` and
``S:`` text may use Python bytes escapes (``\\x00``, ``\\t``).

The same files are replayed against the pure core (tests/proto/pop3) and over
a socket against the asyncio server (tests/servers/test_pop3_server.py);
files with ``! core-only`` need the fake's special users and only run against
the core.

Shared by both runners, so it has no test functions of its own.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, field
from pathlib import Path

TRANSCRIPT_DIR = Path(__file__).resolve().parents[2] / "transcripts" / "pop3"

PASSWORD = "secret"

# The maildrop every runner serves to alice@example.test.
MESSAGES: tuple[bytes, ...] = (
    b"From: bob@example.test\r\nTo: alice@example.test\r\nSubject: one\r\n\r\nHello Alice.\r\n",
    b"From: bob@example.test\r\nSubject: dots\r\n\r\n.leading dot\r\n..two dots\r\n.\r\nend\r\n",
    b"From: carol@example.test\r\nSubject: three\r\n\r\nline 1\r\nline 2\r\nline 3\r\nline 4\r\n",
)

# Options a transcript may set with "! name" or "! name value".
OPTIONS = {"cleartext", "tls", "no-stls", "core-only", "max-bad-commands", "max-line"}


@dataclass
class Step:
    """One block: lines the client sends, then the lines the server answers."""

    send: list[bytes] = field(default_factory=list)
    expect: list[bytes] = field(default_factory=list)
    closed: bool = False


@dataclass
class Transcript:
    """A parsed transcript file."""

    name: str
    options: dict[str, str]
    steps: list[Step]


def _unescape(text: str) -> bytes:
    return codecs.escape_decode(text.encode("utf-8"))[0]


def parse_transcript(path: Path) -> Transcript:
    """Parse one transcript file into steps (the greeting is the first expectation)."""
    options: dict[str, str] = {}
    steps = [Step()]
    for number, raw in enumerate(path.read_text("utf-8").splitlines(), 1):
        if not raw.strip() or raw.startswith("#"):
            continue
        if raw.startswith("! "):
            name, _, value = raw[2:].strip().partition(" ")
            if name == "closed":
                steps[-1].closed = True
                continue
            if name not in OPTIONS:
                raise ValueError(f"{path.name}:{number}: unknown option {name!r}")
            options[name] = value
            continue
        tag, sep, text = raw.partition(": ")
        if not sep and raw in ("C:", "S:"):
            tag, text = raw[:1], ""
        if tag == "C":
            if steps[-1].expect or steps[-1].closed:
                steps.append(Step())
            steps[-1].send.append(_unescape(text))
        elif tag == "S":
            steps[-1].expect.append(_unescape(text))
        else:
            raise ValueError(f"{path.name}:{number}: expected 'C: ', 'S: ', '! ' or '#'")
    return Transcript(path.stem, options, steps)


def all_transcripts() -> list[Transcript]:
    """Every transcript in tests/transcripts/pop3, by name."""
    return [parse_transcript(p) for p in sorted(TRANSCRIPT_DIR.glob("*.txt"))]


def expected_pattern(lines: list[bytes]) -> re.Pattern[bytes]:
    """A regex matching exactly ``lines`` with CRLF, where ``{*}`` is any word."""
    parts = [re.escape(line).replace(re.escape(b"{*}"), rb"\S+") + rb"\r\n" for line in lines]
    return re.compile(b"".join(parts), re.DOTALL)
