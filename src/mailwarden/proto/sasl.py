"""Server side of the SASL PLAIN and LOGIN mechanisms, shared by IMAP, POP3 and SMTP.

Theory of operation
-------------------
SASL (RFC 4422) is the same conversation in every protocol; only the framing
differs: IMAP sends challenges as ``+ <base64>``, SMTP as ``334 <base64>``,
POP3 as ``+ <base64>``.  Each protocol core strips its own framing and hands
the bare client line (without CRLF) to a :class:`SaslExchange`; the exchange
says what to send next (a base64 challenge, ready to be framed) or yields the
decoded :class:`SaslCredentials` once the client has said everything.  The
exchange never decides whether the credentials are good: that is the auth
service's job, reached through the application.

Two mechanisms are implemented, both only ever offered after TLS:

* ``PLAIN`` (RFC 4616): one message ``[authzid] NUL authcid NUL passwd`` in
  UTF-8, sent either as the initial response or after an empty challenge.
* ``LOGIN`` (draft-murchison-sasl-login, the de-facto standard used by Outlook
  and many phones): the server asks ``Username:`` then ``Password:``; an
  initial response, if present, is the user name.

Shared rules:

* A client line of exactly ``*`` cancels the exchange (RFC 4422 §3.5,
  RFC 3501 §6.2.2, RFC 4954 §4, RFC 5034 §4).
* Base64 is decoded strictly (RFC 4648 §3.3: no characters outside the
  alphabet, correct padding); anything else is :attr:`SaslFailure.MALFORMED`.
* An initial response of ``=`` stands for an empty response (RFC 4954 §4,
  RFC 5034 §4, RFC 4959 §3); in a continuation an empty line is an empty
  response.

Errors are raised as :class:`SaslError` with a :class:`SaslFailure` reason and
never carry wire text: each core turns the reason into its own reply (``BAD``,
``501 5.5.2``, ``-ERR``).  Nothing here logs; a core marks SASL lines sensitive.
"""

from __future__ import annotations

import base64
import binascii
import enum
from dataclasses import dataclass

__all__ = [
    "LOGIN_PASSWORD_CHALLENGE",
    "LOGIN_USERNAME_CHALLENGE",
    "MAX_SASL_FIELD",
    "Mechanism",
    "SaslCredentials",
    "SaslError",
    "SaslExchange",
    "SaslFailure",
    "decode_base64",
    "encode_base64",
    "is_cancel",
    "parse_mechanism",
    "parse_plain",
]

# RFC 4616 §2: servers MUST accept authcid, authzid and passwd of up to 255
# octets each.  We accept up to 1024 so long passphrases work, and no more, so
# that a peer cannot hand the (expensive) password hasher megabytes.  This is a
# security limit.
MAX_SASL_FIELD = 1024

# The challenges of the LOGIN mechanism, already base64-encoded.
LOGIN_USERNAME_CHALLENGE = base64.b64encode(b"Username:")
LOGIN_PASSWORD_CHALLENGE = base64.b64encode(b"Password:")


class Mechanism(enum.Enum):
    """The SASL mechanisms a Mailwarden server can offer."""

    PLAIN = "PLAIN"
    """RFC 4616: authzid, authcid and password in one message."""
    LOGIN = "LOGIN"
    """draft-murchison-sasl-login: user name and password in two steps."""


class SaslFailure(enum.Enum):
    """Why an exchange ended without credentials."""

    CANCELLED = "cancelled"
    """The client sent ``*`` (RFC 4422 §3.5)."""
    MALFORMED = "malformed"
    """The client's line is not valid base64 (RFC 4648)."""
    INVALID = "invalid"
    """The decoded message breaks the mechanism's syntax (e.g. RFC 4616 §2)."""
    UNSUPPORTED = "unsupported"
    """The mechanism is unknown or not offered here."""


class SaslError(Exception):
    """A SASL exchange failed; ``reason`` says why.  Never shown to the peer as text."""

    def __init__(self, reason: SaslFailure, detail: str = "") -> None:
        super().__init__(f"{reason.value}: {detail}" if detail else reason.value)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class SaslCredentials:
    """What the client claims, decoded; not yet verified.

    Attributes:
        mechanism: the mechanism that carried them.
        authcid: the authentication identity (the login name).
        password: the password, as given.
        authzid: the authorization identity, or ``""`` when the client did not
            ask to act as someone else (RFC 4616 §2).  Whether a non-empty
            authzid different from ``authcid`` is allowed is the caller's
            decision; Mailwarden refuses it.
    """

    mechanism: Mechanism
    authcid: str
    password: str = ""
    authzid: str = ""

    def __repr__(self) -> str:  # never let a password reach a log through repr()
        return (
            f"SaslCredentials(mechanism={self.mechanism.name}, authcid={self.authcid!r}, "
            f"authzid={self.authzid!r}, password=<redacted>)"
        )


def is_cancel(line: bytes) -> bool:
    """Return True if ``line`` (without CRLF) is the client's cancel, ``*``."""
    return line.strip(b" ") == b"*"


def decode_base64(text: bytes) -> bytes:
    """Decode strict base64 as SASL requires.

    Args:
        text: the client's line without CRLF.

    Returns:
        The decoded octets (empty for an empty line).

    Raises:
        SaslError: MALFORMED if ``text`` has characters outside the base64
            alphabet (including whitespace) or wrong padding.
    """
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SaslError(SaslFailure.MALFORMED, "not base64") from exc


def encode_base64(data: bytes) -> bytes:
    """Encode ``data`` as one line of base64 (for challenges)."""
    return base64.b64encode(data)


def _field(raw: bytes, what: str) -> str:
    if len(raw) > MAX_SASL_FIELD:
        raise SaslError(SaslFailure.INVALID, f"{what} too long")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SaslError(SaslFailure.INVALID, f"{what} is not UTF-8") from exc


def parse_plain(message: bytes) -> SaslCredentials:
    """Parse a decoded PLAIN message.

    RFC 4616 §2: ``message = [authzid] UTF8NUL authcid UTF8NUL passwd``;
    authcid and passwd are non-empty; no field contains NUL.

    Args:
        message: the decoded (not base64) message.

    Returns:
        The credentials, with ``authzid`` ``""`` when absent.

    Raises:
        SaslError: INVALID if there are not exactly two NULs, authcid or
            passwd is empty, a field is not UTF-8, or a field is longer
            than :data:`MAX_SASL_FIELD`.
    """
    parts = message.split(b"\x00")
    if len(parts) != 3:
        raise SaslError(SaslFailure.INVALID, "PLAIN needs exactly two NULs")
    authzid, authcid, passwd = parts
    if not authcid or not passwd:
        raise SaslError(SaslFailure.INVALID, "empty authcid or passwd")
    return SaslCredentials(
        mechanism=Mechanism.PLAIN,
        authcid=_field(authcid, "authcid"),
        password=_field(passwd, "passwd"),
        authzid=_field(authzid, "authzid"),
    )


def parse_mechanism(name: bytes | str, offered: frozenset[Mechanism]) -> Mechanism:
    """Look up a mechanism name as the client sent it (case-insensitive).

    Args:
        name: the name from ``AUTH <name>`` / ``AUTHENTICATE <name>``.
        offered: the mechanisms this server offers right now.

    Raises:
        SaslError: UNSUPPORTED if the name is unknown or not in ``offered``.
    """
    text = name.decode("ascii", "replace") if isinstance(name, bytes) else name
    try:
        mech = Mechanism(text.upper())
    except ValueError:
        raise SaslError(SaslFailure.UNSUPPORTED, "unknown mechanism") from None
    if mech not in offered:
        raise SaslError(SaslFailure.UNSUPPORTED, "mechanism not offered")
    return mech


class _Step(enum.Enum):
    PLAIN_MESSAGE = enum.auto()
    LOGIN_USERNAME = enum.auto()
    LOGIN_PASSWORD = enum.auto()
    DONE = enum.auto()


class SaslExchange:
    """One server-side PLAIN or LOGIN exchange, driven by the protocol core.

    Usage::

        ex = SaslExchange(Mechanism.PLAIN, initial_response)   # may raise SaslError
        while ex.credentials is None:
            send_framed(ex.challenge)          # "+ " / "334 " + challenge
            ex.receive(client_line)            # may raise SaslError
        verify(ex.credentials)

    After a :class:`SaslError` the exchange is over; start a new one for a new
    ``AUTH`` command.
    """

    def __init__(self, mechanism: Mechanism, initial_response: bytes | None = None) -> None:
        """Start an exchange.

        Args:
            mechanism: the mechanism the client picked (see :func:`parse_mechanism`).
            initial_response: the optional initial response exactly as sent on
                the command line (base64, or ``=`` for empty), or None if the
                client sent none.

        Raises:
            SaslError: if the initial response is ``*``, malformed or invalid.
        """
        self.mechanism = mechanism
        self.credentials: SaslCredentials | None = None
        self._username = ""
        if mechanism is Mechanism.PLAIN:
            self._step = _Step.PLAIN_MESSAGE
        else:
            self._step = _Step.LOGIN_USERNAME
        if initial_response is not None:
            if initial_response == b"=":
                # RFC 4954 §4 / RFC 5034 §4: "=" is an empty initial response.
                self._take(b"")
            else:
                self.receive(initial_response)

    @property
    def challenge(self) -> bytes:
        """The base64 challenge to send now (possibly empty); only while waiting.

        Raises:
            RuntimeError: if the exchange is already complete (a caller bug).
        """
        if self._step is _Step.PLAIN_MESSAGE:
            # RFC 4616 §2: PLAIN without initial response starts with an
            # empty challenge.
            return b""
        if self._step is _Step.LOGIN_USERNAME:
            return LOGIN_USERNAME_CHALLENGE
        if self._step is _Step.LOGIN_PASSWORD:
            return LOGIN_PASSWORD_CHALLENGE
        raise RuntimeError("SASL exchange already complete")

    def receive(self, line: bytes) -> SaslCredentials | None:
        """Take one client line (without CRLF).

        Args:
            line: the client's base64 response, ``*`` to cancel, or empty for
                an empty response.

        Returns:
            The credentials once complete, else None (send :attr:`challenge`).

        Raises:
            SaslError: CANCELLED for ``*``, MALFORMED for bad base64, INVALID
                for a bad message.
            RuntimeError: if called after completion (a caller bug).
        """
        if self._step is _Step.DONE:
            raise RuntimeError("SASL exchange already complete")
        if is_cancel(line):
            self._step = _Step.DONE
            raise SaslError(SaslFailure.CANCELLED, "client cancelled")
        try:
            decoded = decode_base64(line)
        except SaslError:
            self._step = _Step.DONE
            raise
        return self._take(decoded)

    def _take(self, decoded: bytes) -> SaslCredentials | None:
        step = self._step
        self._step = _Step.DONE  # any error below ends the exchange
        if step is _Step.PLAIN_MESSAGE:
            self.credentials = parse_plain(decoded)
            return self.credentials
        if step is _Step.LOGIN_USERNAME:
            if not decoded or b"\x00" in decoded:
                raise SaslError(SaslFailure.INVALID, "bad LOGIN user name")
            self._username = _field(decoded, "user name")
            self._step = _Step.LOGIN_PASSWORD
            return None
        # LOGIN_PASSWORD
        if not decoded or b"\x00" in decoded:
            raise SaslError(SaslFailure.INVALID, "bad LOGIN password")
        self.credentials = SaslCredentials(
            mechanism=Mechanism.LOGIN,
            authcid=self._username,
            password=_field(decoded, "password"),
        )
        return self.credentials
