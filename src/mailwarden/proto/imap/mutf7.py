"""Modified UTF-7 for IMAP mailbox names (RFC 3501 §5.1.3).

Printable US-ASCII other than ``&`` stands for itself; ``&`` is written ``&-``;
every other run of characters is written as ``&`` + modified BASE64 (``,``
instead of ``/``, no padding) of its UTF-16BE form + ``-``.  The encoding is
canonical: decoding refuses what a correct encoder would never produce (an
encoded run of printable ASCII, two adjacent encoded runs, non-zero pad bits),
because two spellings of one name would let a client create look-alike
mailboxes.
"""

from __future__ import annotations

import base64
import binascii

__all__ = ["MUtf7Error", "decode_mutf7", "encode_mutf7"]


class MUtf7Error(ValueError):
    """The octets are not canonical modified UTF-7."""


def _printable(ch: str) -> bool:
    return 0x20 <= ord(ch) <= 0x7E


def encode_mutf7(name: str) -> bytes:
    """Encode a mailbox name for the wire.

    Args:
        name: any Unicode string (lone surrogates are refused).

    Returns:
        The modified UTF-7 octets, pure US-ASCII.

    Raises:
        MUtf7Error: the name holds a lone surrogate.
    """
    out: list[str] = []
    run: list[str] = []

    def flush() -> None:
        if run:
            try:
                utf16 = "".join(run).encode("utf-16-be")
            except UnicodeEncodeError as exc:
                raise MUtf7Error("lone surrogate in mailbox name") from exc
            b64 = base64.b64encode(utf16).decode("ascii").rstrip("=").replace("/", ",")
            out.append("&" + b64 + "-")
            run.clear()

    for ch in name:
        if _printable(ch):
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            run.append(ch)
    flush()
    return "".join(out).encode("ascii")


def decode_mutf7(data: bytes) -> str:
    """Decode a wire mailbox name.

    Args:
        data: octets as received (after string/literal unquoting).

    Returns:
        The Unicode mailbox name.

    Raises:
        MUtf7Error: the octets are not canonical modified UTF-7 (non-ASCII
            octets, unterminated shift, bad BASE64, encoded printable ASCII,
            adjacent encoded runs).
    """
    out: list[str] = []
    i = 0
    n = len(data)
    last_was_run = False
    while i < n:
        c = data[i]
        if c < 0x20 or c > 0x7E:
            raise MUtf7Error("non-ASCII octet in modified UTF-7")
        if c != 0x26:  # '&'
            out.append(chr(c))
            i += 1
            last_was_run = False
            continue
        end = data.find(b"-", i + 1)
        if end < 0:
            raise MUtf7Error("unterminated '&' shift")
        if end == i + 1:
            out.append("&")
            i = end + 1
            last_was_run = False
            continue
        if last_was_run:
            raise MUtf7Error("adjacent encoded runs")
        b64 = data[i + 1 : end].replace(b",", b"/")
        if b"/" in data[i + 1 : end] or b"=" in b64:
            raise MUtf7Error("'/' or '=' inside a modified BASE64 run")
        pad = (-len(b64)) % 4
        if pad == 3:
            raise MUtf7Error("truncated modified BASE64 run")
        try:
            raw = base64.b64decode(b64 + b"=" * pad, validate=True)
        except binascii.Error as exc:
            raise MUtf7Error("bad modified BASE64") from exc
        if len(raw) % 2:
            raise MUtf7Error("odd number of UTF-16 octets")
        try:
            text = raw.decode("utf-16-be")
        except UnicodeDecodeError as exc:
            raise MUtf7Error("bad UTF-16 in modified BASE64 run") from exc
        if any(_printable(ch) for ch in text):
            raise MUtf7Error("printable ASCII inside an encoded run")
        # canonical form: re-encoding must give back the same octets (pad bits zero)
        if encode_mutf7(text) != data[i : end + 1]:
            raise MUtf7Error("non-canonical modified BASE64")
        out.append(text)
        i = end + 1
        last_was_run = True
    return "".join(out)
