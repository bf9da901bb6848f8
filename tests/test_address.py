"""Addresses and domains: IDNA A-labels in storage, U-labels on display."""

from __future__ import annotations

import pytest

from mailwarden.mail.address import Address, AddressError, domain_to_unicode, normalize_domain


@pytest.mark.parametrize(
    ("text", "key", "display"),
    [
        ("demo@example.test", "demo@example.test", "demo@example.test"),
        ("<Demo@EXAMPLE.test>", "demo@example.test", "Demo@example.test"),
        ("jörg@bücher.example", "jörg@xn--bcher-kva.example", "jörg@bücher.example"),
        ("a.b+t@xn--bcher-kva.example", "a.b+t@xn--bcher-kva.example", "a.b+t@bücher.example"),
    ],
)
def test_parse(text: str, key: str, display: str) -> None:
    address = Address.parse(text)
    assert address.key == key
    assert address.display() == display


@pytest.mark.parametrize(
    "text",
    [
        "",
        "plain",
        "@example.test",
        "a@",
        "a..b@example.test",
        ".a@example.test",
        "a b@example.test",
        "x" * 65 + "@example.test",
        "a@-x.test",
        "a@localhost",
        '"quoted"@example.test',
    ],
)
def test_refused(text: str) -> None:
    with pytest.raises(AddressError):
        Address.parse(text)


def test_domains() -> None:
    assert normalize_domain("Example.TEST.") == "example.test"
    assert normalize_domain("BÜCHER.example") == "xn--bcher-kva.example"
    assert domain_to_unicode("xn--bcher-kva.example") == "bücher.example"
    with pytest.raises(AddressError):
        normalize_domain("xn--zz.example")
