"""Settings: display name, identities, signature, reading options, password, app passwords.

A password change is verified through the auth door (the current password,
with the door's limits), hashed on the door's pool, and ends every other
session of the account; this session continues under the new
``credential_version``.

App passwords (for IMAP, POP3 and SMTP clients; the door never accepts them
for webmail) live in the auth service's durable state
(:attr:`AuthService.state_store`): created with a random secret shown once,
stored as a digest, revoked by id.  After each change the door folds the
state in at once (:meth:`AuthService.refresh`).  A door without durable state
(``state_store`` None) has no app passwords, and the page says so.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mailwarden.auth.persist import AppPassword
from mailwarden.auth.service import Accepted, TryLater
from mailwarden.auth.tokens import app_password_digest, generate_app_password
from mailwarden.web.webmail.core import (
    Ctx,
    check_csrf,
    folder_infos,
    peer_of,
    redirect,
    render,
    require_login,
)
from mailwarden.web.webmail.i18n import _
from mailwarden.web.webmail.prefs import MAX_SIGNATURE, PAGE_SIZES
from mailwarden.web.webmail.views_compose import identities

__all__ = ["routes"]

log = logging.getLogger(__name__)

MIN_PASSWORD = 10
MAX_NAME = 100


async def settings_page(request: Request, *, new_secret: str = "") -> Response:
    """GET /settings."""
    ctx = await require_login(request)
    if not isinstance(ctx, Ctx):
        return ctx
    state = ctx.deps.auth.state_store
    app_passwords: list[AppPassword] | None = None
    if state is not None:
        app_passwords = [a for a in await state.app_passwords(ctx.account.id) if not a.revoked]
    nav = await folder_infos(ctx)
    return render(
        ctx,
        request,
        "settings.html",
        nav=nav,
        prefs=ctx.prefs,
        identities=await identities(ctx),
        page_sizes=PAGE_SIZES,
        app_passwords=app_passwords,
        new_secret=new_secret,
        min_password=MIN_PASSWORD,
    )


def _field(form: Any, name: str, limit: int) -> str:
    value = form.get(name)
    return value.replace("\r", "")[:limit] if isinstance(value, str) else ""


async def settings_post(request: Request) -> Response:
    """POST /settings: profile, signature and reading options."""
    ctx = await require_login(request)
    if not isinstance(ctx, Ctx):
        return ctx
    form = await request.form(max_files=0, max_fields=200)
    check_csrf(ctx, form)
    ids = await identities(ctx)
    names = dict(ctx.prefs.names)
    for identity in ids:
        key = identity.address.lower()
        value = _field(form, f"name:{key}", MAX_NAME).replace("\n", " ").strip()
        if f"name:{key}" in form:
            names[key] = value
    display = names.get(ctx.account.address.lower(), ctx.account.display_name)
    if display != ctx.account.display_name:
        await ctx.deps.store.set_display_name(ctx.account.id, display)
    chosen = _field(form, "identity", 400).lower()
    page_size = _field(form, "page_size", 4)
    prefs = replace(
        ctx.prefs,
        names=names,
        identity=chosen if chosen in {i.address.lower() for i in ids} else "",
        signature=_field(form, "signature", MAX_SIGNATURE),
        page_size=int(page_size) if page_size.isdigit() and int(page_size) in PAGE_SIZES else 50,
        threads=form.get("threads") == "1",
        prefer_html=form.get("prefer_html") == "1",
        trusted_senders=tuple(
            s for s in ctx.prefs.trusted_senders if s not in form.getlist("untrust")
        ),
    )
    await ctx.deps.prefs.put(ctx.account.id, prefs)
    ctx.session.flash(_("Settings saved."))
    return redirect("/settings")


async def password_post(request: Request) -> Response:
    """POST /settings/password: change the password (current one required)."""
    ctx = await require_login(request)
    if not isinstance(ctx, Ctx):
        return ctx
    form = await request.form(max_files=0, max_fields=10)
    check_csrf(ctx, form)
    current = _field(form, "current", 1024)
    new = _field(form, "new", 1024)
    confirm = _field(form, "confirm", 1024)
    if len(new) < MIN_PASSWORD:
        ctx.session.flash(
            _("The new password must have at least %d characters.") % MIN_PASSWORD, "error"
        )
        return redirect("/settings#password")
    if new != confirm:
        ctx.session.flash(_("The two new passwords differ."), "error")
        return redirect("/settings#password")
    deps = ctx.deps
    outcome = await deps.auth.verify(ctx.account.address, current, peer_of(request, deps))
    if isinstance(outcome, TryLater):
        ctx.session.flash(_("The server is busy. Try again in a minute."), "error")
        return redirect("/settings#password")
    if not isinstance(outcome, Accepted) or outcome.account.id != ctx.account.id:
        ctx.session.flash(_("The current password is wrong."), "error")
        return redirect("/settings#password")
    new_hash = await deps.auth.hash_password(new)
    account = await deps.store.set_password_hash(ctx.account.id, new_hash)
    ctx.session.credential_version = account.credential_version
    ended = deps.sessions.delete_account(account.id, keep=ctx.session.id)
    log.info("webmail: password changed account=%s other_sessions_ended=%d", account.id, ended)
    ctx.session.flash(_("Password changed. Other sessions were logged out."))
    return redirect("/settings")


async def app_passwords_post(request: Request) -> Response:
    """POST /settings/app-passwords: create or revoke an app password."""
    ctx = await require_login(request)
    if not isinstance(ctx, Ctx):
        return ctx
    form = await request.form(max_files=0, max_fields=10)
    check_csrf(ctx, form)
    auth = ctx.deps.auth
    state = auth.state_store
    if state is None:
        ctx.session.flash(_("App passwords are not available on this server."), "error")
        return redirect("/settings")
    if form.get("action") == "create":
        label = _field(form, "label", 60).replace("\n", " ").strip() or _("App password")
        if len([a for a in await state.app_passwords(ctx.account.id) if not a.revoked]) >= 20:
            ctx.session.flash(_("You have too many app passwords; revoke one first."), "error")
            return redirect("/settings")
        secret = generate_app_password()
        await state.add_app_password(
            ctx.account.id, label, app_password_digest(secret), auth.clock()
        )
        await auth.refresh()
        log.info("webmail: app password created account=%s", ctx.account.id)
        return await settings_page(request, new_secret=secret)
    app_id = _field(form, "id", 20)
    if app_id.isdigit() and await state.revoke_app_password(ctx.account.id, int(app_id)):
        await auth.refresh()
        ctx.session.flash(_("App password revoked."))
    return redirect("/settings")


async def _settings_get(request: Request) -> Response:
    return await settings_page(request)


routes = [
    Route("/settings", _settings_get, methods=["GET"]),
    Route("/settings", settings_post, methods=["POST"]),
    Route("/settings/password", password_post, methods=["POST"]),
    Route("/settings/app-passwords", app_passwords_post, methods=["POST"]),
]
