"""Secrets of the auth service: keyed digests, device tokens and app passwords.

Theory of operation
-------------------
* **Keyed digests** (:class:`Digests`) stand for passwords in memory: the
  success cache, the failure cache and the distinct-failure counts hold a
  BLAKE2b digest keyed with a random key made at start and never written
  anywhere, so neither a memory dump's tables nor a shared counter store
  (Redis) can be searched for a password without that key.  Nothing derived
  from a password is ever stored on disk by the auth service.
* **Device tokens** let a webmail or API client prove it logged in before:
  ``mwd1.<payload>.<mac>`` where the payload names the account, the account's
  token *epoch*, the issue time, a nonce and the user name it logged in as,
  and the MAC is HMAC-SHA256 with a key derived from the server secret.
  ``auth revoke`` raises the epoch, which voids every token issued before.
  The secret is a 32-byte file in the data directory (mode 0600), made on
  first use.
* **App passwords** are random (80 bits, ``xxxx-xxxx-xxxx-xxxx``), so a fast
  SHA-256 digest is a safe way to store them (no dictionary can reach 2**80);
  checking one costs microseconds, never a slot on the argon2 pool.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "APP_PASSWORD_ALPHABET",
    "DeviceClaim",
    "DeviceTokens",
    "Digests",
    "app_password_digest",
    "generate_app_password",
    "load_secret",
    "looks_like_app_password",
]

SECRET_FILE = "auth.key"  # noqa: S105 - a file name
_TOKEN_PREFIX = "mwd1"  # noqa: S105 - a format tag
# No 0/o, 1/l/i: read aloud and typed on phones.
APP_PASSWORD_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # noqa: S105
_APP_PASSWORD_CHARS = 16


def load_secret(data_dir: Path) -> bytes:
    """The node's secret from ``<data_dir>/auth.key``, made (0600) on first use."""
    path = data_dir / SECRET_FILE
    try:
        secret = path.read_bytes()
    except FileNotFoundError:
        data_dir.mkdir(parents=True, exist_ok=True)
        secret = secrets.token_bytes(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, secret)
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
        return secret
    if len(secret) < 32:
        raise ValueError(f"{path} is too short to be a secret (need 32 bytes)")
    return secret


class Digests:
    """Keyed digests of what clients send, for in-memory caches and counts."""

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key or secrets.token_bytes(32)

    def of(self, *parts: str) -> str:
        """A short hex digest of the parts (joined unambiguously)."""
        h = hashlib.blake2b(key=self._key, digest_size=16)
        for part in parts:
            data = part.encode("utf-8", "surrogatepass")
            h.update(len(data).to_bytes(4, "big"))
            h.update(data)
        return h.hexdigest()


@dataclass(frozen=True, slots=True)
class DeviceClaim:
    """What a valid device token says."""

    account_id: int
    epoch: int
    issued: float
    user_key: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class DeviceTokens:
    """Issue and check signed device tokens."""

    def __init__(self, secret: bytes) -> None:
        self._key = hmac.new(secret, b"mailwarden device token v1", hashlib.sha256).digest()

    def issue(self, account_id: int, epoch: int, now: float, user_key: str) -> str:
        """A new token for an account (logged in to as ``user_key``) at its current epoch."""
        payload = f"{account_id}:{epoch}:{int(now)}:{secrets.token_hex(8)}:{user_key}".encode()
        mac = hmac.new(self._key, payload, hashlib.sha256).digest()[:16]
        return f"{_TOKEN_PREFIX}.{_b64(payload)}.{_b64(mac)}"

    def check(self, token: str) -> DeviceClaim | None:
        """The claim of a genuine token, or None for anything else (never raises)."""
        if len(token) > 1024:
            return None
        prefix, _, rest = token.partition(".")
        payload_b64, _, mac_b64 = rest.partition(".")
        if prefix != _TOKEN_PREFIX or not payload_b64 or not mac_b64:
            return None
        try:
            payload = _unb64(payload_b64)
            mac = _unb64(mac_b64)
        except ValueError:
            return None
        expected = hmac.new(self._key, payload, hashlib.sha256).digest()[:16]
        if not hmac.compare_digest(mac, expected):
            return None
        try:
            account, epoch, issued, _nonce, user_key = payload.decode().split(":", 4)
            return DeviceClaim(int(account), int(epoch), float(issued), user_key)
        except ValueError:
            return None


def generate_app_password() -> str:
    """A new random app password, ``xxxx-xxxx-xxxx-xxxx`` (80 bits)."""
    chars = "".join(secrets.choice(APP_PASSWORD_ALPHABET) for _ in range(_APP_PASSWORD_CHARS))
    return "-".join(chars[i : i + 4] for i in range(0, _APP_PASSWORD_CHARS, 4))


def _normalise_app_password(password: str) -> str:
    return password.replace("-", "").replace(" ", "").lower()


def looks_like_app_password(password: str) -> bool:
    """Whether ``password`` has the shape of an app password (dashes and case ignored)."""
    bare = _normalise_app_password(password)
    return len(bare) == _APP_PASSWORD_CHARS and all(c in APP_PASSWORD_ALPHABET for c in bare)


def app_password_digest(password: str) -> str:
    """The stored form of an app password (hex SHA-256 of its normalised text)."""
    return hashlib.sha256(_normalise_app_password(password).encode("ascii")).hexdigest()
