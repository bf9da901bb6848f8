"""The ``mailwarden`` command: run the node and manage domains, mailboxes and aliases.

Exit codes a script can rely on:

====  ==========================================================
0     done
1     refused: invalid input or an operation that cannot be done
2     usage error (unknown command or option)
3     not found (domain, mailbox, alias)
4     already exists
5     conflict: the domain still has mailboxes (use ``--force``)
78    configuration error
====  ==========================================================

Errors are one line on stderr, never a traceback.  Passwords come from a
prompt or from standard input (``--password-stdin``), never from argv.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NoReturn

from mailwarden.admin import ops
from mailwarden.admin.drain import DrainSwitch
from mailwarden.admin.tokens import AdminTokens
from mailwarden.auth.passwords import PasswordHasher
from mailwarden.config import Config, ConfigError, load_config, sample_config
from mailwarden.mail.address import AddressError
from mailwarden.store.base import (
    AccountExists,
    AccountStatus,
    DomainNotEmpty,
    InvalidFolderName,
    NotFound,
    Store,
    StoreError,
)

__all__ = ["main"]

EXIT_OK, EXIT_REFUSED, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_EXISTS, EXIT_CONFLICT = 0, 1, 2, 3, 4, 5
EXIT_CONFIG = 78

# Extra command groups registered by other packages: (module, function name).
_PLUGINS = (
    ("mailwarden.admin.status_cli", "register"),
    ("mailwarden.delivery.queue_cli", "register"),
    ("mailwarden.auth.cli", "register"),
)


class CliError(Exception):
    """A failure to report on one line with an exit code."""

    def __init__(self, message: str, code: int = EXIT_REFUSED) -> None:
        super().__init__(message)
        self.code = code


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The whole command tree."""
    parser = _Parser(
        prog="mailwarden",
        description="Hosted email that keeps serving while under attack.",
        epilog="Exit codes: 0 ok, 1 refused, 2 usage, 3 not found, 4 exists, 5 conflict,"
        " 78 configuration.",
    )
    parser.add_argument("--config", metavar="FILE", help="TOML configuration file")
    parser.add_argument("--data-dir", metavar="DIR", help="data directory (default ./var)")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    sub.add_parser("init", help="create the data directory, certificate and demo mailbox")
    serve = sub.add_parser("serve", help="run every service (initialises on first start)")
    serve.add_argument("--no-status", action="store_true", help="do not run the status page")

    config = sub.add_parser("config", help="configuration").add_subparsers(
        dest="action", required=True, parser_class=_Parser
    )
    config.add_parser("sample", help="print an annotated sample configuration")
    config.add_parser("check", help="validate the configuration and exit")

    drain = sub.add_parser("drain", help="refuse new sessions while current ones finish")
    drain.add_argument("switch", choices=("on", "off", "status"))
    drain.add_argument("--reason", default="maintenance", help="shown in logs and status")
    drain.add_argument(
        "--retry-after", type=int, default=300, help="seconds clients are told to wait"
    )

    token = sub.add_parser("admin-token", help="bearer tokens for the admin API")
    token_sub = token.add_subparsers(dest="action", required=True, parser_class=_Parser)
    token_sub.add_parser("create", help="make a token (shown once)").add_argument("name")
    token_sub.add_parser("list", help="list token names")
    token_sub.add_parser("revoke", help="delete a token").add_argument("name")

    _domain_commands(sub)
    _user_commands(sub)
    _alias_commands(sub)
    for module_name, function in _PLUGINS:
        try:
            module = __import__(module_name, fromlist=[function])
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        getattr(module, function)(sub)
    return parser


def _domain_commands(sub: Any) -> None:
    domain = sub.add_parser("domain", help="hosted domains").add_subparsers(
        dest="action", required=True, parser_class=_Parser
    )
    add = domain.add_parser("add", help="host a domain")
    add.add_argument("name")
    add.add_argument("--alias-of", metavar="DOMAIN", help="make it an alias of a hosted domain")
    lst = domain.add_parser("list", help="list domains")
    lst.add_argument("--json", action="store_true")
    show = domain.add_parser("show", help="show one domain")
    show.add_argument("name")
    show.add_argument("--json", action="store_true")
    rm = domain.add_parser("remove", help="stop hosting a domain")
    rm.add_argument("name")
    rm.add_argument("--force", action="store_true", help="also remove its mailboxes and mail")


def _password_option(parser: argparse.ArgumentParser, generate: bool) -> None:
    parser.add_argument(
        "--password-stdin", action="store_true", help="read the password from standard input"
    )
    if generate:
        parser.add_argument(
            "--generate-password", action="store_true", help="make a random password and print it"
        )


def _user_commands(sub: Any) -> None:
    user = sub.add_parser("user", help="mailboxes").add_subparsers(
        dest="action", required=True, parser_class=_Parser
    )
    add = user.add_parser("add", help="create a mailbox")
    add.add_argument("address")
    add.add_argument("--name", default="", help="display name")
    add.add_argument("--quota", default="0", help="byte quota, e.g. 2G (0: unlimited)")
    add.add_argument("--quota-messages", type=int, default=0, help="message quota (0: none)")
    _password_option(add, generate=True)
    lst = user.add_parser("list", help="list mailboxes")
    lst.add_argument("--domain")
    lst.add_argument("--json", action="store_true")
    show = user.add_parser("show", help="show one mailbox")
    show.add_argument("address")
    show.add_argument("--json", action="store_true")
    passwd = user.add_parser("passwd", help="set a mailbox's password")
    passwd.add_argument("address")
    _password_option(passwd, generate=True)
    quota = user.add_parser("quota", help="set a mailbox's quota")
    quota.add_argument("address")
    quota.add_argument("--bytes", dest="quota", help="byte quota, e.g. 2G (0: unlimited)")
    quota.add_argument("--messages", dest="quota_messages", type=int, help="message quota")
    for action, text in (("suspend", "refuse logins and mail"), ("resume", "undo suspend")):
        user.add_parser(action, help=text).add_argument("address")
    rm = user.add_parser("remove", help="delete a mailbox and its mail")
    rm.add_argument("address")
    from mailwarden.auth.cli import add_app_password_commands

    add_app_password_commands(
        user.add_parser("app-password", help="app passwords for IMAP, POP3 and SMTP")
    )


def _alias_commands(sub: Any) -> None:
    alias = sub.add_parser("alias", help="aliases and catch-alls").add_subparsers(
        dest="action", required=True, parser_class=_Parser
    )
    add = alias.add_parser("add", help="add an alias (source @domain for a catch-all)")
    add.add_argument("source")
    add.add_argument("targets", nargs="+")
    lst = alias.add_parser("list", help="list aliases")
    lst.add_argument("--domain")
    lst.add_argument("--json", action="store_true")
    rm = alias.add_parser("remove", help="remove an alias")
    rm.add_argument("source")


# --- running commands ---------------------------------------------------------


def _read_password(args: argparse.Namespace, *, confirm: bool = True) -> tuple[str, bool]:
    """Return (password, generated)."""
    if getattr(args, "generate_password", False):
        return ops.generate_password(), True
    if args.password_stdin:
        line = sys.stdin.readline()
        password = line.removesuffix("\n").removesuffix("\r")
        if not password:
            raise CliError("no password on standard input")
        return password, False
    if not sys.stdin.isatty():
        raise CliError("no terminal to ask for a password: use --password-stdin")
    password = getpass.getpass("Password: ")
    if confirm and getpass.getpass("Again: ") != password:
        raise CliError("the passwords differ")
    return password, False


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, ensure_ascii=False))


async def _with_store(config: Config, action: Callable[[Store], Awaitable[int]]) -> int:
    store = await ops.open_store(config)
    try:
        return await action(store)
    finally:
        await store.close()


def _hasher(config: Config) -> PasswordHasher:
    return PasswordHasher(ops.hash_params(config))


async def _domain(args: argparse.Namespace, config: Config, store: Store) -> int:
    if args.action == "add":
        domain = await store.add_domain(args.name, alias_of=args.alias_of)
        print(f"added domain {domain.display}")
    elif args.action == "list":
        domains = await store.list_domains()
        if args.json:
            _print_json([ops.domain_dict(d) for d in domains])
        for d in [] if args.json else domains:
            extra = f" (alias of {d.alias_of})" if d.alias_of else ""
            print(f"{d.display}\t{d.accounts} mailbox(es)\t{d.aliases} alias(es){extra}")
    elif args.action == "show":
        info = ops.domain_dict(await store.get_domain(args.name))
        if args.json:
            _print_json(info)
        else:
            for key, value in info.items():
                print(f"{key}: {value}")
    elif args.action == "remove":
        await store.remove_domain(args.name, force=args.force)
        print(f"removed domain {args.name}")
    return EXIT_OK


async def _user(args: argparse.Namespace, config: Config, store: Store) -> int:
    if args.action == "list":
        accounts = await store.list_accounts(args.domain)
        if args.json:
            _print_json([ops.account_dict(a) for a in accounts])
        else:
            for a in accounts:
                info = ops.account_dict(a)
                print(f"{info['address']}\t{info['status']}\t{info['used_messages']} message(s)")
        return EXIT_OK
    if args.action == "add":
        password, generated = _read_password(args)
        account = await ops.add_user(
            store,
            _hasher(config),
            args.address,
            password,
            display_name=args.name,
            quota_bytes=ops.parse_size(args.quota),
            quota_messages=args.quota_messages,
        )
        print(f"added mailbox {ops.account_dict(account)['address']}")
        if generated:
            print(f"password: {password}")
        return EXIT_OK
    account = await ops.require_account(store, args.address)
    if args.action == "show":
        info = ops.account_dict(account)
        if args.json:
            _print_json(info)
        else:
            for key, value in info.items():
                print(f"{key}: {value}")
    elif args.action == "passwd":
        password, generated = _read_password(args)
        await ops.change_password(store, _hasher(config), account, password)
        print(f"password changed for {args.address}")
        if generated:
            print(f"password: {password}")
    elif args.action == "quota":
        if args.quota is None and args.quota_messages is None:
            raise CliError("give --bytes and/or --messages")
        quota_bytes = account.quota_bytes if args.quota is None else ops.parse_size(args.quota)
        messages = account.quota_messages if args.quota_messages is None else args.quota_messages
        if messages < 0:
            raise CliError("the message quota cannot be negative")
        await store.set_quota(account.id, quota_bytes=quota_bytes, quota_messages=messages)
        print(f"quota of {args.address}: {quota_bytes} bytes, {messages} messages (0: none)")
    elif args.action in ("suspend", "resume"):
        status = AccountStatus.SUSPENDED if args.action == "suspend" else AccountStatus.ACTIVE
        await store.set_status(account.id, status)
        print(f"{args.address} is {status.value}")
    elif args.action == "remove":
        await store.remove_account(account.id)
        print(f"removed mailbox {args.address}")
    return EXIT_OK


async def _alias(args: argparse.Namespace, config: Config, store: Store) -> int:
    if args.action == "add":
        alias = await store.add_alias(args.source, args.targets)
        print(f"added alias {alias.source} -> {', '.join(alias.targets)}")
    elif args.action == "list":
        aliases = await store.list_aliases(args.domain)
        if args.json:
            _print_json([ops.alias_dict(a) for a in aliases])
        else:
            for a in aliases:
                print(f"{a.source}\t{', '.join(a.targets)}")
    elif args.action == "remove":
        await store.remove_alias(args.source)
        print(f"removed alias {args.source}")
    return EXIT_OK


_STORE_COMMANDS = {"domain": _domain, "user": _user, "alias": _alias}


def load(args: argparse.Namespace) -> Config:
    """The configuration named by the global options."""
    overrides = {"data_dir": args.data_dir} if args.data_dir else {}
    return load_config(args.config, overrides=overrides)


def run(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the command; return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "config" and args.action == "sample":
            print(sample_config())
            return EXIT_OK
        config = load(args)
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
        if args.command == "config":
            print("configuration is valid")
            return EXIT_OK
        if args.command == "init":
            return asyncio.run(_init(config))
        if args.command == "drain":
            return _drain(args, config)
        if args.command == "admin-token":
            return _admin_token(args, config)
        if args.command == "serve":
            from mailwarden.app import serve

            return serve(config, with_status=not args.no_status)
        handler = getattr(args, "handler", None)
        if handler is not None:  # command groups of other packages (and user app-password)
            return int(handler(args, config) or 0)
        if args.command in _STORE_COMMANDS:
            command = _STORE_COMMANDS[args.command]
            return asyncio.run(_with_store(config, lambda s: command(args, config, s)))
        parser.error(f"unknown command {args.command}")
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"mailwarden: config: {problem}", file=sys.stderr)
        return EXIT_CONFIG
    except CliError as exc:
        print(f"mailwarden: {exc}", file=sys.stderr)
        return exc.code
    except ops.AdminError as exc:
        code = EXIT_NOT_FOUND if str(exc).startswith("no such") else EXIT_REFUSED
        print(f"mailwarden: {exc}", file=sys.stderr)
        return code
    except (AddressError, InvalidFolderName) as exc:
        print(f"mailwarden: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except NotFound as exc:
        print(f"mailwarden: {exc}", file=sys.stderr)
        return EXIT_NOT_FOUND
    except AccountExists as exc:
        print(f"mailwarden: {exc}", file=sys.stderr)
        return EXIT_EXISTS
    except DomainNotEmpty as exc:
        print(f"mailwarden: {exc}", file=sys.stderr)
        return EXIT_CONFLICT
    except StoreError as exc:
        print(f"mailwarden: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    except KeyboardInterrupt:
        return 130


def _admin_token(args: argparse.Namespace, config: Config) -> int:
    tokens = AdminTokens(config.data_path)
    if args.action == "create":
        config.data_path.mkdir(parents=True, exist_ok=True)
        try:
            token = tokens.create(args.name)
        except ValueError as exc:
            raise CliError(
                str(exc), EXIT_EXISTS if "exists" in str(exc) else EXIT_REFUSED
            ) from None
        print(f"token {args.name} (shown only once): {token}")
    elif args.action == "list":
        for name in tokens.names():
            print(name)
    elif not tokens.revoke(args.name):
        raise CliError(f"no such token: {args.name}", EXIT_NOT_FOUND)
    else:
        print(f"revoked token {args.name}")
    return EXIT_OK


def _drain(args: argparse.Namespace, config: Config) -> int:
    switch = DrainSwitch(config.data_path)
    if args.switch == "on":
        if args.retry_after < 1:
            raise CliError("--retry-after must be at least 1 second")
        config.data_path.mkdir(parents=True, exist_ok=True)
        switch.turn_on(args.reason, args.retry_after)
    elif args.switch == "off":
        switch.turn_off()
    state = switch.read()
    if state.active:
        print(
            f"draining since {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(state.since))}"
            f" ({state.reason}); clients retry after {state.retry_after}s"
        )
    else:
        print("accepting new sessions")
    return EXIT_OK


async def _init(config: Config) -> int:
    result = await ops.init_data_dir(config)
    if result.created:
        print_demo_credentials(result.demo_password or "")
    else:
        print(f"{config.data_path} is already initialised")
    return EXIT_OK


def print_demo_credentials(password: str) -> None:
    """Show the demo mailbox's password (once, when it is created)."""
    print("Created the demo domain and mailbox (this password is shown only once):")
    print(f"  user:     {ops.DEMO_ADDRESS}")
    print(f"  password: {password}")


def main() -> int:
    """Console-script entry point."""
    return run()
