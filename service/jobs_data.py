"""The scheduler's data jobs: the daily retention purge and the change feed's webhooks."""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy.exc import IntegrityError

from core.clock import Clock, SystemClock
from core.db import Database
from core.workers import worker_id
from service.config import Config
from service.models import JobRun

# (name, seconds between runs, what to run): service.jobs makes each a Job.
JobSpec = tuple[str, float, Callable[[], object]]

log = logging.getLogger(__name__)


def claim_period(db: Database, job: str, period: str, worker: str) -> bool:
    """True for the one worker that records this job's run for this period first."""
    try:
        with db.transaction() as session:
            session.add(JobRun(job=job, period=period, worker=worker))
    except IntegrityError:
        return False
    return True


def purge_job(db: Database, config: Config, clock: Clock | None = None) -> JobSpec:
    """Once a day (the first run after midnight UTC, in one worker): remove what is past
    its retention period."""
    from workflow.retention import purge

    clock = clock or SystemClock()
    worker = worker_id()

    def run() -> None:
        day = clock.now().date().isoformat()
        if not claim_period(db, "purge", day, worker):
            return
        report = purge(db, config.retention, raw_dir=config.storage.raw_dir, now=clock.now())
        log.info("purge: %s", ", ".join(f"{k} {v}" for k, v in report.counts().items()))

    return ("purge", config.schedule.housekeeping_seconds, run)


def webhooks_job(db: Database, config: Config) -> JobSpec:
    from service.webhooks import deliver_all

    worker = worker_id()

    def run() -> None:
        report = deliver_all(db, config.webhooks, worker=worker)
        if report.sent or report.failed or report.retrying:
            log.info(
                "webhooks: sent %d, to retry %d, failed %d",
                report.sent,
                report.retrying,
                report.failed,
            )
        for error in report.errors:
            log.warning("webhooks: %s", error)

    return ("webhooks", config.schedule.webhook_seconds, run)


def data_jobs(db: Database, config: Config) -> list[JobSpec]:
    jobs = [purge_job(db, config)]
    if config.webhooks:
        jobs.append(webhooks_job(db, config))
    return jobs
