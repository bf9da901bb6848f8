"""The server side of one IMAP connection, without I/O (RFC 3501 §3, §5.5).

Theory of operation.  The shell feeds received octets to :meth:`receive_data`
and calls :meth:`next_event` until it returns :class:`NeedData`.  Each event is
either a parsed command that needs the outside world (the command values of
:mod:`.commands`: ``Login``, ``Select``, ``Fetch``, ...) or a session event
(:class:`IdleDone`, :class:`StartTlsRequested`, :class:`ConnectionClosed`).
The application answers a command with any number of untagged responses and
exactly one :class:`~.responses.Tagged` completion through :meth:`send`; only
then does the session look at the next command, so responses always come out
in command order even when the client pipelines.  :meth:`data_to_send`
returns what to write.

What the session answers itself (the application never sees these):

* framing and syntax errors, unknown commands and commands in the wrong state
  (tagged ``BAD``, RFC 3501 §7.1.3), with a ``BYE`` after
  ``max_bad_commands`` of them;
* CAPABILITY, LOGOUT, NAMESPACE (RFC 2342), ID (RFC 2971), the ``* ENABLED``
  part of ENABLE (RFC 5161), COMPRESS=DEFLATE (RFC 4978, the deflate streams
  live here), the STARTTLS handshake start (RFC 3501 §6.2.1), literal
  continuations and the SASL exchange of AUTHENTICATE PLAIN (RFC 4616, with
  SASL-IR RFC 4959) and LOGIN through :mod:`mailwarden.proto.sasl`, turned
  into the same :class:`~.commands.Login` event as the LOGIN command so that
  the password path knows nothing of the mechanism;
* LOGINDISABLED: before TLS, LOGIN and AUTHENTICATE get
  ``NO [PRIVACYREQUIRED]`` unless cleartext login is allowed (RFC 3501 §6.2.3,
  RFC 5530);
* SELECT/EXAMINE with a QRESYNC parameter before ``ENABLE QRESYNC``
  (``BAD``, RFC 7162 §3.2.5).

IMAP4rev1 and IMAP4rev2 are both advertised; ``ENABLE IMAP4rev2`` (RFC 9051)
turns on :attr:`rev2`, which the application reads to answer by RFC 9051
(ESEARCH for SEARCH, no ``\\Recent``, a LIST in SELECT, UID in unsolicited
FETCH), and makes mailbox names UTF-8 (:attr:`utf8`, as UTF8=ACCEPT does).

The state (:class:`State`) moves on the application's tagged answer: ``OK`` to
a login -> AUTHENTICATED; ``OK`` to SELECT/EXAMINE -> SELECTED and ``NO`` ->
AUTHENTICATED (RFC 3501 §6.3.1: a failed SELECT closes the current mailbox);
``OK`` to CLOSE/UNSELECT -> AUTHENTICATED; an untagged ``BYE`` -> LOGOUT.
No clock here: the shell runs the autologout timers and calls
:meth:`autologout`.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass, field
from enum import Enum

from mailwarden.proto.imap import commands as c
from mailwarden.proto.imap.errors import ImapError
from mailwarden.proto.imap.events import (
    ConnectionClosed,
    Event,
    IdleDone,
    NeedData,
    SessionConfig,
    StartTlsRequested,
    State,
)
from mailwarden.proto.imap.framing import (
    CommandTooLong,
    Framed,
    Framer,
    LiteralTooBig,
    SendContinuation,
)
from mailwarden.proto.imap.lexer import parse_tag
from mailwarden.proto.imap.parser import parse_command
from mailwarden.proto.imap.responses import (
    Continuation,
    RawLines,
    Response,
    Tagged,
    Untagged,
    UntaggedStatus,
    render,
    string,
)
from mailwarden.proto.lines import LineTooLong
from mailwarden.proto.sasl import (
    Mechanism,
    SaslError,
    SaslExchange,
    SaslFailure,
    parse_mechanism,
)

__all__ = [
    "ConnectionClosed",
    "Event",
    "IdleDone",
    "ImapSession",
    "NeedData",
    "SessionConfig",
    "StartTlsRequested",
    "State",
]


class _Mode(Enum):
    """What the next input line is."""

    COMMAND = "command"
    IDLE = "idle"  # waiting for DONE (RFC 2177)
    SASL = "sasl"  # waiting for a SASL response line
    TLS = "tls"  # STARTTLS accepted; the shell is to run the handshake


_ANY = frozenset({"CAPABILITY", "NOOP", "LOGOUT", "ID"})
_AUTH = _ANY | {
    "ENABLE", "SELECT", "EXAMINE", "CREATE", "DELETE", "RENAME", "SUBSCRIBE", "UNSUBSCRIBE",
    "LIST", "LSUB", "NAMESPACE", "STATUS", "APPEND", "IDLE", "GETQUOTA", "GETQUOTAROOT",
    "SETQUOTA", "COMPRESS",
}  # fmt: skip
# The legal commands per state (RFC 3501 §6.1-§6.4 and each extension's state rules).
ALLOWED: dict[State, frozenset[str]] = {
    State.NOT_AUTHENTICATED: _ANY | {"STARTTLS", "AUTHENTICATE", "LOGIN"},
    State.AUTHENTICATED: _AUTH,
    State.SELECTED: _AUTH
    | {"CHECK", "CLOSE", "UNSELECT", "EXPUNGE", "SEARCH", "FETCH", "STORE", "COPY", "MOVE"}
    | {"UID", "SORT", "THREAD"},
    State.LOGOUT: frozenset(),
}
_STATE_TEXT = {
    State.NOT_AUTHENTICATED: "Log in first",
    State.AUTHENTICATED: "Select a mailbox first",
    State.SELECTED: "Already logged in",
}
_HEAD = re.compile(rb"[^ ]+ (UID )?([A-Za-z]+)", re.IGNORECASE)
_ENABLEABLE = ("CONDSTORE", "QRESYNC", "UTF8=ACCEPT")
_INFLATE_CHUNK = 65536
_MECHANISMS = frozenset({Mechanism.PLAIN, Mechanism.LOGIN})


@dataclass(slots=True)
class _Pending:
    command: c.Command
    tag: str = field(init=False)

    def __post_init__(self) -> None:
        self.tag = self.command.tag


class ImapSession:
    """Server side of one IMAP conversation. No I/O, no clock."""

    def __init__(self, config: SessionConfig, *, tls_active: bool = False) -> None:
        self.config = config
        self.state = State.NOT_AUTHENTICATED
        self.tls_active = tls_active
        self.enabled: set[str] = set()
        self.client_id: tuple[tuple[str, str | None], ...] | None = None
        self.bad_commands = 0
        self._framer = Framer(config.max_line, config.max_literal)
        self._mode = _Mode.COMMAND
        self._out: list[bytes] = []  # pieces, joined once by data_to_send
        self._pending: _Pending | None = None
        self._sasl: tuple[str, SaslExchange] | None = None
        self._consumed = 0  # frames and lines taken (tells "no input" from "used input")
        self._eof = False
        self._closed_reason = ""
        self._deflate: zlib._Compress | None = None
        self._inflate: zlib._Decompress | None = None
        self._inflate_in = b""
        self._deflate_at = 0
        self._deflate_started = False

    # --- public API ---------------------------------------------------------

    def greeting(self, text: str = "Mailwarden ready") -> None:
        """Queue the server greeting ``* OK [CAPABILITY ...]`` (RFC 3501 §7.1.1)."""
        self._emit(render(UntaggedStatus("OK", text, "CAPABILITY " + self.capability_string())))

    def receive_data(self, data: bytes) -> None:
        """Give the session received octets; ``b""`` means the peer closed."""
        if not data:
            self._eof = True
        elif self._inflate is not None:
            self._inflate_in += data
        else:
            self._framer.feed(data)

    def next_event(self) -> Event:
        """The next thing for the application to act on.

        Raises:
            RuntimeError: the application has not answered the previous command
                (a bug in the caller, not the peer's doing).
        """
        while True:
            if self.state is State.LOGOUT:
                return ConnectionClosed(self._closed_reason)
            if self._pending is not None:
                if self._pending.command.__class__ is c.Idle and self._mode is _Mode.IDLE:
                    ev = self._idle_input()
                    if ev is not None:
                        return ev
                    if self._pump() or self.closed:
                        continue
                    return self._need_data()
                raise RuntimeError(f"command {self._pending.tag!r} has not been answered")
            if self._mode is _Mode.TLS:
                return NeedData()
            before = self._consumed
            ev = self._sasl_input() if self._mode is _Mode.SASL else self._command_input()
            if ev is not None:
                return ev
            if self.closed or self._consumed != before:
                continue  # input was used up (maybe the mode changed): look again
            if self._pump() or self.closed:
                continue
            return self._need_data()

    def send(self, response: Response) -> None:
        """Queue the application's response to the current command.

        Args:
            response: untagged data (any time, also during IDLE) or the tagged
                completion of the current command, which moves the state.

        Raises:
            RuntimeError: a tagged response whose tag is not the current command's.
        """
        if self.closed:
            return  # nothing follows a BYE (RFC 3501 §7.1.5)
        if isinstance(response, Tagged):
            pending = self._pending
            if pending is None or pending.tag != response.tag:
                raise RuntimeError(f"tagged response {response.tag!r} answers no command")
            self._pending = None
            self._mode = _Mode.COMMAND
            response = self._complete(pending.command, response)
            self._emit(render(response))
            if response.status == "BAD":
                self._count_bad()
            return
        if isinstance(response, RawLines) and not isinstance(response.data, bytes):
            self._out.extend(response.data)
            return
        if isinstance(response, UntaggedStatus) and response.status == "BYE":
            self._emit(render(response))
            self._close(response.text)
            return
        self._emit(render(response))

    def data_to_send_parts(self) -> list[bytes]:
        """Like :meth:`data_to_send`, as pieces for a vectored write (not joined).

        Under COMPRESS the pieces are compressed first, so there is one.
        """
        if self._deflate is not None:
            data = self.data_to_send()
            return [data] if data else []
        out, self._out = self._out, []
        return out

    def data_to_send(self) -> bytes:
        """Octets to write now (compressed once COMPRESS is active)."""
        out = self._out
        if not out:
            return b""
        self._out = []
        if self._deflate is None:
            return b"".join(out)
        if self._deflate_started:
            data = b"".join(out)
            return self._deflate.compress(data) + self._deflate.flush(zlib.Z_SYNC_FLUSH)
        # the OK to COMPRESS itself goes out uncompressed (RFC 4978 §3)
        head, rest = b"".join(out[: self._deflate_at]), b"".join(out[self._deflate_at :])
        self._deflate_started = True
        if rest:
            rest = self._deflate.compress(rest) + self._deflate.flush(zlib.Z_SYNC_FLUSH)
        return head + rest

    def tls_established(self) -> None:
        """The shell finished the STARTTLS handshake: read commands again."""
        self.tls_active = True
        self._mode = _Mode.COMMAND

    def autologout(self, text: str = "Autologout; idle for too long") -> None:
        """The shell's inactivity timer fired (RFC 3501 §5.4): say BYE and end."""
        self._emit(render(UntaggedStatus("BYE", text)))
        self._close("autologout")

    @property
    def closed(self) -> bool:
        """The session reached LOGOUT; flush and close the connection."""
        return self.state is State.LOGOUT

    @property
    def idling(self) -> bool:
        """The client is in IDLE (the shell also listens for mailbox changes)."""
        return self._mode is _Mode.IDLE

    @property
    def utf8(self) -> bool:
        """Mailbox names and strings are UTF-8: UTF8=ACCEPT (RFC 6855) or IMAP4rev2 is enabled."""
        return "UTF8=ACCEPT" in self.enabled or "IMAP4rev2" in self.enabled

    @property
    def rev2(self) -> bool:
        """The client enabled IMAP4rev2 (RFC 9051): no ``\\Recent``, ESEARCH for SEARCH,
        a LIST in SELECT, UID in unsolicited FETCH."""
        return "IMAP4rev2" in self.enabled

    @property
    def condstore(self) -> bool:
        """CONDSTORE is enabled (explicitly, by QRESYNC, or by a CONDSTORE-enabling command)."""
        return "CONDSTORE" in self.enabled

    @property
    def qresync(self) -> bool:
        """QRESYNC is enabled: report expunges as VANISHED (RFC 7162 §3.2.10)."""
        return "QRESYNC" in self.enabled

    def capabilities(self) -> list[str]:
        """What CAPABILITY says in the current state (advertise only what works)."""
        caps = ["IMAP4rev1"]
        if self.config.imap4rev2:
            caps.append("IMAP4rev2")
        caps += ["SASL-IR", "LITERAL+", "ID", "ENABLE", "IDLE"]
        if self.state is State.NOT_AUTHENTICATED:
            if self.config.tls_available and not self.tls_active:
                caps.append("STARTTLS")
            if self.tls_active or self.config.allow_plaintext_login:
                caps += ["AUTH=PLAIN", "AUTH=LOGIN"]
            else:
                caps.append("LOGINDISABLED")
            return caps
        caps += [
            "NAMESPACE", "UNSELECT", "UIDPLUS", "MOVE", "CHILDREN", "LIST-EXTENDED",
            "LIST-STATUS", "SPECIAL-USE", "CREATE-SPECIAL-USE", "ESEARCH", "SEARCHRES",
            "SORT", "ESORT", "THREAD=ORDEREDSUBJECT", "THREAD=REFERENCES", "QUOTA",
            "QUOTA=RES-STORAGE", "QUOTA=RES-MESSAGE", "CONDSTORE", "QRESYNC", "BINARY",
            "UTF8=ACCEPT", "STATUS=SIZE", f"APPENDLIMIT={self.config.max_literal}",
        ]  # fmt: skip
        if self._deflate is None:
            caps.append("COMPRESS=DEFLATE")
        return caps

    def capability_string(self) -> str:
        return " ".join(self.capabilities())

    # --- internals ----------------------------------------------------------

    def _need_data(self) -> Event:
        if self._eof:
            self._close("peer closed")
            return ConnectionClosed("peer closed")
        return NeedData()

    def _emit(self, data: bytes) -> None:
        self._out.append(data)

    def _close(self, reason: str) -> None:
        self.state = State.LOGOUT
        self._closed_reason = reason
        self._pending = None

    def _count_bad(self) -> None:
        self.bad_commands += 1
        if self.bad_commands >= self.config.max_bad_commands and self.state is not State.LOGOUT:
            self._emit(render(UntaggedStatus("BYE", "Too many invalid commands")))
            self._close("too many invalid commands")

    def _bad(self, tag: str | None, text: str, code: str | None = None) -> None:
        if tag is None:
            self._emit(render(UntaggedStatus("BAD", text, code)))
        else:
            self._emit(render(Tagged(tag, "BAD", text, code)))
        self._count_bad()

    def _pump(self) -> bool:
        """Inflate more client octets when COMPRESS is active; False if none left."""
        d = self._inflate
        if d is None:
            return False
        try:
            if d.unconsumed_tail:
                chunk = d.decompress(d.unconsumed_tail, _INFLATE_CHUNK)
            elif self._inflate_in:
                data, self._inflate_in = self._inflate_in, b""
                chunk = d.decompress(data, _INFLATE_CHUNK)
            else:
                return False
        except zlib.error:
            self._emit(render(UntaggedStatus("BYE", "Corrupt compressed stream")))
            self._close("bad deflate stream")
            return False
        self._framer.feed(chunk)
        return True

    def _command_input(self) -> Event | None:
        """Frame, check and parse the next command; None when more input is needed."""
        while not self.closed:
            frame = self._framer.next()
            if frame is None:
                return None
            if isinstance(frame, SendContinuation):
                self._emit(b"+ Ready for literal data\r\n")
                continue
            if isinstance(frame, LiteralTooBig):
                # RFC 7888 §4, RFC 9051 §7.1 TOOBIG
                text = f"Literal too big (limit {frame.limit} octets)"
                if frame.synchronizing and frame.tag is not None:
                    self._emit(render(Tagged(frame.tag, "NO", text, "TOOBIG")))
                else:
                    self._bad(frame.tag, text, "TOOBIG")
                continue
            if isinstance(frame, CommandTooLong):
                self._emit(render(UntaggedStatus("BYE", "Command line too long", "TOOBIG")))
                self._close("line too long")
                return None
            self._consumed += 1
            ev = self._dispatch(frame)
            if ev is not None or self._mode is not _Mode.COMMAND:
                return ev
        return None

    def _dispatch(self, frame: Framed) -> Event | None:
        data = frame.data
        tag = parse_tag(data)
        if tag is None:
            self._bad(None, "Missing or invalid tag")
            return None
        head = _HEAD.match(data)
        if head is None:
            self._bad(tag, "Missing command name")
            return None
        name = "UID" if head.group(1) else head.group(2).upper().decode("ascii")
        try:
            if name not in c.ALL_COMMANDS:
                raise ImapError(f"Unknown command {name}")
            if name not in ALLOWED[self.state]:
                raise ImapError(f"{name} not allowed now: {_STATE_TEXT.get(self.state, '')}")
            cmd = parse_command(data, utf8=self.utf8)
        except ImapError as exc:
            self._bad(tag, f"{exc.text}", exc.code)
            return None
        return self._handle(cmd)

    def _handle(self, cmd: c.Command) -> Event | None:
        """Answer what the session can answer; hand the rest to the application."""
        match cmd:
            case c.Capability():
                self._emit(render(Untagged(b"CAPABILITY " + self.capability_string().encode())))
                self._emit(render(Tagged(cmd.tag, "OK", "CAPABILITY completed")))
                return None
            case c.Logout():
                self._emit(render(UntaggedStatus("BYE", "Logging out")))
                self._emit(render(Tagged(cmd.tag, "OK", "LOGOUT completed")))
                self._close("logout")
                return ConnectionClosed("logout")
            case c.Namespace():
                # RFC 2342 §5: one personal namespace, "/" as hierarchy delimiter
                self._emit(render(Untagged(b'NAMESPACE (("" "/")) NIL NIL')))
                self._emit(render(Tagged(cmd.tag, "OK", "NAMESPACE completed")))
                return None
            case c.Id():
                self.client_id = cmd.params
                params = b" ".join(string(k) + b" " + string(v) for k, v in self.config.server_id)
                self._emit(render(Untagged(b"ID (" + params + b")")))
                self._emit(render(Tagged(cmd.tag, "OK", "ID completed")))
                return None
            case c.StartTls():
                if self.tls_active or not self.config.tls_available:
                    self._bad(
                        cmd.tag,
                        "TLS is not available here"
                        if not self.tls_active
                        else "TLS is already active",
                    )
                    return None
                # RFC 3501 §6.2.1; discard anything pipelined after STARTTLS so it
                # cannot be injected into the protected session (CVE-2011-0411)
                self._emit(render(Tagged(cmd.tag, "OK", "Begin TLS negotiation now")))
                self._framer.lines.take_all()
                self._mode = _Mode.TLS
                return StartTlsRequested()
            case c.Login():
                if not self._login_allowed(cmd.tag):
                    return None
                self._pending = _Pending(cmd)
                return cmd
            case c.Authenticate():
                return self._authenticate(cmd)
            case c.Compress():
                return self._compress(cmd)
            case c.Enable():
                newly = []
                for cap in cmd.capabilities:
                    if cap == "IMAP4REV2" and self.config.imap4rev2:
                        cap = "IMAP4rev2"
                    elif cap not in _ENABLEABLE:
                        continue  # RFC 5161 §3.1: unknown capabilities are ignored
                    if cap not in self.enabled:
                        newly.append(cap)
                        self.enabled.add(cap)
                        if cap == "QRESYNC":
                            self.enabled.add("CONDSTORE")  # RFC 7162 §3.2.3
                self._emit(render(Untagged(" ".join(["ENABLED", *newly]).encode("ascii"))))
                self._pending = _Pending(cmd)
                return cmd
            case c.Select(qresync=c.QresyncParams()) | c.Examine(qresync=c.QresyncParams()) if (
                not self.qresync
            ):
                # RFC 7162 §3.2.5: the QRESYNC parameter needs ENABLE QRESYNC first
                self._bad(cmd.tag, "Enable QRESYNC first")
                return None
            case c.Idle():
                self._emit(render(Continuation("idling")))
                self._mode = _Mode.IDLE
                self._pending = _Pending(cmd)
                return cmd
            case _:
                self._enable_by_use(cmd)
                self._pending = _Pending(cmd)
                return cmd

    def _enable_by_use(self, cmd: c.Command) -> None:
        # RFC 7162 §3.1: CONDSTORE-enabling commands turn CONDSTORE on
        match cmd:
            case c.Select(condstore=True) | c.Examine(condstore=True):
                self.enabled.add("CONDSTORE")
            case c.Fetch() if cmd.changedsince is not None or any(
                a.name == "MODSEQ" for a in cmd.items
            ):
                self.enabled.add("CONDSTORE")
            case c.Store(unchangedsince=int()):
                self.enabled.add("CONDSTORE")
            case c.Status() if "HIGHESTMODSEQ" in cmd.items:
                self.enabled.add("CONDSTORE")
            case _:
                pass

    def _login_allowed(self, tag: str) -> bool:
        if self.tls_active or self.config.allow_plaintext_login:
            return True
        # RFC 3501 §6.2.3 LOGINDISABLED; RFC 5530 PRIVACYREQUIRED
        self._emit(render(Tagged(tag, "NO", "Use STARTTLS first", "PRIVACYREQUIRED")))
        return False

    def _authenticate(self, cmd: c.Authenticate) -> Event | None:
        # RFC 3501 §6.2.2 with the shared SASL exchange (PLAIN RFC 4616, LOGIN)
        try:
            mech = parse_mechanism(cmd.mechanism, _MECHANISMS)
        except SaslError:
            self._emit(render(Tagged(cmd.tag, "NO", "Unsupported authentication mechanism")))
            return None
        if not self._login_allowed(cmd.tag):
            return None
        try:
            exchange = SaslExchange(mech, cmd.initial)
        except SaslError as exc:
            self._sasl_failed(cmd.tag, exc)
            return None
        return self._sasl_step(cmd.tag, exchange)

    def _sasl_step(self, tag: str, exchange: SaslExchange) -> Event | None:
        creds = exchange.credentials
        if creds is None:
            self._emit(render(Continuation(data=exchange.challenge)))
            self._mode = _Mode.SASL
            self._sasl = (tag, exchange)
            return None
        login = c.Login(tag, creds.authcid, creds.password, creds.authzid, creds.mechanism.value)
        self._pending = _Pending(login)
        return login

    def _sasl_failed(self, tag: str, exc: SaslError) -> None:
        if exc.reason is SaslFailure.CANCELLED:
            # RFC 3501 §6.2.2: a cancelled exchange is answered BAD
            self._bad(tag, "Authentication cancelled")
        else:
            self._bad(tag, "Malformed SASL response")

    def _sasl_input(self) -> Event | None:
        line = self._framer.next_line()
        if line is None:
            return None
        self._mode = _Mode.COMMAND
        self._consumed += 1
        assert self._sasl is not None
        tag, exchange = self._sasl
        self._sasl = None
        if isinstance(line, LineTooLong):
            self._bad(tag, "SASL response too long", "TOOBIG")
            return None
        try:
            exchange.receive(line.data)
        except SaslError as exc:
            self._sasl_failed(tag, exc)
            return None
        return self._sasl_step(tag, exchange)

    def _idle_input(self) -> Event | None:
        line = self._framer.next_line()
        if line is None:
            return None
        assert self._pending is not None
        tag = self._pending.tag
        self._mode = _Mode.COMMAND
        if not isinstance(line, LineTooLong) and line.data.upper() == b"DONE":
            return IdleDone(tag)
        # RFC 2177 §3: anything else than DONE ends IDLE as a bad command
        self._pending = None
        self._bad(tag, "Expected DONE")
        return IdleDone(tag, answered=True)

    def _compress(self, cmd: c.Compress) -> Event | None:
        if cmd.mechanism != "DEFLATE":
            self._bad(cmd.tag, "Unknown compression mechanism")
            return None
        if self._deflate is not None:
            # RFC 4978 §3: COMPRESSIONACTIVE
            self._emit(render(Tagged(cmd.tag, "NO", "Already active", "COMPRESSIONACTIVE")))
            return None
        # RFC 4978 §3: raw DEFLATE (no zlib header) in both directions after the OK
        self._emit(render(Tagged(cmd.tag, "OK", "DEFLATE active")))
        self._deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
        self._deflate_at = len(self._out)
        self._deflate_started = False
        self._inflate = zlib.decompressobj(-15)
        self._inflate_in = self._framer.lines.take_all()
        return None

    def _complete(self, cmd: c.Command, resp: Tagged) -> Tagged:
        """Move the state on the application's answer; add codes clients like."""
        match cmd:
            case c.Login():
                if resp.status == "OK":
                    self.state = State.AUTHENTICATED
                    if resp.code is None:
                        # RFC 3501 §7.2.1: CAPABILITY in the login OK saves a round trip
                        return Tagged(
                            resp.tag, "OK", resp.text, "CAPABILITY " + self.capability_string()
                        )
            case c.Select() | c.Examine():
                self.state = State.SELECTED if resp.status == "OK" else State.AUTHENTICATED
            case c.Close() | c.Unselect():
                if resp.status == "OK":
                    self.state = State.AUTHENTICATED
            case _:
                pass
        return resp
