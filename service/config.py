"""Configuration from a TOML file (see config.example.toml), with local defaults.

With no file, everything runs under ./var: SQLite, a Maildir inbox, an SMTP sink
on 127.0.0.1:8025. Relative paths are taken from the current directory.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from dataclasses import dataclass, field, fields
from datetime import date
from pathlib import Path
from types import UnionType
from typing import Any, Union, get_args, get_origin, get_type_hints
from urllib.parse import urlsplit

from caseworker.settings import WebConfig, invalid_proxies
from core.errors import ConfigError
from core.senderauth import Profile
from core.settings import DatabaseConfig, SecurityConfig
from forms.settings import LimitsConfig
from intake.settings import MailboxConfig, StorageConfig
from notifications.settings import MAX_SMTP_TIMEOUT, NotificationsConfig, SmtpConfig
from service.monitoring.settings import MetricsConfig
from service.webhook_settings import WebhookConfig
from workflow.settings import RetentionConfig, WorkflowConfig
from workflow.targets import TargetsConfig

__all__ = [
    "Config",
    "ConfigError",
    "DatabaseConfig",
    "LimitsConfig",
    "MailboxConfig",
    "MetricsConfig",
    "NotificationsConfig",
    "RetentionConfig",
    "ScheduleConfig",
    "SecurityConfig",
    "SmtpConfig",
    "StorageConfig",
    "TargetsConfig",
    "WebConfig",
    "WebhookConfig",
    "WorkflowConfig",
    "from_mapping",
    "load",
    "local_defaults",
    "require_sender_authentication",
]


@dataclass
class ScheduleConfig:
    poll_seconds: float = 30
    idle: bool = True
    outbox_seconds: float = 10
    housekeeping_seconds: float = 300
    webhook_seconds: float = 10


@dataclass
class Config:
    database: DatabaseConfig = field(default_factory=DatabaseConfig)
    mailboxes: list[MailboxConfig] = field(default_factory=list)
    smtp: SmtpConfig = field(default_factory=SmtpConfig)
    security: SecurityConfig = field(default_factory=SecurityConfig)
    workflow: WorkflowConfig = field(default_factory=WorkflowConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    notifications: NotificationsConfig = field(default_factory=NotificationsConfig)
    storage: StorageConfig = field(default_factory=StorageConfig)
    web: WebConfig = field(default_factory=WebConfig)
    targets: TargetsConfig = field(default_factory=TargetsConfig)
    retention: RetentionConfig = field(default_factory=RetentionConfig)
    webhooks: list[WebhookConfig] = field(default_factory=list)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    source: str = "built-in local defaults"

    @property
    def our_addresses(self) -> set[str]:
        """Every address the service sends from or reads; never answered automatically."""
        found = {self.smtp.from_address.lower()}
        found.update(m.address.lower() for m in self.mailboxes)
        return found


def _kind(hint: Any) -> str:
    """A type as the sentence names it."""
    names = {
        str: "text",
        int: "a whole number",
        float: "a number",
        bool: "true or false",
        date: "a date written without quotes (2027-05-01)",
    }
    if get_origin(hint) in (list, tuple):
        return "a list of " + {str: "texts"}.get(get_args(hint)[0], "values")
    return names.get(hint, getattr(hint, "__name__", str(hint)))


def _fits(value: Any, hint: Any) -> bool:
    if get_origin(hint) in (UnionType, Union):
        return any(_fits(value, arg) for arg in get_args(hint) if arg is not type(None))
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if get_origin(hint) is list:
        (item,) = get_args(hint)
        return isinstance(value, list) and all(_fits(v, item) for v in value)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return f"the text {value!r}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _build(cls: type, data: Any, where: str, source: str) -> Any:
    """One section, each value checked against the type its package declares; a mistake
    is refused with the key's full name and the file."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a table ([{where}]), not {_shown(data)} (in {source}).")
    known = {f.name for f in fields(cls)}
    unknown = set(data) - known
    if unknown:
        raise ConfigError(
            f"Unknown key(s) in [{where}]: {', '.join(sorted(unknown))} (in {source})."
        )
    hints = get_type_hints(cls)
    for key, value in data.items():
        hint = hints[key]
        if not _fits(value, hint):
            union = get_origin(hint) in (UnionType, Union)
            choices = [a for a in get_args(hint) if a is not type(None)] if union else [hint]
            wanted = " or ".join(_kind(a) for a in choices)
            raise ConfigError(f"{where}.{key} must be {wanted}, not {_shown(value)} (in {source}).")
    return cls(**data)


def local_defaults() -> Config:
    """A local Maildir and SMTP sink. Nothing vouches for senders here, so `pcse run` and
    `pcse poll` refuse these defaults; `pcse demo` stamps its own mail (demo.run)."""
    return Config(
        mailboxes=[MailboxConfig(maildir="var/maildir")],
        security=SecurityConfig(sender_authentication="none"),
    )


def from_mapping(data: dict[str, Any], source: str = "mapping") -> Config:
    sections = {
        "database": DatabaseConfig,
        "smtp": SmtpConfig,
        "security": SecurityConfig,
        "workflow": WorkflowConfig,
        "schedule": ScheduleConfig,
        "limits": LimitsConfig,
        "notifications": NotificationsConfig,
        "storage": StorageConfig,
        "web": WebConfig,
        "targets": TargetsConfig,
        "retention": RetentionConfig,
        "metrics": MetricsConfig,
    }
    unknown = set(data) - set(sections) - {"mailboxes", "webhooks"}
    if unknown:
        raise ConfigError(f"Unknown section(s): {', '.join(sorted(unknown))}.")
    built = {name: _build(cls, data.get(name, {}), name, source) for name, cls in sections.items()}
    boxes = data.get("mailboxes", [])
    if not isinstance(boxes, list):
        raise ConfigError(f"mailboxes must be a list of [[mailboxes]] tables (in {source}).")
    mailboxes = [_build(MailboxConfig, m, f"mailboxes[{n}]", source) for n, m in enumerate(boxes)]
    hooks = data.get("webhooks", [])
    if not isinstance(hooks, list):
        raise ConfigError(f"webhooks must be a list of [[webhooks]] tables (in {source}).")
    webhooks = [_build(WebhookConfig, w, f"webhooks[{n}]", source) for n, w in enumerate(hooks)]
    config = Config(**built, mailboxes=mailboxes, webhooks=webhooks, source=source)
    _validate(config)
    return config


def _validate(config: Config) -> None:
    _validate_database(config.database.url)
    _validate_schedule(config.schedule)
    _validate_ports(config)
    names = [m.name for m in config.mailboxes]
    if len(names) != len(set(names)):
        raise ConfigError("Each [[mailboxes]] entry needs a different name.")
    for box in config.mailboxes:
        if bool(box.maildir) == bool(box.imap_host):
            raise ConfigError(f"Mailbox {box.name!r} needs exactly one of maildir or imap_host.")
        if box.auth not in ("password", "oauth2"):
            raise ConfigError(f'Mailbox {box.name!r}: auth must be "password" or "oauth2".')
    if config.smtp.auth not in ("none", "password", "oauth2"):
        raise ConfigError('[smtp] auth must be "none", "password" or "oauth2".')
    if not 0 < config.smtp.timeout_seconds <= MAX_SMTP_TIMEOUT:
        # The sender starts no message later than 7 timeouts and 30 s before its claim's
        # lease (10 minutes) ends; a longer timeout would leave it no time at all.
        raise ConfigError(
            f"[smtp] timeout_seconds must be a number of seconds above 0 and at most "
            f"{MAX_SMTP_TIMEOUT}."
        )
    _validate_transport(config)
    if not config.limits.message_seconds > 0:
        raise ConfigError("[limits] message_seconds must be a number of seconds above 0.")
    if not 0 <= config.limits.ocr_min_confidence <= 100:
        raise ConfigError("[limits] ocr_min_confidence must be a number from 0 to 100.")
    _validate_security(config.security)
    _validate_web(config.web)
    _validate_retention(config.retention)
    _validate_webhooks(config.webhooks)


DATABASE_URL_FORMS = (
    '"sqlite:///var/pcse.sqlite3" (a file) or "postgresql+psycopg://user@host/database"'
)


def _validate_database(url: str) -> None:
    """The two databases the service runs on, in the URL forms SQLAlchemy reads; the forms
    people write first ("postgres://", a bare file name) named with what to write."""
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme in ("sqlite", "sqlite+pysqlite", "postgresql", "postgresql+psycopg"):
        if url.split("://", 1)[1].split("/", 1)[0].count("@") > 1:
            # SQLAlchemy would take the password's tail for the host, and say it.
            raise ConfigError(
                "[database] url has more than one @ before the host: write an @ in the "
                "password as %40."
            )
        # Imported only now: loading the configuration stays light.
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        try:
            make_url(url)
        except (ValueError, ArgumentError):
            # Not the error's own words: they may repeat the URL, password and all.
            raise ConfigError(
                "[database] url cannot be read as a URL: check its port (a number) and its "
                f"punctuation; for example {DATABASE_URL_FORMS}."
            ) from None
        return
    kind = scheme.lower().split("+")[0]
    if kind in ("postgres", "postgresql"):
        why = "write the scheme as postgresql+psycopg:// (in lower case, with that driver)"
    elif kind == "sqlite":
        why = "write the scheme as sqlite:// (in lower case, with no other driver)"
    elif not scheme:
        why = "it names no database kind"
    else:
        why = f"{kind} is not a database the service runs on (SQLite, PostgreSQL)"
    raise ConfigError(f"[database] url: {why}; for example {DATABASE_URL_FORMS}.")


def _validate_schedule(schedule: ScheduleConfig) -> None:
    """Every interval at least a tenth of a second: 0 or less would have `pcse run` spin."""
    for name in ("poll_seconds", "outbox_seconds", "housekeeping_seconds", "webhook_seconds"):
        value = getattr(schedule, name)
        if not value >= MIN_INTERVAL:
            raise ConfigError(
                f"[schedule] {name} must be a number of seconds of at least {MIN_INTERVAL:g}."
            )


MIN_INTERVAL = 0.1


def _validate_ports(config: Config) -> None:
    """Ports a server or a client can use; [metrics] port 0 turns the endpoint off."""
    ports = [("[web] port", config.web.port, 1), ("[smtp] port", config.smtp.port, 1)]
    ports.append(("[metrics] port", config.metrics.port, 0))
    ports += [(f"mailbox {b.name!r}: imap_port", b.imap_port, 1) for b in config.mailboxes]
    for where, port, lowest in ports:
        if not lowest <= port <= 65535:
            raise ConfigError(f"{where} must be a whole number from {lowest} to 65535.")


def _validate_web(web: WebConfig) -> None:
    bad = invalid_proxies(web.trusted_proxies)
    if bad:
        raise ConfigError(
            f"[web] trusted_proxies must list IP addresses or networks (such as "
            f'"127.0.0.1" or "10.0.0.0/24"); {", ".join(bad)} is not one.'
        )


def _validate_retention(retention: RetentionConfig) -> None:
    for name in retention.PERIODS:
        if not getattr(retention, name) > 0:
            raise ConfigError(f"[retention] {name} must be a number of days above 0.")
    if retention.personal_after_days < retention.raw_after_days:
        raise ConfigError(
            "[retention] personal_after_days must not be shorter than raw_after_days: "
            "the original emails hold the same personal data."
        )
    if retention.batch_size < 1:
        raise ConfigError("[retention] batch_size must be a whole number of 1 or more.")


def _scheme_and_host(url: str) -> tuple[str, str]:
    """The URL's scheme and host as an HTTP client reads them, or empty strings."""
    try:
        parts = urlsplit(url)
        return parts.scheme, parts.hostname or ""
    except ValueError:
        return "", ""


def _validate_webhooks(webhooks: list[WebhookConfig]) -> None:
    names = [w.name for w in webhooks]
    if len(names) != len(set(names)) or not all(n.strip() for n in names):
        raise ConfigError("Each [[webhooks]] entry needs a name of its own.")
    for hook in webhooks:
        scheme, host = _scheme_and_host(hook.url)
        if scheme not in ("http", "https") or not host:
            raise ConfigError(f"Webhook {hook.name!r}: url must be an http(s) address.")
        if "@" in hook.url.partition("://")[2].split("/", 1)[0]:
            # "http://localhost:x@evil.example/" names evil.example, signed in as "localhost".
            raise ConfigError(
                f"Webhook {hook.name!r}: url must not hold a user name or password (the part "
                "before an @); the receiver is told who is calling by the signature."
            )
        if scheme == "http" and not is_loopback(host):
            raise ConfigError(
                f"Webhook {hook.name!r}: role changes name people, so they go over https "
                "only (plain http is allowed to a loopback host)."
            )
        if not (hook.secret or hook.secret_env):
            raise ConfigError(
                f"Webhook {hook.name!r} needs secret_env: the variable holding the shared "
                "secret its bodies are signed with."
            )
        if hook.max_attempts < 1 or not hook.timeout_seconds > 0:
            raise ConfigError(
                f"Webhook {hook.name!r}: max_attempts must be 1 or more and "
                "timeout_seconds above 0."
            )


def is_loopback(host: str) -> bool:
    """localhost, 127.0.0.0/8 or ::1: a connection that never leaves the machine."""
    name = host.strip().strip("[]").rstrip(".").lower()
    if name == "localhost":
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or bool(mapped and mapped.is_loopback)


def _validate_transport(config: Config) -> None:
    """No password or token crosses the network in clear: signing in needs TLS, except to
    a server on this machine (the tests' Dovecot and SMTP sink)."""
    for box in config.mailboxes:
        if box.imap_host and not (box.imap_ssl or box.starttls) and not is_loopback(box.imap_host):
            raise ConfigError(
                f"Mailbox {box.name!r} would sign in to {box.imap_host} without TLS: set "
                "imap_ssl = true (port 993) or starttls = true; plain IMAP is allowed only "
                "to a loopback imap_host."
            )
    smtp = config.smtp
    if smtp.auth != "none" and not (smtp.ssl or smtp.starttls) and not is_loopback(smtp.host):
        raise ConfigError(
            f'[smtp] auth = "{smtp.auth}" would sign in to {smtp.host} without TLS: set '
            "starttls = true (port 587) or ssl = true (port 465); signing in without TLS is "
            "allowed only to a loopback host."
        )


def _validate_security(security: SecurityConfig) -> None:
    profiles = ", ".join(f'"{p}"' for p in Profile)
    if security.sender_authentication not in set(Profile):
        raise ConfigError(f"[security] sender_authentication must be one of {profiles}.")
    if security.sender_authentication == Profile.AUTHSERV_ID and not [
        t for t in security.trusted_authserv_ids if t.strip()
    ]:
        raise ConfigError(
            '[security] sender_authentication = "authserv-id" needs the '
            "receiving server's authserv-id in trusted_authserv_ids."
        )
    if security.sender_authentication == Profile.MICROSOFT365 and not security.internal_domains:
        raise ConfigError(
            '[security] sender_authentication = "microsoft365" needs the '
            'tenant\'s domains in internal_domains (for NHSmail, ["nhs.net"]).'
        )


def require_sender_authentication(config: Config) -> None:
    """Refuse to read real mail with nobody vouching for senders, unless the configuration
    says so in as many words (demos and tests)."""
    if config.security.senders_unchecked and not config.security.allow_unauthenticated_senders:
        raise ConfigError(
            f"Senders are not authenticated ({config.source}): set [security] "
            'sender_authentication to "microsoft365" or "authserv-id", or, for a demo or '
            "test set-up only, allow_unauthenticated_senders = true."
        )


def load(path: str | os.PathLike[str] | None = None) -> Config:
    """Load the file at `path`, or $PCSE_CONFIG, or fall back to the local defaults."""
    chosen = path or os.environ.get("PCSE_CONFIG")
    if not chosen:
        return local_defaults()
    file = Path(chosen)
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"The configuration file {file} does not exist.") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"The configuration file {file} is not valid TOML: {exc}.") from exc
    return from_mapping(data, source=str(file))


def to_toml(data: dict[str, Any]) -> str:
    """A configuration mapping as TOML, the shape `from_mapping` reads: [section] tables of
    values, and [[mailboxes]]. For tests, benches and set-up scripts that write a file."""
    lines: list[str] = []
    for name, value in data.items():
        if isinstance(value, dict):
            lines += ["", f"[{name}]", *_toml_pairs(value)]
        elif isinstance(value, list) and all(isinstance(v, dict) for v in value):
            for table in value:
                lines += ["", f"[[{name}]]", *_toml_pairs(table)]
        else:
            raise ValueError(f"{name}: only tables and arrays of tables at the top level")
    return "\n".join(lines).lstrip("\n") + "\n"


def _toml_pairs(table: dict[str, Any]) -> list[str]:
    return [f"{key} = {_toml_value(value)}" for key, value in table.items() if value is not None]


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str | os.PathLike):
        text = os.fspath(value)
        escaped = text.replace("\\", "\\\\").replace('"', '\\"')
        return '"' + "".join(c if c >= " " else f"\\u{ord(c):04x}" for c in escaped) + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise ValueError(f"cannot write {value!r} as TOML")
