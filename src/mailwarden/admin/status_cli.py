"""``mailwarden status ...``: operate the status page from a shell.

Registered into the main command by ``register``; every handler has the
signature ``handler(args, config) -> int`` the main CLI expects, where
``config`` is the node's ``Config`` (its ``status_db_path`` names the status
database) or None when this parser is used on its own (tests, or a status
host without a node config: then ``--db`` names the database).

Exit codes follow the main CLI: 0 done, 1 refused, 3 not found.  Errors are
one line on stderr.  Times are ISO-8601 and taken as UTC unless they carry an
offset (``2024-05-02T09:11Z``, ``"2024-05-02 09:11"``).  Bodies come from
``--body TEXT`` or ``--body-file FILE`` (``-`` for standard input).  Operator
passwords come from a prompt or ``--password-stdin``, never from argv.

Commands::

    status init [--cluster NAME]...          create the database and a cluster's components
    status serve [--host H] [--port P]       run the status page (and its scheduler)
    status tick                              run the scheduler once (cron-friendly)
    status component list | set KEY STATUS | add KEY NAME | add-cluster NAME
    status incident open | update | resolve | report | list | show | templates
    status maintenance schedule | suggest | list | cancel | move
    status user add NAME --role admin|editor | list
    status subscriber list
    status webhook add URL | list | remove ID
    status login list | release KEY          admin login locks (KEY: address:IP or user:NAME)
    status drain pending                     drain calls no node has acknowledged yet
    status probe list | history [--probe NAME] [--limit N]
    status audit
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
import tomllib
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from mailwarden.web.status.model import (
    ComponentStatus,
    Impact,
    IncidentStatus,
    MaintenanceStatus,
    NotFound,
    Role,
    StatusError,
    duration_words,
    format_posted,
    parse_length,
    parse_time,
    system_clock,
    to_db,
)
from mailwarden.web.status.service import StatusService
from mailwarden.web.status.settings import StatusSettings
from mailwarden.web.status.traffic import (
    TrafficProfile,
    fetch_profile,
    load_profile_file,
    quarterly_dates,
    suggest_slots,
)

EXIT_OK, EXIT_REFUSED, EXIT_NOT_FOUND = 0, 1, 3


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add the ``status`` command group to the main CLI."""
    status = subparsers.add_parser("status", help="the status page: incidents and maintenance")
    status.add_argument("--db", metavar="FILE", help="status database (default: from config)")
    status.add_argument(
        "--settings", metavar="FILE", help="TOML file with a [status] table (relay, probes, nodes)"
    )
    status.set_defaults(handler=_dispatch)
    groups = status.add_subparsers(dest="status_command", required=True)

    init = groups.add_parser("init", help="create the database (and a cluster's components)")
    init.add_argument("--cluster", action="append", default=[], help="e.g. 'Cluster A'")

    serve = groups.add_parser("serve", help="run the status page")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8081)

    groups.add_parser("tick", help="run due transitions, reminders, probes and deliveries once")

    _component_commands(groups)
    _incident_commands(groups)
    _maintenance_commands(groups)
    _people_commands(groups)


def _body_options(parser: argparse.ArgumentParser, required: bool = True) -> None:
    body = parser.add_mutually_exclusive_group(required=required)
    body.add_argument("--body", help="Markdown text")
    body.add_argument("--body-file", metavar="FILE", help="read the text from FILE ('-': stdin)")


def _component_commands(groups: Any) -> None:
    comp = groups.add_parser("component", help="components").add_subparsers(
        dest="status_action", required=True
    )
    lst = comp.add_parser("list", help="list components with their statuses")
    lst.add_argument("--json", action="store_true")
    st = comp.add_parser("set", help="set a component's status")
    st.add_argument("key")
    st.add_argument("status", choices=[s.value for s in ComponentStatus])
    add = comp.add_parser("add", help="add a component")
    add.add_argument("key")
    add.add_argument("name")
    add.add_argument("--group")
    add.add_argument("--description", default="")
    add.add_argument("--depends-on", action="append", default=[], metavar="KEY")
    cluster = comp.add_parser("add-cluster", help="add the standard components of a cluster")
    cluster.add_argument("name", help="e.g. 'Cluster A'")


def _incident_commands(groups: Any) -> None:
    inc = groups.add_parser("incident", help="incidents").add_subparsers(
        dest="status_action", required=True
    )
    changes = {
        "metavar": "KEY=STATUS",
        "action": "append",
        "default": [],
        "help": "component and its new status, e.g. cluster-a-webmail=major_outage",
    }
    op = inc.add_parser("open", help="open an incident")
    op.add_argument("title", nargs="?", help="headline (or use --template)")
    op.add_argument("--template", help="start from a template (see 'templates')")
    _body_options(op, required=False)
    op.add_argument("--impact", choices=[i.value for i in Impact])
    op.add_argument("--status", choices=[s.value for s in IncidentStatus if s.value != "resolved"])
    op.add_argument("--component", **changes)
    op.add_argument("--at", help="display time of the first update (default now)")
    op.add_argument("--started-at", help="when the trouble began (default --at)")
    op.add_argument("--no-notify", action="store_true", help="tell no subscribers or webhooks")

    up = inc.add_parser("update", help="post an update")
    up.add_argument("id", type=int)
    _body_options(up)
    up.add_argument("--status", choices=[s.value for s in IncidentStatus if s.value != "resolved"])
    up.add_argument("--impact", choices=[i.value for i in Impact])
    up.add_argument("--component", **changes)
    up.add_argument("--at", help="display time (default now)")
    up.add_argument("--no-notify", action="store_true")

    res = inc.add_parser("resolve", help="post the resolving update")
    res.add_argument("id", type=int)
    _body_options(res)
    res.add_argument("--component", **changes)
    res.add_argument("--at", help="display time (default now)")
    res.add_argument("--ended-at", help="when the trouble ended (default --at)")
    res.add_argument("--no-notify", action="store_true")

    rep = inc.add_parser("report", help="attach the incident report")
    rep.add_argument("id", type=int)
    rep.add_argument("--summary", required=True)
    rep.add_argument("--client-impact", required=True)
    rep.add_argument("--remediation", required=True)
    rep.add_argument("--at", help="posted time (default now)")

    lst = inc.add_parser("list", help="list incidents (unresolved unless --all)")
    lst.add_argument("--all", action="store_true")
    lst.add_argument("--json", action="store_true")
    show = inc.add_parser("show", help="show one incident with its updates")
    show.add_argument("id", type=int)
    show.add_argument("--json", action="store_true")
    inc.add_parser("templates", help="list incident templates")


def _maintenance_commands(groups: Any) -> None:
    mnt = groups.add_parser("maintenance", help="maintenance windows").add_subparsers(
        dest="status_action", required=True
    )
    sch = mnt.add_parser("schedule", help="schedule a window (or a recurring series)")
    sch.add_argument("title")
    sch.add_argument("--start", required=True)
    end = sch.add_mutually_exclusive_group(required=True)
    end.add_argument("--end")
    end.add_argument("--length", help="e.g. 2h, 90m")
    sch.add_argument("--component", action="append", required=True, metavar="KEY")
    sch.add_argument("--rrule", help="RFC 5545 rule, e.g. FREQ=MONTHLY;INTERVAL=3;BYDAY=+2TU")
    _body_options(sch, required=False)
    sch.add_argument("--no-drain", action="store_true", help="do not drain the nodes")
    sch.add_argument("--emergency", action="store_true", help="waive the minimum notice")

    sug = mnt.add_parser("suggest", help="propose low-traffic windows from a traffic profile")
    sug.add_argument("--length", default="2h")
    sug.add_argument("--quarterly", action="store_true", help="also give quarterly dates")
    src = sug.add_mutually_exclusive_group()
    src.add_argument("--profile", action="append", metavar="FILE", help="profile JSON file(s)")
    src.add_argument("--node", action="append", metavar="URL", help="node admin API URL(s)")
    sug.add_argument("--token", default="", help="admin API bearer token for --node")
    sug.add_argument("--count", type=int, default=3, help="how many weekly slots")
    sug.add_argument("--json", action="store_true")

    lst = mnt.add_parser("list", help="list windows (upcoming and active unless --all)")
    lst.add_argument("--all", action="store_true")
    lst.add_argument("--json", action="store_true")
    can = mnt.add_parser("cancel", help="cancel a scheduled window")
    can.add_argument("id", type=int)
    can.add_argument("--series", action="store_true", help="cancel the whole recurring series")
    mv = mnt.add_parser("move", help="start, verify or complete a window by hand")
    mv.add_argument("id", type=int)
    mv.add_argument("status", choices=["in_progress", "verifying", "completed"])


def _people_commands(groups: Any) -> None:
    user = groups.add_parser("user", help="operators of the admin pages").add_subparsers(
        dest="status_action", required=True
    )
    add = user.add_parser("add", help="add an operator (or reset password and role)")
    add.add_argument("username")
    add.add_argument("--role", choices=[r.value for r in Role], default="editor")
    add.add_argument("--password-stdin", action="store_true")
    user.add_parser("list", help="list operators")
    rm = user.add_parser("remove", help="remove an operator")
    rm.add_argument("username")

    sub = groups.add_parser("subscriber", help="mail subscribers").add_subparsers(
        dest="status_action", required=True
    )
    sub.add_parser("list", help="list subscribers")
    rel = sub.add_parser("release", help="take an address out of bounce quarantine")
    rel.add_argument("id", type=int)

    hook = groups.add_parser("webhook", help="webhooks").add_subparsers(
        dest="status_action", required=True
    )
    hadd = hook.add_parser("add", help="add a webhook; prints its signing secret once")
    hadd.add_argument("url")
    hook.add_parser("list", help="list webhooks")
    hrm = hook.add_parser("remove", help="remove a webhook")
    hrm.add_argument("id", type=int)

    audit = groups.add_parser("audit", help="show the audit log")
    audit.add_argument("--limit", type=int, default=50)

    login = groups.add_parser("login", help="admin login throttling").add_subparsers(
        dest="status_action", required=True
    )
    login.add_parser("list", help="addresses and user names counted or locked")
    lrel = login.add_parser("release", help="forget one address or user name")
    lrel.add_argument("key", help="address:203.0.113.7, address:2001:db8::/64 or user:NAME")

    drain = groups.add_parser("drain", help="drain requests to nodes").add_subparsers(
        dest="status_action", required=True
    )
    drain.add_parser("pending", help="drain calls no node has acknowledged yet")

    probe = groups.add_parser("probe", help="end-to-end probes").add_subparsers(
        dest="status_action", required=True
    )
    probe.add_parser("list", help="each probe's state and last result")
    hist = probe.add_parser("history", help="recent probe results, newest first")
    hist.add_argument("--probe", help="only this probe (e.g. cluster-a/imap-login)")
    hist.add_argument("--limit", type=int, default=50)


# -- running ----------------------------------------------------------------------


def settings_from(args: argparse.Namespace, config: Any) -> StatusSettings:
    """Status settings from ``--settings``, the node config and ``--db``."""
    settings = StatusSettings()
    options = getattr(getattr(config, "status", None), "options", None)
    if options:
        settings = StatusSettings.from_mapping(dict(options))
    if getattr(args, "settings", None):
        with open(args.settings, "rb") as handle:
            data = tomllib.load(handle)
        settings = StatusSettings.from_mapping(data.get("status", {}))
    if getattr(args, "db", None):
        settings = replace(settings, database=Path(args.db))
    elif config is not None and hasattr(config, "status_db_path"):
        settings = replace(settings, database=Path(config.status_db_path))
    return settings


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _dispatch(args: argparse.Namespace, config: Any = None) -> int:
    """Entry point for every ``status`` command."""
    try:
        settings = settings_from(args, config)
        if args.status_command == "maintenance" and args.status_action == "suggest":
            return _suggest(args, settings)
        service = StatusService.open(settings)
        try:
            return _run(args, service)
        finally:
            service.close()
    except NotFound as exc:
        print(f"mailwarden: {exc}", file=sys.stderr)
        return EXIT_NOT_FOUND
    except (StatusError, OSError, tomllib.TOMLDecodeError) as exc:
        print(f"mailwarden: {exc}", file=sys.stderr)
        return EXIT_REFUSED


def _read_body(args: argparse.Namespace) -> str:
    if getattr(args, "body_file", None):
        if args.body_file == "-":
            return sys.stdin.read()
        return Path(args.body_file).read_text(encoding="utf-8")
    return str(getattr(args, "body", None) or "")


def _changes(pairs: list[str]) -> dict[str, ComponentStatus]:
    changes = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise StatusError(f"expected KEY=STATUS, got {pair!r}")
        try:
            changes[key.strip()] = ComponentStatus(value.strip())
        except ValueError:
            choices = ", ".join(s.value for s in ComponentStatus)
            raise StatusError(f"unknown status {value!r} (one of {choices})") from None
    return changes


def _opt_time(value: str | None) -> Any:
    return parse_time(value) if value else None


def _run(args: argparse.Namespace, svc: StatusService) -> int:
    command = args.status_command
    if command == "init":
        for cluster in args.cluster:
            made = svc.add_cluster(_actor(), cluster)
            print(f"created {len(made)} components for {cluster}")
        print(f"status database ready: {svc.settings.database}")
        return EXIT_OK
    if command == "serve":
        return _serve(args, svc)
    if command == "tick":
        report = asyncio.run(svc.tick())
        print(
            f"events={len(report.events)} drain_calls={len(report.drain_calls)}"
            f" probes={'ran' if report.probes_ran else 'not due'}"
            f" delivered={report.delivery.delivered} retried={report.delivery.retried}"
            f" failed={report.delivery.failed}"
        )
        return EXIT_OK
    handler = {
        "component": _component,
        "incident": _incident,
        "maintenance": _maintenance,
        "user": _user,
        "subscriber": _subscriber,
        "webhook": _webhook,
        "audit": _audit,
        "login": _login,
        "drain": _drain,
        "probe": _probe,
    }[command]
    return handler(args, svc)


def _serve(args: argparse.Namespace, svc: StatusService) -> int:
    import uvicorn

    from mailwarden.web.status.app import create_app

    app = create_app(svc, run_scheduler=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    return EXIT_OK


def _component(args: argparse.Namespace, svc: StatusService) -> int:
    action = args.status_action
    if action == "list":
        comps = svc.components.all()
        if args.json:
            print(
                json.dumps(
                    [
                        {
                            "key": c.key,
                            "name": c.name,
                            "group": c.group,
                            "status": c.effective_status.value,
                            "operator_status": c.status.value,
                            "probe_status": c.probe_status.value,
                            "cause": c.cause,
                            "depends_on": list(c.depends_on),
                        }
                        for c in comps
                    ],
                    indent=2,
                )
            )
        else:
            for c in comps:
                cause = f"  ({c.cause})" if c.cause else ""
                print(f"{c.key:<32} {c.effective_status.value:<22} {c.display_name}{cause}")
    elif action == "set":
        comp = svc.set_component(_actor(), args.key, ComponentStatus(args.status))
        print(f"{comp.key}: {comp.effective_status.value}")
    elif action == "add":
        comp = svc.components.add(
            args.key,
            args.name,
            group=args.group,
            description=args.description,
            depends_on=tuple(args.depends_on),
        )
        svc.audit.record(_actor(), "component.add", comp.key, comp.name)
        print(f"added {comp.key}")
    elif action == "add-cluster":
        for comp in svc.add_cluster(_actor(), args.name):
            print(f"added {comp.key}")
    return EXIT_OK


def _incident_dict(svc: StatusService, incident_id: int) -> dict[str, Any]:
    from mailwarden.web.status.api import incident_json

    return incident_json(svc.incidents.get(incident_id), svc.page_info())


def _incident(args: argparse.Namespace, svc: StatusService) -> int:
    action = args.status_action
    actor = _actor()
    if action == "open":
        title, body = args.title, _read_body(args)
        impact = Impact(args.impact) if args.impact else None
        status = IncidentStatus(args.status) if args.status else None
        if args.template:
            tpl = svc.incidents.template(args.template)
            title, body = title or tpl.title, body or tpl.body
            impact, status = impact or tpl.impact, status or tpl.status
        if not title:
            raise StatusError("give a title or --template")
        incident = svc.open_incident(
            actor,
            title,
            body,
            impact=impact or Impact.MINOR,
            status=status or IncidentStatus.INVESTIGATING,
            components=_changes(args.component),
            display_at=_opt_time(args.at),
            started_at=_opt_time(args.started_at),
            notify=not args.no_notify,
        )
        print(f"opened incident {incident.id}: {incident.title}")
    elif action == "update":
        incident = svc.update_incident(
            actor,
            args.id,
            _read_body(args),
            status=IncidentStatus(args.status) if args.status else None,
            components=_changes(args.component),
            display_at=_opt_time(args.at),
            notify=not args.no_notify,
            impact=Impact(args.impact) if args.impact else None,
        )
        print(f"incident {incident.id}: {incident.status.value}")
    elif action == "resolve":
        incident = svc.resolve_incident(
            actor,
            args.id,
            _read_body(args),
            display_at=_opt_time(args.at),
            ended_at=_opt_time(args.ended_at),
            notify=not args.no_notify,
        )
        print(f"incident {incident.id} resolved; Total duration: {incident.duration_words}")
    elif action == "report":
        svc.report_incident(
            actor,
            args.id,
            summary=args.summary,
            client_impact=args.client_impact,
            remediation=args.remediation,
            posted_at=_opt_time(args.at),
        )
        print(f"incident {args.id}: report saved")
    elif action == "list":
        incidents = svc.incidents.search(unresolved=not args.all)
        if args.json:
            print(json.dumps([_incident_dict(svc, i.id) for i in incidents], indent=2))
        for i in [] if args.json else incidents:
            print(f"{i.id:>5}  {i.status.value:<13} {i.impact.value:<8} {i.title}")
    elif action == "show":
        if args.json:
            print(json.dumps(_incident_dict(svc, args.id), indent=2))
            return EXIT_OK
        incident = svc.incidents.get(args.id)
        print(f"{incident.title} ({incident.impact.value}, {incident.status.value})")
        for update in incident.updates:
            print(f"\n{update.status.value.title()}\n{update.body}")
            print(f"Posted {format_posted(update.display_at)}")
        print(f"\nStart Time: {format_posted(incident.started_at)}")
        if incident.resolved_at:
            print(f"End Time: {format_posted(incident.resolved_at)}")
            print(f"Total duration: {incident.duration_words}")
        if incident.components:
            print(f"This incident affected: {incident.affected}.")
    elif action == "templates":
        for tpl in svc.incidents.templates():
            print(f"{tpl.name:<18} {tpl.impact.value:<8} {tpl.title}")
    return EXIT_OK


def _window_line(w: Any) -> str:
    line = (
        f"{w.id:>5}  {w.status.value:<11} {format_posted(w.planned_start)} "
        f"({duration_words(w.planned_end - w.planned_start)})  {w.title}"
    )
    return line + (f"  [{w.rrule}]" if w.rrule else "")


def _maintenance(args: argparse.Namespace, svc: StatusService) -> int:
    action = args.status_action
    if action == "schedule":
        start = parse_time(args.start)
        end = parse_time(args.end) if args.end else start + parse_length(args.length)
        windows = svc.schedule_maintenance(
            _actor(),
            args.title,
            start,
            end,
            components=args.component,
            body=_read_body(args),
            rrule=args.rrule,
            drain=not args.no_drain,
            emergency=args.emergency,
        )
        for w in windows:
            print(f"scheduled {_window_line(w).strip()}")
    elif action == "list":
        windows = (
            svc.maintenances.search()
            if args.all
            else svc.maintenances.active() + svc.maintenances.upcoming()
        )
        if args.json:
            from mailwarden.web.status.api import maintenance_json

            page = svc.page_info()
            print(json.dumps([maintenance_json(w, page) for w in windows], indent=2))
        else:
            for w in windows:
                print(_window_line(w))
    elif action == "cancel":
        for w in svc.cancel_maintenance(_actor(), args.id, series=args.series):
            print(f"cancelled {w.id}")
    elif action == "move":
        w = svc.move_maintenance(_actor(), args.id, MaintenanceStatus(args.status))
        print(f"maintenance {w.id}: {w.status.value}")
    return EXIT_OK


def _suggest(args: argparse.Namespace, settings: StatusSettings) -> int:
    length = parse_length(args.length)
    profiles: list[TrafficProfile] = []
    if args.profile:
        profiles = [load_profile_file(Path(p)) for p in args.profile]
    else:
        urls = args.node or [n.url for n in settings.nodes]
        if not urls:
            raise StatusError("give --profile FILE or --node URL (or configure status.nodes)")
        tokens = {n.url: n.token for n in settings.nodes}
        profiles = [fetch_profile(u, args.token or tokens.get(u, "")) for u in urls]
    profile = profiles[0]
    for extra in profiles[1:]:
        profile = profile + extra
    slots = suggest_slots(profile, length, args.count)
    result: dict[str, Any] = {
        "length_hours": slots[0].hours if slots else 0,
        "slots": [
            {
                "weekday": s.weekday,
                "hour": s.hour,
                "describe": s.describe(),
                "traffic": s.traffic,
                "share": round(s.share, 6),
            }
            for s in slots
        ],
    }
    if args.quarterly and slots:
        rule, dates = quarterly_dates(slots[0], system_clock(), settings.min_notice)
        result["quarterly"] = {"rrule": rule, "dates": [to_db(d) for d in dates]}
    if args.json:
        print(json.dumps(result, indent=2))
        return EXIT_OK
    print(f"Lowest-traffic {duration_words(timedelta(hours=result['length_hours']))} windows:")
    for n, s in enumerate(slots, 1):
        print(f"  {n}. {s.describe()}  ({s.share * 100:.2f}% of weekly traffic)")
    if "quarterly" in result:
        quarterly = result["quarterly"]
        print(f"Quarterly: {quarterly['rrule']}")
        for d in quarterly["dates"]:
            print(f"  {format_posted(parse_time(d))}")
        if quarterly["dates"]:
            print(
                "Schedule with:\n  mailwarden status maintenance schedule TITLE"
                f" --start {quarterly['dates'][0]} --length {args.length}"
                f" --rrule '{quarterly['rrule']}' --component KEY"
            )
    return EXIT_OK


def _user(args: argparse.Namespace, svc: StatusService) -> int:
    action = args.status_action
    if action == "add":
        if args.password_stdin:
            password = sys.stdin.readline().rstrip("\n")
        else:
            password = getpass.getpass("Password: ")
            if getpass.getpass("Again: ") != password:
                raise StatusError("passwords differ")
        user = svc.users.add(args.username, password, Role(args.role))
        svc.audit.record(_actor(), "user.add", user.username, user.role.value)
        print(f"operator {user.username} ({user.role.value}) ready")
    elif action == "list":
        for u in svc.users.all():
            print(f"{u.username:<24} {u.role.value}")
    elif action == "remove":
        svc.users.remove(args.username)
        svc.audit.record(_actor(), "user.remove", args.username)
        print(f"removed {args.username}")
    return EXIT_OK


def _subscriber(args: argparse.Namespace, svc: StatusService) -> int:
    if args.status_action == "release":
        svc.notifier.release(args.id)
        svc.audit.record(_actor(), "subscriber.release", f"subscriber {args.id}")
        print(f"released subscriber {args.id}")
        return EXIT_OK
    for s in svc.notifier.subscribers():
        state = (
            "quarantined"
            if s.quarantined_at
            else "unsubscribed"
            if s.unsubscribed_at
            else "active"
            if s.confirmed_at
            else "unconfirmed"
        )
        print(f"{s.id:>5}  {state:<12} {s.email}  {','.join(s.components) or 'all'}")
    return EXIT_OK


def _webhook(args: argparse.Namespace, svc: StatusService) -> int:
    action = args.status_action
    if action == "add":
        hook = svc.notifier.add_webhook(args.url)
        svc.audit.record(_actor(), "webhook.add", hook.url)
        print(f"webhook {hook.id} added; signing secret (shown once): {hook.secret}")
    elif action == "list":
        for h in svc.notifier.webhooks():
            print(f"{h.id:>5}  {h.url}")
    elif action == "remove":
        svc.notifier.remove_webhook(args.id)
        svc.audit.record(_actor(), "webhook.remove", f"webhook {args.id}")
        print(f"removed webhook {args.id}")
    return EXIT_OK


def _audit(args: argparse.Namespace, svc: StatusService) -> int:
    for e in reversed(svc.audit.entries(args.limit)):
        print(f"{to_db(e.at)}  {e.actor:<20} {e.action:<22} {e.target}  {e.detail}")
    return EXIT_OK


def _login(args: argparse.Namespace, svc: StatusService) -> int:
    if args.status_action == "release":
        if not svc.logins.release(args.key):
            raise NotFound(f"no login lock {args.key!r}")
        svc.audit.record(_actor(), "login.release", args.key)
        print(f"released {args.key}")
        return EXIT_OK
    now = svc.clock()
    for e in svc.logins.entries():
        locked = (
            f"locked until {to_db(e.locked_until)}"
            if e.locked_until and e.locked_until > now
            else "not locked"
        )
        print(f"{e.key:<40} {e.failures:>4} failures  last {to_db(e.last_failure_at)}  {locked}")
    return EXIT_OK


def _drain(args: argparse.Namespace, svc: StatusService) -> int:
    for p in svc.drains.pending():
        print(
            f"{p.node_url}  {'on' if p.drain else 'off':<3}  maintenance {p.maintenance_id}"
            f"  since {to_db(p.requested_at)}  attempts {p.attempts}"
            f"  next {to_db(p.next_attempt_at)}  {p.last_error}"
        )
    return EXIT_OK


def _probe(args: argparse.Namespace, svc: StatusService) -> int:
    if args.status_action == "list":
        for p in svc.probes.overview():
            last = "never ran"
            if p.last is not None:
                outcome = "ok" if p.last.ok else "failed"
                latency = f" {p.last.latency_ms} ms" if p.last.latency_ms is not None else ""
                last = f"{outcome}{latency} at {to_db(p.last.at)}"
            print(f"{p.name:<32} {p.state.status.value:<22} last {last}")
        return EXIT_OK
    for h in svc.probes.history(args.probe, args.limit):
        latency = f"{h.latency_ms} ms" if h.latency_ms is not None else "-"
        muted = " (muted)" if h.muted else ""
        print(
            f"{to_db(h.at)}  {h.probe:<32} {'ok' if h.ok else 'failed'}{muted:<8} {latency:>9}"
            f"  {h.detail}"
        )
    return EXIT_OK
