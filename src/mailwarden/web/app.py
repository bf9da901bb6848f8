"""The node's HTTP app on the web port: health, readiness and Prometheus metrics.

Webmail and the admin API mount here as they are built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route

from mailwarden.web.admin_api import make_admin_api

if TYPE_CHECKING:
    from mailwarden.app import Node

__all__ = ["make_app"]


def make_app(node: Node) -> Starlette:
    """Build the web app for a running node."""

    async def healthz(_: Request) -> Response:
        return PlainTextResponse("ok\n")

    async def readyz(_: Request) -> Response:
        if node.draining:
            return JSONResponse(
                {"ready": False, "reason": "draining"},
                status_code=503,
                headers={"Retry-After": "60"},
            )
        try:
            await node.store.list_domains()
        except Exception:  # noqa: BLE001 - readiness reports, never raises
            return JSONResponse({"ready": False, "reason": "store"}, status_code=503)
        return JSONResponse({"ready": True})

    async def metrics(_: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[
            Route("/healthz", healthz),
            Route("/readyz", readyz),
            Route("/metrics", metrics),
            Mount("/api/admin", app=make_admin_api(node)),
        ]
    )
