"""Webmail sessions: server-side state behind an opaque random cookie.

Theory of operation
-------------------
A session is created only by a successful login, with a fresh random id
(session-fixation protection: an id the browser brought is never promoted to a
logged-in session).  The cookie carries nothing but that id; the server keeps
the account, the CSRF token and a few flash messages.

* **Expiry.**  A session dies after ``idle`` seconds without a request (the
  configured ``web.session_hours``) and in any case after ``absolute``
  seconds.  Time is passed in by the caller, so tests drive it.
* **Revocation.**  A session remembers the account's ``credential_version``
  at login; a request whose account has a newer version (the password changed
  elsewhere) finds the session dead.  Logout and password change drop the
  account's other sessions at once.
* **Bounded.**  At most ``max_per_account`` sessions live per account (the
  oldest goes), so a credential-stuffing burst cannot grow memory without end.

:class:`MemorySessions` serves one process; a cluster swaps in a Redis-backed
class with the same methods (the :class:`SessionStore` protocol).
"""

from __future__ import annotations

import hashlib
import secrets
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from mailwarden.store.base import AccountId

__all__ = ["MemorySessions", "Session", "SessionStore", "new_token"]


def new_token(nbytes: int = 32) -> str:
    """A random URL-safe token with ``nbytes`` of entropy."""
    return secrets.token_urlsafe(nbytes)


def _key(session_id: str) -> str:
    # Sessions are looked up by a hash of the cookie value: a memory dump or a
    # debug listing of the table does not hand out live cookies.
    return hashlib.sha256(session_id.encode("utf-8", "replace")).hexdigest()


@dataclass(slots=True)
class Session:
    """One logged-in browser.

    Attributes:
        id: the cookie value (only known to the browser and this object).
        account: whose session it is.
        address: the account's login address, for display.
        credential_version: the account's version at login.
        csrf: the token every state-changing request must carry.
        created: epoch seconds of the login.
        last_seen: epoch seconds of the latest request.
        flashes: one-shot messages shown on the next page.
        streams: server-sent event streams open for this session.
        on_end: called once when the session ends (logout, expiry, revocation),
            e.g. to unregister it from the auth service's session list.
    """

    id: str
    account: AccountId
    address: str
    credential_version: int
    csrf: str
    created: float
    last_seen: float
    flashes: list[tuple[str, str]] = field(default_factory=list)
    streams: int = 0
    on_end: Callable[[], None] | None = None

    def flash(self, text: str, kind: str = "info") -> None:
        """Queue a message for the next page (``kind``: info or error)."""
        if len(self.flashes) < 5:
            self.flashes.append((kind, text))

    def pop_flashes(self) -> list[tuple[str, str]]:
        """Take the queued messages."""
        out, self.flashes = self.flashes, []
        return out


class SessionStore(Protocol):
    """Where sessions live (memory here, Redis in a cluster)."""

    def create(
        self, account: AccountId, address: str, credential_version: int, now: float
    ) -> Session:
        """Start a new session with a fresh id and CSRF token."""
        ...

    def get(self, session_id: str, now: float) -> Session | None:
        """The live session with that id (touching it), or None."""
        ...

    def delete(self, session_id: str) -> None:
        """End one session (unknown ids are ignored)."""
        ...

    def delete_account(self, account: AccountId, keep: str | None = None) -> int:
        """End every session of an account except ``keep``; return how many ended."""
        ...


class MemorySessions:
    """In-process sessions with idle and absolute expiry."""

    def __init__(
        self, idle: float, absolute: float | None = None, max_per_account: int = 50
    ) -> None:
        """Make an empty table.

        Args:
            idle: seconds a session lives without requests.
            absolute: seconds a session lives at most (default: 7 × idle).
            max_per_account: sessions kept per account; creating more ends the oldest.
        """
        self.idle = idle
        self.absolute = absolute if absolute is not None else idle * 7
        self.max_per_account = max_per_account
        self._by_key: dict[str, Session] = {}
        self._by_account: dict[AccountId, OrderedDict[str, None]] = {}

    def __len__(self) -> int:
        return len(self._by_key)

    def create(
        self, account: AccountId, address: str, credential_version: int, now: float
    ) -> Session:
        """Start a new session with a fresh id and CSRF token."""
        session = Session(
            id=new_token(),
            account=account,
            address=address,
            credential_version=credential_version,
            csrf=new_token(24),
            created=now,
            last_seen=now,
        )
        key = _key(session.id)
        self._by_key[key] = session
        mine = self._by_account.setdefault(account, OrderedDict())
        mine[key] = None
        while len(mine) > self.max_per_account:
            oldest, _ = mine.popitem(last=False)
            self._by_key.pop(oldest, None)
        if len(self._by_key) % 256 == 0:
            self._sweep(now)
        return session

    def get(self, session_id: str, now: float) -> Session | None:
        """The live session with that id (touching it), or None."""
        if not session_id or len(session_id) > 128:
            return None
        key = _key(session_id)
        session = self._by_key.get(key)
        if session is None:
            return None
        if now - session.last_seen > self.idle or now - session.created > self.absolute:
            self._drop(key)
            return None
        session.last_seen = now
        return session

    def delete(self, session_id: str) -> None:
        """End one session (unknown ids are ignored)."""
        self._drop(_key(session_id))

    def delete_account(self, account: AccountId, keep: str | None = None) -> int:
        """End every session of an account except ``keep``; return how many ended."""
        keep_key = _key(keep) if keep else None
        ended = 0
        for key in list(self._by_account.get(account, ())):
            if key != keep_key:
                self._drop(key)
                ended += 1
        return ended

    def _drop(self, key: str) -> None:
        session = self._by_key.pop(key, None)
        if session is None:
            return
        if session.on_end is not None:
            end, session.on_end = session.on_end, None
            end()
        mine = self._by_account.get(session.account)
        if mine is not None:
            mine.pop(key, None)
            if not mine:
                del self._by_account[session.account]

    def _sweep(self, now: float) -> None:
        for key, session in list(self._by_key.items()):
            if now - session.last_seen > self.idle or now - session.created > self.absolute:
                self._drop(key)
