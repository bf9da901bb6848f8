"""Server side of one POP3 conversation (RFC 1939, 2449, 2595, 3206, 5034). No I/O, no clock.

Theory of operation
-------------------
A :class:`Pop3Session` is fed the client's bytes with :meth:`~Pop3Session.receive_data`
and drained with :meth:`~Pop3Session.data_to_send`.  In between, the shell calls
:meth:`~Pop3Session.next_event` until it returns :class:`NeedData`; each event
that needs outside knowledge (credentials, message octets, removing deleted
messages) must be answered with :meth:`~Pop3Session.send` before the next
call.  Everything else the core answers itself, so the shell stays a loop of
"read, feed, handle events, write".

States (RFC 1939 §3) and the commands legal in each are the table
``_HANDLERS`` at the bottom of this module:

* AUTHORIZATION: USER/PASS, AUTH (SASL, RFC 5034), STLS (RFC 2595), CAPA, QUIT.
* TRANSACTION: STAT, LIST, RETR, DELE, NOOP, RSET, TOP, UIDL, CAPA, QUIT.
* UPDATE: entered by QUIT in TRANSACTION; the core emits :class:`Update` with
  the messages marked deleted and closes once the application has answered.
  DELE only marks: a session that ends any other way removes nothing (§6).

Rules the core enforces itself:

* Lines are bounded by ``max_line`` (a security limit, via
  :class:`~mailwarden.proto.lines.LineBuffer`); longer lines are refused.
* Unknown commands, syntax errors and commands in the wrong state count as
  bad commands; at ``max_bad_commands`` the session answers ``-ERR`` and closes.
  ``max_auth_failures`` rejected logins close it too.
* USER/PASS and AUTH are refused before TLS unless cleartext is allowed
  (loopback peers, or by configuration), and then are not advertised in CAPA
  either (RFC 2595 §2.1).
* STLS discards anything the client pipelined after it: those octets came
  before the TLS handshake and an attacker in the middle could have put them
  there (the STARTTLS injection of CVE-2011-0411, RFC 2595 §4).
* A SASL exchange is driven by :class:`~mailwarden.proto.sasl.SaslExchange`;
  a non-empty authzid other than the login name is refused.
* Message bodies are byte-stuffed with CRLF line endings
  (:func:`~mailwarden.proto.pop3.replies.dot_stuff`); TOP is cut here.

Secrets: PASS, AUTH and SASL continuation lines are *sensitive*.  When
``trace`` is on, :meth:`~Pop3Session.take_trace` returns the conversation with
those lines redacted and message bodies left out, ready for a TRACE logger.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from mailwarden.proto.lines import LineBuffer, LineTooLong
from mailwarden.proto.pop3.commands import (
    Command,
    Verb,
    check_syntax,
    parse_command,
    parse_count,
    parse_msg_number,
)
from mailwarden.proto.pop3.events import (
    Answer,
    AuthAccepted,
    Authenticate,
    AuthRejected,
    Closed,
    CloseReason,
    Event,
    MaildropEntry,
    MessageContent,
    MessageUnavailable,
    NeedData,
    Retrieve,
    StartTls,
    Update,
    UpdateDone,
    UpdateFailed,
)
from mailwarden.proto.pop3.replies import (
    Pop3Error,
    RespCode,
    dot_stuff,
    err,
    normalize_newlines,
    ok,
    stuff_crlf,
    top_of,
)
from mailwarden.proto.sasl import (
    Mechanism,
    SaslCredentials,
    SaslError,
    SaslExchange,
    SaslFailure,
    parse_mechanism,
)

__all__ = ["NEED_DATA", "Pop3Session", "Pop3Settings", "State", "TraceLine"]

NEED_DATA = NeedData()

# The texts of AuthRejected when the application gives none.
_DEFAULT_REJECT_TEXT: dict[RespCode, str] = {
    RespCode.AUTH: "Authentication failed",
    RespCode.IN_USE: "Maildrop is locked by another session",
    RespCode.LOGIN_DELAY: "Logged in too recently; try again later",
    RespCode.SYS_TEMP: "Temporary failure; try again later",
    RespCode.SYS_PERM: "Login is not possible for this account",
}

_SASL_FAILURE_TEXT: dict[SaslFailure, str] = {
    SaslFailure.CANCELLED: "Authentication cancelled",
    SaslFailure.MALFORMED: "Invalid base64 data",
    SaslFailure.INVALID: "Malformed credentials",
    SaslFailure.UNSUPPORTED: "Unsupported authentication mechanism",
}


class State(enum.Enum):
    """Where the conversation is (RFC 1939 §3)."""

    AUTHORIZATION = "authorization"
    """Before login: the client identifies itself (and may start TLS)."""
    TRANSACTION = "transaction"
    """Logged in with the maildrop locked: listing, reading, marking."""
    UPDATE = "update"
    """After QUIT in TRANSACTION: the deleted messages are being removed."""
    CLOSED = "closed"
    """Over: nothing more is read or answered."""


@dataclass(frozen=True, slots=True)
class Pop3Settings:
    """What one session may do and how much it may send; the shell fills it from config.

    Attributes:
        max_line: the longest accepted line, octets without CRLF (a security limit).
        max_bad_commands: bad commands before the session closes.
        max_auth_failures: rejected logins before the session closes.
        tls_active: the connection is already TLS (implicit TLS port).
        stls_available: the server can start TLS (has a certificate).
        allow_cleartext: logins are allowed without TLS (loopback, or configured).
        mechanisms: the SASL mechanisms offered by AUTH and CAPA.
        greeting: the text of the ``+OK`` greeting.
        trace: keep a redacted transcript for :meth:`Pop3Session.take_trace`.
    """

    max_line: int = 512
    max_bad_commands: int = 20
    max_auth_failures: int = 3
    tls_active: bool = False
    stls_available: bool = True
    allow_cleartext: bool = False
    mechanisms: frozenset[Mechanism] = frozenset({Mechanism.PLAIN})
    greeting: str = "Mailwarden POP3 server ready"
    trace: bool = False


@dataclass(frozen=True, slots=True)
class TraceLine:
    """One line of the redacted transcript: ``direction`` is ``"C"`` or ``"S"``."""

    direction: str
    line: bytes


_Handler = Callable[["Pop3Session", Command], Event | None]


class Pop3Session:
    """Server side of one POP3 conversation. No I/O, no clock."""

    def __init__(self, settings: Pop3Settings | None = None) -> None:
        """Start a session; the greeting is queued in :meth:`data_to_send`."""
        self.settings = settings or Pop3Settings()
        self.state = State.AUTHORIZATION
        self.tls = self.settings.tls_active
        self._lines = LineBuffer(self.settings.max_line)
        self._out = bytearray()
        self._trace: list[TraceLine] = []
        self._eof = False
        self._closed: Closed | None = None
        self._pending: Authenticate | Retrieve | Update | None = None
        self._awaiting_tls = False
        self._user: str | None = None  # set by USER, consumed by the very next PASS
        self._user_for_pass: str | None = None
        self._sasl: SaslExchange | None = None
        self._bad_commands = 0
        self._auth_failures = 0
        self._maildrop: tuple[MaildropEntry, ...] = ()
        self._deleted: set[int] = set()
        self._reply(ok(self.settings.greeting))

    # --- the sans-I/O interface ------------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Feed octets from the client; ``b""`` means the client closed its side.

        Data arriving after STLS and before :meth:`tls_started`, or after the
        session closed, is discarded.
        """
        if not data:
            self._eof = True
            return
        if self._closed is not None or self._awaiting_tls:
            return
        self._lines.feed(data)

    def next_event(self) -> Event | NeedData:
        """Process buffered input until something needs the application.

        Returns:
            An event to handle (answer :class:`Authenticate`, :class:`Retrieve`
            and :class:`Update` with :meth:`send`), :class:`Closed` once the
            session is over (every call after that returns it again), or
            :data:`NEED_DATA`.

        Raises:
            RuntimeError: the previous event has not been answered (a caller bug).
        """
        if self._closed is not None:
            return self._closed
        if self._pending is not None:
            raise RuntimeError("answer the previous event with send() first")
        if self._awaiting_tls:
            return NEED_DATA
        while True:
            item = self._lines.next_line()
            if item is None:
                if self._eof:
                    return self._close(CloseReason.EOF)
                return NEED_DATA
            event: Event | None
            if isinstance(item, LineTooLong):
                self._sasl = None
                self._traced(b"C", b"<line too long>")
                event = self._refuse(Pop3Error("Line too long"))
            elif self._sasl is not None:
                event = self._sasl_step(item.data)
            else:
                event = self._command(item.data)
            if event is not None:
                return event

    def send(self, answer: Answer) -> None:
        """Answer the pending event.

        Args:
            answer: :class:`AuthAccepted`/:class:`AuthRejected` for
                :class:`Authenticate`, :class:`MessageContent`/
                :class:`MessageUnavailable` for :class:`Retrieve`,
                :class:`UpdateDone`/:class:`UpdateFailed` for :class:`Update`.

        Raises:
            RuntimeError: nothing is pending, or the answer does not fit the event.
        """
        pending = self._pending
        if self._closed is not None and pending is None:
            return  # closed meanwhile (timeout, shutdown): the answer is moot
        match pending, answer:
            case Authenticate(), AuthAccepted():
                self._pending = None
                self._logged_in(answer)
            case Authenticate(), AuthRejected():
                self._pending = None
                self._login_refused(answer)
            case Retrieve(), MessageContent():
                self._pending = None
                self._send_message(pending, answer.data)
            case Retrieve(), MessageUnavailable():
                self._pending = None
                self._reply(err(answer.text, answer.code))
            case Update(), UpdateDone():
                self._pending = None
                self._reply(ok("Bye"))
                self._close(CloseReason.QUIT)
            case Update(), UpdateFailed():
                self._pending = None
                self._reply(err("Some deleted messages not removed", answer.code))
                self._close(CloseReason.QUIT)
            case _:
                raise RuntimeError(f"{type(answer).__name__} does not answer {pending!r}")

    def data_to_send(self) -> bytes:
        """Return and forget the octets queued for the client."""
        data = bytes(self._out)
        self._out.clear()
        return data

    def tls_started(self) -> None:
        """Tell the core the TLS handshake after STLS succeeded (RFC 2595 §4).

        Raises:
            RuntimeError: no STLS is pending (a caller bug).
        """
        if not self._awaiting_tls:
            raise RuntimeError("tls_started() without STLS")
        self._awaiting_tls = False
        self.tls = True
        self._lines = LineBuffer(self.settings.max_line)

    def close_idle(self) -> None:
        """The shell's idle timer fired (RFC 1939 §3: autologout); no UPDATE happens."""
        if self._closed is None:
            self._reply(err("Disconnected for inactivity"))
            self._close(CloseReason.TIMEOUT)

    def shutdown(self) -> None:
        """The server is stopping: tell the client to come back later; no UPDATE happens."""
        if self._closed is None:
            self._reply(err("Server shutting down", RespCode.SYS_TEMP))
            self._close(CloseReason.SHUTDOWN)

    def take_trace(self) -> list[TraceLine]:
        """Return and forget the redacted transcript (empty unless ``trace`` is on)."""
        lines, self._trace = self._trace, []
        return lines

    @property
    def maildrop(self) -> tuple[MaildropEntry, ...]:
        """The listing given at login (empty before)."""
        return self._maildrop

    @property
    def deleted(self) -> frozenset[int]:
        """Message numbers marked deleted so far."""
        return frozenset(self._deleted)

    # --- plumbing --------------------------------------------------------------

    def _reply(self, data: bytes, body: bytes = b"") -> None:
        self._out += data
        self._out += body
        self._traced(b"S", data.rstrip(b"\r\n"))

    def _traced(self, direction: bytes, line: bytes) -> None:
        if self.settings.trace:
            self._trace.append(TraceLine(direction.decode(), line))

    def _close(self, reason: CloseReason) -> Closed:
        self.state = State.CLOSED
        self._closed = Closed(reason)
        self._pending = None
        self._sasl = None
        self._lines.take_all()
        return self._closed

    def _refuse(self, error: Pop3Error) -> Closed | None:
        """Answer a refused command; close at the bad-command limit."""
        if error.bad:
            self._bad_commands += 1
            if self._bad_commands >= self.settings.max_bad_commands:
                self._reply(err("Too many bad commands; closing connection"))
                return self._close(CloseReason.TOO_MANY_ERRORS)
        self._reply(error.reply)
        return None

    def _command(self, line: bytes) -> Event | None:
        try:
            command = parse_command(line)
        except Pop3Error as exc:
            self._traced(b"C", line)
            return self._refuse(exc)
        if command.sensitive:
            self._traced(b"C", command.verb.value.encode() + b" <redacted>")
        else:
            self._traced(b"C", line)
        # RFC 1939 §7: PASS must follow a successful USER at once.
        self._user_for_pass, self._user = self._user, None
        handler = _HANDLERS[self.state].get(command.verb)
        try:
            if handler is None:
                raise Pop3Error(self._wrong_state_text(command.verb))
            check_syntax(command)
            return handler(self, command)
        except Pop3Error as exc:
            return self._refuse(exc)

    def _wrong_state_text(self, verb: Verb) -> str:
        if self.state is State.AUTHORIZATION:
            return f"{verb.value} is not allowed before login"
        return f"{verb.value} is not allowed after login"

    # --- AUTHORIZATION ---------------------------------------------------------

    def _cleartext_ok(self) -> bool:
        return self.tls or self.settings.allow_cleartext

    def _require_cleartext_ok(self) -> None:
        # RFC 2595 §2.1: no passwords over a connection that is not protected.
        if not self._cleartext_ok():
            raise Pop3Error(
                "Plaintext authentication is not allowed without TLS; use STLS first",
                RespCode.AUTH,
            )

    def _user_cmd(self, command: Command) -> None:
        self._require_cleartext_ok()
        try:
            name = command.args[0].decode("utf-8")
        except UnicodeDecodeError:
            raise Pop3Error("Invalid user name") from None
        self._user = name
        # Same answer for every name: the reply must not reveal who exists.
        self._reply(ok("Send PASS"))

    def _pass(self, command: Command) -> Event | None:
        user = self._user_for_pass
        if user is None:
            raise Pop3Error("Send USER first")
        self._require_cleartext_ok()
        try:
            password = command.args[0].decode("utf-8")
        except UnicodeDecodeError:
            raise Pop3Error("Invalid password encoding") from None
        self._pending = Authenticate(user, password, "USER")
        return self._pending

    def _auth(self, command: Command) -> Event | None:
        if not command.args:
            # Not in RFC 5034, but Outlook and others send a bare AUTH to list
            # the mechanisms (the RFC 1734 habit); Dovecot answers it too.
            names = b"".join(m.value.encode() + b"\r\n" for m in self._offered())
            self._reply(ok("Methods supported"), names + b".\r\n")
            return None
        self._require_cleartext_ok()
        initial = command.args[1] if len(command.args) > 1 else None
        try:
            mechanism = parse_mechanism(command.args[0], self.settings.mechanisms)
            exchange = SaslExchange(mechanism, initial)
        except SaslError as exc:
            raise Pop3Error(_SASL_FAILURE_TEXT[exc.reason]) from None
        if exchange.credentials is not None:
            return self._sasl_done(exchange.credentials)
        self._sasl = exchange
        self._reply(b"+ " + exchange.challenge + b"\r\n")
        return None

    def _sasl_step(self, line: bytes) -> Event | None:
        exchange = self._sasl
        assert exchange is not None
        self._traced(b"C", b"<redacted>")
        try:
            credentials = exchange.receive(line)
        except SaslError as exc:
            self._sasl = None
            # RFC 5034 §4: a cancelled exchange is answered with -ERR; it is
            # not a bad command, but malformed responses are.
            bad = exc.reason is not SaslFailure.CANCELLED
            return self._refuse(Pop3Error(_SASL_FAILURE_TEXT[exc.reason], bad=bad))
        if credentials is None:
            self._reply(b"+ " + exchange.challenge + b"\r\n")
            return None
        self._sasl = None
        return self._sasl_done(credentials)

    def _sasl_done(self, credentials: SaslCredentials) -> Event | None:
        if credentials.authzid and credentials.authzid != credentials.authcid:
            # RFC 4616 §2: the server decides whether authcid may act as
            # authzid; Mailwarden has no proxy users, so never.
            self._login_refused(AuthRejected(RespCode.AUTH, "Not authorized to act as that user"))
            return self._closed
        self._pending = Authenticate(
            credentials.authcid, credentials.password, credentials.mechanism.value
        )
        return self._pending

    def _offered(self) -> list[Mechanism]:
        return sorted(self.settings.mechanisms, key=lambda m: m.value)

    def _stls(self, command: Command) -> Event | None:
        if self.tls:
            raise Pop3Error("Already using TLS")
        if not self.settings.stls_available:
            raise Pop3Error("STLS is not available")
        self._reply(ok("Begin TLS negotiation"))
        # RFC 2595 §4 / CVE-2011-0411: drop whatever was pipelined after STLS.
        self._lines.take_all()
        self._awaiting_tls = True
        return StartTls()

    def _capa(self, command: Command) -> None:
        # RFC 2449 §5; the list depends on the state and on TLS (RFC 2595 §4).
        caps = ["CAPA", "TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"]
        if self.state is State.AUTHORIZATION:
            if self._cleartext_ok():
                caps.append("USER")
                caps.append("SASL " + " ".join(m.value for m in self._offered()))
            if not self.tls and self.settings.stls_available:
                caps.append("STLS")
        caps.append("IMPLEMENTATION Mailwarden")
        body = "".join(c + "\r\n" for c in caps).encode()
        self._reply(ok("Capability list follows"), body + b".\r\n")

    def _quit_authorization(self, command: Command) -> Event | None:
        # RFC 1939 §5: QUIT before login ends the session without UPDATE.
        self._reply(ok("Bye"))
        return self._close(CloseReason.QUIT)

    def _logged_in(self, answer: AuthAccepted) -> None:
        self.state = State.TRANSACTION
        self._maildrop = tuple(answer.maildrop)
        self._deleted = set()
        count, size = self._stat()
        self._reply(ok(f"Logged in; maildrop has {count} messages ({size} octets)"))

    def _login_refused(self, answer: AuthRejected) -> None:
        self._reply(err(answer.text or _DEFAULT_REJECT_TEXT[answer.code], answer.code))
        if answer.code is RespCode.AUTH:
            self._auth_failures += 1
            if self._auth_failures >= self.settings.max_auth_failures:
                self._close(CloseReason.AUTH_FAILURES)

    # --- TRANSACTION -----------------------------------------------------------

    def _stat(self) -> tuple[int, int]:
        live = [e.size for n, e in enumerate(self._maildrop, 1) if n not in self._deleted]
        return len(live), sum(live)

    def _message(self, arg: bytes) -> int:
        number = parse_msg_number(arg, len(self._maildrop))
        if number in self._deleted:
            raise Pop3Error(f"Message {number} is deleted", bad=False)
        return number

    def _listing(self, command: Command, field: Callable[[MaildropEntry], str]) -> None:
        if command.args:
            number = self._message(command.args[0])
            self._reply(ok(f"{number} {field(self._maildrop[number - 1])}"))
            return
        body = "".join(
            f"{n} {field(e)}\r\n" for n, e in enumerate(self._maildrop, 1) if n not in self._deleted
        )
        count, size = self._stat()
        self._reply(ok(f"{count} messages ({size} octets)"), body.encode() + b".\r\n")

    def _stat_cmd(self, command: Command) -> None:
        count, size = self._stat()
        self._reply(ok(f"{count} {size}"))  # RFC 1939 §5: exactly "+OK nn mm"

    def _list(self, command: Command) -> None:
        self._listing(command, lambda e: str(e.size))

    def _uidl(self, command: Command) -> None:
        self._listing(command, lambda e: e.uidl)

    def _retr(self, command: Command) -> Event:
        number = self._message(command.args[0])
        self._pending = Retrieve(number, self._maildrop[number - 1])
        return self._pending

    def _top(self, command: Command) -> Event:
        number = self._message(command.args[0])
        lines = parse_count(command.args[1])
        self._pending = Retrieve(number, self._maildrop[number - 1], lines)
        return self._pending

    def _send_message(self, request: Retrieve, data: bytes) -> None:
        if request.lines is not None:
            self._reply(ok("Top of message follows"), dot_stuff(top_of(data, request.lines)))
            return
        data = normalize_newlines(data)
        if data and not data.endswith(b"\r\n"):
            data += b"\r\n"  # the octets sent before the terminator are what we count
        self._reply(ok(f"{len(data)} octets"), stuff_crlf(data))

    def _dele(self, command: Command) -> None:
        number = self._message(command.args[0])
        self._deleted.add(number)  # RFC 1939 §5: only marked; removed in UPDATE
        self._reply(ok(f"Message {number} deleted"))

    def _noop(self, command: Command) -> None:
        self._reply(ok())

    def _rset(self, command: Command) -> None:
        self._deleted.clear()
        count, size = self._stat()
        self._reply(ok(f"Maildrop has {count} messages ({size} octets)"))

    def _quit_transaction(self, command: Command) -> Event:
        # RFC 1939 §6: QUIT in TRANSACTION enters UPDATE; the deletions happen now.
        self.state = State.UPDATE
        deleted = tuple(sorted(self._deleted))
        self._pending = Update(deleted, tuple(self._maildrop[n - 1] for n in deleted))
        return self._pending


# The legal commands of each state (RFC 1939 §3-§7, RFC 2449 §5, RFC 2595 §4,
# RFC 5034 §4).
_HANDLERS: dict[State, dict[Verb, _Handler]] = {
    State.AUTHORIZATION: {
        Verb.USER: Pop3Session._user_cmd,
        Verb.PASS: Pop3Session._pass,
        Verb.AUTH: Pop3Session._auth,
        Verb.STLS: Pop3Session._stls,
        Verb.CAPA: Pop3Session._capa,
        Verb.QUIT: Pop3Session._quit_authorization,
    },
    State.TRANSACTION: {
        Verb.STAT: Pop3Session._stat_cmd,
        Verb.LIST: Pop3Session._list,
        Verb.RETR: Pop3Session._retr,
        Verb.DELE: Pop3Session._dele,
        Verb.NOOP: Pop3Session._noop,
        Verb.RSET: Pop3Session._rset,
        Verb.TOP: Pop3Session._top,
        Verb.UIDL: Pop3Session._uidl,
        Verb.CAPA: Pop3Session._capa,
        Verb.QUIT: Pop3Session._quit_transaction,
    },
    State.UPDATE: {},
    State.CLOSED: {},
}
