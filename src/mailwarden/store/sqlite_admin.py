"""SQL for the operator's side of the SQLite store: domains, accounts, aliases, queue.

Each function takes a connection (already inside a transaction, see
:mod:`mailwarden.store.sqlite_db`) and does one job; :mod:`.sqlite` wires them
to the async interface.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from typing import Any

from mailwarden.mail.address import Address, AddressError, domain_to_unicode, normalize_domain
from mailwarden.store.base import (
    DEFAULT_FOLDERS,
    Account,
    AccountExists,
    AccountId,
    AccountStatus,
    Alias,
    Domain,
    DomainNotEmpty,
    NotFound,
    QueuedMessage,
    QuotaUsage,
    Resolution,
)
from mailwarden.store.sqlite_db import Effects

__all__ = [
    "ACCOUNT_COLUMNS",
    "MAX_ALIAS_DEPTH",
    "account_from_row",
    "add_account",
    "add_alias",
    "add_domain",
    "addresses_of",
    "delete_account",
    "domain_row",
    "find_account",
    "list_aliases",
    "list_domains",
    "list_queue",
    "queued_from_row",
    "remove_alias",
    "remove_domain",
    "resolve_recipient",
]

# Alias chains deeper than this are treated as loops and end.
MAX_ALIAS_DEPTH = 8

ACCOUNT_COLUMNS = (
    "a.id, a.address, d.name, a.display_name, a.status, a.password_hash,"
    " a.credential_version, a.quota_bytes, a.quota_messages, a.used_bytes,"
    " a.used_messages, a.created"
)
_ACCOUNT_SELECT = f"SELECT {ACCOUNT_COLUMNS} FROM accounts a JOIN domains d ON d.id = a.domain_id"


def account_from_row(row: tuple[Any, ...]) -> Account:
    """Build an :class:`Account` from a row of ``ACCOUNT_COLUMNS``."""
    (id_, address, domain, display, status, pw, ver, qb, qm, ub, um, created) = tuple(row)
    return Account(
        id=AccountId(int(id_)),
        address=str(address),
        domain=str(domain),
        display_name=str(display),
        status=AccountStatus(str(status)),
        password_hash=str(pw),
        credential_version=int(ver),
        quota_bytes=int(qb),
        quota_messages=int(qm),
        used_bytes=int(ub),
        used_messages=int(um),
        created=int(created),
    )


def domain_row(conn: sqlite3.Connection, name: str) -> tuple[int, str, int | None]:
    """(id, A-label, alias_of id) of a domain given in either form. Raises NotFound."""
    try:
        key = normalize_domain(name)
    except AddressError:
        raise NotFound(f"no such domain: {name}") from None
    row = conn.execute("SELECT id, name, alias_of FROM domains WHERE name = ?", (key,)).fetchone()
    if row is None:
        raise NotFound(f"no such domain: {domain_to_unicode(key)}")
    return int(row[0]), str(row[1]), row[2]


def _domain_from_row(conn: sqlite3.Connection, row: tuple[Any, ...]) -> Domain:
    id_, name, alias_of, created = row
    target = None
    if alias_of is not None:
        target = conn.execute("SELECT name FROM domains WHERE id = ?", (alias_of,)).fetchone()[0]
    accounts = conn.execute("SELECT count(*) FROM accounts WHERE domain_id = ?", (id_,))
    aliases = conn.execute("SELECT count(*) FROM aliases WHERE domain_id = ?", (id_,))
    return Domain(
        id=int(id_),
        name=str(name),
        display=domain_to_unicode(str(name)),
        alias_of=target,
        accounts=int(accounts.fetchone()[0]),
        aliases=int(aliases.fetchone()[0]),
        created=int(created),
    )


def add_domain(conn: sqlite3.Connection, _fx: Effects, name: str, alias_of: str | None) -> Domain:
    """Insert a domain (see ``AdminStore.add_domain``)."""
    key = normalize_domain(name)
    target_id = None
    if alias_of is not None:
        target_id, _, target_alias = domain_row(conn, alias_of)
        if target_alias is not None:
            raise NotFound(f"{alias_of} is itself an alias domain")
    try:
        conn.execute(
            "INSERT INTO domains (name, alias_of, created) VALUES (?, ?, ?)",
            (key, target_id, int(time.time())),
        )
    except sqlite3.IntegrityError:
        raise AccountExists(f"domain {domain_to_unicode(key)} exists already") from None
    return get_domain(conn, key)


def get_domain(conn: sqlite3.Connection, name: str) -> Domain:
    """One domain. Raises NotFound."""
    id_, _, _ = domain_row(conn, name)
    row = conn.execute("SELECT id, name, alias_of, created FROM domains WHERE id = ?", (id_,))
    return _domain_from_row(conn, row.fetchone())


def list_domains(conn: sqlite3.Connection) -> list[Domain]:
    """Every domain by name."""
    rows = conn.execute("SELECT id, name, alias_of, created FROM domains ORDER BY name").fetchall()
    return [_domain_from_row(conn, row) for row in rows]


def remove_domain(conn: sqlite3.Connection, fx: Effects, name: str, force: bool) -> None:
    """Delete a domain (see ``AdminStore.remove_domain``)."""
    id_, key, _ = domain_row(conn, name)
    accounts = [r[0] for r in conn.execute("SELECT id FROM accounts WHERE domain_id = ?", (id_,))]
    aliases = conn.execute("SELECT count(*) FROM aliases WHERE domain_id = ?", (id_,)).fetchone()
    if (accounts or aliases[0]) and not force:
        raise DomainNotEmpty(
            f"domain {domain_to_unicode(key)} still has {len(accounts)} mailbox(es) and"
            f" {aliases[0]} alias(es); use --force to remove them too"
        )
    for account in accounts:
        delete_account(conn, fx, AccountId(account))
    conn.execute("DELETE FROM aliases WHERE domain_id = ?", (id_,))
    conn.execute("DELETE FROM domains WHERE alias_of = ?", (id_,))
    conn.execute("DELETE FROM domains WHERE id = ?", (id_,))


def _source_taken(conn: sqlite3.Connection, key: str) -> bool:
    if conn.execute("SELECT 1 FROM accounts WHERE address_key = ?", (key,)).fetchone():
        return True
    return conn.execute("SELECT 1 FROM aliases WHERE source_key = ?", (key,)).fetchone() is not None


def add_account(
    conn: sqlite3.Connection,
    _fx: Effects,
    address: Address,
    password_hash: str,
    display_name: str,
    quota_bytes: int,
    quota_messages: int,
    next_uidvalidity: int,
) -> Account:
    """Insert an account and its default folders."""
    domain_id, _, alias_of = domain_row(conn, address.domain)
    if alias_of is not None:
        raise NotFound(f"{address.display()}: {address.domain} is an alias domain")
    if _source_taken(conn, address.key):
        raise AccountExists(f"{address.display()} exists already")
    cur = conn.execute(
        "INSERT INTO accounts (domain_id, address, address_key, display_name, password_hash,"
        " quota_bytes, quota_messages, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            domain_id,
            str(address),
            address.key,
            display_name,
            password_hash,
            quota_bytes,
            quota_messages,
            int(time.time()),
        ),
    )
    account = AccountId(int(cur.lastrowid or 0))
    for offset, (name, special) in enumerate(DEFAULT_FOLDERS):
        conn.execute(
            "INSERT INTO folders (account_id, name, name_key, special_use, uidvalidity)"
            " VALUES (?, ?, ?, ?, ?)",
            (account, name, name, special.value if special else None, next_uidvalidity + offset),
        )
    return get_account(conn, account)


def get_account(conn: sqlite3.Connection, account: AccountId) -> Account:
    """One account by id. Raises NotFound."""
    row = conn.execute(f"{_ACCOUNT_SELECT} WHERE a.id = ?", (account,)).fetchone()
    if row is None:
        raise NotFound(f"no such account: {account}")
    return account_from_row(row)


def find_account(conn: sqlite3.Connection, address: str) -> Account | None:
    """The account of an address, following alias domains; None if there is none."""
    try:
        addr = Address.parse(address)
    except AddressError:
        return None
    row = conn.execute(f"{_ACCOUNT_SELECT} WHERE a.address_key = ?", (addr.key,)).fetchone()
    if row is not None:
        return account_from_row(row)
    target = conn.execute(
        "SELECT t.name FROM domains d JOIN domains t ON t.id = d.alias_of WHERE d.name = ?",
        (addr.domain,),
    ).fetchone()
    if target is None:
        return None
    key = f"{addr.local.lower()}@{target[0]}"
    row = conn.execute(f"{_ACCOUNT_SELECT} WHERE a.address_key = ?", (key,)).fetchone()
    return account_from_row(row) if row is not None else None


def list_accounts(conn: sqlite3.Connection, domain: str | None) -> list[Account]:
    """Accounts by address, optionally of one domain."""
    if domain is None:
        rows = conn.execute(f"{_ACCOUNT_SELECT} ORDER BY d.name, a.address_key").fetchall()
    else:
        domain_id, _, _ = domain_row(conn, domain)
        rows = conn.execute(
            f"{_ACCOUNT_SELECT} WHERE a.domain_id = ? ORDER BY a.address_key", (domain_id,)
        ).fetchall()
    return [account_from_row(row) for row in rows]


def delete_account(conn: sqlite3.Connection, fx: Effects, account: AccountId) -> None:
    """Delete an account, its folders and entries; release blobs no longer referenced."""
    get_account(conn, account)
    rows = conn.execute(
        "SELECT e.message_id, count(*) FROM entries e JOIN folders f ON f.id = e.folder_id"
        " WHERE f.account_id = ? GROUP BY e.message_id",
        (account,),
    ).fetchall()
    conn.execute("DELETE FROM folders WHERE account_id = ?", (account,))
    release_messages(conn, fx, {int(m): int(n) for m, n in rows})
    conn.execute("DELETE FROM accounts WHERE id = ?", (account,))


def release_messages(conn: sqlite3.Connection, fx: Effects, counts: dict[int, int]) -> None:
    """Drop references to messages; delete rows (and later blobs) that reach zero."""
    for message_id, count in counts.items():
        conn.execute("UPDATE messages SET refs = refs - ? WHERE id = ?", (count, message_id))
    if not counts:
        return
    marks = ",".join("?" * len(counts))
    dead = conn.execute(
        f"SELECT id, blob FROM messages WHERE refs <= 0 AND id IN ({marks})",
        tuple(counts),
    ).fetchall()
    for message_id, blob in dead:
        conn.execute("DELETE FROM messages WHERE id = ?", (message_id,))  # cascades inline data
        fx.delete_blobs.append(str(blob))  # files only; inline names are skipped


def _alias_key(source: str) -> tuple[str, str]:
    """(source key, domain) of ``local@domain`` or ``@domain``."""
    text = source.strip()
    if text.startswith("@"):
        domain = normalize_domain(text[1:])
        return f"@{domain}", domain
    addr = Address.parse(text)
    return addr.key, addr.domain


def add_alias(conn: sqlite3.Connection, _fx: Effects, source: str, targets: Sequence[str]) -> Alias:
    """Insert an alias (see ``AdminStore.add_alias``)."""
    key, domain = _alias_key(source)
    domain_id, _, _ = domain_row(conn, domain)
    if not targets:
        raise AddressError("an alias needs at least one target")
    clean = tuple(dict.fromkeys(str(Address.parse(t)) for t in targets))
    if _source_taken(conn, key):
        raise AccountExists(f"{source} exists already as a mailbox or alias")
    conn.execute(
        "INSERT INTO aliases (domain_id, source_key, targets) VALUES (?, ?, ?)",
        (domain_id, key, "\n".join(clean)),
    )
    return Alias(key, clean)


def list_aliases(conn: sqlite3.Connection, domain: str | None) -> list[Alias]:
    """Aliases by source, optionally of one domain."""
    if domain is None:
        rows = conn.execute("SELECT source_key, targets FROM aliases ORDER BY source_key")
    else:
        domain_id, _, _ = domain_row(conn, domain)
        rows = conn.execute(
            "SELECT source_key, targets FROM aliases WHERE domain_id = ? ORDER BY source_key",
            (domain_id,),
        )
    return [Alias(str(s), tuple(str(t).split("\n"))) for s, t in rows.fetchall()]


def remove_alias(conn: sqlite3.Connection, _fx: Effects, source: str) -> None:
    """Delete an alias. Raises NotFound."""
    try:
        key, _ = _alias_key(source)
    except AddressError:
        raise NotFound(f"no such alias: {source}") from None
    if conn.execute("DELETE FROM aliases WHERE source_key = ?", (key,)).rowcount == 0:
        raise NotFound(f"no such alias: {source}")


def _hosted(conn: sqlite3.Connection, domain: str) -> tuple[bool, str]:
    """Whether ``domain`` is ours, and the domain whose mailboxes it maps to."""
    row = conn.execute(
        "SELECT d.name, t.name FROM domains d LEFT JOIN domains t ON t.id = d.alias_of"
        " WHERE d.name = ?",
        (domain,),
    ).fetchone()
    if row is None:
        return False, domain
    return True, str(row[1] or row[0])


def resolve_recipient(conn: sqlite3.Connection, address: Address) -> Resolution:
    """Expand a recipient (see ``AdminStore.resolve_recipient``)."""
    hosted, _ = _hosted(conn, address.domain)
    if not hosted:
        return Resolution(hosted=False)
    accounts: dict[AccountId, None] = {}
    external: dict[str, None] = {}
    _expand(conn, address, 0, accounts, external, set())
    quotas = tuple(
        QuotaUsage(
            *conn.execute(
                "SELECT used_bytes, quota_bytes, used_messages, quota_messages FROM accounts"
                " WHERE id = ?",
                (account,),
            ).fetchone()
        )
        for account in accounts
    )
    return Resolution(True, tuple(accounts), tuple(external), quotas)


def _expand(
    conn: sqlite3.Connection,
    address: Address,
    depth: int,
    accounts: dict[AccountId, None],
    external: dict[str, None],
    seen: set[str],
) -> None:
    if depth > MAX_ALIAS_DEPTH or address.key in seen:
        return
    seen.add(address.key)
    hosted, mapped = _hosted(conn, address.domain)
    if not hosted:
        external[str(address)] = None
        return
    key = f"{address.local.lower()}@{mapped}"
    row = conn.execute("SELECT id, status FROM accounts WHERE address_key = ?", (key,)).fetchone()
    if row is not None:
        if row[1] == AccountStatus.ACTIVE.value:
            accounts[AccountId(int(row[0]))] = None
        return
    alias = conn.execute("SELECT targets FROM aliases WHERE source_key = ?", (key,)).fetchone()
    if alias is None:
        alias = conn.execute(
            "SELECT targets FROM aliases WHERE source_key = ?", (f"@{mapped}",)
        ).fetchone()
    if alias is None:
        return
    for target in str(alias[0]).split("\n"):
        try:
            _expand(conn, Address.parse(target), depth + 1, accounts, external, seen)
        except AddressError:
            continue


def addresses_of(conn: sqlite3.Connection, account: AccountId) -> list[str]:
    """The account's own address plus aliases (not catch-alls) that reach only it."""
    own = get_account(conn, account)
    result = [own.address]
    domains = [own.domain] + [
        str(r[0])
        for r in conn.execute(
            "SELECT d.name FROM domains d JOIN domains t ON t.id = d.alias_of WHERE t.name = ?",
            (own.domain,),
        )
    ]
    local = own.address.rsplit("@", 1)[0]
    result += [f"{local}@{d}" for d in domains[1:]]
    for (source,) in conn.execute(
        "SELECT source_key FROM aliases WHERE source_key NOT LIKE '@%' ORDER BY source_key"
    ).fetchall():
        res = resolve_recipient(conn, Address.parse(str(source)))
        if res.accounts == (account,) and not res.external:
            result.append(str(source))
    return result


def queued_from_row(row: tuple[Any, ...]) -> QueuedMessage:
    """Build a :class:`QueuedMessage` from a queue row."""
    id_, account, mail_from, rcpts, size, created, nxt, attempts, err, dsn = row
    return QueuedMessage(
        id=int(id_),
        account_id=AccountId(int(account)) if account is not None else None,
        mail_from=str(mail_from),
        recipients=tuple(str(rcpts).split("\n")),
        size=int(size),
        created=int(created),
        next_attempt=int(nxt),
        attempts=int(attempts),
        last_error=str(err),
        dsn=str(dsn),
    )


QUEUE_COLUMNS = (
    "id, account_id, mail_from, recipients, size, created, next_attempt, attempts, last_error, dsn"
)


def list_queue(conn: sqlite3.Connection) -> list[QueuedMessage]:
    """The outbound queue, oldest first."""
    rows = conn.execute(f"SELECT {QUEUE_COLUMNS} FROM outbound_queue ORDER BY id").fetchall()
    return [queued_from_row(row) for row in rows]
