"""Admin pages: login, incidents, incident templates, maintenance, components,
probe history, and (admins only) users, subscribers, webhooks, login locks and
the audit log.

Roles: an **editor** runs incidents, templates, maintenance and component
statuses and reads the probe history; an **admin** can also manage users,
subscribers and webhooks, release login locks and read the audit log.
Sessions are cookies scoped to ``/admin`` (HttpOnly, SameSite=Strict); every
POST carries the session's CSRF token as well.  All changes go through the
audited operations of ``StatusService``.

Logins are throttled per address and per user name (``throttle``): a locked
attempt is answered 429 with ``Retry-After`` and a sentence saying which
limit was hit and when to try again, before any password is checked.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from mailwarden.web.status.incidents import Template
from mailwarden.web.status.model import (
    ComponentStatus,
    Impact,
    IncidentStatus,
    MaintenanceStatus,
    NotFound,
    Role,
    StatusError,
    parse_length,
    parse_time,
)
from mailwarden.web.status.public import _run, _service, not_found, render
from mailwarden.web.status.throttle import client_address
from mailwarden.web.status.users import Session

log = logging.getLogger(__name__)

COOKIE = "mw_status_session"


class Denied(Exception):
    """Carries the response for a request that may not proceed."""

    def __init__(self, response: Response) -> None:
        super().__init__("denied")
        self.response = response


async def _session(request: Request) -> Session | None:
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    return await _run(_service(request).users.session, token)


async def _require(request: Request, role: Role = Role.EDITOR) -> Session:
    session = await _session(request)
    if session is None:
        raise Denied(RedirectResponse("/admin/login", status_code=303))
    if role is Role.ADMIN and session.user.role is not Role.ADMIN:
        raise Denied(
            render(request, "message.html", 403, title="Forbidden", message="Admins only.")
        )
    return session


async def _form(request: Request, session: Session) -> FormData:
    form = await request.form()
    if not hmac.compare_digest(str(form.get("csrf", "")), session.csrf):
        raise Denied(render(request, "message.html", 403, title="Forbidden", message="Stale form."))
    return form


def _actor(session: Session) -> str:
    return f"web:{session.user.username}"


def _page(request: Request, session: Session, template: str, **context: Any) -> Response:
    return render(
        request,
        template,
        context.pop("status_code", 200),
        user=session.user,
        csrf=session.csrf,
        **context,
    )


def _component_changes(form: FormData, keys: list[str]) -> dict[str, ComponentStatus]:
    changes = {}
    for key in keys:
        value = str(form.get(f"comp_{key}", ""))
        if value:
            changes[key] = ComponentStatus(value)
    return changes


def _opt_time(form: FormData, name: str) -> Any:
    value = str(form.get(name, "")).strip()
    return parse_time(value) if value else None


def guarded(handler: Any) -> Any:
    """Turn ``Denied`` and operator errors into responses."""

    async def endpoint(request: Request) -> Response:
        try:
            response: Response = await handler(request)
        except Denied as denied:
            return denied.response
        except NotFound as exc:
            return not_found(request, str(exc))
        except (StatusError, ValueError) as exc:
            return render(request, "message.html", 400, title="Not done", message=str(exc))
        return response

    return endpoint


# -- login ------------------------------------------------------------------------


def _address(request: Request) -> str:
    svc = _service(request)
    peer = request.client.host if request.client else ""
    return client_address(
        peer, request.headers.get("x-forwarded-for", ""), svc.settings.trusted_proxies
    )


async def login(request: Request) -> Response:
    """Login form and check (throttled per address and per user name)."""
    svc = _service(request)
    if request.method == "GET":
        return render(request, "admin/login.html", error=None)
    form = await request.form()
    username = str(form.get("username", ""))[:200]
    password = str(form.get("password", ""))
    address = _address(request)
    lock = await _run(svc.logins.check, address, username)
    if lock is not None:
        now = svc.clock()
        locked = render(request, "admin/login.html", 429, error=lock.explain(now))
        locked.headers["Retry-After"] = str(lock.retry_after(now))
        return locked
    user = await asyncio.to_thread(svc.users.verify, username, password)
    if user is None:
        await _run(svc.audit.record, f"web:{username[:40]}", "login.failed", address)
        locks = await _run(svc.logins.failed, address, username)
        now = svc.clock()
        for started in locks:
            log.warning("status admin login locked: %s %s", started.scope.value, started.subject)
            await _run(
                svc.audit.record,
                f"web:{username[:40]}",
                "login.locked",
                f"{started.scope.value} {started.subject}",
                f"{started.failures} failures; locked until {started.until.isoformat()}",
            )
        error = "Wrong username or password."
        refused = render(
            request,
            "admin/login.html",
            429 if locks else 401,
            error=f"{error} {max(locks, key=lambda lk: lk.until).explain(now)}" if locks else error,
        )
        if locks:
            refused.headers["Retry-After"] = str(max(lk.retry_after(now) for lk in locks))
        return refused
    await _run(svc.logins.succeeded, address, user.username)
    token, _ = await _run(svc.users.start_session, user, svc.settings.session_ttl)
    await _run(svc.audit.record, f"web:{user.username}", "login", address)
    response = RedirectResponse("/admin", status_code=303)
    response.set_cookie(
        COOKIE,
        token,
        max_age=int(svc.settings.session_ttl.total_seconds()),
        path="/admin",
        httponly=True,
        samesite="strict",
        secure=svc.settings.secure_cookies,
    )
    return response


@guarded
async def logout(request: Request) -> Response:
    """End the session."""
    session = await _require(request)
    await _form(request, session)
    token = request.cookies.get(COOKIE, "")
    await _run(_service(request).users.end_session, token)
    response = RedirectResponse("/admin/login", status_code=303)
    response.delete_cookie(COOKIE, path="/admin")
    return response


# -- dashboard and components ---------------------------------------------------------


@guarded
async def dashboard(request: Request) -> Response:
    """Components, open incidents, maintenance."""
    session = await _require(request)
    svc = _service(request)
    return _page(
        request,
        session,
        "admin/dashboard.html",
        components=await _run(svc.components.all),
        statuses=list(ComponentStatus),
        unresolved=await _run(svc.incidents.search, unresolved=True),
        recent=await _run(svc.incidents.search, limit=10),
        upcoming=await _run(svc.maintenances.upcoming),
        active=await _run(svc.maintenances.active),
        pending_drains=await _run(svc.drains.pending),
    )


@guarded
async def set_component(request: Request) -> Response:
    """Set a component's status."""
    session = await _require(request)
    form = await _form(request, session)
    key = request.path_params["key"]
    status = ComponentStatus(str(form.get("status", "")))
    await _run(_service(request).set_component, _actor(session), key, status)
    return RedirectResponse("/admin", status_code=303)


# -- incidents ------------------------------------------------------------------------


@guarded
async def new_incident(request: Request) -> Response:
    """Form to open an incident (optionally from a template)."""
    session = await _require(request)
    svc = _service(request)
    templates = await _run(svc.incidents.templates)
    chosen = request.query_params.get("template")
    template = next((t for t in templates if t.name == chosen), None)
    return _page(
        request,
        session,
        "admin/incident_new.html",
        templates=templates,
        chosen=template,
        components=await _run(svc.components.all),
        statuses=list(ComponentStatus),
        impacts=list(Impact),
        incident_statuses=[s for s in IncidentStatus if s is not IncidentStatus.RESOLVED],
    )


@guarded
async def create_incident(request: Request) -> Response:
    """Open an incident."""
    session = await _require(request)
    form = await _form(request, session)
    svc = _service(request)
    keys = [c.key for c in await _run(svc.components.all)]
    incident = await _run(
        svc.open_incident,
        _actor(session),
        str(form.get("title", "")),
        str(form.get("body", "")),
        impact=Impact(str(form.get("impact", "minor"))),
        status=IncidentStatus(str(form.get("status", "investigating"))),
        components=_component_changes(form, keys),
        display_at=_opt_time(form, "display_at"),
        started_at=_opt_time(form, "started_at"),
        notify=form.get("notify") == "on",
    )
    return RedirectResponse(f"/admin/incidents/{incident.id}", status_code=303)


@guarded
async def incident_detail(request: Request) -> Response:
    """An incident with the forms to update, resolve and report."""
    session = await _require(request)
    svc = _service(request)
    incident = await _run(svc.incidents.get, int(request.path_params["incident_id"]))
    return _page(
        request,
        session,
        "admin/incident.html",
        incident=incident,
        components=await _run(svc.components.all),
        statuses=list(ComponentStatus),
        incident_statuses=list(IncidentStatus),
    )


@guarded
async def post_update(request: Request) -> Response:
    """Post an update; status ``resolved`` resolves the incident."""
    session = await _require(request)
    form = await _form(request, session)
    svc = _service(request)
    incident_id = int(request.path_params["incident_id"])
    keys = [c.key for c in await _run(svc.components.all)]
    status = IncidentStatus(str(form.get("status", "")))
    body = str(form.get("body", ""))
    notify = form.get("notify") == "on"
    display_at = _opt_time(form, "display_at")
    if status is IncidentStatus.RESOLVED:
        await _run(
            svc.resolve_incident,
            _actor(session),
            incident_id,
            body,
            display_at=display_at,
            ended_at=_opt_time(form, "ended_at"),
            notify=notify,
        )
    else:
        await _run(
            svc.update_incident,
            _actor(session),
            incident_id,
            body,
            status=status,
            components=_component_changes(form, keys),
            display_at=display_at,
            notify=notify,
        )
    return RedirectResponse(f"/admin/incidents/{incident_id}", status_code=303)


@guarded
async def post_report(request: Request) -> Response:
    """Attach the incident report."""
    session = await _require(request)
    form = await _form(request, session)
    incident_id = int(request.path_params["incident_id"])
    await _run(
        _service(request).report_incident,
        _actor(session),
        incident_id,
        summary=str(form.get("summary", "")),
        client_impact=str(form.get("client_impact", "")),
        remediation=str(form.get("remediation", "")),
        posted_at=_opt_time(form, "posted_at"),
    )
    return RedirectResponse(f"/admin/incidents/{incident_id}", status_code=303)


# -- maintenance ------------------------------------------------------------------------


@guarded
async def new_maintenance(request: Request) -> Response:
    """Form to schedule a window."""
    session = await _require(request)
    svc = _service(request)
    return _page(
        request,
        session,
        "admin/maintenance_new.html",
        components=await _run(svc.components.all),
        min_notice=svc.settings.min_notice,
    )


@guarded
async def create_maintenance(request: Request) -> Response:
    """Schedule a window (or a recurring series)."""
    session = await _require(request)
    form = await _form(request, session)
    start = parse_time(str(form.get("start", "")))
    end = start + parse_length(str(form.get("length", "2h")))
    rrule = str(form.get("rrule", "")).strip() or None
    windows = await _run(
        _service(request).schedule_maintenance,
        _actor(session),
        str(form.get("title", "")),
        start,
        end,
        components=[str(k) for k in form.getlist("component")],
        body=str(form.get("body", "")),
        rrule=rrule,
        drain=form.get("drain") == "on",
        emergency=form.get("emergency") == "on",
    )
    target = f"/maintenance/{windows[0].id}" if windows else "/admin"
    return RedirectResponse(target, status_code=303)


@guarded
async def move_maintenance(request: Request) -> Response:
    """Move (start, verify, complete) or cancel a window."""
    session = await _require(request)
    form = await _form(request, session)
    svc = _service(request)
    maintenance_id = int(request.path_params["maintenance_id"])
    status = MaintenanceStatus(str(form.get("status", "")))
    if status is MaintenanceStatus.CANCELLED:
        await _run(
            svc.cancel_maintenance,
            _actor(session),
            maintenance_id,
            series=form.get("series") == "on",
        )
    else:
        await _run(svc.move_maintenance, _actor(session), maintenance_id, status)
    return RedirectResponse("/admin", status_code=303)


# -- incident templates and probe history -------------------------------------------------


async def _templates(request: Request, name: str | None) -> Response:
    """The template list with the form for ``name`` (a new template if None)."""
    session = await _require(request)
    svc = _service(request)
    chosen = await _run(svc.incidents.template, name) if name is not None else None
    return _page(
        request,
        session,
        "admin/templates.html",
        templates=await _run(svc.incidents.templates),
        chosen=chosen,
        impacts=list(Impact),
        incident_statuses=[s for s in IncidentStatus if s is not IncidentStatus.RESOLVED],
    )


@guarded
async def templates_page(request: Request) -> Response:
    """Every incident template, and the form for a new one."""
    return await _templates(request, None)


@guarded
async def template_page(request: Request) -> Response:
    """The form to edit one template."""
    return await _templates(request, request.path_params["name"])


@guarded
async def save_template(request: Request) -> Response:
    """Create or replace a template."""
    session = await _require(request)
    form = await _form(request, session)
    template = Template(
        name=str(form.get("name", "")).strip(),
        title=str(form.get("title", "")).strip(),
        body=str(form.get("body", "")),
        impact=Impact(str(form.get("impact", "minor"))),
        status=IncidentStatus(str(form.get("status", "investigating"))),
    )
    if template.status is IncidentStatus.RESOLVED:
        raise StatusError("a template opens an incident; it cannot start resolved")
    await _run(_service(request).save_template, _actor(session), template)
    return RedirectResponse("/admin/templates", status_code=303)


@guarded
async def delete_template(request: Request) -> Response:
    """Delete a template."""
    session = await _require(request)
    await _form(request, session)
    name = request.path_params["name"]
    await _run(_service(request).delete_template, _actor(session), name)
    return RedirectResponse("/admin/templates", status_code=303)


@guarded
async def probes_page(request: Request) -> Response:
    """Each probe's state and its recent results (``?probe=NAME`` for one)."""
    session = await _require(request)
    svc = _service(request)
    chosen = request.query_params.get("probe") or None
    try:
        limit = min(max(int(request.query_params.get("limit", "100")), 1), 1000)
    except ValueError:
        limit = 100
    return _page(
        request,
        session,
        "admin/probes.html",
        overview=await _run(svc.probes.overview),
        history=await _run(svc.probes.history, chosen, limit),
        chosen=chosen,
        limit=limit,
    )


# -- admins only --------------------------------------------------------------------------


@guarded
async def logins_page(request: Request) -> Response:
    """Login throttling: the rules and the addresses and names now counted or locked."""
    session = await _require(request, Role.ADMIN)
    svc = _service(request)
    return _page(
        request,
        session,
        "admin/logins.html",
        entries=await _run(svc.logins.entries),
        rules=svc.logins.settings,
    )


@guarded
async def release_login(request: Request) -> Response:
    """Release a locked address or user name."""
    session = await _require(request, Role.ADMIN)
    form = await _form(request, session)
    svc = _service(request)
    key = str(form.get("key", ""))
    if not await _run(svc.logins.release, key):
        raise NotFound(f"no login lock {key!r}")
    await _run(svc.audit.record, _actor(session), "login.release", key)
    return RedirectResponse("/admin/logins", status_code=303)


@guarded
async def audit_log(request: Request) -> Response:
    """The audit log."""
    session = await _require(request, Role.ADMIN)
    entries = await _run(_service(request).audit.entries)
    return _page(request, session, "admin/audit.html", entries=entries)


@guarded
async def people(request: Request) -> Response:
    """Users, subscribers and webhooks."""
    session = await _require(request, Role.ADMIN)
    svc = _service(request)
    return _page(
        request,
        session,
        "admin/people.html",
        users=await _run(svc.users.all),
        roles=list(Role),
        subscribers=await _run(svc.notifier.subscribers),
        webhooks=await _run(svc.notifier.webhooks),
        new_secret=None,
    )


@guarded
async def people_action(request: Request) -> Response:
    """Add a user or webhook, release a subscriber, remove a webhook."""
    session = await _require(request, Role.ADMIN)
    form = await _form(request, session)
    svc = _service(request)
    actor = _actor(session)
    action = str(form.get("action", ""))
    new_secret = None
    if action == "add_user":
        username = str(form.get("username", ""))
        user = await asyncio.to_thread(
            svc.users.add, username, str(form.get("password", "")), Role(str(form.get("role")))
        )
        await _run(svc.audit.record, actor, "user.add", user.username, user.role.value)
    elif action == "release":
        subscriber_id = int(str(form.get("subscriber_id", "0")))
        await _run(svc.notifier.release, subscriber_id)
        await _run(svc.audit.record, actor, "subscriber.release", f"subscriber {subscriber_id}")
    elif action == "add_webhook":
        hook = await _run(svc.notifier.add_webhook, str(form.get("url", "")))
        await _run(svc.audit.record, actor, "webhook.add", hook.url)
        new_secret = hook.secret
    elif action == "remove_webhook":
        hook_id = int(str(form.get("webhook_id", "0")))
        await _run(svc.notifier.remove_webhook, hook_id)
        await _run(svc.audit.record, actor, "webhook.remove", f"webhook {hook_id}")
    else:
        raise StatusError("unknown action")
    if new_secret is None:
        return RedirectResponse("/admin/people", status_code=303)
    return _page(
        request,
        session,
        "admin/people.html",
        users=await _run(svc.users.all),
        roles=list(Role),
        subscribers=await _run(svc.notifier.subscribers),
        webhooks=await _run(svc.notifier.webhooks),
        new_secret=new_secret,
    )


routes = [
    Route("/admin/login", login, methods=["GET", "POST"]),
    Route("/admin/logout", logout, methods=["POST"]),
    Route("/admin", dashboard),
    Route("/admin/components/{key}", set_component, methods=["POST"]),
    Route("/admin/incidents/new", new_incident),
    Route("/admin/incidents", create_incident, methods=["POST"]),
    Route("/admin/incidents/{incident_id:int}", incident_detail),
    Route("/admin/incidents/{incident_id:int}/updates", post_update, methods=["POST"]),
    Route("/admin/incidents/{incident_id:int}/report", post_report, methods=["POST"]),
    Route("/admin/maintenance/new", new_maintenance),
    Route("/admin/maintenance", create_maintenance, methods=["POST"]),
    Route("/admin/maintenance/{maintenance_id:int}/move", move_maintenance, methods=["POST"]),
    Route("/admin/templates", templates_page),
    Route("/admin/templates", save_template, methods=["POST"]),
    Route("/admin/templates/{name}", template_page),
    Route("/admin/templates/{name}/delete", delete_template, methods=["POST"]),
    Route("/admin/probes", probes_page),
    Route("/admin/logins", logins_page),
    Route("/admin/logins", release_login, methods=["POST"]),
    Route("/admin/audit", audit_log),
    Route("/admin/people", people),
    Route("/admin/people", people_action, methods=["POST"]),
]
