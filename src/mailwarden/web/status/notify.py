"""Telling people: subscribers by mail, webhooks, and the outbox between.

Nothing is sent while an operator waits.  Incident updates and maintenance
events put rows in ``outbox`` (inside the same transaction as the change), and
``Notifier.deliver_due`` sends what is due, later, from the scheduler:

- **Mail** goes through the configured SMTP relay, which must not be the
  cluster the page reports on (the page has to reach people while that cluster
  is down).  Every notice carries ``List-Unsubscribe`` with an HTTPS URL and
  ``List-Unsubscribe-Post: List-Unsubscribe=One-Click`` (RFC 8058 §3.1), so
  mail clients can unsubscribe with one POST; the relay should DKIM-sign both
  headers (RFC 8058 §4).  A permanent refusal of the recipient (5xx) is a hard
  bounce: the address is quarantined and gets nothing more until an admin
  releases it.  Bounces that come back later as DSNs are read from a mailbox
  by ``bounces`` and quarantine the address the same way.
- **Subscribing** is double opt-in: the first mail only asks to confirm, and
  nothing else is sent to an address until its owner follows the link.  A
  subscriber may choose components; none chosen means all.
- **Webhooks** receive the Statuspage-shaped JSON of the incident or
  maintenance, signed: ``X-Mailwarden-Signature: t=<unix time>,v1=<hex>`` where
  hex is HMAC-SHA256 over ``"<t>." + body`` with the webhook's secret.
  Receivers should check the signature and reject old ``t`` values.
- **Retries** use exponential back-off: ``retry_base * 2**(attempt-1)`` capped
  at ``retry_max``; after ``webhook_max_attempts`` a row is marked failed.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import secrets
import smtplib
import sqlite3
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Protocol

from mailwarden.web.status.api import PageInfo, incident_json, maintenance_json
from mailwarden.web.status.db import StatusDB
from mailwarden.web.status.incidents import Incident, IncidentUpdate
from mailwarden.web.status.maintenance import MaintenanceEvent, MaintenanceEventKind
from mailwarden.web.status.model import (
    Clock,
    NotFound,
    StatusError,
    duration_words,
    format_posted,
    from_db,
    opt_from_db,
    to_db,
)
from mailwarden.web.status.settings import RelaySettings, StatusSettings

log = logging.getLogger(__name__)


class PermanentFailure(Exception):
    """The recipient was refused for good (hard bounce)."""


class TemporaryFailure(Exception):
    """Try again later."""


class MailSender(Protocol):
    """Sends one message to one recipient."""

    def send(self, message: EmailMessage, recipient: str) -> None:
        """Send or raise ``PermanentFailure`` / ``TemporaryFailure``."""


class WebhookPoster(Protocol):
    """POSTs a body to a URL."""

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> None:
        """POST or raise ``TemporaryFailure``."""


class SmtpRelaySender:
    """``MailSender`` through an SMTP relay (blocking; run it in a thread)."""

    def __init__(self, relay: RelaySettings) -> None:
        self._relay = relay

    def send(self, message: EmailMessage, recipient: str) -> None:
        """Send ``message`` to ``recipient`` through the relay.

        Raises:
            PermanentFailure: the relay refused the recipient with a 5xx reply.
            TemporaryFailure: anything else went wrong.
        """
        relay = self._relay
        try:
            with smtplib.SMTP(relay.host, relay.port, timeout=relay.timeout) as smtp:
                if relay.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if relay.username:
                    smtp.login(relay.username, relay.password)
                smtp.send_message(
                    message, from_addr=relay.return_path or relay.sender, to_addrs=[recipient]
                )
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            if codes and all(code >= 500 for code in codes):
                raise PermanentFailure(f"recipient refused: {codes}") from None
            raise TemporaryFailure(f"recipient deferred: {codes}") from None
        except (smtplib.SMTPException, OSError) as exc:
            raise TemporaryFailure(f"relay: {exc}") from None


class UrllibPoster:
    """``WebhookPoster`` with the standard library (blocking; run it in a thread)."""

    def __init__(self, timeout: float = 10.0) -> None:
        self._timeout = timeout

    def post(self, url: str, body: bytes, headers: dict[str, str]) -> None:
        """POST; any non-2xx answer or network error is a temporary failure."""
        if not url.startswith(("http://", "https://")):
            raise TemporaryFailure("webhook URL must be http(s)")
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:  # noqa: S310
                response.read()
        except urllib.error.HTTPError as exc:
            raise TemporaryFailure(f"HTTP {exc.code}") from None
        except OSError as exc:
            raise TemporaryFailure(str(exc)) from None


def _lead_words(lead: timedelta) -> str:
    """``24 hours``, ``1 hour``, ``30 minutes``, ``3 days``: how people say a reminder's lead."""
    hours, rest = divmod(int(lead.total_seconds()), 3600)
    if 1 <= hours <= 48 and not rest:
        return "1 hour" if hours == 1 else f"{hours} hours"
    return duration_words(lead)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Mailwarden-Signature`` value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify_signature(secret: str, header: str, body: bytes) -> bool:
    """Check a signature header (what a receiver does)."""
    try:
        fields = dict(part.split("=", 1) for part in header.split(","))
        expected = sign(secret, int(fields["t"]), body)
    except (KeyError, ValueError):
        return False
    return hmac.compare_digest(expected, header)


@dataclass(frozen=True, slots=True)
class Subscriber:
    """A mail subscriber."""

    id: int
    email: str
    token: str
    created_at: datetime
    confirmed_at: datetime | None
    unsubscribed_at: datetime | None
    quarantined_at: datetime | None
    quarantine_reason: str
    components: tuple[str, ...]
    """Keys chosen; empty means every component."""

    @property
    def active(self) -> bool:
        """Confirmed, subscribed and not quarantined."""
        return (
            self.confirmed_at is not None
            and self.unsubscribed_at is None
            and self.quarantined_at is None
        )


@dataclass(frozen=True, slots=True)
class Webhook:
    """A webhook endpoint."""

    id: int
    url: str
    secret: str
    active: bool


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """What one ``deliver_due`` run did."""

    delivered: int = 0
    retried: int = 0
    failed: int = 0
    skipped: int = 0


class Notifier:
    """Subscribers, webhooks and the outbox.

    Args:
        db: the status database.
        clock: injected time source.
        settings: page URL and name, retry policy.
        sender: mail transport (default: the relay in ``settings``).
        poster: webhook transport (default: urllib).
    """

    def __init__(
        self,
        db: StatusDB,
        clock: Clock,
        settings: StatusSettings,
        *,
        sender: MailSender | None = None,
        poster: WebhookPoster | None = None,
    ) -> None:
        self._db = db
        self._clock = clock
        self._settings = settings
        self._sender = sender or SmtpRelaySender(settings.relay)
        self._poster = poster or UrllibPoster()

    @property
    def _page(self) -> PageInfo:
        return PageInfo(self._settings.page_name, self._settings.public_url, self._clock())

    def _url(self, path: str) -> str:
        return self._settings.public_url.rstrip("/") + path

    # -- subscribers -----------------------------------------------------------

    def subscribe(self, email: str, components: list[str] | None = None) -> Subscriber:
        """Start (or restart) a subscription and queue the confirmation mail.

        Asking again with the same address changes the component choice, and
        re-sends the confirmation if it is not yet confirmed; a confirmed
        subscriber is not told again (no mail loop for pranksters).

        Raises:
            StatusError: not a plausible address, or the address is quarantined.
            NotFound: an unknown component key.
        """
        address = email.strip()
        local, _, domain = address.rpartition("@")
        if not local or "." not in domain or any(ch.isspace() for ch in address):
            raise StatusError("enter a valid email address")
        now = to_db(self._clock())
        with self._db.transaction() as conn:
            comp_ids = []
            for key in components or []:
                row = conn.execute("SELECT id FROM components WHERE key = ?", (key,)).fetchone()
                if row is None:
                    raise NotFound(f"no component {key!r}")
                comp_ids.append(row[0])
            row = conn.execute(
                "SELECT * FROM subscribers WHERE email = ? COLLATE NOCASE", (address,)
            ).fetchone()
            if row and row["quarantined_at"]:
                raise StatusError("this address bounced; ask the operators to release it")
            if row is None:
                sub_id = conn.execute(
                    "INSERT INTO subscribers (email, token, created_at) VALUES (?, ?, ?)",
                    (address, secrets.token_urlsafe(24), now),
                ).lastrowid
                send_confirm = True
            else:
                sub_id = row["id"]
                send_confirm = row["confirmed_at"] is None or row["unsubscribed_at"] is not None
                if row["unsubscribed_at"] is not None:
                    conn.execute(
                        "UPDATE subscribers SET unsubscribed_at = NULL, confirmed_at = NULL,"
                        " token = ? WHERE id = ?",
                        (secrets.token_urlsafe(24), sub_id),
                    )
            conn.execute("DELETE FROM subscriber_components WHERE subscriber_id = ?", (sub_id,))
            for cid in comp_ids:
                conn.execute(
                    "INSERT INTO subscriber_components (subscriber_id, component_id) VALUES (?, ?)",
                    (sub_id, cid),
                )
            assert sub_id is not None
            sub = self.subscriber(sub_id)
            if send_confirm:
                self._enqueue_mail(
                    sub,
                    f"Confirm your subscription to {self._settings.page_name}",
                    "Someone (hopefully you) asked to receive status notices from "
                    f"{self._settings.page_name} at this address.\n\n"
                    f"To confirm, open:\n{self._url('/subscribe/confirm/' + sub.token)}\n\n"
                    "If it was not you, ignore this message; nothing more will be sent.\n",
                    purpose="confirm",
                )
        return sub

    def confirm(self, token: str) -> Subscriber:
        """Confirm a subscription by its token.

        Raises:
            NotFound: unknown token.
        """
        sub = self.by_token(token)
        if sub.confirmed_at is None:
            self._db.execute(
                "UPDATE subscribers SET confirmed_at = ? WHERE id = ?",
                (to_db(self._clock()), sub.id),
            )
        return self.subscriber(sub.id)

    def unsubscribe(self, token: str) -> Subscriber:
        """Unsubscribe by token (idempotent).

        Raises:
            NotFound: unknown token.
        """
        sub = self.by_token(token)
        if sub.unsubscribed_at is None:
            self._db.execute(
                "UPDATE subscribers SET unsubscribed_at = ? WHERE id = ?",
                (to_db(self._clock()), sub.id),
            )
        return self.subscriber(sub.id)

    def quarantine(self, subscriber_id: int, reason: str) -> None:
        """Stop mailing an address that hard-bounced."""
        self._db.execute(
            "UPDATE subscribers SET quarantined_at = ?, quarantine_reason = ? WHERE id = ?",
            (to_db(self._clock()), reason[:200], subscriber_id),
        )

    def quarantine_address(self, address: str, reason: str) -> Subscriber | None:
        """Quarantine the subscriber with this address (a late hard bounce).

        Returns:
            The subscriber, or None when no subscriber has that address (or it is
            already quarantined).
        """
        row = self._db.one(
            "SELECT id FROM subscribers WHERE lower(email) = ? AND quarantined_at IS NULL",
            (address.strip().lower(),),
        )
        if row is None:
            return None
        self.quarantine(row["id"], reason)
        return self.subscriber(row["id"])

    def release(self, subscriber_id: int) -> None:
        """Take an address out of quarantine."""
        self._db.execute(
            "UPDATE subscribers SET quarantined_at = NULL, quarantine_reason = '' WHERE id = ?",
            (subscriber_id,),
        )

    def subscriber(self, subscriber_id: int) -> Subscriber:
        """Return one subscriber.

        Raises:
            NotFound: no such subscriber.
        """
        found = self._subscribers("WHERE s.id = ?", (subscriber_id,))
        if not found:
            raise NotFound(f"no subscriber {subscriber_id}")
        return found[0]

    def subscribers(self) -> list[Subscriber]:
        """Every subscriber, by address."""
        return self._subscribers("ORDER BY s.email", ())

    def by_token(self, token: str) -> Subscriber:
        """Return the subscriber a link token belongs to.

        Raises:
            NotFound: unknown token.
        """
        found = self._subscribers("WHERE s.token = ?", (token,))
        if not found:
            raise NotFound("unknown or expired link")
        return found[0]

    def _subscribers(self, tail: str, params: tuple[object, ...]) -> list[Subscriber]:
        rows = self._db.all(f"SELECT s.* FROM subscribers s {tail}", params)  # noqa: S608
        keys: dict[int, list[str]] = {}
        for r in self._db.all(
            "SELECT sc.subscriber_id, c.key FROM subscriber_components sc"
            " JOIN components c ON c.id = sc.component_id ORDER BY c.position"
        ):
            keys.setdefault(r[0], []).append(r[1])
        return [
            Subscriber(
                id=r["id"],
                email=r["email"],
                token=r["token"],
                created_at=from_db(r["created_at"]),
                confirmed_at=opt_from_db(r["confirmed_at"]),
                unsubscribed_at=opt_from_db(r["unsubscribed_at"]),
                quarantined_at=opt_from_db(r["quarantined_at"]),
                quarantine_reason=r["quarantine_reason"],
                components=tuple(keys.get(r["id"], ())),
            )
            for r in rows
        ]

    # -- webhooks --------------------------------------------------------------

    def add_webhook(self, url: str) -> Webhook:
        """Register a webhook; its secret is generated and shown once to the operator.

        Raises:
            StatusError: not an http(s) URL.
        """
        if not url.startswith(("http://", "https://")):
            raise StatusError("webhook URL must start with http:// or https://")
        hook_id = self._db.execute(
            "INSERT INTO webhooks (url, secret, created_at) VALUES (?, ?, ?)",
            (url, secrets.token_hex(32), to_db(self._clock())),
        )
        return self.webhook(hook_id)

    def remove_webhook(self, hook_id: int) -> None:
        """Deactivate a webhook."""
        self._db.execute("UPDATE webhooks SET active = 0 WHERE id = ?", (hook_id,))

    def webhook(self, hook_id: int) -> Webhook:
        """Return one webhook.

        Raises:
            NotFound: no such webhook.
        """
        for hook in self.webhooks(include_inactive=True):
            if hook.id == hook_id:
                return hook
        raise NotFound(f"no webhook {hook_id}")

    def webhooks(self, *, include_inactive: bool = False) -> list[Webhook]:
        """Registered webhooks."""
        rows = self._db.all("SELECT * FROM webhooks ORDER BY id")
        hooks = [Webhook(r["id"], r["url"], r["secret"], bool(r["active"])) for r in rows]
        return [h for h in hooks if h.active or include_inactive]

    # -- listeners -------------------------------------------------------------

    def incident_updated(self, incident: Incident, update: IncidentUpdate) -> None:
        """Queue mail and webhooks for a notifying incident update."""
        keys = {c.key for c in incident.components}
        subject = f"[{self._settings.page_name}] {incident.title} - {update.status.value.title()}"
        lines = [
            f"{incident.title}",
            f"Status: {update.status.value.title()}",
            "",
            update.body,
            "",
            f"Posted {format_posted(update.display_at)}",
        ]
        if incident.components:
            lines.append(f"This incident affects: {incident.affected}.")
        if incident.duration_words:
            lines.append(f"Total duration: {incident.duration_words}.")
        lines += ["", f"Details: {self._url(f'/incidents/{incident.id}')}"]
        self._fan_out(
            keys,
            subject,
            "\n".join(lines) + "\n",
            event=f"incident.{update.status.value}",
            payload={"incident": incident_json(incident, self._page)},
        )

    def maintenance_event(self, event: MaintenanceEvent) -> None:
        """Queue mail and webhooks for a maintenance event."""
        window = event.maintenance
        keys = {c.key for c in window.components}
        heading = {
            MaintenanceEventKind.SCHEDULED: "Scheduled maintenance",
            MaintenanceEventKind.REMINDER: (
                f"Reminder: maintenance starts in {_lead_words(event.lead)}"
                if event.lead
                else "Reminder: maintenance starts soon"
            ),
            MaintenanceEventKind.STARTED: "Maintenance in progress",
            MaintenanceEventKind.VERIFYING: "Maintenance: verifying",
            MaintenanceEventKind.COMPLETED: "Maintenance completed",
            MaintenanceEventKind.CANCELLED: "Maintenance cancelled",
        }[event.kind]
        subject = f"[{self._settings.page_name}] {heading}: {window.title}"
        lines = [
            f"{heading}: {window.title}",
            "",
            f"Scheduled: {format_posted(window.planned_start)} to "
            f"{format_posted(window.planned_end)} ({window.planned_length_words})",
        ]
        if window.components:
            lines.append(f"Affects: {window.affected}.")
        if window.body:
            lines += ["", window.body]
        lines += ["", f"Details: {self._url(f'/maintenance/{window.id}')}"]
        self._fan_out(
            keys,
            subject,
            "\n".join(lines) + "\n",
            event=f"maintenance.{event.kind.value}",
            payload={"scheduled_maintenance": maintenance_json(window, self._page)},
        )

    def _fan_out(
        self, keys: set[str], subject: str, text: str, *, event: str, payload: dict[str, object]
    ) -> None:
        with self._db.transaction():
            for sub in self.subscribers():
                if not sub.active:
                    continue
                if sub.components and keys and not (set(sub.components) & keys):
                    continue
                self._enqueue_mail(sub, subject, text, purpose="notice")
            body = json.dumps(
                {"event": event, "page": {"name": self._settings.page_name}, **payload}
            )
            for hook in self.webhooks():
                self._enqueue("webhook", hook.id, event, body)

    def _enqueue_mail(self, sub: Subscriber, subject: str, text: str, *, purpose: str) -> None:
        self._enqueue("email", sub.id, subject, json.dumps({"text": text, "purpose": purpose}))

    def _enqueue(self, kind: str, target: int, subject: str, payload: str) -> None:
        now = to_db(self._clock())
        self._db.execute(
            "INSERT INTO outbox (kind, target_id, subject, payload, created_at, next_attempt_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (kind, target, subject, payload, now, now),
        )

    # -- delivery --------------------------------------------------------------

    def pending(self) -> int:
        """Rows waiting to be sent (due or not)."""
        row = self._db.one(
            "SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL AND failed_at IS NULL"
        )
        return int(row[0]) if row else 0

    def build_mail(self, sub: Subscriber, subject: str, text: str, purpose: str) -> EmailMessage:
        """The message a subscriber receives, with RFC 8058 headers on notices."""
        msg = EmailMessage()
        msg["From"] = f"{self._settings.page_name} <{self._settings.relay.sender}>"
        msg["To"] = sub.email
        msg["Subject"] = subject
        msg["Date"] = format_datetime(self._clock())
        domain = self._settings.relay.sender.rpartition("@")[2] or "localhost"
        msg["Message-ID"] = make_msgid(domain=domain)
        msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies, please
        unsubscribe = self._url(f"/unsubscribe/{sub.token}")
        if purpose == "notice":
            # RFC 8058 §3.1: an HTTPS URI plus the one-click POST marker.
            msg["List-Unsubscribe"] = f"<{unsubscribe}>"
            msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
            text += f"\n--\nUnsubscribe: {unsubscribe}\n"
        msg.set_content(text)
        return msg

    async def deliver_due(self, now: datetime | None = None, limit: int = 200) -> DeliveryReport:
        """Send every outbox row whose time has come.

        Returns:
            Counts of what happened.
        """
        moment = now or self._clock()
        rows = self._db.all(
            "SELECT * FROM outbox WHERE delivered_at IS NULL AND failed_at IS NULL"
            " AND next_attempt_at <= ? ORDER BY id LIMIT ?",
            (to_db(moment), limit),
        )
        delivered = retried = failed = skipped = 0
        for row in rows:
            try:
                if row["kind"] == "email":
                    sent = await self._send_mail(row)
                else:
                    sent = await self._send_webhook(row, moment)
            except PermanentFailure as exc:
                self._finish(row["id"], failed=str(exc), moment=moment)
                failed += 1
                continue
            except TemporaryFailure as exc:
                attempts = row["attempts"] + 1
                if attempts >= self._settings.webhook_max_attempts:
                    self._finish(row["id"], failed=str(exc), moment=moment)
                    failed += 1
                    continue
                delay = min(
                    self._settings.retry_base * 2 ** (attempts - 1), self._settings.retry_max
                )
                self._db.execute(
                    "UPDATE outbox SET attempts = ?, next_attempt_at = ?, last_error = ?"
                    " WHERE id = ?",
                    (attempts, to_db(moment + delay), str(exc)[:300], row["id"]),
                )
                log.info("notification %s deferred: %s", row["id"], exc)
                retried += 1
                continue
            if sent:
                self._finish(row["id"], moment=moment)
                delivered += 1
            else:
                self._finish(row["id"], failed="skipped: subscriber inactive", moment=moment)
                skipped += 1
        return DeliveryReport(delivered, retried, failed, skipped)

    def _finish(self, row_id: int, *, moment: datetime, failed: str = "") -> None:
        column = "failed_at" if failed else "delivered_at"
        self._db.execute(
            f"UPDATE outbox SET {column} = ?, attempts = attempts + 1, last_error = ?"  # noqa: S608
            " WHERE id = ?",
            (to_db(moment), failed[:300], row_id),
        )

    async def _send_mail(self, row: sqlite3.Row) -> bool:
        data = json.loads(row["payload"])
        try:
            sub = self.subscriber(row["target_id"])
        except NotFound:
            return False
        purpose = data["purpose"]
        if sub.unsubscribed_at or sub.quarantined_at:
            return False
        if purpose == "notice" and not sub.active:
            return False
        message = self.build_mail(sub, row["subject"], data["text"], purpose)
        try:
            await asyncio.to_thread(self._sender.send, message, sub.email)
        except PermanentFailure as exc:
            self.quarantine(sub.id, str(exc))
            log.warning("subscriber %s quarantined after hard bounce", sub.id)
            raise
        return True

    async def _send_webhook(self, row: sqlite3.Row, moment: datetime) -> bool:
        try:
            hook = self.webhook(row["target_id"])
        except NotFound:
            return False
        if not hook.active:
            return False
        body = row["payload"].encode()
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "mailwarden-status",
            "X-Mailwarden-Event": row["subject"],
            "X-Mailwarden-Delivery": str(row["id"]),
            "X-Mailwarden-Signature": sign(hook.secret, int(moment.timestamp()), body),
        }
        await asyncio.to_thread(self._poster.post, hook.url, body, headers)
        return True
