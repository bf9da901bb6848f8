"""End-to-end probes: the status service logs in like a customer would.

The status service may run on another host, so it knows the cluster only as a
client does.  Each probe does one thing a user does, with a timeout:

- ``ImapLoginProbe`` / ``Pop3LoginProbe``: connect (optionally STARTTLS/STLS),
  log in with the probe account, log out.
- ``WebmailLoginProbe``: load the login page as a browser does (keeping its
  cookies and the form's hidden fields, such as a pre-login CSRF token), then
  POST ``username`` and ``password`` to the form's action.  A success is a 2xx
  or 3xx answer that sets a cookie the login page did not set (the session);
  the webmail answers a failed login with 401 (403 for a stale form, 503 while
  busy or drained).
- ``RoundTripProbe``: submit a message to the probe account through SMTP
  submission, then poll its INBOX over IMAP until the message (found by a
  unique ``X-Mailwarden-Probe`` header) arrives; the latency is the delivery
  time, from the end of the submission to the message showing in the INBOX.
  The message is deleted afterwards.

TLS is verified against the system's CAs, or against ``ca_file`` when the
cluster uses a private CA (or, in a test, the node's self-signed certificate).
When a step fails, the probe reports that step's error: the clean-up that
follows (LOGOUT, QUIT) is best effort and never hides the cause.

The blocking clients (imaplib, poplib, smtplib, http.client) run in threads
with ``asyncio.to_thread``; timeouts are socket timeouts plus an overall
``asyncio.timeout``.

``ProbeMonitor`` turns results into component statuses with hysteresis, so a
single lost packet does not paint the page red and one lucky login does not
paint it green:

- ``failures_for_outage`` consecutive failures → major outage;
- ``slow_for_degraded`` consecutive slow successes → degraded performance;
- ``successes_to_recover`` consecutive non-failures bring an outage back
  (to degraded if the last was slow), and consecutive fast successes bring
  degraded back to operational.

A probe is muted while maintenance explains its failures: the result is kept
in the history (marked muted) but changes no state.  That is the case while a
window in progress covers a component the probe speaks for or relies on (the
round trip relies on IMAP to fetch and on Authentication to log in; a login
relies on Authentication), and while a draining window drains its cluster: a
drained node refuses new sessions on every protocol, whichever components the
window names, so a POP3 login failing during a drain for IMAP work is not a
POP3 outage.  Every result is kept in ``probe_results``; ``run_due`` trims
history older than ``history`` once a day.

The public page shows the round trip's delivery time (``delivery_latency``)
under the component the probe names as its ``latency_component`` (SMTP
submission/outbound): the latest time and a short history, as numbers only,
with no probe names, hosts or error texts, which stay on the admin pages.

Authentication is probed by inference.  No client logs in to "the
authentication service"; it logs in to IMAP, POP3, the webmail or submission,
and each probe tells a refused login (the service answered and said no, or
"try again later": IMAP ``NO``, POP3 ``-ERR``, SMTP 535/454, HTTP 401/503)
apart from a service that could not be reached.  When, in one run, at least
two login probes of a cluster are refused (or the only one is), the cluster's
Authentication component gets a failure (a derived probe named
``{cluster}/auth``), and those refusals are kept in the history but counted
against Authentication rather than against IMAP or POP3; when every login
probe gets in, Authentication gets a success.  The usual hysteresis then
applies, and the dependency rule shows IMAP, POP3, Webmail and submission as
impacted with the cause "Authentication: major outage" — which is what their
users experience — while a POP3 listener that is simply down still marks
POP3 alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import html.parser
import http.client
import http.cookies
import imaplib
import poplib
import smtplib
import ssl
import statistics
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Protocol

from mailwarden.web.status.components import Components
from mailwarden.web.status.db import StatusDB
from mailwarden.web.status.model import Clock, ComponentStatus, from_db, to_db, worst
from mailwarden.web.status.settings import ProbeSettings


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """Outcome of one probe run."""

    ok: bool
    latency_ms: int | None
    detail: str = ""
    login_refused: bool = False
    """The service answered but refused the login (credentials, or "try later")."""


class Probe(Protocol):
    """Something that checks a service like a client would.

    Besides these members a probe may have (read with ``getattr``):
    ``cluster`` (its cluster key prefix: a drain of that cluster mutes it),
    ``relies_on`` (further component keys whose maintenance mutes it),
    ``auth_component`` (where refused logins are blamed) and
    ``latency_component`` (where the public page shows its latency).
    """

    name: str
    """Unique name, e.g. ``cluster-a/imap-login``."""
    components: tuple[str, ...]
    """Keys of the components this probe speaks for."""
    slow_ms: int
    """Latency above which a success counts as slow."""

    async def run(self) -> ProbeResult:
        """Run once; never raises for a service failure (returns ``ok=False``)."""


class Verdict(enum.Enum):
    """How one result counts."""

    GOOD = "good"
    SLOW = "slow"
    FAIL = "fail"


def _elapsed_ms(start: float, monotonic: Callable[[], float]) -> int:
    return round((monotonic() - start) * 1000)


class _BlockingProbe:
    """Shared plumbing: run ``_check`` in a thread under a timeout and time it."""

    def __init__(
        self,
        name: str,
        components: tuple[str, ...],
        settings: ProbeSettings,
        slow_ms: int,
        timeout: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.components = components
        self.slow_ms = slow_ms
        self.cluster = settings.cluster
        """Cluster key prefix: a draining window on this cluster mutes the probe."""
        self.auth_component = f"{settings.cluster}-auth"
        """The Authentication component a refused login is blamed on."""
        self.relies_on: tuple[str, ...] = (self.auth_component,)
        """Components (besides its own) whose maintenance mutes the probe."""
        self._settings = settings
        self._timeout = timeout
        self._monotonic = monotonic

    def _check(self) -> int | None:
        """Do the blocking work; return a latency override in ms, or None to time it."""
        raise NotImplementedError

    async def run(self) -> ProbeResult:
        start = self._monotonic()
        try:
            async with asyncio.timeout(self._timeout + 1):
                measured = await asyncio.to_thread(self._check)
        except TimeoutError:
            return ProbeResult(False, None, "timed out")
        except LoginRefused as exc:
            return ProbeResult(False, None, _describe(exc), login_refused=True)
        except (OSError, EOFError, imaplib.IMAP4.error, poplib.error_proto) as exc:
            return ProbeResult(False, None, _describe(exc))
        except (smtplib.SMTPException, http.client.HTTPException, ProbeFailed) as exc:
            return ProbeResult(False, None, _describe(exc))
        latency = measured if measured is not None else _elapsed_ms(start, self._monotonic)
        return ProbeResult(True, latency)


class ProbeFailed(Exception):
    """The service answered, but not as a working service does."""


class LoginRefused(ProbeFailed):
    """The service answered and refused the login: a matter for Authentication."""


# RFC 4954 §6: 454 temporary authentication failure, 534/538 mechanism or
# encryption required, 535 credentials invalid.
_SMTP_AUTH_REFUSALS = frozenset({454, 534, 535, 538})


@contextlib.contextmanager
def _login_step() -> Iterator[None]:
    """Turn the protocol's "login refused" answer into ``LoginRefused``.

    Connection trouble (``IMAP4.abort``, socket errors) passes through as is:
    a service that cannot be reached is that service's problem, not auth's.
    """
    try:
        yield
    except imaplib.IMAP4.abort:
        raise
    except (imaplib.IMAP4.error, poplib.error_proto) as exc:
        raise LoginRefused(_describe(exc)) from exc
    except smtplib.SMTPResponseException as exc:
        if exc.smtp_code in _SMTP_AUTH_REFUSALS:
            raise LoginRefused(_describe(exc)) from exc
        raise


def _describe(exc: BaseException) -> str:
    text = str(exc).replace("\r", " ").replace("\n", " ")
    return f"{type(exc).__name__}: {text}"[:200]


def _tls_context(settings: ProbeSettings) -> ssl.SSLContext:
    """A verifying client context (system CAs, or ``settings.ca_file``)."""
    return ssl.create_default_context(cafile=settings.ca_file or None)


def _quietly(action: Callable[[], object]) -> None:
    """Clean-up after a failed step: never let it replace the step's own error."""
    with contextlib.suppress(Exception):
        action()


def _imap_session(settings: ProbeSettings) -> imaplib.IMAP4:
    """Connect, STARTTLS if asked, and log in; the caller logs out."""
    imap = imaplib.IMAP4(settings.host, settings.imap_port, timeout=settings.timeout)
    try:
        if settings.starttls:
            imap.starttls(_tls_context(settings))
        with _login_step():
            imap.login(settings.account, settings.password)
    except BaseException:
        _quietly(imap.shutdown)
        raise
    return imap


class ImapLoginProbe(_BlockingProbe):
    """Log in over IMAP and out again."""

    def __init__(self, settings: ProbeSettings, **kwargs: Callable[[], float]) -> None:
        super().__init__(
            f"{settings.cluster}/imap-login",
            (f"{settings.cluster}-imap",),
            settings,
            settings.degraded_ms,
            settings.timeout,
            **kwargs,
        )

    def _check(self) -> int | None:
        imap = _imap_session(self._settings)
        try:
            imap.logout()
        finally:
            _quietly(imap.shutdown)
        return None


class Pop3Client(poplib.POP3):
    """``poplib.POP3`` that closes its socket when the greeting is an error.

    The standard class leaves the socket open when the server greets with
    ``-ERR`` (as a drained or overloaded server does).
    """

    def __init__(self, host: str, port: int, timeout: float) -> None:
        try:
            super().__init__(host, port, timeout=timeout)
        except BaseException:
            if getattr(self, "sock", None) is not None:
                _quietly(self.close)
            raise


class Pop3LoginProbe(_BlockingProbe):
    """Log in over POP3 and quit."""

    def __init__(self, settings: ProbeSettings, **kwargs: Callable[[], float]) -> None:
        super().__init__(
            f"{settings.cluster}/pop3-login",
            (f"{settings.cluster}-pop3",),
            settings,
            settings.degraded_ms,
            settings.timeout,
            **kwargs,
        )

    def _check(self) -> int | None:
        s = self._settings
        pop = Pop3Client(s.host, s.pop3_port, timeout=s.timeout)
        try:
            if s.starttls:
                pop.stls(_tls_context(s))
            with _login_step():
                pop.user(s.account)
                pop.pass_(s.password)
            pop.quit()
        except BaseException:
            _quietly(pop.close)
            raise
        return None


class _LoginForm(html.parser.HTMLParser):
    """Finds the login form of a page: its action and its hidden fields.

    The login form is the first form with a password field; a page without
    one is not a login page.
    """

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.action: str | None = None
        self.hidden: dict[str, str] = {}
        self.found = False
        self._form: tuple[str, dict[str, str]] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.found:
            return
        attr = {name: value or "" for name, value in attrs}
        if tag == "form":
            self._form = (attr.get("action", ""), {})
        elif tag == "input" and self._form is not None:
            kind = attr.get("type", "text").lower()
            if kind == "hidden" and attr.get("name"):
                self._form[1][attr["name"]] = attr.get("value", "")
            elif kind == "password":
                self.found = True
                self.action, self.hidden = self._form[0], dict(self._form[1])

    def handle_endtag(self, tag: str) -> None:
        if tag == "form" and not self.found:
            self._form = None


def _cookies(response: http.client.HTTPResponse) -> dict[str, str]:
    """Cookies a response sets (name to value; a deleted cookie has an empty value)."""
    jar: dict[str, str] = {}
    for header in response.headers.get_all("Set-Cookie") or []:
        cookie = http.cookies.SimpleCookie()
        with contextlib.suppress(http.cookies.CookieError):
            cookie.load(header)
        for name, morsel in cookie.items():
            expired = morsel["max-age"] in ("0", "-1")
            jar[name] = "" if expired else morsel.value
    return jar


class WebmailLoginProbe(_BlockingProbe):
    """Load the webmail login form, submit it, and expect a new session cookie."""

    def __init__(self, settings: ProbeSettings, **kwargs: Callable[[], float]) -> None:
        super().__init__(
            f"{settings.cluster}/webmail-login",
            (f"{settings.cluster}-webmail",),
            settings,
            settings.degraded_ms,
            settings.timeout,
            **kwargs,
        )

    def _request(
        self, url: urllib.parse.SplitResult, method: str, body: str = "", cookies: str = ""
    ) -> tuple[http.client.HTTPResponse, bytes]:
        s = self._settings
        conn: http.client.HTTPConnection
        if url.scheme == "https":
            conn = http.client.HTTPSConnection(
                url.netloc, timeout=s.timeout, context=_tls_context(s)
            )
        elif url.scheme == "http":
            conn = http.client.HTTPConnection(url.netloc, timeout=s.timeout)
        else:
            raise ProbeFailed(f"not an http(s) URL: {s.webmail_url}")
        headers = {"User-Agent": "mailwarden-status-probe", "Accept": "text/html"}
        if cookies:
            headers["Cookie"] = cookies
        if method == "POST":
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        target = url.path or "/"
        if url.query:
            target += "?" + url.query
        try:
            conn.request(method, target, body=body or None, headers=headers)
            response = conn.getresponse()
            # A login page is small; read a bounded amount.
            data = response.read(1024 * 1024)
        finally:
            conn.close()
        return response, data

    def _check(self) -> int | None:
        s = self._settings
        page_url = urllib.parse.urlsplit(s.webmail_url)
        page, html_bytes = self._request(page_url, "GET")
        if page.status != 200:
            raise ProbeFailed(f"login page answered HTTP {page.status}")
        form = _LoginForm()
        form.feed(html_bytes.decode("utf-8", "replace"))
        if not form.found:
            raise ProbeFailed("no login form on the login page")
        jar = {k: v for k, v in _cookies(page).items() if v}
        action = urllib.parse.urlsplit(urllib.parse.urljoin(s.webmail_url, form.action or ""))
        if action.netloc != page_url.netloc:
            raise ProbeFailed("the login form posts to another host")
        fields = {**form.hidden, "username": s.account, "password": s.password}
        answer, _ = self._request(
            action,
            "POST",
            urllib.parse.urlencode(fields),
            "; ".join(f"{k}={v}" for k, v in jar.items()),
        )
        if answer.status in (401, 503):  # wrong credentials / the auth door says later
            raise LoginRefused(f"login answered HTTP {answer.status}")
        if answer.status >= 400:
            raise ProbeFailed(f"login answered HTTP {answer.status}")
        fresh = [k for k, v in _cookies(answer).items() if v and jar.get(k) != v]
        if not fresh:
            raise ProbeFailed(f"login answered HTTP {answer.status} without a session cookie")
        return None


class RoundTripProbe(_BlockingProbe):
    """Submit a message and wait for it in the INBOX; latency is delivery time."""

    def __init__(
        self,
        settings: ProbeSettings,
        *,
        poll_every: float = 1.0,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(
            f"{settings.cluster}/roundtrip",
            (f"{settings.cluster}-smtp-submission", f"{settings.cluster}-smtp-inbound"),
            settings,
            settings.roundtrip_degraded_ms,
            settings.roundtrip_timeout,
            monotonic,
        )
        self._poll_every = poll_every
        self._sleep = sleep
        # It logs in to submit and fetches over IMAP: their maintenance mutes it too.
        self.relies_on = (f"{settings.cluster}-imap", self.auth_component)
        self.latency_component = f"{settings.cluster}-smtp-submission"
        """The component the public page shows the delivery time under."""

    def _submit(self, token: str) -> None:
        s = self._settings
        msg = EmailMessage()
        msg["From"] = s.account
        msg["To"] = s.account
        msg["Subject"] = f"mailwarden status probe {token}"
        msg["X-Mailwarden-Probe"] = token
        msg.set_content("Round-trip probe of the status service. It is deleted on arrival.\n")
        smtp = smtplib.SMTP(s.host, s.submission_port, timeout=s.timeout)
        try:
            if s.starttls:
                smtp.starttls(context=_tls_context(s))
            with _login_step():
                smtp.login(s.account, s.password)
            smtp.send_message(msg)
            smtp.quit()
        except BaseException:
            _quietly(smtp.close)
            raise

    def _check(self) -> int | None:
        s = self._settings
        token = uuid.uuid4().hex
        self._submit(token)
        sent = self._monotonic()
        deadline = sent + s.roundtrip_timeout
        imap = _imap_session(s)
        try:
            while True:
                imap.select("INBOX")
                _, data = imap.search(None, "HEADER", "X-Mailwarden-Probe", token)
                found = data[0].split() if data and data[0] else []
                if found:
                    latency = _elapsed_ms(sent, self._monotonic)
                    for num in found:
                        imap.store(num.decode(), "+FLAGS", "\\Deleted")
                    imap.expunge()
                    imap.logout()
                    return latency
                if self._monotonic() >= deadline:
                    raise ProbeFailed("probe message not delivered in time")
                self._sleep(self._poll_every)
        finally:
            _quietly(imap.shutdown)


def probes_for(settings: ProbeSettings) -> list[Probe]:
    """The standard probes of one cluster (the webmail one only with a URL)."""
    probes: list[Probe] = [ImapLoginProbe(settings), Pop3LoginProbe(settings)]
    if settings.webmail_url:
        probes.append(WebmailLoginProbe(settings))
    probes.append(RoundTripProbe(settings))
    return probes


@dataclass(frozen=True, slots=True)
class Hysteresis:
    """Thresholds of the probe state machine."""

    failures_for_outage: int = 3
    slow_for_degraded: int = 3
    successes_to_recover: int = 3

    @classmethod
    def from_settings(cls, settings: ProbeSettings) -> Hysteresis:
        """Thresholds from a cluster's probe settings."""
        return cls(
            settings.failures_for_outage, settings.slow_for_degraded, settings.successes_to_recover
        )


@dataclass(frozen=True, slots=True)
class ProbeState:
    """Where one probe's state machine stands."""

    status: ComponentStatus = ComponentStatus.OPERATIONAL
    failures: int = 0
    """Consecutive failures."""
    slow: int = 0
    """Consecutive slow successes."""
    successes: int = 0
    """Consecutive non-failures (slow ones included)."""
    fast: int = 0
    """Consecutive fast successes."""


def step(state: ProbeState, verdict: Verdict, rules: Hysteresis) -> ProbeState:
    """Advance the probe state machine by one result (pure; see the module docstring)."""
    if verdict is Verdict.FAIL:
        failures = state.failures + 1
        status = state.status
        if failures >= rules.failures_for_outage:
            status = ComponentStatus.MAJOR_OUTAGE
        return ProbeState(status, failures, 0, 0, 0)
    successes = state.successes + 1
    slow = state.slow + 1 if verdict is Verdict.SLOW else 0
    fast = state.fast + 1 if verdict is Verdict.GOOD else 0
    status = state.status
    if status is ComponentStatus.MAJOR_OUTAGE:
        if successes >= rules.successes_to_recover:
            status = (
                ComponentStatus.DEGRADED_PERFORMANCE
                if verdict is Verdict.SLOW
                else ComponentStatus.OPERATIONAL
            )
    elif status is ComponentStatus.DEGRADED_PERFORMANCE:
        if fast >= rules.successes_to_recover:
            status = ComponentStatus.OPERATIONAL
    elif slow >= rules.slow_for_degraded:
        status = ComponentStatus.DEGRADED_PERFORMANCE
    return ProbeState(status, 0, slow, successes, fast)


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    """One kept probe result."""

    probe: str
    at: datetime
    ok: bool
    latency_ms: int | None
    detail: str
    muted: bool


@dataclass(frozen=True, slots=True)
class DeliverySample:
    """One round-trip result as the public page may show it: no names, no error text."""

    at: datetime
    latency_ms: int | None
    """Submission-to-INBOX time; None when the message did not arrive (or the check failed)."""
    slow: bool
    """Over the probe's threshold for degraded performance."""
    muted: bool
    """Taken during maintenance (and not counted)."""


@dataclass(frozen=True, slots=True)
class DeliveryLatency:
    """A round trip's recent delivery times for the public page."""

    component: str
    """Key of the component they are shown under."""
    samples: tuple[DeliverySample, ...]
    """Oldest first."""

    @property
    def latest(self) -> DeliverySample | None:
        """The newest result, or None before the first run."""
        return self.samples[-1] if self.samples else None

    @property
    def median_ms(self) -> int | None:
        """Median delivery time of the delivered, unmuted samples (None without any)."""
        times = [s.latency_ms for s in self.samples if s.latency_ms is not None and not s.muted]
        return round(statistics.median(times)) if times else None


class DerivedAuthProbe:
    """The Authentication "probe": never run, fed by the login probes' results.

    Its name is ``{cluster}/auth`` for the component ``{cluster}-auth``.
    """

    slow_ms = 2**31

    def __init__(self, component: str) -> None:
        self.components: tuple[str, ...] = (component,)
        self.cluster = component.removesuffix("-auth")
        self.name = f"{self.cluster}/auth"

    async def run(self) -> ProbeResult:
        """Not run on its own (see ``ProbeMonitor.run_all``)."""
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class ProbeOverview:
    """One probe as the admin page lists it."""

    name: str
    components: tuple[str, ...]
    """Component keys it speaks for (empty for a probe no longer configured)."""
    slow_ms: int | None
    state: ProbeState
    updated_at: datetime | None
    """When its state last moved (None if it never has)."""
    last: HistoryEntry | None
    """Its newest result."""


class ProbeMonitor:
    """Runs probes, keeps their history and sets components' probe status.

    Args:
        db: the status database.
        clock: injected time source.
        components: where verdicts go.
        probes: with the hysteresis rules for each.
        interval: how often ``run_due`` runs the probes.
        history: how long results are kept.
    """

    def __init__(
        self,
        db: StatusDB,
        clock: Clock,
        components: Components,
        probes: list[tuple[Probe, Hysteresis]],
        interval: timedelta = timedelta(minutes=1),
        history: timedelta = timedelta(days=90),
    ) -> None:
        self._db = db
        self._clock = clock
        self._components = components
        self._probes = probes
        self._interval = interval
        self._history = history
        self._last_run: datetime | None = None
        self._last_prune: datetime | None = None
        # Derived Authentication probes, one per auth component the login probes name.
        self._auth: dict[str, tuple[DerivedAuthProbe, Hysteresis]] = {}
        for probe, rules in probes:
            key = getattr(probe, "auth_component", None)
            if isinstance(key, str) and key not in self._auth:
                self._auth[key] = (DerivedAuthProbe(key), rules)

    def _all_probes(self) -> list[tuple[Probe, Hysteresis]]:
        return [*self._probes, *self._auth.values()]

    def state(self, probe: str) -> ProbeState:
        """Current state of one probe's machine."""
        row = self._db.one("SELECT * FROM probe_state WHERE probe = ?", (probe,))
        if row is None:
            return ProbeState()
        return ProbeState(
            ComponentStatus(row["status"]),
            row["failures"],
            row["slow"],
            row["successes"],
            row["fast"],
        )

    def record(
        self,
        probe: Probe,
        result: ProbeResult,
        rules: Hysteresis,
        now: datetime | None = None,
        *,
        blame: str | None = None,
    ) -> ProbeState:
        """Keep a result and advance the probe's state (unless muted or blamed).

        Args:
            probe: the probe that ran.
            result: what it found.
            rules: its hysteresis.
            now: the time to record (default: the clock).
            blame: a component this failure is counted against instead (a refused
                login blamed on Authentication); the probe's own state stays.

        Returns:
            The probe's state afterwards.
        """
        moment = now or self._clock()
        keys = set(probe.components)
        muted = self.muted(probe)
        detail = f"{result.detail} (counted against {blame})" if blame else result.detail
        with self._db.transaction() as conn:
            conn.execute(
                "INSERT INTO probe_results (probe, at, ok, latency_ms, detail, muted)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    probe.name,
                    to_db(moment),
                    int(result.ok),
                    result.latency_ms,
                    detail[:300],
                    int(muted),
                ),
            )
            before = self.state(probe.name)
            if muted or blame:
                return before
            if not result.ok:
                verdict = Verdict.FAIL
            elif result.latency_ms is not None and result.latency_ms > probe.slow_ms:
                verdict = Verdict.SLOW
            else:
                verdict = Verdict.GOOD
            after = step(before, verdict, rules)
            conn.execute(
                "INSERT INTO probe_state (probe, status, failures, slow, successes, fast,"
                " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(probe) DO UPDATE SET"
                " status = excluded.status, failures = excluded.failures, slow = excluded.slow,"
                " successes = excluded.successes, fast = excluded.fast,"
                " updated_at = excluded.updated_at",
                (
                    probe.name,
                    after.status.value,
                    after.failures,
                    after.slow,
                    after.successes,
                    after.fast,
                    to_db(moment),
                ),
            )
            if after.status is not before.status:
                self._apply(keys)
        return after

    def muted(self, probe: Probe) -> bool:
        """Whether maintenance in progress mutes ``probe`` now (see the module docstring)."""
        keys = {*probe.components, *getattr(probe, "relies_on", ())}
        cluster = getattr(probe, "cluster", "")
        for window_keys, drains in self._components.windows_in_progress():
            if keys & window_keys:
                return True
            if drains and cluster and any(k.startswith(f"{cluster}-") for k in window_keys):
                return True
        return False

    def _apply(self, keys: set[str]) -> None:
        """Set each component's probe status to the worst of its probes' states."""
        for key in keys:
            names = [p.name for p, _ in self._all_probes() if key in p.components]
            statuses = [self.state(name).status for name in names]
            self._components.set_probe_status(key, worst(statuses))

    async def run_all(self) -> dict[str, ProbeState]:
        """Run every probe now (concurrently), record the results, infer Authentication."""
        results = await asyncio.gather(*(probe.run() for probe, _ in self._probes))
        now = self._clock()
        verdicts = self._auth_verdicts(
            [(probe, result) for (probe, _), result in zip(self._probes, results, strict=True)]
        )
        states = {}
        for (probe, rules), result in zip(self._probes, results, strict=True):
            auth = getattr(probe, "auth_component", None)
            blamed = result.login_refused and auth in verdicts and not verdicts[auth].ok
            states[probe.name] = self.record(
                probe, result, rules, now, blame=auth if blamed else None
            )
        for key, verdict in verdicts.items():
            derived, rules = self._auth[key]
            states[derived.name] = self.record(derived, verdict, rules, now)
        return states

    def _auth_verdicts(self, ran: list[tuple[Probe, ProbeResult]]) -> dict[str, ProbeResult]:
        """What this run says about each Authentication component (see the module doc)."""
        tally: dict[str, list[ProbeResult]] = {}
        for probe, result in ran:
            key = getattr(probe, "auth_component", None)
            if isinstance(key, str):
                tally.setdefault(key, []).append(result)
        verdicts = {}
        for key, results in tally.items():
            refused = sum(r.login_refused for r in results)
            if refused >= min(2, len(results)):
                verdicts[key] = ProbeResult(
                    False, None, f"{refused} of {len(results)} login probes were refused"
                )
            elif all(r.ok for r in results):
                verdicts[key] = ProbeResult(True, None, f"{len(results)} login probes got in")
        return verdicts

    async def run_due(self) -> bool:
        """Run the probes if the interval has passed; return whether they ran."""
        now = self._clock()
        if self._last_run is not None and now - self._last_run < self._interval:
            return False
        self._last_run = now
        if self._probes:
            await self.run_all()
        if self._last_prune is None or now - self._last_prune >= timedelta(days=1):
            self._last_prune = now
            self.prune(self._history)
        return True

    def history(self, probe: str | None = None, limit: int = 100) -> list[HistoryEntry]:
        """Latest results, newest first."""
        where, params = ("WHERE probe = ?", (probe, limit)) if probe else ("", (limit,))
        rows = self._db.all(
            f"SELECT * FROM probe_results {where} ORDER BY at DESC, id DESC LIMIT ?",  # noqa: S608
            params,
        )
        return [
            HistoryEntry(
                r["probe"],
                from_db(r["at"]),
                bool(r["ok"]),
                r["latency_ms"],
                r["detail"],
                bool(r["muted"]),
            )
            for r in rows
        ]

    def delivery_latency(self, limit: int = 30) -> dict[str, DeliveryLatency]:
        """The round trips' recent delivery times, by the component they are shown under.

        Only probes with a ``latency_component`` count; each gets its newest
        ``limit`` results, oldest first, with nothing but times and outcomes.
        """
        found: dict[str, DeliveryLatency] = {}
        for probe, _ in self._probes:
            key = getattr(probe, "latency_component", None)
            if not isinstance(key, str) or key in found:
                continue
            samples = [
                DeliverySample(
                    entry.at,
                    entry.latency_ms if entry.ok else None,
                    entry.ok and entry.latency_ms is not None and entry.latency_ms > probe.slow_ms,
                    entry.muted,
                )
                for entry in reversed(self.history(probe.name, limit))
            ]
            found[key] = DeliveryLatency(key, tuple(samples))
        return found

    def overview(self) -> list[ProbeOverview]:
        """Every probe configured or on record, configured ones first."""
        rows = {r["probe"]: r for r in self._db.all("SELECT * FROM probe_state")}
        names = [p.name for p, _ in self._all_probes()]
        names += sorted(
            {r[0] for r in self._db.all("SELECT DISTINCT probe FROM probe_results")}.union(
                rows
            ).difference(names)
        )
        configured = {p.name: p for p, _ in self._all_probes()}
        out = []
        for name in names:
            probe = configured.get(name)
            row = rows.get(name)
            last = self.history(name, 1)
            out.append(
                ProbeOverview(
                    name,
                    probe.components if probe else (),
                    probe.slow_ms if probe else None,
                    self.state(name),
                    from_db(row["updated_at"]) if row else None,
                    last[0] if last else None,
                )
            )
        return out

    def prune(self, older_than: timedelta = timedelta(days=90)) -> int:
        """Delete history older than ``older_than``; return how many rows went."""
        cutoff = to_db(self._clock() - older_than)
        with self._db.transaction() as conn:
            return conn.execute("DELETE FROM probe_results WHERE at < ?", (cutoff,)).rowcount
