"""The webmail's shared machinery: dependencies, sessions per request, CSRF, rendering.

Theory of operation
-------------------
Every page handler starts with :func:`require_login`, which turns the session
cookie into a :class:`Ctx` (session, account, preferences) or a redirect to
the login page.  The account is read from the store on every request, so a
suspended account or a changed password (a new ``credential_version``) ends
its sessions at once.

Every state-changing request (POST) passes :func:`check_csrf`: the session's
token must come back in the form field ``csrf`` or the ``X-CSRF-Token``
header, and an ``Origin`` header, when the browser sends one, must be ours.

Every response passes :class:`SecurityHeaders`: a strict
Content-Security-Policy (our own script and style files only; no inline
script, no plugins, no framing by anyone: ``frame-ancestors 'none'``),
``nosniff`` and a same-origin referrer policy.  Routes that serve message
content set their own, stricter, policy, which the middleware leaves alone.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import jinja2
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mailwarden.auth.service import AuthService, Peer, Service
from mailwarden.store.base import (
    Account,
    AccountStatus,
    Folder,
    FolderId,
    NotFound,
    SpecialUse,
    Store,
)
from mailwarden.web.webmail.i18n import _, template_gettext, template_ngettext
from mailwarden.web.webmail.listing import format_date, iso_date, size_text
from mailwarden.web.webmail.navcache import FolderCache
from mailwarden.web.webmail.prefs import Prefs, PrefsStore
from mailwarden.web.webmail.send import Submitter
from mailwarden.web.webmail.sessions import Session, SessionStore

__all__ = [
    "CSP",
    "SESSION_COOKIE",
    "Ctx",
    "FolderInfo",
    "SecurityHeaders",
    "WebmailDeps",
    "check_csrf",
    "folder_infos",
    "make_templates",
    "peer_of",
    "redirect",
    "render",
    "require_login",
    "safe_next",
]

log = logging.getLogger(__name__)

SESSION_COOKIE = "mw_session"
PRELOGIN_COOKIE = "mw_pre"
DEVICE_COOKIE = "mw_device"

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
    " connect-src 'self'; frame-src 'self'; form-action 'self'; base-uri 'none';"
    " frame-ancestors 'none'"
)
BASE_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), interest-cohort=()"),
]


@dataclass
class WebmailDeps:
    """What the webmail is built from (handed over by the composition root).

    Attributes:
        store: the mail store.
        auth: the login door.
        sessions: where sessions live.
        prefs: where preferences live.
        submitter: sends written mail under submission rules.
        hostname: right side of Message-IDs we create.
        secure_cookies: mark cookies Secure (HTTPS in front).
        clock: wall-clock seconds (tests pass their own).
        max_upload: largest total upload per message, in octets.
    """

    store: Store
    auth: AuthService
    sessions: SessionStore
    prefs: PrefsStore
    submitter: Submitter
    hostname: str = "localhost"
    secure_cookies: bool = False
    clock: Callable[[], float] = time.time
    max_upload: int = 25 * 1024 * 1024
    templates: jinja2.Environment = field(init=False)
    folder_cache: FolderCache = field(init=False)

    def __post_init__(self) -> None:
        self.templates = make_templates()
        self.folder_cache = FolderCache(self.store)


class SecurityHeaders:
    """Adds the CSP and friends to every response that did not set its own CSP."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                if b"content-security-policy" not in names:
                    headers.append((b"content-security-policy", CSP.encode()))
                headers += [h for h in BASE_HEADERS if h[0] not in names]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


# --- templates -----------------------------------------------------------------


def make_templates() -> jinja2.Environment:
    """The Jinja2 environment: autoescaping always on, texts marked for translation."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("mailwarden.web.webmail", "templates"),
        # Templates ship with the code: no file-system check on every render.
        auto_reload=False,
        autoescape=True,
        extensions=["jinja2.ext.i18n"],
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    # Texts go through gettext; a catalogue can be installed here per request
    # language once translations exist (``env.install_gettext_translations``).
    env.install_null_translations(newstyle=True)  # type: ignore[attr-defined]
    env.globals.update(_=template_gettext, gettext=template_gettext, ngettext=template_ngettext)
    env.filters["datetime"] = format_date
    env.filters["iso"] = iso_date
    env.filters["size"] = size_text
    env.globals["static_version"] = _static_version()
    return env


def _static_version() -> str:
    """A short hash of the static files, for cache-busting URLs."""
    import hashlib

    digest = hashlib.sha256()
    root = resources.files("mailwarden.web.webmail").joinpath("static")
    for name in ("webmail.css", "webmail.js"):
        digest.update(root.joinpath(name).read_bytes())
    return digest.hexdigest()[:10]


# --- requests ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FolderInfo:
    """A folder as the navigation shows it."""

    folder: Folder
    messages: int
    unseen: int

    @property
    def id(self) -> FolderId:
        """The folder id used in URLs."""
        return self.folder.id

    @property
    def label(self) -> str:
        """The name to show (special folders get their translated role name)."""
        match self.folder.special_use:
            case SpecialUse.SENT:
                return _("Sent")
            case SpecialUse.DRAFTS:
                return _("Drafts")
            case SpecialUse.TRASH:
                return _("Trash")
            case SpecialUse.JUNK:
                return _("Junk")
            case SpecialUse.ARCHIVE:
                return _("Archive")
        return _("Inbox") if self.folder.name.upper() == "INBOX" else self.folder.name

    @property
    def depth(self) -> int:
        """Nesting level, for indentation."""
        return self.folder.name.count("/")

    @property
    def role(self) -> str:
        """``inbox``, a special-use role without backslash, or ``""``."""
        if self.folder.name.upper() == "INBOX":
            return "inbox"
        return self.folder.special_use.value[1:].lower() if self.folder.special_use else ""


@dataclass
class Ctx:
    """One logged-in request."""

    request: Request
    deps: WebmailDeps
    session: Session
    account: Account
    prefs: Prefs
    _folders: list[Folder] | None = None

    async def folders(self) -> list[Folder]:
        """The account's folders (read once per request, through the folder cache)."""
        if self._folders is None:
            self._folders = await self.deps.folder_cache.folders(self.account.id)
        return self._folders

    async def folder(self, folder_id: int) -> Folder:
        """One of the account's folders by id; 404 for anything else."""
        for folder in await self.folders():
            if folder.id == folder_id:
                return folder
        raise HTTPException(404)

    async def special(self, role: SpecialUse) -> Folder | None:
        """The folder with a special-use role, if the account has one."""
        for folder in await self.folders():
            if folder.special_use is role:
                return folder
        return None

    async def inbox(self) -> Folder:
        """The account's INBOX."""
        for folder in await self.folders():
            if folder.name.upper() == "INBOX":
                return folder
        raise HTTPException(404)


async def folder_infos(ctx: Ctx) -> list[FolderInfo]:
    """Every folder with its message and unread counts, INBOX and special ones first."""
    statuses = await ctx.deps.folder_cache.statuses(ctx.account.id)
    out = [FolderInfo(s.folder, s.messages, s.unseen) for s in statuses]
    order = {"inbox": 0, "drafts": 1, "sent": 2, "archive": 3, "junk": 4, "trash": 5}
    out.sort(key=lambda f: (order.get(f.role, 9), f.folder.name.lower()))
    return out


def _client_host(request: Request) -> str:
    return request.client.host if request.client else ""


def peer_of(request: Request, deps: WebmailDeps) -> Peer:
    """Who is asking, for the auth door (address, web, TLS, device token)."""
    try:
        address = ipaddress.ip_address(_client_host(request).split("%", 1)[0])
    except ValueError:
        address = ipaddress.ip_address("::")
    tls = request.url.scheme == "https" or deps.secure_cookies
    device = request.cookies.get(DEVICE_COOKIE) or None
    return Peer(address, Service.WEB, tls, device[:512] if device else None)


def safe_next(value: str | None, default: str = "/mail") -> str:
    """A local path to go to after login; anything else (other hosts) is the default.

    Only absolute paths on this origin are accepted: ``/mail/3``, not
    ``//evil.example``, ``/\\evil.example``, ``https://...`` or text with
    control characters.
    """
    if not value or len(value) > 2000:
        return default
    if not value.startswith("/") or value.startswith(("//", "/\\")):
        return default
    if any(ch < " " or ch == "\\" for ch in value):
        return default
    parsed = urllib.parse.urlsplit(value)
    if parsed.scheme or parsed.netloc:
        return default
    return value


def redirect(url: str) -> RedirectResponse:
    """A 303 See Other (the answer to a POST) to a local URL."""
    return RedirectResponse(url, status_code=303)


def _login_redirect(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.method != "GET" or request.headers.get("accept", "").startswith("application/json"):
        return Response(status_code=401, headers={"Cache-Control": "no-store"})
    return redirect("/login?" + urllib.parse.urlencode({"next": target}))


async def require_login(request: Request) -> Ctx | Response:
    """The logged-in context of a request, or the response that sends it to log in."""
    deps: WebmailDeps = request.app.state.webmail
    session_id = request.cookies.get(SESSION_COOKIE, "")
    session = deps.sessions.get(session_id, deps.clock()) if session_id else None
    if session is None:
        return _login_redirect(request)
    try:
        account = await deps.store.get_account(session.account)
    except NotFound:
        account = None
    if (
        account is None
        or account.status is not AccountStatus.ACTIVE
        or account.credential_version != session.credential_version
    ):
        deps.sessions.delete(session_id)
        return _login_redirect(request)
    prefs = await deps.prefs.get(account.id)
    return Ctx(request, deps, session, account, prefs)


def _same_origin(request: Request) -> bool:
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        # No Origin (older browsers, same-origin GET-converted forms): the
        # token decides.  "null" comes from sandboxed documents: refuse.
        return origin is None
    parsed = urllib.parse.urlsplit(origin)
    return parsed.netloc.lower() == request.headers.get("host", "").lower()


def check_csrf(ctx: Ctx, form: FormData | None = None) -> None:
    """Refuse (403) a state-changing request without the session's CSRF token.

    Raises:
        HTTPException: 403 when the token is missing or wrong, or the Origin
            is another site.
    """
    request = ctx.request
    sent = request.headers.get("x-csrf-token")
    if sent is None and form is not None:
        value = form.get("csrf")
        sent = value if isinstance(value, str) else None
    if not sent or not hmac.compare_digest(sent.encode(), ctx.session.csrf.encode()):
        log.info("webmail: CSRF token missing or wrong account=%s", ctx.account.id)
        raise HTTPException(403, "bad CSRF token")
    if not _same_origin(request):
        log.info("webmail: cross-origin POST refused account=%s", ctx.account.id)
        raise HTTPException(403, "cross-origin request")


def render(
    ctx: Ctx | None,
    request: Request,
    template: str,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    **values: Any,
) -> HTMLResponse:
    """Render a page; logged-in pages get the session's CSRF token and flashes."""
    deps: WebmailDeps = request.app.state.webmail
    page = deps.templates.get_template(template)
    context: dict[str, Any] = {
        "request": request,
        "path": request.url.path,
        "ctx": ctx,
        "csrf": ctx.session.csrf if ctx else "",
        "flashes": ctx.session.pop_flashes() if ctx else [],
        "account": ctx.account if ctx else None,
        "nav": values.pop("nav", None),
        "current_folder": values.pop("current_folder", None),
    }
    context.update(values)
    all_headers = {"Cache-Control": "no-store"}
    all_headers.update(headers or {})
    return HTMLResponse(page.render(context), status_code=status_code, headers=all_headers)
