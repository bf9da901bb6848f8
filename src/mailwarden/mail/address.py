"""Mail addresses and domain names as Mailwarden stores and compares them.

Domains are kept as IDNA A-labels (``xn--...``), lower case, so that one domain
has one spelling in the store whatever the client typed; they are shown as
U-labels.  The local part keeps its case as given (RFC 5321 §2.4 says it may be
case-sensitive) but lookups fold it, as every mainstream provider does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import idna

# RFC 5321 §4.5.3.1.1/2: local part at most 64 octets, domain at most 255.
MAX_LOCAL_OCTETS = 64
MAX_DOMAIN_OCTETS = 255

# Dot-atom local parts (RFC 5322 §3.2.3) plus UTF-8 (RFC 6531); quoted local
# parts are refused: no hosted mailbox needs one and they invite confusion.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-\u0080-\U0010ffff]"
_LOCAL_RE = re.compile(rf"{_ATEXT}+(?:\.{_ATEXT}+)*")
_LDH_LABEL_RE = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


class AddressError(ValueError):
    """A string that is not a mail address or domain we accept; the text says why."""


def normalize_domain(domain: str) -> str:
    """Return the lower-case A-label form of ``domain``.

    Raises:
        AddressError: the name is empty, too long, has a bad label or is not valid IDNA.
    """
    name = domain.strip().rstrip(".")
    if not name:
        raise AddressError("empty domain")
    try:
        if name.isascii():
            ascii_name = name.lower()
        else:
            ascii_name = idna.encode(name, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise AddressError(f"invalid internationalised domain {domain!r}: {exc}") from None
    if len(ascii_name) > MAX_DOMAIN_OCTETS:
        raise AddressError("domain longer than 255 octets")
    labels = ascii_name.split(".")
    if len(labels) < 2:
        raise AddressError(f"domain {domain!r} needs at least two labels")
    for label in labels:
        if not _LDH_LABEL_RE.fullmatch(label):
            raise AddressError(f"invalid label {label!r} in domain {domain!r}")
    if ascii_name.startswith("xn--") or ".xn--" in ascii_name:
        try:
            idna.decode(ascii_name)
        except idna.IDNAError as exc:
            raise AddressError(f"invalid A-label in {domain!r}: {exc}") from None
    return ascii_name


def domain_to_unicode(ascii_name: str) -> str:
    """Return the U-label form of a stored (A-label) domain for display."""
    try:
        return str(idna.decode(ascii_name))
    except idna.IDNAError:
        return ascii_name


@dataclass(frozen=True, slots=True)
class Address:
    """A mailbox address: ``local@domain`` with the domain in A-label form."""

    local: str
    domain: str

    @classmethod
    def parse(cls, text: str) -> Address:
        """Parse ``local@domain``; angle brackets around it are accepted.

        Raises:
            AddressError: the text is not a plain address we accept.
        """
        raw = text.strip()
        if raw.startswith("<") and raw.endswith(">"):
            raw = raw[1:-1]
        local, sep, domain = raw.rpartition("@")
        if not sep or not local:
            raise AddressError(f"{text!r} is not an address of the form local@domain")
        if len(local.encode()) > MAX_LOCAL_OCTETS:
            raise AddressError("local part longer than 64 octets")
        if not _LOCAL_RE.fullmatch(local):
            raise AddressError(f"invalid local part {local!r}")
        return cls(local, normalize_domain(domain))

    @property
    def key(self) -> str:
        """The case-folded form used for lookups and uniqueness."""
        return f"{self.local.lower()}@{self.domain}"

    def __str__(self) -> str:
        return f"{self.local}@{self.domain}"

    def display(self) -> str:
        """The address with its domain in U-label form."""
        return f"{self.local}@{domain_to_unicode(self.domain)}"
