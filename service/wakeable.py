"""A job that runs at once when woken, and otherwise every `seconds` as the safety net.

The outbox is such a job: every committed reply wakes it (notifications.wakeup), so an
acknowledgement leaves within moments of the message that caused it. A wake-up that
comes while the job runs makes it run once more straight after, so none is lost.
"""

from __future__ import annotations

import logging
import threading

from service.jobs import Job

log = logging.getLogger(__name__)


class WakeableLoop(threading.Thread):
    def __init__(self, job: Job, stop: threading.Event) -> None:
        super().__init__(name=f"job-{job.name}", daemon=True)
        assert job.wake is not None
        self.job = job
        self.wake = job.wake
        self.stop_event = stop
        self.runs = 0

    def run(self) -> None:
        while not self.stop_event.is_set():
            # Cleared before the run: a wake-up during the run is kept for the next turn.
            self.wake.clear()
            try:
                self.job.run()
            except Exception:
                log.exception("job %s failed; it will run again at its next time", self.job.name)
            self.runs += 1
            self.wake.wait(self.job.seconds)

    def shutdown(self, timeout: float = 60) -> None:
        """Called after the stop event is set: end the wait, let the run in hand finish,
        and let go of what the job holds between runs (its SMTP connection)."""
        self.wake.set()
        self.join(timeout)
        if self.job.close is not None and not self.is_alive():
            try:
                self.job.close()
            except Exception:
                log.warning("job %s could not let go of what it held", self.job.name, exc_info=True)
