"""A Monitor (service.monitoring.endpoints) from the configuration, for `pcse serve` and for
`pcse run`."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import timedelta
from functools import partial

from prometheus_client import CollectorRegistry

from core.clock import Clock
from core.db import Database
from service.config import Config
from service.context import workflow_env
from service.monitoring.collector import DatabaseCollector, Thresholds
from service.monitoring.endpoints import Monitor
from service.monitoring.events import IdleCollector, Watching, register_in_process
from service.monitoring.health import readiness
from service.monitoring.settings import metrics_token


def database_registry(config: Config, database: Database, clock: Clock) -> CollectorRegistry:
    """A registry holding the metrics read from the database."""
    registry = CollectorRegistry()
    registry.register(
        DatabaseCollector(
            database,
            [box.name for box in config.mailboxes],
            clock,
            Thresholds(
                approval_overdue_after=timedelta(days=config.workflow.reminder_after_days),
                wait_window=timedelta(days=config.metrics.wait_window_days),
            ),
        )
    )
    return registry


def build_monitor(
    config: Config,
    database: Database,
    *,
    clock: Clock | None = None,
    token_required: bool,
    watchers: Callable[[], Iterable[Watching]] | None = None,
    liveness: Callable[[], list[str]] | None = None,
) -> Monitor:
    """The Monitor for a process: `pcse serve` requires the token on /metrics; `pcse run`
    (its own port) adds its in-process counters and its IDLE connections."""
    clock = clock or workflow_env(config).clock
    registry = database_registry(config, database, clock)
    if watchers is not None:
        register_in_process(registry)
        registry.register(IdleCollector(watchers))
    return Monitor(
        registry=registry,
        readiness=partial(
            readiness,
            database,
            [box.name for box in config.mailboxes],
            clock,
            config.metrics.ready_poll_max_age_seconds,
        ),
        token=metrics_token(config),
        token_required=token_required,
        liveness=liveness or (lambda: []),
    )
