"""Parser rules for the selected-state commands: FETCH, STORE, SEARCH, SORT, THREAD...

Split from :mod:`.parser` to keep files short; see there for the theory of operation.
"""

from __future__ import annotations

import re
from typing import Literal

from mailwarden.proto.imap import commands as c
from mailwarden.proto.imap.lexer import _DIGITS, _MAX_DEPTH, _MAX_MODSEQ, Lexer

__all__ = ["SEARCH_RETURN", "SORT_KEYS", "SelectedRules"]

_SECTION_WORD = re.compile(rb"[A-Za-z.]+")
_FETCH_WORD = re.compile(rb"[A-Za-z0-9.]+")
_MACRO_WORD = re.compile(rb"[A-Za-z]+")
_FLAG_KEYS = {
    "ANSWERED": ("\\Answered", True),
    "DELETED": ("\\Deleted", True),
    "DRAFT": ("\\Draft", True),
    "FLAGGED": ("\\Flagged", True),
    "SEEN": ("\\Seen", True),
    "RECENT": ("\\Recent", True),
    "OLD": ("\\Recent", False),
    "UNANSWERED": ("\\Answered", False),
    "UNDELETED": ("\\Deleted", False),
    "UNDRAFT": ("\\Draft", False),
    "UNFLAGGED": ("\\Flagged", False),
    "UNSEEN": ("\\Seen", False),
}
_ARG_KEYS = frozenset(
    {"KEYWORD", "UNKEYWORD", "HEADER", "LARGER", "SMALLER", "UID", "NOT", "OR", "MODSEQ"}
    | {"BEFORE", "ON", "SINCE", "SENTBEFORE", "SENTON", "SENTSINCE"}
    | {"BCC", "BODY", "CC", "FROM", "SUBJECT", "TEXT", "TO"}
)
_TEXT_KEYS = frozenset({"BCC", "BODY", "CC", "FROM", "SUBJECT", "TEXT", "TO"})
_DATE_KEYS: dict[str, tuple[Literal["BEFORE", "ON", "SINCE"], bool]] = {
    "BEFORE": ("BEFORE", False),
    "ON": ("ON", False),
    "SINCE": ("SINCE", False),
    "SENTBEFORE": ("BEFORE", True),
    "SENTON": ("ON", True),
    "SENTSINCE": ("SINCE", True),
}
_SIMPLE_FETCH = frozenset(
    {
        "ENVELOPE", "FLAGS", "INTERNALDATE", "RFC822", "RFC822.HEADER", "RFC822.SIZE",
        "RFC822.TEXT", "BODY", "BODYSTRUCTURE", "UID", "MODSEQ",
    }
)  # fmt: skip
_FETCH_MACROS = {
    "ALL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"),
    "FAST": ("FLAGS", "INTERNALDATE", "RFC822.SIZE"),
    "FULL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"),
}  # RFC 3501 §6.4.5
SORT_KEYS = frozenset({"ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO"})  # RFC 5256 §3
SEARCH_RETURN = frozenset({"MIN", "MAX", "ALL", "COUNT", "SAVE"})  # RFC 4731 §3.1, RFC 5182


class SelectedRules(Lexer):
    """ABNF rules of the selected-state commands."""

    __slots__ = ()

    def p_expunge(self, tag: str, uid: bool) -> c.Command:
        if uid:
            self.sp()
            return c.Expunge(tag, self.seqset())
        return c.Expunge(tag)

    def p_copy(self, tag: str, uid: bool) -> c.Command:
        self.sp()
        seqs = self.seqset()
        self.sp()
        return c.Copy(tag, uid, seqs, self.mailbox())

    def p_move(self, tag: str, uid: bool) -> c.Command:
        self.sp()
        seqs = self.seqset()
        self.sp()
        return c.Move(tag, uid, seqs, self.mailbox())

    def p_store(self, tag: str, uid: bool) -> c.Command:
        # RFC 3501 §9 store; RFC 7162 §3.1.3 store-modifier UNCHANGEDSINCE
        self.sp()
        seqs = self.seqset()
        self.sp()
        unchangedsince = None
        if self.peek() == 0x28:
            self.paren_open()
            self.expect(b"UNCHANGEDSINCE")
            self.sp()
            unchangedsince = self.number(limit=_MAX_MODSEQ)
            self.paren_close()
            self.sp()
        mode: Literal["+", "-", ""] = ""
        if self.peek() == 0x2B:
            mode = "+"
            self.pos += 1
        elif self.peek() == 0x2D:
            mode = "-"
            self.pos += 1
        self.expect(b"FLAGS")
        silent = self.take(b".SILENT")
        self.sp()
        if self.peek() == 0x28:
            flags = self.flag_list()
        else:
            items = [self.flag()]
            while self.try_sp():
                items.append(self.flag())
            flags = tuple(items)
        for flag in flags:
            if flag.upper() == "\\RECENT":
                raise self.fail("\\Recent cannot be stored")
        return c.Store(tag, uid, seqs, mode, silent, flags, unchangedsince)

    def section(self) -> c.Section:
        # RFC 3501 §9: section = "[" [section-spec] "]"
        # section-spec = section-msgtext / (section-part ["." section-text])
        self.expect(b"[")
        part: list[int] = []
        text: c.SectionText | None = None
        fields: tuple[str, ...] = ()
        word_needed = True
        if self.peek() in _DIGITS:
            part.append(self.number(nz=True))
            while (
                self.peek() == 0x2E
                and self.pos + 1 < len(self.buf)
                and self.buf[self.pos + 1] in _DIGITS
            ):
                self.pos += 1
                part.append(self.number(nz=True))
            word_needed = self.take(b".")
            if not word_needed and self.peek() != 0x5D:
                raise self.fail("Bad section part")
        if word_needed and self.peek() != 0x5D:
            word = self.regex(_SECTION_WORD, "a section name").upper()
            if word == b"HEADER":
                text = "HEADER"
            elif word == b"HEADER.FIELDS":
                text = "HEADER.FIELDS"
            elif word == b"HEADER.FIELDS.NOT":
                text = "HEADER.FIELDS.NOT"
            elif word == b"TEXT":
                text = "TEXT"
            elif word == b"MIME" and part:
                text = "MIME"  # RFC 3501 §6.4.5: MIME only with a part number
            else:
                raise self.fail(f"Unknown section {word.decode('ascii')}")
            if text in ("HEADER.FIELDS", "HEADER.FIELDS.NOT"):
                self.sp()
                self.paren_open()
                names = [self.astring().decode("ascii", "replace")]
                while self.try_sp():
                    names.append(self.astring().decode("ascii", "replace"))
                self.paren_close()
                fields = tuple(names)
        elif word_needed and part:
            raise self.fail("Section part ends with '.'")
        self.expect(b"]")
        return c.Section(tuple(part), text, fields)

    def fetch_att(self) -> c.FetchAtt:
        m = _FETCH_WORD.match(self.buf, self.pos)
        if m is None:
            raise self.fail("Expected a FETCH data item")
        word = m.group().upper().decode("ascii")
        self.pos = m.end()
        if self.peek() == 0x5B and word in (
            "BODY",
            "BODY.PEEK",
            "BINARY",
            "BINARY.PEEK",
            "BINARY.SIZE",
        ):
            section = self.section()
            binary = word.startswith("BINARY")
            if binary and section.text is not None:
                # RFC 3516 §4.2: section-binary = "[" [section-part] "]"
                raise self.fail("BINARY takes only a part number")
            partial = None
            if word != "BINARY.SIZE" and self.peek() == 0x3C:
                self.pos += 1
                start = self.number()
                self.expect(b".")
                length = self.number(nz=True)
                self.expect(b">")
                partial = (start, length)
            name = "BINARY.SIZE" if word == "BINARY.SIZE" else ("BINARY" if binary else "BODY[]")
            return c.FetchAtt(name, section, partial, peek=word.endswith(".PEEK"))
        if word not in _SIMPLE_FETCH:
            raise self.fail(f"Unknown FETCH item {word}")
        return c.FetchAtt(word)

    def p_fetch(self, tag: str, uid: bool) -> c.Command:
        self.sp()
        seqs = self.seqset()
        self.sp()
        macro = None
        items: list[c.FetchAtt] = []
        if self.peek() == 0x28:
            self.paren_open()
            items.append(self.fetch_att())
            while self.try_sp():
                items.append(self.fetch_att())
            self.paren_close()
        else:
            save = self.pos
            word = self.regex(_MACRO_WORD, "FETCH items").upper().decode("ascii")
            if word in _FETCH_MACROS and self.peek() in (-1, 0x20):
                macro = word
                items.extend(c.FetchAtt(n) for n in _FETCH_MACROS[word])
            else:
                self.pos = save
                items.append(self.fetch_att())
        changedsince = None
        vanished = False
        if self.try_sp():
            # RFC 4466 §2.4 fetch-modifiers; RFC 7162 §3.1.4.1, §3.2.6
            self.paren_open()
            while True:
                mod = self.keyword()
                if mod == "CHANGEDSINCE":
                    self.sp()
                    changedsince = self.number(limit=_MAX_MODSEQ)
                elif mod == "VANISHED":
                    vanished = True
                else:
                    raise self.fail(f"Unknown FETCH modifier {mod}")
                if not self.try_sp():
                    break
            self.paren_close()
            if vanished and (not uid or changedsince is None):
                # RFC 7162 §3.2.6: VANISHED only in UID FETCH with CHANGEDSINCE
                raise self.fail("VANISHED requires UID FETCH with CHANGEDSINCE")
        return c.Fetch(tag, uid, seqs, tuple(items), changedsince, vanished, macro)

    # --- SEARCH (RFC 3501 §6.4.4) ---------------------------------------------

    def search_program(self) -> tuple[str | None, c.SearchAnd]:
        charset = None
        if self.take(b"CHARSET "):
            charset = self.astring().decode("ascii", "replace").upper()
            self.sp()
        return charset, self.search_keys()

    def search_keys(self) -> c.SearchAnd:
        keys = [self.search_key()]
        while self.try_sp():
            keys.append(self.search_key())
        return c.SearchAnd(tuple(keys))

    def search_string(self) -> str:
        raw = self.astring()
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise self.fail("[BADCHARSET (UTF-8 US-ASCII)] Search string is not UTF-8") from None

    def search_key(self) -> c.SearchKey:
        ch = self.peek()
        if ch == 0x28:
            self.paren_open()
            inner = self.search_keys()
            self.paren_close()
            return inner
        if ch in _DIGITS or ch in (0x2A, 0x24):
            return c.SearchSet(False, self.seqset())
        name = self.keyword()
        if name == "ALL":
            return c.SearchAnd(())
        if name == "NEW":
            # RFC 3501 §6.4.4: NEW is RECENT UNSEEN
            return c.SearchAnd((c.SearchFlag("\\Recent", True), c.SearchFlag("\\Seen", False)))
        if name in _FLAG_KEYS:
            flag, present = _FLAG_KEYS[name]
            return c.SearchFlag(flag, present)
        if name not in _ARG_KEYS:
            raise self.fail(f"Unknown search key {name}")
        self.sp()
        if name in ("KEYWORD", "UNKEYWORD"):
            return c.SearchFlag(self.flag(), name == "KEYWORD")
        if name in _TEXT_KEYS:
            return c.SearchText(name, self.search_string())
        if name == "HEADER":
            field = self.astring().decode("ascii", "replace")
            self.sp()
            return c.SearchHeader(field, self.search_string())
        if name in _DATE_KEYS:
            op, sent = _DATE_KEYS[name]
            return c.SearchDate(op, sent, self.date())
        if name in ("LARGER", "SMALLER"):
            return c.SearchNumber("LARGER" if name == "LARGER" else "SMALLER", self.number())
        if name == "UID":
            return c.SearchSet(True, self.seqset())
        if name == "NOT":
            self.depth += 1
            if self.depth > _MAX_DEPTH:
                raise self.fail("Too deeply nested")
            key = self.search_key()
            self.depth -= 1
            return c.SearchNot(key)
        if name == "OR":
            self.depth += 1
            if self.depth > _MAX_DEPTH:
                raise self.fail("Too deeply nested")
            left = self.search_key()
            self.sp()
            right = self.search_key()
            self.depth -= 1
            return c.SearchOr(left, right)
        if name == "MODSEQ":
            # RFC 7162 §3.1.5: "MODSEQ" [search-modseq-ext] SP mod-sequence-valzer
            entry = entry_type = None
            if self.peek() == 0x22:
                entry = self.quoted().decode("ascii", "replace")
                self.sp()
                entry_type = self.keyword().lower()
                if entry_type not in ("priv", "shared", "all"):
                    raise self.fail("MODSEQ entry type must be priv, shared or all")
                self.sp()
            return c.SearchModseq(self.number(limit=_MAX_MODSEQ), entry, entry_type)
        raise self.fail(f"Unknown search key {name}")

    def search_return(self) -> tuple[str, ...] | None:
        # RFC 4731 §3.1: search-return-opts = SP "RETURN" SP "(" [...] ")"
        if not self.take(b"RETURN "):
            return None
        self.paren_open()
        opts: list[str] = []
        while self.peek() != 0x29:
            if opts:
                self.sp()
            opt = self.keyword()
            if opt not in SEARCH_RETURN:
                raise self.fail(f"Unknown RETURN option {opt}")
            opts.append(opt)
        self.paren_close()
        self.sp()
        return tuple(opts)

    def p_search(self, tag: str, uid: bool) -> c.Command:
        self.sp()
        ret = self.search_return()
        charset, keys = self.search_program()
        return c.Search(tag, uid, keys, charset, ret)

    def p_sort(self, tag: str, uid: bool) -> c.Command:
        # RFC 5256 §5: sort = ["UID" SP] "SORT" SP sort-criteria SP search-criteria
        self.sp()
        ret = self.search_return()
        self.paren_open()
        crit: list[c.SortCriterion] = []
        while True:
            reverse = self.take(b"REVERSE ")
            key = self.keyword()
            if key not in SORT_KEYS:
                raise self.fail(f"Unknown sort key {key}")
            crit.append(c.SortCriterion(key, reverse))
            if not self.try_sp():
                break
        self.paren_close()
        self.sp()
        charset = self.astring().decode("ascii", "replace").upper()
        self.sp()
        return c.Sort(tag, uid, tuple(crit), charset, self.search_keys(), ret)

    def p_thread(self, tag: str, uid: bool) -> c.Command:
        self.sp()
        algorithm = self.keyword()
        self.sp()
        charset = self.astring().decode("ascii", "replace").upper()
        self.sp()
        return c.Thread(tag, uid, algorithm, charset, self.search_keys())
