"""RFC 5322 address lists read into ENVELOPE addresses: a table, and fast path == tokenizer."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailwarden.mail import addresslist
from mailwarden.mail.addresslist import AddressItem, parse_address_list

START, END = "start", "end"


def item(
    name: str | None, mailbox: str | None, host: str | None, adl: str | None = None
) -> AddressItem:
    return AddressItem(name, adl, mailbox, host)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, []),
        ("", []),
        ("a@b.test", [item(None, "a", "b.test")]),
        ("Joe Q. Public <j@x.test>", [item("Joe Q. Public", "j", "x.test")]),
        ('"Doe, J" <d@y.test>', [item("Doe, J", "d", "y.test")]),
        ("x  y <xy@z.test>", [item("x y", "xy", "z.test")]),
        ('"a b"@c.test', [item(None, "a b", "c.test")]),
        ("a@[1.2.3.4]", [item(None, "a", "[1.2.3.4]")]),
        ("<@r1,@r2:x@y.test>", [item(None, "x", "y.test", adl="@r1,@r2")]),
        ("a@b, , c@d", [item(None, "a", "b"), item(None, "c", "d")]),
        # A comment after a bare addr-spec is its name (RFC 5322 §3.4, obsolete use).
        ("u (c)", [item("c", "u", None)]),
        # Broken input: a best reading, with None where a part is missing.
        ("bad@", [item(None, "bad", None)]),
        ("@bad", [item(None, None, "bad")]),
        ("Joe Public", [item("Joe Public", None, None)]),
        ('"unterminated <x@y', [item("unterminated <x@y", None, None)]),
        # Groups (RFC 5322 §3.4): start and end markers around the members.
        (
            "g: a@b, c@d;",
            [
                AddressItem(None, None, "g", None, START),
                item(None, "a", "b"),
                item(None, "c", "d"),
                AddressItem(None, None, None, None, END),
            ],
        ),
        (
            "undisclosed-recipients:;",
            [
                AddressItem(None, None, "undisclosed-recipients", None, START),
                AddressItem(None, None, None, None, END),
            ],
        ),
        (
            "g: a@b",
            [
                AddressItem(None, None, "g", None, START),
                item(None, "a", "b"),
                AddressItem(None, None, None, None, END),
            ],
        ),
    ],
)
def test_parse_address_list(value: str | None, expected: list[AddressItem]) -> None:
    assert parse_address_list(value) == expected


_ADDRESS = st.sampled_from(
    [
        "a@b.test",
        "Joe Q. Public <j@x.test>",
        '"Doe, J" <d@y.test>',
        "<r@x.test>",
        "x  y <xy@z.test>",
        '"" <e@x.test>',
        "=?utf-8?q?J=C3=B6rg?= <j@z.test>",
        "bad@",
        "@bad",
        "u (c)",
        "g: a@b;",
        ",",
    ]
)


@given(st.lists(_ADDRESS, min_size=1, max_size=5), st.sampled_from([",", ", ", " ,"]))
def test_fast_address_path_agrees_with_tokenizer(items: list[str], sep: str) -> None:
    value = sep.join(items)
    fast = addresslist._fast_address_list(value)
    if fast is not None:
        assert fast == addresslist._slow_address_list(value)
