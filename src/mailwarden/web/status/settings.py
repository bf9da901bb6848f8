"""Settings of the status service: one frozen tree, built from a mapping.

The lead's ``config.py`` owns the main TOML file; the status service reads its
``[status]`` table through ``StatusSettings.from_mapping`` (the CLI does the
same for a file given with ``--config``).  Every field has a default fit for
the embedded ``make run`` setup.

Example::

    [status]
    database = "var/status.sqlite3"
    public_url = "https://status.example.net"
    page_name = "Example Mail Status"
    min_notice = "7d"
    reminders = ["24h", "60m"]
    nodes = [{ url = "http://127.0.0.1:8080", token = "...", cluster = "cluster-a" }]
    trusted_proxies = ["127.0.0.1"]   # believe X-Forwarded-For from these

    [status.bounces]        # late bounces (DSNs) of notification mail
    host = "relay.example.org"
    port = 110
    account = "status-bounces@example.net"
    password = "..."

    [status.login]          # admin login throttling
    address_failures = 5
    user_failures = 10
    window = "15m"
    lockout = "1m"
    lockout_max = "15m"

    [status.relay]          # notification mail; NOT the cluster being reported on
    host = "relay.example.org"
    port = 587
    starttls = true
    sender = "status@example.net"
    return_path = "status-bounces@example.net"

    [[status.probes]]
    cluster = "cluster-a"    # component keys are cluster-a-imap, cluster-a-pop3 ...
    host = "127.0.0.1"
    imap_port = 1143
    pop3_port = 1110
    submission_port = 2587
    webmail_url = "http://127.0.0.1:8080/login"   # "" for no webmail probe
    ca_file = ""             # PEM CA for a private/self-signed certificate
    account = "probe@example.net"
    password = "..."
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from mailwarden.web.status.model import StatusError, parse_length


@dataclass(frozen=True, slots=True)
class RelaySettings:
    """The SMTP relay notification mail goes through."""

    host: str = "127.0.0.1"
    """Relay host; must not be the cluster the page reports on."""
    port: int = 25
    starttls: bool = False
    """Upgrade with STARTTLS before sending (verify the relay's certificate)."""
    username: str = ""
    password: str = ""
    sender: str = "status@localhost"
    """From address of notification mail."""
    return_path: str = ""
    """Envelope sender (where bounces go, see ``[status.bounces]``); empty: ``sender``."""
    timeout: float = 15.0


@dataclass(frozen=True, slots=True)
class NodeSettings:
    """A mail node's admin API, used for drain and traffic profiles."""

    url: str
    """Base URL of the node's admin API, e.g. ``http://10.0.0.5:8080``."""
    token: str = ""
    """Bearer token for the admin API."""
    cluster: str = ""
    """Cluster key prefix (``cluster-a``); empty means the node is drained for any window."""


@dataclass(frozen=True, slots=True)
class ProbeSettings:
    """End-to-end probes of one cluster, run like a client would."""

    cluster: str
    """Component key prefix: probes set ``{cluster}-imap`` and so on."""
    host: str = "127.0.0.1"
    imap_port: int = 1143
    pop3_port: int = 1110
    submission_port: int = 2587
    webmail_url: str = "http://127.0.0.1:8080/login"
    """The webmail's login page (GET shows the form); empty: no webmail probe."""
    account: str = ""
    password: str = ""
    starttls: bool = False
    """Use STARTTLS/STLS before logging in (production: yes)."""
    ca_file: str = ""
    """PEM file of the CA to verify the cluster's certificates with; empty: system CAs."""
    interval: timedelta = timedelta(minutes=1)
    timeout: float = 10.0
    failures_for_outage: int = 3
    """Consecutive failures before a component is marked major outage."""
    slow_for_degraded: int = 3
    """Consecutive slow results before a component is marked degraded."""
    successes_to_recover: int = 3
    """Consecutive good results before a component is marked operational again."""
    degraded_ms: int = 2000
    """Login latency above which a result counts as slow."""
    roundtrip_degraded_ms: int = 60000
    """Submission-to-IMAP delivery latency above which the round trip counts as slow."""
    roundtrip_timeout: float = 300.0


@dataclass(frozen=True, slots=True)
class BounceSettings:
    """The mailbox that receives bounces of notification mail (``relay.return_path``)."""

    account: str
    password: str = ""
    host: str = "127.0.0.1"
    port: int = 110
    starttls: bool = True
    """Use STLS before logging in."""
    ca_file: str = ""
    """PEM CA to verify the server with; empty: system CAs."""
    timeout: float = 30.0
    interval: timedelta = timedelta(minutes=5)
    """How often the mailbox is read."""


@dataclass(frozen=True, slots=True)
class LoginSettings:
    """Throttling of admin logins (see the ``throttle`` module)."""

    address_failures: int = 5
    """Failed logins from one address (IPv6: one /64) before it is locked out."""
    user_failures: int = 10
    """Failed logins for one user name, from unfamiliar addresses, before it is locked."""
    window: timedelta = timedelta(minutes=15)
    """Failures further apart than this start the count afresh."""
    lockout: timedelta = timedelta(minutes=1)
    """First lockout; each further failure doubles it."""
    lockout_max: timedelta = timedelta(minutes=15)
    """Longest lockout."""
    known_for: timedelta = timedelta(days=30)
    """How long an address an operator logged in from stays exempt from the user lock."""


@dataclass(frozen=True, slots=True)
class StatusSettings:
    """Everything the status service needs."""

    database: Path = Path("var/status.sqlite3")
    public_url: str = "http://127.0.0.1:8081"
    """Base URL of the public page, used in mail and feeds."""
    page_name: str = "Mailwarden Status"
    min_notice: timedelta = timedelta(days=7)
    reminders: tuple[timedelta, ...] = (timedelta(hours=24), timedelta(minutes=60))
    relay: RelaySettings = field(default_factory=RelaySettings)
    nodes: tuple[NodeSettings, ...] = ()
    probes: tuple[ProbeSettings, ...] = ()
    bounces: BounceSettings | None = None
    """Where late bounces (DSNs) of notification mail are read; None: not read."""
    probe_history: timedelta = timedelta(days=90)
    """How long probe results are kept."""
    tick_interval: timedelta = timedelta(seconds=30)
    """How often the scheduler runs transitions, reminders, probes and deliveries."""
    session_ttl: timedelta = timedelta(hours=12)
    secure_cookies: bool = False
    """Mark admin cookies Secure (set when served over HTTPS)."""
    login: LoginSettings = field(default_factory=LoginSettings)
    trusted_proxies: tuple[str, ...] = ()
    """Reverse proxies (addresses or networks) whose X-Forwarded-For is believed."""
    webhook_max_attempts: int = 8
    retry_base: timedelta = timedelta(minutes=1)
    """First retry delay of mail and webhooks; doubled on every failure."""
    retry_max: timedelta = timedelta(hours=6)

    @classmethod
    def from_mapping(cls, data: dict[str, Any]) -> StatusSettings:
        """Build settings from a ``[status]`` table.

        Raises:
            StatusError: listing every bad or unknown field at once.
        """
        problems: list[str] = []

        def length(name: str, value: object) -> timedelta:
            if isinstance(value, int | float) and not isinstance(value, bool):
                return timedelta(seconds=value)
            try:
                return parse_length(str(value))
            except StatusError as exc:
                problems.append(f"status.{name}: {exc}")
                return timedelta(0)

        def build(kind: type[Any], table: object, where: str) -> Any:
            if not isinstance(table, dict):
                problems.append(f"{where}: expected a table")
                return None
            fields = kind.__dataclass_fields__
            args: dict[str, Any] = {}
            for key, value in table.items():
                if key not in fields:
                    problems.append(f"{where}.{key}: unknown setting")
                elif fields[key].type in ("timedelta", timedelta):
                    args[key] = length(f"{where}.{key}", value)
                elif fields[key].type in ("int", int) and (
                    not isinstance(value, int) or isinstance(value, bool) or value < 1
                ):
                    problems.append(f"{where}.{key}: expected a positive integer")
                else:
                    args[key] = value
            try:
                return kind(**args)
            except TypeError as exc:
                problems.append(f"{where}: {exc}")
                return None

        args: dict[str, Any] = {}
        for key, value in data.items():
            if key == "database":
                args[key] = Path(str(value))
            elif key in ("public_url", "page_name"):
                args[key] = str(value)
            elif key in (
                "min_notice",
                "tick_interval",
                "session_ttl",
                "retry_base",
                "retry_max",
                "probe_history",
            ):
                args[key] = length(key, value)
            elif key == "reminders":
                args[key] = tuple(length(key, v) for v in value)
            elif key == "relay":
                args[key] = build(RelaySettings, value, "status.relay")
            elif key == "nodes":
                args[key] = tuple(build(NodeSettings, v, "status.nodes") for v in value)
            elif key == "probes":
                args[key] = tuple(build(ProbeSettings, v, "status.probes") for v in value)
            elif key == "bounces":
                args[key] = build(BounceSettings, value, "status.bounces")
            elif key == "login":
                args[key] = build(LoginSettings, value, "status.login")
            elif key == "trusted_proxies":
                args[key] = tuple(str(v) for v in value)
                for text in args[key]:
                    try:
                        ipaddress.ip_network(text, strict=False)
                    except ValueError:
                        problems.append(f"status.trusted_proxies: {text!r} is not an address")
            elif key in ("secure_cookies",):
                args[key] = bool(value)
            elif key == "webhook_max_attempts":
                args[key] = int(value)
            else:
                problems.append(f"status.{key}: unknown setting")
        if not problems:
            problems += relay_problems(
                args.get("relay") or RelaySettings(), args.get("probes", ()), args.get("nodes", ())
            )
        if problems:
            raise StatusError("; ".join(problems))
        return cls(**args)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def relay_problems(
    relay: RelaySettings, probes: tuple[ProbeSettings, ...], nodes: tuple[NodeSettings, ...]
) -> list[str]:
    """Why ``relay`` is not independent of the cluster the page reports on, if it is not.

    Notices must reach people while the cluster is down, so the relay may not be
    one of the cluster's submission services, nor run on one of its hosts.  A
    loopback host is allowed to share (everything on one machine: a demo or a
    test), but never the very port the probes submit to.
    """
    problems = []
    for probe in probes:
        if (relay.host, relay.port) == (probe.host, probe.submission_port):
            problems.append(
                f"status.relay: {relay.host}:{relay.port} is the submission service of"
                f" {probe.cluster}; notices need a relay independent of the cluster"
            )
    if not _is_loopback(relay.host):
        hosts = {p.host: p.cluster for p in probes}
        hosts.update({urlsplit(n.url).hostname or "": n.cluster or n.url for n in nodes})
        if relay.host in hosts:
            problems.append(
                f"status.relay: {relay.host} is a host of {hosts[relay.host]}; notices need"
                " a relay independent of the cluster"
            )
    return problems
