"""Session behaviour that transcripts cannot show: TLS, compression, timers, misuse."""

from __future__ import annotations

import zlib

import pytest

from mailwarden.proto.imap import commands as c
from mailwarden.proto.imap.events import (
    ConnectionClosed,
    IdleDone,
    NeedData,
    SessionConfig,
    StartTlsRequested,
    State,
)
from mailwarden.proto.imap.responses import RawLines, Tagged, Untagged, UntaggedStatus
from mailwarden.proto.imap.session import ImapSession


def _session(**kw: object) -> ImapSession:
    s = ImapSession(SessionConfig(allow_plaintext_login=True, **kw))  # type: ignore[arg-type]
    s.greeting()
    s.data_to_send()
    return s


def _login(s: ImapSession) -> None:
    s.receive_data(b"a LOGIN u p\r\n")
    ev = s.next_event()
    assert isinstance(ev, c.Login)
    s.send(Tagged("a", "OK", "Logged in"))
    s.data_to_send()


def test_starttls_discards_pipelined_input() -> None:
    s = ImapSession(SessionConfig())
    s.receive_data(b"a STARTTLS\r\nb LOGIN u p\r\n")
    assert isinstance(s.next_event(), StartTlsRequested)
    assert s.data_to_send() == b"a OK Begin TLS negotiation now\r\n"
    assert isinstance(s.next_event(), NeedData)
    s.tls_established()
    assert isinstance(s.next_event(), NeedData)  # the injected LOGIN is gone
    assert "STARTTLS" not in s.capabilities()
    assert "AUTH=PLAIN" in s.capabilities()
    s.receive_data(b"c STARTTLS\r\n")
    assert isinstance(s.next_event(), NeedData)
    assert s.data_to_send() == b"c BAD TLS is already active\r\n"


def test_compress_deflate_both_ways() -> None:
    s = _session()
    _login(s)
    s.receive_data(b"z COMPRESS DEFLATE\r\n")
    assert isinstance(s.next_event(), NeedData)
    out = s.data_to_send()
    assert out == b"z OK DEFLATE active\r\n"
    assert "COMPRESS=DEFLATE" not in s.capabilities()
    comp = zlib.compressobj(6, zlib.DEFLATED, -15)
    s.receive_data(comp.compress(b"n NOOP\r\n") + comp.flush(zlib.Z_SYNC_FLUSH))
    ev = s.next_event()
    assert ev == c.Noop("n")
    s.send(Tagged("n", "OK", "NOOP completed"))
    inflate = zlib.decompressobj(-15)
    assert inflate.decompress(s.data_to_send()) == b"n OK NOOP completed\r\n"
    s.receive_data(comp.compress(b"y COMPRESS DEFLATE\r\n") + comp.flush(zlib.Z_SYNC_FLUSH))
    assert isinstance(s.next_event(), NeedData)
    assert inflate.decompress(s.data_to_send()) == b"y NO [COMPRESSIONACTIVE] Already active\r\n"
    s.receive_data(b"\xff" * 20)  # block type 3 is reserved: a corrupt stream
    assert isinstance(s.next_event(), ConnectionClosed)
    assert inflate.decompress(s.data_to_send()).startswith(b"* BYE")


def test_states_follow_the_application() -> None:
    s = _session()
    _login(s)
    assert s.state is State.AUTHENTICATED
    s.receive_data(b"b SELECT INBOX\r\n")
    assert isinstance(s.next_event(), c.Select)
    with pytest.raises(RuntimeError):
        s.next_event()  # the app must answer first
    with pytest.raises(RuntimeError):
        s.send(Tagged("zz", "OK", "wrong tag"))
    s.send(Tagged("b", "OK", "SELECT completed", "READ-WRITE"))
    assert s.state is State.SELECTED
    s.receive_data(b"c SELECT Nope\r\n")
    assert isinstance(s.next_event(), c.Select)
    s.send(Tagged("c", "NO", "No such mailbox"))
    assert s.state is State.AUTHENTICATED  # RFC 3501 §6.3.1


def test_condstore_enabled_by_use() -> None:
    s = _session()
    _login(s)
    s.receive_data(b"b SELECT INBOX (CONDSTORE)\r\n")
    s.next_event()
    assert s.condstore
    assert not s.qresync
    s.send(Tagged("b", "OK", "ok"))


def test_idle_updates_and_done() -> None:
    s = _session()
    _login(s)
    s.receive_data(b"i IDLE\r\n")
    assert isinstance(s.next_event(), c.Idle)
    assert s.idling
    assert s.data_to_send() == b"+ idling\r\n"
    s.send(Untagged(b"4 EXISTS"))
    assert s.data_to_send() == b"* 4 EXISTS\r\n"
    assert isinstance(s.next_event(), NeedData)
    s.receive_data(b"DO")
    assert isinstance(s.next_event(), NeedData)
    s.receive_data(b"NE\r\n")
    assert s.next_event() == IdleDone("i")
    s.send(Tagged("i", "OK", "IDLE terminated"))
    assert not s.idling


def test_autologout_and_bye() -> None:
    s = _session()
    s.autologout()
    assert s.closed
    assert s.data_to_send() == b"* BYE Autologout; idle for too long\r\n"
    assert isinstance(s.next_event(), ConnectionClosed)
    s2 = _session()
    s2.send(UntaggedStatus("BYE", "Server shutting down", "UNAVAILABLE"))
    assert s2.closed
    s2.send(Tagged("x", "OK", "ignored after BYE"))
    assert s2.data_to_send() == b"* BYE [UNAVAILABLE] Server shutting down\r\n"


def test_eof_closes() -> None:
    s = _session()
    s.receive_data(b"a NOOP\r\n")
    s.receive_data(b"")
    assert s.next_event() == c.Noop("a")
    s.send(Tagged("a", "OK", "NOOP completed"))
    assert isinstance(s.next_event(), ConnectionClosed)


def test_raw_pieces_reach_the_shell_unjoined() -> None:
    s = _session()
    _login(s)
    s.receive_data(b"f NOOP\r\n")
    s.next_event()
    body = b"x" * 5000
    s.send(RawLines((b"* 1 FETCH (BODY[] {5000}\r\n", body, b")\r\n")))
    s.send(Tagged("f", "OK", "done"))
    parts = s.data_to_send_parts()
    assert parts[1] is body  # the octets were not copied
    assert b"".join(parts).endswith(b")\r\nf OK done\r\n")
    assert s.data_to_send_parts() == []


def test_pieces_under_compress_are_one_compressed_chunk() -> None:
    s = _session()
    _login(s)
    s.receive_data(b"z COMPRESS DEFLATE\r\n")
    s.next_event()
    assert s.data_to_send_parts() == [b"z OK DEFLATE active\r\n"]
    s.send(RawLines((b"* 1 EXISTS\r\n", b"* 0 RECENT\r\n")))
    (chunk,) = s.data_to_send_parts()
    assert zlib.decompressobj(-15).decompress(chunk) == b"* 1 EXISTS\r\n* 0 RECENT\r\n"
    assert s.data_to_send_parts() == []


def test_enable_imap4rev2_switches_rules() -> None:
    s = _session()
    assert "IMAP4rev2" in s.capabilities() and "IMAP4rev1" in s.capabilities()
    _login(s)
    for cap in ("BINARY", "SEARCHRES", "ESORT", "STATUS=SIZE"):
        assert cap in s.capabilities()
    assert not s.rev2 and not s.utf8
    s.receive_data(b"e ENABLE imap4rev2\r\n")
    assert isinstance(s.next_event(), c.Enable)
    assert s.data_to_send() == b"* ENABLED IMAP4rev2\r\n"
    s.send(Tagged("e", "OK", "ENABLE completed"))
    assert s.rev2 and s.utf8  # names are UTF-8 from now on (RFC 9051 §5.1)
    s.receive_data(b'c CREATE "A&B"\r\n')
    assert s.next_event() == c.Create("c", "A&B")
    s2 = ImapSession(SessionConfig(allow_plaintext_login=True, imap4rev2=False))
    assert "IMAP4rev2" not in s2.capabilities()
