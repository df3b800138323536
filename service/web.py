"""Building the web application from the service's configuration."""

from __future__ import annotations

from pathlib import Path

from caseworker.app import create_app
from caseworker.secretkey import signing_key
from caseworker.webcontext import WebSettings
from core.db import Database
from service.config import Config, ConfigError
from service.context import workflow_env
from service.monitoring.build import build_monitor
from service.monitoring.endpoints import WithMonitoring
from service.notices import operator_warnings


def web_settings(config: Config, database: Database) -> WebSettings:
    return WebSettings(
        database=database,
        env=workflow_env(config),
        raw_dir=Path(config.storage.raw_dir),
        secret_key=signing_key(config),
        secure_cookies=config.web.secure_cookies,
        session_absolute_hours=_absolute_hours(config),
        operator_warnings=lambda: operator_warnings(config),
        message_seconds=float(config.limits.message_seconds),
    )


def _absolute_hours(config: Config) -> float:
    hours = config.web.session_absolute_hours
    if not hours > 0:
        raise ConfigError("[web] session_absolute_hours must be more than 0.")
    return float(hours)


def app_from_config(config: Config, database: Database) -> WithMonitoring:
    """The pages, with /metrics (behind its bearer token), /healthz and /readyz in front."""
    settings = web_settings(config, database)
    monitor = build_monitor(config, database, clock=settings.env.clock, token_required=True)
    return WithMonitoring(create_app(settings), monitor)
