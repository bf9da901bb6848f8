"""Folders and messages: the list, the reading view, message content, actions, push.

URLs name folders by id and messages by UID (``/mail/3/1042``).  Every handler
resolves the folder id among the logged-in account's own folders
(:meth:`Ctx.folder`) before touching the store, and every store call is made
for that account, so a URL of another account's folder or message is a 404
(never a hint that it exists).

Message content is served by separate routes with their own policies:

* ``/body``: the sanitised HTML part as a document with a CSP that forbids
  all script and every fetch but our own ``cid:`` images (plus remote images
  once allowed) and a CSP ``sandbox``; the reading page frames it in an
  ``<iframe sandbox>``.
* ``/part/<section>``: an attachment, always ``Content-Disposition:
  attachment`` (RFC 6266, with an RFC 5987 UTF-8 name), ``nosniff`` and
  ``sandbox``.
* ``/cid/<content-id>``: an inline image of the same message (RFC 2392).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import replace

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from mailwarden.mail.facts import MessageFacts
from mailwarden.store.base import (
    FlagMode,
    FlagUpdate,
    Folder,
    FolderExists,
    MessageSummary,
    NotFound,
    SpecialUse,
)
from mailwarden.web.webmail.core import (
    Ctx,
    FolderInfo,
    check_csrf,
    folder_infos,
    redirect,
    render,
    require_login,
    safe_next,
)
from mailwarden.web.webmail.i18n import _, ngettext
from mailwarden.web.webmail.listing import Row, group_threads, render_rows
from mailwarden.web.webmail.prefs import Prefs
from mailwarden.web.webmail.reading import (
    MessageView,
    attachment_name,
    cid_part,
    decoded_part,
    part_text,
    view_of,
)
from mailwarden.web.webmail.sanitize import clean_html, text_to_html

__all__ = ["routes"]

log = logging.getLogger(__name__)

SORTS = {"date": _("Date"), "from": _("Sender"), "subject": _("Subject"), "size": _("Size")}
BODY_CSP = (
    "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:{remote};"
    " font-src 'none'; form-action 'none'; base-uri 'none'; frame-ancestors 'self';"
    " sandbox allow-same-origin allow-popups allow-popups-to-escape-sandbox"
)
CONTENT_CSP = "default-src 'none'; style-src 'unsafe-inline'; sandbox"
_TOKEN_RE = re.compile(r"^[a-z0-9!#$&^_.+-]+/[a-z0-9!#$&^_.+-]+$")
MAX_STREAMS_PER_SESSION = 4
STREAM_SECONDS = 1800
HEARTBEAT_SECONDS = 25.0


def _int(value: str | None, default: int, low: int = 0, high: int = 10**9) -> int:
    try:
        number = int(value) if value is not None else default
    except ValueError:
        return default
    return min(max(number, low), high)


async def mail_home(request: Request) -> Response:
    """GET / and /mail: the inbox."""
    ctx = await require_login(request)
    if not isinstance(ctx, Ctx):
        return ctx
    inbox = await ctx.inbox()
    return redirect(f"/mail/{inbox.id}")


async def folder_page(request: Request) -> Response:
    """GET /mail/{fid}: one page of a folder, sorted."""
    ctx = await require_login(request)
    if not isinstance(ctx, Ctx):
        return ctx
    folder = await ctx.folder(request.path_params["fid"])
    q = request.query_params
    sort = q.get("sort", "date")
    if sort not in SORTS:
        sort = "date"
    descending = q.get("dir", "desc") != "asc"
    size = ctx.prefs.page_size
    page = _int(q.get("page"), 1, 1, 100_000)
    threads = q.get("threads", "1" if ctx.prefs.threads else "0") == "1"
    total, summaries = await ctx.deps.store.list_summaries(
        ctx.account.id,
        folder.id,
        sort=sort,
        descending=descending,
        offset=(page - 1) * size,
        limit=size,
    )
    rows = group_threads(summaries) if threads else [Row(s) for s in summaries]
    pages = max(1, (total + size - 1) // size)
    nav = await folder_infos(ctx)
    outgoing = folder.special_use in (SpecialUse.SENT, SpecialUse.DRAFTS)
    back = str(request.url.path) + (f"?{request.url.query}" if request.url.query else "")
    return render(
        ctx,
        request,
        "list.html",
        nav=nav,
        current_folder=folder,
        folder=folder,
        rows=rows,
        total=total,
        page=page,
        pages=pages,
        sort=sort,
        descending=descending,
        sorts=SORTS,
        threads=threads,
        outgoing=outgoing,
        back=back,
        rows_html=render_rows(
            rows,
            folder.id,
            outgoing=outgoing,
            drafts=folder.special_use is SpecialUse.DRAFTS,
            back=back,
        ),
    )


async def _load(ctx: Ctx, folder: Folder, uid: int) -> tuple[bytes, MessageFacts]:
    store = ctx.deps.store
    facts = (await store.get_facts(ctx.account.id, folder.id, [uid])).get(uid)
    if facts is None:
        raise HTTPException(404)
    try:
        raw = await store.read_message(ctx.account.id, folder.id, uid)
    except NotFound:
        raise HTTPException(404) from None
    return raw, facts


def _remote_allowed(request: Request, prefs: Prefs, view: MessageView) -> bool:
    if request.query_params.get("images") == "1":
        return True
    senders = {a.addr.lower() for a in view.from_}
    return bool(senders & set(prefs.trusted_senders))


async def message_page(request: Request) -> Response:
    """GET /mail/{fid}/{uid}: read a message (and mark it read)."""
    ctx = await require_login(request)
    if not isinstance(ctx, Ctx):
        return ctx
    folder = await ctx.folder(request.path_params["fid"])
    uid: int = request.path_params["uid"]
    store = ctx.deps.store
    (raw, facts), entries = await asyncio.gather(
        _load(ctx, folder, uid), store.get_entries(ctx.account.id, folder.id, [uid])
    )
    if not entries:
        raise HTTPException(404)
    flags = entries[0].flags
    nav = await folder_infos(ctx)
    marking: asyncio.Future[FlagUpdate] | None = None
    if "\\Seen" not in flags:
        # Mark it read while the page renders; the response waits for the
        # commit, so the next page sees it.  The counts read just before are
        # shown as they will be.
        marking = asyncio.ensure_future(
            store.store_flags(ctx.account.id, folder.id, [uid], ["\\Seen"], FlagMode.ADD)
        )
        flags = flags | {"\\Seen"}
        nav = [replace(f, unseen=max(0, f.unseen - 1)) if f.id == folder.id else f for f in nav]
    try:
        return await _message_response(ctx, request, folder, uid, raw, facts, flags, nav)
    finally:
        if marking is not None:
            await marking


async def _message_response(
    ctx: Ctx,
    request: Request,
    folder: Folder,
    uid: int,
    raw: bytes,
    facts: MessageFacts,
    flags: frozenset[str],
    nav: list[FolderInfo],
) -> Response:
    view = view_of(raw, facts)
    allow = _remote_allowed(request, ctx.prefs, view)
    html_mode = bool(view.html_section) and (
        ctx.prefs.prefer_html or not view.text_section or request.query_params.get("html") == "1"
    )
    if request.query_params.get("html") == "0" and view.text_section:
        html_mode = False
    blocked = 0
    text_html = ""
    if html_mode and view.html_section:
        result = clean_html(
            part_text(raw, facts, view.html_section), cid_url=lambda _c: "", allow_remote=allow
        )
        blocked = result.blocked_images
    elif view.text_section:
        text_html = text_to_html(part_text(raw, facts, view.text_section))
    conversation: list[MessageSummary] = []
    if ctx.prefs.threads:
        conversation = await _conversation(ctx, folder, uid)
    query = "?images=1" if allow else ""
    return render(
        ctx,
        request,
        "message.html",
        nav=nav,
        current_folder=folder,
        folder=folder,
        uid=uid,
        view=view,
        flags=flags,
        html_mode=html_mode,
        body_url=f"/mail/{folder.id}/{uid}/body{query}",
        text_html=text_html,
        blocked=blocked,
        allow=allow,
        conversation=conversation,
        folders=[f for f in nav if f.folder.id != folder.id],
        back=safe_next(request.query_params.get("back"), f"/mail/{folder.id}"),
    )


async def _conversation(ctx: Ctx, folder: Folder, uid: int) -> list[MessageSummary]:
    store = ctx.deps.store
    found = await store.get_summaries(ctx.account.id, folder.id, [uid])
    if not found:
        return []
    thread = await store.thread_summaries(ctx.account.id, folder.id, found[0].thread_key)
    return thread if len(thread) > 1 else []


async def message_body(request: Request) -> Response:
    """GET /mail/{fid}/{uid}/body: the sanitised HTML body as its own document."""
    ctx = await require_login(request)
    if not isinstance(ctx, Ctx):
        return ctx
    folder = await ctx.folder(request.path_params["fid"])
    uid: int = request.path_params["uid"]
    raw, facts = await _load(ctx, folder, uid)
    view = view_of(raw, facts)
    if view.html_section is None:
        raise HTTPException(404)
    allow = _remote_allowed(request, ctx.prefs, view)

    def cid_url(cid: str) -> str | None:
        if cid_part(facts, cid) is None:
            return None
        return f"/mail/{folder.id}/{uid}/cid/{urllib.parse.quote(cid, safe='')}"

    result = clean_html(
        part_text(raw, facts, view.html_section), cid_url=cid_url, allow_remote=allow
    )
    version = ctx.deps.templates.globals["static_version"]
    document = (
        '<!DOCTYPE html><html><head><meta charset="utf-8">'
        f'<link rel="stylesheet" href="/static/webmail/body.css?v={version}">'
        f'</head><body class="mw-message">{result.html}</body></html>'
    )
    csp = BODY_CSP.format(remote=" https: http:" if allow else "")
    return Response(
        document,
        media_type="text/html; charset=utf-8",
        headers={
            "Content-Security-Policy": csp,
            "Cache-Control": "private, no-store",
            "X-Frame-Options": "SAMEORIGIN",
        },
    )


def _disposition(kind: str, filename: str) -> str:
    """RFC 6266 Content-Disposition with an ASCII fallback and an RFC 5987 UTF-8 name."""
    fallback = "".join(ch if 32 <= ord(ch) < 127 and ch not in '"\\;' else "_" for ch in filename)
    encoded = urllib.parse.quote(filename, safe="")
    return f"{kind}; filename=\"{fallback or 'download'}\"; filename*=UTF-8''{encoded}"


def _media_type(content_type: str) -> str:
    kind = content_type.lower()
    return kind if _TOKEN_RE.match(kind) else "application/octet-stream"


async def message_part(request: Request) -> Response:
    """GET /mail/{fid}/{uid}/part/{section}: download one attachment."""
    ctx = await require_login(request)
    if not isinstance(ctx, Ctx):
        return ctx
    folder = await ctx.folder(request.path_params["fid"])
    uid: int = request.path_params["uid"]
    raw, facts = await _load(ctx, folder, uid)
    found = decoded_part(raw, facts, request.path_params["section"])
    if found is None:
        raise HTTPException(404)
    part, data = found
    media = _media_type(part.content_type)
    if media.startswith("text/") and part.charset:
        media += f"; charset={part.charset}" if _TOKEN_RE.match(f"x/{part.charset}") else ""
    return Response(
        data,
        media_type=media,
        headers={
            "Content-Disposition": _disposition("attachment", attachment_name(part)),
            "Content-Security-Policy": CONTENT_CSP,
            "Cache-Control": "private, no-store",
        },
    )


async def message_cid(request: Request) -> Response:
    """GET /mail/{fid}/{uid}/cid/{cid}: an inline image referenced by the HTML body."""
    ctx = await require_login(request)
    if not isinstance(ctx, Ctx):
        return ctx
    folder = await ctx.folder(request.path_params["fid"])
    uid: int = request.path_params["uid"]
    raw, facts = await _load(ctx, folder, uid)
    part = cid_part(facts, urllib.parse.unquote(request.path_params["cid"]))
    found = decoded_part(raw, facts, part.section) if part else None
    if found is None:
        raise HTTPException(404)
    part, data = found
    return Response(
        data,
        media_type=_media_type(part.content_type),
        headers={
            "Content-Disposition": _disposition("inline", attachment_name(part)),
            "Content-Security-Policy": CONTENT_CSP,
            "Cache-Control": "private, max-age=3600",
        },
    )


async def message_raw(request: Request) -> Response:
    """GET /mail/{fid}/{uid}/raw: the whole message as a .eml download."""
    ctx = await require_login(request)
    if not isinstance(ctx, Ctx):
        return ctx
    folder = await ctx.folder(request.path_params["fid"])
    uid: int = request.path_params["uid"]
    raw, _facts = await _load(ctx, folder, uid)
    return Response(
        raw,
        media_type="message/rfc822",
        headers={
            "Content-Disposition": _disposition("attachment", f"message-{uid}.eml"),
            "Content-Security-Policy": CONTENT_CSP,
            "Cache-Control": "private, no-store",
        },
    )


async def _ensure(ctx: Ctx, role: SpecialUse, name: str) -> Folder:
    found = await ctx.special(role)
    if found is not None:
        return found
    try:
        return await ctx.deps.store.create_folder(ctx.account.id, name, role)
    except FolderExists:
        return await ctx.deps.store.get_folder(ctx.account.id, name)


async def message_action(request: Request) -> Response:
    """POST /mail/{fid}/action: flag, move, delete, archive or junk selected messages."""
    ctx = await require_login(request)
    if not isinstance(ctx, Ctx):
        return ctx
    form = await request.form(max_files=0, max_fields=1000)
    check_csrf(ctx, form)
    folder = await ctx.folder(request.path_params["fid"])
    uids = sorted({_int(str(v), 0, 1) for v in form.getlist("uid")} - {0})
    action = str(form.get("action", ""))
    back = safe_next(str(form.get("back", "")), f"/mail/{folder.id}")
    if not uids:
        ctx.session.flash(_("Select at least one message."), "error")
        return redirect(back)
    store = ctx.deps.store
    acct = ctx.account.id
    n = len(uids)
    moved_away = False
    match action:
        case "read" | "unread":
            mode = FlagMode.ADD if action == "read" else FlagMode.REMOVE
            await store.store_flags(acct, folder.id, uids, ["\\Seen"], mode)
        case "flag" | "unflag":
            mode = FlagMode.ADD if action == "flag" else FlagMode.REMOVE
            await store.store_flags(acct, folder.id, uids, ["\\Flagged"], mode)
        case "delete":
            trash = await ctx.special(SpecialUse.TRASH)
            if trash is None or trash.id == folder.id:
                await store.store_flags(acct, folder.id, uids, ["\\Deleted"], FlagMode.ADD)
                await store.expunge(acct, folder.id, uids)
                ctx.session.flash(ngettext("%d message deleted.", "%d messages deleted.", n) % n)
            else:
                await store.move(acct, folder.id, uids, trash.name)
                ctx.session.flash(
                    ngettext("%d message moved to Trash.", "%d messages moved to Trash.", n) % n
                )
            moved_away = True
        case "archive":
            archive = await _ensure(ctx, SpecialUse.ARCHIVE, "Archive")
            if archive.id != folder.id:
                await store.move(acct, folder.id, uids, archive.name)
                ctx.session.flash(ngettext("%d message archived.", "%d messages archived.", n) % n)
                moved_away = True
        case "junk":
            junk = await _ensure(ctx, SpecialUse.JUNK, "Junk")
            # RFC 5788 keywords tell filters what the user decided.
            await store.store_flags(acct, folder.id, uids, ["$NotJunk"], FlagMode.REMOVE)
            await store.store_flags(acct, folder.id, uids, ["$Junk"], FlagMode.ADD)
            if junk.id != folder.id:
                await store.move(acct, folder.id, uids, junk.name)
                moved_away = True
            ctx.session.flash(
                ngettext("%d message marked as junk.", "%d messages marked as junk.", n) % n
            )
        case "notjunk":
            inbox = await ctx.inbox()
            await store.store_flags(acct, folder.id, uids, ["$Junk"], FlagMode.REMOVE)
            await store.store_flags(acct, folder.id, uids, ["$NotJunk"], FlagMode.ADD)
            if inbox.id != folder.id:
                await store.move(acct, folder.id, uids, inbox.name)
                moved_away = True
        case "move":
            dest = await ctx.folder(_int(str(form.get("dest", "")), 0))
            if dest.id != folder.id:
                await store.move(acct, folder.id, uids, dest.name)
                ctx.session.flash(ngettext("%d message moved.", "%d messages moved.", n) % n)
                moved_away = True
        case "trust":
            raw, facts = await _load(ctx, folder, uids[0])
            senders = {a.addr.lower() for a in view_of(raw, facts).from_}
            trusted = tuple(sorted(set(ctx.prefs.trusted_senders) | senders))[-500:]
            await ctx.deps.prefs.put(acct, replace(ctx.prefs, trusted_senders=trusted))
        case _:
            raise HTTPException(400)
    if moved_away and back.startswith(f"/mail/{folder.id}/"):
        back = f"/mail/{folder.id}"
    return redirect(back)


async def counts(request: Request) -> Response:
    """GET /mail/counts: unread and total counts per folder (for live updates)."""
    ctx = await require_login(request)
    if not isinstance(ctx, Ctx):
        return ctx
    infos = await folder_infos(ctx)
    return JSONResponse(
        {str(f.id): {"unseen": f.unseen, "messages": f.messages} for f in infos},
        headers={"Cache-Control": "no-store"},
    )


async def events(request: Request) -> Response:
    """GET /mail/events: server-sent events fed by the store's change notifications.

    Each event says which folders changed; the page then fetches what it shows.
    Streams are bounded per session and end after :data:`STREAM_SECONDS` (the
    browser reconnects), and when the session ends.
    """
    ctx = await require_login(request)
    if not isinstance(ctx, Ctx):
        return ctx
    session = ctx.session
    if session.streams >= MAX_STREAMS_PER_SESSION:
        return Response(status_code=429, headers={"Retry-After": "30"})
    deps = ctx.deps
    subscription = deps.store.changes.subscribe(ctx.account.id)
    session.streams += 1

    async def stream() -> AsyncIterator[bytes]:
        try:
            yield b"retry: 5000\n\n"
            started = deps.clock()
            while deps.clock() - started < STREAM_SECONDS:
                try:
                    async with asyncio.timeout(HEARTBEAT_SECONDS):
                        first = await subscription.get()
                except TimeoutError:
                    if deps.sessions.get(session.id, deps.clock()) is None:
                        return
                    yield b": keep-alive\n\n"
                    continue
                changes = [first, *subscription.drain()]
                folders = sorted({c.folder for c in changes if c.folder is not None})
                payload = json.dumps({"folders": folders, "overflow": subscription.overflowed})
                subscription.overflowed = False
                yield f"event: change\ndata: {payload}\n\n".encode()
        finally:
            session.streams -= 1
            subscription.close()

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


routes = [
    Route("/", mail_home, methods=["GET"]),
    Route("/mail", mail_home, methods=["GET"]),
    Route("/mail/counts", counts, methods=["GET"]),
    Route("/mail/events", events, methods=["GET"]),
    Route("/mail/{fid:int}", folder_page, methods=["GET"]),
    Route("/mail/{fid:int}/action", message_action, methods=["POST"]),
    Route("/mail/{fid:int}/{uid:int}", message_page, methods=["GET"]),
    Route("/mail/{fid:int}/{uid:int}/body", message_body, methods=["GET"]),
    Route("/mail/{fid:int}/{uid:int}/raw", message_raw, methods=["GET"]),
    Route("/mail/{fid:int}/{uid:int}/part/{section:str}", message_part, methods=["GET"]),
    Route("/mail/{fid:int}/{uid:int}/cid/{cid:path}", message_cid, methods=["GET"]),
]
