"""SMTP transcript files and a fake application that answers the core's events.

A transcript (STYLE.md §12) is one session, as the RFCs draw it::

    # comment
    ! submission         option for the session (see OPTIONS)
    S: 250 2.0.0 OK      a line the server sends ({*} matches one word)
    C: EHLO c.test       a line the client sends (CRLF is added)
    R: Subject: x\\n      raw client octets, nothing added
    ! closed             the server has closed the connection here

Consecutive ``C:``/``R:`` lines are sent together (pipelined); the ``S:`` lines
after them are the server's answers to all of them, in order.  Text may use
Python bytes escapes (``\\r``, ``\\n``, ``\\x00``).

The same files are replayed against the pure core (tests/proto/smtp) and over a
socket against the asyncio server (tests/servers/test_smtp_transcripts.py); a
file marked ``! core-only`` depends on this fake's answers and runs only against
the core.  The fake and the server's fixture hold the same world: WORLD below.

Shared by both runners, so it has no test functions of its own.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, field
from pathlib import Path

from mailwarden.mail.address import Address
from mailwarden.proto.smtp import (
    Auth,
    MailFrom,
    Message,
    Mode,
    NeedData,
    RcptTo,
    SessionConfig,
    SmtpSession,
    StartTls,
)
from mailwarden.proto.smtp import replies as r

TRANSCRIPT_DIR = Path(__file__).resolve().parents[2] / "transcripts" / "smtp"

HOSTNAME = "mx.example.test"
HOSTED = "example.test"
PASSWORD = "secret"
# Mailboxes of the shared world; "full" is over quota.
MAILBOXES = ("alice", "bob", "full")
# Aliases: source -> target local part (same domain).
ALIASES = {"info": "alice", "postmaster": "alice"}
MAX_SIZE = 100_000

OPTIONS = {
    "submission",  # submission mode (AUTH offered, required before MAIL)
    "tls",  # the connection starts encrypted (implicit TLS)
    "no-starttls",  # STARTTLS not available
    "core-only",  # relies on this fake; not replayed against the server
    "max-errors",
    "max-recipients",
    "max-line",
    "max-text-line",
    "max-size",
}


@dataclass
class Step:
    """One block: octets the client sends, then the lines the server answers."""

    send: list[bytes] = field(default_factory=list)
    expect: list[bytes] = field(default_factory=list)
    closed: bool = False


@dataclass
class Transcript:
    """A parsed transcript file."""

    name: str
    options: dict[str, str]
    steps: list[Step]

    @property
    def mode(self) -> Mode:
        return Mode.SUBMISSION if "submission" in self.options else Mode.INBOUND


def _unescape(text: str) -> bytes:
    return codecs.escape_decode(text.encode("utf-8"))[0]  # type: ignore[no-any-return]


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
        if not sep and raw in ("C:", "S:", "R:"):
            tag, text = raw[:1], ""
        if tag in ("C", "R"):
            if steps[-1].expect or steps[-1].closed:
                steps.append(Step())
            steps[-1].send.append(_unescape(text) + (b"\r\n" if tag == "C" else b""))
        elif tag == "S":
            steps[-1].expect.append(_unescape(text))
        else:
            raise ValueError(f"{path.name}:{number}: expected 'C: ', 'R: ', 'S: ', '! ' or '#'")
    return Transcript(path.stem, options, steps)


def all_transcripts() -> list[Transcript]:
    """Every transcript in tests/transcripts/smtp, by name."""
    return [parse_transcript(p) for p in sorted(TRANSCRIPT_DIR.glob("*.txt"))]


def expected_pattern(lines: list[bytes]) -> re.Pattern[bytes]:
    """A regex matching exactly ``lines`` with CRLF, where ``{*}`` is any word."""
    parts = [re.escape(line).replace(re.escape(b"{*}"), rb"\S+") + rb"\r\n" for line in lines]
    return re.compile(b"".join(parts), re.DOTALL)


def config_for(transcript: Transcript, **overrides: object) -> SessionConfig:
    """The session configuration a transcript asks for."""
    o = transcript.options
    values: dict[str, object] = {
        "hostname": HOSTNAME,
        "mode": transcript.mode,
        "starttls": "no-starttls" not in o,
        "max_errors": int(o.get("max-errors") or 10),
        "max_recipients": int(o.get("max-recipients") or 100),
        "max_command_line": int(o.get("max-line") or 512),
        "max_text_line": int(o.get("max-text-line") or 1000),
        "max_message_size": int(o.get("max-size") or MAX_SIZE),
        "trace": True,
    }
    values.update(overrides)
    return SessionConfig(**values)  # type: ignore[arg-type]


class FakeApp:
    """Answers events the way the server does for the shared world."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.tls_pending = False

    def answer(self, session: SmtpSession, event: object) -> None:
        mode = session.config.mode
        match event:
            case Auth(credentials=creds):
                ok = creds.authcid == f"alice@{HOSTED}" and creds.password == PASSWORD
                session.send(r.R235_AUTH_OK if ok else r.R535_AUTH_FAILED)
            case MailFrom(sender=sender):
                if mode is Mode.SUBMISSION and (sender is None or sender.key not in _alice_owns()):
                    session.send(r.R553_SENDER_NOT_OWNED)
                else:
                    session.send(r.R250_MAIL_OK)
            case RcptTo(recipient=rcpt):
                session.send(rcpt_reply(rcpt, mode))
            case Message():
                self.messages.append(event)
                session.send(r.R250_DATA_OK)
            case StartTls():
                self.tls_pending = True

    def drive(self, session: SmtpSession) -> bytes:
        """Answer every event the session has; return what it sends."""
        while True:
            event = session.next_event()
            if isinstance(event, NeedData):
                break
            self.answer(session, event)
            if session.closed or self.tls_pending:
                break
        return session.data_to_send()

    def finish_tls(self, session: SmtpSession) -> None:
        """Complete a pending STARTTLS as the shell would after the handshake."""
        if self.tls_pending:
            self.tls_pending = False
            session.tls_established()


def _alice_owns() -> set[str]:
    return {f"alice@{HOSTED}", *(f"{a}@{HOSTED}" for a, t in ALIASES.items() if t == "alice")}


def rcpt_reply(rcpt: Address, mode: Mode) -> r.Reply:
    """What the shared world answers to RCPT TO:<rcpt>."""
    if rcpt.local.lower() == "postmaster" and rcpt.domain == HOSTNAME:
        return r.R250_RCPT_OK  # the node's postmaster: postmaster@example.test
    if rcpt.domain != HOSTED:
        return r.R250_RCPT_OK if mode is Mode.SUBMISSION else r.R550_RELAY_DENIED
    local = rcpt.local.lower()
    local = ALIASES.get(local, local)
    if local == "full":
        return r.R452_QUOTA
    if local in MAILBOXES:
        return r.R250_RCPT_OK
    return r.R550_NO_SUCH_USER
