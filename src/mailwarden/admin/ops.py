"""Operations shared by the admin CLI and the admin API.

Each function does one operator task on a store and returns plain data, so the
CLI can print it (or JSON) and the API can serialise it.  Errors are the
store's domain errors plus :class:`AdminError`; both carry texts fit for an
operator.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from typing import Any

from mailwarden.auth.passwords import HashParams, PasswordHasher
from mailwarden.config import Config
from mailwarden.mail.address import Address, domain_to_unicode
from mailwarden.store.base import Account, Alias, Domain, Store
from mailwarden.store.sqlite import SqliteStore
from mailwarden.tlscert import make_self_signed

__all__ = [
    "DEMO_ADDRESS",
    "DEMO_DOMAIN",
    "AdminError",
    "InitResult",
    "account_dict",
    "add_user",
    "alias_dict",
    "change_password",
    "check_password",
    "domain_dict",
    "generate_password",
    "hash_params",
    "init_data_dir",
    "open_store",
    "parse_size",
    "require_account",
]

DEMO_DOMAIN = "example.test"
DEMO_ADDRESS = "demo@example.test"
MIN_PASSWORD = 8


class AdminError(Exception):
    """An operator request that cannot be done; the text says why."""


def hash_params(config: Config) -> HashParams:
    """The argon2id parameters of a configuration."""
    return HashParams(
        config.auth.argon2_memory_kib, config.auth.argon2_time_cost, config.auth.argon2_parallelism
    )


async def open_store(config: Config) -> Store:
    """Open the configured store (creating and migrating it if needed)."""
    return await SqliteStore.open(
        config.sqlite_path, config.blob_path, readers=config.store.readers
    )


def generate_password() -> str:
    """A random password of about 96 bits, easy to copy."""
    return secrets.token_urlsafe(12)


def check_password(password: str) -> None:
    """Refuse passwords that are too short or span lines."""
    if len(password) < MIN_PASSWORD:
        raise AdminError(f"passwords need at least {MIN_PASSWORD} characters")
    if any(c in password for c in "\r\n\0"):
        raise AdminError("passwords cannot contain line breaks or NUL")


async def add_user(
    store: Store,
    hasher: PasswordHasher,
    address: str,
    password: str,
    *,
    display_name: str = "",
    quota_bytes: int = 0,
    quota_messages: int = 0,
) -> Account:
    """Create a mailbox with an argon2id password."""
    check_password(password)
    addr = Address.parse(address)
    password_hash = await asyncio.to_thread(hasher.hash, password)
    return await store.add_account(
        addr,
        password_hash,
        display_name=display_name,
        quota_bytes=quota_bytes,
        quota_messages=quota_messages,
    )


async def change_password(
    store: Store, hasher: PasswordHasher, account: Account, password: str
) -> Account:
    """Set a new password (which invalidates cached logins)."""
    check_password(password)
    password_hash = await asyncio.to_thread(hasher.hash, password)
    return await store.set_password_hash(account.id, password_hash)


async def require_account(store: Store, address: str) -> Account:
    """The account of ``address`` or AdminError."""
    account = await store.find_account(address)
    if account is None:
        raise AdminError(f"no such mailbox: {address}")
    return account


@dataclass(frozen=True, slots=True)
class InitResult:
    """What ``init`` did: whether it created the demo mailbox, and its password."""

    created: bool
    demo_password: str | None


async def init_data_dir(config: Config, *, demo: bool = True) -> InitResult:
    """Create the data directory, certificate, database and demo mailbox if missing.

    Idempotent: an initialised directory is left as it is.  The demo password is
    returned only when the mailbox is created now, so it is shown once.
    """
    data = config.data_path
    data.mkdir(parents=True, exist_ok=True)
    data.chmod(0o700)
    if not config.cert_path.exists() or not config.key_path.exists():
        if config.tls.cert_file or config.tls.key_file:
            raise AdminError(f"TLS files not found: {config.cert_path}, {config.key_path}")
        await asyncio.to_thread(
            make_self_signed, config.cert_path, config.key_path, config.hostname
        )
    store = await open_store(config)
    try:
        if not demo or await store.list_domains():
            return InitResult(False, None)
        await store.add_domain(DEMO_DOMAIN)
        password = generate_password()
        hasher = PasswordHasher(hash_params(config))
        await add_user(store, hasher, DEMO_ADDRESS, password, display_name="Demo User")
        return InitResult(True, password)
    finally:
        await store.close()


def parse_size(text: str) -> int:
    """Parse ``1048576``, ``500K``, ``100M``, ``2G`` (binary units); 0 means unlimited."""
    units = {"K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}
    value = text.strip().upper().removesuffix("B").removesuffix("I")
    factor = 1
    if value and value[-1] in units:
        factor = units[value[-1]]
        value = value[:-1]
    try:
        number = float(value)
    except ValueError:
        raise AdminError(f"not a size: {text!r} (use e.g. 500M or 2G)") from None
    if number < 0:
        raise AdminError("sizes cannot be negative")
    return int(number * factor)


def domain_dict(domain: Domain) -> dict[str, Any]:
    """A domain as JSON-ready data."""
    return {
        "name": domain.display,
        "ascii": domain.name,
        "alias_of": domain_to_unicode(domain.alias_of) if domain.alias_of else None,
        "mailboxes": domain.accounts,
        "aliases": domain.aliases,
        "created": domain.created,
    }


def account_dict(account: Account) -> dict[str, Any]:
    """An account as JSON-ready data (never the password hash)."""
    local, _, domain = account.address.rpartition("@")
    return {
        "address": f"{local}@{domain_to_unicode(domain)}",
        "display_name": account.display_name,
        "status": account.status.value,
        "quota_bytes": account.quota_bytes,
        "quota_messages": account.quota_messages,
        "used_bytes": account.used_bytes,
        "used_messages": account.used_messages,
        "created": account.created,
    }


def alias_dict(alias: Alias) -> dict[str, Any]:
    """An alias as JSON-ready data."""
    return {"source": alias.source, "targets": list(alias.targets)}
