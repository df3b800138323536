"""The [metrics] section: the Prometheus endpoint and the readiness check."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Protocol

from core.errors import ConfigError

MIN_TOKEN_LENGTH = 16


@dataclass
class MetricsConfig:
    # `pcse run` serves /metrics, /healthz and /readyz on this port (0: not at all).
    port: int = 0
    host: str = "127.0.0.1"
    # The bearer token /metrics asks for. The variable named by token_env wins over
    # `token`; `pcse serve` refuses /metrics while neither is set.
    token: str = ""
    token_env: str = "PCSE_METRICS_TOKEN"
    # /readyz fails once a mailbox's last good poll is older than this (0: not checked).
    ready_poll_max_age_seconds: float = 600
    # The wait histograms cover the cases opened in the last this many days.
    wait_window_days: float = 30


class HasMetrics(Protocol):
    @property
    def metrics(self) -> MetricsConfig: ...


def metrics_token(config: HasMetrics) -> str | None:
    """The bearer token for /metrics, or None when none is configured."""
    settings = config.metrics
    value = os.environ.get(settings.token_env, "") if settings.token_env else ""
    value = value or settings.token
    if not value:
        return None
    if len(value) < MIN_TOKEN_LENGTH:
        where = (
            f"${settings.token_env}" if os.environ.get(settings.token_env) else "[metrics] token"
        )
        raise ConfigError(
            f"The metrics token in {where} must be at least {MIN_TOKEN_LENGTH} characters long."
        )
    return value
