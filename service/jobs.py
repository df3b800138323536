"""The periodic jobs of `pcse run`: intake (poll and process), the outbox, reminders and expiry.

Each job is safe to run in several workers at once: intake rows and outbox rows are claimed
in the database, and reminders and expiry claim their cases with guarded updates.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from core.db import Database
from core.redact import without_addresses
from intake.pipeline import run_round
from intake.process import Handler
from service.config import Config
from service.context import workflow_env
from service.monitoring.events import observe_round
from service.notices import operator_warnings
from workflow.intake_link import WorkflowLink

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    name: str
    seconds: float
    run: Callable[[], object]
    # Set to run the job at once, before its interval is up (see service.wakeable).
    wake: threading.Event | None = None
    # What the job holds between runs, let go when the service stops.
    close: Callable[[], None] | None = None


def build_handler(config: Config) -> Handler:
    """The workflow's handler for new requests, case replies and approval answers."""
    from workflow.handler import handle_message

    return handle_message(workflow_env(config))


class IntakeJob:
    """Poll every mailbox, then process what is pending.

    `request()` asks for a round now (IDLE saw new mail); a request that arrives while a
    round is running makes it run once more, so no arrival waits for the next interval.
    """

    name = "intake"

    def __init__(
        self,
        db: Database,
        config: Config,
        handler: Handler,
        stop: threading.Event,
        worker: str | None = None,
    ) -> None:
        self.db = db
        self.config = config
        self.handler = handler
        self.stop = stop
        self.worker = worker
        self._lock = threading.Lock()  # between request() and the end of a round
        self._again = False
        self._running = False
        self.rounds = 0
        self.mailbox_names = [box.name for box in config.mailboxes]

    def request(self) -> bool:
        """Ask for a round; True when one is running and will run once more for it."""
        with self._lock:
            self._again = True
            return self._running

    def __call__(self) -> None:
        with self._lock:
            self._running = True
        try:
            self._rounds()
        finally:
            with self._lock:
                self._running = False

    def _rounds(self) -> None:
        while not self.stop.is_set():
            with self._lock:
                self._again = False
            started = time.perf_counter()
            report = run_round(
                self.db,
                self.config,
                self.handler,
                stop=self.stop,
                cases=WorkflowLink(),
                worker=self.worker,
            )
            self.rounds += 1
            observe_round(report, time.perf_counter() - started, self.mailbox_names)
            counts = report.as_json()
            if report.fetched or report.processing.total:
                log.info(
                    "intake: fetched %(fetched)d, processed %(processed)d, duplicates "
                    "%(duplicates)d, ignored %(ignored)d, failed %(failed)d",
                    counts,
                )
            with self._lock:
                if not self._again:
                    self._running = False
                    return


def outbox_job(db: Database, config: Config) -> Job:
    """Send what is due: woken by every committed reply (notifications.wakeup), and every
    `outbox_seconds` as the safety net (retries fall due, a wake-up was missed)."""
    from notifications.sender import KeptConnection, send_pending
    from notifications.wakeup import WAKE

    provider = None
    if config.smtp.auth == "oauth2":
        from intake.oauth2 import smtp_token_provider

        provider = smtp_token_provider(config)

    # Woken by every committed reply: each run uses the connection the last one left open
    # (within half a minute), not a new connection, TLS and sign-in for a message or two.
    kept = KeptConnection()

    def run() -> None:
        report = send_pending(db, config, token_provider=provider, kept=kept)
        if report.sent or report.failed:
            log.info(
                "outbox: sent %d, failed %d, pending %d", report.sent, report.failed, report.pending
            )
        if report.error:
            log.warning("outbox: %s", without_addresses(report.error))

    return Job("outbox", config.schedule.outbox_seconds, run, wake=WAKE, close=kept.close)


def reminders_job(db: Database, config: Config) -> Job:
    from workflow.reminders import run_due

    env = workflow_env(config)

    def run() -> None:
        done = run_due(db, env)
        if any(done.values()):
            log.info("reminders: %s", ", ".join(f"{k} {v}" for k, v in sorted(done.items())))

    return Job("reminders", config.schedule.housekeeping_seconds, run)


def warnings_job(config: Config) -> Job:
    """At start and then daily: what an operator must put right, in the service's log."""

    def run() -> None:
        for warning in operator_warnings(config):
            log.warning("%s", warning)

    return Job("operator_warnings", 24 * 3600, run)


def periodic_jobs(db: Database, config: Config) -> list[Job]:
    """The jobs other than intake, each on its own interval."""
    from service.jobs_data import data_jobs

    data = [Job(*spec) for spec in data_jobs(db, config)]  # retention purge, webhooks
    return [outbox_job(db, config), reminders_job(db, config), warnings_job(config), *data]
