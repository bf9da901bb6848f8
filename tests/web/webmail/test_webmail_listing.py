"""The message-list rows rendered in Python: escaping, marks, dates, sizes."""

from __future__ import annotations

from datetime import UTC, datetime
from html.parser import HTMLParser

import pytest

from mailwarden.store.base import MessageEntry, MessageSummary
from mailwarden.web.webmail.listing import (
    Row,
    format_date,
    group_threads,
    iso_date,
    render_rows,
    size_text,
)

HOSTILE = "\"><script>alert(1)</script><img src=x onerror=alert(2) 'x"


def summary(uid: int, *, flags: frozenset[str] = frozenset(), **fields: object) -> MessageSummary:
    values: dict[str, object] = {
        "subject": "Hello",
        "from_name": "Carol",
        "from_addr": "carol@remote.test",
        "to": ("alice@example.test",),
        "date": 1_700_000_000,
        "preview": "Hi there",
        "has_attachments": False,
        "thread_key": f"t{uid}",
    }
    values.update(fields)
    entry = MessageEntry(uid, uid, flags, 1_700_000_000, 2048, 1)
    return MessageSummary(entry=entry, **values)  # type: ignore[arg-type]


class Elements(HTMLParser):
    """Collects start tags with their attributes, and the text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(html: str) -> Elements:
    parser = Elements()
    parser.feed(html)
    parser.close()
    return parser


def test_hostile_fields_stay_text() -> None:
    rows = [
        Row(
            summary(
                7,
                subject=HOSTILE,
                from_name=HOSTILE,
                preview=HOSTILE,
                to=(HOSTILE,),
                has_attachments=True,
            )
        )
    ]
    back = '/mail/1?q="><script>'
    for outgoing in (False, True):
        html = str(render_rows(rows, 1, outgoing=outgoing, drafts=False, back=back))
        assert "<script" not in html
        assert "<img" not in html
        found = parse(html)
        assert {tag for tag, _ in found.tags} <= {"tr", "td", "input", "span", "a", "time"}
        assert all(not name.startswith("on") for _, attrs in found.tags for name in attrs)
        assert HOSTILE in "".join(found.text)  # shown as text, intact
        (checkbox,) = [attrs for tag, attrs in found.tags if tag == "input"]
        assert checkbox["aria-label"] == f"Select: {HOSTILE}"
        (link,) = [attrs for tag, attrs in found.tags if tag == "a"]
        assert link["href"] == "/mail/1/7?back=/mail/1%3Fq%3D%22%3E%3Cscript%3E"


def test_marks_threads_drafts_and_empty_fields() -> None:
    rows = group_threads(
        [
            summary(1, flags=frozenset({"\\Flagged", "\\Answered"}), thread_key="a"),
            summary(2, flags=frozenset({"\\Seen"}), thread_key="a", subject=""),
            summary(3, flags=frozenset({"\\Seen"}), subject="", from_name="", from_addr=""),
        ]
    )
    assert [(r.uid, r.thread_count) for r in rows] == [(1, 2), (3, 1)]
    html = str(render_rows(rows, 4, outgoing=False, drafts=True, back="/mail/4"))
    first, second = html.strip().split("\n")
    assert first.startswith('<tr class="msg unread flagged" data-uid="1">')
    assert 'class="answered"' in first
    assert '<span class="thread">(2)</span>' in first
    assert 'href="/compose?draft=4.1"' in first
    assert second.startswith('<tr class="msg" data-uid="3">')
    assert "(no subject)" in second
    assert "(unknown sender)" in second
    outgoing = str(render_rows([Row(summary(5, to=()))], 4, outgoing=True, drafts=False, back=""))
    assert "(no recipients)" in outgoing


@pytest.mark.parametrize("value", [0, 1_700_000_000, 1_699_999_999, 2_000_000_000])
def test_iso_date_matches_isoformat(value: int) -> None:
    assert iso_date(value) == datetime.fromtimestamp(value, UTC).isoformat()


def test_dates_and_sizes_for_people() -> None:
    now = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC
    assert format_date(None) == ""
    assert iso_date(None) == ""
    assert format_date(1_700_000_000 - 3600, now=now) == "21:13"
    assert format_date(1_700_000_000 - 86400 * 3, now=now) == "11 Nov"
    assert format_date(1_600_000_000, now=now) == "13 Sep 2020"
    assert format_date(1_700_000_000, "long") == "Tue, 14 Nov 2023 22:13 UTC"
    assert [size_text(n) for n in (10, 2048, 3 * 1024 * 1024)] == ["10 B", "2 KB", "3.0 MB"]
