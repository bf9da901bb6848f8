"""Unit tests of the POP3 core: replies, command parsing, the session API, and fuzzing."""

from __future__ import annotations

import ast
import base64
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pop3_fake import FakeApp
from pop3_transcript import MESSAGES

import mailwarden.proto.pop3 as pop3
from mailwarden.proto.pop3 import (
    NEED_DATA,
    AuthAccepted,
    Authenticate,
    AuthRejected,
    Closed,
    CloseReason,
    MaildropEntry,
    MessageContent,
    MessageUnavailable,
    Pop3Error,
    Pop3Session,
    Pop3Settings,
    RespCode,
    Retrieve,
    StartTls,
    State,
    TraceLine,
    Update,
    UpdateDone,
    UpdateFailed,
    dot_stuff,
    top_of,
)
from mailwarden.proto.pop3.commands import Command, Verb, check_syntax, parse_command
from mailwarden.proto.pop3.replies import MAX_RESPONSE_LINE, err, ok
from mailwarden.proto.sasl import Mechanism

CLEAR = Pop3Settings(allow_cleartext=True)


def started(settings: Pop3Settings = CLEAR) -> Pop3Session:
    session = Pop3Session(settings)
    assert session.data_to_send() == b"+OK Mailwarden POP3 server ready\r\n"
    return session


def logged_in(entries: list[MaildropEntry] | None = None, **kw: object) -> Pop3Session:
    session = started(Pop3Settings(allow_cleartext=True, **kw))  # type: ignore[arg-type]
    session.receive_data(b"USER u\r\nPASS p\r\n")
    assert isinstance(session.next_event(), Authenticate)
    session.send(AuthAccepted(entries if entries is not None else [MaildropEntry("a", 3)]))
    session.data_to_send()
    return session


# --- replies -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "stuffed"),
    [
        (b"", b".\r\n"),
        (b"a\r\nb\r\n", b"a\r\nb\r\n.\r\n"),
        (b"a\nb", b"a\r\nb\r\n.\r\n"),  # bare LF becomes CRLF, final CRLF added
        (b".x\r\n", b"..x\r\n.\r\n"),
        (b"a\r\n.\r\nb\r\n", b"a\r\n..\r\nb\r\n.\r\n"),
        (b"a\n.\nb\n", b"a\r\n..\r\nb\r\n.\r\n"),  # no smuggled terminator via bare LF
        (b"a\r.\r\n", b"a\r.\r\n.\r\n"),  # bare CR is not a line break
        (b"a\r\n..\r\n", b"a\r\n...\r\n.\r\n"),
        (b"a\r\n.b\nc", b"a\r\n..b\r\nc\r\n.\r\n"),  # mixed endings
        (b"\n\n.", b"\r\n\r\n..\r\n.\r\n"),
    ],
)
def test_dot_stuff(data: bytes, stuffed: bytes) -> None:
    assert dot_stuff(data) == stuffed


@pytest.mark.parametrize(
    ("message", "lines", "top"),
    [
        (b"H: 1\r\n\r\nb1\r\nb2\r\n", 0, b"H: 1\r\n\r\n"),
        (b"H: 1\r\n\r\nb1\r\nb2\r\n", 1, b"H: 1\r\n\r\nb1\r\n"),
        (b"H: 1\r\n\r\nb1\r\nb2\r\n", 5, b"H: 1\r\n\r\nb1\r\nb2\r\n"),
        (b"H: 1\n\nb1\nb2", 1, b"H: 1\r\n\r\nb1\r\n"),
        (b"H: 1\n\nb1\nb2", 2, b"H: 1\r\n\r\nb1\r\nb2"),
        (b"H: 1\r\nH: 2\r\n", 3, b"H: 1\r\nH: 2\r\n"),  # no body at all
        (b"\r\nbody\r\n", 0, b"\r\n"),  # no header
        (b"", 0, b""),
    ],
)
def test_top_of(message: bytes, lines: int, top: bytes) -> None:
    assert top_of(message, lines) == top


def test_status_lines_are_single_and_bounded() -> None:
    assert ok() == b"+OK\r\n"
    assert err("bad\r\nINJECTED", RespCode.SYS_TEMP) == b"-ERR [SYS/TEMP] bad  INJECTED\r\n"
    long = err("x" * 1000)
    assert len(long) == MAX_RESPONSE_LINE
    assert long.endswith(b"\r\n")
    assert long.count(b"\r\n") == 1


# --- commands ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "command"),
    [
        (b"STAT", Command(Verb.STAT)),
        (b"stat", Command(Verb.STAT)),
        (b"LIST 1", Command(Verb.LIST, (b"1",))),
        (b"TOP  1   2", Command(Verb.TOP, (b"1", b"2"))),
        (b"PASS  two  spaces ", Command(Verb.PASS, (b" two  spaces ",))),
        (b"PASS", Command(Verb.PASS)),
        (b"AUTH PLAIN =", Command(Verb.AUTH, (b"PLAIN", b"="))),
        (b"UIDL ", Command(Verb.UIDL)),
    ],
)
def test_parse_command(line: bytes, command: Command) -> None:
    assert parse_command(line) == command


@pytest.mark.parametrize("line", [b"", b" STAT", b"STATS", b"APOP a b", b"\xffSTAT", b"ST\x00AT"])
def test_parse_unknown(line: bytes) -> None:
    with pytest.raises(Pop3Error) as info:
        parse_command(line)
    assert info.value.reply == b"-ERR Unknown command\r\n"
    assert info.value.bad


def test_check_syntax() -> None:
    check_syntax(Command(Verb.TOP, (b"1", b"2")))
    with pytest.raises(Pop3Error, match="usage: TOP msg lines"):
        check_syntax(Command(Verb.TOP, (b"1",)))


def test_sensitive_commands() -> None:
    assert Command(Verb.PASS, (b"x",)).sensitive
    assert Command(Verb.AUTH).sensitive
    assert not Command(Verb.USER, (b"x",)).sensitive


def test_maildrop_entry_validation() -> None:
    MaildropEntry("~" * 70, 0)
    for uidl in ("", "a b", "x" * 71, "é"):
        with pytest.raises(ValueError, match="UIDL"):
            MaildropEntry(uidl, 1)
    with pytest.raises(ValueError, match="size"):
        MaildropEntry("a", -1)


# --- the session API --------------------------------------------------------------


def test_answers_must_match_events() -> None:
    session = started()
    with pytest.raises(RuntimeError):
        session.send(UpdateDone())
    session.receive_data(b"USER u\r\nPASS p\r\n")
    event = session.next_event()
    assert isinstance(event, Authenticate)
    assert "p" not in repr(event).replace("password", "")  # password kept out of repr
    with pytest.raises(RuntimeError, match="answer the previous event"):
        session.next_event()
    with pytest.raises(RuntimeError, match="does not answer"):
        session.send(MessageContent(b"x"))
    with pytest.raises(RuntimeError):
        session.tls_started()


def test_retrieve_unavailable_and_normalized_size() -> None:
    session = logged_in([MaildropEntry("a", 9), MaildropEntry("b", 9)])
    session.receive_data(b"RETR 1\r\nRETR 2\r\n")
    event = session.next_event()
    assert event == Retrieve(1, MaildropEntry("a", 9))
    session.send(MessageUnavailable(RespCode.SYS_TEMP))
    event = session.next_event()
    assert isinstance(event, Retrieve)
    session.send(MessageContent(b"H: x\n\nbody"))  # bare LF: sent as CRLF, size counts that
    assert session.next_event() is NEED_DATA
    assert session.data_to_send() == (
        b"-ERR [SYS/TEMP] Message is no longer available\r\n"
        b"+OK 14 octets\r\nH: x\r\n\r\nbody\r\n.\r\n"
    )


def test_update_failed() -> None:
    session = logged_in()
    session.receive_data(b"DELE 1\r\nQUIT\r\n")
    event = session.next_event()
    assert event == Update((1,), (MaildropEntry("a", 3),))
    assert session.state is State.UPDATE
    assert session.deleted == frozenset({1})
    session.send(UpdateFailed())
    assert session.next_event() == Closed(CloseReason.QUIT)
    assert session.data_to_send().endswith(b"-ERR [SYS/TEMP] Some deleted messages not removed\r\n")


def test_eof_in_transaction_updates_nothing() -> None:
    session = logged_in()
    session.receive_data(b"DELE 1\r\n")
    session.receive_data(b"")
    # The buffered command is still answered, then the session closes: no Update.
    assert session.next_event() == Closed(CloseReason.EOF)
    assert session.data_to_send() == b"+OK Message 1 deleted\r\n"
    assert session.state is State.CLOSED
    session.receive_data(b"QUIT\r\n")  # ignored after close
    assert session.next_event() == Closed(CloseReason.EOF)
    assert session.data_to_send() == b""


def test_close_idle_and_shutdown() -> None:
    session = logged_in()
    session.receive_data(b"RETR 1\r\n")
    assert isinstance(session.next_event(), Retrieve)
    session.close_idle()
    session.send(MessageContent(b"late"))  # moot once closed
    session.shutdown()  # already closed: nothing more
    assert session.data_to_send() == b"-ERR Disconnected for inactivity\r\n"
    assert session.next_event() == Closed(CloseReason.TIMEOUT)

    session = started()
    session.shutdown()
    assert session.data_to_send() == b"-ERR [SYS/TEMP] Server shutting down\r\n"
    assert session.next_event() == Closed(CloseReason.SHUTDOWN)
    session.close_idle()
    assert session.data_to_send() == b""


def test_stls_discards_and_waits() -> None:
    session = started(Pop3Settings())
    session.receive_data(b"STLS\r\nUSER evil\r\n")
    assert session.next_event() == StartTls()
    session.receive_data(b"PASS injected\r\n")  # arrives before the handshake: dropped
    assert session.next_event() is NEED_DATA
    session.tls_started()
    assert session.tls
    assert session.next_event() is NEED_DATA
    assert session.data_to_send() == b"+OK Begin TLS negotiation\r\n"


def test_stls_unavailable() -> None:
    session = started(Pop3Settings(stls_available=False))
    session.receive_data(b"STLS\r\nCAPA\r\n")
    assert session.next_event() is NEED_DATA
    out = session.data_to_send()
    assert out.startswith(b"-ERR STLS is not available\r\n+OK Capability list follows\r\n")
    assert b"STLS\r\n" not in out.split(b"\r\n", 1)[1]


def test_sasl_login_when_offered() -> None:
    session = started(Pop3Settings(tls_active=True, mechanisms=frozenset(Mechanism)))
    session.receive_data(b"CAPA\r\nAUTH LOGIN\r\n")
    assert session.next_event() is NEED_DATA
    out = session.data_to_send()
    assert b"SASL LOGIN PLAIN\r\n" in out
    assert out.endswith(b"+ VXNlcm5hbWU6\r\n")
    session.receive_data(base64.b64encode(b"user") + b"\r\n")
    assert session.next_event() is NEED_DATA
    assert session.data_to_send() == b"+ UGFzc3dvcmQ6\r\n"
    session.receive_data(base64.b64encode(b"pass word") + b"\r\n")
    assert session.next_event() == Authenticate("user", "pass word", "LOGIN")


def test_long_line_aborts_sasl() -> None:
    session = started(Pop3Settings(tls_active=True, max_line=300))
    session.receive_data(b"AUTH PLAIN\r\n" + b"A" * 400 + b"\r\nNOOP\r\n")
    assert session.next_event() is NEED_DATA
    assert session.data_to_send() == (
        b"+ \r\n-ERR Line too long\r\n-ERR NOOP is not allowed before login\r\n"
    )


def test_authzid_refusals_count_as_failures() -> None:
    session = started(Pop3Settings(tls_active=True, max_auth_failures=1))
    bad = base64.b64encode(b"other\x00user\x00pw")
    session.receive_data(b"AUTH PLAIN " + bad + b"\r\n")
    assert session.next_event() == Closed(CloseReason.AUTH_FAILURES)


def test_auth_rejected_custom_text() -> None:
    session = started()
    session.receive_data(b"USER u\r\nPASS p\r\n")
    assert isinstance(session.next_event(), Authenticate)
    session.send(AuthRejected(RespCode.SYS_TEMP, "Auth service busy"))
    assert session.next_event() is NEED_DATA
    assert session.data_to_send().endswith(b"-ERR [SYS/TEMP] Auth service busy\r\n")


def test_trace_redacts_secrets_and_bodies() -> None:
    session = Pop3Session(Pop3Settings(allow_cleartext=True, trace=True))
    app = FakeApp()
    session.receive_data(
        b"USER alice@example.test\r\nPASS secret\r\nRETR 1\r\nAUTH\r\nFOO\r\nQUIT\r\n"
    )
    app.drive(session)
    trace = session.take_trace()
    assert session.take_trace() == []
    assert TraceLine("C", b"PASS <redacted>") in trace
    text = b"\n".join(t.line for t in trace)
    assert b"secret" not in text
    assert b"Hello Alice" not in text  # message bodies are not traced
    assert TraceLine("S", b"+OK 78 octets") in trace
    assert TraceLine("C", b"FOO") in trace

    session = Pop3Session(Pop3Settings(tls_active=True, trace=True, max_line=300))
    session.receive_data(b"AUTH PLAIN\r\nc2VjcmV0\r\n" + b"x" * 400 + b"\r\n")
    session.next_event()
    lines = [t.line for t in session.take_trace()]
    assert b"AUTH <redacted>" in lines
    assert b"<redacted>" in lines
    assert b"<line too long>" in lines
    assert not any(b"c2VjcmV0" in line for line in lines)


def test_properties() -> None:
    entries = [MaildropEntry("a", 1), MaildropEntry("b", 2)]
    session = logged_in(entries)
    assert session.maildrop == tuple(entries)
    assert session.state is State.TRANSACTION
    assert session.deleted == frozenset()


def test_pop3_all_is_exact() -> None:
    exported = set(pop3.__all__)
    public = {n for n in vars(pop3) if not n.startswith("_")} - {
        "events",
        "replies",
        "session",
        "commands",
    }
    assert exported == public


def test_proto_imports_stay_pure() -> None:
    root = Path(pop3.__file__).parent
    files = [*root.glob("*.py"), root.parent / "sasl.py"]
    allowed_prefixes = ("mailwarden.proto", "mailwarden.mail")
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top == "mailwarden":
                    assert name.startswith(allowed_prefixes), (path, name)
                else:
                    assert top in sys.stdlib_module_names, (path, name)
                    assert top not in {"asyncio", "socket", "time", "ssl", "selectors"}, name


# --- sweeps and fuzzing -------------------------------------------------------------

ARGS = [b"", b" 1", b" 2", b" x", b" 1 0", b" 1 2 3", b" PLAIN", b" PLAIN =", b" 99"]


@pytest.mark.parametrize("state", ["authorization", "transaction"])
@pytest.mark.parametrize("verb", list(Verb))
def test_every_command_in_every_state(state: str, verb: Verb) -> None:
    """h2-style sweep: every verb with every argument shape gets exactly one status line."""
    for args in ARGS:
        session = logged_in() if state == "transaction" else started()
        app = FakeApp(messages=(b"H: 1\r\n\r\nbody\r\n",))
        session.receive_data(verb.value.encode() + args + b"\r\n")
        out = app.drive(session)
        app.finish_tls(session)
        assert out[:3] in (b"+OK", b"-ER", b"+ \r"), (verb, args, out)
        assert out.endswith(b"\r\n")


@settings(max_examples=200, deadline=None)
@given(
    chunks=st.lists(st.binary(max_size=64), max_size=12),
    cleartext=st.booleans(),
    tls=st.booleans(),
)
def test_arbitrary_bytes_raise_nothing(chunks: list[bytes], cleartext: bool, tls: bool) -> None:
    session = Pop3Session(
        Pop3Settings(allow_cleartext=cleartext, tls_active=tls, max_bad_commands=5, trace=True)
    )
    app = FakeApp()
    for chunk in chunks:
        session.receive_data(chunk)
        app.drive(session)
        app.finish_tls(session)
    session.receive_data(b"")
    app.drive(session)
    assert isinstance(session.next_event(), Closed)


COMMAND_LINES = st.sampled_from(
    [
        b"USER alice@example.test",
        b"PASS secret",
        b"PASS wrong",
        b"AUTH PLAIN AGFsaWNlQGV4YW1wbGUudGVzdABzZWNyZXQ=",
        b"AUTH PLAIN",
        b"*",
        b"STLS",
        b"CAPA",
        b"STAT",
        b"LIST",
        b"LIST 2",
        b"UIDL",
        b"UIDL 1",
        b"RETR 1",
        b"RETR 2",
        b"TOP 3 1",
        b"DELE 1",
        b"DELE 3",
        b"RSET",
        b"NOOP",
        b"QUIT",
        b"BOGUS",
    ]
)


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(COMMAND_LINES, max_size=25), split=st.integers(1, 40))
def test_command_sequences_keep_invariants(lines: list[bytes], split: int) -> None:
    """Random command sequences: well-formed output, and deletions only via QUIT."""
    session = Pop3Session(Pop3Settings(allow_cleartext=True, max_bad_commands=100))
    app = FakeApp()
    data = b"".join(line + b"\r\n" for line in lines)
    out = session.data_to_send()
    for i in range(0, len(data), split):
        session.receive_data(data[i : i + split])
        out += app.drive(session)
        app.finish_tls(session)
    session.receive_data(b"")
    out += app.drive(session)
    closed = session.next_event()
    assert isinstance(closed, Closed)
    if closed.reason is not CloseReason.QUIT or session.maildrop == ():
        assert all(not d for d in app.expunged)  # no UPDATE without QUIT in TRANSACTION
    for deleted in app.expunged:
        assert all(1 <= n <= len(MESSAGES) for n in deleted)
    assert out.endswith(b"\r\n")
