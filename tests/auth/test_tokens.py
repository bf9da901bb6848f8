"""Device tokens, keyed digests, app passwords, the secret file."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from mailwarden.auth.tokens import (
    DeviceTokens,
    Digests,
    app_password_digest,
    generate_app_password,
    load_secret,
    looks_like_app_password,
)


def test_device_tokens_are_signed_and_carry_their_claim() -> None:
    tokens = DeviceTokens(b"s" * 32)
    token = tokens.issue(7, 3, 1000.0, "alice@example.test")
    claim = tokens.check(token)
    assert claim is not None
    assert (claim.account_id, claim.epoch, claim.issued, claim.user_key) == (
        7,
        3,
        1000.0,
        "alice@example.test",
    )
    assert tokens.issue(7, 3, 1000.0, "a") != tokens.issue(7, 3, 1000.0, "a")  # nonce
    assert DeviceTokens(b"t" * 32).check(token) is None  # other secret
    prefix, payload, mac = token.split(".")
    assert tokens.check(f"{prefix}.{payload}x.{mac}") is None
    for junk in ("", "mwd1", "mwd1..", "x.y.z", "mwd1.!!!.???", "a" * 5000):
        assert tokens.check(junk) is None


def test_digests_are_keyed_and_unambiguous() -> None:
    d = Digests(b"k" * 32)
    assert d.of("ab", "c") == d.of("ab", "c")
    assert d.of("ab", "c") != d.of("a", "bc")
    assert Digests(b"j" * 32).of("ab", "c") != d.of("ab", "c")
    assert "password" not in d.of("user", "password")


def test_app_passwords() -> None:
    password = generate_app_password()
    assert len(password) == 19 and password.count("-") == 3
    assert looks_like_app_password(password)
    assert looks_like_app_password(password.replace("-", "").upper())
    assert app_password_digest(password) == app_password_digest(password.replace("-", " ").upper())
    assert not looks_like_app_password("correct horse battery")
    assert not looks_like_app_password("0000-0000-0000-0000")  # 0 is not in the alphabet
    assert generate_app_password() != password


def test_secret_is_made_once_with_mode_0600(tmp_path: Path) -> None:
    secret = load_secret(tmp_path / "data")
    assert len(secret) == 32
    path = tmp_path / "data" / "auth.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_secret(tmp_path / "data") == secret
    path.write_bytes(b"short")
    with pytest.raises(ValueError, match="too short"):
        load_secret(tmp_path / "data")
