"""`pcse run`'s metrics port: /metrics, /healthz and /readyz served by uvicorn on a thread
of its own, started before the scheduler and stopped after it."""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator

import uvicorn

from core.errors import ConfigError
from service.monitoring.endpoints import Monitor, monitoring_app

log = logging.getLogger(__name__)
START_SECONDS = 10.0


class MetricsServer:
    def __init__(self, monitor: Monitor, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.server = uvicorn.Server(
            uvicorn.Config(
                monitoring_app(monitor),
                host=host,
                port=port,
                log_level="warning",
                access_log=False,
                lifespan="off",
                server_header=False,
                log_config=None,  # the service's handler, which redacts, writes its lines
            )
        )
        self.thread = threading.Thread(target=self._run, name="metrics", daemon=True)

    def _run(self) -> None:
        # uvicorn exits when it cannot bind the port; start() says so in a sentence.
        with contextlib.suppress(SystemExit):
            self.server.run()

    def start(self) -> None:
        """Listen, or refuse in one sentence when the port cannot be had."""
        self.thread.start()
        deadline = time.monotonic() + START_SECONDS
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise ConfigError(
                    f"The metrics port {self.host}:{self.port} could not be opened "
                    "([metrics] host and port): is something else listening there?"
                )
            time.sleep(0.02)
        log.info("metrics, /healthz and /readyz on %s:%d", self.host, self.port)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@contextlib.contextmanager
def serving(monitor: Monitor, host: str, port: int) -> Iterator[MetricsServer | None]:
    """Serve the monitoring endpoints while inside; nothing when port is 0."""
    if not port:
        yield None
        return
    server = MetricsServer(monitor, host, port)
    server.start()
    try:
        yield server
    finally:
        server.stop()
