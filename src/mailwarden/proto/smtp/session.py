"""The server side of one SMTP conversation, without I/O (RFC 5321).

Why our own core and not aiosmtpd
---------------------------------
aiosmtpd was considered and not used:

* it interleaves parsing with awaits (``smtp_MAIL`` parses, awaits a handler,
  parses again), so a pipelined stream's meaning depends on scheduling and a
  transcript cannot be replayed without an event loop;
* its default ``handle_exception`` sends exception text to the peer;
* it gives no control over how bare LF and bare CR inside DATA are treated,
  which is where SMTP smuggling lives (we must refuse them, never re-frame);
* its STARTTLS path keeps whatever the stream reader buffered before the
  handshake, which is the STARTTLS command-injection hole of RFC 3207 §5
  (CVE-2011-0411 class) unless patched around.

This core is a pure state machine in the h11 style: the shell feeds received
octets to :meth:`SmtpSession.receive_data`, asks :meth:`SmtpSession.next_event`
what happened, answers events that need outside knowledge with
:meth:`SmtpSession.send`, and writes :meth:`SmtpSession.data_to_send`.

Theory of operation
-------------------
* **States** (:class:`State`) say which commands are legal; the table
  :data:`ALLOWED` holds them on one screen, next to the RFC rules.  A command
  outside its state's set gets a ``503 5.5.1`` made by :func:`sequence_error`.
* **The core answers** syntax (500/501/555), sequence (503), limits (452 4.5.3,
  552 5.3.4, 500 5.5.2), SASL framing (334), DATA framing (354), the EHLO
  extension list and STARTTLS (220).  **The application answers** what needs
  outside knowledge: :class:`Auth`, :class:`MailFrom`, :class:`RcptTo` and
  :class:`Message`.  While one of those waits for its reply the core reads no
  further, so pipelined replies (RFC 2920) always leave in command order.
* **Replies change state**: a 2xx to MAIL opens the transaction, a 2xx to RCPT
  adds the recipient, a 235 to AUTH authenticates, any reply to a message ends
  the transaction.  Any ``421`` closes the session.
* **Errors**: every 5xx reply (ours or the application's, e.g. unknown users
  during a dictionary attack) counts; at ``max_errors`` the session says
  ``421 4.7.0`` and closes.
* **STARTTLS** (RFC 3207): once the ``220`` is queued, everything already
  received after the command line is discarded (command injection, §5) and
  nothing more is read until the shell calls :meth:`SmtpSession.tls_established`,
  which forgets everything learnt in clear text (§4.2): greeting, AUTH,
  transaction.
* **Submission** mode (RFC 6409) advertises AUTH and requires it before MAIL
  (RFC 4954 §6: ``530 5.7.0``); AUTH is refused before TLS (``538 5.7.11``)
  unless configured otherwise.  **Inbound** mode advertises no AUTH.
* **Sensitive lines**: AUTH commands and SASL responses are never put in the
  trace (see :meth:`SmtpSession.take_trace`); events carrying secrets hide them
  from ``repr``.

The core never sleeps, reads no clock and opens nothing: timeouts are the
shell's, which calls :meth:`SmtpSession.abort` with ``R421_TIMEOUT``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from mailwarden.proto.lines import LineBuffer, LineTooLong
from mailwarden.proto.sasl import (
    Mechanism,
    SaslError,
    SaslExchange,
    SaslFailure,
    parse_mechanism,
)
from mailwarden.proto.smtp.commands import (
    AUTH_LINE_LIMIT,
    AuthCommand,
    Bdat,
    Body,
    Command,
    Data,
    Ehlo,
    Expn,
    Helo,
    Help,
    MailFrom,
    MailParams,
    Noop,
    Quit,
    RcptTo,
    Rset,
    StartTls,
    Verb,
    Vrfy,
    line_limit,
    parse_command,
)
from mailwarden.proto.smtp.data import BodyFault, ChunkReader, DotReader, check_body
from mailwarden.proto.smtp.events import (
    Auth,
    Closed,
    CloseReason,
    Envelope,
    Event,
    Message,
    MessageRefused,
    NeedData,
    Recipient,
)
from mailwarden.proto.smtp.replies import (
    R214_HELP,
    R220_READY_TLS,
    R221_BYE,
    R250_OK,
    R252_CANNOT_VRFY,
    R354_START_DATA,
    R421_TOO_MANY_ERRORS,
    R452_TOO_MANY_RECIPIENTS,
    R500_LINE_TOO_LONG,
    R501_BAD_BASE64,
    R501_SYNTAX,
    R502_NOT_IMPLEMENTED,
    R503_AUTH_ALREADY,
    R503_AUTH_IN_TRANSACTION,
    R503_BAD_SEQUENCE,
    R503_BDAT_AFTER_FAIL,
    R503_BINARYMIME_DATA,
    R503_NEED_EHLO,
    R503_NEED_MAIL,
    R503_NESTED_MAIL,
    R503_TLS_ACTIVE,
    R504_UNSUPPORTED_MECHANISM,
    R530_AUTH_REQUIRED,
    R530_TLS_REQUIRED,
    R538_ENCRYPTION_REQUIRED,
    R550_BAD_LINE_ENDINGS,
    R552_TOO_BIG,
    R554_NO_VALID_RECIPIENTS,
    Reply,
    SmtpError,
)

__all__ = ["ALLOWED", "Mode", "SessionConfig", "SmtpSession", "State", "sequence_error"]

MiB = 1024 * 1024


class Mode(enum.Enum):
    """What the listener is for."""

    INBOUND = "inbound"
    """MX role (port 25): no AUTH; recipients must be ours."""
    SUBMISSION = "submission"
    """RFC 6409 (ports 587/465): AUTH required before MAIL."""


class State(enum.Enum):
    """Where the conversation is."""

    CONNECTED = "connected"
    """Greeting sent; the client has not said EHLO/HELO (again, after TLS)."""
    READY = "ready"
    """Greeted; no transaction."""
    MAIL = "mail"
    """MAIL accepted; no recipient accepted yet."""
    RCPT = "rcpt"
    """At least one recipient accepted; DATA or BDAT may follow."""
    CHUNKING = "chunking"
    """BDAT chunks received, ``BDAT LAST`` not yet (RFC 3030)."""
    AUTH = "auth"
    """In a SASL exchange: lines are responses, not commands (RFC 4954)."""
    DATA = "data"
    """Reading DATA content up to <CRLF>.<CRLF>."""
    BDAT = "bdat"
    """Reading the octets of one BDAT chunk."""
    TLS_PENDING = "tls pending"
    """220 sent to STARTTLS; waiting for the shell's handshake."""
    CLOSED = "closed"
    """Over: nothing is read, :class:`Closed` is returned."""


# BDAT is legal everywhere a command is read: RFC 3030 §2 says a chunk's
# octets are read whatever the answer, so refusing BDAT must wait until they
# have been (the handler picks the refusal by state).
_ALWAYS = frozenset({Verb.NOOP, Verb.QUIT, Verb.RSET, Verb.HELP, Verb.VRFY, Verb.EXPN, Verb.BDAT})
_GREETING = frozenset({Verb.EHLO, Verb.HELO})

# The legal commands of each command-reading state.  RFC 5321 §4.1.4: EHLO
# and HELO may come again at any time outside DATA and reset the transaction;
# RSET, NOOP, QUIT (and HELP, VRFY, EXPN) are always allowed.  RFC 3030 §2: in a
# BDAT transaction only BDAT (and the always-allowed commands) may follow.
ALLOWED: dict[State, frozenset[Verb]] = {
    State.CONNECTED: _ALWAYS | _GREETING,
    State.READY: _ALWAYS | _GREETING | {Verb.MAIL, Verb.STARTTLS, Verb.AUTH},
    State.MAIL: _ALWAYS | _GREETING | {Verb.RCPT, Verb.DATA},
    State.RCPT: _ALWAYS | _GREETING | {Verb.RCPT, Verb.DATA},
    State.CHUNKING: _ALWAYS | _GREETING,
}


def sequence_error(state: State, verb: Verb) -> Reply:
    """The 503 reply for ``verb`` arriving in ``state`` where it is not legal."""
    if state is State.CONNECTED:
        return R503_NEED_EHLO
    match verb:
        case Verb.MAIL:
            return R503_NESTED_MAIL
        case Verb.RCPT:
            return R503_NEED_MAIL if state is State.READY else R503_BAD_SEQUENCE
        case Verb.DATA:
            return R503_NEED_MAIL if state is State.READY else R503_BAD_SEQUENCE
        case Verb.AUTH:
            return R503_AUTH_IN_TRANSACTION
        case _:
            return R503_BAD_SEQUENCE


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """The limits and policy of one session (the shell builds it from config).

    Attributes:
        hostname: our name in the greeting and EHLO reply.
        mode: inbound (MX) or submission.
        banner: text after the name in the 220 greeting.
        max_command_line: longest command line, CRLF included (RFC 5321
            §4.5.3.1.4: at least 512); MAIL, RCPT and AUTH get the extra room
            their extensions define.
        max_text_line: longest line of DATA content, CRLF included (RFC 5321
            §4.5.3.1.6: 1000).
        max_message_size: largest message in octets; announced with SIZE.
        max_recipients: recipients per transaction (RFC 5321 §4.5.3.1.8: at
            least 100); more get ``452 4.5.3``.
        max_errors: 5xx replies before ``421 4.7.0`` and close.
        starttls: TLS is available for STARTTLS.
        auth_without_tls: offer AUTH before TLS (submission only).
        mechanisms: the SASL mechanisms offered, in order.
        trace: keep a transcript of the session (AUTH lines masked).
    """

    hostname: str
    mode: Mode = Mode.INBOUND
    banner: str = "ESMTP"
    max_command_line: int = 512
    max_text_line: int = 1000
    max_message_size: int = 50 * MiB
    max_recipients: int = 100
    max_errors: int = 10
    starttls: bool = True
    auth_without_tls: bool = False
    mechanisms: tuple[Mechanism, ...] = (Mechanism.PLAIN, Mechanism.LOGIN)
    trace: bool = False


_Pending = Auth | MailFrom | RcptTo | Message


class SmtpSession:
    """Server side of one SMTP conversation (RFC 5321). No I/O, no clock."""

    def __init__(self, config: SessionConfig, *, tls: bool = False) -> None:
        """Start a session and queue the 220 greeting.

        Args:
            config: limits and policy.
            tls: the connection is already encrypted (implicit TLS, port 465).
        """
        self.config = config
        self.tls = tls
        self.state = State.CONNECTED
        self.helo = ""
        self.esmtp = False
        self.authenticated: str | None = None
        self.errors = 0
        self._lines = LineBuffer(max(AUTH_LINE_LIMIT, config.max_command_line))
        self._out = bytearray()
        self._eof = False
        self._pending: _Pending | None = None
        self._closed: Closed | None = None
        self._mail: MailFrom | None = None
        self._recipients: list[Recipient] = []
        self._sasl: SaslExchange | None = None
        self._dot: DotReader | None = None
        self._chunks: ChunkReader | None = None
        self._chunk_last = False
        self._chunk_refusal: Reply | None = None  # reply owed after a dropped chunk
        self._state_before_chunk = State.READY
        self._trace: list[str] | None = [] if config.trace else None
        self._handlers: dict[type[Command], Callable[[Command], Event | None]] = {
            Ehlo: self._on_greeting,
            Helo: self._on_greeting,
            MailFrom: self._on_mail,
            RcptTo: self._on_rcpt,
            Data: self._on_data,
            Bdat: self._on_bdat,
            Rset: self._on_rset,
            Noop: lambda _c: self._reply(R250_OK),
            Quit: self._on_quit,
            Vrfy: lambda _c: self._reply(R252_CANNOT_VRFY),
            Expn: lambda _c: self._reply(R502_NOT_IMPLEMENTED),
            Help: lambda _c: self._reply(R214_HELP),
            StartTls: self._on_starttls,
            AuthCommand: self._on_auth,
        }
        self._reply(Reply.of(220, "", f"{config.hostname} {config.banner}".rstrip()))

    # --- the public interface ----------------------------------------------

    def receive_data(self, data: bytes) -> None:
        """Take octets from the peer; ``b""`` means the peer closed its side.

        Nothing is parsed here; :meth:`next_event` does the work.  Octets that
        arrive while a STARTTLS handshake is pending, or after the session
        closed, are dropped.
        """
        if not data:
            self._eof = True
            return
        if self.state in (State.TLS_PENDING, State.CLOSED):
            return
        self._lines.feed(data)

    def next_event(self) -> Event | NeedData:
        """Process input up to the next event.

        Returns:
            The next event, or :class:`NeedData` when more input is needed.
            After the session closed, :class:`Closed` again each time.

        Raises:
            RuntimeError: an event is still waiting for :meth:`send` (an
                application bug, never caused by the peer).
        """
        if self._pending is not None:
            raise RuntimeError(f"reply to {type(self._pending).__name__} first")
        while True:
            if self._closed is not None:
                return self._closed
            match self.state:
                case State.DATA:
                    event = self._read_dot()
                case State.BDAT:
                    event = self._read_chunk()
                case State.TLS_PENDING:
                    return NeedData()
                case _:
                    event = self._read_line()
            if event is not None:
                if isinstance(event, Auth | MailFrom | RcptTo | Message):
                    self._pending = event
                return event

    def send(self, reply: Reply) -> None:
        """Answer the event :meth:`next_event` returned last.

        Args:
            reply: the answer; 2xx accepts (and changes state as the module
                docstring says), 4xx/5xx refuses, 421 also closes.

        Raises:
            RuntimeError: no event waits for a reply.
            ValueError: a 1xx/3xx reply, which no waiting event can take.
        """
        pending = self._pending
        if pending is None:
            raise RuntimeError("no event is waiting for a reply")
        if 300 <= reply.code < 400:
            raise ValueError("events are answered with 2xx, 4xx or 5xx")
        self._pending = None
        ok = reply.code < 300
        match pending:
            case Auth():
                if ok:
                    self.authenticated = pending.credentials.authcid
            case MailFrom():
                if ok:
                    self._mail = pending
                    self._recipients = []
                    self.state = State.MAIL
            case RcptTo():
                if ok:
                    self._recipients.append(Recipient(pending.recipient, pending.params))
                    self.state = State.RCPT
            case Message():
                self._reset_transaction()
        self._reply(reply)

    def data_to_send(self) -> bytes:
        """Return (and forget) the octets queued for the peer."""
        out = bytes(self._out)
        self._out.clear()
        return out

    def tls_established(self) -> None:
        """The shell finished the TLS handshake after our 220 to STARTTLS.

        RFC 3207 §4.2: the server discards any knowledge obtained from the
        client before TLS: the greeting, AUTH state and any transaction.  The
        client must say EHLO again.

        Raises:
            RuntimeError: no STARTTLS was pending.
        """
        if self.state is not State.TLS_PENDING:
            raise RuntimeError("no STARTTLS is pending")
        self.tls = True
        self.state = State.CONNECTED
        self.helo = ""
        self.esmtp = False
        self.authenticated = None
        self._reset_transaction()
        self._lines = LineBuffer(self._lines.max_line)

    def abort(self, reply: Reply | None = None) -> None:
        """End the session now (timeout, shutdown), after ``reply`` if given.

        Any event waiting for a reply is dropped with it; the next call to
        :meth:`next_event` returns ``Closed(ABORTED)``.
        """
        if self._closed is not None:
            return
        self._pending = None
        if reply is not None:
            self._emit(reply)
        self._close(CloseReason.ABORTED)

    def take_trace(self) -> list[str]:
        """Return (and forget) the transcript lines kept since the last call.

        Lines look like the test transcripts (``C: ...``, ``S: ...``).  AUTH
        commands and SASL responses appear as ``C: AUTH <mechanism> ****`` and
        ``C: ****``; message content appears only as its size.  Empty unless
        the session was configured with ``trace=True``.
        """
        if self._trace is None:
            return []
        out, self._trace = self._trace, []
        return out

    @property
    def closed(self) -> bool:
        """The session is over."""
        return self._closed is not None

    @property
    def envelope(self) -> Envelope:
        """The current transaction as the application would see it."""
        assert self._mail is not None or not self._recipients
        mail = self._mail
        return Envelope(
            helo=self.helo,
            esmtp=self.esmtp,
            tls=self.tls,
            authenticated=self.authenticated,
            sender=mail.sender if mail else None,
            params=mail.params if mail else MailParams(),
            recipients=tuple(self._recipients),
            chunked=self._chunks is not None,
        )

    # --- replies and closing -------------------------------------------------

    def _emit(self, reply: Reply) -> None:
        wire = reply.render()
        self._out += wire
        if self._trace is not None:
            self._trace.extend(f"S: {line}" for line in wire.decode("utf-8").splitlines())

    def _reply(self, reply: Reply) -> None:
        """Queue a reply, count it if it is an error, close on 421 or too many."""
        self._emit(reply)
        if reply.code == 421:
            self._close(CloseReason.ABORTED)
        elif reply.code >= 500:
            self.errors += 1
            if self.errors >= self.config.max_errors:
                self._emit(R421_TOO_MANY_ERRORS)
                self._close(CloseReason.TOO_MANY_ERRORS)

    def _close(self, reason: CloseReason) -> None:
        if self._closed is None:
            self._closed = Closed(reason)
            self.state = State.CLOSED
            self._lines.take_all()

    def _reset_transaction(self) -> None:
        self._mail = None
        self._recipients = []
        self._dot = None
        self._chunks = None
        if self.state in (State.MAIL, State.RCPT, State.CHUNKING, State.DATA, State.BDAT):
            self.state = State.READY

    def _trace_client(self, text: str) -> None:
        if self._trace is not None:
            self._trace.append(f"C: {text}")

    # --- reading commands ----------------------------------------------------

    def _read_line(self) -> Event | NeedData | None:
        line = self._lines.next_line()
        if line is None:
            if self._eof:
                self._close(CloseReason.PEER_EOF)
                return self._closed
            return NeedData()
        if isinstance(line, LineTooLong):
            self._trace_client(f"<line over {line.limit} octets>")
            self._reply(R500_LINE_TOO_LONG)
            if self.state is State.AUTH:
                self._sasl = None
                self.state = State.READY
            return None
        if self.state is State.AUTH:
            self._trace_client("****")  # a SASL response: never traced
            return self._sasl_step(line.data)
        data = line.data
        if data[:4].upper() == b"AUTH":
            self._trace_client(" ".join(data.decode("ascii", "replace").split()[:2]) + " ****")
        else:
            self._trace_client(data.decode("utf-8", "replace"))
        try:
            command = parse_command(
                data,
                smtputf8=self._mail is not None and self._mail.params.smtputf8,
                postmaster_domain=self.config.hostname,
            )
        except SmtpError as exc:
            self._reply(exc.reply)
            return None
        verb = _VERB_OF[type(command)]
        if len(data) + 2 > line_limit(verb, self.config.max_command_line):
            self._reply(R500_LINE_TOO_LONG)
            return None
        refusal = self._refusal(verb)
        if refusal is not None:
            self._reply(refusal)
            return None
        return self._handlers[type(command)](command)

    def _refusal(self, verb: Verb) -> Reply | None:
        """The reply refusing ``verb`` now, or None if it may proceed."""
        if verb is Verb.AUTH and self.config.mode is Mode.INBOUND:
            return R502_NOT_IMPLEMENTED  # not offered on the MX port
        if verb is Verb.STARTTLS and not self.config.starttls:
            return R502_NOT_IMPLEMENTED
        if verb is Verb.STARTTLS and self.tls:
            return R503_TLS_ACTIVE
        if verb not in ALLOWED[self.state]:
            return sequence_error(self.state, verb)
        return None

    # --- command handlers ------------------------------------------------------

    def _on_greeting(self, command: Command) -> Event:
        assert isinstance(command, Ehlo | Helo)
        # RFC 5321 §4.1.4: a new EHLO/HELO also resets any transaction.
        self._reset_transaction()
        self.helo = command.hostname
        self.state = State.READY
        if isinstance(command, Helo):
            self.esmtp = False
            self._reply(Reply.of(250, "", self.config.hostname))
        else:
            self.esmtp = True
            self._reply(Reply(250, "", (self.config.hostname, *self._extensions())))
        return command

    def _auth_offered(self) -> bool:
        return self.config.mode is Mode.SUBMISSION and (self.tls or self.config.auth_without_tls)

    def _extensions(self) -> list[str]:
        """The EHLO keywords (RFC 5321 §4.1.1.1), each with its RFC."""
        ext = [
            "PIPELINING",  # RFC 2920
            f"SIZE {self.config.max_message_size}",  # RFC 1870
            "8BITMIME",  # RFC 6152
            "SMTPUTF8",  # RFC 6531
            "ENHANCEDSTATUSCODES",  # RFC 2034
        ]
        if self.config.starttls and not self.tls:
            ext.append("STARTTLS")  # RFC 3207
        if self._auth_offered() and self.config.mechanisms:
            ext.append("AUTH " + " ".join(m.value for m in self.config.mechanisms))  # RFC 4954
        ext += ["CHUNKING", "BINARYMIME", "DSN"]  # RFC 3030, RFC 3030, RFC 3461
        return ext

    def _on_mail(self, command: Command) -> Event | None:
        assert isinstance(command, MailFrom)
        if self.config.mode is Mode.SUBMISSION and self.authenticated is None:
            # RFC 4954 §6 / RFC 3207 §4: say what the client must do first.
            self._reply(R530_AUTH_REQUIRED if self._auth_offered() else R530_TLS_REQUIRED)
            return None
        size = command.params.size
        if size is not None and size > self.config.max_message_size:
            self._reply(R552_TOO_BIG)  # RFC 1870 §6.1
            return None
        return command

    def _on_rcpt(self, command: Command) -> Event | None:
        assert isinstance(command, RcptTo)
        if len(self._recipients) >= self.config.max_recipients:
            self._reply(R452_TOO_MANY_RECIPIENTS)  # RFC 5321 §4.5.3.1.10
            return None
        return command

    def _on_data(self, command: Command) -> Event | None:
        if self.state is State.MAIL:
            self._reply(R554_NO_VALID_RECIPIENTS)  # RFC 2920 §3.1
            return None
        assert self._mail is not None
        if self._mail.params.body is Body.BINARYMIME:
            self._reply(R503_BINARYMIME_DATA)
            return None
        self._reply(R354_START_DATA)
        self._dot = DotReader(self.config.max_message_size, self.config.max_text_line)
        self.state = State.DATA
        return None

    def _on_bdat(self, command: Command) -> Event | None:
        assert isinstance(command, Bdat)
        self._chunk_last = command.last
        refusal = _BDAT_REFUSALS.get(self.state)
        if refusal is not None:
            # RFC 3030 §2: the chunk's octets are read whatever the answer.
            self._chunk_refusal = refusal
            self._chunks = ChunkReader(0)
            self._chunks.too_big = True  # keep nothing
        elif self._chunks is None:
            self._chunks = ChunkReader(self.config.max_message_size)
        self._chunks.start_chunk(command.size)
        self._state_before_chunk = self.state
        self.state = State.BDAT
        return None

    def _on_rset(self, command: Command) -> Event:
        assert isinstance(command, Rset)
        self._reset_transaction()
        self._reply(R250_OK)
        return command

    def _on_quit(self, command: Command) -> Event:
        assert isinstance(command, Quit)
        self._reply(R221_BYE)
        self._close(CloseReason.QUIT)
        return command

    def _on_starttls(self, command: Command) -> Event:
        assert isinstance(command, StartTls)
        self._reply(R220_READY_TLS)
        # RFC 3207 §5: nothing the client sent after STARTTLS may be acted on.
        self._lines.take_all()
        self.state = State.TLS_PENDING
        return command

    def _on_auth(self, command: Command) -> Event | None:
        assert isinstance(command, AuthCommand)
        if self.authenticated is not None:
            self._reply(R503_AUTH_ALREADY)  # RFC 4954 §4
            return None
        if not self._auth_offered():
            self._reply(R538_ENCRYPTION_REQUIRED)  # RFC 4954 §6
            return None
        try:
            mechanism = parse_mechanism(command.mechanism, frozenset(self.config.mechanisms))
            self._sasl = SaslExchange(mechanism, command.initial_response)
        except SaslError as exc:
            self._reply(_SASL_REPLIES[exc.reason])
            return None
        return self._sasl_result()

    def _sasl_step(self, line: bytes) -> Event | None:
        assert self._sasl is not None
        self.state = State.READY
        try:
            self._sasl.receive(line)
        except SaslError as exc:
            self._sasl = None
            self._reply(_SASL_REPLIES[exc.reason])
            return None
        return self._sasl_result()

    def _sasl_result(self) -> Event | None:
        sasl = self._sasl
        assert sasl is not None
        if sasl.credentials is None:
            # RFC 4954 §4: "334 " followed by the base64 challenge.
            self._reply(Reply.of(334, "", sasl.challenge.decode("ascii")))
            self.state = State.AUTH
            return None
        self._sasl = None
        return Auth(sasl.credentials)

    # --- reading content -------------------------------------------------------

    def _read_dot(self) -> Event | NeedData | None:
        dot = self._dot
        assert dot is not None
        leftover = dot.feed(self._lines.take_all()) if self._lines.buffered else None
        if leftover is None:
            if self._eof:
                self._close(CloseReason.PEER_EOF)
                return self._closed
            return NeedData()
        self._lines.feed(leftover)
        self._trace_client(f"<message content, {dot.received - len(leftover)} octets>")
        if dot.content is None:
            return self._refuse(dot.fault, dot.received - len(leftover))
        event = Message(self.envelope, dot.content)
        self._dot = None
        self.state = State.READY  # the transaction ends with the app's reply
        return event

    def _read_chunk(self) -> Event | NeedData | None:
        chunks = self._chunks
        assert chunks is not None
        if chunks.remaining and self._lines.buffered:
            self._lines.feed(chunks.feed(self._lines.take_all()))
        if chunks.remaining:
            if self._eof:
                self._close(CloseReason.PEER_EOF)
                return self._closed
            return NeedData()
        self._trace_client(f"<chunk, {chunks.size} octets so far>")
        if self._chunk_refusal is not None:
            reply, self._chunk_refusal = self._chunk_refusal, None
            self._chunks = None
            self.state = self._state_before_chunk
            self._reply(reply)
            return None
        if chunks.too_big:
            return self._refuse(BodyFault.TOO_BIG, chunks.size)
        if not self._chunk_last:
            self.state = State.CHUNKING
            self._reply(Reply.of(250, "2.0.0", f"{chunks.size} octets received"))
            return None
        content = chunks.content()
        assert self._mail is not None
        if self._mail.params.body is not Body.BINARYMIME:
            fault = check_body(content, None)
            if fault is not None:
                return self._refuse(fault, chunks.size)
        event = Message(self.envelope, content)
        self._chunks = None
        self.state = State.READY
        return event

    def _refuse(self, fault: BodyFault | None, size: int) -> Event:
        assert fault is not None
        reply = _FAULT_REPLIES[fault]
        self._reset_transaction()
        self.state = State.READY
        self._reply(reply)
        return MessageRefused(fault, reply, size)


_VERB_OF: dict[type[Command], Verb] = {
    Ehlo: Verb.EHLO,
    Helo: Verb.HELO,
    MailFrom: Verb.MAIL,
    RcptTo: Verb.RCPT,
    Data: Verb.DATA,
    Bdat: Verb.BDAT,
    Rset: Verb.RSET,
    Noop: Verb.NOOP,
    Quit: Verb.QUIT,
    Vrfy: Verb.VRFY,
    Expn: Verb.EXPN,
    Help: Verb.HELP,
    StartTls: Verb.STARTTLS,
    AuthCommand: Verb.AUTH,
}

# BDAT outside a transaction with recipients: read the chunk, then refuse.
_BDAT_REFUSALS: dict[State, Reply] = {
    State.CONNECTED: R503_NEED_EHLO,
    State.READY: R503_BDAT_AFTER_FAIL,
    State.MAIL: R554_NO_VALID_RECIPIENTS,  # RFC 2920 §3.1, as for DATA
}

_SASL_REPLIES: dict[SaslFailure, Reply] = {
    # RFC 4954 §4: a "*" cancels with 501; undecodable base64 is 501 5.5.2.
    SaslFailure.CANCELLED: Reply.of(501, "5.7.0", "Authentication cancelled"),
    SaslFailure.MALFORMED: R501_BAD_BASE64,
    SaslFailure.INVALID: R501_SYNTAX.with_text("Invalid authentication message"),
    SaslFailure.UNSUPPORTED: R504_UNSUPPORTED_MECHANISM,
}

_FAULT_REPLIES: dict[BodyFault, Reply] = {
    BodyFault.TOO_BIG: R552_TOO_BIG,
    BodyFault.BARE_LINE_END: R550_BAD_LINE_ENDINGS,
    BodyFault.LINE_TOO_LONG: R500_LINE_TOO_LONG,
}
