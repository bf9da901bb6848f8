"""SMTP command lines: parsing (server side) and rendering (client side).

Each command is a frozen dataclass; :func:`parse_command` turns one received
line (without its CRLF) into one of them or raises :class:`SmtpError` with the
reply the peer gets, and every command's ``render()`` gives back a line that
parses to an equal command (the round trip the tests check).  The session
decides whether a command is *allowed* now; this module only decides whether it
is *well formed*.

Grammar notes (RFC 5321 §4.1 unless said otherwise):

* Verbs are case-insensitive; arguments follow one space.  We tolerate extra
  spaces, and a space after ``FROM:``/``TO:`` (many clients send it), but
  paths must be in angle brackets: guessing where a bare path ends is how
  parsers disagree.
* Source routes (``<@a,@b:user@host>``) are accepted and ignored (§4.1.1.3).
* Quoted local parts and address literals are refused (see
  :class:`mailwarden.mail.Address`): no hosted mailbox needs them.
* ESMTP parameters are ``KEYWORD[=VALUE]``, keywords case-insensitive
  (§4.1.2); unknown keywords get 555 (§4.1.1.11), repeated ones 501.
* Non-ASCII in a path is allowed only with SMTPUTF8 (RFC 6531 §3.4); without
  it the reply is ``553 5.6.7``.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import TypeVar

from mailwarden.mail.address import Address, AddressError, normalize_domain
from mailwarden.proto.smtp.replies import (
    R500_UNRECOGNISED,
    R501_BAD_ADDRESS_RCPT,
    R501_BAD_ADDRESS_SENDER,
    R501_NO_ARGUMENTS,
    R501_SYNTAX,
    R501_SYNTAX_PARAMS,
    R501_UNRECOGNISED_PARAM_VALUE,
    R502_NOT_IMPLEMENTED,
    R553_NONASCII_ADDRESS,
    R555_UNSUPPORTED_PARAM,
    Reply,
    SmtpError,
)

__all__ = [
    "AUTH_LINE_LIMIT",
    "AuthCommand",
    "Bdat",
    "Body",
    "Command",
    "Data",
    "Ehlo",
    "Expn",
    "Helo",
    "Help",
    "MailFrom",
    "MailParams",
    "Noop",
    "Notify",
    "Quit",
    "RcptParams",
    "RcptTo",
    "Ret",
    "Rset",
    "StartTls",
    "Verb",
    "Vrfy",
    "line_limit",
    "parse_command",
    "postmaster_address",
]

# RFC 4954 §4: the AUTH command line and SASL responses may be 12288 octets.
AUTH_LINE_LIMIT = 12288
# Extra octets the extensions allow on top of the 512-octet command line:
# RFC 1870 §3 (SIZE, 26) + RFC 3461 §4 (ENVID/RET, 100) + RFC 6152 and
# RFC 6531 keywords (BODY=8BITMIME, SMTPUTF8) and RFC 4954 §5 (AUTH=, 500).
_MAIL_EXTRA = 26 + 100 + 30 + 500
# RFC 3461 §4: NOTIFY and ORCPT add up to 500 octets to RCPT.
_RCPT_EXTRA = 500

_MAX_XTEXT = 500
# RFC 3461 §4.4: ENVID is at most 100 characters.
_MAX_ENVID = 100


class Verb(enum.Enum):
    """The commands the server understands."""

    EHLO = "EHLO"
    HELO = "HELO"
    MAIL = "MAIL"
    RCPT = "RCPT"
    DATA = "DATA"
    BDAT = "BDAT"
    RSET = "RSET"
    NOOP = "NOOP"
    QUIT = "QUIT"
    VRFY = "VRFY"
    EXPN = "EXPN"
    HELP = "HELP"
    STARTTLS = "STARTTLS"
    AUTH = "AUTH"


# Commands that exist but that we do not offer (RFC 5321 §4.1.1, RFC 1985,
# RFC 2645): 502 rather than 500, so a client knows we understood.
_NOT_IMPLEMENTED = frozenset({"TURN", "ETRN", "ATRN", "SEND", "SOML", "SAML", "VERB"})


def line_limit(verb: Verb, base: int) -> int:
    """The longest line, CRLF included, allowed for ``verb``.

    Args:
        verb: the command.
        base: the configured command line limit (RFC 5321 §4.5.3.1.4: 512).
    """
    if verb is Verb.AUTH:
        return max(base, AUTH_LINE_LIMIT)
    if verb is Verb.MAIL:
        return base + _MAIL_EXTRA
    if verb is Verb.RCPT:
        return base + _RCPT_EXTRA
    return base


class Body(enum.Enum):
    """The BODY parameter of MAIL (RFC 6152, RFC 3030)."""

    SEVEN_BIT = "7BIT"
    EIGHT_BITMIME = "8BITMIME"
    BINARYMIME = "BINARYMIME"


class Ret(enum.Enum):
    """The RET parameter of MAIL (RFC 3461 §4.3): what a DSN returns."""

    FULL = "FULL"
    HDRS = "HDRS"


class Notify(enum.Enum):
    """The NOTIFY parameter of RCPT (RFC 3461 §4.1)."""

    NEVER = "NEVER"
    SUCCESS = "SUCCESS"
    FAILURE = "FAILURE"
    DELAY = "DELAY"


@dataclass(frozen=True, slots=True)
class MailParams:
    """ESMTP parameters of MAIL FROM, kept with the message.

    Attributes:
        size: declared size (RFC 1870), or None.
        body: declared body type (RFC 6152/3030), or None (7BIT implied).
        smtputf8: the client asked for SMTPUTF8 (RFC 6531).
        ret: DSN return type (RFC 3461), or None.
        envid: DSN envelope id as xtext, or None.
        auth: the AUTH= parameter (RFC 4954 §5) as xtext, or None.
    """

    size: int | None = None
    body: Body | None = None
    smtputf8: bool = False
    ret: Ret | None = None
    envid: str | None = None
    auth: str | None = None

    def render(self) -> str:
        """The parameters as they follow the path (leading space included)."""
        out = []
        if self.size is not None:
            out.append(f" SIZE={self.size}")
        if self.body is not None:
            out.append(f" BODY={self.body.value}")
        if self.smtputf8:
            out.append(" SMTPUTF8")
        if self.ret is not None:
            out.append(f" RET={self.ret.value}")
        if self.envid is not None:
            out.append(f" ENVID={self.envid}")
        if self.auth is not None:
            out.append(f" AUTH={self.auth}")
        return "".join(out)


@dataclass(frozen=True, slots=True)
class RcptParams:
    """ESMTP parameters of RCPT TO (RFC 3461), kept with the recipient.

    Attributes:
        notify: the NOTIFY conditions, or None when not given.
        orcpt: the original recipient as ``addr-type;xtext``, or None.
    """

    notify: tuple[Notify, ...] | None = None
    orcpt: str | None = None

    def render(self) -> str:
        """The parameters as they follow the path (leading space included)."""
        out = []
        if self.notify is not None:
            out.append(" NOTIFY=" + ",".join(n.value for n in self.notify))
        if self.orcpt is not None:
            out.append(f" ORCPT={self.orcpt}")
        return "".join(out)


@dataclass(frozen=True, slots=True)
class Ehlo:
    """EHLO: the client's name; asks for the extension list (RFC 5321 §4.1.1.1)."""

    hostname: str

    def render(self) -> bytes:
        """The command line with CRLF."""
        return f"EHLO {self.hostname}\r\n".encode()


@dataclass(frozen=True, slots=True)
class Helo:
    """HELO: the client's name, no extensions (RFC 5321 §4.1.1.1)."""

    hostname: str

    def render(self) -> bytes:
        """The command line with CRLF."""
        return f"HELO {self.hostname}\r\n".encode()


@dataclass(frozen=True, slots=True)
class MailFrom:
    """MAIL FROM: starts a transaction (RFC 5321 §4.1.1.2).

    Attributes:
        sender: the reverse path, or None for the null path ``<>`` (bounces).
        params: the ESMTP parameters.
    """

    sender: Address | None
    params: MailParams = MailParams()

    def render(self) -> bytes:
        """The command line with CRLF."""
        path = str(self.sender) if self.sender is not None else ""
        return f"MAIL FROM:<{path}>{self.params.render()}\r\n".encode()


@dataclass(frozen=True, slots=True)
class RcptTo:
    """RCPT TO: one recipient (RFC 5321 §4.1.1.3)."""

    recipient: Address
    params: RcptParams = RcptParams()

    def render(self) -> bytes:
        """The command line with CRLF."""
        return f"RCPT TO:<{self.recipient}>{self.params.render()}\r\n".encode()


@dataclass(frozen=True, slots=True)
class Data:
    """DATA: message content follows, dot-stuffed (RFC 5321 §4.1.1.4)."""

    def render(self) -> bytes:
        """The command line with CRLF."""
        return b"DATA\r\n"


@dataclass(frozen=True, slots=True)
class Bdat:
    """BDAT: exactly ``size`` octets follow (RFC 3030 §2)."""

    size: int
    last: bool = False

    def render(self) -> bytes:
        """The command line with CRLF."""
        return f"BDAT {self.size}{' LAST' if self.last else ''}\r\n".encode()


@dataclass(frozen=True, slots=True)
class Rset:
    """RSET: abort the transaction (RFC 5321 §4.1.1.5)."""

    def render(self) -> bytes:
        """The command line with CRLF."""
        return b"RSET\r\n"


@dataclass(frozen=True, slots=True)
class Noop:
    """NOOP: do nothing; an argument is allowed and ignored (§4.1.1.9)."""

    def render(self) -> bytes:
        """The command line with CRLF."""
        return b"NOOP\r\n"


@dataclass(frozen=True, slots=True)
class Quit:
    """QUIT: the client is done (RFC 5321 §4.1.1.10)."""

    def render(self) -> bytes:
        """The command line with CRLF."""
        return b"QUIT\r\n"


@dataclass(frozen=True, slots=True)
class Vrfy:
    """VRFY: we never verify (answered 252, RFC 5321 §3.5.3)."""

    argument: str

    def render(self) -> bytes:
        """The command line with CRLF."""
        return f"VRFY {self.argument}\r\n".encode()


@dataclass(frozen=True, slots=True)
class Expn:
    """EXPN: we never expand lists (answered 502)."""

    argument: str

    def render(self) -> bytes:
        """The command line with CRLF."""
        return f"EXPN {self.argument}\r\n".encode()


@dataclass(frozen=True, slots=True)
class Help:
    """HELP, with an optional topic that we ignore."""

    def render(self) -> bytes:
        """The command line with CRLF."""
        return b"HELP\r\n"


@dataclass(frozen=True, slots=True)
class StartTls:
    """STARTTLS: switch to TLS after our 220 (RFC 3207)."""

    def render(self) -> bytes:
        """The command line with CRLF."""
        return b"STARTTLS\r\n"


@dataclass(frozen=True, slots=True)
class AuthCommand:
    """AUTH mechanism [initial-response] (RFC 4954 §4).

    The initial response stays base64 (``=`` for empty); the SASL exchange
    decodes it.  ``repr`` hides it: it carries a password.
    """

    mechanism: str
    initial_response: bytes | None = None

    def __repr__(self) -> str:
        return f"AuthCommand(mechanism={self.mechanism!r}, initial_response=<redacted>)"

    def render(self) -> bytes:
        """The command line with CRLF."""
        ir = b"" if self.initial_response is None else b" " + self.initial_response
        return b"AUTH " + self.mechanism.encode("ascii") + ir + b"\r\n"


Command = (
    Ehlo
    | Helo
    | MailFrom
    | RcptTo
    | Data
    | Bdat
    | Rset
    | Noop
    | Quit
    | Vrfy
    | Expn
    | Help
    | StartTls
    | AuthCommand
)

_VERB_RE = re.compile(rb"([A-Za-z]{1,12})(?: +(.*))?")
_DOMAIN_ARG_RE = re.compile(r"[^\s\x00-\x1f\x7f]+")
_KEYWORD_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")
# RFC 5321 §4.1.2 esmtp-value: %d33-60 / %d62-126, plus UTF-8 (RFC 6531 §3.3).
_VALUE_RE = re.compile(r"[!-<>-~\u0080-\U0010ffff]+")
# RFC 3461 §4: xtext = *( xchar / hexchar ); xchar excludes "+" and "=".
_XTEXT_RE = re.compile(r"(?:[!-*,-<>-~]|\+[0-9A-F]{2})+")
# RFC 3461 §4.2 / RFC 6533 §3: addr-type ";" xtext (utf-8 types allow UTF-8).
_ORCPT_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*;(?:[!-*,-<>-~\u0080-\U0010ffff]|\+[0-9A-F]{2})+")
_BASE64_RE = re.compile(rb"[A-Za-z0-9+/]+={0,2}|=")
_BDAT_RE = re.compile(r"(\d{1,18})(?: +(LAST))? *", re.IGNORECASE)


def postmaster_address(hostname: str) -> Address:
    """What a bare ``RCPT TO:<Postmaster>`` means: postmaster at our own name.

    RFC 5321 §4.5.1 requires the domain-less form to be accepted.  The host
    name may be one that :meth:`Address.parse` would refuse as a mail domain
    (``localhost`` has one label), so the address is built directly; the
    application recognises it by :attr:`Address.domain` being this function's
    domain for its host name and decides where the postmaster's mail goes.
    """
    try:
        domain = normalize_domain(hostname)
    except AddressError:
        domain = hostname.strip().rstrip(".").lower()
    return Address("postmaster", domain)


def parse_command(line: bytes, *, smtputf8: bool = False, postmaster_domain: str = "") -> Command:
    """Parse one command line (without CRLF).

    Args:
        line: the octets of the line.
        smtputf8: the current transaction declared SMTPUTF8, so RCPT may
            carry a non-ASCII path.
        postmaster_domain: our host name: a bare ``<Postmaster>`` recipient
            becomes :func:`postmaster_address` of it (RFC 5321 §4.5.1); empty
            refuses it as a bad address.

    Returns:
        The command.

    Raises:
        SmtpError: with 500 for unknown verbs or undecodable lines, 502 for
            verbs we do not offer, 501 for bad arguments, 553 5.6.7 for a
            non-ASCII path without SMTPUTF8 and 555 for unknown parameters.
    """
    m = _VERB_RE.fullmatch(line.rstrip(b" "))
    if m is None:
        raise SmtpError(R500_UNRECOGNISED)
    name = m.group(1).decode("ascii").upper()
    raw_arg = m.group(2) or b""
    try:
        verb = Verb(name)
    except ValueError:
        raise SmtpError(
            R502_NOT_IMPLEMENTED if name in _NOT_IMPLEMENTED else R500_UNRECOGNISED
        ) from None
    if verb is Verb.AUTH:
        return _parse_auth(raw_arg)
    try:
        arg = raw_arg.decode("utf-8")
    except UnicodeDecodeError:
        raise SmtpError(R501_SYNTAX) from None
    match verb:
        case Verb.EHLO | Verb.HELO:
            if not _DOMAIN_ARG_RE.fullmatch(arg):
                raise SmtpError(R501_SYNTAX.with_text("Syntax: EHLO hostname"))
            return Ehlo(arg) if verb is Verb.EHLO else Helo(arg)
        case Verb.MAIL:
            return _parse_mail(arg)
        case Verb.RCPT:
            return _parse_rcpt(arg, smtputf8, postmaster_domain)
        case Verb.BDAT:
            bm = _BDAT_RE.fullmatch(arg)
            if bm is None:
                raise SmtpError(R501_SYNTAX.with_text("Syntax: BDAT size [LAST]"))
            return Bdat(int(bm.group(1)), bm.group(2) is not None)
        case Verb.VRFY | Verb.EXPN:
            if not arg:
                raise SmtpError(R501_SYNTAX)
            return Vrfy(arg) if verb is Verb.VRFY else Expn(arg)
        case Verb.NOOP:
            return Noop()  # RFC 5321 §4.1.1.9: the argument is ignored
        case Verb.HELP:
            return Help()
        case Verb.DATA | Verb.RSET | Verb.QUIT | Verb.STARTTLS:
            if arg:
                raise SmtpError(R501_NO_ARGUMENTS)
            return _BARE[verb]


_BARE: dict[Verb, Command] = {
    Verb.DATA: Data(),
    Verb.RSET: Rset(),
    Verb.QUIT: Quit(),
    Verb.STARTTLS: StartTls(),
}


def _parse_auth(raw: bytes) -> AuthCommand:
    parts = raw.split(b" ")
    parts = [p for p in parts if p]
    if not parts or len(parts) > 2:
        raise SmtpError(R501_SYNTAX.with_text("Syntax: AUTH mechanism [initial-response]"))
    mech = parts[0]
    if not mech.isascii() or not re.fullmatch(rb"[A-Za-z0-9_-]{1,20}", mech):
        raise SmtpError(R501_SYNTAX.with_text("Syntax: AUTH mechanism [initial-response]"))
    ir = None
    if len(parts) == 2:
        if not _BASE64_RE.fullmatch(parts[1]):
            raise SmtpError(R501_SYNTAX.with_text("Cannot decode initial response"))
        ir = parts[1]
    return AuthCommand(mech.decode("ascii").upper(), ir)


def _split_path(arg: str, prefix: str) -> tuple[str, str]:
    """Split ``FROM:<path> params`` into the path (without brackets) and params."""
    if not arg[: len(prefix)].upper() == prefix:
        raise SmtpError(R501_SYNTAX.with_text(f"Syntax: {prefix}<address>"))
    rest = arg[len(prefix) :].lstrip(" ")
    if not rest.startswith("<"):
        raise SmtpError(R501_SYNTAX.with_text(f"Syntax: {prefix}<address>"))
    end = rest.find(">")
    if end < 0:
        raise SmtpError(R501_SYNTAX.with_text(f"Syntax: {prefix}<address>"))
    path, params = rest[1:end], rest[end + 1 :]
    if params and not params.startswith(" "):
        raise SmtpError(R501_SYNTAX_PARAMS)
    # RFC 5321 §4.1.1.3: a source route "@a,@b:" is accepted and ignored.
    if path.startswith("@"):
        _route, colon, path = path.partition(":")
        if not colon:
            raise SmtpError(R501_SYNTAX.with_text(f"Syntax: {prefix}<address>"))
    return path, params


def _parse_params(text: str) -> dict[str, str | None]:
    params: dict[str, str | None] = {}
    for item in text.split():
        key, eq, value = item.partition("=")
        if not _KEYWORD_RE.fullmatch(key) or (eq and not _VALUE_RE.fullmatch(value)):
            raise SmtpError(R501_SYNTAX_PARAMS)
        key = key.upper()
        if key in params:
            raise SmtpError(R501_SYNTAX_PARAMS.with_text(f"Duplicate parameter {key}"))
        params[key] = value if eq else None
    return params


def _address(path: str, utf8_ok: bool, bad: Reply) -> Address:
    if not path.isascii() and not utf8_ok:
        raise SmtpError(R553_NONASCII_ADDRESS)
    try:
        return Address.parse(path)
    except AddressError:
        raise SmtpError(bad) from None


def _value(params: dict[str, str | None], key: str) -> str:
    value = params[key]
    if value is None:
        raise SmtpError(R501_UNRECOGNISED_PARAM_VALUE.with_text(f"{key} needs a value"))
    return value


_E = TypeVar("_E", bound=enum.Enum)


def _enum_value(kind: type[_E], params: dict[str, str | None], key: str) -> _E:
    try:
        return kind(_value(params, key).upper())
    except ValueError:
        raise SmtpError(R501_UNRECOGNISED_PARAM_VALUE.with_text(f"Bad {key} value")) from None


def _parse_mail(arg: str) -> MailFrom:
    path, rest = _split_path(arg, "FROM:")
    params = _parse_params(rest)
    size = body = ret = envid = auth = None
    smtputf8 = False
    for key in params:
        match key:
            case "SIZE":
                value = _value(params, key)
                if not value.isdigit() or not value.isascii() or len(value) > 20:
                    raise SmtpError(R501_UNRECOGNISED_PARAM_VALUE.with_text("Bad SIZE value"))
                size = int(value)
            case "BODY":
                body = _enum_value(Body, params, key)
            case "SMTPUTF8":
                if params[key] is not None:
                    raise SmtpError(R501_UNRECOGNISED_PARAM_VALUE.with_text("SMTPUTF8 takes none"))
                smtputf8 = True
            case "RET":
                ret = _enum_value(Ret, params, key)
            case "ENVID":
                envid = _value(params, key)
                if len(envid) > _MAX_ENVID or not _XTEXT_RE.fullmatch(envid):
                    raise SmtpError(R501_UNRECOGNISED_PARAM_VALUE.with_text("Bad ENVID value"))
            case "AUTH":
                auth = _value(params, key)
                if len(auth) > _MAX_XTEXT or not (auth == "<>" or _XTEXT_RE.fullmatch(auth)):
                    raise SmtpError(R501_UNRECOGNISED_PARAM_VALUE.with_text("Bad AUTH value"))
            case _:
                raise SmtpError(R555_UNSUPPORTED_PARAM)
    sender = None if path == "" else _address(path, smtputf8, R501_BAD_ADDRESS_SENDER)
    return MailFrom(sender, MailParams(size, body, smtputf8, ret, envid, auth))


def _parse_rcpt(arg: str, smtputf8: bool, postmaster_domain: str) -> RcptTo:
    path, rest = _split_path(arg, "TO:")
    params = _parse_params(rest)
    notify: tuple[Notify, ...] | None = None
    orcpt = None
    for key in params:
        match key:
            case "NOTIFY":
                notify = _parse_notify(_value(params, key))
            case "ORCPT":
                orcpt = _value(params, key)
                if len(orcpt) > _MAX_XTEXT or not _ORCPT_RE.fullmatch(orcpt):
                    raise SmtpError(R501_UNRECOGNISED_PARAM_VALUE.with_text("Bad ORCPT value"))
            case _:
                raise SmtpError(R555_UNSUPPORTED_PARAM)
    if path == "":
        raise SmtpError(R501_BAD_ADDRESS_RCPT)
    # RFC 5321 §4.5.1: <Postmaster> without a domain must be accepted.
    if path.lower() == "postmaster" and postmaster_domain:
        recipient = postmaster_address(postmaster_domain)
    else:
        recipient = _address(path, smtputf8, R501_BAD_ADDRESS_RCPT)
    return RcptTo(recipient, RcptParams(notify, orcpt))


def _parse_notify(value: str) -> tuple[Notify, ...]:
    # RFC 3461 §4.1: "NEVER" alone, or a list of SUCCESS, FAILURE, DELAY.
    out: list[Notify] = []
    for item in value.upper().split(","):
        try:
            n = Notify(item)
        except ValueError:
            raise SmtpError(R501_UNRECOGNISED_PARAM_VALUE.with_text("Bad NOTIFY value")) from None
        if n in out:
            raise SmtpError(R501_UNRECOGNISED_PARAM_VALUE.with_text("Bad NOTIFY value"))
        out.append(n)
    if Notify.NEVER in out and len(out) > 1:
        raise SmtpError(R501_UNRECOGNISED_PARAM_VALUE.with_text("NOTIFY=NEVER stands alone"))
    return tuple(out)
