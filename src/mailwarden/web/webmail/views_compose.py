"""Compose, reply, reply-all, forward, drafts and sending.

The compose form names existing content by tokens rather than copying it
through the browser: ``carry`` values ``<folder>.<uid>.<section>`` are parts of
stored messages (a forwarded message's attachments, a draft's attachments)
and ``<folder>.<uid>.msg`` is a whole message forwarded as an attachment.
Each token is resolved on the server among the account's own folders, so a
token naming another account's message is simply not found.

Drafts are saved into the Drafts folder (``\\Draft \\Seen``); each save
replaces the previous copy (new UID, old one expunged).  The page's script
saves automatically while typing (``/compose/autosave`` answers JSON with the
new draft's UID and attachment tokens); without script, "Save draft" does the
same through an ordinary form post.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mailwarden.mail import mime
from mailwarden.store.base import FlagMode, Folder, NotFound, QuotaExceeded, SpecialUse
from mailwarden.web.webmail.compose import (
    Draft,
    Outgoing,
    RecipientError,
    Upload,
    build_message,
    forward_draft,
    parse_recipients,
    reply_draft,
)
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
from mailwarden.web.webmail.reading import (
    MessageView,
    attachment_name,
    decoded_part,
    part_text,
    view_of,
)
from mailwarden.web.webmail.send import SendRefused

__all__ = ["routes"]

log = logging.getLogger(__name__)

MAX_FILES = 20


class ComposeError(Exception):
    """The form cannot be sent or saved as it is; the text is for the user."""


@dataclass(frozen=True, slots=True)
class Identity:
    """An address the account may send as, with the name to show."""

    address: str
    name: str

    def __str__(self) -> str:
        return f"{self.name} <{self.address}>" if self.name else self.address


async def identities(ctx: Ctx) -> list[Identity]:
    """The account's sending identities: its address and aliases that reach only it."""
    addresses = await ctx.deps.store.addresses_of(ctx.account.id)
    if ctx.account.address not in addresses:
        addresses.insert(0, ctx.account.address)
    names = ctx.prefs.names
    return [
        Identity(
            a, names.get(a.lower(), ctx.account.display_name if a == ctx.account.address else "")
        )
        for a in addresses
    ]


async def _message(ctx: Ctx, ref: str | None) -> tuple[Folder, int, bytes, MessageView] | None:
    """Load ``<folder>.<uid>`` among the account's messages."""
    if not ref:
        return None
    fid, _sep, uid = ref.partition(".")
    if not (fid.isdigit() and uid.isdigit()):
        raise HTTPException(404)
    folder = await ctx.folder(int(fid))
    facts = (await ctx.deps.store.get_facts(ctx.account.id, folder.id, [int(uid)])).get(int(uid))
    if facts is None:
        raise HTTPException(404)
    raw = await ctx.deps.store.read_message(ctx.account.id, folder.id, int(uid))
    return folder, int(uid), raw, view_of(raw, facts)


async def _plain(ctx: Ctx, folder: Folder, uid: int, raw: bytes, view: MessageView) -> str:
    facts = (await ctx.deps.store.get_facts(ctx.account.id, folder.id, [uid]))[uid]
    if view.text_section:
        return part_text(raw, facts, view.text_section)
    if view.html_section:
        return mime.html_to_text(part_text(raw, facts, view.html_section)).strip()
    return ""


def _carry_of(folder: Folder, uid: int, view: MessageView) -> tuple[tuple[str, str], ...]:
    return tuple((f"{folder.id}.{uid}.{a.section}", a.filename) for a in view.attachments)


async def compose_page(request: Request) -> Response:
    """GET /compose: a new message, a reply, a forward or a saved draft."""
    ctx = await require_login(request)
    if not isinstance(ctx, Ctx):
        return ctx
    q = request.query_params
    signature = ctx.prefs.signature
    draft = Draft(to=q.get("to", "")[:2000], body=f"\n\n-- \n{signature}" if signature else "")
    reply_ref = forward_ref = draft_ref = ""
    if (ref := q.get("reply")) and (found := await _message(ctx, ref)):
        folder, uid, raw, view = found
        mine = {i.address.lower() for i in await identities(ctx)}
        text = await _plain(ctx, folder, uid, raw, view)
        draft = reply_draft(
            view, text, reply_all=q.get("all") == "1", mine=mine, signature=signature
        )
        reply_ref = ref
    elif (ref := q.get("forward")) and (found := await _message(ctx, ref)):
        folder, uid, raw, view = found
        if q.get("attach") == "1":
            name = attachment_name_for(view)
            draft = Draft(
                subject=f"Fwd: {view.subject}",
                body=draft.body,
                carry=((f"{folder.id}.{uid}.msg", name),),
            )
        else:
            text = await _plain(ctx, folder, uid, raw, view)
            draft = forward_draft(
                view, text, carry=_carry_of(folder, uid, view), signature=signature
            )
        forward_ref = ref
    elif (ref := q.get("draft")) and (found := await _message(ctx, ref)):
        folder, uid, raw, view = found
        header = mime.parse_header(raw, 0, len(raw))
        draft = Draft(
            to=", ".join(str(a) for a in view.to),
            cc=", ".join(str(a) for a in view.cc),
            bcc=mime.decode_words(header.joined("bcc") or ""),
            subject=view.subject,
            body=await _plain(ctx, folder, uid, raw, view),
            in_reply_to=mime.utf8(header.first("in-reply-to") or "").strip(),
            references=" ".join(view.references),
            carry=_carry_of(folder, uid, view),
        )
        draft_ref = str(uid)
    return await _form(
        ctx, draft, reply_ref=reply_ref, forward_ref=forward_ref, draft_ref=draft_ref
    )


def attachment_name_for(view: MessageView) -> str:
    """A file name for a message forwarded as an attachment."""
    base = "".join(ch for ch in view.subject if ch.isalnum() or ch in " -_")[:60].strip()
    return f"{base or 'message'}.eml"


async def _form(
    ctx: Ctx,
    draft: Draft,
    *,
    reply_ref: str = "",
    forward_ref: str = "",
    draft_ref: str = "",
    sender: str = "",
    error: str = "",
) -> Response:
    ids = await identities(ctx)
    chosen = sender or ctx.prefs.identity or ctx.account.address
    nav = await folder_infos(ctx)
    return render(
        ctx,
        ctx.request,
        "compose.html",
        status_code=400 if error else 200,
        nav=nav,
        draft=draft,
        identities=ids,
        chosen=chosen.lower(),
        reply_ref=reply_ref,
        forward_ref=forward_ref,
        draft_ref=draft_ref,
        error=error,
    )


def _text(form: FormData, name: str, limit: int = 5_000_000) -> str:
    value = form.get(name)
    return value[:limit] if isinstance(value, str) else ""


async def _resolve_carry(
    ctx: Ctx, tokens: list[str]
) -> tuple[list[Upload], list[tuple[str, bytes]]]:
    uploads: list[Upload] = []
    messages: list[tuple[str, bytes]] = []
    store = ctx.deps.store
    for token in tokens[:MAX_FILES]:
        parts = token.split(".", 2)
        if len(parts) != 3 or not (parts[0].isdigit() and parts[1].isdigit()):
            continue
        folder = await ctx.folder(int(parts[0]))
        uid = int(parts[1])
        facts = (await store.get_facts(ctx.account.id, folder.id, [uid])).get(uid)
        if facts is None:
            raise ComposeError(_("An attachment is no longer available."))
        raw = await store.read_message(ctx.account.id, folder.id, uid)
        if parts[2] == "msg":
            messages.append((attachment_name_for(view_of(raw, facts)), raw))
            continue
        found = decoded_part(raw, facts, parts[2])
        if found is None:
            raise ComposeError(_("An attachment is no longer available."))
        part, data = found
        name = attachment_name(part)
        if part.content_type == "message/rfc822":
            messages.append((name, data))
        else:
            uploads.append(Upload(name, part.content_type, data))
    return uploads, messages


async def _outgoing(ctx: Ctx, form: FormData, *, sending: bool) -> Outgoing:
    ids = {i.address.lower(): i for i in await identities(ctx)}
    identity = ids.get(_text(form, "from", 400).lower())
    if identity is None:
        raise ComposeError(_("Choose one of your addresses as the sender."))
    try:
        to = parse_recipients(_text(form, "to", 20_000))
        cc = parse_recipients(_text(form, "cc", 20_000))
        bcc = parse_recipients(_text(form, "bcc", 20_000))
    except RecipientError as exc:
        if sending:
            raise ComposeError(str(exc)) from None
        to = cc = bcc = ()
    uploads: list[Upload] = []
    total = 0
    files = [f for f in form.getlist("files") if isinstance(f, UploadFile) and f.filename]
    if len(files) > MAX_FILES:
        raise ComposeError(_("Too many attachments."))
    for upload in files:
        data = await upload.read()
        total += len(data)
        if total > ctx.deps.max_upload:
            raise ComposeError(_("The attachments are too large."))
        name = (upload.filename or "file").replace("\\", "/").rsplit("/", 1)[-1][:200]
        uploads.append(Upload(name, upload.content_type or "application/octet-stream", data))
    carried, messages = await _resolve_carry(
        ctx, [t.split(":", 1)[0] for t in form.getlist("carry") if isinstance(t, str)]
    )
    in_reply_to = _text(form, "in_reply_to", 1000).strip()
    refs = tuple(_text(form, "references", 20_000).split())
    return Outgoing(
        from_addr=identity.address,
        from_name=identity.name,
        to=to,
        cc=cc,
        bcc=bcc,
        subject=_text(form, "subject", 1000).replace("\r", " ").replace("\n", " "),
        body=_text(form, "body"),
        in_reply_to=in_reply_to if in_reply_to.startswith("<") else None,
        references=tuple(r for r in refs if r.startswith("<"))[-20:],
        attachments=(*carried, *uploads),
        attached_messages=tuple(messages),
    )


async def _drop_draft(ctx: Ctx, drafts: Folder | None, ref: str) -> None:
    if drafts is None or not ref.isdigit():
        return
    store = ctx.deps.store
    await store.store_flags(ctx.account.id, drafts.id, [int(ref)], ["\\Deleted"], FlagMode.ADD)
    await store.expunge(ctx.account.id, drafts.id, [int(ref)])


async def _save_draft(ctx: Ctx, out: Outgoing, old_ref: str) -> tuple[Folder, int]:
    store = ctx.deps.store
    drafts = await ctx.special(SpecialUse.DRAFTS)
    if drafts is None:
        drafts = await store.create_folder(ctx.account.id, "Drafts", SpecialUse.DRAFTS)
    _sent, copy, _mid = build_message(out, hostname=ctx.deps.hostname, now=ctx.deps.clock())
    result = await store.append(ctx.account.id, drafts.name, copy, flags=["\\Draft", "\\Seen"])
    await _drop_draft(ctx, drafts, old_ref)
    return drafts, result.uid


async def _flag_ref(ctx: Ctx, ref: str, flag: str) -> None:
    fid, _sep, uid = ref.partition(".")
    if not (fid.isdigit() and uid.isdigit()):
        return
    try:
        folder = await ctx.folder(int(fid))
        await ctx.deps.store.store_flags(
            ctx.account.id, folder.id, [int(uid)], [flag], FlagMode.ADD
        )
    except (HTTPException, NotFound):
        return


async def compose_post(request: Request) -> Response:
    """POST /compose: send the message or save it as a draft."""
    ctx = await require_login(request)
    if not isinstance(ctx, Ctx):
        return ctx
    form = await request.form(
        max_files=MAX_FILES, max_fields=500, max_part_size=ctx.deps.max_upload
    )
    try:
        return await _compose_post(ctx, request, form)
    finally:
        await form.close()  # uploads are spooled to temporary files


async def _compose_post(ctx: Ctx, request: Request, form: FormData) -> Response:
    check_csrf(ctx, form)
    autosave = request.url.path.endswith("/autosave")
    sending = form.get("action") == "send" and not autosave
    draft_ref = _text(form, "draft_ref", 20)
    reply_ref = _text(form, "reply_ref", 40)
    forward_ref = _text(form, "forward_ref", 40)
    try:
        out = await _outgoing(ctx, form, sending=sending)
        if not sending:
            drafts, uid = await _save_draft(ctx, out, draft_ref)
            if autosave:
                facts = (await ctx.deps.store.get_facts(ctx.account.id, drafts.id, [uid]))[uid]
                raw = await ctx.deps.store.read_message(ctx.account.id, drafts.id, uid)
                carry = _carry_of(drafts, uid, view_of(raw, facts))
                return JSONResponse({"draft": str(uid), "carry": carry})
            ctx.session.flash(_("Draft saved."))
            return redirect(f"/compose?draft={drafts.id}.{uid}")
        to_send, copy, _mid = build_message(out, hostname=ctx.deps.hostname, now=ctx.deps.clock())
        await ctx.deps.submitter.submit(
            ctx.account,
            out.from_addr,
            out.recipients,
            to_send,
            peer_ip=str(peer_of(request, ctx.deps).address),
        )
    except (ComposeError, SendRefused) as exc:
        if autosave:
            return JSONResponse({"error": str(exc)}, status_code=400)
        draft = _redraft(form)
        return await _form(
            ctx,
            draft,
            reply_ref=reply_ref,
            forward_ref=forward_ref,
            draft_ref=draft_ref,
            sender=_text(form, "from", 400),
            error=str(exc),
        )
    except QuotaExceeded:
        ctx.session.flash(_("Your mailbox is full: delete some mail first."), "error")
        return redirect("/mail")
    sent = await ctx.special(SpecialUse.SENT)
    if sent is not None:
        try:
            await ctx.deps.store.append(ctx.account.id, sent.name, copy, flags=["\\Seen"])
        except QuotaExceeded:
            ctx.session.flash(_("Sent, but no copy was kept: your mailbox is full."), "error")
    if reply_ref:
        await _flag_ref(ctx, reply_ref, "\\Answered")
    if forward_ref:
        await _flag_ref(ctx, forward_ref, "$Forwarded")  # RFC 5550 §5.9
    await _drop_draft(ctx, await ctx.special(SpecialUse.DRAFTS), draft_ref)
    ctx.session.flash(_("Message sent."))
    return redirect("/mail")


def _redraft(form: FormData) -> Draft:
    carry = [t.split(":", 1) for t in form.getlist("carry") if isinstance(t, str)]
    return Draft(
        to=_text(form, "to", 20_000),
        cc=_text(form, "cc", 20_000),
        bcc=_text(form, "bcc", 20_000),
        subject=_text(form, "subject", 1000),
        body=_text(form, "body"),
        in_reply_to=_text(form, "in_reply_to", 1000),
        references=_text(form, "references", 20_000),
        carry=tuple((c[0], c[1] if len(c) > 1 else "") for c in carry),
    )


routes = [
    Route("/compose", compose_page, methods=["GET"]),
    Route("/compose", compose_post, methods=["POST"]),
    Route("/compose/autosave", compose_post, methods=["POST"]),
]
