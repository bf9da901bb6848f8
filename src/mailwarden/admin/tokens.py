"""Bearer tokens for the admin API, kept hashed in the data directory.

Tokens are 256-bit random strings shown once at creation; only their SHA-256
is stored (a fast hash is right for high-entropy secrets), with a name so an
operator can list and revoke them.  Comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import time
from pathlib import Path

__all__ = ["AdminTokens"]

FILE_NAME = "admin-tokens.json"
PREFIX = "mwa_"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class AdminTokens:
    """Create, check, list and revoke admin API tokens."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / FILE_NAME

    def _load(self) -> dict[str, dict[str, object]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def _save(self, data: dict[str, dict[str, object]]) -> None:
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out)
        os.replace(tmp, self.path)

    def create(self, name: str) -> str:
        """Make a token named ``name`` and return it (it is not stored in clear)."""
        if not name or not name.isprintable() or len(name) > 64:
            raise ValueError("token names are 1 to 64 printable characters")
        data = self._load()
        if name in data:
            raise ValueError(f"a token named {name!r} exists already")
        token = PREFIX + secrets.token_urlsafe(32)
        data[name] = {"sha256": _digest(token), "created": int(time.time())}
        self._save(data)
        return token

    def verify(self, token: str) -> str | None:
        """The name of the token, or None if it is not a valid token."""
        if not token.startswith(PREFIX):
            return None
        digest = _digest(token)
        found = None
        for name, info in self._load().items():
            if hmac.compare_digest(str(info.get("sha256", "")), digest):
                found = name
        return found

    def names(self) -> list[str]:
        """Names of the tokens that exist."""
        return sorted(self._load())

    def revoke(self, name: str) -> bool:
        """Delete a token; False if there was none of that name."""
        data = self._load()
        if data.pop(name, None) is None:
            return False
        self._save(data)
        return True
