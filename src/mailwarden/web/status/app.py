"""The status page as an ASGI app (Starlette).

``create_app(service)`` serves the public page, the JSON API, the feeds and
the admin pages.  With ``run_scheduler`` the app's lifespan runs
``service.tick()`` every ``tick_interval`` (maintenance transitions, reminders,
drain, probes, outbox); tests leave it off and call ``tick`` themselves.

Every response carries a strict Content-Security-Policy: the page has no
script at all and its only stylesheet is our own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from importlib import resources
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mailwarden.web.status import admin, public
from mailwarden.web.status.rendering import make_environment
from mailwarden.web.status.service import StatusService
from mailwarden.web.status.settings import StatusSettings

log = logging.getLogger(__name__)

SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'none'; style-src 'self'; img-src 'self' data:;"
     b" form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
]  # fmt: skip


class SecurityHeaders:
    """Adds ``SECURITY_HEADERS`` to every HTTP response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + SECURITY_HEADERS
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def _scheduler(service: StatusService) -> None:
    interval = service.settings.tick_interval.total_seconds()
    while True:
        try:
            await service.tick()
        except Exception:  # the scheduler must outlive one bad tick
            log.exception("status scheduler tick failed")
        await asyncio.sleep(interval)


def create_app(service: StatusService, *, run_scheduler: bool = False) -> Starlette:
    """Build the ASGI app around an opened ``StatusService``."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(_scheduler(service)) if run_scheduler else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    static = StaticFiles(directory=str(resources.files(__package__).joinpath("static")))

    async def not_found(request: Request, exc: Exception) -> Response:
        return public.not_found(request, "Nothing here.")

    app = Starlette(
        routes=[*public.routes, *admin.routes, Mount("/static", static, name="static")],
        middleware=[Middleware(SecurityHeaders)],
        lifespan=lifespan,
        exception_handlers={404: not_found},
    )
    app.state.service = service
    app.state.templates = make_environment()
    return app


def make_app(database: str | Path, settings: StatusSettings | None = None) -> Starlette:
    """The app as the node's ``serve`` starts it: default settings, given database.

    The scheduler runs in the app's lifespan.  The database is created and
    migrated on first start.
    """
    base = settings or StatusSettings()
    service = StatusService.open(replace(base, database=Path(database)))
    return create_app(service, run_scheduler=True)
