"""`pcse run`: the service. APScheduler runs the jobs; IMAP IDLE wakes intake early.

SIGTERM or SIGINT sets the stop event: intake stops after the message in hand (between
messages and between fetched batches), the other jobs finish what they are doing, and the
process exits 0. Nothing is lost by stopping at any point: see intake.poller.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler

from core.db import Database
from core.errors import PcseError
from core.redact import without_addresses
from intake.idle import IdleWatcher
from intake.imap import ImapSource, credentials_for
from intake.process import Handler, worker_id
from service.config import Config, MailboxConfig
from service.jobs import IntakeJob, Job, periodic_jobs
from service.wakeable import WakeableLoop

log = logging.getLogger(__name__)


def _guarded(name: str, func: Callable[[], Any]) -> Callable[[], None]:
    """Run a job; an unexpected error is logged and the job runs again at its next time."""

    def run() -> None:
        try:
            func()
        except Exception:
            log.exception("job %s failed; it will run again at its next time", name)

    return run


class Service:
    def __init__(
        self,
        db: Database,
        config: Config,
        handler: Handler,
        *,
        jobs: list[Job] | None = None,
        stop: threading.Event | None = None,
        idle_renew_seconds: float | None = None,
    ) -> None:
        self.db = db
        self.config = config
        self.stop = stop or threading.Event()
        self.worker = worker_id()
        self.intake = IntakeJob(db, config, handler, self.stop, worker=self.worker)
        self.jobs = periodic_jobs(db, config) if jobs is None else jobs
        self.idle_renew_seconds = idle_renew_seconds
        self.scheduler = BackgroundScheduler(
            timezone=UTC,
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": None,
            },
        )
        self.watchers: list[IdleWatcher] = []
        self.loops: list[WakeableLoop] = []
        self.listener: threading.Thread | None = None
        self.started = threading.Event()

    def wake_intake(self) -> None:
        """New mail: run intake now, or once more right after the round in progress (the
        scheduler is then left alone: it would only refuse a second instance)."""
        if self.intake.request() or self.stop.is_set():
            return
        try:
            self.scheduler.modify_job("intake", next_run_time=datetime.now(UTC))
        except Exception:  # the scheduler is shutting down
            log.debug("could not wake intake", exc_info=True)

    def _outbox_listener(self) -> threading.Thread | None:
        """On PostgreSQL, hear of replies committed by other processes (LISTEN/NOTIFY)."""
        if not self.loops or self.db.engine.dialect.name != "postgresql":
            return None
        from notifications.wakeup import Listener

        listener = Listener(self.db.url, self.stop)
        listener.start()
        return listener

    def _idle_watchers(self) -> list[IdleWatcher]:
        if not self.config.schedule.idle:
            return []
        watchers = []
        for box in self.config.mailboxes:
            if not box.is_imap:
                continue
            try:
                credentials = credentials_for(box)
            except PcseError as exc:  # no password or token: polling reports it too
                log.error("mailbox %s: %s", box.name, without_addresses(exc))
                continue

            def factory(box: MailboxConfig = box, credentials=credentials) -> ImapSource:
                return ImapSource.from_config(box, credentials)

            kwargs: dict[str, Any] = {}
            if self.idle_renew_seconds is not None:
                kwargs["renew_seconds"] = self.idle_renew_seconds
            watchers.append(IdleWatcher(box.name, factory, self.wake_intake, self.stop, **kwargs))
        return watchers

    def start(self) -> None:
        now = datetime.now(UTC)
        self.scheduler.add_job(
            _guarded("intake", self.intake),
            "interval",
            id="intake",
            seconds=self.config.schedule.poll_seconds,
            next_run_time=now,
        )
        for job in self.jobs:
            if job.wake is not None:  # the outbox: woken by each committed reply
                self.loops.append(WakeableLoop(job, self.stop))
                continue
            self.scheduler.add_job(
                _guarded(job.name, job.run),
                "interval",
                id=job.name,
                seconds=job.seconds,
                next_run_time=now,
            )
        self.scheduler.start()
        for loop in self.loops:
            loop.start()
        self.listener = self._outbox_listener()
        self.watchers = self._idle_watchers()
        for watcher in self.watchers:
            watcher.start()
        self.started.set()
        log.info(
            "pcse run: %d mailbox(es), polling every %.0f s%s; worker %s",
            len(self.config.mailboxes),
            self.config.schedule.poll_seconds,
            f", IDLE on {len(self.watchers)}" if self.watchers else "",
            self.worker,
        )

    def shutdown(self) -> None:
        self.stop.set()
        for watcher in self.watchers:
            watcher.join(10)
        for loop in self.loops:
            loop.shutdown()
        if self.listener is not None:
            self.listener.join(10)
        # Waits for running jobs; intake returns after the message in hand.
        self.scheduler.shutdown(wait=True)
        log.info("pcse run: stopped")

    def run(self, *, signals: bool = True) -> int:
        """Run until SIGTERM or SIGINT (or the stop event); returns the exit status.

        `signals=False` when the caller already set the stop event up with stop_on_signals.
        """
        logging.getLogger("apscheduler").setLevel(logging.WARNING)
        with stop_on_signals(self.stop) if signals else contextlib.nullcontext():
            if self.stop.is_set():
                log.info("pcse run: stopped before it started")
                return 0
            self.start()
            self.stop.wait()
            log.info("pcse run: stopping after the work in hand")
            self.shutdown()
        return 0


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM and SIGINT set `stop` instead of ending the process, while inside."""

    def on_signal(signum: int, _frame: object) -> None:
        log.info("pcse run: received %s", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
