"""Parser tables and round trips for SMTP command lines and replies."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import mailwarden.proto.smtp as smtp_pkg
from mailwarden.mail.address import Address
from mailwarden.proto.smtp import commands as c
from mailwarden.proto.smtp import replies as r
from mailwarden.proto.smtp.commands import (
    AuthCommand,
    Bdat,
    Body,
    Ehlo,
    MailFrom,
    MailParams,
    Notify,
    RcptParams,
    RcptTo,
    Ret,
    Verb,
    line_limit,
    parse_command,
)
from mailwarden.proto.smtp.replies import Reply, SmtpError, parse_reply

A = Address("alice", "example.test")

GOOD = [
    (b"EHLO x.test", Ehlo("x.test")),
    (b"ehlo [192.0.2.1]", Ehlo("[192.0.2.1]")),
    (b"HELO x", c.Helo("x")),
    (b"MAIL FROM:<alice@example.test>", MailFrom(A)),
    (b"mail from: <alice@EXAMPLE.test>", MailFrom(A)),
    (b"MAIL FROM:<>", MailFrom(None)),
    (b"MAIL FROM:<@r1.test,@r2.test:alice@example.test>", MailFrom(A)),
    (
        b"MAIL FROM:<alice@example.test> size=10 body=binarymime",
        MailFrom(A, MailParams(10, Body.BINARYMIME)),
    ),
    (
        b"MAIL FROM:<alice@example.test> RET=full ENVID=a+2Bb",
        MailFrom(A, MailParams(ret=Ret.FULL, envid="a+2Bb")),
    ),
    (b"MAIL FROM:<alice@example.test> AUTH=<>", MailFrom(A, MailParams(auth="<>"))),
    (
        "MAIL FROM:<jörg@bücher.test> SMTPUTF8".encode(),
        MailFrom(Address("jörg", "xn--bcher-kva.test"), MailParams(smtputf8=True)),
    ),
    (b"RCPT TO:<alice@example.test>", RcptTo(A)),
    (b"RCPT TO:<alice@example.test> NOTIFY=never", RcptTo(A, RcptParams((Notify.NEVER,)))),
    (
        b"RCPT TO:<alice@example.test> ORCPT=rfc822;x+40y",
        RcptTo(A, RcptParams(orcpt="rfc822;x+40y")),
    ),
    (b"RCPT TO:<Postmaster>", RcptTo(Address("postmaster", "mx.test"))),
    (b"DATA", c.Data()),
    (b"BDAT 0 LAST", Bdat(0, True)),
    (b"bdat 100", Bdat(100, False)),
    (b"BDAT 5 last", Bdat(5, True)),
    (b"RSET", c.Rset()),
    (b"NOOP what ever", c.Noop()),
    (b"QUIT", c.Quit()),
    (b"VRFY alice", c.Vrfy("alice")),
    (b"EXPN list", c.Expn("list")),
    (b"HELP me", c.Help()),
    (b"STARTTLS", c.StartTls()),
    (b"AUTH plain", AuthCommand("PLAIN")),
    (b"AUTH PLAIN AGEAYg==", AuthCommand("PLAIN", b"AGEAYg==")),
    (b"AUTH LOGIN =", AuthCommand("LOGIN", b"=")),
    (b"QUIT   ", c.Quit()),
]

BAD = [
    (b"", 500),
    (b"\xff\xfe", 500),
    (b"FROBNICATE", 500),
    (b"ETRN x", 502),
    (b"EHLO", 501),
    (b"EHLO a\x00b", 501),
    (b"MAIL TO:<a@b.test>", 501),
    (b"MAIL FROM:<a@b.test", 501),
    (b"MAIL FROM:<a@b.test>SIZE=1", 501),
    (b"MAIL FROM:<@r1.test>", 501),
    (b"MAIL FROM:<a@b.test> SIZE=x", 501),
    (b"MAIL FROM:<a@b.test> SIZE", 501),
    (b"MAIL FROM:<a@b.test> SMTPUTF8=yes", 501),
    (b"MAIL FROM:<a@b.test> ENVID=" + b"x" * 101, 501),
    (b"MAIL FROM:<a@b.test> ENVID=a+zz", 501),
    (b"MAIL FROM:<a@b.test> AUTH=a=b", 501),
    (b"MAIL FROM:<a@b.test> RET=MOST", 501),
    (b"MAIL FROM:<a@b.test> X-=1", 555),
    (b"MAIL FROM:<a@b.test> -X", 501),
    (b'MAIL FROM:<"q"@b.test>', 501),
    (b"MAIL FROM:<a@[192.0.2.1]>", 501),
    ("MAIL FROM:<jörg@b.test>".encode(), 553),
    (b"MAIL FROM:<a@b.test> \xff", 501),
    (b"RCPT TO:<a@b.test> NOTIFY=", 501),
    (b"RCPT TO:<a@b.test> NOTIFY=SUCCESS,SUCCESS", 501),
    (b"RCPT TO:<a@b.test> ORCPT=nosemicolon", 501),
    (b"RCPT TO:<a@b.test> SIZE=1", 555),
    (b"RCPT TO:<>", 501),
    (b"RCPT TO:<Postmaster@>", 501),
    (b"BDAT", 501),
    (b"BDAT -1", 501),
    (b"BDAT 1 FIRST", 501),
    (b"BDAT 1234567890123456789", 501),
    (b"VRFY", 501),
    (b"DATA now", 501),
    (b"STARTTLS please", 501),
    (b"AUTH", 501),
    (b"AUTH PLAIN a b", 501),
    (b"AUTH PL@IN", 501),
    (b"AUTH PLAIN ***", 501),
]


@pytest.mark.parametrize(("line", "expected"), GOOD, ids=[g[0].decode("utf-8")[:40] for g in GOOD])
def test_parse_good(line: bytes, expected: c.Command) -> None:
    assert parse_command(line, postmaster_domain="mx.test") == expected


@pytest.mark.parametrize(
    ("hostname", "domain"),
    [("mx.test", "mx.test"), ("MX.Test.", "mx.test"), ("localhost", "localhost")],
)
def test_bare_postmaster_names_our_host(hostname: str, domain: str) -> None:
    # RFC 5321 §4.5.1: even a one-label host name (the default "localhost").
    for line in (b"RCPT TO:<Postmaster>", b"RCPT TO:<pOSTMASTER> NOTIFY=NEVER"):
        command = parse_command(line, postmaster_domain=hostname)
        assert isinstance(command, c.RcptTo)
        assert command.recipient == c.postmaster_address(hostname) == Address("postmaster", domain)
    with pytest.raises(SmtpError) as info:
        parse_command(b"RCPT TO:<Postmaster>")  # nobody said which host we are
    assert info.value.reply.code == 501


@pytest.mark.parametrize(
    ("line", "code"), BAD, ids=[b[0].decode("utf-8", "replace")[:40] for b in BAD]
)
def test_parse_bad(line: bytes, code: int) -> None:
    with pytest.raises(SmtpError) as info:
        parse_command(line)
    assert info.value.reply.code == code
    assert not info.value.close


def test_rcpt_utf8_needs_transaction_smtputf8() -> None:
    line = "RCPT TO:<jörg@example.test>".encode()
    with pytest.raises(SmtpError) as info:
        parse_command(line)
    assert info.value.reply == r.R553_NONASCII_ADDRESS
    assert parse_command(line, smtputf8=True) == RcptTo(Address("jörg", "example.test"))


def test_line_limits() -> None:
    assert line_limit(Verb.NOOP, 512) == 512
    assert line_limit(Verb.AUTH, 512) == 12288
    assert line_limit(Verb.MAIL, 512) > 512 + 126
    assert line_limit(Verb.RCPT, 512) == 1012


def test_auth_command_repr_hides_response() -> None:
    assert "AGEAYg" not in repr(AuthCommand("PLAIN", b"AGEAYg=="))


# --- round trips -----------------------------------------------------------------

_local = st.from_regex(r"[a-z0-9][a-z0-9._+-]{0,20}[a-z0-9]", fullmatch=True).filter(
    lambda s: ".." not in s
)
_domain = st.from_regex(r"[a-z][a-z0-9-]{0,10}[a-z0-9]\.(test|example|org)", fullmatch=True)
_address = st.builds(Address, _local, _domain)
_xtext = st.from_regex(r"[A-Za-z0-9!-*]{1,20}(\+[0-9A-F]{2})?", fullmatch=True)
_mail_params = st.builds(
    MailParams,
    size=st.none() | st.integers(0, 10**12),
    body=st.none() | st.sampled_from(Body),
    smtputf8=st.booleans(),
    ret=st.none() | st.sampled_from(Ret),
    envid=st.none() | _xtext,
    auth=st.none() | _xtext,
)
_notify = st.one_of(
    st.none(),
    st.just((Notify.NEVER,)),
    st.lists(
        st.sampled_from([Notify.SUCCESS, Notify.FAILURE, Notify.DELAY]), min_size=1, unique=True
    ).map(tuple),
)
_rcpt_params = st.builds(
    RcptParams, notify=_notify, orcpt=st.none() | _xtext.map("rfc822;{}".format)
)
_commands = st.one_of(
    st.builds(Ehlo, _domain),
    st.builds(c.Helo, _domain),
    st.builds(MailFrom, st.none() | _address, _mail_params),
    st.builds(RcptTo, _address, _rcpt_params),
    st.builds(Bdat, st.integers(0, 10**15), st.booleans()),
    st.builds(c.Vrfy, _local),
    st.builds(c.Expn, _local),
    st.builds(AuthCommand, st.sampled_from(["PLAIN", "LOGIN"]), st.none() | st.just(b"AGEAYg==")),
    st.sampled_from([c.Data(), c.Rset(), c.Noop(), c.Quit(), c.Help(), c.StartTls()]),
)


@given(_commands)
def test_command_round_trip(command: c.Command) -> None:
    line = command.render()
    assert line.endswith(b"\r\n")
    assert parse_command(line[:-2], smtputf8=True) == command


_text = st.text(
    st.characters(min_codepoint=32, max_codepoint=0x2FF, blacklist_characters="\r\n"), max_size=30
).map(str.strip)
_replies = st.builds(
    lambda code, enh, lines: Reply(
        code, f"{str(code)[0]}.{enh[0]}.{enh[1]}" if enh and code // 100 != 3 else "", lines
    ),
    st.sampled_from(
        [211, 214, 220, 221, 235, 250, 251, 252, 334, 354, 421, 450, 452, 500, 550, 554]
    ),
    st.none() | st.tuples(st.integers(0, 999), st.integers(0, 999)),
    st.lists(_text, min_size=1, max_size=4).map(tuple),
)


@given(_replies)
def test_reply_round_trip(reply: Reply) -> None:
    # A reply whose text starts like an enhanced code cannot be told apart.
    if reply.enhanced == "" and any(t[:1].isdigit() for t in reply.lines):
        return
    assert parse_reply(reply.render()) == reply


def test_reply_rendering() -> None:
    multi = Reply(250, "", ("mx.test", "PIPELINING", "SIZE 10"))
    assert multi.render() == b"250-mx.test\r\n250-PIPELINING\r\n250 SIZE 10\r\n"
    assert r.R503_NEED_MAIL.render() == b"503 5.5.1 Send MAIL first\r\n"
    assert Reply.of(334, "").render() == b"334 \r\n"
    assert str(r.R250_OK) == "250 2.0.0 OK"
    assert r.R250_OK.is_positive
    assert not r.R250_OK.is_error
    assert r.R550_NO_SUCH_USER.is_error


@pytest.mark.parametrize(
    "args",
    [
        (199, "", ("x",)),
        (250, "5.0.0", ("x",)),
        (250, "2.0", ("x",)),
        (250, "", ()),
        (250, "", ("a\r\nb",)),
    ],
)
def test_reply_validation(args: tuple[int, str, tuple[str, ...]]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case names its own problem
        Reply(*args)


@pytest.mark.parametrize(
    "wire",
    [
        b"250 OK",
        b"25 OK\r\n",
        b"250-a\r\n251 b\r\n",
        b"250 a\r\n250 b\r\n",
        b"250-a\r\n",
        b"250-2.0.0 a\r\n250 2.1.0 b\r\n",
    ],
)
def test_parse_reply_rejects(wire: bytes) -> None:
    with pytest.raises(ValueError):  # noqa: PT011
        parse_reply(wire)


def test_all_is_exact() -> None:
    public = {n for n in vars(smtp_pkg) if not n.startswith("_")}
    modules = {"commands", "data", "events", "replies", "session"}
    assert set(smtp_pkg.__all__) == public - modules
    for mod in (c, r):
        names = {
            n
            for n, v in vars(mod).items()
            if not n.startswith("_")
            and getattr(v, "__module__", mod.__name__) == mod.__name__
            and not isinstance(v, type(c))
        }
        assert names <= set(mod.__all__) | {"annotations", "MiB"}, names - set(mod.__all__)


def test_proto_smtp_imports_stay_pure() -> None:
    root = Path(smtp_pkg.__file__).parent
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top == "mailwarden":
                    assert name.startswith(("mailwarden.proto", "mailwarden.mail")), (path, name)
                else:
                    assert top in sys.stdlib_module_names, (path, name)
                    assert top not in {"asyncio", "socket", "time", "ssl", "selectors"}, name
