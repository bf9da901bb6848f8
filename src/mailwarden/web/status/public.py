"""Public routes: the page, permalinks, history, subscribing, feeds and the JSON API.

None of these need a login.  Every database call goes through
``asyncio.to_thread`` (``_run``) so a slow disk never stalls the event loop
that is also serving the page to everyone else.

The page shows the round-trip probe's delivery time (submission → delivery →
IMAP fetch) under the component it belongs to, as the latest time, a median
and a small bar chart of the last ``DELIVERY_SAMPLES`` checks.  Only times and
outcomes reach the page (delivered, not delivered, paused for maintenance):
probe names, hosts, accounts and error texts stay on the admin pages.  The
chart is inline SVG drawn with attributes, so the page still needs no script
and no inline style under its Content-Security-Policy.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from jinja2 import Environment
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from mailwarden.web.status import api, feeds
from mailwarden.web.status.model import (
    MaintenanceStatus,
    NotFound,
    StatusError,
    format_latency,
    format_posted,
)
from mailwarden.web.status.probes import DeliveryLatency
from mailwarden.web.status.service import StatusService
from mailwarden.web.status.uptime import (
    day_bars,
    format_percent,
    load_intervals,
    monthly_uptime,
    uptime,
)

T = TypeVar("T")

UPTIME_DAYS = 90
DELIVERY_SAMPLES = 30
"""How many round-trip results the public delivery chart shows."""
SPARK_HEIGHT = 24
"""Height of the delivery chart in SVG units (one bar is 3 wide with a gap of 1)."""


@dataclass(frozen=True, slots=True)
class SparkBar:
    """One bar of the delivery-time chart, in SVG units."""

    x: int
    y: int
    height: int
    css: str
    """``ok``, ``slow``, ``fail`` or ``muted``."""
    title: str
    """Tooltip: when, and what came of it."""


def spark_bars(latency: DeliveryLatency) -> list[SparkBar]:
    """Bars for ``latency``'s samples, oldest on the left.

    A delivered message's bar is as tall as its time relative to the slowest
    delivery shown; a message that did not arrive gets a full-height red bar,
    and a check taken during maintenance a stub.
    """
    delivered = [s.latency_ms for s in latency.samples if s.latency_ms is not None]
    scale = max(delivered, default=1) or 1
    bars = []
    for n, sample in enumerate(latency.samples):
        when = format_posted(sample.at)
        if sample.muted:
            height, css, what = 3, "muted", "paused for maintenance"
        elif sample.latency_ms is None:
            height, css, what = SPARK_HEIGHT, "fail", "not delivered"
        else:
            height = max(2, round(SPARK_HEIGHT * sample.latency_ms / scale))
            css = "slow" if sample.slow else "ok"
            what = f"delivered in {format_latency(sample.latency_ms)}"
        bars.append(SparkBar(n * 4, SPARK_HEIGHT - height, height, css, f"{when}: {what}"))
    return bars


async def _run(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await asyncio.to_thread(fn, *args, **kwargs)


def _service(request: Request) -> StatusService:
    svc: StatusService = request.app.state.service
    return svc


def _env(request: Request) -> Environment:
    env: Environment = request.app.state.templates
    return env


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render a template with the common context."""
    svc = _service(request)
    html = (
        _env(request)
        .get_template(template)
        .render(page_name=svc.settings.page_name, now=svc.clock(), request=request, **context)
    )
    return HTMLResponse(html, status_code=status_code)


def not_found(request: Request, what: str) -> HTMLResponse:
    """The 404 page."""
    return render(request, "message.html", 404, title="Not found", message=what)


def _overview(svc: StatusService) -> dict[str, Any]:
    now = svc.clock()
    comps = svc.components.all()
    unresolved = svc.incidents.search(unresolved=True)
    active = svc.maintenances.active()
    since = now - timedelta(days=UPTIME_DAYS)
    bars = {}
    percent = {}
    monthly = {}
    for comp in comps:
        intervals = load_intervals(svc.db, comp.id, since)
        bars[comp.key] = day_bars(intervals, now, UPTIME_DAYS)
        percent[comp.key] = format_percent(uptime(intervals, since, now))
        monthly[comp.key] = format_percent(monthly_uptime(intervals, now.year, now.month, now))
    recent = [i for i in svc.incidents.search(since=now - timedelta(days=14)) if i.resolved]
    delivery = svc.probes.delivery_latency(DELIVERY_SAMPLES)
    return {
        "status": api.overall_status(comps, unresolved, active),
        "groups": svc.components.groups(),
        "bars": bars,
        "percent": percent,
        "monthly": monthly,
        "unresolved": unresolved,
        "active": active,
        "upcoming": svc.maintenances.upcoming()[:5],
        "recent": recent,
        "uptime_days": UPTIME_DAYS,
        "delivery": {key: d for key, d in delivery.items() if d.samples},
        "spark": {key: spark_bars(d) for key, d in delivery.items()},
        "spark_height": SPARK_HEIGHT,
    }


async def index(request: Request) -> Response:
    """The status page."""
    context = await _run(_overview, _service(request))
    return render(request, "index.html", **context)


async def incident_page(request: Request) -> Response:
    """Permalink of one incident."""
    svc = _service(request)
    try:
        incident = await _run(svc.incidents.get, int(request.path_params["incident_id"]))
    except NotFound:
        return not_found(request, "No such incident.")
    return render(request, "incident.html", incident=incident)


async def maintenance_page(request: Request) -> Response:
    """Permalink of one maintenance window."""
    svc = _service(request)
    try:
        window = await _run(svc.maintenances.get, int(request.path_params["maintenance_id"]))
    except NotFound:
        return not_found(request, "No such maintenance.")
    return render(request, "maintenance.html", window=window)


def _history(svc: StatusService) -> dict[str, Any]:
    months: dict[str, list[Any]] = {}
    for incident in svc.incidents.search():
        months.setdefault(incident.started_at.strftime("%B %Y"), []).append(incident)
    done = svc.maintenances.search(
        statuses=(MaintenanceStatus.COMPLETED, MaintenanceStatus.CANCELLED)
    )
    return {"months": months, "maintenances": list(reversed(done))[:50]}


async def history(request: Request) -> Response:
    """Every incident, by month, and past maintenance."""
    context = await _run(_history, _service(request))
    return render(request, "history.html", **context)


async def subscribe(request: Request) -> Response:
    """Subscription form (GET) and request (POST): double opt-in."""
    svc = _service(request)
    comps = await _run(svc.components.all)
    if request.method == "GET":
        return render(request, "subscribe.html", components=comps, error=None, email="")
    form = await request.form()
    email = str(form.get("email", ""))
    keys = [str(k) for k in form.getlist("component")]
    try:
        await _run(svc.notifier.subscribe, email, keys)
    except StatusError as exc:
        return render(request, "subscribe.html", 400, components=comps, error=str(exc), email=email)
    return render(
        request,
        "message.html",
        title="Check your mail",
        message="We sent a message to confirm the subscription. "
        "Nothing else is sent until you follow its link.",
    )


async def confirm(request: Request) -> Response:
    """Confirmation link: GET shows a button, POST confirms (link scanners only GET)."""
    svc = _service(request)
    token = request.path_params["token"]
    try:
        if request.method == "POST":
            await _run(svc.notifier.confirm, token)
            return render(
                request, "message.html", title="Subscribed", message="You will now receive notices."
            )
        sub = await _run(svc.notifier.by_token, token)
    except NotFound:
        return not_found(request, "This link is unknown or expired.")
    return render(
        request,
        "confirm.html",
        email=sub.email,
        action=f"/subscribe/confirm/{token}",
        button="Confirm subscription",
    )


async def unsubscribe(request: Request) -> Response:
    """RFC 8058 one-click unsubscribe.

    A POST (what mail clients send, with ``List-Unsubscribe=One-Click`` in the
    body, and what our button sends) unsubscribes at once, with no login and
    no further question (RFC 8058 §3.2).  A GET only shows the button, since
    link scanners fetch every URL in a message.
    """
    svc = _service(request)
    token = request.path_params["token"]
    try:
        if request.method == "POST":
            await _run(svc.notifier.unsubscribe, token)
            return render(
                request,
                "message.html",
                title="Unsubscribed",
                message="You will receive no more notices.",
            )
        sub = await _run(svc.notifier.by_token, token)
    except NotFound:
        return not_found(request, "This link is unknown or expired.")
    return render(
        request,
        "confirm.html",
        email=sub.email,
        action=f"/unsubscribe/{token}",
        button="Unsubscribe",
    )


def _feed_entries(svc: StatusService) -> list[feeds.FeedEntry]:
    return feeds.entries(
        svc.incidents.search(limit=50),
        svc.maintenances.search(since=svc.clock() - timedelta(days=365))[-50:],
        svc.settings.public_url,
    )


async def atom_feed(request: Request) -> Response:
    """Atom feed."""
    svc = _service(request)
    items = await _run(_feed_entries, svc)
    body = feeds.atom(svc.settings.page_name, svc.settings.public_url, items, svc.clock())
    return Response(body, media_type="application/atom+xml; charset=utf-8")


async def rss_feed(request: Request) -> Response:
    """RSS 2.0 feed."""
    svc = _service(request)
    items = await _run(_feed_entries, svc)
    body = feeds.rss(svc.settings.page_name, svc.settings.public_url, items, svc.clock())
    return Response(body, media_type="application/rss+xml; charset=utf-8")


# -- JSON API (Statuspage v2 shapes) ---------------------------------------------


def _api_payload(svc: StatusService, which: str) -> dict[str, Any]:
    page = svc.page_info()
    out: dict[str, Any] = {"page": api.page_json(page)}
    comps = svc.components.all()
    if which in ("summary", "components"):
        out["components"] = api.components_json(comps, page)
    if which in ("summary", "status"):
        out["status"] = api.overall_status(
            comps, svc.incidents.search(unresolved=True), svc.maintenances.active()
        )
    if which in ("summary", "unresolved"):
        out["incidents"] = [
            api.incident_json(i, page) for i in svc.incidents.search(unresolved=True)
        ]
    if which == "incidents":
        out["incidents"] = [api.incident_json(i, page) for i in svc.incidents.search(limit=50)]
    if which == "summary":
        windows = svc.maintenances.active() + svc.maintenances.upcoming()
        out["scheduled_maintenances"] = [api.maintenance_json(w, page) for w in windows]
    if which == "maintenances":
        windows = svc.maintenances.search()[-50:]
        out["scheduled_maintenances"] = [api.maintenance_json(w, page) for w in windows]
    if which == "upcoming":
        out["scheduled_maintenances"] = [
            api.maintenance_json(w, page) for w in svc.maintenances.upcoming()
        ]
    if which == "active":
        out["scheduled_maintenances"] = [
            api.maintenance_json(w, page) for w in svc.maintenances.active()
        ]
    return out


def _api_route(path: str, which: str) -> Route:
    async def endpoint(request: Request) -> Response:
        payload = await _run(_api_payload, _service(request), which)
        # Status tools poll from other origins (dashboards); the data is public.
        return JSONResponse(payload, headers={"Access-Control-Allow-Origin": "*"})

    return Route(path, endpoint, name=f"api_{which}")


async def healthz(request: Request) -> Response:
    """Liveness: the process answers and the database reads."""
    svc = _service(request)
    await _run(svc.db.one, "SELECT 1")
    return JSONResponse({"ok": True, "time": datetime.now(UTC).isoformat()})


routes = [
    Route("/", index),
    Route("/incidents/{incident_id:int}", incident_page),
    Route("/maintenance/{maintenance_id:int}", maintenance_page),
    Route("/history", history),
    Route("/subscribe", subscribe, methods=["GET", "POST"]),
    Route("/subscribe/confirm/{token}", confirm, methods=["GET", "POST"]),
    Route("/unsubscribe/{token}", unsubscribe, methods=["GET", "POST"]),
    Route("/history.atom", atom_feed),
    Route("/history.rss", rss_feed),
    Route("/healthz", healthz),
    _api_route("/api/v2/summary.json", "summary"),
    _api_route("/api/v2/status.json", "status"),
    _api_route("/api/v2/components.json", "components"),
    _api_route("/api/v2/incidents.json", "incidents"),
    _api_route("/api/v2/incidents/unresolved.json", "unresolved"),
    _api_route("/api/v2/scheduled-maintenances.json", "maintenances"),
    _api_route("/api/v2/scheduled-maintenances/upcoming.json", "upcoming"),
    _api_route("/api/v2/scheduled-maintenances/active.json", "active"),
]
