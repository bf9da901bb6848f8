"""Operators of the status page: accounts, roles, sessions and the audit log.

Passwords are argon2id (argon2-cffi); verification is blocking and slow on
purpose, so web handlers call it through ``asyncio.to_thread``.  Sessions are
random tokens in an HttpOnly cookie; only their SHA-256 is stored, so a copy
of the database does not hand out live sessions.  Each session carries its own
CSRF token for the admin forms.

Every change an operator makes (CLI or web) goes into the audit log with who,
what, on which object and a short detail.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from mailwarden.web.status.db import StatusDB
from mailwarden.web.status.model import Clock, NotFound, Role, StatusError, from_db, to_db

MIN_PASSWORD_LENGTH = 10


@dataclass(frozen=True, slots=True)
class User:
    """An operator."""

    id: int
    username: str
    role: Role
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Session:
    """A logged-in operator."""

    user: User
    csrf: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One line of the audit log."""

    id: int
    at: datetime
    actor: str
    action: str
    target: str
    detail: str


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class Users:
    """Operator accounts and sessions.

    Args:
        db: the status database.
        clock: injected time source.
        hasher: argon2 hasher (tests pass cheap parameters).
    """

    def __init__(self, db: StatusDB, clock: Clock, hasher: PasswordHasher | None = None) -> None:
        self._db = db
        self._clock = clock
        self._hasher = hasher or PasswordHasher()
        self._dummy: str | None = None

    def add(self, username: str, password: str, role: Role) -> User:
        """Create an operator, or reset the password and role of an existing one.

        Raises:
            StatusError: empty name or a password shorter than 10 characters.
        """
        name = username.strip()
        if not name or any(ch.isspace() for ch in name):
            raise StatusError("a username is one word")
        if len(password) < MIN_PASSWORD_LENGTH:
            raise StatusError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
        self._db.execute(
            "INSERT INTO users (username, password_hash, role, created_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT(username) DO UPDATE SET password_hash = excluded.password_hash,"
            " role = excluded.role",
            (name, self._hasher.hash(password), role.value, to_db(self._clock())),
        )
        return self.get(name)

    def remove(self, username: str) -> None:
        """Delete an operator (and their sessions).

        Raises:
            NotFound: no such operator.
        """
        user = self.get(username)
        self._db.execute("DELETE FROM users WHERE id = ?", (user.id,))

    def get(self, username: str) -> User:
        """Return an operator.

        Raises:
            NotFound: no such operator.
        """
        row = self._db.one("SELECT * FROM users WHERE username = ?", (username,))
        if row is None:
            raise NotFound(f"no user {username!r}")
        return User(row["id"], row["username"], Role(row["role"]), from_db(row["created_at"]))

    def all(self) -> list[User]:
        """Every operator, by name."""
        return [
            User(r["id"], r["username"], Role(r["role"]), from_db(r["created_at"]))
            for r in self._db.all("SELECT * FROM users ORDER BY username")
        ]

    def verify(self, username: str, password: str) -> User | None:
        """Check a password (blocking: run it in a thread). None when wrong."""
        row = self._db.one("SELECT * FROM users WHERE username = ?", (username,))
        if row is None and self._dummy is None:
            # Verified against when the user does not exist, so both cases cost the same.
            self._dummy = self._hasher.hash(secrets.token_hex(16))
        stored = row["password_hash"] if row else self._dummy
        assert stored is not None
        try:
            self._hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return None
        if row is None:
            return None
        return self.get(username)

    def start_session(self, user: User, ttl: timedelta) -> tuple[str, Session]:
        """Create a session; return the cookie token and the session."""
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(24)
        now = self._clock()
        expires = now + ttl
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM sessions WHERE expires_at < ?", (to_db(now),))
            conn.execute(
                "INSERT INTO sessions (token_hash, user_id, csrf, expires_at) VALUES (?, ?, ?, ?)",
                (_token_hash(token), user.id, csrf, to_db(expires)),
            )
        return token, Session(user, csrf, expires)

    def session(self, token: str) -> Session | None:
        """The live session for a cookie token, or None."""
        row = self._db.one(
            "SELECT s.csrf, s.expires_at, u.* FROM sessions s JOIN users u ON u.id = s.user_id"
            " WHERE s.token_hash = ?",
            (_token_hash(token),),
        )
        if row is None or from_db(row["expires_at"]) <= self._clock():
            return None
        user = User(row["id"], row["username"], Role(row["role"]), from_db(row["created_at"]))
        return Session(user, row["csrf"], from_db(row["expires_at"]))

    def end_session(self, token: str) -> None:
        """Log out."""
        self._db.execute("DELETE FROM sessions WHERE token_hash = ?", (_token_hash(token),))


class Audit:
    """The append-only audit log."""

    def __init__(self, db: StatusDB, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    def record(self, actor: str, action: str, target: str = "", detail: str = "") -> None:
        """Append one entry."""
        self._db.execute(
            "INSERT INTO audit_log (at, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)",
            (to_db(self._clock()), actor, action, target, detail[:500]),
        )

    def entries(self, limit: int = 200) -> list[AuditEntry]:
        """Latest entries, newest first."""
        return [
            AuditEntry(r["id"], from_db(r["at"]), r["actor"], r["action"], r["target"], r["detail"])
            for r in self._db.all("SELECT * FROM audit_log ORDER BY id DESC LIMIT ?", (limit,))
        ]
