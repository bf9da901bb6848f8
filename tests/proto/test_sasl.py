"""Tests for the shared SASL PLAIN/LOGIN decoding."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailwarden.proto import sasl
from mailwarden.proto.sasl import (
    Mechanism,
    SaslCredentials,
    SaslError,
    SaslExchange,
    SaslFailure,
    decode_base64,
    is_cancel,
    parse_mechanism,
    parse_plain,
)

BOTH = frozenset(Mechanism)


def b64(data: bytes) -> bytes:
    return base64.b64encode(data)


def test_all_is_exact() -> None:
    public = {n for n in dir(sasl) if not n.startswith("_") and n.isidentifier()}
    exported = set(sasl.__all__)
    assert exported <= public
    defined_here = {
        n
        for n in public
        if getattr(getattr(sasl, n), "__module__", None) == sasl.__name__ or n.isupper()
    }
    assert defined_here - {"annotations"} == exported


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (b"\x00tim\x00tanstaaftanstaaf", ("", "tim", "tanstaaftanstaaf")),
        (b"Ursel\x00Kurt\x00xipj3plmq", ("Ursel", "Kurt", "xipj3plmq")),
        ("\x00jöhn@ex.test\x00päss wörd".encode(), ("", "jöhn@ex.test", "päss wörd")),
        (b"\x00u\x00p\xc3\xa9", ("", "u", "pé")),
    ],
)
def test_parse_plain_ok(message: bytes, expected: tuple[str, str, str]) -> None:
    creds = parse_plain(message)
    assert (creds.authzid, creds.authcid, creds.password) == expected
    assert creds.mechanism is Mechanism.PLAIN


@pytest.mark.parametrize(
    "message",
    [
        b"",
        b"user",
        b"\x00user",
        b"\x00\x00pass",  # empty authcid
        b"\x00user\x00",  # empty passwd
        b"a\x00b\x00c\x00d",  # three NULs
        b"\x00us\xffer\x00pass",  # not UTF-8
        b"\x00user\x00" + b"p" * (sasl.MAX_SASL_FIELD + 1),
        b"\xc3\x00user\x00pass",  # authzid not UTF-8
    ],
)
def test_parse_plain_invalid(message: bytes) -> None:
    with pytest.raises(SaslError) as info:
        parse_plain(message)
    assert info.value.reason is SaslFailure.INVALID


def test_field_at_limit_is_accepted() -> None:
    creds = parse_plain(b"\x00user\x00" + b"p" * sasl.MAX_SASL_FIELD)
    assert len(creds.password) == sasl.MAX_SASL_FIELD


@pytest.mark.parametrize("text", [b"dGVzdA=", b"dGVz dA==", b"dGVzdA==\r", b"!!!!", b"dGVzd"])
def test_decode_base64_strict(text: bytes) -> None:
    with pytest.raises(SaslError) as info:
        decode_base64(text)
    assert info.value.reason is SaslFailure.MALFORMED


def test_decode_base64_ok() -> None:
    assert decode_base64(b"dGVzdA==") == b"test"
    assert decode_base64(b"") == b""


@pytest.mark.parametrize(("line", "cancel"), [(b"*", True), (b" * ", True), (b"**", False)])
def test_is_cancel(line: bytes, cancel: bool) -> None:
    assert is_cancel(line) is cancel


def test_parse_mechanism() -> None:
    assert parse_mechanism(b"plain", BOTH) is Mechanism.PLAIN
    assert parse_mechanism("Login", BOTH) is Mechanism.LOGIN
    with pytest.raises(SaslError) as info:
        parse_mechanism(b"CRAM-MD5", BOTH)
    assert info.value.reason is SaslFailure.UNSUPPORTED
    with pytest.raises(SaslError) as info:
        parse_mechanism(b"LOGIN", frozenset({Mechanism.PLAIN}))
    assert info.value.reason is SaslFailure.UNSUPPORTED
    with pytest.raises(SaslError):
        parse_mechanism(b"\xff\xfe", BOTH)


def test_plain_initial_response() -> None:
    ex = SaslExchange(Mechanism.PLAIN, b64(b"admin\x00user\x00secret"))
    assert ex.credentials == SaslCredentials(Mechanism.PLAIN, "user", "secret", "admin")
    with pytest.raises(RuntimeError):
        _ = ex.challenge
    with pytest.raises(RuntimeError):
        ex.receive(b"")


def test_plain_continuation() -> None:
    ex = SaslExchange(Mechanism.PLAIN)
    assert ex.credentials is None
    assert ex.challenge == b""
    creds = ex.receive(b64(b"\x00user\x00secret"))
    assert creds == SaslCredentials(Mechanism.PLAIN, "user", "secret")
    assert ex.credentials is creds


def test_plain_empty_initial_response_is_invalid() -> None:
    with pytest.raises(SaslError) as info:
        SaslExchange(Mechanism.PLAIN, b"=")
    assert info.value.reason is SaslFailure.INVALID


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"*", SaslFailure.CANCELLED),
        (b"not base64!", SaslFailure.MALFORMED),
        (b"", SaslFailure.INVALID),
        (b64(b"nonul"), SaslFailure.INVALID),
    ],
)
def test_plain_continuation_errors(line: bytes, reason: SaslFailure) -> None:
    ex = SaslExchange(Mechanism.PLAIN)
    with pytest.raises(SaslError) as info:
        ex.receive(line)
    assert info.value.reason is reason
    with pytest.raises(RuntimeError):
        ex.receive(b64(b"\x00u\x00p"))  # the exchange is over


def test_initial_response_cancel() -> None:
    with pytest.raises(SaslError) as info:
        SaslExchange(Mechanism.PLAIN, b"*")
    assert info.value.reason is SaslFailure.CANCELLED


def test_login_two_steps() -> None:
    ex = SaslExchange(Mechanism.LOGIN)
    assert base64.b64decode(ex.challenge) == b"Username:"
    assert ex.receive(b64(b"user@example.test")) is None
    assert base64.b64decode(ex.challenge) == b"Password:"
    creds = ex.receive(b64(b"s3cret"))
    assert creds == SaslCredentials(Mechanism.LOGIN, "user@example.test", "s3cret")


def test_login_initial_response_is_user_name() -> None:
    ex = SaslExchange(Mechanism.LOGIN, b64(b"user"))
    assert ex.challenge == sasl.LOGIN_PASSWORD_CHALLENGE
    assert ex.receive(b64(b"pw")) is not None


@pytest.mark.parametrize(
    ("username", "password", "reason"),
    [
        (b"*", None, SaslFailure.CANCELLED),
        (b"", None, SaslFailure.INVALID),
        (b64(b"a\x00b"), None, SaslFailure.INVALID),
        (b64(b"\xff"), None, SaslFailure.INVALID),
        (b64(b"user"), b"*", SaslFailure.CANCELLED),
        (b64(b"user"), b"", SaslFailure.INVALID),
        (b64(b"user"), b"%%", SaslFailure.MALFORMED),
        (b64(b"user"), b64(b"p\x00w"), SaslFailure.INVALID),
    ],
)
def test_login_errors(username: bytes, password: bytes | None, reason: SaslFailure) -> None:
    ex = SaslExchange(Mechanism.LOGIN)
    if password is None:
        with pytest.raises(SaslError) as info:
            ex.receive(username)
    else:
        ex.receive(username)
        with pytest.raises(SaslError) as info:
            ex.receive(password)
    assert info.value.reason is reason


def test_login_empty_initial_response() -> None:
    with pytest.raises(SaslError) as info:
        SaslExchange(Mechanism.LOGIN, b"=")
    assert info.value.reason is SaslFailure.INVALID


def test_repr_hides_password() -> None:
    creds = SaslCredentials(Mechanism.PLAIN, "user", "hunter2")
    assert "hunter2" not in repr(creds)
    assert "user" in repr(creds)


def test_error_text() -> None:
    assert str(SaslError(SaslFailure.CANCELLED)) == "cancelled"
    assert str(SaslError(SaslFailure.INVALID, "x")) == "invalid: x"


@given(st.sampled_from(list(Mechanism)), st.lists(st.binary(max_size=80), max_size=4))
def test_arbitrary_lines_raise_only_sasl_error(mech: Mechanism, lines: list[bytes]) -> None:
    try:
        ex = SaslExchange(mech, lines[0] if lines else None)
        for line in lines[1:]:
            if ex.credentials is not None:
                break
            ex.receive(line)
    except SaslError:
        pass


@given(
    st.text(min_size=1).filter(lambda s: "\x00" not in s),
    st.text(min_size=1).filter(lambda s: "\x00" not in s),
    st.text().filter(lambda s: "\x00" not in s),
)
def test_plain_round_trip(authcid: str, password: str, authzid: str) -> None:
    message = f"{authzid}\x00{authcid}\x00{password}".encode()
    if max(len(authcid.encode()), len(password.encode()), len(authzid.encode())) > 1024:
        return
    ex = SaslExchange(Mechanism.PLAIN, b64(message))
    assert ex.credentials == SaslCredentials(Mechanism.PLAIN, authcid, password, authzid)


def test_encode_base64() -> None:
    assert sasl.encode_base64(b"Username:") == sasl.LOGIN_USERNAME_CHALLENGE
    assert decode_base64(sasl.encode_base64(b"\x00\xff")) == b"\x00\xff"
