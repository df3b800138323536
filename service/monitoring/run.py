"""The monitoring endpoints of `pcse run`, on [metrics] port."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from core.db import Database
from service.config import Config
from service.monitoring.build import build_monitor
from service.monitoring.server import MetricsServer, serving
from service.runner import Service


def liveness(service: Service) -> list[str]:
    """The service is alive while its scheduler runs and it has not been told to stop."""
    problems = []
    if service.started.is_set() and not service.scheduler.running:
        problems.append("the scheduler is not running")
    if service.stop.is_set():
        problems.append("stopping")
    return problems


@contextlib.contextmanager
def serve_metrics(
    config: Config, database: Database, service: Service
) -> Iterator[MetricsServer | None]:
    """Serve /metrics, /healthz and /readyz while inside, when [metrics] port is set. On
    its own port, /metrics asks for the token only when one is configured."""
    monitor = build_monitor(
        config,
        database,
        token_required=False,
        watchers=lambda: list(service.watchers),
        liveness=lambda: liveness(service),
    )
    with serving(monitor, config.metrics.host, config.metrics.port) as server:
        yield server
