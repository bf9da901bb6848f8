"""``mailwarden auth ...`` and ``mailwarden app-password ...``: the tools to run authentication.

The admin CLI finds this module and calls :func:`register` with its
subparsers.  Each command writes to (or reads from) the auth tables of the
store's database; a running node picks changes up within a second and
publishes its live statistics there every few seconds, which ``auth status``
shows.  Every change is written to the audit log (``auth audit``).

Exit codes follow the admin CLI: 0 done, 1 refused, 3 not found.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

from mailwarden.admin import ops
from mailwarden.auth.admin import AuthAdmin, AuthAdminError, parse_duration
from mailwarden.config import Config
from mailwarden.store.base import Store
from mailwarden.store.sqlite_auth import SqliteAuthState

__all__ = ["add_app_password_commands", "app_password_handler", "auth_handler", "register"]

EXIT_OK, EXIT_REFUSED, EXIT_NOT_FOUND, EXIT_EXISTS = 0, 1, 3, 4
_EXIT_OF_KIND = {"refused": EXIT_REFUSED, "not_found": EXIT_NOT_FOUND, "exists": EXIT_EXISTS}
# A snapshot older than this says the node is not running (it writes every 2 s).
STALE_AFTER = 15.0


def register(sub: Any) -> None:
    """Add the ``auth`` and ``app-password`` command groups to the admin CLI."""
    auth = sub.add_parser("auth", help="authentication: bans, allowlist, locks, sessions")
    actions = auth.add_subparsers(dest="action", required=True, parser_class=type(auth))
    auth.set_defaults(handler=auth_handler)

    status = actions.add_parser("status", help="live rates, queue, pool, top offenders")
    status.add_argument("--json", action="store_true")
    bans = actions.add_parser("bans", help="list bans in force")
    bans.add_argument("--all", action="store_true", help="include ended and lifted bans")
    bans.add_argument("--json", action="store_true")
    ban = actions.add_parser("ban", help="ban an address or network")
    ban.add_argument("network", help="address or network, e.g. 192.0.2.7 or 2001:db8::/48")
    ban.add_argument("--for", dest="duration", default="1d", help="90, 30m, 2h, 1d, forever")
    ban.add_argument("--reason", default="", help="note kept with the ban")
    unban = actions.add_parser("unban", help="lift the bans of exactly this network")
    unban.add_argument("network")
    allow = actions.add_parser("allow", help="allowlist a network (no network: list them)")
    allow.add_argument("network", nargs="?")
    allow.add_argument("--note", default="")
    allow.add_argument("--json", action="store_true")
    disallow = actions.add_parser("disallow", help="take a network off the allowlist")
    disallow.add_argument("network")
    lock = actions.add_parser("lock", help="refuse every login of a mailbox")
    lock.add_argument("account")
    lock.add_argument("--reason", default="")
    actions.add_parser("unlock", help="undo lock").add_argument("account")
    sessions = actions.add_parser("sessions", help="sessions, known clients, app passwords")
    sessions.add_argument("account")
    sessions.add_argument("--json", action="store_true")
    actions.add_parser(
        "revoke", help="end sessions, void device tokens, known clients and cached logins"
    ).add_argument("account")
    explain = actions.add_parser("explain", help="why an address is refused (or not)")
    explain.add_argument("address")
    explain.add_argument("--json", action="store_true")
    audit = actions.add_parser("audit", help="the log of administrative actions")
    audit.add_argument("--limit", type=int, default=50)
    audit.add_argument("--target", help="only actions on this network or mailbox")
    audit.add_argument("--json", action="store_true")

    apps = sub.add_parser("app-password", help="app passwords for IMAP, POP3 and SMTP")
    add_app_password_commands(apps)


def add_app_password_commands(parser: argparse.ArgumentParser) -> None:
    """Add ``add|list|revoke`` under ``parser`` (the lead hooks this under ``user``)."""
    actions = parser.add_subparsers(dest="app_action", required=True, parser_class=type(parser))
    parser.set_defaults(handler=app_password_handler)
    add = actions.add_parser("add", help="make an app password (shown once)")
    add.add_argument("account")
    add.add_argument("--label", default="", help="what it is for, e.g. phone")
    lst = actions.add_parser("list", help="list a mailbox's app passwords")
    lst.add_argument("account")
    lst.add_argument("--json", action="store_true")
    revoke = actions.add_parser("revoke", help="revoke one app password")
    revoke.add_argument("account")
    revoke.add_argument("id", type=int)


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):
        return "cli"


async def _with_admin(
    config: Config, needs_store: bool, action: Callable[[AuthAdmin], Awaitable[int]]
) -> int:
    state = await SqliteAuthState.open(config.sqlite_path)
    store: Store | None = None
    try:
        if needs_store:
            store = await ops.open_store(config)
        return await action(AuthAdmin(state, store, _actor()))
    finally:
        if store is not None:
            await store.close()
        await state.close()


def _run(config: Config, needs_store: bool, action: Callable[[AuthAdmin], Awaitable[int]]) -> int:
    try:
        return asyncio.run(_with_admin(config, needs_store, action))
    except AuthAdminError as exc:
        print(f"mailwarden: {exc}", file=sys.stderr)
        return _EXIT_OF_KIND.get(exc.kind, EXIT_REFUSED)


def _when(ts: float | None) -> str:
    if ts is None:
        return "never"
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(ts))


def _json(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False, default=str))


_ACCOUNT_ACTIONS = {"lock", "unlock", "sessions", "revoke"}


def auth_handler(args: argparse.Namespace, config: Config) -> int:
    """Run one ``auth`` command."""
    return _run(config, args.action in _ACCOUNT_ACTIONS, lambda admin: _auth(args, admin))


async def _auth(args: argparse.Namespace, admin: AuthAdmin) -> int:
    match args.action:
        case "status":
            return _print_status(await admin.status(), args.json)
        case "bans":
            bans = await admin.bans(include_ended=args.all)
            if args.json:
                _json(
                    [
                        {
                            "network": str(b.network),
                            "rule": b.rule,
                            "since": b.since,
                            "until": b.until,
                            "level": b.level,
                            "counts": dict(b.counts),
                            "reason": b.reason,
                        }
                        for b in bans
                    ]
                )
            elif not bans:
                print("no bans in force")
            for ban in [] if args.json else bans:
                print(ban.explain())
        case "ban":
            ban = await admin.ban(args.network, parse_duration(args.duration), args.reason)
            print(f"banned {ban.network} until {_when(ban.until)}")
        case "unban":
            await admin.unban(args.network)
            print(f"unbanned {args.network}")
        case "allow":
            if args.network is None:
                entries = await admin.allowlist()
                if args.json:
                    _json([{"network": str(e.network), "note": e.note} for e in entries])
                else:
                    for e in entries:
                        print(f"{e.network}\t{e.note}")
            else:
                entry = await admin.allow(args.network, args.note)
                print(f"allowlisted {entry.network}")
        case "disallow":
            await admin.disallow(args.network)
            print(f"removed {args.network} from the allowlist")
        case "lock":
            account = await admin.lock(args.account, args.reason)
            print(f"locked {account.address}")
        case "unlock":
            account = await admin.unlock(args.account)
            print(f"unlocked {account.address}")
        case "sessions":
            info = await admin.sessions(args.account)
            if args.json:
                _json(info)
            else:
                _print_sessions(info)
        case "revoke":
            epoch = await admin.revoke(args.account)
            print(
                f"revoked {args.account}: sessions end, device tokens, known clients and"
                f" cached logins are void (epoch {epoch})"
            )
        case "explain":
            info = await admin.explain(args.address)
            if args.json:
                _json(info)
            else:
                print(f"{info['address']}: {info['verdict']}")
                for line in info["banned_by"]:
                    print(f"  {line}")
                for net in info["allowlisted_by"]:
                    print(f"  allowlisted by {net}")
                for key, count in info["recent_failures"].items():
                    print(f"  recent failures of {key}: {count}")
        case "audit":
            log = await admin.audit_log(args.limit, args.target)
            if args.json:
                _json([_entry(e) for e in log])
            for a in [] if args.json else log:
                print(f"{_when(a.at)}\t{a.actor}\t{a.action}\t{a.target}\t{a.detail}")
    return EXIT_OK


def _entry(e: Any) -> dict[str, Any]:
    return {
        "id": e.id,
        "at": e.at,
        "actor": e.actor,
        "action": e.action,
        "target": e.target,
        "detail": e.detail,
    }


def _print_status(nodes: list[dict[str, Any]], as_json: bool) -> int:
    if as_json:
        _json(nodes)
        return EXIT_OK if nodes else EXIT_NOT_FOUND
    if not nodes:
        print("no node has published statistics yet (is `mailwarden serve` running?)")
        return EXIT_NOT_FOUND
    for data in nodes:
        age = data["age_s"]
        stale = "  (STALE: the node is not running?)" if age > STALE_AFTER else ""
        print(f"node {data['node']}: snapshot {age:.1f} s old{stale}")
        for event, rate in data["rates"].items():
            print(
                f"  {event:<10} {rate['per_s_10s']:>9.1f}/s (10 s) {rate['per_s_60s']:>9.1f}/s"
                f" (60 s)   total {rate['total']}"
            )
        pool = data["pool"]
        print(
            f"  verify pool: {pool['running']}/{pool['workers']} workers busy,"
            f" {pool['waiting']} waiting (capacity {pool['capacity']}),"
            f" {pool['evicted']} pushed out of the line"
        )
        print(f"  pre-login connections: {data['prelogin_connections']}")
        print(f"  bans in force: {data['bans_active']}")
        print(f"  sessions registered: {len(data.get('sessions', ()))}")
        for kind, rows in data["top"].items():
            listed = ", ".join(f"{key} ({count})" for key, count in rows) or "-"
            print(f"  top {kind}: {listed}")
    return EXIT_OK


def _print_sessions(info: dict[str, Any]) -> None:
    state = "LOCKED" + (f" ({info['lock_reason']})" if info["lock_reason"] else "")
    print(f"{info['account']}: {state if info['locked'] else 'not locked'}, epoch {info['epoch']}")
    print(f"  sessions ({len(info['sessions'])}):")
    for s in info["sessions"]:
        print(f"    {s['service']} from {s['peer']} since {_when(s['started'])} on {s['node']}")
    print(f"  known clients ({len(info['known_clients'])}):")
    for k in info["known_clients"]:
        print(f"    {k['network']} last seen {_when(k['last_seen'])}")
    print(f"  app passwords ({len(info['app_passwords'])}):")
    for a in info["app_passwords"]:
        print(f"    {a['id']}\t{a['label']}\tcreated {_when(a['created'])}")


def app_password_handler(args: argparse.Namespace, config: Config) -> int:
    """Run one ``app-password`` command (also reachable as ``user app-password``)."""
    return _run(config, True, lambda admin: _app_password(args, admin))


async def _app_password(args: argparse.Namespace, admin: AuthAdmin) -> int:
    match args.app_action:
        case "add":
            app, password = await admin.add_app_password(args.account, args.label)
            print(f"app password {app.id} for {args.account} (IMAP, POP3, SMTP; not webmail)")
            print(f"password: {password}")
            print("It is shown only now.")
        case "list":
            apps = await admin.app_passwords(args.account)
            if args.json:
                _json([{"id": a.id, "label": a.label, "created": a.created} for a in apps])
            else:
                for a in apps:
                    print(f"{a.id}\t{a.label}\tcreated {_when(a.created)}")
        case "revoke":
            await admin.revoke_app_password(args.account, args.id)
            print(f"revoked app password {args.id} of {args.account}")
    return EXIT_OK
