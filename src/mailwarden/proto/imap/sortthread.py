"""SORT and THREAD (RFC 5256) over the facts computed at delivery.

Theory of operation.  The server finds the matching messages with SEARCH,
then hands each one's number (sequence number or UID), internal date, size
and :class:`~mailwarden.mail.facts.MessageFacts` to :func:`sort_numbers` or
:func:`thread`.  Strings compare by the i;unicode-casemap idea (case-folded);
ties fall back to the sequence order (RFC 5256 §3).  Base subjects follow
RFC 5256 §2.1; REFERENCES threading follows §2.2 (the JWZ algorithm):
link by References/In-Reply-To, prune empty containers, gather roots with
the same base subject, order by sent date.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from mailwarden.mail.facts import MessageFacts
from mailwarden.proto.imap import commands as c

__all__ = ["SortMessage", "base_subject", "render_threads", "sort_numbers", "thread"]

_WSP_RUN = re.compile(r"[ \t\r\n]+")
_TRAILER = re.compile(r"(?:\s*\(fwd\))+\s*$", re.IGNORECASE)
_BLOB = r"\[[^\[\]]*\]\s*"
_LEADER = re.compile(r"^\s*(?:" + _BLOB + r")*(?:re|fwd?)\s*(?:" + _BLOB + r")?:\s*", re.I)
_LEADING_BLOB = re.compile(r"^\s*" + _BLOB)
_FWD_WRAP = re.compile(r"^\[fwd:\s*(.*)\]$", re.IGNORECASE | re.DOTALL)


def base_subject(subject: str) -> str:
    """The base subject of RFC 5256 §2.1, case-folded for comparison."""
    s = _WSP_RUN.sub(" ", subject).strip()
    while True:
        before = s
        s = _TRAILER.sub("", s)  # (2) subj-trailer
        while True:  # (3)-(5) subj-leader and subj-blob
            inner = s
            s = _LEADER.sub("", s, count=1)
            m = _LEADING_BLOB.match(s)
            if m is not None and s[m.end() :].strip():
                s = s[m.end() :]
            if s == inner:
                break
        m = _FWD_WRAP.match(s)  # (6) [fwd: ...]
        if m is not None:
            s = m.group(1).strip()
        if s == before:
            return s.casefold()


@dataclass(frozen=True, slots=True)
class SortMessage:
    """A matching message: its number in the answer and what sorting reads."""

    number: int
    seq: int
    internal_date: int
    size: int
    facts: MessageFacts


def _local(addrs: Sequence[str]) -> str:
    # RFC 5256 §3: CC/TO sort by the addr-mailbox of the first address
    return addrs[0].split("@", 1)[0].casefold() if addrs else ""


def _sent(m: SortMessage) -> int:
    # RFC 5256 §3 DATE: the Date: header, or the internal date when unusable
    return m.facts.date if m.facts.date is not None else m.internal_date


def _key(m: SortMessage, crit: str) -> str | int:
    match crit:
        case "ARRIVAL":
            return m.internal_date
        case "CC":
            return _local(m.facts.cc)
        case "DATE":
            return _sent(m)
        case "FROM":
            return m.facts.from_addr.split("@", 1)[0].casefold()
        case "SIZE":
            return m.size
        case "SUBJECT":
            return base_subject(m.facts.subject)
        case _:
            return _local(m.facts.to)


def sort_numbers(messages: Sequence[SortMessage], criteria: Sequence[c.SortCriterion]) -> list[int]:
    """The numbers of ``messages`` in SORT order."""
    ordered = sorted(messages, key=lambda m: m.seq)
    for crit in reversed(criteria):  # stable sorts, least significant key first
        ordered.sort(key=lambda m, k=crit.key: _key(m, k), reverse=crit.reverse)  # type: ignore[misc]
    return [m.number for m in ordered]


@dataclass(eq=False)
class _Node:
    msg: SortMessage | None = None
    parent: _Node | None = None
    children: list[_Node] = field(default_factory=list)

    def date(self) -> int:
        if self.msg is not None:
            return _sent(self.msg)
        return min((ch.date() for ch in self.children), default=0)

    def seq(self) -> int:
        if self.msg is not None:
            return self.msg.seq
        return min((ch.seq() for ch in self.children), default=0)

    def first_msg(self) -> SortMessage | None:
        if self.msg is not None:
            return self.msg
        for ch in self.children:
            found = ch.first_msg()
            if found is not None:
                return found
        return None

    def has_ancestor(self, other: _Node) -> bool:
        node: _Node | None = self
        while node is not None:
            if node is other:
                return True
            node = node.parent
        return False


def _adopt(parent: _Node, child: _Node) -> None:
    if child.parent is not None:
        child.parent.children.remove(child)
    child.parent = parent
    parent.children.append(child)


def _order(nodes: list[_Node]) -> None:
    nodes.sort(key=lambda n: (n.date(), n.seq()))
    for n in nodes:
        _order(n.children)


def _prune(nodes: list[_Node], root: bool) -> list[_Node]:
    # RFC 5256 §2.2 (4): drop empty leaves; promote children of empty containers
    out: list[_Node] = []
    for n in nodes:
        n.children = _prune(n.children, False)
        for ch in n.children:
            ch.parent = n
        if n.msg is None:
            if not n.children:
                continue
            if not root or len(n.children) == 1:
                for ch in n.children:
                    ch.parent = n.parent
                out.extend(n.children)
                continue
        out.append(n)
    return out


def _references(messages: Sequence[SortMessage]) -> list[_Node]:
    """RFC 5256 §2.2 steps (1)-(2): containers linked by References/In-Reply-To."""
    by_id: dict[str, _Node] = {}
    nodes: list[_Node] = []
    for m in sorted(messages, key=lambda m: m.seq):
        mid = m.facts.message_id
        node = by_id.get(mid) if mid else None
        if node is None or node.msg is not None:
            node = _Node(m)  # no id, or a duplicate id: a container of its own
            if mid and mid not in by_id:
                by_id[mid] = node
        else:
            node.msg = m
        nodes.append(node)
        refs = list(m.facts.references)
        if not refs and m.facts.in_reply_to:
            refs = [m.facts.in_reply_to]
        prev: _Node | None = None
        for ref in refs:
            cont = by_id.get(ref)
            if cont is None:
                cont = by_id[ref] = _Node()
                nodes.append(cont)
            if prev is not None and cont.parent is None and not prev.has_ancestor(cont):
                _adopt(prev, cont)
            prev = cont
        # the last reference is the parent, replacing any guessed one
        if node.parent is not None:
            node.parent.children.remove(node)
            node.parent = None
        if prev is not None and prev is not node and not prev.has_ancestor(node):
            _adopt(prev, node)
    return [n for n in nodes if n.parent is None]


def thread(messages: Sequence[SortMessage], algorithm: str) -> list[_Node]:
    """Thread trees for ORDEREDSUBJECT or REFERENCES (RFC 5256 §2.1, §2.2)."""
    if algorithm == "ORDEREDSUBJECT":
        groups: dict[str, list[SortMessage]] = {}
        for m in sorted(messages, key=lambda m: (base_subject(m.facts.subject), _sent(m), m.seq)):
            groups.setdefault(base_subject(m.facts.subject), []).append(m)
        roots = []
        for msgs in groups.values():
            root = _Node(msgs[0])
            for m in msgs[1:]:
                _adopt(root, _Node(m))
            roots.append(root)
        roots.sort(key=lambda n: (n.date(), n.seq()))
        return roots
    roots = _prune(_references(messages), True)
    for r in roots:
        r.parent = None
    # (5) gather roots by base subject
    by_subject: dict[str, _Node] = {}
    merged: list[_Node] = []
    for r in sorted(roots, key=lambda n: (n.date(), n.seq())):
        first = r.first_msg()
        subj = base_subject(first.facts.subject) if first is not None else ""
        if not subj:
            merged.append(r)
            continue
        other = by_subject.get(subj)
        if other is None:
            by_subject[subj] = r
            merged.append(r)
        elif other.msg is None or (
            r.msg is not None and _is_reply(r.msg) and not _is_reply(other.msg)
        ):
            _adopt(other, r)
        else:
            dummy = _Node()
            merged[merged.index(other)] = dummy
            _adopt(dummy, other)
            _adopt(dummy, r)
            by_subject[subj] = dummy
    _order(merged)
    return merged


def _is_reply(m: SortMessage) -> bool:
    return bool(_LEADER.match(m.facts.subject) or _TRAILER.search(m.facts.subject))


def _render(node: _Node) -> str:
    parts: list[str] = []
    cur = node
    while True:
        if cur.msg is not None:
            parts.append(str(cur.msg.number))
        if len(cur.children) == 1 and cur.msg is not None:
            cur = cur.children[0]
            continue
        if cur.children:
            parts.append("".join("(" + _render(ch) + ")" for ch in cur.children))
        return " ".join(parts)


def render_threads(roots: Sequence[_Node]) -> bytes:
    """``THREAD (1 2)(3 (4)(5))`` data (RFC 5256 §4)."""
    return b"THREAD " + "".join("(" + _render(r) + ")" for r in roots).encode("ascii")
