"""Commands back to octets: the inverse of :mod:`.parser`.

Used by tests (``parse_command(render_command(x)) == x``) and by tools that
play the client.  Strings are sent as quoted strings or literals (non-
synchronizing ``{n+}`` so one call yields the whole command), mailbox names
in modified UTF-7.
"""

from __future__ import annotations

from datetime import date
from typing import assert_never

from mailwarden.proto.imap import commands as c
from mailwarden.proto.imap.mutf7 import encode_mutf7
from mailwarden.proto.imap.responses import imap_date_time, quoted

__all__ = ["render_command", "render_search_key", "render_seqset"]

_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def _str(data: bytes | str) -> bytes:
    if isinstance(data, str):
        data = data.encode("utf-8")
    if len(data) < 256 and all(0x20 <= b < 0x7F for b in data):
        return quoted(data)
    return b"{%d+}\r\n" % len(data) + data


def _mbox(name: str) -> bytes:
    return _str(encode_mutf7(name))


def render_seqset(s: c.SequenceSet) -> bytes:
    """``1:3,5,7:*``."""
    if s.saved:
        return b"$"

    def one(n: int | None) -> str:
        return "*" if n is None else str(n)

    return ",".join(one(lo) if lo == hi else f"{one(lo)}:{one(hi)}" for lo, hi in s.ranges).encode(
        "ascii"
    )


def _date(d: date) -> bytes:
    return f"{d.day}-{_MONTHS[d.month - 1]}-{d.year:04d}".encode("ascii")


def render_search_key(key: c.SearchKey) -> bytes:
    """One search key (RFC 3501 §6.4.4)."""
    match key:
        case c.SearchAnd(keys):
            if not keys:
                return b"ALL"
            return b"(" + b" ".join(render_search_key(k) for k in keys) + b")"
        case c.SearchFlag(flag, present):
            system = {
                "\\ANSWERED": "ANSWERED", "\\DELETED": "DELETED", "\\DRAFT": "DRAFT",
                "\\FLAGGED": "FLAGGED", "\\SEEN": "SEEN",
            }  # fmt: skip
            name = system.get(flag.upper())
            if flag.upper() == "\\RECENT":
                return b"RECENT" if present else b"OLD"
            if name is not None:
                return (name if present else "UN" + name).encode("ascii")
            return (b"KEYWORD " if present else b"UNKEYWORD ") + flag.encode("utf-8")
        case c.SearchText(field, value):
            return field.encode("ascii") + b" " + _str(value)
        case c.SearchHeader(field, value):
            return b"HEADER " + _str(field) + b" " + _str(value)
        case c.SearchDate(op, sent, day):
            return (b"SENT" if sent else b"") + op.encode("ascii") + b" " + _date(day)
        case c.SearchNumber(op, value):
            return op.encode("ascii") + b" %d" % value
        case c.SearchSet(uid, seqs):
            return (b"UID " if uid else b"") + render_seqset(seqs)
        case c.SearchModseq(modseq, entry, entry_type):
            if entry is not None and entry_type is not None:
                return b"MODSEQ %s %s %d" % (quoted(entry.encode()), entry_type.encode(), modseq)
            return b"MODSEQ %d" % modseq
        case c.SearchNot(inner):
            return b"NOT " + render_search_key(inner)
        case c.SearchOr(left, right):
            return b"OR " + render_search_key(left) + b" " + render_search_key(right)
        case _:  # pragma: no cover - exhaustive
            assert_never(key)


def _criteria(keys: c.SearchAnd) -> bytes:
    if not keys.keys:
        return b"ALL"
    return b" ".join(render_search_key(k) for k in keys.keys)


def _section(s: c.Section) -> bytes:
    parts = [".".join(str(n) for n in s.part)] if s.part else []
    if s.text is not None:
        text: str = s.text
        if s.fields:
            text += " (" + " ".join(s.fields) + ")"
        parts.append(text)
    return b"[" + ".".join(parts).encode("ascii") + b"]"


def _fetch_att(a: c.FetchAtt) -> bytes:
    if a.section is None:
        return a.name.encode("ascii")
    if a.name == "BODY[]":
        name = b"BODY.PEEK" if a.peek else b"BODY"
    elif a.name == "BINARY":
        name = b"BINARY.PEEK" if a.peek else b"BINARY"
    else:
        name = a.name.encode("ascii")
    out = name + _section(a.section)
    if a.partial is not None:
        out += b"<%d.%d>" % a.partial
    return out


def _flags(flags: tuple[str, ...]) -> bytes:
    return b"(" + " ".join(flags).encode("utf-8") + b")"


def _select(name: bytes, cmd: c.Select | c.Examine) -> bytes:
    out = cmd.tag.encode() + b" " + name + b" " + _mbox(cmd.mailbox)
    params: list[bytes] = []
    if cmd.condstore:
        params.append(b"CONDSTORE")
    if cmd.qresync is not None:
        q = cmd.qresync
        inner = b"%d %d" % (q.uidvalidity, q.modseq)
        if q.known_uids is not None:
            inner += b" " + render_seqset(q.known_uids)
        if q.seq_match is not None:
            inner += b" (" + render_seqset(q.seq_match[0]) + b" "
            inner += render_seqset(q.seq_match[1]) + b")"
        params.append(b"QRESYNC (" + inner + b")")
    if params:
        out += b" (" + b" ".join(params) + b")"
    return out


def render_command(cmd: c.Command) -> bytes:
    """The octets of a command, without the final CRLF."""
    t = cmd.tag.encode("ascii") + b" "
    uid = b"UID " if getattr(cmd, "uid", False) else b""
    match cmd:
        case (
            c.Capability() | c.Noop() | c.Logout() | c.StartTls() | c.Namespace() | c.Idle()
            | c.Check() | c.Close() | c.Unselect()
        ):  # fmt: skip
            return t + type(cmd).__name__.upper().encode("ascii")
        case c.Authenticate(_, mech, initial):
            out = t + b"AUTHENTICATE " + mech.encode("ascii")
            if initial is not None:
                out += b" " + initial
            return out
        case c.Login():
            return t + b"LOGIN " + _str(cmd.username) + b" " + _str(cmd.password)
        case c.Enable(_, caps):
            return t + b"ENABLE " + " ".join(caps).encode("ascii")
        case c.Id(_, params):
            if params is None:
                return t + b"ID NIL"
            body = b" ".join(_str(k) + b" " + (b"NIL" if v is None else _str(v)) for k, v in params)
            return t + b"ID (" + body + b")"
        case c.Compress(_, mech):
            return t + b"COMPRESS " + mech.encode("ascii")
        case c.Select():
            return _select(b"SELECT", cmd)
        case c.Examine():
            return _select(b"EXAMINE", cmd)
        case c.Create(_, box, uses):
            out = t + b"CREATE " + _mbox(box)
            return out + (b" (USE " + _flags(uses) + b")" if uses else b"")
        case c.Delete(_, box):
            return t + b"DELETE " + _mbox(box)
        case c.Rename(_, old, new):
            return t + b"RENAME " + _mbox(old) + b" " + _mbox(new)
        case c.Subscribe(_, box):
            return t + b"SUBSCRIBE " + _mbox(box)
        case c.Unsubscribe(_, box):
            return t + b"UNSUBSCRIBE " + _mbox(box)
        case c.List():
            out = t + b"LIST "
            if cmd.select_opts:
                out += b"(" + " ".join(cmd.select_opts).encode() + b") "
            out += _mbox(cmd.reference) + b" "
            if len(cmd.patterns) == 1 and not cmd.extended:
                out += _mbox(cmd.patterns[0])
            else:
                out += b"(" + b" ".join(_mbox(p) for p in cmd.patterns) + b")"
            if cmd.return_opts:
                opts = [
                    o + (" (" + " ".join(cmd.status_items) + ")" if o == "STATUS" else "")
                    for o in cmd.return_opts
                ]
                out += b" RETURN (" + " ".join(opts).encode() + b")"
            return out
        case c.Lsub(_, ref, pattern):
            return t + b"LSUB " + _mbox(ref) + b" " + _mbox(pattern)
        case c.Status(_, box, items):
            return t + b"STATUS " + _mbox(box) + b" (" + " ".join(items).encode() + b")"
        case c.Append():
            out = t + b"APPEND " + _mbox(cmd.mailbox) + b" "
            if cmd.flags:
                out += _flags(cmd.flags) + b" "
            if cmd.internal_date is not None:
                out += imap_date_time(cmd.internal_date) + b" "
            lit = b"~{%d+}\r\n" % len(cmd.message) + cmd.message
            return out + (b"UTF8 (" + lit + b")" if cmd.utf8 else lit[1:])
        case c.Expunge(_, uids):
            if uids is None:
                return t + b"EXPUNGE"
            return t + b"UID EXPUNGE " + render_seqset(uids)
        case c.Search():
            out = t + uid + b"SEARCH "
            if cmd.return_opts is not None:
                out += b"RETURN (" + " ".join(cmd.return_opts).encode() + b") "
            if cmd.charset is not None:
                out += b"CHARSET " + cmd.charset.encode() + b" "
            return out + _criteria(cmd.criteria)
        case c.Fetch():
            out = t + uid + b"FETCH " + render_seqset(cmd.set) + b" "
            if cmd.macro is not None:
                out += cmd.macro.encode()
            else:
                out += b"(" + b" ".join(_fetch_att(a) for a in cmd.items) + b")"
            mods = []
            if cmd.changedsince is not None:
                mods.append(b"CHANGEDSINCE %d" % cmd.changedsince)
            if cmd.vanished:
                mods.append(b"VANISHED")
            return out + (b" (" + b" ".join(mods) + b")" if mods else b"")
        case c.Store():
            out = t + uid + b"STORE " + render_seqset(cmd.set) + b" "
            if cmd.unchangedsince is not None:
                out += b"(UNCHANGEDSINCE %d) " % cmd.unchangedsince
            out += cmd.mode.encode() + b"FLAGS" + (b".SILENT" if cmd.silent else b"") + b" "
            return out + _flags(cmd.flags)
        case c.Copy(_, _, seqs, box):
            return t + uid + b"COPY " + render_seqset(seqs) + b" " + _mbox(box)
        case c.Move(_, _, seqs, box):
            return t + uid + b"MOVE " + render_seqset(seqs) + b" " + _mbox(box)
        case c.Sort():
            out = t + uid + b"SORT "
            if cmd.return_opts is not None:
                out += b"RETURN (" + " ".join(cmd.return_opts).encode() + b") "
            crit = " ".join(("REVERSE " if k.reverse else "") + k.key for k in cmd.criteria)
            out += b"(" + crit.encode() + b") " + cmd.charset.encode() + b" "
            return out + _criteria(cmd.search)
        case c.Thread():
            out = t + uid + b"THREAD " + cmd.algorithm.encode() + b" " + cmd.charset.encode()
            return out + b" " + _criteria(cmd.search)
        case c.GetQuota(_, root):
            return t + b"GETQUOTA " + _str(root)
        case c.GetQuotaRoot(_, box):
            return t + b"GETQUOTAROOT " + _mbox(box)
        case c.SetQuota(_, root, limits):
            body = " ".join(f"{k} {v}" for k, v in limits).encode()
            return t + b"SETQUOTA " + _str(root) + b" (" + body + b")"
        case _:  # pragma: no cover - exhaustive
            assert_never(cmd)
