"""The IMAP server's SEARCH, SORT and THREAD, with ESEARCH, ESORT and SEARCHRES.

Split from :mod:`mailwarden.servers.imap_mailbox` (the selected folder these
act on).  The rules are the pure ones of :mod:`mailwarden.proto.imap.search`
and :mod:`mailwarden.proto.imap.sortthread`; this module decides what to load.

Theory of operation.  A search first runs over the folder entries the session
already holds (:func:`~mailwarden.proto.imap.search.prefilter`): message
numbers, UIDs, flags, sizes, internal dates and modseqs decide most keys
without the store.  For the messages left undecided, TEXT and BODY keys are
answered by the store's text index (``MailStore.search_text``: the raw
header with subject and sender decoded, and the decoded text parts), which
usually decides the rest.  Only what is still undecided is loaded (facts
computed at delivery, and the raw header for HEADER and BCC), in chunks, the
next chunk loading while the current one is evaluated.

Result forms: ``* SEARCH`` (RFC 3501), ``* ESEARCH`` when RETURN options were
given (RFC 4731) or IMAP4rev2 is enabled (RFC 9051 §6.4.4), ``* SORT`` or, with
RETURN, ``* ESEARCH`` in sort order (ESORT, RFC 5267 §3.2).  ``RETURN (SAVE)``
keeps the result as ``$`` for later commands (SEARCHRES, RFC 5182), as UIDs,
and an answer made only of SAVE sends no ESEARCH (RFC 5182 §2.4).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from collections.abc import Set as AbstractSet
from typing import TYPE_CHECKING

from mailwarden.mail.facts import MessageFacts
from mailwarden.proto.imap import commands as c
from mailwarden.proto.imap.responses import Tagged, Untagged
from mailwarden.proto.imap.search import (
    SearchMessage,
    SearchNeeds,
    candidate_ranges,
    esearch_response,
    matches,
    prefilter,
    search_needs,
    text_keys,
)
from mailwarden.proto.imap.session import ImapSession
from mailwarden.proto.imap.sortthread import SortMessage, render_threads, sort_numbers, thread
from mailwarden.servers.imap_prefetch import chunked, load_ahead

if TYPE_CHECKING:
    from mailwarden.servers.imap_mailbox import SelectedFolder

__all__ = ["matching", "search", "sort", "thread_command", "to_save"]

_CHUNK = 512  # messages loaded per store round trip
_CHARSETS = ("UTF-8", "US-ASCII")
_RECENT = frozenset({"\\Recent"})
_DOLLAR = c.SequenceSet((), saved=True)
_Loaded = tuple[dict[int, MessageFacts], dict[int, bytes]]


def _uses_saved(key: c.SearchKey) -> bool:
    match key:
        case c.SearchSet(set=seqs):
            return seqs.saved
        case c.SearchNot(key=inner):
            return _uses_saved(inner)
        case c.SearchOr(left=a, right=b):
            return _uses_saved(a) or _uses_saved(b)
        case c.SearchAnd(keys=keys):
            return any(_uses_saved(k) for k in keys)
        case _:
            return False


def _uses_modseq(key: c.SearchKey) -> bool:
    match key:
        case c.SearchModseq():
            return True
        case c.SearchNot(key=inner):
            return _uses_modseq(inner)
        case c.SearchOr(left=a, right=b):
            return _uses_modseq(a) or _uses_modseq(b)
        case c.SearchAnd(keys=keys):
            return any(_uses_modseq(k) for k in keys)
        case _:
            return False


def to_save(options: Sequence[str], results: Sequence[int]) -> list[int]:
    """What ``RETURN (SAVE ...)`` keeps, by RFC 5182 §2.4.

    Args:
        options: the RETURN options (SAVE among them).
        results: the matching UIDs in result order (ascending for SEARCH, sort
            order for SORT).

    Returns:
        With MIN and/or MAX but neither ALL nor COUNT, only the first and/or
        last result; otherwise all of them.  Ascending, no repeats.
    """
    if not results:
        return []
    if ("MIN" in options or "MAX" in options) and not ("ALL" in options or "COUNT" in options):
        keep = set()
        if "MIN" in options:
            keep.add(results[0])
        if "MAX" in options:
            keep.add(results[-1])
        return sorted(keep)
    return sorted(set(results))


async def _load(sel: SelectedFolder, uids: list[int], needs: SearchNeeds) -> _Loaded:
    facts_call = sel.store.get_facts(sel.account, sel.folder_id, uids)
    if needs.header:
        facts, raws = await asyncio.gather(
            facts_call, sel.store.read_messages(sel.account, sel.folder_id, uids)
        )
        return facts, raws
    return await facts_call, {}


async def matching(sel: SelectedFolder, key: c.SearchKey) -> list[SearchMessage]:
    """The messages of the session's view that satisfy ``key``, by number."""
    view = sel.view
    # Keys answered by UID membership: "$" (RFC 5182 §2.1: it names messages,
    # so in a SEARCH by message numbers too), then TEXT and BODY (below)
    known: dict[c.SearchKey, AbstractSet[int]] = {}
    if _uses_saved(key):
        saved = sel.saved_uids()
        for by_uid in (False, True):
            known[c.SearchSet(by_uid, _DOLLAR)] = saved
    max_seq, max_uid = view.exists, view.max_uid
    found: list[SearchMessage] = []
    undecided: list[SearchMessage] = []
    vuids, vflags, vmodseqs, recent = view.uids, view.flags, view.modseqs, view.recent
    for first, last in candidate_ranges(key, vuids):
        for seq in range(first, last + 1):
            uid = vuids[seq - 1]
            e = sel.entry(uid)
            if e is None:
                continue
            flags = vflags.get(uid, e.flags)
            if recent and uid in recent:
                flags = flags | _RECENT
            msg = SearchMessage(
                seq, uid, flags, e.internal_date, e.size, vmodseqs.get(uid, e.modseq)
            )
            verdict = prefilter(key, msg, max_seq, max_uid, known)
            if verdict is None:
                undecided.append(msg)
            elif verdict:
                found.append(msg)
    if not undecided:
        return found
    # TEXT and BODY from the store's text index, for the undecided messages only
    uids = [m.uid for m in undecided]
    indexed = dict.fromkeys(text_keys(key))
    for tk in indexed:
        known[tk] = await sel.store.search_text(
            sel.account, sel.folder_id, tk.value, header=tk.field == "TEXT", body=True, uids=uids
        )
    if indexed:
        rest: list[SearchMessage] = []
        for msg in undecided:
            verdict = prefilter(key, msg, max_seq, max_uid, known)
            if verdict is None:
                rest.append(msg)
            elif verdict:
                found.append(msg)
        undecided = rest
    needs = search_needs(key, known)

    def load(chunk: Sequence[SearchMessage]) -> Awaitable[_Loaded]:
        return _load(sel, [m.uid for m in chunk], needs)

    async with load_ahead(chunked(undecided, _CHUNK), load) as loaded_chunks:
        async for chunk, (facts, raws) in loaded_chunks:
            for msg in chunk:
                f = facts.get(msg.uid)
                if f is None:
                    continue  # expunged meanwhile
                msg.facts = f
                if needs.header:
                    raw = raws.get(msg.uid)
                    if raw is None:
                        continue
                    msg.header = raw[: f.header_end]
                if matches(key, msg, max_seq, max_uid, known):
                    found.append(msg)
                msg.header = None  # keep memory down
    found.sort(key=lambda m: m.seq)
    return found


def _charset_ok(tag: str, charset: str | None, session: ImapSession) -> bool:
    if charset is None or charset in _CHARSETS:
        return True
    # RFC 3501 §6.4.4: BADCHARSET lists what we support
    session.send(Tagged(tag, "NO", "Unsupported charset", "BADCHARSET (UTF-8 US-ASCII)"))
    return False


async def search(sel: SelectedFolder, cmd: c.Search, session: ImapSession) -> None:
    """SEARCH / UID SEARCH (RFC 3501 §6.4.4, RFC 4731, RFC 5182, RFC 9051 §6.4.4)."""
    ret = cmd.return_opts
    if ret is None and session.rev2:
        ret = ()  # RFC 9051 §6.4.4: IMAP4rev2 answers with ESEARCH, ALL by default
    save = ret is not None and "SAVE" in ret
    if not _charset_ok(cmd.tag, cmd.charset, session):
        if save:
            sel.saved = []  # RFC 5182 §2.1: a failed SAVE leaves "$" empty
        return
    found = await matching(sel, cmd.criteria)
    nums = [m.uid if cmd.uid else m.seq for m in found]
    modseq = None
    if _uses_modseq(cmd.criteria):
        modseq = max((m.modseq for m in found), default=0)
    if ret is None:
        line = b"SEARCH" + b"".join(b" %d" % n for n in nums)
        if modseq and nums:
            line += b" (MODSEQ %d)" % modseq
        session.send(Untagged(line))
    else:
        if save:
            sel.saved = to_save(ret, [m.uid for m in found])
        if set(ret) != {"SAVE"}:
            session.send(Untagged(esearch_response(cmd.tag, cmd.uid, ret, nums, modseq)))
    session.send(Tagged(cmd.tag, "OK", "SEARCH completed"))


async def _sort_messages(sel: SelectedFolder, key: c.SearchAnd, uid: bool) -> list[SortMessage]:
    found = await matching(sel, key)
    facts: dict[int, MessageFacts] = {}
    for m in found:
        if m.facts is not None:
            facts[m.uid] = m.facts
    missing = [m.uid for m in found if m.facts is None]
    for start in range(0, len(missing), _CHUNK):
        part = missing[start : start + _CHUNK]
        facts.update(await sel.store.get_facts(sel.account, sel.folder_id, part))
    return [
        SortMessage(m.uid if uid else m.seq, m.seq, m.internal_date, m.size, facts[m.uid])
        for m in found
        if m.uid in facts
    ]


async def sort(sel: SelectedFolder, cmd: c.Sort, session: ImapSession) -> None:
    """SORT / UID SORT (RFC 5256 §3), with RETURN: ESORT (RFC 5267 §3) and SAVE."""
    ret = cmd.return_opts
    save = ret is not None and "SAVE" in ret
    if not _charset_ok(cmd.tag, cmd.charset, session):
        if save:
            sel.saved = []
        return
    msgs = await _sort_messages(sel, cmd.search, cmd.uid)
    nums = sort_numbers(msgs, cmd.criteria)
    if ret is None:
        session.send(Untagged(b"SORT" + b"".join(b" %d" % n for n in nums)))
    else:
        if save:
            uids = sel.view.uids
            sel.saved = to_save(ret, nums if cmd.uid else [uids[n - 1] for n in nums])
        if set(ret) != {"SAVE"}:
            session.send(Untagged(esearch_response(cmd.tag, cmd.uid, ret, nums, ordered=True)))
    session.send(Tagged(cmd.tag, "OK", "SORT completed"))


async def thread_command(sel: SelectedFolder, cmd: c.Thread, session: ImapSession) -> None:
    """THREAD / UID THREAD (RFC 5256 §3): REFERENCES and ORDEREDSUBJECT."""
    if cmd.algorithm not in ("REFERENCES", "ORDEREDSUBJECT"):
        session.send(Tagged(cmd.tag, "BAD", f"Unknown threading algorithm {cmd.algorithm}"))
        return
    if not _charset_ok(cmd.tag, cmd.charset, session):
        return
    msgs = await _sort_messages(sel, cmd.search, cmd.uid)
    session.send(Untagged(render_threads(thread(msgs, cmd.algorithm))))
    session.send(Tagged(cmd.tag, "OK", "THREAD completed"))
