"""Mailwarden's configuration: one TOML file, loaded once, validated whole.

Theory of operation
-------------------
The configuration is a tree of frozen dataclasses.  Each field is declared with
:func:`setting`, which carries its default, its documentation and its bounds;
the sample printed by ``mailwarden config sample`` is generated from those, so
the documentation cannot drift from the code (mox's sconf-doc idea).

:func:`load_config` reads the TOML file (if any), overlays ``MAILWARDEN_*``
environment variables, then checks every value against its declared type and
bounds.  Every problem is collected and reported at once in a
:class:`ConfigError`, each with its dotted key, so an operator fixes a file in
one pass.  No other module reads ``os.environ``.

Environment overrides name a key by section and field in upper case, joined by
an underscore: ``MAILWARDEN_IMAP_PORT=11143``, ``MAILWARDEN_DATA_DIR=/srv/mail``.
Values are parsed as TOML scalars when they look like one, else kept as strings.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mailwarden.mail.address import Address

__all__ = [
    "AuthConfig",
    "Config",
    "ConfigError",
    "ImapConfig",
    "LogConfig",
    "Pop3Config",
    "SmtpConfig",
    "StatusConfig",
    "StoreConfig",
    "SubmissionConfig",
    "TlsConfig",
    "WebConfig",
    "load_config",
    "sample_config",
]

MiB = 1024 * 1024


def setting(default: Any, doc: str, *, min: float | None = None, max: float | None = None) -> Any:
    """Declare a configuration field with its default, documentation and bounds."""
    meta = {"doc": doc, "min": min, "max": max}
    if isinstance(default, list | dict):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True, slots=True)
class TlsConfig:
    """TLS certificate used by every listener."""

    cert_file: str = setting(
        "", "PEM certificate chain. Empty: <data_dir>/tls/cert.pem, self-signed at init."
    )
    key_file: str = setting("", "PEM private key. Empty: <data_dir>/tls/key.pem.")


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """Where mail and accounts are kept."""

    backend: str = setting("sqlite", "Store backend: 'sqlite' (the only one so far).")
    sqlite_path: str = setting("", "SQLite database file. Empty: <data_dir>/mailwarden.db.")
    blob_dir: str = setting("", "Directory of message blobs. Empty: <data_dir>/blobs.")
    readers: int = setting(4, "Number of read connections to the database.", min=1, max=64)


@dataclass(frozen=True, slots=True)
class AuthConfig:
    """Password hashing and login policy."""

    argon2_memory_kib: int = setting(
        19456, "argon2id memory cost in KiB (OWASP minimum 19 MiB).", min=8, max=4 * MiB
    )
    argon2_time_cost: int = setting(2, "argon2id iterations.", min=1, max=100)
    argon2_parallelism: int = setting(1, "argon2id lanes.", min=1, max=64)
    verify_workers: int = setting(
        0, "Processes that verify passwords. 0: one per core.", min=0, max=256
    )
    max_pending: int = setting(
        64, "Verifications allowed to wait for a worker before new ones are shed.", min=1
    )
    # The login policy (mailwarden.auth.policy says how each is used).
    window: float = setting(
        900.0,
        "How long a failure counts towards a limit (sliding window). In seconds.",
        min=0,
    )
    host_failures: int = setting(
        10,
        "Distinct failures of one IPv4 address or IPv6 /64 before a ban.",
        min=1,
    )
    site_failures: int = setting(
        30,
        "Distinct failures of one IPv4 /24 or IPv6 /48 before a ban.",
        min=1,
    )
    wide_failures: int = setting(
        100,
        "Distinct failures of one IPv4 /16 or IPv6 /32 before a ban.",
        min=1,
    )
    account_failures: int = setting(
        30,
        "Distinct failures of one account from unknown sources before its unknown lane"
        " is held (TryLater) while they stay in the window.",
        min=1,
    )
    account_hold_retry: float = setting(
        60.0,
        "``retry_after`` told to clients of a held account. In seconds.",
        min=0,
    )
    ban_base: float = setting(
        600.0,
        "Length of a first ban. In seconds.",
        min=0,
    )
    ban_factor: float = setting(
        4.0,
        "Each earlier ban of the network within ``ban_memory`` multiplies by this.",
        min=0,
    )
    ban_max: float = setting(
        86400.0,
        "The longest automatic ban. In seconds.",
        min=0,
    )
    ban_memory: float = setting(
        604800.0,
        "How far back earlier bans count for escalation. In seconds.",
        min=0,
    )
    failure_delay_base: float = setting(
        1.0,
        "Delay before answering the first failure of a source. In seconds.",
        min=0,
    )
    failure_delay_max: float = setting(
        15.0,
        "The longest delay; it doubles with each failure of the host. In seconds.",
        min=0,
    )
    banned_delay: float = setting(
        15.0,
        "Delay before answering a banned source that is still connected. In seconds.",
        min=0,
    )
    known_ttl: float = setting(
        2592000.0,
        "How long a successful (account, client network) stays known. In seconds.",
        min=0,
    )
    known_prefix_v4: int = setting(
        24,
        "Prefix length of a known client's IPv4 network.",
        min=1,
    )
    known_prefix_v6: int = setting(
        64,
        "Prefix length of a known client's IPv6 network.",
        min=1,
    )
    known_failures: int = setting(
        5,
        "Distinct failures a known (account, network) may make before it loses its lane"
        " until they leave the window.",
        min=1,
    )
    device_token_ttl: float = setting(
        7776000.0,
        "Lifetime of a signed device token. In seconds.",
        min=0,
    )
    success_cache_ttl: float = setting(
        43200.0,
        "How long a successful login spares the next one a hash. In seconds.",
        min=0,
    )
    failure_cache_ttl: float = setting(
        900.0,
        "How long a failed (account, password) pair is answered without hashing again"
        " (the phone with an old password). In seconds.",
        min=0,
    )
    known_reserve: int = setting(
        8,
        "Verification slots the unknown lane may not take.",
        min=1,
    )
    source_pending: int = setting(
        4,
        "Verifications one host may have queued or running at once.",
        min=1,
    )
    shed_retry_after: float = setting(
        5.0,
        "``retry_after`` of a request shed by admission control. In seconds.",
        min=0,
    )
    shed_delay_base: float = setting(
        0.25,
        'Delay of a source\'s second "try later" within shed_window; it doubles with each'
        " one after (first: none). In seconds.",
        min=0,
    )
    shed_window: float = setting(
        10.0,
        "How long a shed counts towards that delay. In seconds.",
        min=0,
    )
    prelogin_host: int = setting(
        32,
        "Unauthenticated connections open at once from one host.",
        min=1,
    )
    prelogin_site: int = setting(
        128,
        "The same for one /24 (IPv6 /48).",
        min=1,
    )
    prelogin_wide: int = setting(
        512,
        "The same for one /16 (IPv6 /32).",
        min=1,
    )
    prelogin_total: int = setting(
        20000,
        "Unauthenticated connections open at once on this node.",
        min=1,
    )
    refresh_interval: float = setting(
        1.0,
        "How often the node reads changes made by the admin tools. In seconds.",
        min=0,
    )
    stats_interval: float = setting(
        2.0,
        "How often the node publishes its live statistics. In seconds.",
        min=0,
    )


@dataclass(frozen=True, slots=True)
class ImapConfig:
    """IMAP service (RFC 3501 / 9051)."""

    enabled: bool = setting(True, "Run the IMAP service.")
    port: int = setting(1143, "Port with STARTTLS (143 in production).", min=0, max=65535)
    tls_port: int = setting(1993, "Port with implicit TLS (993 in production).", min=0, max=65535)
    max_line: int = setting(
        65536, "Longest command line in octets, literals excluded.", min=1024, max=16 * MiB
    )
    max_literal: int = setting(
        50 * MiB, "Largest literal (and APPEND message) in octets.", min=1024, max=2**31
    )
    max_bad_commands: int = setting(20, "Bad commands before the server says BYE.", min=1)
    login_timeout: int = setting(60, "Seconds of silence allowed before login.", min=1)
    idle_timeout: int = setting(
        1800, "Seconds of silence after login (RFC 3501 §5.4: at least 30 min).", min=60
    )
    max_connections_per_ip: int = setting(50, "Concurrent connections from one address.", min=1)
    max_connections_per_user: int = setting(50, "Concurrent sessions of one account.", min=1)
    allow_plaintext_auth: bool = setting(
        False, "Allow LOGIN/AUTHENTICATE without TLS. Loopback peers are always allowed."
    )


@dataclass(frozen=True, slots=True)
class Pop3Config:
    """POP3 service (RFC 1939)."""

    enabled: bool = setting(True, "Run the POP3 service.")
    port: int = setting(1110, "Port with STLS (110 in production).", min=0, max=65535)
    tls_port: int = setting(1995, "Port with implicit TLS (995 in production).", min=0, max=65535)
    max_line: int = setting(512, "Longest command line in octets (RFC 2449: 255).", min=255)
    max_bad_commands: int = setting(20, "Bad commands before the server closes.", min=1)
    timeout: int = setting(600, "Seconds of silence allowed (RFC 1939: at least 600).", min=600)
    max_connections_per_ip: int = setting(50, "Concurrent connections from one address.", min=1)
    allow_plaintext_auth: bool = setting(
        False, "Allow USER/PASS and AUTH without TLS. Loopback peers are always allowed."
    )


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    """Inbound SMTP (the MX role)."""

    enabled: bool = setting(True, "Run the inbound SMTP service.")
    port: int = setting(2525, "Port (25 in production).", min=0, max=65535)
    max_message_size: int = setting(50 * MiB, "Largest message in octets.", min=1024)
    max_recipients: int = setting(100, "Recipients per message (RFC 5321 §4.5.3.1.8).", min=1)
    max_errors: int = setting(10, "Errors in one session before 421.", min=1)
    command_timeout: int = setting(300, "Seconds to wait for a command (RFC 5321: 5 min).", min=1)
    data_timeout: int = setting(600, "Seconds to wait for a block of DATA (RFC: 3 min+).", min=1)
    max_connections_per_ip: int = setting(20, "Concurrent connections from one address.", min=1)
    postmaster: str = setting(
        "",
        "Address for <Postmaster> and for postmaster@ any hosted domain without its own."
        " Empty: postmaster@hostname if hosted, else the first hosted domain's postmaster.",
    )


@dataclass(frozen=True, slots=True)
class SubmissionConfig:
    """Authenticated message submission (RFC 6409)."""

    enabled: bool = setting(True, "Run the submission service.")
    port: int = setting(2587, "Port with STARTTLS (587 in production).", min=0, max=65535)
    tls_port: int = setting(2465, "Port with implicit TLS (465 in production).", min=0, max=65535)
    max_messages_per_hour: int = setting(200, "Messages one account may send per hour.", min=1)
    max_messages_per_day: int = setting(1000, "Messages one account may send per day.", min=1)
    max_recipients: int = setting(100, "Recipients per submitted message.", min=1)
    allow_plaintext_auth: bool = setting(
        False, "Allow AUTH without TLS. Loopback peers are always allowed."
    )


@dataclass(frozen=True, slots=True)
class WebConfig:
    """Webmail, admin API and metrics (one HTTP listener)."""

    enabled: bool = setting(True, "Run the web service.")
    port: int = setting(8080, "HTTP port (behind a TLS proxy on 443 in production).", max=65535)
    session_hours: int = setting(12, "Hours a webmail session lives without activity.", min=1)
    secure_cookies: bool = setting(
        False, "Mark cookies Secure. Turn on whenever users reach the web port over HTTPS."
    )


@dataclass(frozen=True, slots=True)
class StatusConfig:
    """The status page (its own app and database; may run on another host)."""

    enabled: bool = setting(True, "Run the status page with `serve`.")
    port: int = setting(8081, "HTTP port of the status page.", min=0, max=65535)
    database: str = setting("", "SQLite file of the status page. Empty: <data_dir>/status.db.")
    options: dict[str, Any] = field(
        default_factory=dict,
        metadata={
            "doc": "Other [status] keys (relay, nodes, probes, public_url, min_notice,"
            " reminders, ...), validated by the status service; see its settings module.",
            "extra": True,
        },
    )


@dataclass(frozen=True, slots=True)
class LogConfig:
    """Logging."""

    level: str = setting("INFO", "Lowest level logged: TRACE, DEBUG, INFO, WARNING, ERROR.")
    format: str = setting("logfmt", "Line format: 'logfmt' or 'json'.")


@dataclass(frozen=True, slots=True)
class Config:
    """The whole configuration."""

    data_dir: str = setting("var", "Directory holding the database, blobs and certificate.")
    hostname: str = setting("localhost", "Name this node announces (SMTP banner, Received).")
    listen: str = setting("127.0.0.1", "Address every service listens on.")
    tls: TlsConfig = field(default_factory=TlsConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    imap: ImapConfig = field(default_factory=ImapConfig)
    pop3: Pop3Config = field(default_factory=Pop3Config)
    smtp: SmtpConfig = field(default_factory=SmtpConfig)
    submission: SubmissionConfig = field(default_factory=SubmissionConfig)
    web: WebConfig = field(default_factory=WebConfig)
    status: StatusConfig = field(default_factory=StatusConfig)
    log: LogConfig = field(default_factory=LogConfig)

    @property
    def data_path(self) -> Path:
        """The data directory as a path."""
        return Path(self.data_dir)

    @property
    def sqlite_path(self) -> Path:
        """The store's SQLite file."""
        return (
            Path(self.store.sqlite_path)
            if self.store.sqlite_path
            else (self.data_path / "mailwarden.db")
        )

    @property
    def blob_path(self) -> Path:
        """The store's blob directory."""
        return Path(self.store.blob_dir) if self.store.blob_dir else self.data_path / "blobs"

    @property
    def cert_path(self) -> Path:
        """The TLS certificate chain file."""
        return Path(self.tls.cert_file) if self.tls.cert_file else self.data_path / "tls/cert.pem"

    @property
    def key_path(self) -> Path:
        """The TLS private key file."""
        return Path(self.tls.key_file) if self.tls.key_file else self.data_path / "tls/key.pem"

    @property
    def postmaster(self) -> Address | None:
        """The configured postmaster address, if any (validated at load)."""
        from mailwarden.mail.address import Address

        return Address.parse(self.smtp.postmaster) if self.smtp.postmaster else None

    @property
    def status_db_path(self) -> Path:
        """The status page's database file."""
        return (
            Path(self.status.database) if self.status.database else (self.data_path / "status.db")
        )


_CHOICES = {
    "store.backend": ("sqlite",),
    "log.level": ("TRACE", "DEBUG", "INFO", "WARNING", "ERROR"),
    "log.format": ("logfmt", "json"),
}


class ConfigError(Exception):
    """The configuration has problems; ``problems`` lists each as "key: what is wrong"."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def load_config(
    path: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Load, overlay and validate the configuration.

    Args:
        path: a TOML file, or None for defaults only.
        env: environment to read ``MAILWARDEN_*`` overrides from (``os.environ`` if None).
        overrides: dotted keys set last, e.g. ``{"data_dir": "/tmp/x"}`` from the command line.

    Raises:
        ConfigError: listing every problem found (unreadable file, bad TOML,
            unknown keys, wrong types, values out of range).
    """
    problems: list[str] = []
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigError([f"{path}: cannot read: {exc.strerror}"]) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError([f"{path}: invalid TOML: {exc}"]) from None
    _overlay_env(raw, os.environ if env is None else env, problems)
    for key, value in (overrides or {}).items():
        _set_dotted(raw, key, value)
    config = _build(Config, raw, "", problems)
    if isinstance(config, Config) and config.status.options:
        problems += _status_problems(config.status.options)
    if isinstance(config, Config) and config.smtp.postmaster:
        from mailwarden.mail.address import Address, AddressError

        try:
            Address.parse(config.smtp.postmaster)
        except AddressError as exc:
            problems.append(f"smtp.postmaster: {exc}")
    if problems:
        raise ConfigError(problems)
    assert isinstance(config, Config)
    return config


def _status_problems(options: dict[str, Any]) -> list[str]:
    """Problems in the status page's own settings (validated by the status package)."""
    from mailwarden.web.status.model import StatusError
    from mailwarden.web.status.settings import StatusSettings

    try:
        StatusSettings.from_mapping(options)
    except StatusError as exc:
        return str(exc).split("; ")
    except (TypeError, ValueError) as exc:
        return [f"status: {exc}"]
    return []


def _overlay_env(raw: dict[str, Any], env: Mapping[str, str], problems: list[str]) -> None:
    sections = {f.name: f for f in dataclasses.fields(Config) if _is_section(f)}
    for name, text in env.items():
        if not name.startswith("MAILWARDEN_"):
            continue
        key = name.removeprefix("MAILWARDEN_").lower()
        section, _, rest = key.partition("_")
        if section in sections and rest:
            dotted = f"{section}.{rest}"
        elif key in {f.name for f in dataclasses.fields(Config)}:
            dotted = key
        else:
            problems.append(f"{name}: no such setting")
            continue
        _set_dotted(raw, dotted, _parse_env_value(text))


def _parse_env_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _set_dotted(raw: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = raw
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[leaf] = value


def _is_section(f: dataclasses.Field[Any]) -> bool:
    hint = typing.get_type_hints(Config)[f.name]
    return isinstance(hint, type) and dataclasses.is_dataclass(hint)


def _build(cls: type[Any], raw: Any, prefix: str, problems: list[str]) -> Any:
    if not isinstance(raw, dict):
        problems.append(f"{prefix.rstrip('.')}: must be a table")
        raw = {}
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    extra = next((f.name for f in dataclasses.fields(cls) if f.metadata.get("extra")), None)
    values: dict[str, Any] = {}
    for key in raw:
        if key not in known:
            if extra is None:
                problems.append(f"{prefix}{key}: unknown setting")
            else:
                values.setdefault(extra, {})[key] = raw[key]
    for f in dataclasses.fields(cls):
        if f.metadata.get("extra"):
            continue
        if f.name not in raw:
            continue
        key = f"{prefix}{f.name}"
        hint = hints[f.name]
        if isinstance(hint, type) and dataclasses.is_dataclass(hint):
            values[f.name] = _build(hint, raw[f.name], key + ".", problems)
            continue
        checked = _check_value(key, hint, raw[f.name], f.metadata, problems)
        if checked is not None:
            values[f.name] = checked
    return cls(**values)


def _check_value(
    key: str, hint: Any, value: Any, meta: Mapping[str, Any], problems: list[str]
) -> Any:
    expected: type[Any] = hint if isinstance(hint, type) else str
    if isinstance(hint, types.GenericAlias):
        expected = typing.get_origin(hint) or list
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if (expected is int and isinstance(value, bool)) or not isinstance(value, expected):
        problems.append(f"{key}: expected {expected.__name__}, got {type(value).__name__}")
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        low, high = meta.get("min"), meta.get("max")
        if low is not None and value < low:
            problems.append(f"{key}: {value} is below the minimum {low}")
            return None
        if high is not None and value > high:
            problems.append(f"{key}: {value} is above the maximum {high}")
            return None
    choices = _CHOICES.get(key)
    if choices and value not in choices:
        problems.append(f"{key}: {value!r} is not one of {', '.join(choices)}")
        return None
    return value


def sample_config() -> str:
    """Return an annotated TOML file holding every setting at its default."""
    lines = [
        "# Mailwarden configuration. Every setting is shown at its default.",
        "# Any key can also be set from the environment: MAILWARDEN_<SECTION>_<KEY>.",
        "",
    ]
    sections: list[tuple[str, Any]] = []
    for f in dataclasses.fields(Config):
        factory = f.default_factory
        default = factory() if factory is not dataclasses.MISSING else f.default
        if dataclasses.is_dataclass(default):
            sections.append((f.name, default))
        else:
            lines += [f"# {f.metadata['doc']}", f"{f.name} = {_toml(default)}", ""]
    for name, section in sections:
        lines += [f"[{name}]", f"# {type(section).__doc__}"]
        for f in dataclasses.fields(section):
            if f.metadata.get("extra"):
                lines.append(f"# {f.metadata['doc']}")
                continue
            lines += [f"# {f.metadata['doc']}", f"{f.name} = {_toml(getattr(section, f.name))}"]
        lines.append("")
    return "\n".join(lines)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    escaped = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
