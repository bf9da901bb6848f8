"""Folder management (create, rename, delete) and the search page."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mailwarden.store.base import (
    HIERARCHY_SEP,
    FolderExists,
    InvalidFolderName,
    NotFound,
)
from mailwarden.web.webmail.core import (
    Ctx,
    check_csrf,
    folder_infos,
    redirect,
    render,
    require_login,
)
from mailwarden.web.webmail.i18n import _
from mailwarden.web.webmail.search import Criteria, Hit, parse_day, search

__all__ = ["routes"]

MAX_FOLDER_NAME = 200


def _clean_name(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    name = value.strip().strip(HIERARCHY_SEP)
    if not name or len(name) > MAX_FOLDER_NAME or any(ch < " " for ch in name):
        return None
    return name


async def folders_page(request: Request) -> Response:
    """GET /folders: the folder manager."""
    ctx = await require_login(request)
    if not isinstance(ctx, Ctx):
        return ctx
    nav = await folder_infos(ctx)
    return render(ctx, request, "folders.html", nav=nav)


async def folders_post(request: Request) -> Response:
    """POST /folders: create, rename or delete a folder."""
    ctx = await require_login(request)
    if not isinstance(ctx, Ctx):
        return ctx
    form = await request.form(max_files=0, max_fields=10)
    check_csrf(ctx, form)
    store = ctx.deps.store
    action = form.get("action")
    try:
        if action == "create":
            name = _clean_name(form.get("name"))
            if name is None:
                ctx.session.flash(_("Enter a folder name."), "error")
            else:
                await store.create_folder(ctx.account.id, name)
                ctx.session.flash(_("Folder created."))
        elif action in ("rename", "delete"):
            fid = form.get("fid")
            folder = await ctx.folder(int(fid) if isinstance(fid, str) and fid.isdigit() else 0)
            if folder.special_use is not None or folder.name.upper() == "INBOX":
                ctx.session.flash(_("Special folders cannot be renamed or deleted."), "error")
            elif action == "rename":
                name = _clean_name(form.get("name"))
                if name is None:
                    ctx.session.flash(_("Enter a folder name."), "error")
                else:
                    await store.rename_folder(ctx.account.id, folder.name, name)
                    ctx.session.flash(_("Folder renamed."))
            else:
                await store.delete_folder(ctx.account.id, folder.name)
                ctx.session.flash(_("Folder deleted."))
    except FolderExists:
        ctx.session.flash(_("A folder with that name exists already."), "error")
    except InvalidFolderName:
        ctx.session.flash(_("That folder name cannot be used."), "error")
    except NotFound:
        ctx.session.flash(_("That folder no longer exists."), "error")
    return redirect("/folders")


async def search_page(request: Request) -> Response:
    """GET /search: find messages by sender, recipient, subject, body and dates."""
    ctx = await require_login(request)
    if not isinstance(ctx, Ctx):
        return ctx
    q = request.query_params

    def field(name: str) -> str:
        return q.get(name, "")[:200]

    criteria = Criteria(
        text=field("q"),
        from_=field("from"),
        to=field("to"),
        subject=field("subject"),
        body=field("body"),
        since=parse_day(q.get("since")),
        before=parse_day(q.get("before")),
    )
    scope = q.get("folder", "all")
    folders = await ctx.folders()
    if scope != "all":
        folders = [await ctx.folder(int(scope) if scope.isdigit() else 0)]
    hits: list[Hit] = []
    complete = True
    if not criteria.empty():
        hits, complete = await search(ctx.deps.store, ctx.account.id, folders, criteria)
        hits.sort(key=lambda h: h.summary.date or h.summary.entry.internal_date, reverse=True)
    nav = await folder_infos(ctx)
    return render(
        ctx,
        request,
        "search.html",
        nav=nav,
        q=q,
        scope=scope,
        hits=hits,
        complete=complete,
        searched=not criteria.empty(),
        back=str(request.url.path) + (f"?{request.url.query}" if request.url.query else ""),
    )


routes = [
    Route("/folders", folders_page, methods=["GET"]),
    Route("/folders", folders_post, methods=["POST"]),
    Route("/search", search_page, methods=["GET"]),
]
