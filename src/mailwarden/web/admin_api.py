"""The node's admin API under ``/api/admin`` (bearer tokens from ``mailwarden admin-token``).

What the status service and operators' tools need from a node without a shell:

* ``GET  /api/admin/drain`` and ``POST /api/admin/drain`` ``{"drain": bool,
  "reason": str, "retry_after": int}`` — maintenance drain (idempotent);
* ``GET  /api/admin/traffic-profile`` — the hour-of-week profile
  (format in :mod:`mailwarden.web.status.traffic`);
* ``GET  /api/admin/domains`` and ``GET /api/admin/users?domain=`` — listings,
  shaped like the CLI's ``--json`` output.

Every answer is JSON; errors are ``{"error": "..."}`` with a 4xx status.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mailwarden.admin import ops
from mailwarden.store.base import NotFound

if TYPE_CHECKING:
    from mailwarden.app import Node

__all__ = ["make_admin_api"]

MAX_BODY = 64 * 1024


def _error(status: int, message: str) -> Response:
    return JSONResponse({"error": message}, status_code=status)


def make_admin_api(node: Node) -> Starlette:
    """The admin API app, to be mounted at ``/api/admin``."""

    def authorised(request: Request) -> bool:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        return scheme.lower() == "bearer" and node.admin_tokens.verify(token.strip()) is not None

    def guarded(handler: Any) -> Any:
        async def endpoint(request: Request) -> Response:
            if not authorised(request):
                return JSONResponse(
                    {"error": "a valid bearer token is required"},
                    status_code=401,
                    headers={"WWW-Authenticate": 'Bearer realm="mailwarden-admin"'},
                )
            response: Response = await handler(request)
            return response

        return endpoint

    async def drain_state(_: Request) -> Response:
        state = node.drain.read()
        return JSONResponse(
            {
                "drain": state.active,
                "since": state.since or None,
                "reason": state.reason,
                "retry_after": state.retry_after,
            }
        )

    async def set_drain(request: Request) -> Response:
        body = await request.body()
        if len(body) > MAX_BODY:
            return _error(413, "request body too large")
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            return _error(400, "the body must be JSON")
        if not isinstance(data, dict) or not isinstance(data.get("drain"), bool):
            return _error(400, 'expected {"drain": true|false, ...}')
        retry_after = data.get("retry_after", 300)
        reason = data.get("reason", "maintenance")
        if not isinstance(retry_after, int) or retry_after < 1 or not isinstance(reason, str):
            return _error(400, "retry_after must be a positive integer and reason a string")
        if data["drain"]:
            node.drain.turn_on(reason[:200], retry_after)
        else:
            node.drain.turn_off()
        return await drain_state(request)

    async def traffic_profile(request: Request) -> Response:
        try:
            weeks = int(request.query_params.get("weeks", "4"))
        except ValueError:
            return _error(400, "weeks must be an integer")
        if not 1 <= weeks <= 5:
            return _error(400, "weeks must be between 1 and 5")
        return JSONResponse(node.traffic.profile(weeks, node.config.hostname))

    async def domains(_: Request) -> Response:
        return JSONResponse([ops.domain_dict(d) for d in await node.store.list_domains()])

    async def users(request: Request) -> Response:
        try:
            accounts = await node.store.list_accounts(request.query_params.get("domain"))
        except NotFound as exc:
            return _error(404, str(exc))
        return JSONResponse([ops.account_dict(a) for a in accounts])

    return Starlette(
        routes=[
            Route("/drain", guarded(drain_state), methods=["GET"]),
            Route("/drain", guarded(set_drain), methods=["POST"]),
            Route("/traffic-profile", guarded(traffic_profile), methods=["GET"]),
            Route("/domains", guarded(domains), methods=["GET"]),
            Route("/users", guarded(users), methods=["GET"]),
        ]
    )
