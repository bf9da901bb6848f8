"""The node's HTTP app on the web port: health, readiness, metrics and the webmail.

Routes are matched in order: ``/healthz``, ``/readyz`` and ``/metrics`` first,
then the admin API under ``/api/admin``, and the webmail takes everything else
(``/``, ``/login``, ``/mail/...``) behind :class:`WebmailGate`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from mailwarden.delivery import Delivery, SendingLimits
from mailwarden.web.admin_api import make_admin_api
from mailwarden.web.webmail import WebmailDeps, make_webmail
from mailwarden.web.webmail.core import SESSION_COOKIE
from mailwarden.web.webmail.prefs import SqlitePrefs
from mailwarden.web.webmail.send import DeliverySubmitter
from mailwarden.web.webmail.sessions import MemorySessions

if TYPE_CHECKING:
    from mailwarden.app import Node

__all__ = ["ADMIN_API_PREFIX", "make_app", "webmail_deps"]

ADMIN_API_PREFIX = "/api/admin"


def webmail_deps(node: Node) -> WebmailDeps:
    """The webmail's dependencies for a node: sessions, preferences, submission.

    Sending uses the node's delivery rules and the node's one
    ``SendingLimits``, shared with SMTP submission: one allowance in total.
    """
    web = node.config.web
    sub = node.config.submission
    return WebmailDeps(
        store=node.store,
        auth=node.auth,
        sessions=MemorySessions(idle=web.session_hours * 3600.0),
        prefs=SqlitePrefs(node.config.data_path / "webmail.db"),
        submitter=DeliverySubmitter(
            node.store,
            Delivery(node.store, node.config.hostname, postmaster=node.config.postmaster),
            node.context.sending_limits
            or SendingLimits(sub.max_messages_per_hour, sub.max_messages_per_day),
            max_recipients=sub.max_recipients,
        ),
        hostname=node.config.hostname,
        secure_cookies=web.secure_cookies,
    )


class WebmailGate:
    """Counts webmail requests for the traffic profile and drains new sessions.

    While the node drains, a request without a webmail session (the login page,
    a login attempt) gets ``503`` with ``Retry-After``; users already logged in
    carry on (issue 7: current sessions finish).
    """

    def __init__(self, app: ASGIApp, node: Node) -> None:
        self.app = app
        self.node = node

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.node.traffic.count("webmail_requests")
            if self.node.draining and SESSION_COOKIE not in Request(scope).cookies:
                retry = self.node.drain.state().retry_after
                response = PlainTextResponse(
                    "Webmail is down for maintenance; please try again shortly.\n",
                    status_code=503,
                    headers={"Retry-After": str(retry)},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def make_app(node: Node, deps: WebmailDeps | None = None) -> Starlette:
    """Build the web app for a running node (``deps`` lets tests bring their own)."""

    async def healthz(_: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def readyz(_: Request) -> Response:
        if node.draining:
            return JSONResponse(
                {"ready": False, "reason": "draining"},
                status_code=503,
                headers={"Retry-After": str(node.drain.state().retry_after)},
            )
        try:
            await node.store.list_domains()
        except Exception:  # noqa: BLE001 - readiness reports, never raises
            return JSONResponse({"ready": False, "reason": "store"}, status_code=503)
        return JSONResponse({"ready": True})

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    webmail = make_webmail(deps or webmail_deps(node))
    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics),
            Mount(ADMIN_API_PREFIX, app=make_admin_api(node)),
            Mount("", app=WebmailGate(webmail, node)),
        ]
    )
