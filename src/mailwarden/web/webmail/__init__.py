"""Webmail: a server-rendered mail client over the store, logging in through the auth door.

Theory of operation
-------------------
Pages are rendered on the server with Jinja2 (autoescaping on) and enhanced
by one small script (``static/webmail.js``: keyboard shortcuts, live updates
over server-sent events, draft autosave, select-all); everything works
without it.  Handlers are small modules by area:

* :mod:`.views_auth` — login, logout (sessions in :mod:`.sessions`);
* :mod:`.views_mail` — folder list, reading view, message content, actions,
  live updates;
* :mod:`.views_folders` — folder management and search (:mod:`.search`);
* :mod:`.views_compose` — compose, reply, forward, drafts, sending
  (:mod:`.compose` builds MIME, :mod:`.send` applies submission rules);
* :mod:`.views_settings` — profile, signature, options, password, app
  passwords.

Security properties and where they live: CSP and other headers
(:class:`.core.SecurityHeaders`), CSRF (:func:`.core.check_csrf`), session
fixation and cookie flags (:mod:`.views_auth`), hostile HTML
(:mod:`.sanitize`), tenancy (every folder id is resolved among the session
account's folders by :meth:`.core.Ctx.folder`, and every store call is made
for that account).
"""

from __future__ import annotations

import logging
import secrets
from importlib import resources

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from mailwarden.web.webmail import (
    views_auth,
    views_compose,
    views_folders,
    views_mail,
    views_settings,
)
from mailwarden.web.webmail.core import SecurityHeaders, WebmailDeps, render

__all__ = ["WebmailDeps", "make_webmail"]

log = logging.getLogger(__name__)

_MESSAGES = {
    400: "That request could not be understood.",
    403: "That action was refused. Reload the page and try again.",
    404: "There is nothing here. It may have been moved or deleted.",
    405: "That action is not allowed here.",
}


def make_webmail(deps: WebmailDeps) -> Starlette:
    """Build the webmail ASGI app (mount it at ``/``)."""
    static = StaticFiles(directory=str(resources.files(__package__).joinpath("static")))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        text = _MESSAGES.get(exc.status_code, "Something went wrong.")
        return render(
            None, request, "error.html", status_code=exc.status_code, message=text, incident=""
        )

    async def server_error(request: Request, exc: Exception) -> Response:
        incident = secrets.token_hex(4)
        log.error("webmail internal error", exc_info=exc, extra={"incident": incident})
        return render(
            None,
            request,
            "error.html",
            status_code=500,
            message="Something went wrong on our side.",
            incident=incident,
        )

    app = Starlette(
        routes=[
            *views_auth.routes,
            *views_mail.routes,
            *views_folders.routes,
            *views_compose.routes,
            *views_settings.routes,
            Mount("/static/webmail", static, name="static"),
        ],
        middleware=[Middleware(SecurityHeaders)],
        exception_handlers={HTTPException: http_error, Exception: server_error},
    )
    app.state.webmail = deps
    return app
