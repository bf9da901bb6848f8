"""Building the node's auth service from the configuration (called by ``app.py``)."""

from __future__ import annotations

import asyncio

from mailwarden.auth.passwords import PasswordHasher, VerifyPool
from mailwarden.auth.policy import policy_from_config
from mailwarden.auth.service import AuthService
from mailwarden.auth.tokens import load_secret
from mailwarden.config import Config
from mailwarden.store.base import AdminStore
from mailwarden.store.sqlite_auth import SqliteAuthState

__all__ = ["open_auth_service"]


async def open_auth_service(
    config: Config, store: AdminStore, hasher: PasswordHasher, pool: VerifyPool
) -> AuthService:
    """The auth service with durable state on the store's database, started.

    Bans, the allowlist, locks, revocations and app passwords are read from
    the database (and re-read every second for the admin tools' changes); the
    device-token secret is ``<data_dir>/auth.key``.  Close it with
    :meth:`AuthService.close`, which also shuts the pool.
    """
    state = await SqliteAuthState.open(config.sqlite_path)
    try:
        secret = await asyncio.to_thread(load_secret, config.data_path)
        auth = AuthService(
            store,
            hasher,
            pool,
            policy=policy_from_config(config),
            state_store=state,
            secret=secret,
        )
        await auth.start()
    except BaseException:
        await state.close()
        raise
    return auth
