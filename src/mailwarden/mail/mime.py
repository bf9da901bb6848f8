"""Low-level readers for RFC 5322 headers and RFC 2045/2046 MIME, over raw bytes.

Theory of operation
-------------------
:mod:`mailwarden.mail.facts` needs exact byte offsets of every MIME part (IMAP
serves ``BODY[1.2]`` and ``BODY[1.2.MIME]`` by slicing the stored blob), and the
standard library's :mod:`email` parser does not keep offsets.  So these readers
scan the raw bytes themselves, and borrow :mod:`email` only where offsets do
not matter: RFC 2047 encoded words (:func:`email.header.decode_header`) and
dates (:func:`email.utils.parsedate_tz`).

Header text is handled as ``latin-1`` strings, which map octets one to one, so
that the wire forms (ENVELOPE, BODYSTRUCTURE) can give back the exact octets a
sender wrote, 8-bit included; :func:`utf8` turns such a string into proper
text for the decoded, human-facing fields.

Every reader is total: any input gives a result and nothing raises.
Where the RFCs leave broken input open, we read it as Dovecot does (checked
against Dovecot 2.3 by a differential run), so that clients see what they are
used to: delimiters match by prefix, a missing domain is ``MISSING_DOMAIN``,
MIME fields are read from their first occurrence.

Layout
------
Callers import the readers from here (the IMAP and webmail code do); each job
lives in its own module:

* :mod:`mailwarden.mail.headers`: header blocks with body offsets, Date and
  message-id fields (RFC 5322);
* :mod:`mailwarden.mail.addresslist`: address-list fields, groups included,
  as ENVELOPE addresses (RFC 5322 §3.4);
* :mod:`mailwarden.mail.params`: Content-Type, Content-Disposition and their
  parameters, RFC 2231 continuations and extended values;
* :mod:`mailwarden.mail.multipart`: multipart delimiter lines (RFC 2046);
* :mod:`mailwarden.mail.charsets`: octets to text (RFC 6532 UTF-8 headers,
  RFC 2047 encoded words, declared charsets);
* :mod:`mailwarden.mail.bodytext`: transfer decoding and HTML to text.
"""

from __future__ import annotations

from mailwarden.mail.addresslist import AddressItem, parse_address_list
from mailwarden.mail.bodytext import decode_body, html_to_text
from mailwarden.mail.charsets import decode_words, to_text, utf8
from mailwarden.mail.headers import HeaderBlock, parse_date, parse_header, parse_msg_ids
from mailwarden.mail.multipart import Delimiter, find_delimiter
from mailwarden.mail.params import (
    ContentType,
    merge_rfc2231,
    param,
    parse_content_type,
    parse_disposition,
    parse_params,
    rfc2231_value,
)

__all__ = [
    "AddressItem",
    "ContentType",
    "Delimiter",
    "HeaderBlock",
    "decode_body",
    "decode_words",
    "find_delimiter",
    "html_to_text",
    "merge_rfc2231",
    "param",
    "parse_address_list",
    "parse_content_type",
    "parse_date",
    "parse_disposition",
    "parse_header",
    "parse_msg_ids",
    "parse_params",
    "rfc2231_value",
    "to_text",
    "utf8",
]
