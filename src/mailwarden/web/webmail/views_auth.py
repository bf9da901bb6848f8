"""Logging in and out through the auth door.

* The login form carries a pre-login CSRF token (double submit: a random
  cookie and the same value in the form), so another site cannot log a
  victim into the attacker's account.
* A successful login always makes a brand-new session id and ends the
  session the browser had (session fixation, OWASP ASVS V3.2.1).
* :class:`~mailwarden.auth.service.TryLater` (the door is saturated or the
  source is held back) becomes HTTP 503 with ``Retry-After`` and a page that
  says to try again shortly; a rejection is one generic message whatever the
  reason.
* "Remember this device" asks the auth service for a device token (the known
  lane of the door) kept in a long-lived HttpOnly cookie and presented at
  later logins as :attr:`Peer.device_token`.
* Each session is registered with the door (:meth:`AuthService.open_session`),
  so the operator's ``auth revoke`` ends it.
"""

from __future__ import annotations

import hmac
import logging
import math
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mailwarden.auth.service import Accepted, TryLater
from mailwarden.web.webmail.core import (
    DEVICE_COOKIE,
    PRELOGIN_COOKIE,
    SESSION_COOKIE,
    Ctx,
    WebmailDeps,
    check_csrf,
    peer_of,
    redirect,
    render,
    require_login,
    safe_next,
)
from mailwarden.web.webmail.i18n import _
from mailwarden.web.webmail.sessions import new_token

__all__ = ["routes"]

log = logging.getLogger(__name__)

DEVICE_COOKIE_DAYS = 90


def _cookie_args(deps: WebmailDeps) -> dict[str, Any]:
    return {"httponly": True, "samesite": "lax", "secure": deps.secure_cookies, "path": "/"}


def _login_page(
    request: Request,
    deps: WebmailDeps,
    *,
    error: str = "",
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    username: str = "",
) -> Response:
    token = request.cookies.get(PRELOGIN_COOKIE, "")
    if not 20 <= len(token) <= 64:
        token = new_token(24)
    response = render(
        None,
        request,
        "login.html",
        status_code=status_code,
        headers=headers,
        pre_csrf=token,
        error=error,
        username=username,
        next=safe_next(request.query_params.get("next")),
    )
    response.set_cookie(PRELOGIN_COOKIE, token, max_age=3600, **_cookie_args(deps))
    return response


async def login_form(request: Request) -> Response:
    """GET /login: the form (or straight on if already logged in)."""
    deps: WebmailDeps = request.app.state.webmail
    if request.cookies.get(SESSION_COOKIE):
        ctx = await require_login(request)
        if isinstance(ctx, Ctx):
            return redirect(safe_next(request.query_params.get("next")))
    return _login_page(request, deps)


async def login(request: Request) -> Response:
    """POST /login: verify through the auth door and start a fresh session."""
    deps: WebmailDeps = request.app.state.webmail
    form = await request.form(max_files=0, max_fields=10)
    cookie = request.cookies.get(PRELOGIN_COOKIE, "")
    sent = form.get("pre_csrf")
    if not cookie or not isinstance(sent, str) or not hmac.compare_digest(sent, cookie):
        return _login_page(
            request,
            deps,
            error=_("Your login form expired. Please try again."),
            status_code=403,
        )
    username = form.get("username")
    password = form.get("password")
    if not isinstance(username, str) or not isinstance(password, str):
        return _login_page(request, deps, error=_("Enter your address and password."))
    username = username.strip()
    peer = peer_of(request, deps)
    outcome = await deps.auth.verify(username, password, peer)
    if isinstance(outcome, TryLater):
        seconds = max(1, math.ceil(outcome.retry_after))
        return render(
            None,
            request,
            "busy.html",
            status_code=503,
            headers={"Retry-After": str(seconds)},
            seconds=seconds,
            next=safe_next(request.query_params.get("next")),
        )
    if not isinstance(outcome, Accepted):
        return _login_page(
            request,
            deps,
            error=_("Wrong address or password."),
            status_code=401,
            username=username[:320],
        )
    account = outcome.account
    old = request.cookies.get(SESSION_COOKIE)
    if old:
        deps.sessions.delete(old)
    session = deps.sessions.create(
        account.id, account.address, account.credential_version, deps.clock()
    )
    # Registered with the door so that ``auth sessions`` lists it and
    # ``auth revoke`` ends it; unregistered when the session ends here.
    session_id = session.id
    registered = deps.auth.open_session(
        account, peer, on_revoke=lambda: deps.sessions.delete(session_id)
    )
    session.on_end = registered.close
    response = redirect(safe_next(request.query_params.get("next")))
    response.set_cookie(SESSION_COOKIE, session.id, **_cookie_args(deps))
    response.delete_cookie(PRELOGIN_COOKIE, path="/")
    if form.get("remember") == "1":
        # The auth door's known lane: a later login from this browser presents
        # the token and is decided ahead of the unknown crowd during a flood.
        token = deps.auth.issue_device_token(account)
        if token:
            response.set_cookie(
                DEVICE_COOKIE,
                token,
                max_age=DEVICE_COOKIE_DAYS * 86400,
                **_cookie_args(deps),
            )
    return response


async def logout(request: Request) -> Response:
    """POST /logout: end the session (CSRF-checked so no page can log you out)."""
    deps: WebmailDeps = request.app.state.webmail
    ctx = await require_login(request)
    if not isinstance(ctx, Ctx):
        return redirect("/login")
    check_csrf(ctx, await request.form(max_files=0, max_fields=5))
    deps.sessions.delete(ctx.session.id)
    response = redirect("/login")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


routes = [
    Route("/login", login_form, methods=["GET"]),
    Route("/login", login, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
]
