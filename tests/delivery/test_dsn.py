"""The delivery status notification builder (RFC 3461 semantics, RFC 3464 format)."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime
from email.message import Message

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailwarden.delivery.dsn import (
    Action,
    RecipientReport,
    build_dsn,
    decode_xtext,
    notify_requested,
    orcpt_for,
)
from mailwarden.mail.address import Address
from mailwarden.proto.smtp import (
    Body,
    Envelope,
    MailParams,
    Notify,
    RcptParams,
    RcptTo,
    Recipient,
    Ret,
    parse_command,
)
from mailwarden.web.status.bounces import parse_dsn

ARRIVAL = datetime(2024, 5, 2, 9, 11, 0, tzinfo=UTC)
NOW = datetime(2024, 5, 2, 9, 11, 5, tzinfo=UTC)
ORIGINAL = (
    b"Received: from c.example.org ([192.0.2.1])\r\n"
    b"\tby mx.example.test with ESMTP id abc; Thu, 02 May 2024 09:11:00 +0000\r\n"
    b"From: s@example.org\r\nSubject: hello\r\n\r\nthe body\r\n"
)
BOB = Recipient(Address("bob", "example.test"))
SENDER = Address("s", "example.org")


def envelope(
    recipients: tuple[Recipient, ...] = (BOB,),
    *,
    sender: Address | None = SENDER,
    **params: object,
) -> Envelope:
    return Envelope(
        helo="c.example.org",
        esmtp=True,
        tls=False,
        authenticated=None,
        sender=sender,
        params=MailParams(**params),  # type: ignore[arg-type]
        recipients=recipients,
    )


def failed(rc: Recipient = BOB) -> RecipientReport:
    return RecipientReport(rc, Action.FAILED, "5.2.2", "mailbox full")


def parts(raw: bytes) -> tuple[Message, Message, Message, Message]:
    """The report, its text, its status part and its returned part."""
    msg = email.message_from_bytes(raw, policy=email.policy.compat32)
    assert msg.get_content_type() == "multipart/report"
    assert msg.get_param("report-type") == "delivery-status"
    payload = msg.get_payload()
    assert isinstance(payload, list)
    text, status, returned = payload
    return msg, text, status, returned


def status_blocks(status: Message) -> list[Message]:
    blocks = status.get_payload()
    assert isinstance(blocks, list)
    return blocks


# --- NOTIFY (RFC 3461 §4.1) ------------------------------------------------------------

NOTIFY_TABLE = [
    # (NOTIFY, failed, delayed, delivered)
    (None, True, True, False),
    ((Notify.NEVER,), False, False, False),
    ((Notify.FAILURE,), True, False, False),
    ((Notify.SUCCESS,), False, False, True),
    ((Notify.DELAY,), False, True, False),
    ((Notify.SUCCESS, Notify.FAILURE), True, False, True),
]


@pytest.mark.parametrize(("notify", "on_failed", "on_delayed", "on_success"), NOTIFY_TABLE)
def test_notify_conditions(
    notify: tuple[Notify, ...] | None, on_failed: bool, on_delayed: bool, on_success: bool
) -> None:
    params = RcptParams(notify=notify)
    assert notify_requested(params, Action.FAILED) is on_failed
    assert notify_requested(params, Action.DELAYED) is on_delayed
    for action in (Action.DELIVERED, Action.RELAYED, Action.EXPANDED):
        assert notify_requested(params, action) is on_success


# --- xtext ---------------------------------------------------------------------------------


def test_xtext_decoding_and_refusal_of_control_characters() -> None:
    assert decode_xtext("a+2Bb+3Dc") == "a+b=c"
    assert decode_xtext("j\\x{F6}rg") == "jörg"
    # A decoded line break would let the sender write fields into our report.
    assert decode_xtext("x+0D+0AAction:+20delivered") == "x+0D+0AAction:+20delivered"
    assert decode_xtext("bad\\x{110000}") == "bad\\x{110000}"


@given(
    st.builds(
        Address,
        st.from_regex(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~\-\u00e0-\u00ff]{1,20}", fullmatch=True),
        st.sampled_from(["example.test", "xn--bcher-kva.example"]),
    )
)
def test_orcpt_for_round_trips_through_rcpt_and_decoding(address: Address) -> None:
    orcpt = orcpt_for(address)
    line = f"RCPT TO:<x@example.test> ORCPT={orcpt}".encode()
    command = parse_command(line, smtputf8=True)
    assert isinstance(command, RcptTo)
    assert command.params.orcpt == orcpt
    addr_type, _, xtext = orcpt.partition(";")
    assert addr_type == ("rfc822" if str(address).isascii() else "utf-8")
    assert decode_xtext(xtext) == str(address)


# --- the report ----------------------------------------------------------------------------


def test_failure_report_layout_and_fields() -> None:
    rc = Recipient(
        Address("bob", "example.test"),
        RcptParams(notify=(Notify.FAILURE,), orcpt="rfc822;Bob+2Bx@example.test"),
    )
    dsn = build_dsn(
        reporting_mta="mx.example.test",
        envelope=envelope((rc,), envid="QQ+2B314"),
        reports=[failed(rc)],
        original=ORIGINAL,
        arrival=ARRIVAL,
        now=NOW,
        message_id="r1@mx.example.test",
    )
    assert dsn.raw.isascii() and not dsn.eight_bit and not dsn.smtputf8
    msg, text, status, returned = parts(dsn.raw)
    assert msg["From"] == "Mail Delivery System <MAILER-DAEMON@mx.example.test>"
    assert msg["To"] == "<s@example.org>"
    assert msg["Subject"] == "Undelivered Mail Returned to Sender"
    assert msg["Message-ID"] == "<r1@mx.example.test>"
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["Date"] == "Thu, 02 May 2024 09:11:05 +0000"
    body = text.get_payload(decode=True)
    assert isinstance(body, bytes)
    assert b"<bob@example.test>: mailbox full (5.2.2)" in body
    assert status.get_content_type() == "message/delivery-status"
    head, block = status_blocks(status)
    assert head["Original-Envelope-Id"] == "QQ+314"
    assert head["Reporting-MTA"] == "dns;mx.example.test"
    assert head["Received-From-MTA"] == "dns;c.example.org"
    assert head["Arrival-Date"] == "Thu, 02 May 2024 09:11:00 +0000"
    assert block["Original-Recipient"] == "rfc822;Bob+x@example.test"
    assert block["Final-Recipient"] == "rfc822;bob@example.test"
    assert block["Action"] == "failed"
    assert block["Status"] == "5.2.2"
    assert block["Last-Attempt-Date"] == "Thu, 02 May 2024 09:11:05 +0000"
    # No RET: a failure returns the whole message, octet for octet.
    assert returned.get_content_type() == "message/rfc822"
    assert dsn.raw.count(ORIGINAL) == 1
    assert dsn.raw.endswith(ORIGINAL + b"\r\n--" + msg.get_boundary().encode() + b"--\r\n")  # type: ignore[operator]
    # The status page's bounce reader understands it.
    (bounce,) = parse_dsn(dsn.raw) or []
    assert (bounce.address, bounce.status) == ("bob@example.test", "5.2.2")


def test_ret_hdrs_and_size_limit_return_headers_only() -> None:
    headers = ORIGINAL[: ORIGINAL.index(b"\r\n\r\n") + 2]
    for env, limit in ((envelope(ret=Ret.HDRS), 10**6), (envelope(ret=Ret.FULL), 100)):
        dsn = build_dsn(
            reporting_mta="mx.example.test",
            envelope=env,
            reports=[failed()],
            original=ORIGINAL,
            arrival=ARRIVAL,
            max_returned=limit,
        )
        _, text, _, returned = parts(dsn.raw)
        assert returned.get_content_type() == "text/rfc822-headers"
        assert returned.get_payload() == headers.decode()
        assert b"the body" not in dsn.raw
        note = text.get_payload()
        assert isinstance(note, str)
        assert ("too large" in note) is (limit == 100)


def test_binarymime_is_returned_as_headers() -> None:
    dsn = build_dsn(
        reporting_mta="mx.example.test",
        envelope=envelope(body=Body.BINARYMIME, ret=Ret.FULL),
        reports=[failed()],
        original=ORIGINAL + b"\x00\xff",
        arrival=ARRIVAL,
    )
    assert parts(dsn.raw)[3].get_content_type() == "text/rfc822-headers"
    assert not dsn.eight_bit


def test_success_report_returns_headers_even_with_ret_full() -> None:
    rc = Recipient(Address("bob", "example.test"), RcptParams(notify=(Notify.SUCCESS,)))
    dsn = build_dsn(
        reporting_mta="mx.example.test",
        envelope=envelope((rc,), ret=Ret.FULL),
        reports=[RecipientReport(rc, Action.DELIVERED, "2.0.0", "delivered to the mailbox")],
        original=ORIGINAL,
        arrival=ARRIVAL,
    )
    msg, _, status, returned = parts(dsn.raw)
    assert msg["Subject"] == "Successful Mail Delivery Report"
    (block,) = status_blocks(status)[1:]
    assert (block["Action"], block["Status"]) == ("delivered", "2.0.0")
    assert block["Last-Attempt-Date"] is None
    assert returned.get_content_type() == "text/rfc822-headers"
    assert parse_dsn(dsn.raw) == []  # not a hard bounce


def test_mixed_report_subject() -> None:
    carol = Recipient(Address("carol", "example.test"))
    dsn = build_dsn(
        reporting_mta="mx.example.test",
        envelope=envelope((BOB, carol)),
        reports=[failed(), RecipientReport(carol, Action.EXPANDED, "2.0.0", "alias")],
        original=ORIGINAL,
        arrival=ARRIVAL,
    )
    msg, _, status, _ = parts(dsn.raw)
    assert msg["Subject"] == "Delivery Status Notification"
    assert [b["Action"] for b in status_blocks(status)[1:]] == ["failed", "expanded"]


def test_smtputf8_mail_gets_the_global_types() -> None:
    rc = Recipient(Address("jörg", "example.test"))
    original = "From: jörg@bücher.example\r\nSubject: grüße\r\n\r\nhi\r\n".encode()
    dsn = build_dsn(
        reporting_mta="mx.example.test",
        envelope=envelope((rc,), sender=Address("jörg", "xn--bcher-kva.example"), smtputf8=True),
        reports=[failed(rc)],
        original=original,
        arrival=ARRIVAL,
    )
    assert dsn.smtputf8 and dsn.eight_bit
    msg = email.message_from_bytes(dsn.raw, policy=email.policy.default)
    types = [p.get_content_type() for p in msg.iter_parts()]
    assert types == ["text/plain", "message/global-delivery-status", "message/global"]
    assert "Final-Recipient: utf-8;jörg@example.test".encode() in dsn.raw
    assert original in dsn.raw


def test_no_report_to_the_null_sender_or_about_nobody() -> None:
    with pytest.raises(ValueError, match="null sender"):
        build_dsn(
            reporting_mta="mx",
            envelope=envelope(sender=None),
            reports=[failed()],
            original=ORIGINAL,
            arrival=ARRIVAL,
        )
    with pytest.raises(ValueError, match="at least one"):
        build_dsn(
            reporting_mta="mx", envelope=envelope(), reports=[], original=ORIGINAL, arrival=ARRIVAL
        )


def test_hostile_helo_and_message_without_body() -> None:
    env = Envelope(
        helo="evil\r\nAction: delivered",
        esmtp=False,
        tls=False,
        authenticated=None,
        sender=Address("s", "example.org"),
        params=MailParams(),
        recipients=(BOB,),
    )
    dsn = build_dsn(
        reporting_mta="mx.example.test",
        envelope=env,
        reports=[failed()],
        original=b"Subject: no body, no final CRLF",
        arrival=ARRIVAL,
    )
    _, _, status, returned = parts(dsn.raw)
    head, block = status_blocks(status)
    assert head["Received-From-MTA"] == "dns;evil??Action:?delivered"
    assert block["Action"] == "failed"
    inner = returned.get_payload()
    assert isinstance(inner, list)
    assert inner[0]["Subject"] == "no body, no final CRLF"
