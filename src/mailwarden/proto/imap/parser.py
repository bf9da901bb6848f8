"""Parser: the octets of one complete command -> a :mod:`.commands` value.

Theory of operation: the session's framer (:mod:`.framing`) has already
assembled the command exactly as it came over the wire, literals included
(``{n}`` CRLF then ``n`` octets).  Because the framer only accepted a literal
marker at the end of a line and then counted its octets, a ``{n}`` found here
at a string position is trustworthy; literal content is consumed by length and
never scanned.  Every rule below cites the ABNF of RFC 3501 §9 or the extension
that adds it.  Anything that does not fit raises :class:`.errors.BadCommand`
with a short text saying what was expected.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime

from mailwarden.proto.imap import commands as c
from mailwarden.proto.imap.lexer import _MAX_MODSEQ, _TAG, parse_tag
from mailwarden.proto.imap.mutf7 import MUtf7Error, decode_mutf7
from mailwarden.proto.imap.parse_selected import SelectedRules

__all__ = ["STATUS_ITEMS", "Parser", "parse_command", "parse_tag"]

_BASE64 = re.compile(rb"[A-Za-z0-9+/]*={0,2}")
STATUS_ITEMS = frozenset(
    {
        "MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "HIGHESTMODSEQ", "SIZE",
        "DELETED", "APPENDLIMIT",
    }
)  # fmt: skip


def parse_command(data: bytes, *, utf8: bool = False) -> c.Command:
    """Parse one complete command (without its final CRLF).

    Args:
        data: the command octets as framed, literals inline.
        utf8: UTF8=ACCEPT is enabled (RFC 6855): quoted mailbox names are UTF-8.

    Returns:
        The command value.

    Raises:
        BadCommand: the octets are not a valid command; ``tag`` is set when the
            tag could be read.
    """
    return Parser(data, utf8=utf8).command()


class Parser(SelectedRules):
    """A cursor over one command's octets with one method per ABNF rule."""

    __slots__ = ()

    # --- the command ----------------------------------------------------------

    def command(self) -> c.Command:
        """RFC 3501 §9 command = tag SP (command-any / command-auth / ...) CRLF."""
        self.tag = self.regex(_TAG, "a tag").decode("ascii")
        self.sp()
        name = self.keyword()
        uid = False
        if name == "UID":
            # RFC 3501 §6.4.8 and UIDPLUS/MOVE/SORT: UID prefixes these only
            uid = True
            self.sp()
            name = self.keyword()
            if name not in (
                "FETCH",
                "STORE",
                "COPY",
                "MOVE",
                "SEARCH",
                "EXPUNGE",
                "SORT",
                "THREAD",
            ):
                raise self.fail(f"UID {name} is not a command")
        handler = _HANDLERS.get(name)
        if handler is None:
            raise self.fail(f"Unknown command {name}")
        cmd = handler(self, self.tag, uid)
        self.end()
        return cmd

    # --- any state -------------------------------------------------------------

    def p_authenticate(self, tag: str, uid: bool) -> c.Command:
        # RFC 3501 §6.2.2; RFC 4959 §7: [SP initial-resp], initial-resp = base64 / "="
        self.sp()
        mech = self.keyword()
        initial: bytes | None = None
        if self.try_sp():
            initial = self.regex(_BASE64, "a base64 initial response")
            if not initial:
                raise self.fail("Empty initial response (send '=' for an empty one)")
        return c.Authenticate(tag, mech, initial)

    def p_login(self, tag: str, uid: bool) -> c.Command:
        self.sp()
        user = self.text_astring()
        self.sp()
        password = self.text_astring()
        return c.Login(tag, user, password)

    def p_enable(self, tag: str, uid: bool) -> c.Command:
        caps = []
        self.sp()
        caps.append(self.keyword())
        while self.try_sp():
            caps.append(self.keyword())
        return c.Enable(tag, tuple(caps))

    def p_id(self, tag: str, uid: bool) -> c.Command:
        # RFC 2971 §4: id_params_list ::= "(" #(string SPACE nstring) ")" / nil
        self.sp()
        if self.take(b"NIL"):
            return c.Id(tag, None)
        self.paren_open()
        params: list[tuple[str, str | None]] = []
        while self.peek() != 0x29:
            if params:
                self.sp()
            key = self.string().decode("utf-8", "replace")
            self.sp()
            value = self.nstring()
            params.append((key, None if value is None else value.decode("utf-8", "replace")))
            if len(params) > 30:  # RFC 2971 §3.3: at most 30 field-value pairs
                raise self.fail("Too many ID parameters")
        self.paren_close()
        return c.Id(tag, tuple(params))

    def p_compress(self, tag: str, uid: bool) -> c.Command:
        self.sp()
        return c.Compress(tag, self.keyword())

    # --- authenticated state ---------------------------------------------------

    def _select_params(self) -> tuple[bool, c.QresyncParams | None]:
        # RFC 4466 §2.1 select-params; RFC 7162 §3.1.8 CONDSTORE, §3.2.5 QRESYNC
        condstore = False
        qresync = None
        if not self.try_sp():
            return False, None
        self.paren_open()
        while True:
            name = self.keyword()
            if name == "CONDSTORE":
                condstore = True
            elif name == "QRESYNC":
                self.sp()
                self.paren_open()
                uidvalidity = self.number(nz=True)
                self.sp()
                modseq = self.number(limit=_MAX_MODSEQ)
                known = None
                match = None
                if self.try_sp():
                    if self.peek() != 0x28:
                        known = self.qresync_set()
                        self.try_sp()
                    if self.peek() == 0x28:
                        # seq-match-data = "(" known-sequence-set SP known-uid-set ")"
                        self.paren_open()
                        seqs = self.qresync_set()
                        self.sp()
                        uids = self.qresync_set()
                        self.paren_close()
                        if _count(seqs) != _count(uids):
                            raise self.fail("QRESYNC sequence match sets differ in size")
                        match = (seqs, uids)
                self.paren_close()
                qresync = c.QresyncParams(uidvalidity, modseq, known, match)
            else:
                raise self.fail(f"Unknown SELECT parameter {name}")
            if not self.try_sp():
                break
        self.paren_close()
        return condstore, qresync

    def qresync_set(self) -> c.SequenceSet:
        # RFC 7162 §7: known-uids and seq-match-data are sets without "*" (or "$")
        start = self.pos
        seqs = self.seqset()
        if seqs.saved or any(None in r for r in seqs.ranges):
            self.pos = start
            raise self.fail("QRESYNC sets name numbers, not '*' or '$'")
        return seqs

    def p_select(self, tag: str, uid: bool) -> c.Command:
        self.sp()
        box = self.mailbox()
        condstore, qresync = self._select_params()
        return c.Select(tag, box, condstore, qresync)

    def p_examine(self, tag: str, uid: bool) -> c.Command:
        self.sp()
        box = self.mailbox()
        condstore, qresync = self._select_params()
        return c.Examine(tag, box, condstore, qresync)

    def p_create(self, tag: str, uid: bool) -> c.Command:
        self.sp()
        box = self.mailbox()
        uses: list[str] = []
        if self.try_sp():
            # RFC 6154 §3: create-param =/ "USE" SP "(" [use-attr *(SP use-attr)] ")"
            self.paren_open()
            self.expect(b"USE")
            self.sp()
            uses.extend(self.flag_list())
            self.paren_close()
        return c.Create(tag, box, tuple(uses))

    def p_delete(self, tag: str, uid: bool) -> c.Command:
        self.sp()
        return c.Delete(tag, self.mailbox())

    def p_rename(self, tag: str, uid: bool) -> c.Command:
        self.sp()
        old = self.mailbox()
        self.sp()
        return c.Rename(tag, old, self.mailbox())

    def p_subscribe(self, tag: str, uid: bool) -> c.Command:
        self.sp()
        return c.Subscribe(tag, self.mailbox())

    def p_unsubscribe(self, tag: str, uid: bool) -> c.Command:
        self.sp()
        return c.Unsubscribe(tag, self.mailbox())

    def p_list(self, tag: str, uid: bool) -> c.Command:
        # RFC 5258 §6: list = "LIST" [SP list-select-opts] SP mailbox SP mbox-or-pat
        #                     [SP list-return-opts]
        self.sp()
        select: list[str] = []
        extended = False
        if self.peek() == 0x28:
            extended = True
            self.paren_open()
            while self.peek() != 0x29:
                if select:
                    self.sp()
                select.append(self.keyword())
            self.paren_close()
            self.sp()
        ref = self.mailbox_ref()
        self.sp()
        patterns: list[str] = []
        if self.peek() == 0x28:
            extended = True
            self.paren_open()
            patterns.append(self.list_mailbox())
            while self.try_sp():
                patterns.append(self.list_mailbox())
            self.paren_close()
        else:
            patterns.append(self.list_mailbox())
        ret: list[str] = []
        status: tuple[str, ...] = ()
        if self.try_sp():
            extended = True
            self.expect(b"RETURN")
            self.sp()
            self.paren_open()
            while self.peek() != 0x29:
                if ret:
                    self.sp()
                opt = self.keyword()
                ret.append(opt)
                if opt == "STATUS":
                    # RFC 5819 §2: return-option =/ "STATUS" SP "(" status-att-list ")"
                    self.sp()
                    status = self.status_atts()
            self.paren_close()
        for opt in select:
            if opt not in ("SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"):
                raise self.fail(f"Unknown LIST selection option {opt}")
        if "RECURSIVEMATCH" in select and len(select) == 1:
            # RFC 5258 §3.1: RECURSIVEMATCH alone is an error
            raise self.fail("RECURSIVEMATCH needs another selection option")
        for opt in ret:
            if opt not in ("SUBSCRIBED", "CHILDREN", "SPECIAL-USE", "STATUS"):
                raise self.fail(f"Unknown LIST return option {opt}")
        return c.List(tag, ref, tuple(patterns), tuple(select), tuple(ret), status, extended)

    def mailbox_ref(self) -> str:
        """A LIST/LSUB reference: like a mailbox but without INBOX folding."""
        raw = self.astring()
        if self.utf8:
            # RFC 6855 §3, RFC 9051 §5.1: UTF-8, as mailbox names are then
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError:
                raise self.fail("Reference name is not valid UTF-8") from None
        try:
            return decode_mutf7(raw)
        except MUtf7Error as exc:
            raise self.fail(f"Bad reference name: {exc}") from None

    def p_lsub(self, tag: str, uid: bool) -> c.Command:
        self.sp()
        ref = self.mailbox_ref()
        self.sp()
        return c.Lsub(tag, ref, self.list_mailbox())

    def status_atts(self) -> tuple[str, ...]:
        self.paren_open()
        items = [self.keyword()]
        while self.try_sp():
            items.append(self.keyword())
        self.paren_close()
        for item in items:
            if item not in STATUS_ITEMS:
                raise self.fail(f"Unknown STATUS item {item}")
        return tuple(items)

    def p_status(self, tag: str, uid: bool) -> c.Command:
        self.sp()
        box = self.mailbox()
        self.sp()
        return c.Status(tag, box, self.status_atts())

    def p_append(self, tag: str, uid: bool) -> c.Command:
        # RFC 3501 §9: append = "APPEND" SP mailbox [SP flag-list] [SP date-time] SP literal
        self.sp()
        box = self.mailbox()
        self.sp()
        flags: tuple[str, ...] = ()
        when: datetime | None = None
        if self.peek() == 0x28:
            flags = self.flag_list()
            self.sp()
        if self.peek() == 0x22:
            when = self.date_time()
            self.sp()
        utf8 = False
        if self.take(b"UTF8 ("):
            # RFC 6855 §4: append-data =/ "UTF8" SP "(" literal8 ")"
            utf8 = True
            msg = self.literal()
            self.expect(b")")
        else:
            msg = self.literal()
        return c.Append(tag, box, flags, when, msg, utf8)

    def p_getquota(self, tag: str, uid: bool) -> c.Command:
        self.sp()
        return c.GetQuota(tag, self.text_astring())

    def p_getquotaroot(self, tag: str, uid: bool) -> c.Command:
        self.sp()
        return c.GetQuotaRoot(tag, self.mailbox())

    def p_setquota(self, tag: str, uid: bool) -> c.Command:
        # RFC 9208 §4.1.4: setquota = "SETQUOTA" SP quota-root-name SP setquota-list
        self.sp()
        root = self.text_astring()
        self.sp()
        self.paren_open()
        limits: list[tuple[str, int]] = []
        while self.peek() != 0x29:
            if limits:
                self.sp()
            name = self.keyword()
            self.sp()
            limits.append((name, self.number(limit=_MAX_MODSEQ)))
        self.paren_close()
        return c.SetQuota(tag, root, tuple(limits))


def _count(seqs: c.SequenceSet) -> int:
    """How many numbers a set without ``*`` names."""
    return sum(hi - lo + 1 for lo, hi in seqs.resolve(0))


def _simple(
    cls: type[
        c.Capability
        | c.Noop
        | c.Logout
        | c.StartTls
        | c.Namespace
        | c.Idle
        | c.Check
        | c.Close
        | c.Unselect
    ],
) -> _Handler:
    def handler(p: Parser, tag: str, uid: bool) -> c.Command:
        return cls(tag)

    return handler


_Handler = Callable[[Parser, str, bool], c.Command]

_HANDLERS: dict[str, _Handler] = {
    "CAPABILITY": _simple(c.Capability),
    "NOOP": _simple(c.Noop),
    "LOGOUT": _simple(c.Logout),
    "STARTTLS": _simple(c.StartTls),
    "NAMESPACE": _simple(c.Namespace),
    "IDLE": _simple(c.Idle),
    "CHECK": _simple(c.Check),
    "CLOSE": _simple(c.Close),
    "UNSELECT": _simple(c.Unselect),
    "AUTHENTICATE": Parser.p_authenticate,
    "LOGIN": Parser.p_login,
    "ENABLE": Parser.p_enable,
    "ID": Parser.p_id,
    "COMPRESS": Parser.p_compress,
    "SELECT": Parser.p_select,
    "EXAMINE": Parser.p_examine,
    "CREATE": Parser.p_create,
    "DELETE": Parser.p_delete,
    "RENAME": Parser.p_rename,
    "SUBSCRIBE": Parser.p_subscribe,
    "UNSUBSCRIBE": Parser.p_unsubscribe,
    "LIST": Parser.p_list,
    "LSUB": Parser.p_lsub,
    "STATUS": Parser.p_status,
    "APPEND": Parser.p_append,
    "GETQUOTA": Parser.p_getquota,
    "GETQUOTAROOT": Parser.p_getquotaroot,
    "SETQUOTA": Parser.p_setquota,
    "EXPUNGE": Parser.p_expunge,
    "COPY": Parser.p_copy,
    "MOVE": Parser.p_move,
    "STORE": Parser.p_store,
    "FETCH": Parser.p_fetch,
    "SEARCH": Parser.p_search,
    "SORT": Parser.p_sort,
    "THREAD": Parser.p_thread,
}
