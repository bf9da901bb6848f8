"""Durable auth state on the store's SQLite file (:class:`~mailwarden.auth.persist.AuthStateStore`).

It opens its own :class:`~.sqlite_db.Database` on the same file as the mail
store (the tables come from migration 0002), so the admin tools can use it
without opening the whole store, and so that the node's auth writes (bans,
known clients, statistics) never wait behind a large delivery.  SQLite
serialises the two writers; every auth transaction is a few rows.

Every write to a table the node caches takes the next value of
``auth_meta.seq`` and stamps its rows with it; :meth:`changes_since` is then
one indexed range query per table.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mailwarden.auth.bans import AllowEntry, Ban
from mailwarden.auth.limits import IPNetwork
from mailwarden.auth.persist import (
    AccountFlags,
    AppPassword,
    AuditEntry,
    Changes,
    KnownClient,
    StatsSnapshot,
)
from mailwarden.store.sqlite_db import Database, Effects

__all__ = ["SqliteAuthState"]

_BAN_COLUMNS = "id, network, since, until, rule, reason, level, counts"
_APP_COLUMNS = "id, account_id, label, digest, created, revoked"


def _next_seq(conn: sqlite3.Connection) -> int:
    row = conn.execute("UPDATE auth_meta SET seq = seq + 1 WHERE id = 1 RETURNING seq").fetchone()
    return int(row[0])


def _ban(row: Any) -> Ban:
    counts = json.loads(str(row[7])) if row[7] else {}
    return Ban(
        network=ipaddress.ip_network(str(row[1])),
        since=float(row[2]),
        until=None if row[3] is None else float(row[3]),
        rule=str(row[4]),
        reason=str(row[5]),
        level=int(row[6]),
        counts=tuple((str(k), int(v)) for k, v in counts.items()),
        id=int(row[0]),
    )


def _app(row: Any) -> AppPassword:
    return AppPassword(
        id=int(row[0]),
        account_id=int(row[1]),
        label=str(row[2]),
        digest=str(row[3]),
        created=float(row[4]),
        revoked=bool(row[5]),
    )


def _flags(row: Any) -> AccountFlags:
    return AccountFlags(
        account_id=int(row[0]),
        locked=bool(row[1]),
        reason=str(row[2]),
        since=float(row[3]),
        epoch=int(row[4]),
    )


class SqliteAuthState:
    """Auth tables of one SQLite file."""

    def __init__(self, db: Database) -> None:
        self._db = db

    @classmethod
    async def open(cls, path: Path) -> SqliteAuthState:
        """Open (creating and migrating as needed) the auth tables of a store file."""
        path.parent.mkdir(parents=True, exist_ok=True)

        def no_effects(_: Effects) -> None:
            return None

        db = await asyncio.to_thread(Database, path, 1, no_effects)
        return cls(db)

    async def close(self) -> None:
        """Finish pending writes and close."""
        await self._db.close()

    # --- what the node re-reads -------------------------------------------------

    async def changes_since(self, seq: int, now: float) -> Changes:
        def op(conn: sqlite3.Connection) -> Changes:
            top = int(conn.execute("SELECT seq FROM auth_meta WHERE id = 1").fetchone()[0])
            if top <= seq:
                return Changes(seq=seq)
            bans: list[Ban] = []
            lifted: list[IPNetwork] = []
            ban_rows = conn.execute(
                f"SELECT {_BAN_COLUMNS}, lifted FROM auth_bans WHERE seq > ? ORDER BY seq",
                (seq,),
            ).fetchall()
            for row in ban_rows:
                if row[8] is not None:
                    lifted.append(ipaddress.ip_network(str(row[1])))
                    continue
                ban = _ban(row)
                if seq == 0 and ban.until is not None and ban.until <= now:
                    continue
                bans.append(ban)
            allowed: list[AllowEntry] = []
            disallowed: list[IPNetwork] = []
            for network, note, created, removed in conn.execute(
                "SELECT network, note, created, removed FROM auth_allow WHERE seq > ?", (seq,)
            ):
                net = ipaddress.ip_network(str(network))
                if removed:
                    disallowed.append(net)
                else:
                    allowed.append(AllowEntry(net, str(note), float(created)))
            flags = [
                _flags(r)
                for r in conn.execute(
                    "SELECT account_id, locked, reason, since, epoch FROM auth_accounts"
                    " WHERE seq > ?",
                    (seq,),
                )
            ]
            apps = [
                _app(r)
                for r in conn.execute(
                    f"SELECT {_APP_COLUMNS} FROM auth_app_passwords WHERE seq > ?", (seq,)
                )
            ]
            return Changes(top, bans, lifted, allowed, disallowed, flags, apps)

        return await self._db.read(op)

    # --- bans ---------------------------------------------------------------------

    async def add_ban(self, ban: Ban) -> Ban:
        def op(conn: sqlite3.Connection, _fx: Effects) -> Ban:
            cur = conn.execute(
                "INSERT INTO auth_bans (network, since, until, rule, reason, level, counts, seq)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    str(ban.network),
                    ban.since,
                    ban.until,
                    ban.rule,
                    ban.reason,
                    ban.level,
                    json.dumps(dict(ban.counts)),
                    _next_seq(conn),
                ),
            )
            return Ban(
                ban.network,
                ban.since,
                ban.until,
                ban.rule,
                ban.reason,
                ban.level,
                ban.counts,
                int(cur.lastrowid or 0),
            )

        return await self._db.write(op)

    async def lift_ban(self, network: IPNetwork, now: float) -> int:
        def op(conn: sqlite3.Connection, _fx: Effects) -> int:
            cur = conn.execute(
                "UPDATE auth_bans SET lifted = ?, seq = ? WHERE network = ? AND lifted IS NULL"
                " AND (until IS NULL OR until > ?)",
                (now, _next_seq(conn), str(network), now),
            )
            return cur.rowcount

        return await self._db.write(op)

    async def bans(self, now: float, *, include_ended: bool = False) -> list[Ban]:
        def op(conn: sqlite3.Connection) -> list[Ban]:
            if include_ended:
                rows = conn.execute(
                    f"SELECT {_BAN_COLUMNS} FROM auth_bans ORDER BY since DESC, id DESC"
                ).fetchall()
            else:
                rows = conn.execute(
                    f"SELECT {_BAN_COLUMNS} FROM auth_bans WHERE lifted IS NULL"
                    " AND since <= ? AND (until IS NULL OR until > ?)"
                    " ORDER BY since DESC, id DESC",
                    (now, now),
                ).fetchall()
            return [_ban(r) for r in rows]

        return await self._db.read(op)

    async def ban_history(self, since: float) -> list[Ban]:
        def op(conn: sqlite3.Connection) -> list[Ban]:
            rows = conn.execute(
                f"SELECT {_BAN_COLUMNS} FROM auth_bans WHERE since > ? AND rule != 'admin'"
                " ORDER BY since",
                (since,),
            ).fetchall()
            return [_ban(r) for r in rows]

        return await self._db.read(op)

    # --- allowlist ----------------------------------------------------------------

    async def allow(self, entry: AllowEntry) -> None:
        def op(conn: sqlite3.Connection, _fx: Effects) -> None:
            conn.execute(
                "INSERT INTO auth_allow (network, note, created, removed, seq)"
                " VALUES (?, ?, ?, 0, ?) ON CONFLICT (network) DO UPDATE SET"
                " note = excluded.note, created = excluded.created, removed = 0,"
                " seq = excluded.seq",
                (str(entry.network), entry.note, entry.created, _next_seq(conn)),
            )

        await self._db.write(op)

    async def disallow(self, network: IPNetwork) -> bool:
        def op(conn: sqlite3.Connection, _fx: Effects) -> bool:
            found = conn.execute(
                "SELECT 1 FROM auth_allow WHERE network = ? AND removed = 0", (str(network),)
            ).fetchone()
            if found is None:
                return False
            conn.execute(
                "UPDATE auth_allow SET removed = 1, seq = ? WHERE network = ?",
                (_next_seq(conn), str(network)),
            )
            return True

        return await self._db.write(op)

    async def allowlist(self) -> list[AllowEntry]:
        def op(conn: sqlite3.Connection) -> list[AllowEntry]:
            rows = conn.execute(
                "SELECT network, note, created FROM auth_allow WHERE removed = 0"
            ).fetchall()
            entries = [
                AllowEntry(ipaddress.ip_network(str(n)), str(t), float(c)) for n, t, c in rows
            ]
            entries.sort(key=lambda e: (e.network.version, e.network))
            return entries

        return await self._db.read(op)

    # --- accounts -----------------------------------------------------------------

    async def account_flags(self, account_id: int) -> AccountFlags:
        def op(conn: sqlite3.Connection) -> AccountFlags:
            row = conn.execute(
                "SELECT account_id, locked, reason, since, epoch FROM auth_accounts"
                " WHERE account_id = ?",
                (account_id,),
            ).fetchone()
            return AccountFlags(account_id) if row is None else _flags(row)

        return await self._db.read(op)

    async def set_lock(self, account_id: int, locked: bool, reason: str, now: float) -> None:
        def op(conn: sqlite3.Connection, _fx: Effects) -> None:
            conn.execute(
                "INSERT INTO auth_accounts (account_id, locked, reason, since, seq)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (account_id) DO UPDATE SET"
                " locked = excluded.locked, reason = excluded.reason, since = excluded.since,"
                " seq = excluded.seq",
                (account_id, int(locked), reason, now if locked else 0.0, _next_seq(conn)),
            )

        await self._db.write(op)

    async def bump_epoch(self, account_id: int) -> int:
        def op(conn: sqlite3.Connection, _fx: Effects) -> int:
            row = conn.execute(
                "INSERT INTO auth_accounts (account_id, epoch, seq) VALUES (?, 1, ?)"
                " ON CONFLICT (account_id) DO UPDATE SET epoch = epoch + 1, seq = excluded.seq"
                " RETURNING epoch",
                (account_id, _next_seq(conn)),
            ).fetchone()
            conn.execute("DELETE FROM auth_known WHERE account_id = ?", (account_id,))
            return int(row[0])

        return await self._db.write(op)

    # --- app passwords ------------------------------------------------------------

    async def add_app_password(
        self, account_id: int, label: str, digest: str, now: float
    ) -> AppPassword:
        def op(conn: sqlite3.Connection, _fx: Effects) -> AppPassword:
            cur = conn.execute(
                "INSERT INTO auth_app_passwords (account_id, label, digest, created, seq)"
                " VALUES (?, ?, ?, ?, ?)",
                (account_id, label, digest, now, _next_seq(conn)),
            )
            return AppPassword(int(cur.lastrowid or 0), account_id, label, digest, now)

        return await self._db.write(op)

    async def app_passwords(self, account_id: int) -> list[AppPassword]:
        def op(conn: sqlite3.Connection) -> list[AppPassword]:
            rows = conn.execute(
                f"SELECT {_APP_COLUMNS} FROM auth_app_passwords WHERE account_id = ? ORDER BY id",
                (account_id,),
            ).fetchall()
            return [_app(r) for r in rows]

        return await self._db.read(op)

    async def revoke_app_password(self, account_id: int, app_id: int) -> bool:
        def op(conn: sqlite3.Connection, _fx: Effects) -> bool:
            found = conn.execute(
                "SELECT 1 FROM auth_app_passwords WHERE id = ? AND account_id = ? AND revoked = 0",
                (app_id, account_id),
            ).fetchone()
            if found is None:
                return False
            conn.execute(
                "UPDATE auth_app_passwords SET revoked = 1, seq = ? WHERE id = ?",
                (_next_seq(conn), app_id),
            )
            return True

        return await self._db.write(op)

    # --- known clients ------------------------------------------------------------

    async def remember_known(self, clients: Sequence[KnownClient]) -> None:
        if not clients:
            return

        def op(conn: sqlite3.Connection, _fx: Effects) -> None:
            conn.executemany(
                "INSERT INTO auth_known (account_id, user_key, network, last_seen)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (account_id, network) DO UPDATE SET"
                " user_key = excluded.user_key,"
                " last_seen = max(last_seen, excluded.last_seen)",
                [(c.account_id, c.user_key, str(c.network), c.last_seen) for c in clients],
            )

        await self._db.write(op)

    async def known_clients(self, since: float, account_id: int | None = None) -> list[KnownClient]:
        def op(conn: sqlite3.Connection) -> list[KnownClient]:
            sql = (
                "SELECT account_id, user_key, network, last_seen FROM auth_known"
                " WHERE last_seen > ?"
            )
            args: tuple[object, ...] = (since,)
            if account_id is not None:
                sql += " AND account_id = ?"
                args += (account_id,)
            rows = conn.execute(sql + " ORDER BY last_seen DESC", args).fetchall()
            return [
                KnownClient(int(a), str(u), ipaddress.ip_network(str(n)), float(t))
                for a, u, n, t in rows
            ]

        return await self._db.read(op)

    async def forget_known(self, account_id: int) -> None:
        def op(conn: sqlite3.Connection, _fx: Effects) -> None:
            conn.execute("DELETE FROM auth_known WHERE account_id = ?", (account_id,))

        await self._db.write(op)

    # --- audit and statistics -----------------------------------------------------

    async def audit(self, entry: AuditEntry) -> None:
        def op(conn: sqlite3.Connection, _fx: Effects) -> None:
            conn.execute(
                "INSERT INTO auth_audit (at, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)",
                (entry.at, entry.actor, entry.action, entry.target, entry.detail),
            )

        await self._db.write(op)

    async def audit_log(self, limit: int = 100, target: str | None = None) -> list[AuditEntry]:
        def op(conn: sqlite3.Connection) -> list[AuditEntry]:
            sql = "SELECT id, at, actor, action, target, detail FROM auth_audit"
            args: tuple[object, ...] = ()
            if target is not None:
                sql += " WHERE target = ?"
                args = (target,)
            rows = conn.execute(sql + " ORDER BY id DESC LIMIT ?", (*args, limit)).fetchall()
            return [
                AuditEntry(float(at), str(actor), str(action), str(tgt), str(detail), int(i))
                for i, at, actor, action, tgt, detail in rows
            ]

        return await self._db.read(op)

    async def publish_stats(self, snapshot: StatsSnapshot) -> None:
        def op(conn: sqlite3.Connection, _fx: Effects) -> None:
            conn.execute(
                "INSERT INTO auth_stats (node, at, data) VALUES (?, ?, ?)"
                " ON CONFLICT (node) DO UPDATE SET at = excluded.at, data = excluded.data",
                (snapshot.node, snapshot.at, snapshot.data),
            )

        await self._db.write(op)

    async def stats(self) -> list[StatsSnapshot]:
        def op(conn: sqlite3.Connection) -> list[StatsSnapshot]:
            rows = conn.execute("SELECT node, at, data FROM auth_stats ORDER BY node").fetchall()
            return [StatsSnapshot(str(n), float(a), str(d)) for n, a, d in rows]

        return await self._db.read(op)
