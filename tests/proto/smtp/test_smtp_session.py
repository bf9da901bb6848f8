"""Explicit cases for the SMTP core: smuggling, STARTTLS injection, limits, API rules."""

from __future__ import annotations

import base64

import pytest
from smtp_transcript import HOSTNAME, FakeApp

from mailwarden.mail.address import Address
from mailwarden.proto.smtp import (
    Auth,
    Body,
    BodyFault,
    Closed,
    CloseReason,
    Ehlo,
    MailFrom,
    MessageRefused,
    Mode,
    NeedData,
    Notify,
    Quit,
    RcptTo,
    Ret,
    Rset,
    SessionConfig,
    SmtpSession,
    StartTls,
    State,
)
from mailwarden.proto.smtp import replies as r

ENVELOPE = b"EHLO c.test\r\nMAIL FROM:<s@example.org>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n"
SMUGGLED = (
    b"MAIL FROM:<admin@example.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n"
    b"Subject: smuggled\r\n\r\nforged\r\n"
)


def session(**kw: object) -> SmtpSession:
    return SmtpSession(SessionConfig(hostname=HOSTNAME, **kw))  # type: ignore[arg-type]


def run(s: SmtpSession, data: bytes, app: FakeApp | None = None) -> tuple[FakeApp, bytes]:
    app = app or FakeApp()
    s.receive_data(data)
    return app, app.drive(s)


def codes(out: bytes) -> list[str]:
    return [line[:3].decode() for line in out.split(b"\r\n") if line[3:4] == b" "]


# --- smuggling ----------------------------------------------------------------


@pytest.mark.parametrize(
    "fake_end",
    [b"\n.\n", b"\r\n.\n", b"\n.\r\n", b"\r.\r", b"\r.\r\n", b"\r\n.\r", b"\n..\r\n"],
    ids=[
        "lf-dot-lf",
        "crlf-dot-lf",
        "lf-dot-crlf",
        "cr-dot-cr",
        "cr-dot-crlf",
        "crlf-dot-cr",
        "dd",
    ],
)
def test_only_crlf_dot_crlf_ends_data(fake_end: bytes) -> None:
    s = session()
    app, out = run(s, ENVELOPE + b"Subject: x\r\n\r\nhello" + fake_end + SMUGGLED)
    # Still inside the first message: no reply to the smuggled commands.
    assert codes(out) == ["220", "250", "250", "250", "354"]
    assert s.state is State.DATA
    app, out = run(s, b".\r\nQUIT\r\n", app)
    assert out.startswith(b"550 5.6.0 ")
    assert codes(out) == ["550", "221"]
    assert app.messages == []  # nothing delivered, neither message


def test_bare_line_end_refusal_is_reported_as_event() -> None:
    s = session()
    s.receive_data(ENVELOPE + b"a\nb\r\n.\r\n")
    events = []
    while not isinstance(ev := s.next_event(), NeedData):
        events.append(ev)
        if isinstance(ev, MailFrom | RcptTo):
            s.send(r.R250_OK)
    refused = events[-1]
    assert isinstance(refused, MessageRefused)
    assert refused.fault is BodyFault.BARE_LINE_END
    assert refused.reply == r.R550_BAD_LINE_ENDINGS
    assert refused.size == len(b"a\nb\r\n.\r\n")


def test_dot_unstuffing_and_content_kept_exactly() -> None:
    s = session()
    body = b"Subject: d\r\n\r\n..\r\n...x\r\n. y\r\nend\r\n"
    app, out = run(s, ENVELOPE + body + b".\r\n")
    assert codes(out)[-1] == "250"
    assert app.messages[0].data == b"Subject: d\r\n\r\n.\r\n..x\r\n y\r\nend\r\n"


def test_empty_message_and_dot_at_start() -> None:
    app, _ = run(s := session(), ENVELOPE + b".\r\n")
    assert app.messages[0].data == b""
    app, _ = run(s, b"MAIL FROM:<>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n..\r\n.\r\n", app)
    assert app.messages[1].data == b".\r\n"
    assert app.messages[1].envelope.sender is None


def test_envelope_keeps_dsn_and_smtputf8_parameters() -> None:
    s = session()
    data = (
        b"EHLO c.test\r\n"
        b"MAIL FROM:<s@example.org> SIZE=30 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=x+2By\r\n"
        b"RCPT TO:<alice@example.test> NOTIFY=FAILURE,DELAY ORCPT=rfc822;a+40b\r\n"
        b"RCPT TO:<bob@example.test>\r\nDATA\r\nhi\r\n.\r\n"
    )
    app, _ = run(s, data)
    env = app.messages[0].envelope
    assert env.helo == "c.test"
    assert env.esmtp
    assert not env.tls
    assert env.authenticated is None
    assert env.sender == Address("s", "example.org")
    assert env.params.size == 30
    assert env.params.body is Body.EIGHT_BITMIME
    assert env.params.smtputf8
    assert env.params.ret is Ret.HDRS
    assert env.params.envid == "x+2By"
    first, second = env.recipients
    assert first.params.notify == (Notify.FAILURE, Notify.DELAY)
    assert first.params.orcpt == "rfc822;a+40b"
    assert second.address == Address("bob", "example.test")
    assert second.params.notify is None
    assert "<4 octets>" in repr(app.messages[0])  # bodies never reach logs via repr


def test_data_over_size_is_not_buffered() -> None:
    s = session(max_message_size=1000)
    _app, _out = run(s, ENVELOPE)
    for _ in range(200):  # 200 KB for a 1000-octet limit
        s.receive_data(b"x" * 998 + b"\r\n")
        assert isinstance(s.next_event(), NeedData)
    assert len(s._dot._buf) < 4000  # type: ignore[union-attr]
    s.receive_data(b".\r\n")
    ev = s.next_event()
    assert isinstance(ev, MessageRefused)
    assert ev.fault is BodyFault.TOO_BIG
    assert s.data_to_send().startswith(b"552 5.3.4")


def test_data_exactly_at_size_with_stuffed_dots_is_accepted() -> None:
    s = session(max_message_size=1000)
    body = b"." * 997 + b"\r\n"  # 999 raw, 998 after unstuffing... plus CRLF: 999
    app, out = run(s, ENVELOPE + b"." + body + b".\r\n")
    assert codes(out)[-1] == "250", out
    assert len(app.messages[0].data) == 999


def test_eof_in_data_delivers_nothing() -> None:
    s = session()
    app, _ = run(s, ENVELOPE + b"Subject: cut\r\n")
    s.receive_data(b"")
    assert s.next_event() == Closed(CloseReason.PEER_EOF)
    assert app.messages == []
    assert s.next_event() == Closed(CloseReason.PEER_EOF)


def test_eof_in_bdat_and_between_commands() -> None:
    s = session()
    run(s, b"EHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<alice@example.test>\r\nBDAT 10\r\nabc")
    s.receive_data(b"")
    assert s.next_event() == Closed(CloseReason.PEER_EOF)
    s2 = session()
    s2.receive_data(b"EHLO c\r\n")
    s2.receive_data(b"")
    assert isinstance(s2.next_event(), Ehlo)
    assert s2.next_event() == Closed(CloseReason.PEER_EOF)


# --- STARTTLS -------------------------------------------------------------------


def test_starttls_discards_pipelined_input_and_resets_everything() -> None:
    s = session(mode=Mode.SUBMISSION)
    s.receive_data(b"EHLO c\r\nSTARTTLS\r\nAUTH PLAIN AGEAYg==\r\nMAIL FROM:<a@b.test>\r\n")
    assert isinstance(s.next_event(), Ehlo)
    assert isinstance(s.next_event(), StartTls)
    assert s.state is State.TLS_PENDING
    assert isinstance(s.next_event(), NeedData)
    s.receive_data(b"RCPT TO:<x@y.test>\r\n")  # plaintext racing the handshake
    assert isinstance(s.next_event(), NeedData)
    out = s.data_to_send()
    assert out.endswith(b"220 2.0.0 Ready to start TLS\r\n")
    s.tls_established()
    assert s.tls
    assert s.state is State.CONNECTED
    assert s.helo == ""
    assert s.authenticated is None
    s.receive_data(b"EHLO c\r\n")
    assert isinstance(s.next_event(), Ehlo)
    ehlo = s.data_to_send()
    assert b"STARTTLS" not in ehlo
    assert b"AUTH PLAIN LOGIN" in ehlo
    with pytest.raises(RuntimeError):
        s.tls_established()


def test_starttls_not_offered() -> None:
    s = session(starttls=False)
    _, out = run(s, b"EHLO c\r\nSTARTTLS\r\n")
    assert b"STARTTLS" not in out.split(b"\r\n", 3)[3]
    assert out.endswith(b"502 5.5.1 Command not implemented\r\n")


def test_auth_without_tls_when_configured() -> None:
    s = session(mode=Mode.SUBMISSION, auth_without_tls=True, starttls=False)
    plain = base64.b64encode(b"\0alice@example.test\0secret")
    _, out = run(s, b"EHLO c\r\nAUTH PLAIN " + plain + b"\r\n")
    assert b"250-AUTH PLAIN LOGIN" in out
    assert out.endswith(b"235 2.7.0 Authentication successful\r\n")
    assert s.authenticated == "alice@example.test"


# --- AUTH is sensitive ----------------------------------------------------------------


def test_auth_lines_never_traced_and_secrets_not_in_repr() -> None:
    s = SmtpSession(SessionConfig(hostname=HOSTNAME, mode=Mode.SUBMISSION, trace=True), tls=True)
    plain = base64.b64encode(b"\0alice@example.test\0secret")
    s.receive_data(b"EHLO c\r\nAUTH PLAIN\r\n" + plain + b"\r\nAUTH LOGIN c2VjcmV0\r\n")
    assert isinstance(s.next_event(), Ehlo)
    event = s.next_event()
    assert isinstance(event, Auth)
    assert "secret" not in repr(event)
    s.send(r.R535_AUTH_FAILED)
    assert isinstance(s.next_event(), NeedData)
    trace = "\n".join(s.take_trace())
    assert "secret" not in trace
    assert plain.decode() not in trace
    assert "c2VjcmV0" not in trace
    assert "C: AUTH PLAIN ****" in trace
    assert "C: ****" in trace
    assert "C: AUTH LOGIN ****" in trace
    assert s.take_trace() == []
    assert session().take_trace() == []  # off by default


def test_auth_line_may_be_long_but_not_endless() -> None:
    s = SmtpSession(SessionConfig(hostname=HOSTNAME, mode=Mode.SUBMISSION), tls=True)
    long_ir = base64.b64encode(b"\0alice@example.test\0" + b"p" * 900)
    s.receive_data(b"EHLO c\r\nAUTH PLAIN " + long_ir + b"\r\n")
    assert isinstance(s.next_event(), Ehlo)
    assert isinstance(s.next_event(), Auth)  # over 512 octets, within RFC 4954's 12288
    s.send(r.R535_AUTH_FAILED)
    s.receive_data(b"AUTH PLAIN\r\n" + b"A" * 20000 + b"\r\nNOOP\r\n")
    assert isinstance(s.next_event(), NeedData)
    out = s.data_to_send()
    assert out.endswith(b"334 \r\n500 5.5.2 Line too long\r\n250 2.0.0 OK\r\n")


# --- limits and errors -----------------------------------------------------------------


def test_app_errors_count_towards_the_limit_and_421_closes() -> None:
    s = session(max_errors=2)
    s.receive_data(b"EHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<x@example.test>\r\n")
    s.next_event()
    assert isinstance(s.next_event(), MailFrom)
    s.send(r.R250_MAIL_OK)
    assert isinstance(s.next_event(), RcptTo)
    s.send(r.R550_NO_SUCH_USER)
    assert s.errors == 1
    assert not s.closed
    s.receive_data(b"RCPT TO:<y@example.test>\r\n")
    assert isinstance(s.next_event(), RcptTo)
    s.send(r.R550_NO_SUCH_USER)
    assert s.next_event() == Closed(CloseReason.TOO_MANY_ERRORS)
    assert s.data_to_send().endswith(b"421 4.7.0 Too many errors, closing connection\r\n")
    s.receive_data(b"NOOP\r\n")  # ignored once closed
    assert s.next_event() == Closed(CloseReason.TOO_MANY_ERRORS)


def test_transient_replies_do_not_count_as_errors() -> None:
    s = session(max_errors=1, max_recipients=1)
    _, out = run(s, b"EHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<alice@example.test>\r\n" * 1)
    _, out = run(s, b"RCPT TO:<bob@example.test>\r\nRCPT TO:<full@example.test>\r\n")
    assert codes(out) == ["452", "452"]
    assert not s.closed


def test_app_421_closes_and_abort() -> None:
    s = session()
    s.receive_data(b"EHLO c\r\nMAIL FROM:<>\r\n")
    s.next_event()
    s.next_event()
    s.send(r.R421_SHUTTING_DOWN)
    assert s.next_event() == Closed(CloseReason.ABORTED)
    s2 = session()
    s2.abort(r.R421_TIMEOUT)
    s2.abort(r.R421_TIMEOUT)  # idempotent
    assert s2.data_to_send().endswith(b"421 4.4.2 Timeout, closing connection\r\n")
    assert s2.next_event() == Closed(CloseReason.ABORTED)


def test_api_misuse_raises() -> None:
    s = session()
    with pytest.raises(RuntimeError):
        s.send(r.R250_OK)
    s.receive_data(b"EHLO c\r\nMAIL FROM:<>\r\n")
    s.next_event()
    assert isinstance(s.next_event(), MailFrom)
    with pytest.raises(RuntimeError):
        s.next_event()
    with pytest.raises(ValueError, match="2xx"):
        s.send(r.R354_START_DATA)


def test_quit_rset_events() -> None:
    s = session()
    s.receive_data(b"HELO c\r\nRSET\r\nQUIT\r\nNOOP\r\n")
    assert not isinstance(s.next_event(), NeedData)
    assert isinstance(s.next_event(), Rset)
    assert isinstance(s.next_event(), Quit)
    assert s.next_event() == Closed(CloseReason.QUIT)
    assert s.data_to_send().endswith(b"250 2.0.0 OK\r\n221 2.0.0 Bye\r\n")


def test_bdat_too_big_then_refused_until_new_transaction() -> None:
    s = session(max_message_size=10)
    app, out = run(
        s,
        b"EHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<alice@example.test>\r\n"
        b"BDAT 8\r\n12345678BDAT 8\r\n12345678BDAT 2 LAST\r\nab",
    )
    assert codes(out)[-3:] == ["250", "552", "503"]
    assert app.messages == []


def test_bdat_binarymime_keeps_octets_and_marks_chunked() -> None:
    s = session()
    blob = bytes(range(256))
    app, _out = run(
        s,
        b"EHLO c\r\nMAIL FROM:<> BODY=BINARYMIME\r\nRCPT TO:<alice@example.test>\r\n"
        b"BDAT 256\r\n" + blob + b"BDAT 0 LAST\r\n",
    )
    assert app.messages[0].data == blob
    assert app.messages[0].envelope.chunked


def test_bdat_before_ehlo_is_read_then_refused() -> None:
    _, out = run(session(), b"BDAT 6\r\nQUIT\r\nNOOP\r\n")
    assert out.endswith(b"503 5.5.1 Send EHLO or HELO first\r\n250 2.0.0 OK\r\n")


def test_line_too_long_without_newline_is_bounded() -> None:
    s = session()
    for _ in range(10):
        s.receive_data(b"x" * 5000)
        assert isinstance(s.next_event(), NeedData)
    assert s._lines.buffered <= 13000
    s.receive_data(b"\r\nNOOP\r\n")
    s.next_event()
    assert s.data_to_send().endswith(b"500 5.5.2 Line too long\r\n250 2.0.0 OK\r\n")


def test_submission_mail_before_auth() -> None:
    s = SmtpSession(SessionConfig(hostname=HOSTNAME, mode=Mode.SUBMISSION), tls=True)
    _, out = run(s, b"EHLO c\r\nMAIL FROM:<alice@example.test>\r\n")
    assert out.endswith(b"530 5.7.0 Authentication required\r\n")
    assert s.envelope.sender is None
    assert s.envelope.recipients == ()
